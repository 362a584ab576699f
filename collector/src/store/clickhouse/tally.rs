//! Users of an insights question counted in the collector: ClickHouse sends the rows to count
//! as they are (an hour of a rollup or a second of an event, an anonymous ID's hash, the
//! series key and the split as text), the collector maps each anonymous ID to its person
//! through the person map it keeps ([`super::persons::read`]), deals the rows by person into
//! piles while the answer still comes, then counts each person once per bucket and key, key,
//! pair and in all, half of the piles on another thread. ClickHouse 18.16 spent most of such a question merging `uniqExact` sets
//! (at 10M events, users by browser split by country over 30 days: 1.9M hourly rows, two
//! statements of 340–430 ms at once on two cores).

use super::http::{ChError, Client};
use super::persons::PersonMap;
use super::query::in_two;
use super::{rowbinary, StoreError};
use std::collections::HashMap;

/// A series key, its people, and its people per bucket (bucket index, count).
pub(super) type KeyCount = (String, u64, Vec<(usize, u64)>);

/// Counts of distinct people, before they become series and a table.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Counts {
    /// Each series key's counts: most people first, then by key; at most [`KEYS`].
    pub keys: Vec<KeyCount>,
    /// People in all.
    pub total: u64,
    /// Each (key, split) pair with its people, ordered as `keys`; at most [`KEYS`].
    pub pairs: Vec<(String, String, u64)>,
}

/// Most keys and pairs an answer lists (as the statements' `LIMIT`).
pub(super) const KEYS: usize = 1000;

/// Piles of about 7,000 rows at 10M events over 30 days, each sorted in the processor's cache
/// (64, 256 and 1,024 piles measured alike).
const PILE_BITS: u32 = 8;
/// Most rows the collector holds for one question (16 bytes each: 256 MiB); over it, the
/// statements count (at 10M events, 30 days: 1.9M rows).
const MAX_ROWS: usize = 1 << 24;

/// The piles of the last question counted here, emptied, for the next one (up to 128 MiB:
/// at 10M events, 30 days, 1.9M rows take 30 MB).
static SPARE_PILES: crate::store::piles::Spare<u128> = crate::store::piles::Spare::new(128 << 20);

/// A key or a split is numbered in 24 bits, a bucket in 16, beside the person's 64.
const TEXT_BITS: u32 = 24;

/// Texts numbered in the order they first come. Rows come in runs of one value (the rollups'
/// order), so the last one is compared first.
#[derive(Default)]
struct Numbered {
    ids: HashMap<Vec<u8>, u32, foldhash::fast::RandomState>,
    texts: Vec<Vec<u8>>,
    last: u32,
}

impl Numbered {
    fn id(&mut self, text: &[u8]) -> u32 {
        if let Some(last) = self.texts.get(self.last as usize) {
            if last.len() == text.len() && (text.is_empty() || last[..] == *text) {
                return self.last;
            }
        }
        let n = match self.ids.get(text) {
            Some(&n) => n,
            None => {
                let n = self.texts.len() as u32;
                self.ids.insert(text.to_vec(), n);
                self.texts.push(text.to_vec());
                n
            }
        };
        self.last = n;
        n
    }

    fn text(&self, n: u64) -> String {
        String::from_utf8_lossy(&self.texts[n as usize]).into_owned()
    }
}

/// The rows of an answer dealt by person into piles, their texts numbered.
pub(super) struct Dealt {
    piles: Vec<Vec<u128>>,
    keys: Numbered,
    splits: Numbered,
    pairs: bool,
}

/// Reads the rows of `sql` to count their people: columns `t` (`UInt32`, a time in hours or
/// seconds since the epoch), `anon_h` (`UInt64`), then optionally `k` (the series key, `''`
/// without it) and `s` (the split, for the pairs), `bucket(t)` the index of each time's
/// bucket, below `buckets`. `None` when the answer has more distinct keys or splits, or the question more
/// buckets, than a row's number holds, or more than [`MAX_ROWS`] rows (then the statements
/// count).
pub(super) fn read(
    c: &Client,
    persons: &PersonMap,
    sql: &str,
    buckets: usize,
    bucket: impl Fn(i64) -> usize,
) -> Result<Option<Dealt>, StoreError> {
    if buckets > 1 << 16 {
        return Ok(None);
    }
    let mut d = Dealt {
        piles: SPARE_PILES.take(1 << PILE_BITS),
        keys: Numbered::default(),
        splits: Numbered::default(),
        pairs: false,
    };
    // The bucket of the time of the row before (a rollup's rows come by hour).
    let mut last: Option<(u32, u64)> = None;
    let mut overflow = false;
    let bad = || ChError::Answer("user rows not as asked".into());
    let mut dealt = 0usize;
    let read = c.select_native_each(sql, |block| {
        for (rows, columns) in rowbinary::native_blocks(block).ok_or_else(bad)? {
            let (time, anon, key, split) = match &columns[..] {
                [h, a] => (h, a, None, None),
                [h, a, k] => (h, a, Some(k), None),
                [h, a, k, s] => (h, a, Some(k), Some(s)),
                _ => return Err(bad()),
            };
            d.pairs |= split.is_some();
            dealt += rows;
            if dealt > MAX_ROWS {
                overflow = true;
                return Err(ChError::Answer(
                    "more rows than the collector counts".into(),
                ));
            }
            let (Some(time), Some(anon)) = (time.numbers(4, rows), anon.numbers(8, rows)) else {
                return Err(bad());
            };
            for i in 0..rows {
                let t = u32::from_le_bytes(time[i * 4..i * 4 + 4].try_into().unwrap_or_default());
                let a = rowbinary::le_u64(anon, i);
                let person = persons.get(&a).copied().unwrap_or(a);
                let b = match last {
                    Some((last, b)) if last == t => b,
                    _ => {
                        let b = bucket(t.into()) as u64;
                        last = Some((t, b));
                        b
                    }
                };
                let k = d.keys.id(key.map_or(&[][..], |c| c.text(i)));
                let s = split.map_or(0, |c| d.splits.id(c.text(i)));
                overflow |= (k | s) >> TEXT_BITS != 0;
                let row = u128::from(person) << 64
                    | u128::from(u64::from(k) << 40 | u64::from(s) << 16 | b);
                d.piles[(person >> (64 - PILE_BITS)) as usize].push(row);
            }
        }
        Ok(())
    });
    if overflow {
        return Ok(None);
    }
    read?;
    Ok(Some(d))
}

impl Dealt {
    /// Counts the people that `keep` keeps, half of the piles on another thread.
    pub(super) fn count(mut self, keep: &(dyn Fn(u64) -> bool + Sync)) -> Counts {
        let (n, pairs) = (self.keys.texts.len(), self.pairs);
        let piles = std::mem::take(&mut self.piles);
        let ((mut all, mut piles), (other, second)) =
            in_two(piles, |half| tally(half, n, pairs, keep));
        all.add(other);
        piles.extend(second);
        SPARE_PILES.keep(piles);
        // Named, ordered and cut as the statements order and cut them.
        let mut per_key: Vec<Vec<(usize, u64)>> = vec![Vec::new(); n];
        for (kb, count) in std::mem::take(&mut all.by_bucket) {
            per_key[(kb >> 16) as usize].push(((kb & 0xffff) as usize, count));
        }
        let mut keys: Vec<KeyCount> = all
            .keys
            .iter()
            .zip(per_key)
            .enumerate()
            .filter(|(_, (&count, _))| count > 0)
            .map(|(k, (&count, b))| (self.keys.text(k as u64), count, b))
            .collect();
        keys.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        keys.truncate(KEYS);
        let mut pairs: Vec<(String, String, u64)> = all
            .pairs
            .into_iter()
            .map(|(pair, count)| {
                let (k, s) = (pair >> TEXT_BITS, pair & ((1 << TEXT_BITS) - 1));
                (self.keys.text(k), self.splits.text(s), count)
            })
            .collect();
        pairs.sort_by(|a, b| {
            b.2.cmp(&a.2)
                .then_with(|| a.0.cmp(&b.0))
                .then_with(|| a.1.cmp(&b.1))
        });
        pairs.truncate(KEYS);
        Counts {
            keys,
            total: all.people,
            pairs,
        }
    }
}

/// People counted over some of the piles.
#[derive(Default)]
struct Tally {
    /// By key (high bits) and bucket (low 16 bits).
    by_bucket: HashMap<u64, u64, foldhash::fast::RandomState>,
    /// By key number.
    keys: Vec<u64>,
    /// By key (high bits) and split (low [`TEXT_BITS`]).
    pairs: HashMap<u64, u64, foldhash::fast::RandomState>,
    people: u64,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        for (k, n) in other.by_bucket {
            *self.by_bucket.entry(k).or_default() += n;
        }
        for (mine, n) in self.keys.iter_mut().zip(other.keys) {
            *mine += n;
        }
        for (k, n) in other.pairs {
            *self.pairs.entry(k).or_default() += n;
        }
        self.people += other.people;
    }
}

/// Bits of a person's number, after those of their pile, that [`sort_pile`] deals by.
const SUB_PILE_BITS: u32 = 8;

/// A pile's rows into `sorted` in order: dealt by person once more, into 256 small piles (a
/// few people each, in the processor's cache), each then sorted. At 10M events (split by
/// country: 1.6M rows, about 6,000 a pile) sorting took 18% of the collector's CPU as one sort
/// of each pile.
fn sort_pile(pile: &[u128], sorted: &mut Vec<u128>) {
    let shift = 128 - PILE_BITS - SUB_PILE_BITS;
    let sub = |row: &u128| (row >> shift) as usize & ((1 << SUB_PILE_BITS) - 1);
    let ends: [u32; 1 << SUB_PILE_BITS] = crate::store::piles::deal(pile, sorted, sub);
    let mut start = pile.len();
    for &end in ends.iter().rev() {
        sorted[end as usize..start].sort_unstable();
        start = end as usize;
    }
}

/// Counts each person of `piles` that `keep` keeps once in all, once per key, per (key,
/// bucket) and, with `pairs`, per (key, split). A row is the person (high 64 bits), then the key, the split and
/// the bucket, so a pile sorted holds each person's rows together, by key, then split.
fn tally(
    piles: Vec<Vec<u128>>,
    keys: usize,
    pairs: bool,
    keep: &(dyn Fn(u64) -> bool + Sync),
) -> (Tally, Vec<Vec<u128>>) {
    let mut t = Tally {
        keys: vec![0; keys],
        ..Tally::default()
    };
    let (mut seen, mut sorted): (Vec<u64>, Vec<u128>) = (Vec::new(), Vec::new());
    for pile in &piles {
        sort_pile(pile, &mut sorted);
        for rows in sorted.chunk_by(|a, b| a >> 64 == b >> 64) {
            if !keep((rows[0] >> 64) as u64) {
                continue;
            }
            t.people += 1;
            seen.clear();
            let (mut last_key, mut last_pair) = (u64::MAX, u64::MAX);
            for &row in rows {
                let low = row as u64;
                let key = low >> 40;
                if key != last_key {
                    t.keys[key as usize] += 1;
                    last_key = key;
                }
                if pairs && low >> 16 != last_pair {
                    last_pair = low >> 16;
                    *t.pairs.entry(last_pair).or_default() += 1;
                }
                seen.push(key << 16 | (low & 0xffff));
            }
            // Without splits the rows are in (key, bucket) order already.
            if pairs {
                seen.sort_unstable();
            }
            seen.dedup();
            for &kb in &seen {
                *t.by_bucket.entry(kb).or_default() += 1;
            }
        }
    }
    (t, piles)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(person: u64, key: u64, split: u64, bucket: u64) -> u128 {
        u128::from(person) << 64 | u128::from(key << 40 | split << 16 | bucket)
    }

    /// A pile sorted through its small piles is the pile sorted, for people numbered as the
    /// store numbers them (hashes) and for numbers that share all their top bits; all of one
    /// pile, as [`read`] deals them.
    #[test]
    fn a_pile_sorts_as_one_sort_sorts_it() {
        let mut x: u64 = 99;
        let mut next = || {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            x
        };
        let people: Vec<u64> = (0..500).map(|_| next()).collect();
        let pile: Vec<u128> = (0..8_000)
            .map(|i| {
                let r = next();
                let person = if i % 4 == 0 {
                    r % 50
                } else {
                    people[r as usize % 500]
                };
                let person = person & (u64::MAX >> PILE_BITS) | 0x5a << (64 - PILE_BITS);
                row(person, r >> 60, r >> 56 & 3, r >> 50 & 7)
            })
            .collect();
        let mut sorted = vec![5, 6];
        sort_pile(&pile, &mut sorted);
        let mut want = pile.clone();
        want.sort_unstable();
        assert_eq!(sorted, want);
    }

    /// Each person once per key, per (key, bucket), per pair and in all, however many rows
    /// (hours, anonymous IDs) they have, whichever pile and order the rows came in.
    #[test]
    fn a_person_counts_once_per_key_bucket_and_pair() {
        let rows = [
            row(7, 0, 0, 3),
            row(7, 0, 1, 3),
            row(7, 0, 1, 4),
            row(7, 1, 0, 3),
            row(9, 0, 1, 3),
            row(9, 0, 1, 3),
        ];
        // Dealt by person, as `users` deals them, in any order within a pile.
        let piles = vec![
            rows.iter()
                .filter(|r| *r >> 64 == 7)
                .copied()
                .rev()
                .collect(),
            rows.iter().filter(|r| *r >> 64 == 9).copied().collect(),
        ];
        let (t, _) = tally(piles, 2, true, &|_| true);
        assert_eq!(t.people, 2);
        assert_eq!(t.keys, vec![2, 1]);
        let mut by_bucket: Vec<_> = t.by_bucket.into_iter().collect();
        by_bucket.sort();
        assert_eq!(by_bucket, vec![(3, 2), (4, 1), (1 << 16 | 3, 1)]);
        let mut pairs: Vec<_> = t.pairs.into_iter().collect();
        pairs.sort();
        assert_eq!(pairs, vec![(0, 1), (1, 2), (1 << TEXT_BITS, 1)]);
    }

    /// People that `keep` drops count nowhere.
    #[test]
    fn people_not_kept_count_nowhere() {
        let piles = vec![
            vec![row(5, 0, 0, 1)],
            vec![row(6, 1, 0, 1), row(6, 0, 0, 2)],
        ];
        let (t, _) = tally(piles, 2, false, &|person| person != 6);
        assert_eq!((t.people, t.keys), (1, vec![1, 0]));
        assert_eq!(t.by_bucket.into_iter().collect::<Vec<_>>(), vec![(1, 1)]);
    }

    /// Without splits, a person's rows of one key and bucket from several hours count once.
    #[test]
    fn without_pairs_repeated_rows_count_once() {
        let piles = vec![vec![row(5, 2, 0, 1), row(5, 2, 0, 1), row(5, 2, 0, 0)]];
        let (t, _) = tally(piles, 3, false, &|_| true);
        assert_eq!(t.keys, vec![0, 0, 1]);
        let mut by_bucket: Vec<_> = t.by_bucket.into_iter().collect();
        by_bucket.sort();
        assert_eq!(by_bucket, vec![(2 << 16, 1), (2 << 16 | 1, 1)]);
        assert!(t.pairs.is_empty());
    }

    #[test]
    fn texts_are_numbered_as_they_first_come() {
        let mut n = Numbered::default();
        let ids: Vec<u32> = ["b", "b", "a", "b", "", "a"]
            .iter()
            .map(|t| n.id(t.as_bytes()))
            .collect();
        assert_eq!(ids, vec![0, 0, 1, 0, 2, 1]);
        assert_eq!(n.text(1), "a");
    }
}
