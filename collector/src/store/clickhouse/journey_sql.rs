//! Retention and user paths worked out inside ClickHouse: each person's (or session's) step
//! events reduced there with fixed-size states or one sorted array, the rules of
//! [`crate::store::journeys`] run on them with array functions, and only counts come back
//! (a row per cohort and period, per distinct path) instead of every matching event. The
//! SQL is kept to what ClickHouse 18.16 and current releases both run.
//!
//! The answers equal the rules' answers over [`query::step_events`] and
//! [`query::path_events`] (the store suite compares them with SQLite's and with a brute-force
//! count). Copies of an event not merged away yet stay in: a copy has its original's person,
//! time, steps and label, and none of the rules count it twice.
//!
//! Funnels stay with the rules over [`query::step_events`] (read as `RowBinary`): done here
//! too (a row per attempt, the best one per person by `argMax`), they cost ClickHouse 18.16
//! more than reading the step events (BENCHMARKS.md, "Funnels, retention and paths at 10M").

use super::http::{lit, Client};
use super::query::{self, journey_source, mask_sql, retention_period, tsv_num, tsv_rows};
use super::{persons, StoreError};
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
    let source = journey_source(
        c,
        &pm,
        (q.from_ms, q.to_ms),
        Step::names(&q.steps),
        &q.filters,
        &q.sites,
        None,
    );
    // Of each anonymous ID, its first start event and the periods it came back in (as bits,
    // 64 periods a word: fixed-size states, no sets); of each person, the earliest of their
    // IDs' first starts and all their periods; each person counts in their cohort (k = 0)
    // and in each later period of it they came back in.
    let words = starts.len().div_ceil(64);
    let anon_words: String = (0..words)
        .map(|w| {
            format!(
                ", groupBitOr(if(bitAnd(mask, 2) != 0 AND intDiv(p, 64) = {w},
                                 bitShiftLeft(toUInt64(1), p % 64), toUInt64(0))) AS aw{w}"
            )
        })
        .collect();
    let person_words: String = (0..words)
        .map(|w| format!(", groupBitOr(aw{w}) AS w{w}"))
        .collect();
    let aws: String = (0..words).map(|w| format!(", aw{w}")).collect();
    // A word's periods: the powers of two it holds, as exponents, plus the word's first.
    let periods: Vec<String> = (0..words)
        .map(|w| {
            format!(
                "arrayMap(x -> toUInt64(log2(x)) + {base}, bitmaskToArray(w{w}))",
                base = w * 64
            )
        })
        .collect();
    let text = c.select_tsv(&format!(
        "SELECT cohort, k, count()
         FROM (SELECT {cohort} AS cohort,
                      arrayJoin(arrayConcat([0], arrayFilter(x -> x > 0,
                          arrayMap(p -> toInt64(p) - toInt64(cohort), {periods})))) AS k
               FROM (SELECT minIf(first, started = 1) AS person_first,
                            max(started) AS person_started {person_words}
                     FROM (SELECT if(alias_h = 0, anon_h, alias_h) AS person_h,
                                  first, started {aws}
                           FROM (SELECT anon_h, {alias_h} AS alias_h, first, started {aws}
                                 FROM (SELECT anon_h,
                                              minIf(time_ms, bitAnd(mask, 1) != 0) AS first,
                                              max(bitAnd(mask, 1)) AS started {anon_words}
                                       FROM (SELECT anon_h, time_ms, {mask} AS mask,
                                                    {p} AS p
                                             FROM ({source}))
                                       WHERE mask != 0
                                       GROUP BY anon_h)))
                     GROUP BY person_h)
               WHERE person_started = 1)
         GROUP BY cohort, k",
        cohort = period.sql("person_first"),
        p = period.sql("time_ms"),
        periods = if periods.len() == 1 {
            periods.concat()
        } else {
            format!("arrayConcat({})", periods.join(", "))
        },
        alias_h = persons::get(&pm, "alias_h", "anon_h"),
        mask = mask_sql(&q.steps),
    ))?;
    let mut cohorts: Vec<journeys::Cohort> = starts
        .iter()
        .enumerate()
        .map(|(i, &start_ms)| journeys::Cohort {
            start_ms,
            values: vec![0; starts.len() - i],
        })
        .collect();
    for r in tsv_rows(&text) {
        let (cohort, k): (usize, usize) = (tsv_num(&r, 0), tsv_num(&r, 1));
        if let Some(v) = cohorts.get_mut(cohort).and_then(|c| c.values.get_mut(k)) {
            *v = tsv_num(&r, 2);
        }
    }
    Ok(cohorts)
}

/// The marks of a path that ran out of session (they hold no `\0`, every label does).
const END_MARK: &str = "(end)";
const BEGIN_MARK: &str = "(start)";

/// User paths, as [`journeys::paths`] walks them: each session's labels in order (ties by
/// text, then by label) with repeats in a row dropped, its path from its first start, and
/// how many sessions took each path.
pub fn paths(
    c: &Client,
    q: &PathQuery,
    start: &Step,
    direction: Direction,
    depth: usize,
) -> Result<journeys::Paths, StoreError> {
    let pm = persons::current(c)?;
    // `split`: the label's text (a page view's path, else the event's name).
    let label_text = crate::store::Field::Event("if(name = '$pageview', path, name)");
    let source = query::path_source(c, &pm, q, Some(label_text));
    // A label: the name and, for page views, the path, split by `\0` (as the `key` of the
    // source, with other events' paths left out).
    let label = format!(
        "if(substring(key, 1, 10) = {page}, key, substring(key, 1, position(key, {nul})))",
        page = lit("$pageview\0"),
        nul = lit("\0"),
    );
    let is_start = match start {
        Step::Any => "1".to_owned(),
        Step::Event(name) => format!(
            "substring(x, 1, {}) = {}",
            name.len() + 1,
            lit(&format!("{name}\0"))
        ),
        Step::Page(path) => format!("x = {}", lit(&format!("$pageview\0{path}"))),
    };
    let path = match direction {
        Direction::After => format!(
            "arrayPushBack(arraySlice(walk, at, {take}), {end})",
            take = depth + 1,
            end = lit(END_MARK),
        ),
        Direction::Before => format!(
            "arrayPushBack(arrayReverse(arraySlice(walk, greatest(1, at - {depth}),
                 at - greatest(1, at - {depth}) + 1)), {begin})",
            begin = lit(BEGIN_MARK),
        ),
    };
    let (rows, _) = c.select(&format!(
        "SELECT arraySlice(path, 1, {keep}) AS path, count() AS n
         FROM (SELECT {path} AS path
               FROM (SELECT walk, arrayFirstIndex(x -> {is_start}, walk) AS at
                     FROM (SELECT arrayMap(e -> tupleElement(e, 3), arraySort(groupArray((time_ms, split, label))))
                                      AS labels,
                                  arrayFilter((x, before) -> x != before, labels,
                                              arrayPushFront(arrayPopBack(labels), '')) AS walk
                           FROM (SELECT session_h, time_ms, split, {label} AS label
                                 FROM ({source}))
                           GROUP BY session_h)
                     WHERE at != 0))
         GROUP BY path",
        keep = depth + 1,
    ))?;
    let text = |l: &str| match l {
        END_MARK => journeys::END.to_owned(),
        BEGIN_MARK => journeys::BEGIN.to_owned(),
        l => match l.split_once('\0') {
            Some(("$pageview", path)) => path.to_owned(),
            Some((name, _)) => name.to_owned(),
            None => l.to_owned(),
        },
    };
    let mut sessions = 0;
    let counts: Vec<(Vec<String>, u64)> = rows
        .iter()
        .map(|r| {
            let path: Vec<String> = r["path"]
                .as_array()
                .map(|p| {
                    p.iter()
                        .map(|l| text(l.as_str().unwrap_or_default()))
                        .collect()
                })
                .unwrap_or_default();
            let n = r["n"].as_u64().unwrap_or_default();
            sessions += n;
            (path, n)
        })
        .collect();
    Ok(journeys::summarize_paths(sessions, counts, depth))
}
