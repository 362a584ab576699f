//! Piles kept from one question to the next. A question that deals millions of rows into
//! piles grows them as the rows come and frees them after: every 4 KiB of them cost a page
//! fault each time, and the allocator gave the memory back to the system after each question.
//! At 10M events a funnel's piles (6M hits, about 100 MB) cost the collector 100 ms of CPU a
//! funnel in the kernel, and 30 to 40 ms once kept. The memory stays with the process
//! between questions, up to each kind of piles' limit.

use std::sync::Mutex;

/// The emptied piles of the last question of one kind, for the next one.
pub struct Spare<T> {
    piles: Mutex<Vec<Vec<T>>>,
    /// The most room kept, in bytes: a larger question's piles are freed after it.
    limit: usize,
}

impl<T> Spare<T> {
    pub const fn new(limit: usize) -> Spare<T> {
        Spare {
            piles: Mutex::new(Vec::new()),
            limit,
        }
    }

    /// `n` empty piles: the kept ones when there are as many and no other question has them.
    pub fn take(&self, n: usize) -> Vec<Vec<T>> {
        let kept = std::mem::take(&mut *self.piles.lock().unwrap_or_else(|e| e.into_inner()));
        if kept.len() == n {
            kept
        } else {
            (0..n).map(|_| Vec::new()).collect()
        }
    }

    /// Keeps `piles`' room for the next question, emptied, unless it is over the limit.
    pub fn keep(&self, mut piles: Vec<Vec<T>>) {
        let room: usize = piles.iter().map(Vec::capacity).sum();
        if room.saturating_mul(std::mem::size_of::<T>()) > self.limit {
            return;
        }
        piles.iter_mut().for_each(Vec::clear);
        *self.piles.lock().unwrap_or_else(|e| e.into_inner()) = piles;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn piles_come_back_empty_with_their_room_and_large_ones_are_not_kept() {
        let spare: Spare<u64> = Spare::new(1 << 10);
        let mut piles = spare.take(4);
        assert_eq!(piles.len(), 4);
        piles[1].extend(0..100);
        spare.keep(piles);
        let piles = spare.take(4);
        assert!(piles.iter().all(Vec::is_empty));
        assert!(piles[1].capacity() >= 100, "the room is kept");
        // Taken: none left for another question at the same time, nor for another count.
        assert_eq!(spare.take(4)[1].capacity(), 0);
        spare.keep(piles);
        assert_eq!(spare.take(3).len(), 3);
        // Over the limit (1 KiB): freed.
        let mut piles = spare.take(4);
        piles[0].extend(0..200);
        spare.keep(piles);
        assert_eq!(spare.take(4)[0].capacity(), 0);
    }
}
