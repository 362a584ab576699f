//! Funnels and retention: questions about the order of each person's events. A store only
//! finds the events that match a step ([`Store::step_events`]); the rules below run on those,
//! the same for every store, so SQLite and ClickHouse cannot disagree on them.

use super::{Field, Filter, Interval};
use std::collections::HashMap;

/// One step of a funnel, or the start or return event of retention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Any event at all.
    Any,
    /// An event of this name.
    Event(String),
    /// A page view of this path (`$pageview:/pricing`).
    Page(String),
}

impl Step {
    /// `NAME` or `$pageview:/PATH`.
    pub fn parse(s: &str) -> Result<Step, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("is empty: an event name, or $pageview:/path".into());
        }
        Ok(match s.strip_prefix("$pageview:") {
            Some(path) if path.starts_with('/') => Step::Page(path.to_owned()),
            Some(path) => return Err(format!("{path:?} is not a path starting with /")),
            None => Step::Event(s.to_owned()),
        })
    }

    /// Whether an event of this name and path is this step.
    pub fn matches(&self, name: &str, path: &str) -> bool {
        match self {
            Step::Any => true,
            Step::Event(n) => n == name,
            Step::Page(p) => name == "$pageview" && p == path,
        }
    }

    /// The event name this step needs, if one.
    pub fn name(&self) -> Option<&str> {
        match self {
            Step::Any => None,
            Step::Event(n) => Some(n),
            Step::Page(_) => Some("$pageview"),
        }
    }

    /// The event names any of `steps` needs; empty when one of them is any event.
    pub fn names(steps: &[Step]) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for s in steps {
            match s.name() {
                None => return Vec::new(),
                Some(n) if !names.iter().any(|x| x == n) => names.push(n.to_owned()),
                Some(_) => {}
            }
        }
        names
    }

    /// Which of `steps` an event of this name and path is, as bits (step `i` is bit `i`).
    pub fn mask(steps: &[Step], name: &str, path: &str) -> u32 {
        steps
            .iter()
            .enumerate()
            .filter(|(_, s)| s.matches(name, path))
            .fold(0, |m, (i, _)| m | 1 << i)
    }
}

/// The events of `[from_ms, to_ms)` that match one of `steps`, of the named sites (none:
/// every site), passing every filter (bots are left out by a filter, as in insights).
/// `Default` is the empty range with no steps: set the range and the steps, then what else.
#[derive(Debug, Clone, Default)]
pub struct StepQuery {
    pub from_ms: i64,
    pub to_ms: i64,
    pub steps: Vec<Step>,
    pub filters: Vec<Filter>,
    pub sites: Vec<String>,
    /// Each hit's value of this field, for a funnel's breakdown.
    pub breakdown: Option<Field>,
    /// Whether to name the people of the hits ([`StepEvents::people`]).
    pub people: bool,
    /// For [`retention`]: its periods. A store may then give, of each person, only their
    /// earliest start event and one return event in each period that has one: all that
    /// [`retention`] reads of them.
    pub periods: Option<Periods>,
}

/// The periods of a retention question: days or weeks in a time zone, as `starts`
/// ([`super::bucket_starts`]).
#[derive(Debug, Clone)]
pub struct Periods {
    pub starts: Vec<i64>,
    pub interval: Interval,
    pub tz: chrono_tz::Tz,
}

/// An event that is one or more steps: its person (a number that stands for one person
/// within one answer), its time, which steps it is (bits) and its breakdown value (a number
/// into [`StepEvents::keys`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepHit {
    pub person: u64,
    pub time_ms: i64,
    pub mask: u32,
    pub key: u32,
}

/// The events that are steps, and the breakdown values they name (`[None]` without one).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StepEvents {
    pub hits: Vec<StepHit>,
    pub keys: Vec<Option<String>>,
    /// With [`StepQuery::people`]: each hit's person number's answer id.
    pub people: HashMap<u64, String>,
}

/// Hits sorted by person, each person's in time order (ties by steps, then by the text of
/// their breakdown values, so that every store's numbering gives the same order); a person's
/// hits are one run ([`slice::chunk_by`]), no list of their own.
fn by_person(mut hits: Vec<StepHit>, keys: &[Option<String>]) -> Vec<StepHit> {
    sort_by_person(&mut hits, keys);
    hits
}

/// [`by_person`] in place.
fn sort_by_person(hits: &mut [StepHit], keys: &[Option<String>]) {
    let key = |h: &StepHit| keys.get(h.key as usize).and_then(|k| k.as_deref());
    // By person first, on the number alone (millions of hits, a dozen or so a person), then
    // each person's few. Unstable: hits equal in all of these are the same for the rules.
    hits.sort_unstable_by_key(|h| h.person);
    for one in hits.chunk_by_mut(same_person) {
        one.sort_unstable_by(|a, b| {
            (a.time_ms, a.mask)
                .cmp(&(b.time_ms, b.mask))
                .then_with(|| key(a).cmp(&key(b)))
        });
    }
}

/// Whether two sorted hits are of one person.
fn same_person(a: &StepHit, b: &StepHit) -> bool {
    a.person == b.person
}

/// Puts the hits of half of the people (by a mix of the person's number, so either half gets
/// about as many whatever the numbers are) before those of the others, in one pass; returns
/// where the second half starts. No person has hits in both.
fn halve_by_person(hits: &mut [StepHit]) -> usize {
    let first = |h: &StepHit| mixed(h.person) >> 63 == 0;
    let (mut i, mut j) = (0, hits.len());
    loop {
        while i < j && first(&hits[i]) {
            i += 1;
        }
        while i < j && !first(&hits[j - 1]) {
            j -= 1;
        }
        if i + 1 >= j {
            return i;
        }
        hits.swap(i, j - 1);
        i += 1;
        j -= 1;
    }
}

/// A person's number mixed, so that its top bits split any set of people evenly.
fn mixed(person: u64) -> u64 {
    person.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// Top bits of a person's number that pick their pile ([`Piles`]). People's numbers are
/// hashes (of an anonymous or a user ID), so these split any set of people evenly.
const PILE_BITS: u32 = 10;

/// Hits without breakdown values dealt into 1,024 piles by person (all of a person's hits in
/// one pile) as a store reads them, for [`funnel_piles`]: each pile is then taken apart by
/// person in the processor's cache (at 10M events, 6M hits, about 6,000 a pile), half of the
/// piles on another thread. Dealt while ClickHouse still sends the rest, this costs no time
/// after the answer and no second buffer (see [`in_halves`]). A hit is packed in 16 bytes
/// ([`PileHit`]), so its time counts from `from_ms` and fits 32 bits (49 days).
///
/// Piles are dealt by the top bits of the person's number as it is (not mixed first): most
/// people are their anonymous ID, and ClickHouse sends a step's rows in its order, so hits
/// that come one after another mostly go to the same pile or the next.
pub struct Piles {
    piles: Vec<Vec<PileHit>>,
    from_ms: i64,
}

/// A hit as one number: the person in the top 64 bits, then the time in ms from the piles'
/// start (32 bits), then the steps (32 bits).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
struct PileHit(u128);

impl Piles {
    /// Piles for hits from `from_ms` until 2^32 ms (49 days) later: the last funnel's, emptied,
    /// when no other funnel has them ([`SPARE_PILES`]).
    pub fn new(from_ms: i64) -> Piles {
        Piles {
            piles: SPARE_PILES.take(1 << PILE_BITS),
            from_ms,
        }
    }

    /// Deals one hit (of no breakdown value) whose time is `ms` after the piles' start.
    pub fn push(&mut self, person: u64, ms: u32, mask: u32) {
        let pile = (person >> (64 - PILE_BITS)) as usize;
        let hit = u128::from(person) << 64 | u128::from(ms) << 32 | u128::from(mask);
        self.piles[pile].push(PileHit(hit));
    }

    /// How many hits have been dealt.
    pub fn len(&self) -> usize {
        self.piles.iter().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.piles.iter().all(Vec::is_empty)
    }
}

/// The piles of the last funnel, emptied, for the next one (up to 256 MiB of them).
static SPARE_PILES: super::piles::Spare<PileHit> = super::piles::Spare::new(256 << 20);

/// Bits of a person's number, after those of their pile, that [`each_person`] deals by.
const SUB_PILE_BITS: u32 = 11;

/// Each person's hits in a pile, one person at a time and in no order within: the pile
/// dealt by person once more into `dealt`, into 2,048 small piles (in the processor's cache;
/// at 10M events about three hits each, mostly one person's), and a small pile of several
/// people sorted by person.
fn each_person(pile: &[PileHit], dealt: &mut Vec<PileHit>, mut each: impl FnMut(&[PileHit])) {
    let shift = 64 - PILE_BITS - SUB_PILE_BITS;
    let sub = |h: &PileHit| (h.person() >> shift) as usize & ((1 << SUB_PILE_BITS) - 1);
    let ends: [u32; 1 << SUB_PILE_BITS] = super::piles::deal(pile, dealt, sub);
    let mut start = pile.len();
    for &end in ends.iter().rev() {
        let small = &mut dealt[end as usize..start];
        start = end as usize;
        let Some(first) = small.first() else {
            continue;
        };
        let person = first.person();
        if small.iter().all(|h| h.person() == person) {
            each(small);
        } else {
            small.sort_unstable_by_key(PileHit::person);
            small
                .chunk_by(|a, b| a.person() == b.person())
                .for_each(&mut each);
        }
    }
}

/// What the funnel's walk reads of a hit.
trait Hit {
    fn person(&self) -> u64;
    fn time_ms(&self) -> i64;
    fn mask(&self) -> u32;
    fn key(&self) -> u32;
}

impl Hit for StepHit {
    fn person(&self) -> u64 {
        self.person
    }
    fn time_ms(&self) -> i64 {
        self.time_ms
    }
    fn mask(&self) -> u32 {
        self.mask
    }
    fn key(&self) -> u32 {
        self.key
    }
}

/// Times in ms from the piles' start (the walk's rules are moved by as much).
impl Hit for PileHit {
    fn person(&self) -> u64 {
        (self.0 >> 64) as u64
    }
    fn time_ms(&self) -> i64 {
        i64::from((self.0 >> 32) as u32)
    }
    fn mask(&self) -> u32 {
        self.0 as u32
    }
    fn key(&self) -> u32 {
        0
    }
}

/// Below this many hits a question's people are not split between two threads
/// ([`in_halves`]).
const PARALLEL_HITS: usize = 100_000;

/// Sorts the hits by person ([`sort_by_person`]) and runs `f` over them: in two halves of the
/// people ([`halve_by_person`]), one on another thread, once there are enough hits to be worth
/// it (the rules never read two people together). At 10M events on ClickHouse (6.4M hits),
/// one sort of all took 267 ms, the two halves at once 133 ms each. (Dealing the hits into
/// 2,048 piles to sort each in the cache was slower: a second buffer of 150 MB costs 75 ms in
/// page faults alone.) The results come first half first.
fn in_halves<R: Send>(
    hits: &mut [StepHit],
    keys: &[Option<String>],
    parallel_from: usize,
    f: impl Fn(&[StepHit]) -> R + Sync,
) -> Vec<R> {
    let sorted = |hits: &mut [StepHit]| {
        sort_by_person(hits, keys);
        f(hits)
    };
    if hits.len() < parallel_from {
        return vec![sorted(hits)];
    }
    let mid = halve_by_person(hits);
    let (a, b) = hits.split_at_mut(mid);
    std::thread::scope(|s| {
        let other = s.spawn(|| sorted(a));
        let second = sorted(b);
        // A panic on the other thread is this call's panic.
        let first = other
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e));
        vec![first, second]
    })
}

#[derive(Debug, Clone, PartialEq)]
pub struct FunnelStep {
    /// People who did steps 1..=k in order within the window.
    pub count: u64,
    /// The median time from the step before to this one, over the people who reached it
    /// (their attempt that went furthest, the earliest of those); `None` for the first step
    /// and steps nobody reached.
    pub median_seconds: Option<f64>,
}

/// A funnel's steps, and with a breakdown each value's counts (people counted under the
/// value of the step 1 event their counted attempt began with), largest first, at most 20.
#[derive(Debug, Clone, PartialEq)]
pub struct Funnel {
    pub steps: Vec<FunnelStep>,
    pub breakdown: Vec<(Option<String>, Vec<u64>)>,
    /// Each person who did step 1, with how many steps they reached.
    pub reached: Vec<(u64, usize)>,
}

/// A funnel over hits of `steps.len()` steps in `[from_ms, to_ms + window_ms]`: a person
/// counts at step k when, from an occurrence of step 1 in `[from_ms, to_ms)`, they did steps
/// 2..=k each strictly later than the one before, all at most `window_ms` after step 1. Every
/// occurrence of step 1 is tried; the one that goes furthest counts. Half of the people are
/// sorted and walked on another thread ([`in_halves`]; at 10M events on ClickHouse, 6.4M
/// hits: 335 ms on one thread, 183 ms on two).
pub fn funnel(
    events: StepEvents,
    steps: usize,
    from_ms: i64,
    to_ms: i64,
    window_ms: i64,
) -> Funnel {
    let rules = FunnelRules {
        steps,
        from_ms,
        to_ms,
        window_ms,
    };
    funnel_with(events, &rules, PARALLEL_HITS)
}

/// [`funnel`], on two threads from `parallel_from` hits.
fn funnel_with(events: StepEvents, rules: &FunnelRules, parallel_from: usize) -> Funnel {
    let StepEvents { mut hits, keys, .. } = events;
    let parts = in_halves(&mut hits, &keys, parallel_from, |half| {
        let mut found = Walked::new(rules.steps, keys.len(), true);
        rules.walk(half, &mut found);
        found
    });
    rules.answer(parts, keys)
}

/// [`funnel`] over hits without breakdown values dealt into [`Piles`]: each pile taken apart
/// by person ([`each_person`]), each person's times put in a list for each step
/// ([`StepTimes`]) and walked ([`FunnelRules::walk_times`]), half of the piles on another
/// thread; the piles are then kept for the next funnel ([`SPARE_PILES`]). Without
/// [`Funnel::reached`] (which only a question of people reads): at 10M events, the list of
/// half a million people cost 17 ms of CPU of the 135 ms after the dealing.
pub fn funnel_piles(
    piles: Piles,
    steps: usize,
    from_ms: i64,
    to_ms: i64,
    window_ms: i64,
) -> Funnel {
    // The rules moved to the piles' times.
    let rules = FunnelRules {
        steps,
        from_ms: from_ms - piles.from_ms,
        to_ms: to_ms - piles.from_ms,
        window_ms,
    };
    let walk = |piles: Vec<Vec<PileHit>>| {
        let mut found = Walked::new(steps, 1, false);
        let (mut dealt, mut lists) = (Vec::new(), StepTimes::new(steps));
        let (mut times, mut best) = (Vec::with_capacity(steps), Vec::with_capacity(steps));
        for pile in &piles {
            each_person(pile, &mut dealt, |hits| {
                lists.fill(hits);
                rules.walk_times(&mut lists, &mut times, &mut best);
                found.record(hits[0].person(), 0, &best);
            });
        }
        (found, piles)
    };
    let mut first = piles.piles;
    let second = first.split_off(first.len() / 2);
    let parts = std::thread::scope(|s| {
        let other = s.spawn(|| walk(first));
        let second = walk(second);
        let first = other
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e));
        [first, second]
    });
    let [(a, mut piles), (b, second)] = parts;
    piles.extend(second);
    SPARE_PILES.keep(piles);
    rules.answer([a, b], vec![None])
}

/// The rules of one funnel question (see [`funnel`]).
struct FunnelRules {
    steps: usize,
    from_ms: i64,
    to_ms: i64,
    window_ms: i64,
}

/// What a funnel's walk found over some people: the count at each step, the times between
/// steps, each breakdown value's counts and each person's furthest step.
struct Walked {
    keep_people: bool,
    counts: Vec<u64>,
    gaps: Vec<Vec<i64>>,
    per_key: Vec<Vec<u64>>,
    people: Vec<(u64, usize)>,
}

impl Walked {
    fn new(steps: usize, keys: usize, keep_people: bool) -> Walked {
        Walked {
            keep_people,
            counts: vec![0; steps],
            gaps: vec![Vec::new(); steps],
            per_key: vec![vec![0; steps]; keys.max(1)],
            people: Vec::new(),
        }
    }

    /// Counts a person whose counted attempt began with a hit of breakdown value `key` and
    /// reached its steps at `times`.
    fn record(&mut self, person: u64, key: u32, times: &[i64]) {
        let reached = times.len();
        if reached > 0 && self.keep_people {
            self.people.push((person, reached));
        }
        for k in 0..reached {
            self.counts[k] += 1;
            self.per_key[key as usize][k] += 1;
            if k > 0 {
                self.gaps[k].push(times[k] - times[k - 1]);
            }
        }
    }

    /// Adds what another walk found, over other people.
    fn add(&mut self, other: Walked) {
        for (a, b) in self.counts.iter_mut().zip(other.counts) {
            *a += b;
        }
        for (a, b) in self.gaps.iter_mut().zip(other.gaps) {
            a.extend(b);
        }
        for (a, b) in self.per_key.iter_mut().zip(other.per_key) {
            for (x, y) in a.iter_mut().zip(b) {
                *x += y;
            }
        }
        self.people.extend(other.people);
    }
}

impl FunnelRules {
    /// The answer from what the walks over some people each found (together: everybody) and
    /// the breakdown values their hits' keys name.
    fn answer(&self, parts: impl IntoIterator<Item = Walked>, keys: Vec<Option<String>>) -> Funnel {
        let mut all = Walked::new(self.steps, keys.len(), true);
        for part in parts {
            all.add(part);
        }
        let steps = all
            .counts
            .into_iter()
            .zip(all.gaps)
            .map(|(count, mut gaps)| FunnelStep {
                count,
                median_seconds: median(&mut gaps).map(|ms| ms / 1000.0),
            })
            .collect();
        Funnel {
            steps,
            breakdown: top_values(keys.into_iter().zip(all.per_key).collect()),
            reached: all.people,
        }
    }

    /// The walk over hits sorted by person ([`by_person`]), what it finds added to `found`.
    fn walk<H: Hit>(&self, hits: &[H], found: &mut Walked) {
        let &FunnelRules {
            steps,
            from_ms,
            to_ms,
            window_ms,
        } = self;
        // The times of the attempt being tried, and of the best one so far (kept from person
        // to person: no allocation for each).
        let (mut times, mut best) = (Vec::with_capacity(steps), Vec::with_capacity(steps));
        for events in hits.chunk_by(|a, b| a.person() == b.person()) {
            // The furthest step reached (`best.len()`) and the key of that attempt's first.
            best.clear();
            let mut key = 0;
            for (i, first) in events.iter().enumerate() {
                if first.mask() & 1 == 0 || first.time_ms() < from_ms || first.time_ms() >= to_ms {
                    continue;
                }
                // Each next step at its earliest: no later choice can reach further.
                times.clear();
                times.push(first.time_ms());
                let mut last = first.time_ms();
                for e in &events[i + 1..] {
                    if times.len() == steps || e.time_ms() - first.time_ms() > window_ms {
                        break;
                    }
                    if e.time_ms() > last && e.mask() & (1 << times.len()) != 0 {
                        times.push(e.time_ms());
                        last = e.time_ms();
                    }
                }
                if times.len() > best.len() {
                    std::mem::swap(&mut times, &mut best);
                    key = first.key();
                    if best.len() == steps {
                        break;
                    }
                }
            }
            found.record(events[0].person(), key, &best);
        }
    }

    /// [`FunnelRules::walk`] over one person's hits as each step's times: in `best`, the
    /// times of the attempt that went furthest (the earliest of those). As an attempt's first
    /// step comes later, its earliest next steps can only come later too, so each step's list
    /// is read once from its start for all attempts together.
    fn walk_times(&self, lists: &mut StepTimes, times: &mut Vec<i64>, best: &mut Vec<i64>) {
        let &FunnelRules {
            steps,
            from_ms,
            to_ms,
            window_ms,
        } = self;
        best.clear();
        let StepTimes { times: lists, read } = lists;
        let Some((firsts, rest)) = lists.split_first() else {
            return;
        };
        read.clear();
        read.resize(rest.len(), 0);
        for &first in firsts {
            let first = i64::from(first);
            if first < from_ms {
                continue;
            }
            if first >= to_ms {
                break;
            }
            times.clear();
            times.push(first);
            let mut last = first;
            for (list, at) in rest.iter().zip(read.iter_mut()) {
                while list.get(*at).is_some_and(|&t| i64::from(t) <= last) {
                    *at += 1;
                }
                match list.get(*at) {
                    Some(&t) if i64::from(t) - first <= window_ms => {
                        last = i64::from(t);
                        times.push(last);
                    }
                    _ => break,
                }
            }
            if times.len() > best.len() {
                std::mem::swap(times, best);
                if best.len() == steps {
                    break;
                }
            }
        }
    }
}

/// One person's times in ms from the piles' start, step by step, each step's ascending (a
/// hit that is several steps is in each of their lists), and how far [`FunnelRules::walk_times`]
/// has read each later step's. Kept from person to person: no allocation for each.
struct StepTimes {
    times: Vec<Vec<u32>>,
    read: Vec<usize>,
}

impl StepTimes {
    fn new(steps: usize) -> StepTimes {
        StepTimes {
            times: vec![Vec::new(); steps],
            read: Vec::with_capacity(steps),
        }
    }

    /// The times of one person's hits (in any order).
    fn fill(&mut self, hits: &[PileHit]) {
        for list in &mut self.times {
            list.clear();
        }
        for h in hits {
            let time = h.time_ms() as u32;
            let mut mask = h.mask();
            while mask != 0 {
                if let Some(list) = self.times.get_mut(mask.trailing_zeros() as usize) {
                    list.push(time);
                }
                mask &= mask - 1;
            }
        }
        for list in &mut self.times {
            list.sort_unstable();
        }
    }
}

/// A breakdown's values that somebody started with, largest first (ties by value), at most 20.
pub fn top_values(mut values: Vec<(Option<String>, Vec<u64>)>) -> Vec<(Option<String>, Vec<u64>)> {
    values.retain(|(_, c)| c[0] > 0);
    values.sort_by(|a, b| b.1[0].cmp(&a.1[0]).then_with(|| a.0.cmp(&b.0)));
    values.truncate(20);
    values
}

/// The median of some times in ms (the mean of the middle two of an even count). Selected,
/// not sorted: at 10M events a funnel's half a million gaps a step sorted in 25 ms.
fn median(v: &mut [i64]) -> Option<f64> {
    let n = v.len();
    if n == 0 {
        return None;
    }
    let (below, &mut high, _) = v.select_nth_unstable(n / 2);
    // Of an even count, the low middle is the largest of those below the high one.
    let low = if n.is_multiple_of(2) {
        below.iter().copied().max().unwrap_or(high)
    } else {
        high
    };
    Some(middle(low, high))
}

/// A median from the middle two of some sorted times in ms (one and the same of an odd count).
pub fn middle(low: i64, high: i64) -> f64 {
    if low == high {
        low as f64
    } else {
        (low + high) as f64 / 2.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cohort {
    pub start_ms: i64,
    /// `values[0]`: the cohort's size; `values[k]`: its people who returned in period k.
    pub values: Vec<u64>,
}

/// Retention over hits of two steps (bit 0 the start event, bit 1 the return event) in the
/// periods that begin at `starts` (the last one ends at the range's end): each person joins
/// the cohort of the period of their first start event, and counts in period k of it when
/// they did the return event in the k-th period after. Every cohort has a value for each
/// period up to the range's end.
pub fn retention(events: StepEvents, starts: &[i64]) -> Vec<Cohort> {
    let period = |t: i64| starts.partition_point(|&s| s <= t).saturating_sub(1);
    let mut cohorts: Vec<Cohort> = starts
        .iter()
        .enumerate()
        .map(|(i, &start_ms)| Cohort {
            start_ms,
            values: vec![0; starts.len() - i],
        })
        .collect();
    let mut returned: Vec<bool> = Vec::new();
    let hits = by_person(events.hits, &events.keys);
    for events in hits.chunk_by(same_person) {
        let Some(first) = events.iter().find(|e| e.mask & 1 != 0) else {
            continue;
        };
        let c = period(first.time_ms);
        let cohort = &mut cohorts[c];
        cohort.values[0] += 1;
        returned.clear();
        returned.resize(cohort.values.len(), false);
        for e in events.iter().filter(|e| e.mask & 2 != 0) {
            let k = period(e.time_ms).saturating_sub(c);
            if e.time_ms > first.time_ms && k > 0 && !returned[k] {
                returned[k] = true;
                cohort.values[k] += 1;
            }
        }
    }
    cohorts
}

/// The events that user paths walk: of `[from_ms, to_ms)`, the sites and the filters, page
/// views only with `pages_only`.
#[derive(Debug, Clone)]
pub struct PathQuery {
    pub from_ms: i64,
    pub to_ms: i64,
    pub pages_only: bool,
    pub filters: Vec<Filter>,
    pub sites: Vec<String>,
}

/// An event of a user path: its session's number (within one answer), its time, and its
/// label as a number into the labels that come with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathEvent {
    pub session: u64,
    pub time_ms: i64,
    pub label: u32,
}

/// A label: the event's name and, for page views, its path (`""` for other events).
pub type Label = (String, String);

/// How a label reads in an answer: a page view's path, or an event's name.
pub fn label_text((name, path): &Label) -> String {
    if name == "$pageview" {
        path.clone()
    } else {
        name.clone()
    }
}

/// Walk forwards from the start or backwards to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    After,
    Before,
}

/// Where a session ended before the path was `depth` deep, or (backwards) began.
pub const END: &str = "(end)";
pub const BEGIN: &str = "(start)";

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Paths {
    /// Sessions with the start event.
    pub sessions: u64,
    /// The most common paths (the start first, then each step away from it), with how many
    /// sessions took each; at most 50.
    pub paths: Vec<(Vec<String>, u64)>,
    /// For the flow chart: at each depth, how many sessions were at each label.
    pub nodes: Vec<Vec<(String, u64)>>,
    /// Sessions that went from a label at one depth (`.0`) to a label at the next.
    pub links: Vec<(usize, String, String, u64)>,
}

/// User paths: in each session, from its first event that is `start`, the next `depth` events
/// (or, backwards, the `depth` before it), with a page reloaded or an event repeated in a row
/// counted once. A path that runs out of session ends with [`END`] (or [`BEGIN`]).
pub fn paths(
    events: Vec<PathEvent>,
    labels: &[Label],
    start: &Step,
    direction: Direction,
    depth: usize,
) -> Paths {
    let text: Vec<String> = labels.iter().map(label_text).collect();
    let mut events = events;
    // Ties by text, then by label, so that copies of an event are next to each other.
    events.sort_unstable_by(|a, b| {
        (a.session, a.time_ms)
            .cmp(&(b.session, b.time_ms))
            .then_with(|| text[a.label as usize].cmp(&text[b.label as usize]))
            .then_with(|| a.label.cmp(&b.label))
    });
    let mut counts = PathCounts::default();
    let is_start = |l: u32| {
        let (name, path) = &labels[l as usize];
        start.matches(name, path)
    };
    let mut sessions = 0;
    let (mut walk, mut path) = (Vec::new(), Vec::new());
    for session in events.chunk_by(|a, b| a.session == b.session) {
        walk.clear();
        walk.extend(session.iter().map(|e| e.label));
        if session_path(&mut walk, is_start, (direction, depth), &mut path) {
            sessions += 1;
            count_path(&mut counts, &path);
        }
    }
    summarize_numbered(sessions, counts, &text, 0, (direction, depth))
}

/// Where a path of label numbers ran out of session: after the last step, before the first.
pub const MARKS: (u32, u32) = (u32::MAX, u32::MAX - 1);

/// The answer of [`paths`] from `counts` of paths of label numbers, each number `first + i`
/// the label of text `texts[i]`, and [`MARKS`]; any other number (none can happen) reads as
/// where the path ran out.
pub fn summarize_numbered(
    sessions: u64,
    counts: PathCounts,
    texts: &[String],
    first: u32,
    (direction, depth): (Direction, usize),
) -> Paths {
    let ran_out = match direction {
        Direction::After => END,
        Direction::Before => BEGIN,
    };
    let name = |l: u32| match l {
        l if l == MARKS.0 => END.to_owned(),
        l if l == MARKS.1 => BEGIN.to_owned(),
        l => l
            .checked_sub(first)
            .and_then(|i| texts.get(i as usize))
            .map_or_else(|| ran_out.to_owned(), String::clone),
    };
    let counts = counts
        .into_iter()
        .map(|(path, n)| (path.into_iter().map(name).collect(), n))
        .collect();
    summarize_paths(sessions, counts, depth)
}

/// The path of one session whose labels come in order (`paths`' order): `labels` lose their
/// repeats in a row, and `path` gets the path from the first label that `is_start` on,
/// `depth` steps away from it in `direction`, then the mark of [`MARKS`] (the end after, the
/// beginning before) if the session ran out first. False for a session without the start (`path` then left as it was).
/// Both vectors are the caller's, kept from session to session.
pub fn session_path(
    labels: &mut Vec<u32>,
    is_start: impl Fn(u32) -> bool,
    (direction, depth): (Direction, usize),
    path: &mut Vec<u32>,
) -> bool {
    labels.dedup();
    let Some(at) = labels.iter().position(|&l| is_start(l)) else {
        return false;
    };
    path.clear();
    let mark = match direction {
        Direction::After => {
            path.extend(labels[at..].iter().take(depth + 1));
            MARKS.0
        }
        Direction::Before => {
            path.extend(labels[..=at].iter().rev().take(depth + 1));
            MARKS.1
        }
    };
    if path.len() <= depth {
        path.push(mark);
    }
    true
}

/// Counts one more session on `path` (a new entry only for a path not seen yet).
pub fn count_path(counts: &mut PathCounts, path: &[u32]) {
    match counts.get_mut(path) {
        Some(n) => *n += 1,
        None => {
            counts.insert(path.to_vec(), 1);
        }
    }
}

/// Sessions by path (label numbers), hashed fast: looked up once per session.
pub type PathCounts = HashMap<Vec<u32>, u64, foldhash::fast::RandomState>;

/// The answer of [`paths`] from the paths the sessions took, as the texts of their labels
/// with how many sessions took each (two labels of one text, such as an event named like a
/// page, stay two entries), out of `sessions` sessions with the start event.
pub fn summarize_paths(sessions: u64, counts: Vec<(Vec<String>, u64)>, depth: usize) -> Paths {
    let mut nodes: Vec<HashMap<String, u64>> = vec![HashMap::new(); depth + 2];
    let mut links: HashMap<(usize, String, String), u64> = HashMap::new();
    let mut all: Vec<(Vec<String>, u64)> = Vec::with_capacity(counts.len());
    for (path, n) in counts {
        for (d, l) in path.iter().enumerate() {
            *nodes[d].entry(l.clone()).or_default() += n;
            if let Some(next) = path.get(d + 1) {
                *links.entry((d, l.clone(), next.clone())).or_default() += n;
            }
        }
        all.push((path, n));
    }
    all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    all.truncate(50);
    let by_count = |a: &(String, u64), b: &(String, u64)| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0));
    let nodes: Vec<Vec<(String, u64)>> = nodes
        .into_iter()
        .filter(|n| !n.is_empty())
        .map(|n| {
            let mut n: Vec<(String, u64)> = n.into_iter().collect();
            n.sort_by(by_count);
            n
        })
        .collect();
    let mut links: Vec<(usize, String, String, u64)> = links
        .into_iter()
        .map(|((d, a, b), n)| (d, a, b, n))
        .collect();
    links.sort_by(|a, b| (a.0, b.3, &a.1, &a.2).cmp(&(b.0, a.3, &b.1, &b.2)));
    Paths {
        sessions,
        paths: all,
        nodes,
        links,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(person: u64, time_ms: i64, mask: u32) -> StepHit {
        StepHit {
            person,
            time_ms,
            mask,
            key: 0,
        }
    }

    fn events(hits: Vec<StepHit>) -> StepEvents {
        StepEvents {
            hits,
            keys: vec![None],
            people: HashMap::new(),
        }
    }

    /// Random hits of a few thousand people: steps 1 to 3, times within a day, breakdown
    /// keys 0 to 3 (a small generator of its own, so the test needs no seed from outside).
    fn random_hits(n: usize) -> StepEvents {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move |m: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % m
        };
        let hits = (0..n)
            .map(|_| StepHit {
                person: next(3000) * 0x1_0000_0001,
                time_ms: next(86_400_000) as i64,
                mask: 1 << next(3),
                key: next(4) as u32,
            })
            .collect();
        let keys = vec![None, Some("a".into()), Some("b".into()), Some("c".into())];
        StepEvents {
            hits,
            keys,
            people: HashMap::new(),
        }
    }

    #[test]
    fn halving_puts_each_person_on_one_side_and_keeps_every_hit() {
        let mut hits = random_hits(20_000).hits;
        let mut before = hits.clone();
        let mid = halve_by_person(&mut hits);
        let (a, b) = hits.split_at(mid);
        let left: std::collections::HashSet<u64> = a.iter().map(|h| h.person).collect();
        assert!(b.iter().all(|h| !left.contains(&h.person)));
        // Both halves hold people (about half each).
        assert!(mid > 7_000 && mid < 13_000, "{mid} of 20000");
        let key = |h: &StepHit| (h.person, h.time_ms, h.mask, h.key);
        before.sort_unstable_by_key(key);
        hits.sort_unstable_by_key(key);
        assert_eq!(before, hits);
    }

    #[test]
    fn two_threads_find_the_funnel_that_one_finds() {
        let rules = FunnelRules {
            steps: 3,
            from_ms: 3_600_000,
            to_ms: 80_000_000,
            window_ms: 7_200_000,
        };
        let mut one = funnel_with(random_hits(30_000), &rules, usize::MAX);
        let mut two = funnel_with(random_hits(30_000), &rules, 0);
        assert!(one.steps[2].count > 100, "{:?}", one.steps);
        one.reached.sort_unstable();
        two.reached.sort_unstable();
        assert_eq!(one, two);
    }

    #[test]
    fn piles_find_the_funnel_that_the_hits_in_one_list_find() {
        // Random hits with no breakdown values, some times at the range's start (0 in the
        // piles) and some hours after its end, a window edge hit exactly: the piles' walk
        // (times moved to their start, each pile sorted by itself) answers as the list's.
        let from_ms = 1_700_000_000_000;
        let (to_ms, window_ms) = (from_ms + 80_000_000, 7_200_000);
        // People numbered as the store numbers them (hashes), and numbers that all share their
        // top bits (one pile, one small pile).
        for (n, people, hashed) in [
            (0, 1, true),
            (50, 3, true),
            (30_000, 3000, true),
            (30_000, 3000, false),
        ] {
            let mut hits = random_hits(n).hits;
            for (i, h) in hits.iter_mut().enumerate() {
                h.person %= people * 0x1_0000_0001;
                if hashed {
                    h.person = mixed(h.person);
                }
                h.time_ms = from_ms + if i % 97 == 0 { 0 } else { h.time_ms };
                h.key = 0;
            }
            // One person: step 1 at the start, step 2 exactly a window later.
            hits.push(hit(7, from_ms, 1));
            hits.push(hit(7, from_ms + window_ms, 2));
            let mut piles = Piles::new(from_ms);
            for h in &hits {
                piles.push(h.person, (h.time_ms - from_ms) as u32, h.mask);
            }
            assert_eq!(piles.len(), hits.len());
            let want = funnel(events(hits), 3, from_ms, to_ms, window_ms);
            let got = funnel_piles(piles, 3, from_ms, to_ms, window_ms);
            assert!(want.steps[1].count > 0, "{:?}", want.steps);
            assert_eq!(got.steps, want.steps, "{n} hits");
            assert_eq!(got.breakdown, want.breakdown, "{n} hits");
        }
    }

    #[test]
    fn a_pile_gives_each_persons_hits_once_and_whole() {
        let mut x: u64 = 0x9e37_79b9;
        let mut next = || {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            x
        };
        // People as the store numbers them (hashes: about one a small pile) and people that
        // share their top bits (all in one small pile); ties in time, hits the same in all.
        let spread: Vec<u64> = (0..300).map(|_| next()).collect();
        let pile: Vec<PileHit> = (0..6_000u128)
            .map(|i| {
                let r = next();
                let person = if i % 3 == 0 {
                    (r >> 40) % 40 * 0x0123_4567
                } else {
                    spread[(r >> 40) as usize % spread.len()]
                };
                PileHit(u128::from(person) << 64 | (i % 50) << 32 | (i % 3))
            })
            .collect();
        let mut dealt = vec![PileHit(5); 3];
        let mut seen = std::collections::HashSet::new();
        let mut given = Vec::new();
        each_person(&pile, &mut dealt, |hits| {
            let person = hits[0].person();
            assert!(
                hits.iter().all(|h| h.person() == person),
                "two people at once"
            );
            assert!(seen.insert(person), "a person given twice");
            given.extend_from_slice(hits);
        });
        assert_eq!(seen.len(), 340);
        let mut want = pile.clone();
        want.sort_unstable();
        given.sort_unstable();
        assert_eq!(given, want);
    }

    #[test]
    fn a_persons_step_lists_are_walked_as_their_sorted_hits() {
        // One person's hits in random order, some several steps at once, many ties: the walk
        // over each step's times finds what the walk over the sorted hits finds.
        let mut x: u64 = 12_345;
        let mut next = |n: u64| {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (x >> 33) % n
        };
        for round in 0..2_000 {
            let steps = 2 + round % 4;
            let rules = FunnelRules {
                steps,
                from_ms: 10,
                to_ms: 60,
                window_ms: next(40) as i64,
            };
            let hits: Vec<PileHit> = (0..next(12))
                .map(|_| {
                    let mask = 1 + next((1 << steps) - 1) as u128;
                    PileHit(7 << 64 | u128::from(next(80) as u32) << 32 | mask)
                })
                .collect();
            let mut sorted = hits.clone();
            sorted.sort_unstable();
            let mut want = Walked::new(steps, 1, true);
            rules.walk(&sorted, &mut want);
            let mut lists = StepTimes::new(steps);
            let (mut times, mut best) = (Vec::new(), Vec::new());
            lists.fill(&hits);
            rules.walk_times(&mut lists, &mut times, &mut best);
            let mut got = Walked::new(steps, 1, true);
            got.record(7, 0, &best);
            assert_eq!(
                (got.counts, got.gaps, got.people),
                (want.counts, want.gaps, want.people),
                "{sorted:?}"
            );
        }
    }

    #[test]
    fn the_median_is_the_middle_or_the_mean_of_the_middle_two() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [7]), Some(7.0));
        assert_eq!(median(&mut [9, 1, 5]), Some(5.0));
        assert_eq!(median(&mut [4, 1, 3, 2]), Some(2.5));
        assert_eq!(median(&mut [5, 5, 1, 9]), Some(5.0));
        let mut many: Vec<i64> = (0..1001).rev().collect();
        assert_eq!(median(&mut many), Some(500.0));
    }

    #[test]
    fn a_later_attempt_can_go_further_and_the_window_edge_counts() {
        // Person 0: step 1 at 0 (then nothing in time), step 1 again at 100, 2 at 150, 3 at
        // 200 = exactly the window after 100.
        let hits = vec![
            hit(0, 0, 1),
            hit(0, 100, 1),
            hit(0, 150, 2),
            hit(0, 200, 4),
            // Person 1: steps out of order, then 2 at the same ms as 1 (not after it).
            hit(1, 10, 2),
            hit(1, 20, 1),
            hit(1, 20, 2),
            hit(1, 400, 2),
        ];
        let got = funnel(events(hits), 3, 0, 1000, 100).steps;
        let counts: Vec<u64> = got.iter().map(|s| s.count).collect();
        assert_eq!(counts, [2, 1, 1]);
        assert_eq!(got[1].median_seconds, Some(0.05));
        assert_eq!(got[0].median_seconds, None);
    }

    #[test]
    fn step_one_must_be_in_the_range_and_one_event_is_one_step() {
        // Step 1 before the range; one event that is steps 1 and 2 at once.
        let hits = vec![hit(0, -5, 1), hit(0, 1, 2), hit(1, 3, 3), hit(1, 9, 3)];
        let counts: Vec<u64> = funnel(events(hits), 2, 0, 10, 50)
            .steps
            .iter()
            .map(|s| s.count)
            .collect();
        assert_eq!(counts, [1, 1]);
    }

    #[test]
    fn a_breakdown_counts_each_person_under_the_attempt_that_counted() {
        let keyed = |person, time_ms, mask, key| StepHit {
            person,
            time_ms,
            mask,
            key,
        };
        // Person 0 starts on "a" without going on, then on "b" and converts: counted as b.
        // Person 1 starts on "a" twice and converts the first time.
        let hits = vec![
            keyed(0, 1, 1, 1),
            keyed(0, 5, 1, 2),
            keyed(0, 6, 2, 0),
            keyed(1, 1, 1, 1),
            keyed(1, 2, 2, 0),
            keyed(1, 3, 1, 1),
        ];
        let keys = vec![None, Some("a".to_owned()), Some("b".to_owned())];
        let got = funnel(
            StepEvents {
                hits,
                keys,
                people: HashMap::new(),
            },
            2,
            0,
            10,
            3,
        );
        assert_eq!(got.reached, [(0, 2), (1, 2)]);
        assert_eq!(
            got.breakdown,
            [
                (Some("a".to_owned()), vec![1, 1]),
                (Some("b".to_owned()), vec![1, 1])
            ]
        );
    }

    #[test]
    fn cohorts_count_returns_in_later_periods_only() {
        let starts = [0, 10, 20, 30];
        let hits = vec![
            // Person 0 starts in period 0, returns in 0 (not counted), 2 and 2 again.
            hit(0, 1, 1),
            hit(0, 5, 2),
            hit(0, 21, 2),
            hit(0, 25, 2),
            // Person 1 returns before starting (not counted), starts in period 1, returns in 3.
            hit(1, 2, 2),
            hit(1, 12, 3),
            hit(1, 35, 2),
        ];
        let got = retention(events(hits), &starts);
        assert_eq!(got[0].values, [1, 0, 1, 0]);
        assert_eq!(got[1].values, [1, 0, 1]);
        assert_eq!(got[2].values, [0, 0]);
        assert_eq!(got[3].values, [0]);
    }

    #[test]
    fn paths_walk_from_the_first_start_and_collapse_repeats() {
        let labels: Vec<Label> = [("$pageview", "/"), ("$pageview", "/p"), ("buy", "")]
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        let ev = |session, time_ms, label| PathEvent {
            session,
            time_ms,
            label,
        };
        let events = vec![
            // Session 0: / /p /p buy / ; session 1: /p buy ; session 2: no start.
            ev(0, 1, 0),
            ev(0, 2, 1),
            ev(0, 3, 1),
            ev(0, 4, 2),
            ev(0, 5, 0),
            ev(1, 9, 2),
            ev(1, 8, 1),
            ev(2, 1, 0),
        ];
        let start = Step::Page("/p".into());
        let after = paths(events.clone(), &labels, &start, Direction::After, 2);
        assert_eq!(after.sessions, 2);
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            after.paths,
            [(s(&["/p", "buy", END]), 1), (s(&["/p", "buy", "/"]), 1)]
        );
        assert_eq!(after.nodes[1], [("buy".to_string(), 2)]);
        let before = paths(events, &labels, &start, Direction::Before, 2);
        assert_eq!(
            before.paths,
            [(s(&["/p", BEGIN]), 1), (s(&["/p", "/", BEGIN]), 1)]
        );
        assert_eq!(before.links[0], (0, "/p".into(), BEGIN.into(), 1));
    }

    #[test]
    fn steps_parse() {
        assert_eq!(Step::parse("buy"), Ok(Step::Event("buy".into())));
        assert_eq!(Step::parse("$pageview:/p?x"), Ok(Step::Page("/p?x".into())));
        assert!(Step::parse("$pageview:pricing").is_err());
        assert!(Step::parse(" ").is_err());
        let steps = [Step::Page("/".into()), Step::Event("buy".into())];
        assert_eq!(Step::mask(&steps, "$pageview", "/"), 1);
        assert_eq!(Step::mask(&steps, "buy", "/"), 2);
        assert_eq!(Step::names(&steps), ["$pageview", "buy"]);
        assert!(Step::names(&[Step::Any, Step::Event("x".into())]).is_empty());
    }
}
