//! Piles of rows dealt by person, as the questions that count people in the collector use
//! them: a pile taken apart in the processor's cache ([`deal`]), and piles kept from one
//! question to the next ([`Spare`]).
//!
//! A question that deals millions of rows into piles grows them as the rows come and frees
//! them after: every 4 KiB of them cost a page fault each time, and the allocator gave the
//! memory back to the system after each question. At 10M events a funnel's piles (6M hits,
//! about 100 MB) cost the collector 100 ms of CPU a funnel in the kernel, and 30 to 40 ms once
//! kept. The memory stays with the process between questions, up to each kind of piles' limit.

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

/// Deals `rows` into `dealt` by `group` (below `N`), each group's rows in their order, and
/// gives where each group starts in `dealt` (a group ends where the next starts, the last at
/// the end): a pile dealt again by more of its people's bits, so that each small pile is
/// sorted or walked in the processor's cache.
pub fn deal<T: Copy + Default, const N: usize>(
    rows: &[T],
    dealt: &mut Vec<T>,
    group: impl Fn(&T) -> usize,
) -> [u32; N] {
    let mut ends = [0u32; N];
    for row in rows {
        ends[group(row)] += 1;
    }
    let mut at = 0;
    for end in &mut ends {
        at += *end;
        *end = at;
    }
    // Dealt from the back, so that each group's end becomes its start.
    dealt.clear();
    dealt.resize(rows.len(), T::default());
    for row in rows.iter().rev() {
        let end = &mut ends[group(row)];
        *end -= 1;
        dealt[*end as usize] = *row;
    }
    ends
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dealing_groups_the_rows_in_their_order() {
        let rows: Vec<u32> = (0..1000).map(|i| i * 7919 % 1000).collect();
        let mut dealt = vec![9; 3];
        let starts: [u32; 16] = deal(&rows, &mut dealt, |r| *r as usize % 16);
        assert_eq!(dealt.len(), rows.len());
        for g in 0..16 {
            let end = starts.get(g + 1).map_or(dealt.len(), |&e| e as usize);
            let group = &dealt[starts[g] as usize..end];
            let want: Vec<u32> = rows
                .iter()
                .copied()
                .filter(|r| *r as usize % 16 == g)
                .collect();
            assert_eq!(group, want);
        }
    }

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
