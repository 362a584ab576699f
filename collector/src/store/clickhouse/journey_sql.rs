//! Funnels, retention and user paths worked out inside ClickHouse: each person's (or
//! session's) step events gathered into one sorted array, the rules of
//! [`crate::store::journeys`] run on it with array functions, and only counts come back
//! (a row per breakdown value, per cohort and period, per distinct path) instead of every
//! matching event. The SQL is kept to what ClickHouse 18.16 and current releases both run.
//!
//! The answers equal the rules' answers over [`query::step_events`] and
//! [`query::path_events`] (the store suite compares them with SQLite's and with a brute-force
//! count). Copies of an event not merged away yet stay in the arrays: a copy has its
//! original's person, time, steps and label, and none of the rules count it twice.

use super::http::{lit, Client};
use super::query::{self, journey_source, mask_sql, retention_period, tsv_num, tsv_rows};
use super::{persons, StoreError};
use crate::store::journeys::{self, Direction, PathQuery, Step, StepQuery};

/// The bits of an event's steps within the number that also holds its time (ten steps at most).
const MASK_BITS: u32 = 10;

/// A funnel of `q`'s steps begun in `[q.from_ms, to_ms)`, as [`journeys::funnel`] counts it.
/// With [`StepQuery::people`] the people are named, so the events come back as
/// [`query::step_events`] reads them and the rules run here.
pub fn funnel(
    c: &Client,
    q: &StepQuery,
    to_ms: i64,
    window_ms: i64,
) -> Result<journeys::Funnel, StoreError> {
    let n = q.steps.len();
    if q.people || n == 0 || n > MASK_BITS as usize {
        let hits = query::step_events(c, q)?;
        return Ok(journeys::funnel(hits, n, q.from_ms, to_ms, window_ms));
    }
    let pm = persons::current(c)?;
    let source = journey_source(
        c,
        &pm,
        (q.from_ms, q.to_ms),
        Step::names(&q.steps),
        &q.filters,
        &q.sites,
        q.breakdown.clone(),
    );
    let mask = mask_sql(&q.steps);
    let from = q.from_ms;
    // An event as one number that sorts as (time, steps): its time from `from` (never
    // negative: the source starts there) above its step bits; with a breakdown, with its
    // value beside it, so that ties sort by the value's text as the rules sort them.
    let code = format!("bitShiftLeft(toInt64(time_ms - {from}), {MASK_BITS}) + mask");
    let by = q.breakdown.is_some();
    let (item, number, value) = if by {
        (
            format!("({code}, split)"),
            "tupleElement(e, 1)",
            "tupleElement(e, 2)",
        )
    } else {
        (code, "e", "''")
    };
    // A row per step 1 event `i` in the range (an attempt), with the time `t{k}` of each
    // later step: the earliest event after the step before that is step k, within the
    // window (`k{k}`: its index, 0 for none). The lambdas capture only numbers of the row,
    // never an array (ClickHouse would copy it for each element).
    let chain: String = (2..=n)
        .map(|k| {
            let prev = k - 1;
            let find = format!(
                "arrayFirstIndex((x, m) -> x > t{prev} AND x <= t1 + {window_ms}
                     AND bitAnd(m, {bit}) != 0, ts, ms)",
                bit = 1u32 << prev,
            );
            let find = if k == 2 {
                find
            } else {
                format!("if(k{prev} = 0, 0, {find})")
            };
            format!(", {find} AS k{k}, if(k{k} = 0, 0, ts[k{k}]) AS t{k}")
        })
        .collect();
    let reached: String = (2..=n).map(|k| format!(" + (k{k} != 0)")).collect();
    // Of each person, the attempt that went furthest, the earliest of those: the steps it
    // reached, its step 1 event's value and the time from each step to the next.
    let gaps: String = (2..=n)
        .map(|k| format!(", argMax(t{k} - t{}, attempt) AS g{k}", k - 1))
        .collect();
    let counts: String = (2..=n)
        .map(|k| format!(", countIf(reach >= {k}) AS c{k}"))
        .collect();
    // The median of each step's gaps: its middle two of the sorted gaps (one for an odd count).
    let sorted: String = (2..=n)
        .map(|k| format!(", arraySort(groupArrayIf(g{k}, whole = 1 AND reach >= {k})) AS a{k}"))
        .collect();
    let middles: String = (2..=n)
        .map(|k| {
            format!(
                ", a{k}[intDiv(length(a{k}) + 1, 2)] AS lo{k}, a{k}[intDiv(length(a{k}), 2) + 1] AS hi{k}"
            )
        })
        .collect();
    let cs: String = (2..=n).map(|k| format!(", c{k}")).collect();
    let gs: String = (2..=n).map(|k| format!(", g{k}")).collect();
    let sql = format!(
        "SELECT whole, key, c1 {cs} {middles}
         FROM (SELECT whole, key, count() AS c1 {counts} {sorted}
               FROM (SELECT arrayJoin({wholes}) AS whole, if(whole = 1, '', first_key) AS key,
                            reach {gs}
                     FROM (SELECT max(attempt) AS best, intDiv(best, {shift}) AS reach,
                                  argMax(value, attempt) AS first_key {gaps}
                           FROM (SELECT person_h, ts[i] AS t1, by_values[i] AS value {chain},
                                        (1 {reached}) * {shift} + ({shift} - 1 - i) AS attempt
                                 FROM (SELECT person_h, arrayMap(e -> intDiv({number}, {one}), ev) AS ts,
                                              arrayMap(e -> {number} % {one}, ev) AS ms,
                                              arrayMap(e -> {value}, ev) AS by_values,
                                              arrayFilter((j, t, m) -> bitAnd(m, 1) != 0 AND t < {span},
                                                          arrayEnumerate(ts), ts, ms) AS firsts
                                       FROM {people})
                                 ARRAY JOIN firsts AS i)
                           GROUP BY person_h))
               GROUP BY whole, key)",
        wholes = if by { "[1, 0]" } else { "[1]" },
        shift = 1u64 << 32,
        one = 1u64 << MASK_BITS,
        span = to_ms - from,
        people = sorted_by_person(&pm, &item, &format!(
            "SELECT anon_h, time_ms, split, {mask} AS mask FROM ({source})"
        )),
    );
    let text = c.select_tsv(&sql)?;
    let mut steps: Vec<journeys::FunnelStep> = (0..n)
        .map(|_| journeys::FunnelStep {
            count: 0,
            median_seconds: None,
        })
        .collect();
    let mut values = Vec::new();
    for r in tsv_rows(&text) {
        let counts: Vec<u64> = (0..n).map(|k| tsv_num(&r, 2 + k)).collect();
        if tsv_num::<u8>(&r, 0) == 0 {
            values.push((
                Some(query::tsv_text(&r, 1)).filter(|v| !v.is_empty()),
                counts,
            ));
            continue;
        }
        for (k, step) in steps.iter_mut().enumerate() {
            step.count = counts[k];
            if k > 0 && counts[k] > 0 {
                let at = 2 + n + 2 * (k - 1);
                step.median_seconds =
                    Some(journeys::middle(tsv_num(&r, at), tsv_num(&r, at + 1)) / 1000.0);
            }
        }
    }
    if !by {
        values.push((None, steps.iter().map(|s| s.count).collect()));
    }
    Ok(journeys::Funnel {
        steps,
        breakdown: journeys::top_values(values),
        reached: Vec::new(),
    })
}

/// Each person's events of `rows` (with `anon_h`), as `item`s, sorted, in column `ev` (the
/// person in `person_h`): an
/// array per anonymous ID first, its person looked up once in the person map `pm`, then the
/// arrays of the IDs of one person merged.
fn sorted_by_person(pm: &str, item: &str, rows: &str) -> String {
    format!(
        "(SELECT person_h, arraySort(groupArrayArray(anon_ev)) AS ev
          FROM (SELECT if(alias_h = 0, anon_h, alias_h) AS person_h, anon_ev
                FROM (SELECT anon_h, {alias_h} AS alias_h, anon_ev
                      FROM (SELECT anon_h, groupArray({item}) AS anon_ev
                            FROM ({rows}) WHERE mask != 0 GROUP BY anon_h)))
          GROUP BY person_h)",
        alias_h = persons::get(pm, "alias_h", "anon_h"),
    )
}

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
    // Of each anonymous ID, its first start event and the periods it came back in; of each
    // person, the earliest of their IDs' first starts and all their periods; each person
    // counts in their cohort (k = 0) and in each later period of it they came back in.
    let text = c.select_tsv(&format!(
        "SELECT cohort, k, count()
         FROM (SELECT {cohort} AS cohort,
                      arrayJoin(arrayConcat([0], arrayFilter(x -> x > 0,
                          arrayMap(p -> toInt64(p) - toInt64(cohort), person_backs)))) AS k
               FROM (SELECT minIf(first, started = 1) AS person_first,
                            max(started) AS person_started,
                            groupUniqArrayArray(backs) AS person_backs
                     FROM (SELECT if(alias_h = 0, anon_h, alias_h) AS person_h,
                                  first, started, backs
                           FROM (SELECT anon_h, {alias_h} AS alias_h, first, started, backs
                                 FROM (SELECT anon_h,
                                              minIf(time_ms, bitAnd(mask, 1) != 0) AS first,
                                              max(bitAnd(mask, 1)) AS started,
                                              groupUniqArrayIf(p, bitAnd(mask, 2) != 0) AS backs
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
    let pages = if q.pages_only {
        vec!["$pageview".into()]
    } else {
        Vec::new()
    };
    let pm = persons::current(c)?;
    // `split`: the label's text (a page view's path, else the event's name).
    let source = journey_source(
        c,
        &pm,
        (q.from_ms, q.to_ms),
        pages,
        &q.filters,
        &q.sites,
        Some(crate::store::Field::Event(
            "if(name = '$pageview', path, name)",
        )),
    );
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
