//! Retention and user paths with ClickHouse doing the reduction: each person's (or
//! session's) step events reduced there with fixed-size states or one sorted array of small
//! numbers, and only those come back (the start and return periods of each anonymous ID, put
//! together by person here; each session's label numbers in order, walked here by the rules
//! of [`crate::store::journeys`]) instead of every matching event. Retention reads
//! whole hours from the rollups `users_hourly` and `steps_hourly` when its filters and time
//! zone allow ([`query::hourly_steps_source`]); their rows (one per anonymous ID and hour)
//! then come back as they are and are put into periods and people here, which costs less than
//! grouping them in ClickHouse. The SQL is kept to what ClickHouse 18.16 and current releases
//! both run.
//!
//! The answers equal the rules' answers over [`query::step_events`] and
//! [`query::path_events`] (the store suite compares them with SQLite's and with a brute-force
//! count). Copies of an event not merged away yet stay in: a copy has its original's person,
//! time, steps and label, and none of the rules count it twice.
//!
//! Funnels stay with the rules over [`query::step_events`] (read as `RowBinary`): done here
//! too (a row per attempt, the best one per person by `argMax`), they cost ClickHouse 18.16
//! more than reading the step events (BENCHMARKS.md, "Funnels, retention and paths at 10M").

use super::http::{list, ChError, Client};
use super::query::{self, journey_source, mask_sql, retention_period};
use super::{persons, rowbinary, StoreError};
use crate::store::journeys::{self, Direction, PathQuery, Step, StepQuery};

/// Retention's cohorts in the periods that begin at `starts`, as [`journeys::retention`]
/// counts them. Days and weeks are counted here; other periods from the events.
pub fn retention(
    c: &Client,
    q: &StepQuery,
    starts: &[i64],
) -> Result<Vec<journeys::Cohort>, StoreError> {
    let period = match retention_period(q) {
        Some(p) if p.count == starts.len() => p,
        _ => return Ok(journeys::retention(query::step_events(c, q)?, starts)),
    };
    let pm = persons::current(c)?;
    let tz = q.periods.as_ref().map_or(chrono_tz::Tz::UTC, |p| p.tz);
    let persons = persons::read(c, &pm)?;
    let person = |anon: u64| persons.get(&anon).copied().unwrap_or(anon);
    let bad = || StoreError::ClickHouse(ChError::Answer("a retention row cut short".into()));
    // Each (person, period, steps) that happened: the period above the two step bits (1 a
    // start event, 2 a return event), dealt by person into piles as the rows come. People
    // are put together here, through the person map read once, by sorting each pile (a hash
    // map by person cost a cache miss per row), half of the piles on another thread.
    const PILE_BITS: u32 = 6;
    let mut piles: Vec<Vec<(u64, u32)>> = (0..1 << PILE_BITS).map(|_| Vec::new()).collect();
    let mut seen = |anon: u64, code: u32| {
        let p = person(anon);
        piles[(p >> (64 - PILE_BITS)) as usize].push((p, code));
    };
    if let Some(hits) = query::hourly_steps_source(c, &pm, q, tz) {
        // Whole hours from the rollups (a row per anonymous ID and hour it was there) and
        // the raw events of the partial hours: the rows as they are, each put in its period
        // here, cost ClickHouse a read instead of a grouping by anonymous ID that took
        // several times longer (BENCHMARKS.md, "Funnels, retention and paths at 10M, third
        // pass").
        let sql = format!("SELECT anon_h, time_ms, toUInt8(mask) FROM ({hits})");
        // The period of the row before's time (rows come by hour).
        let mut last: Option<(i64, u32)> = None;
        let bad = || ChError::Answer("retention rows not as asked".into());
        c.select_native_each(&sql, |block| {
            for (rows, columns) in rowbinary::native_blocks(block).ok_or_else(bad)? {
                let [anon, time, mask] =
                    rowbinary::numbers(&columns, [8, 8, 1], rows).ok_or_else(bad)?;
                for (i, &mask) in mask.iter().enumerate() {
                    let time_ms = rowbinary::le_u64(time, i) as i64;
                    let p = match last {
                        Some((t, p)) if t == time_ms => p,
                        _ => {
                            let p = starts.partition_point(|&s| s <= time_ms).saturating_sub(1);
                            last = Some((time_ms, p as u32));
                            p as u32
                        }
                    };
                    seen(rowbinary::le_u64(anon, i), p << 2 | u32::from(mask & 3));
                }
            }
            Ok(())
        })?;
    } else {
        // Every step event: grouped by anonymous ID in ClickHouse, into the periods it
        // started and returned in as bits (64 periods a word: fixed-size states, no sets).
        let words = starts.len().div_ceil(64);
        let source = journey_source(
            c,
            &pm,
            (q.from_ms, q.to_ms),
            Step::names(&q.steps),
            &q.filters,
            &q.sites,
            None,
        );
        let bits = |step: u32, w: usize| {
            format!(
                ", groupBitOr(if(bitAnd(mask, {step}) != 0 AND intDiv(p, 64) = {w},
                                bitShiftLeft(toUInt64(1), p % 64), toUInt64(0)))"
            )
        };
        let started: String = (0..words).map(|w| bits(1, w)).collect();
        let returned: String = (0..words).map(|w| bits(2, w)).collect();
        let rows = c.select_binary(&format!(
            "SELECT anon_h {started} {returned}
             FROM (SELECT anon_h, mask, {p} AS p
                   FROM (SELECT anon_h, time_ms, toUInt32({mask}) AS mask FROM ({source}))
                   WHERE mask != 0)
             GROUP BY anon_h",
            p = period.sql("time_ms"),
            mask = mask_sql(&q.steps),
        ))?;
        let mut r = rowbinary::Reader(&rows);
        while !r.0.is_empty() {
            let anon = u64::from_le_bytes(r.take().ok_or_else(bad)?);
            for step in [1, 2] {
                for w in 0..words {
                    let mut word = u64::from_le_bytes(r.take().ok_or_else(bad)?);
                    while word != 0 {
                        let p = w * 64 + word.trailing_zeros() as usize;
                        word &= word - 1;
                        seen(anon, (p as u32) << 2 | step);
                    }
                }
            }
        }
    }
    let count = |piles: Vec<Vec<(u64, u32)>>| {
        let mut values: Vec<Vec<u64>> = (0..starts.len())
            .map(|i| vec![0; starts.len() - i])
            .collect();
        for mut pile in piles {
            pile.sort_unstable();
            for one in pile.chunk_by(|a, b| a.0 == b.0) {
                // In period order: the first start is the cohort; each later period with a
                // return counts once.
                let Some(cohort) = one.iter().find(|e| e.1 & 1 != 0).map(|e| e.1 >> 2) else {
                    continue;
                };
                let Some(values) = values.get_mut(cohort as usize) else {
                    continue;
                };
                values[0] += 1;
                let mut last = cohort;
                for p in one.iter().filter(|e| e.1 & 2 != 0).map(|e| e.1 >> 2) {
                    if p > last {
                        last = p;
                        if let Some(v) = values.get_mut((p - cohort) as usize) {
                            *v += 1;
                        }
                    }
                }
            }
        }
        values
    };
    let (mut values, more) = query::in_two(piles, count);
    for (mine, theirs) in values.iter_mut().zip(more) {
        for (a, b) in mine.iter_mut().zip(theirs) {
            *a += b;
        }
    }
    let cohorts = starts
        .iter()
        .zip(values)
        .map(|(&start_ms, values)| journeys::Cohort { start_ms, values })
        .collect();
    Ok(cohorts)
}

/// The labels user paths last numbered, with their hashes (kept by the client: [`paths`]).
pub(super) type Labels = std::sync::Arc<Vec<(journeys::Label, u64)>>;

/// Bits of a label's number in the packed (time, label) of [`paths`]; the time gets the rest.
const LABEL_BITS: u32 = 20;

/// User paths, as [`journeys::paths`] walks them: each session's labels in order (ties by
/// text, then by label) with repeats in a row dropped, its path from its first start, and
/// how many sessions took each path.
///
/// Labels travel as numbers: the labels are numbered here in the rules' order, then each
/// event is one `UInt64`, its time from the range's start above its label's number, so that a
/// session's events sort as numbers into the rules' order (strings and tuples cost
/// ClickHouse 18.16 several times more to gather and sort). The events come back as they
/// are, are put in that order by session here, and walked.
///
/// The labels numbered are those numbered last (kept by the client: every label of the
/// ranges asked before, more than the events hold being as good). An event whose label is
/// not among them comes back numbered 0; then the range's labels are read (of every site
/// and filter and of the range's whole UTC hours), joined to them, and the events asked
/// again (at 10M events over a week, reading them took 36 ms of a question's 180 ms).
pub fn paths(
    c: &Client,
    q: &PathQuery,
    start: &Step,
    direction: Direction,
    depth: usize,
) -> Result<journeys::Paths, StoreError> {
    let kept = c.labels.lock().map(|l| l.clone()).unwrap_or_default();
    if !kept.is_empty() {
        if let Some(paths) = numbered_paths(c, q, &kept, false, start, (direction, depth))? {
            return Ok(paths);
        }
    }
    let mut labels = range_labels(c, q)?;
    let before: Vec<_> = {
        let seen: std::collections::HashSet<&journeys::Label> =
            labels.iter().map(|l| &l.0).collect();
        kept.iter()
            .filter(|l| !seen.contains(&l.0))
            .cloned()
            .collect()
    };
    // Joined unless that makes too many to number (then the range's alone).
    if labels.len() + before.len() < 1 << LABEL_BITS {
        labels.extend(before);
    }
    labels.sort_by_cached_key(|(l, _)| (journeys::label_text(l), l.clone()));
    let labels = std::sync::Arc::new(labels);
    if let Ok(mut kept) = c.labels.lock() {
        *kept = labels.clone();
    }
    match numbered_paths(c, q, &labels, true, start, (direction, depth))? {
        Some(paths) => Ok(paths),
        // A label new since they were read (stored meanwhile): the rules.
        None => {
            let (events, labels) = query::path_events(c, q)?;
            Ok(journeys::paths(events, &labels, start, direction, depth))
        }
    }
}

/// The labels of `q`'s range's whole UTC hours (of every site and filter) with their hashes,
/// from `steps_hourly` (filled with every event, its `page` made as `events.label_h` makes
/// it): sorted by name and page, then hour, so this reads the range's granules of a few
/// short columns, not the name and path of every event (two to three times less server time
/// at 10M events).
fn range_labels(c: &Client, q: &PathQuery) -> Result<Vec<(journeys::Label, u64)>, StoreError> {
    const HOUR: i64 = 3_600_000;
    let db = &c.database;
    let mut conds = vec![format!(
        "hour >= {} AND hour <= {}",
        q.from_ms.div_euclid(HOUR),
        q.to_ms.saturating_sub(1).div_euclid(HOUR)
    )];
    if q.pages_only {
        conds.push("name = '$pageview'".into());
    }
    if !q.sites.is_empty() {
        conds.push(format!("site IN {}", list(&q.sites)));
    }
    // A label's hash: its name's, with a page view's path's mixed in, as `events` stores it
    // (`label_h`), so that the events' statement reads one number a row, not the name and
    // path (at 10M events over a week: 175 ms from the texts, 140 from `name_h` and the
    // path, 110 from `label_h`).
    let rows = c.select_binary(&format!(
        "SELECT name, page, bitXor(cityHash64(name), if(name = '$pageview', cityHash64(page), 0))
         FROM {db}.steps_hourly WHERE {conds}
         GROUP BY name, page",
        conds = conds.join(" AND "),
    ))?;
    let bad = || StoreError::ClickHouse(ChError::Answer("a label row cut short".into()));
    let mut labels = Vec::new();
    let mut r = rowbinary::Reader(&rows);
    while !r.0.is_empty() {
        let name = String::from_utf8_lossy(r.text().ok_or_else(bad)?).into_owned();
        let path = String::from_utf8_lossy(r.text().ok_or_else(bad)?).into_owned();
        let h = u64::from_le_bytes(r.take().ok_or_else(bad)?);
        labels.push(((name, path), h));
    }
    Ok(labels)
}

/// [`paths`] with the labels `labels` (in the rules' order of ties) numbered from 1: `None`
/// if an event's label is not among them. With `whole`, they are all of the range's
/// (`range_labels`), and none being the start says there is no path without asking.
fn numbered_paths(
    c: &Client,
    q: &PathQuery,
    labels: &[(journeys::Label, u64)],
    whole: bool,
    start: &Step,
    (direction, depth): (Direction, usize),
) -> Result<Option<journeys::Paths>, StoreError> {
    let mut hashes: Vec<u64> = labels.iter().map(|l| l.1).collect();
    hashes.sort_unstable();
    hashes.dedup();
    let span = q.to_ms.saturating_sub(q.from_ms).max(0) as u64;
    if labels.len() >= 1 << LABEL_BITS
        || hashes.len() != labels.len()
        || span >= 1 << (64 - LABEL_BITS)
    {
        // Too many labels, two of one hash, or too long a range to pack: the rules.
        let (events, labels) = query::path_events(c, q)?;
        return Ok(Some(journeys::paths(
            events, &labels, start, direction, depth,
        )));
    }
    // Label numbers from 1, in the rules' order of ties; 0 is a hash not among them.
    let is_start: Vec<bool> = std::iter::once(false)
        .chain(
            labels
                .iter()
                .map(|((name, path), _)| start.matches(name, path)),
        )
        .collect();
    if whole && !is_start.contains(&true) {
        return Ok(Some(journeys::summarize_paths(0, Vec::new(), depth)));
    }
    let hash_list: Vec<String> = labels.iter().map(|l| l.1.to_string()).collect();
    let numbers: Vec<String> = (1..=labels.len()).map(|n| n.to_string()).collect();
    let label = format!(
        "transform(label_h, [{}], [{}], toUInt64(0))",
        hash_list.join(", "),
        numbers.join(", "),
    );
    // Each event as its session and its time and label number packed in one `u64`, dealt by
    // session into piles as they come; each pile sorted holds a session's events together in
    // the rules' order, and the walk from the start is done here (`journeys::session_path`),
    // half of the piles on another thread. Grouped by session in ClickHouse (`groupArray`,
    // `arraySort`), the statement took 18.16 about 220 ms at 10M events over a week; done
    // there with array functions, the walk took more than the grouping (BENCHMARKS.md, "User
    // paths at 10M: the walk in the collector").
    // Piles of about 2,500 events at 10M events over a week (1,024 measured 5–8% faster
    // than 64 in turns).
    const PILE_BITS: u32 = 10;
    const LABEL: u64 = (1 << LABEL_BITS) - 1;
    let pm = persons::current(c)?;
    let source = query::path_source(c, &pm, q, None);
    let sql = format!(
        "SELECT session_h,
                bitOr(bitShiftLeft(toUInt64(time_ms - {from}), {LABEL_BITS}), {label}) AS packed
         FROM ({source})",
        from = q.from_ms,
    );
    let mut piles: Vec<Vec<u128>> = (0..1 << PILE_BITS).map(|_| Vec::new()).collect();
    let mut unknown = false;
    let bad = || ChError::Answer("path rows not as asked".into());
    c.select_native_each(&sql, |block| {
        for (rows, columns) in rowbinary::native_blocks(block).ok_or_else(bad)? {
            let [session, packed] = rowbinary::numbers(&columns, [8, 8], rows).ok_or_else(bad)?;
            for (s, p) in session.chunks_exact(8).zip(packed.chunks_exact(8)) {
                let s = u64::from_le_bytes(s.try_into().unwrap_or_default());
                let p = u64::from_le_bytes(p.try_into().unwrap_or_default());
                unknown |= p & LABEL == 0;
                piles[(s >> (64 - PILE_BITS)) as usize].push(u128::from(s) << 64 | u128::from(p));
            }
        }
        Ok(())
    })?;
    if unknown {
        return Ok(None);
    }
    if !is_start.contains(&true) {
        return Ok(Some(journeys::summarize_paths(0, Vec::new(), depth)));
    }
    let starts = |l: u32| is_start.get(l as usize) == Some(&true);
    let walk = |piles: Vec<Vec<u128>>| {
        let (mut sessions, mut counts) = (0u64, journeys::PathCounts::default());
        let (mut session, mut path) = (Vec::new(), Vec::new());
        for mut pile in piles {
            pile.sort_unstable();
            for events in pile.chunk_by(|a, b| a >> 64 == b >> 64) {
                session.clear();
                session.extend(events.iter().map(|&e| (e as u64 & LABEL) as u32));
                if journeys::session_path(&mut session, starts, (direction, depth), &mut path) {
                    sessions += 1;
                    journeys::count_path(&mut counts, &path);
                }
            }
        }
        (sessions, counts)
    };
    let ((mut sessions, mut counts), (more, others)) = query::in_two(piles, walk);
    sessions += more;
    for (path, n) in others {
        *counts.entry(path).or_default() += n;
    }
    let texts: Vec<String> = labels.iter().map(|l| journeys::label_text(&l.0)).collect();
    Ok(Some(journeys::summarize_numbered(
        sessions,
        counts,
        &texts,
        1,
        (direction, depth),
    )))
}
