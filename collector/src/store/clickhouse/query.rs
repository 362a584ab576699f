//! The analysis queries in ClickHouse SQL (kept to what ClickHouse 18.16 and current releases
//! both run). Every value from a request enters the SQL through [`lit`] or [`float`].
//!
//! Each answer follows the SQLite store's definitions (`sqlite/`, its event index `sqlite/index.rs`): a person is
//! the user ID an anonymous ID was joined to, else the anonymous ID; filters decide as
//! SQLite's SQL does (text compared byte-wise, numbers as SQLite casts them); duplicates of an
//! event not merged away yet are counted once.

use super::http::{float, list, lit, unescape, ChError, Client};
use super::{persons, rowbinary, tally, StoreError, ROLLUP_TABLES};
use crate::store::*;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Anonymous ID (named `key`) → the user ID it belongs to (`alias_user`), as the subquery `a`.
/// Both sides of every join are named (`e`, `a`, `l`, `r`): current ClickHouse refuses a joined
/// subquery without a name, 18.16 takes either.
fn aliases(db: &str, key: &str) -> String {
    format!(
        "(SELECT anonymous_id AS {key}, argMin(user_id, (time_ms, event_id)) AS alias_user
          FROM {db}.aliases GROUP BY anonymous_id) AS a"
    )
}

/// The columns `alias_user` (the user ID, `''` when the anonymous ID was never identified)
/// and `alias_h` (its hash, 0 for none) of a row with `anon_h` (the 64-bit hash of the
/// anonymous ID), read from the person map `pm` (see [`persons`]): distinct counts on numbers
/// instead of strings. Two different IDs share a hash with odds of about n²/2⁶⁵ (3 in a
/// million at 10 million IDs) — the SQLite event index counts sessions the same way.
fn person_cols(pm: &str) -> String {
    format!(
        "{} AS alias_user, {} AS alias_h",
        persons::get(pm, "alias_user", "anon_h"),
        persons::get(pm, "alias_h", "anon_h")
    )
}

/// The events of `[from_ms, to_ms)`: on `time_ms`, and on the UTC day that leads the sort key
/// of `events` (ClickHouse 18.16 does not derive a condition on `intDiv(time_ms, …)` from one
/// on `time_ms`), so that a range reads the granules of its days only. Both divisions
/// truncate, ClickHouse's and Rust's alike, and truncation keeps the order, so the day
/// condition holds for every event of the range.
pub(super) fn in_range(from_ms: i64, to_ms: i64) -> String {
    const DAY: i64 = 86_400_000;
    format!(
        "time_ms >= {from_ms} AND time_ms < {to_ms}
         AND intDiv(time_ms, {DAY}) >= {} AND intDiv(time_ms, {DAY}) <= {}",
        from_ms / DAY,
        to_ms.saturating_sub(1) / DAY
    )
}

/// The hashed person of a row with [`person_cols`].
const PERSON_H: &str = "if(alias_h = 0, anon_h, alias_h)";

/// The person of a row with `alias_user` (from [`aliases`] or [`person_cols`]) and `anon`.
fn person(anon: &str) -> String {
    format!("if(alias_user = '', {anon}, alias_user)")
}

fn s(r: &Value, k: &str) -> String {
    r[k].as_str().unwrap_or_default().to_owned()
}

fn i(r: &Value, k: &str) -> i64 {
    r[k].as_i64()
        .or_else(|| r[k].as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_default()
}

fn u(r: &Value, k: &str) -> u64 {
    i(r, k).max(0) as u64
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// SQL expressions of a value as a filter sees it: its text (`''` when missing), whether it
/// is present, whether it is a JSON number, and its value as SQLite's `CAST(.. AS REAL)`.
struct Value4 {
    text: String,
    has: String,
    num: String,
    real: String,
}

/// SQLite's `CAST(text AS REAL)` of a text column: its longest leading number, else 0.
fn real_of(col: &str) -> String {
    format!(
        "(if(match({col}, {neg}), -1, 1) * toFloat64OrZero(extract({col}, {num})))",
        neg = lit(r"^\s*-"),
        num = lit(r"^\s*[+-]?((?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)"),
    )
}

fn column(col: &str) -> Value4 {
    Value4 {
        text: col.to_owned(),
        has: "1".into(),
        num: "0".into(),
        real: real_of(col),
    }
}

fn event_prop(k: &str) -> Value4 {
    let at = format!("indexOf(prop_keys, {})", lit(k));
    Value4 {
        text: format!("prop_values[{at}]"),
        has: format!("has(prop_keys, {})", lit(k)),
        num: format!("prop_nums[{at}]"),
        real: format!("prop_reals[{at}]"),
    }
}

fn user_prop(n: usize) -> Value4 {
    Value4 {
        text: format!("up{n}_v"),
        has: format!("(up{n}_h = 1)"),
        num: format!("up{n}_n"),
        real: format!("up{n}_r"),
    }
}

/// The condition of a filter, deciding as `filter_sql` does in SQLite.
fn cond(f: &Filter, v: &Value4) -> String {
    let Value4 {
        text,
        has,
        num,
        real,
    } = v;
    let value = lit(&f.value);
    match f.op {
        Op::Exists => format!("({has} AND {text} != '')"),
        Op::Eq => format!("({text} = {value})"),
        Op::Neq => format!("({text} != {value})"),
        Op::Contains if f.value.is_empty() => format!("({has})"),
        Op::Contains => format!(
            "({has} AND position(lower({text}), {}) > 0)",
            lit(&f.value.to_ascii_lowercase())
        ),
        Op::Gt | Op::Lt => {
            let gt = f.op == Op::Gt;
            match f.value.parse::<f64>() {
                Ok(n) if n.is_nan() => "0".into(),
                Ok(n) if n.is_infinite() => {
                    if (n > 0.0) == gt {
                        "0".into()
                    } else {
                        format!("({has})")
                    }
                }
                Ok(n) => format!(
                    "({has} AND {real} {} {})",
                    if gt { ">" } else { "<" },
                    float(n)
                ),
                Err(_) if gt => format!("({has} AND {num} = 0 AND {text} > {value})"),
                Err(_) => format!("({has} AND ({num} = 1 OR {text} < {value}))"),
            }
        }
    }
}

/// A filter that leaves bots out or keeps only them (`device` `neq`/`eq` `bot`, which the API
/// adds to every question by default) as the condition on `events`' stored `is_bot`: a byte a
/// row read instead of the device's text (at 10M events the funnel took 401 ms instead of
/// 449 ms, user paths 257 ms instead of 282 ms).
fn bot_cond(f: &Filter) -> Option<String> {
    let is_bot = match f.op {
        Op::Eq => 1,
        Op::Neq => 0,
        _ => return None,
    };
    (f.field == Field::Event("device") && f.value == "bot").then(|| format!("is_bot = {is_bot}"))
}

/// The user properties a query names, numbered as their columns are (`up{n}_*`).
#[derive(Default)]
struct UserProps(Vec<String>);

impl UserProps {
    /// The number of user property `k` (a new one gets the next).
    fn n(&mut self, k: &str) -> usize {
        match self.0.iter().position(|x| x == k) {
            Some(n) => n,
            None => {
                self.0.push(k.to_owned());
                self.0.len() - 1
            }
        }
    }

    /// The user properties that `filters` name, and each such filter's condition on their
    /// columns.
    fn filtered(filters: &[Filter]) -> (UserProps, Vec<String>) {
        let mut props = UserProps::default();
        let mut conds = Vec::new();
        for f in filters {
            if let Field::UserProp(k) = &f.field {
                conds.push(cond(f, &user_prop(props.n(k))));
            }
        }
        (props, conds)
    }

    /// Rows of `sql` (with `person_h`) with each named property's columns, by person.
    fn joined(&self, db: &str, pm: &str, mut sql: String) -> String {
        for (n, k) in self.0.iter().enumerate() {
            sql = format!(
                "SELECT * FROM ({sql}) AS l ANY LEFT JOIN {} AS r USING person_h",
                user_prop_table(db, pm, k, n)
            );
        }
        sql
    }
}

/// `WHERE` with every condition of `conds`; nothing without any.
fn where_all(conds: &[String]) -> String {
    if conds.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conds.join(" AND "))
    }
}

/// Per person, the latest value of user property `k` (columns `up{n}_*`), from each of their
/// anonymous IDs' latest in `trait_rollup` (at 10M events, 385k of them with traits: 200–250
/// ms from the traits of every event, 45–55 ms from the rollup's 182k rows).
fn user_prop_table(db: &str, pm: &str, k: &str, n: usize) -> String {
    format!(
        "(SELECT person_h, argMaxMerge(t_value) AS up{n}_v, argMaxMerge(t_num) AS up{n}_n,
                argMaxMerge(t_real) AS up{n}_r, toUInt8(1) AS up{n}_h
          FROM (SELECT {PERSON_H} AS person_h, t_value, t_num, t_real
                FROM (SELECT anon_h, {person_cols}, t_value, t_num, t_real
                      FROM {db}.trait_rollup WHERE key = {key}))
          GROUP BY person_h)",
        key = lit(k),
        person_cols = person_cols(pm),
    )
}

/// The events an insights query counts, one row each (duplicates included), with columns
/// `event_h`, `session_h`, `anon_h`, `person_h` (hashes of the event ID, session ID,
/// anonymous ID and person),
/// `person`, `time_ms`, `key` (the `by` value, `''` for none), `split` (the same for
/// `split`), `name`, `name_h`, `path` and `label_h` (ClickHouse reads only the columns a
/// query uses).
/// Also the condition on `events` alone, when the query has no `user.KEY` filter.
fn insights_source(db: &str, pm: &str, q: &InsightsQuery) -> (String, Option<String>) {
    let mut props = UserProps::default();
    let mut event_conds = vec![in_range(q.from_ms, q.to_ms)];
    if !q.events.is_empty() {
        // By the stored hash of the name: no event's name is read (as the funnel's steps).
        let hashes: Vec<String> = q
            .events
            .iter()
            .map(|e| format!("cityHash64({})", lit(e)))
            .collect();
        event_conds.push(format!("name_h IN ({})", hashes.join(", ")));
    }
    if !q.sites.is_empty() {
        event_conds.push(format!("site IN {}", list(&q.sites)));
    }
    let mut user_conds = Vec::new();
    for f in &q.filters {
        match &f.field {
            Field::Event(col) => {
                event_conds.push(bot_cond(f).unwrap_or_else(|| cond(f, &column(col))))
            }
            Field::EventProp(k) => event_conds.push(cond(f, &event_prop(k))),
            Field::UserProp(k) => user_conds.push(cond(f, &user_prop(props.n(k)))),
        }
    }
    // Each field's value: read from the event (as `raw0`, `raw1`), or a user property's.
    let keys: Vec<(String, String)> = [q.by.as_ref(), q.split.as_ref()]
        .into_iter()
        .enumerate()
        .map(|(n, f)| match f {
            None => ("''".to_owned(), format!("raw{n}")),
            Some(Field::Event(col)) => (col.to_string(), format!("raw{n}")),
            Some(Field::EventProp(k)) => (event_prop(k).text, format!("raw{n}")),
            Some(Field::UserProp(k)) => ("''".to_owned(), user_prop(props.n(k)).text),
        })
        .collect();
    let [(raw0, key), (raw1, split)] = <[(String, String); 2]>::try_from(keys).expect("two");
    let sql = format!(
        "SELECT event_h, session_h, time_ms, raw0, raw1, anonymous_id, anon_h, alias_user,
                {PERSON_H} AS person_h, name, name_h, path, label_h
         FROM (SELECT event_h, session_h, anonymous_id, anon_h, {person_cols}, time_ms,
                      {raw0} AS raw0, {raw1} AS raw1, name, name_h, path, label_h
               FROM {db}.events WHERE {conds})",
        conds = event_conds.join(" AND "),
        person_cols = person_cols(pm),
    );
    let sql = props.joined(db, pm, sql);
    let where_ = where_all(&user_conds);
    let events_only = user_conds.is_empty().then(|| event_conds.join(" AND "));
    let sql = format!(
        "SELECT event_h, session_h, anon_h, person_h, {person} AS person, time_ms,
                {key} AS key, {split} AS split, name, name_h, path, label_h
         FROM ({sql}) {where_}",
        person = person("anonymous_id"),
    );
    (sql, events_only)
}

/// The event columns `users_hourly` keeps besides the hour and the anonymous ID's hash.
const HOURLY_DIMS: [&str; 5] = ["site", "device", "browser", "os", "country"];

/// The condition on an hourly rollup's rows for the whole hours `first..last` (hour numbers
/// since the epoch), the sites asked for and the filters on its event columns (the callers
/// have checked that no other filter is asked for).
fn hourly_conds(first: i64, last: i64, sites: &[String], filters: &[Filter]) -> String {
    let mut conds = vec![format!("hour >= {first} AND hour < {last}")];
    if !sites.is_empty() {
        conds.push(format!("site IN {}", list(sites)));
    }
    for f in filters {
        if let Field::Event(col) = &f.field {
            conds.push(cond(f, &column(col)));
        }
    }
    conds.join(" AND ")
}

/// Whether every local day, week and month of `tz` begins on a UTC hour over
/// `[from_ms, to_ms)`: the zone's offset is a whole number of hours at each hour of the range
/// (offsets change on the hour in such zones). Long ranges are not looked at: raw events.
fn whole_hour_offsets(tz: chrono_tz::Tz, from_ms: i64, to_ms: i64) -> bool {
    use chrono::{Offset, TimeZone};
    const HOUR: i64 = 3_600_000;
    if to_ms.saturating_sub(from_ms) / HOUR > 24 * 366 * 3 {
        return false;
    }
    (from_ms / HOUR..=to_ms / HOUR).all(|h| {
        chrono::DateTime::from_timestamp_millis(h * HOUR).is_some_and(|t| {
            tz.offset_from_utc_datetime(&t.naive_utc())
                .fix()
                .local_minus_utc()
                % 3600
                == 0
        })
    })
}

/// The hourly rollup that answers an insights question counting users exactly: its table, the
/// condition on its rows for the whole hours `first..last` (hour numbers since the epoch), and
/// the column of each of `by` and `split` in it (`''` for none or a user property). See
/// [`hourly_users_source`] for when it does.
struct HourlyRollup {
    table: &'static str,
    conds: String,
    cols: [String; 2],
    first: i64,
    last: i64,
}

/// The [`HourlyRollup`] of insights question `q`, if one answers it: counting users, filters
/// and `by`/`split` only on the rollup's columns or on user properties, and without event
/// names at most one event property filter comparing with a number, a zone whose days begin
/// on UTC hours, at least one whole hour in the range.
fn hourly_rollup(q: &InsightsQuery) -> Option<HourlyRollup> {
    const HOUR: i64 = 3_600_000;
    let dim = |f: &Field| match f {
        Field::Event(col) if HOURLY_DIMS.contains(col) => true,
        Field::UserProp(_) => true,
        _ => false,
    };
    // With event names, `steps_hourly` has the name, and the path of page views.
    let pages_only = !q.events.is_empty() && q.events.iter().all(|e| e == "$pageview");
    let series_dim = |f: &Field| match f {
        Field::Event("name") => !q.events.is_empty(),
        Field::Event("path") => pages_only,
        _ => dim(f),
    };
    // One event property compared with a number (`gt`, `lt`): its hours' least and
    // greatest values in `props_hourly` answer it.
    let numeric = |f: &Filter| {
        matches!(f.field, Field::EventProp(_))
            && matches!(f.op, Op::Gt | Op::Lt)
            && f.value.parse::<f64>().is_ok()
    };
    let prop: Vec<&Filter> = q.filters.iter().filter(|f| numeric(f)).collect();
    let (first, last) = (-(-q.from_ms).div_euclid(HOUR), q.to_ms.div_euclid(HOUR));
    let usable = q.metric == Metric::Users
        && q.from_ms >= 0
        && first < last
        && prop.len() <= usize::from(q.events.is_empty())
        && q.filters.iter().all(|f| dim(&f.field) || numeric(f))
        && [&q.by, &q.split]
            .iter()
            .all(|f| f.as_ref().is_none_or(series_dim))
        && (q.interval == Interval::Hour || whole_hour_offsets(q.tz, q.from_ms, q.to_ms));
    if !usable {
        return None;
    }
    let mut cols = ["''".to_owned(), "''".to_owned()];
    for (n, f) in [&q.by, &q.split].into_iter().enumerate() {
        match f {
            Some(Field::Event("path")) => cols[n] = "page".into(),
            Some(Field::Event(col)) => cols[n] = col.to_string(),
            _ => {}
        }
    }
    let mut conds = hourly_conds(first, last, &q.sites, &q.filters);
    let mut table = "users_hourly";
    if !q.events.is_empty() {
        conds = format!("name IN {} AND {conds}", list(&q.events));
        table = "steps_hourly";
    }
    if let Some(f) = prop.first() {
        if let Field::EventProp(k) = &f.field {
            // An hour has an event over X when its greatest value is, under X when its least.
            let value = Value4 {
                text: "''".into(),
                has: "1".into(),
                num: "0".into(),
                real: if f.op == Op::Gt { "p_max" } else { "p_min" }.into(),
            };
            conds = format!("key = {} AND {} AND {conds}", lit(k), cond(f, &value));
            table = "props_hourly";
        }
    }
    Some(HourlyRollup {
        table,
        conds,
        cols,
        first,
        last,
    })
}

/// The partial hours at either end of `q`'s range, before the first whole hour and from the
/// last, as the ranges of raw events to read.
fn edge_ranges(q: &InsightsQuery, r: &HourlyRollup) -> impl Iterator<Item = (i64, i64)> {
    const HOUR: i64 = 3_600_000;
    [(q.from_ms, r.first * HOUR), (r.last * HOUR, q.to_ms)]
        .into_iter()
        .filter(|(from_ms, to_ms)| from_ms < to_ms)
}

/// For an insights query counting users that an hourly rollup answers ([`hourly_rollup`]):
/// the rows to count, columns `time_ms` (the hour's start), `key`, `split` and `person_h`,
/// from `users_hourly` (with the event property filter, `props_hourly`; with event names,
/// `steps_hourly`, whose `by` and `split` may also be the name, and the path when every name
/// is `$pageview`) for the whole hours and from raw events for the partial hours at either
/// end. Persons come through the person map, so an identify that arrived after the events
/// counts as it does on raw events; a user property is the person's latest value of it,
/// whenever the events were (as [`insights_source`] has it), joined to the hourly rows by
/// person.
fn hourly_users_source(db: &str, pm: &str, q: &InsightsQuery) -> Option<String> {
    const HOUR: i64 = 3_600_000;
    let r = hourly_rollup(q)?;
    // User properties are numbered as `insights_source` numbers them (`up{n}_*`).
    let (mut props, user_conds) = UserProps::filtered(&q.filters);
    // Each of `by` and `split`: the rollup's column, read as `raw{n}`, or a user property.
    let mut value = ["raw0".to_owned(), "raw1".to_owned()];
    for (n, f) in [&q.by, &q.split].into_iter().enumerate() {
        if let Some(Field::UserProp(k)) = f {
            value[n] = user_prop(props.n(k)).text;
        }
    }
    let rows = format!(
        "SELECT hour, anon_h, {raw0} AS raw0, {raw1} AS raw1, {person_cols}
         FROM {db}.{table} WHERE {conds}",
        raw0 = r.cols[0],
        raw1 = r.cols[1],
        table = r.table,
        conds = r.conds,
        person_cols = person_cols(pm),
    );
    let whole_hours = if props.0.is_empty() {
        // No user property: no join, and one subquery less (at 10M events, 30 days: 190
        // against 230 ms for daily users).
        format!(
            "SELECT hour * {HOUR} AS time_ms, raw0 AS key, raw1 AS split, {PERSON_H} AS person_h
             FROM ({rows})"
        )
    } else {
        let sql = props.joined(
            db,
            pm,
            format!("SELECT hour, raw0, raw1, {PERSON_H} AS person_h FROM ({rows})"),
        );
        format!(
            "SELECT hour * {HOUR} AS time_ms, {key} AS key, {split} AS split, person_h
             FROM ({sql}) {where_}",
            where_ = where_all(&user_conds),
            key = value[0],
            split = value[1],
        )
    };
    let mut parts = vec![whole_hours];
    for (from_ms, to_ms) in edge_ranges(q, &r) {
        let edge = InsightsQuery {
            from_ms,
            to_ms,
            ..q.clone()
        };
        parts.push(format!(
            "SELECT time_ms, key, split, person_h FROM ({})",
            insights_source(db, pm, &edge).0
        ));
    }
    Some(parts.join(" UNION ALL "))
}

/// For an insights query counting users that splits by no user property: the rows to count
/// in the collector ([`tally::read`]; its user property filters by [`passing_people`]),
/// without persons or user properties, and the unit of their times: `t` (`UInt32`), `anon_h`,
/// and with `by` or `split` `k` (the series key: `by`, else `split`), with both `s`
/// (`split`). From the hourly rollup where one answers ([`hourly_rollup`], as
/// [`hourly_users_source`] finds them; `t` in hours), else from the raw events (`t` in
/// seconds, on which every zone's days begin).
fn user_rows(db: &str, pm: &str, q: &InsightsQuery) -> Option<(String, i64)> {
    let user_prop = |f: Option<&Field>| matches!(f, Some(Field::UserProp(_)));
    if q.metric != Metric::Users
        || q.from_ms < 0
        || user_prop(q.by.as_ref())
        || user_prop(q.split.as_ref())
    {
        return None;
    }
    // The user property filters are the collector's ([`passing_people`]).
    let filters: Vec<Filter> = q
        .filters
        .iter()
        .filter(|f| !matches!(f.field, Field::UserProp(_)))
        .cloned()
        .collect();
    // The columns of the raw events' rows ([`insights_source`]).
    let raw = match (&q.by, &q.split) {
        (None, None) => "",
        (None, Some(_)) => ", split AS k",
        (Some(_), None) => ", key AS k",
        (Some(_), Some(_)) => ", key AS k, split AS s",
    };
    let raw_rows = |from_ms: i64, to_ms: i64, unit: i64| {
        let part = InsightsQuery {
            from_ms,
            to_ms,
            filters: filters.clone(),
            ..q.clone()
        };
        format!(
            "SELECT toUInt32(intDiv(time_ms, {unit})) AS t, anon_h{raw} FROM ({})",
            insights_source(db, pm, &part).0
        )
    };
    let Some(r) = hourly_rollup(q) else {
        return Some((raw_rows(q.from_ms, q.to_ms, 1000), 1000));
    };
    // The series key (`by`, else `split`), and the split of the pairs when both are given.
    let [by, split] = &r.cols;
    let whole = match (&q.by, &q.split) {
        (None, None) => String::new(),
        (None, Some(_)) => format!(", {split} AS k"),
        (Some(_), None) => format!(", {by} AS k"),
        (Some(_), Some(_)) => format!(", {by} AS k, {split} AS s"),
    };
    let mut parts = vec![format!(
        "SELECT toUInt32(hour) AS t, anon_h{whole} FROM {db}.{table} WHERE {conds}",
        table = r.table,
        conds = r.conds,
    )];
    for (from_ms, to_ms) in edge_ranges(q, &r) {
        parts.push(raw_rows(from_ms, to_ms, 3_600_000));
    }
    Some((parts.join(" UNION ALL "), 3_600_000))
}

/// The people who pass the user property filters of an insights question: those `listed`
/// pass if `listed_pass`, everyone else if not.
struct Passing {
    listed: HashSet<u64, foldhash::fast::RandomState>,
    listed_pass: bool,
}

impl Passing {
    fn passes(&self, person: u64) -> bool {
        self.listed.contains(&person) == self.listed_pass
    }
}

/// [`Passing`] for the user property filters of `q`, decided as [`insights_source`] decides
/// them: on each person's latest value of each property, a person without one having the
/// values an `ANY LEFT JOIN` gives (empty, 0). Only the people who decide otherwise than a
/// person without any of the properties are listed (at 10M events, `user.plan = pro`:
/// the 66k identified people on that plan).
fn passing_people(c: &Client, pm: &str, q: &InsightsQuery) -> Result<Passing, StoreError> {
    let db = &c.database;
    let (props, conds) = UserProps::filtered(&q.filters);
    let cond = format!("toUInt8({})", conds.join(" AND "));
    let nothing: Vec<String> = (0..props.0.len())
        .map(|n| {
            format!("'' AS up{n}_v, toUInt8(0) AS up{n}_n, toFloat64(0) AS up{n}_r, toUInt8(0) AS up{n}_h")
        })
        .collect();
    let (rows, _) = c.select(&format!(
        "SELECT {cond} AS ok FROM (SELECT {})",
        nothing.join(", ")
    ))?;
    let without = rows.first().is_some_and(|r| u(r, "ok") == 1);
    // The people with any of the properties (with one, its table has them all).
    let with_any = match &props.0[..] {
        [k] => user_prop_table(db, pm, k, 0),
        keys => {
            let people = format!(
                "SELECT DISTINCT {PERSON_H} AS person_h
                 FROM (SELECT anon_h, {person_cols} FROM {db}.trait_rollup WHERE key IN {keys})",
                person_cols = person_cols(pm),
                keys = list(keys),
            );
            format!("({})", props.joined(db, pm, people))
        }
    };
    let listed = c.select_binary(&format!(
        "SELECT person_h FROM {with_any} WHERE {cond} != {}",
        u8::from(without),
    ))?;
    let mut r = rowbinary::Reader(&listed);
    let mut out = Passing {
        listed: HashSet::with_capacity_and_hasher(listed.len() / 8, Default::default()),
        listed_pass: !without,
    };
    while let Some(person) = r.take::<8>() {
        out.listed.insert(u64::from_le_bytes(person));
    }
    Ok(out)
}

/// For retention `q` that the hourly rollups answer exactly (filters only on the columns of
/// `users_hourly`, a zone whose days begin on UTC hours, at least one whole hour in the
/// range): its step events as rows `anon_h`, `time_ms`, `mask` ([`mask_sql`]'s bits), one per
/// anonymous ID, hour and step for the whole hours (`time_ms` the hour's start, in the same
/// day and week as every event of the hour), and one per raw event for the partial hours at
/// either end. Any event comes from `users_hourly`, a named one from `steps_hourly`.
pub(super) fn hourly_steps_source(
    c: &Client,
    pm: &str,
    q: &journeys::StepQuery,
    tz: chrono_tz::Tz,
) -> Option<String> {
    use journeys::Step;
    const HOUR: i64 = 3_600_000;
    let db = &c.database;
    let (first, last) = (-(-q.from_ms).div_euclid(HOUR), q.to_ms.div_euclid(HOUR));
    let usable = q.from_ms >= 0
        && first < last
        && q.filters
            .iter()
            .all(|f| matches!(&f.field, Field::Event(col) if HOURLY_DIMS.contains(col)))
        && whole_hour_offsets(tz, q.from_ms, q.to_ms);
    if !usable {
        return None;
    }
    let conds = hourly_conds(first, last, &q.sites, &q.filters);
    // One part per distinct step, with the bits of every step it is.
    let mut parts: Vec<(&Step, u32)> = Vec::new();
    for (i, step) in q.steps.iter().enumerate() {
        match parts.iter_mut().find(|(s, _)| *s == step) {
            Some((_, bits)) => *bits |= 1 << i,
            None => parts.push((step, 1 << i)),
        }
    }
    let mut sql: Vec<String> = parts
        .into_iter()
        .map(|(step, bits)| {
            let (table, which) = match step {
                Step::Any => ("users_hourly", String::new()),
                Step::Event(name) => ("steps_hourly", format!("name = {} AND ", lit(name))),
                Step::Page(path) => (
                    "steps_hourly",
                    format!("name = '$pageview' AND page = {} AND ", lit(path)),
                ),
            };
            format!(
                "SELECT anon_h, hour * {HOUR} AS time_ms, toUInt32({bits}) AS mask
                 FROM {db}.{table} WHERE {which}{conds}"
            )
        })
        .collect();
    for (from_ms, to_ms) in [(q.from_ms, first * HOUR), (last * HOUR, q.to_ms)] {
        if from_ms < to_ms {
            let source = journey_source(
                c,
                pm,
                (from_ms, to_ms),
                journeys::Step::names(&q.steps),
                &q.filters,
                &q.sites,
                None,
            );
            sql.push(format!(
                "SELECT anon_h, time_ms, mask
                 FROM (SELECT anon_h, time_ms, toUInt32({mask}) AS mask FROM ({source}))
                 WHERE mask != 0",
                mask = mask_sql(&q.steps),
            ));
        }
    }
    Some(sql.join(" UNION ALL "))
}

/// The bucket of a row's `time_ms`, as a number or a date: grouped by as is, and made the
/// label [`bucket_index`] reads (`toString`) only once per bucket, after the grouping (text
/// made for each of millions of rows cost more than the grouping).
fn bucket_expr(q: &InsightsQuery) -> String {
    let local = format!("toDateTime(intDiv(time_ms, 1000), {})", lit(q.tz.name()));
    match q.interval {
        Interval::Hour => "intDiv(time_ms, 3600000)".into(),
        Interval::Day => format!("toDate({local})"),
        Interval::Week => format!("toMonday({local})"),
        Interval::Month => format!("toStartOfMonth({local})"),
    }
}

/// The bucket a label of [`bucket_expr`] stands for, as an index into `starts`.
fn bucket_index(q: &InsightsQuery, label: &str, starts: &[i64]) -> usize {
    let start = match q.interval {
        Interval::Hour => label.parse::<i64>().unwrap_or_default() * 3_600_000,
        _ => chrono::NaiveDate::parse_from_str(label, "%Y-%m-%d")
            .map(|d| day_start(d, q.tz))
            .unwrap_or_default(),
    };
    starts.partition_point(|&s| s <= start).saturating_sub(1)
}

pub fn insights(c: &Client, q: &InsightsQuery) -> Result<Insights, StoreError> {
    let db = &c.database;
    let starts = bucket_starts(q.from_ms, q.to_ms, q.interval, q.tz);
    let pm = persons::current(c)?;
    let (raw, events_only) = insights_source(db, &pm, q);
    // What is counted: the hourly rollup where it answers exactly, else the raw events.
    let source = hourly_users_source(db, &pm, q).unwrap_or_else(|| raw.clone());
    let entity = match q.metric {
        Metric::Events => "event_h",
        Metric::Sessions => "session_h",
        Metric::Users => "person_h",
    };
    // The series are keyed by `by` if given, else by `split`.
    let series_col = match (&q.by, &q.split) {
        (None, Some(_)) => "split",
        _ => "key",
    };
    // One pass: distinct entities per (bucket, series key), merged per key for the ranking
    // and over everything for the total (`WITH TOTALS`; without `by` and `split` the one key's
    // count is the total, and a second merge of every set would cost as much again).
    let keyed = q.by.is_some() || q.split.is_some();
    let totals = if keyed { "WITH TOTALS" } else { "" };
    let bucket = bucket_expr(q);
    let series_sql = match q.metric {
        // Events as rows, those of possible copies (`copies`, see [`event_names`]) kept
        // distinct in a set per bucket and key, merged for the key's and the total count.
        Metric::Events => format!(
            "SELECT k, sum(plain) + uniqExactIfMerge(st) AS n, groupArray(toString(b)) AS bs,
                    groupArray(plain + finalizeAggregation(st)) AS ns
             FROM (SELECT {bucket} AS b, {series_col} AS k, countIf(NOT c) AS plain,
                          uniqExactIfState(event_h, c) AS st
                   FROM (SELECT *, {COPY} AS c FROM ({source})) GROUP BY b, k)
             GROUP BY k {totals} ORDER BY n DESC, k LIMIT 1000",
            COPY = copy_cond(db),
        ),
        _ => format!(
            "SELECT k, uniqExactMerge(st) AS n, groupArray(toString(b)) AS bs,
                    groupArray(finalizeAggregation(st)) AS ns
             FROM (SELECT {bucket} AS b, {series_col} AS k, uniqExactState({entity}) AS st
                   FROM ({source}) GROUP BY b, k)
             GROUP BY k {totals} ORDER BY n DESC, k LIMIT 1000"
        ),
    };
    // With `by` and `split`, the table's pairs are counted by a statement of their own.
    let pairs_sql = (q.by.is_some() && q.split.is_some()).then(|| {
        let n = match q.metric {
            Metric::Events => format!(
                "{} AS n FROM (SELECT *, {} AS c FROM ({source}))",
                events_counted("1"),
                copy_cond(db)
            ),
            _ => format!("uniqExact({entity}) AS n FROM ({source})"),
        };
        format!(
            "SELECT key, split, {n}
             GROUP BY key, split ORDER BY n DESC, key, split LIMIT 1000"
        )
    });
    let source_from = |from_ms: i64| {
        let part = InsightsQuery {
            from_ms,
            ..q.clone()
        };
        insights_source(db, &pm, &part).0
    };
    let range = (q.from_ms, q.to_ms);
    let buckets = starts.len().max(1);
    // The bucket of a time of the rows the collector counts: that of the start of its hour
    // (the zone's buckets begin on UTC hours) or second.
    let bucket = |start: i64| starts.partition_point(|&s| s <= start).saturating_sub(1);
    // What the collector does not count: the statements at once, each on its own
    // connection (one statement leaves part of two cores idle: at 2M events, users by
    // browser split by country took 124 ms one after another).
    let stated = || -> Result<tally::Counts, StoreError> {
        std::thread::scope(|scope| {
            let pairs = pairs_sql.map(|sql| scope.spawn(move || c.select(&sql)));
            let (rows, totals) = c.select(&series_sql)?;
            let pairs = pairs.map(joined).transpose()?;
            let total = match &totals {
                Some(t) => u(t, "n"),
                None if !keyed => rows.first().map_or(0, |r| u(r, "n")),
                None => 0,
            };
            let keys = rows
                .iter()
                .map(|r| {
                    let labels = r["bs"].as_array().map(Vec::as_slice).unwrap_or_default();
                    let values = r["ns"].as_array().map(Vec::as_slice).unwrap_or_default();
                    let per_bucket = labels
                        .iter()
                        .zip(values)
                        .map(|(label, n)| {
                            let label = label.as_str().unwrap_or_default();
                            (
                                bucket_index(q, label, &starts),
                                n.as_u64().unwrap_or_default(),
                            )
                        })
                        .collect();
                    (s(r, "k"), u(r, "n"), per_bucket)
                })
                .collect();
            let pairs = pairs
                .map(|(rows, _)| rows)
                .unwrap_or_default()
                .iter()
                .map(|r| (s(r, "key"), s(r, "split"), u(r, "n")))
                .collect();
            Ok(tally::Counts { keys, total, pairs })
        })
    };
    let rows = user_rows(db, &pm, q);
    // With user property filters the collector decides who passes them ([`passing_people`])
    // for the count and the sample alike: asked, and the sample taken from the events alone,
    // while the rows come.
    let user_filters = q
        .filters
        .iter()
        .any(|f| matches!(f.field, Field::UserProp(_)));
    let passing_too = rows.is_some() && user_filters;
    let events_only = match passing_too {
        true => {
            let mut plain = q.clone();
            plain
                .filters
                .retain(|f| !matches!(f.field, Field::UserProp(_)));
            insights_source(db, &pm, &plain).1
        }
        false => events_only,
    };
    let (counted, sample_users) = std::thread::scope(|scope| {
        let side = scope.spawn(|| {
            let passing = passing_too.then(|| passing_people(c, &pm, q)).transpose()?;
            let sample = sample_users(
                c,
                &pm,
                &source_from,
                events_only.as_deref(),
                range,
                passing.as_ref(),
            )?;
            Ok::<_, StoreError>((passing, sample))
        });
        // Users without a split by a user property ([`user_rows`]): counted in the collector.
        let dealt = match &rows {
            Some((rows, unit)) => {
                let persons = persons::read(c, &pm)?;
                tally::read(c, &persons, rows, buckets, |t| bucket(t * unit))?
            }
            None => None,
        };
        let (passing, sample) = joined(side)?;
        let counted = match dealt {
            Some(d) => d.count(&|person| passing.as_ref().is_none_or(|p| p.passes(person))),
            None => stated()?,
        };
        Ok::<_, StoreError>((counted, sample))
    })?;
    let tally::Counts { keys, total, pairs } = counted;
    let series_keys: Vec<Option<String>> = match (&q.by, &q.split) {
        (None, None) => vec![None],
        _ => keys
            .iter()
            .take(20)
            .map(|k| non_empty(k.0.clone()))
            .collect(),
    };
    let mut counts = vec![0u64; series_keys.len() * buckets];
    // With `split` alone, the table has a row per bucket and value.
    let mut per_bucket: HashMap<(usize, Option<String>), u64> = HashMap::new();
    for (key, _, in_buckets) in &keys {
        let key = non_empty(key.clone());
        let rank = series_keys.iter().position(|k| *k == key);
        for &(b, n) in in_buckets {
            if let Some(rank) = rank {
                counts[rank * buckets + b] += n;
            }
            if q.by.is_none() && q.split.is_some() {
                *per_bucket.entry((b, key.clone())).or_default() += n;
            }
        }
    }
    let series = series_from_grid(series_keys, &starts, &counts);
    let mut table: Vec<TableRow> = match (&q.by, &q.split) {
        (None, None) => Vec::new(),
        (Some(_), None) => keys
            .into_iter()
            .map(|(key, value, _)| TableRow {
                key: non_empty(key),
                split: None,
                value,
            })
            .collect(),
        (Some(_), Some(_)) => pairs
            .into_iter()
            .map(|(key, split, value)| TableRow {
                key: non_empty(key),
                split: non_empty(split),
                value,
            })
            .collect(),
        (None, Some(_)) => per_bucket
            .into_iter()
            .map(|((b, split), value)| TableRow {
                key: Some(rfc3339(starts.get(b).copied().unwrap_or(q.from_ms))),
                split,
                value,
            })
            .collect(),
    };
    sort_table(&mut table, q.by.is_none());
    Ok(Insights {
        total,
        series,
        table,
        sample_users,
    })
}

/// Where the windows that end at `end` and last `spans` begin, those after `after`, the
/// shortest first: questions after the latest rows of a range look in the windows in turn,
/// reading the days of each only, until one holds enough (then in the whole range).
fn windows_back(after: i64, end: i64, spans: &[i64]) -> impl Iterator<Item = i64> + '_ {
    spans
        .iter()
        .map(move |&span| end.saturating_sub(span))
        .filter(move |&since| since > after)
}

/// Whether a row's event may be stored twice (its `event_h` noted in `copies`): counts of
/// events take the other rows as they are and count these distinct ([`events_counted`]).
fn copy_cond(db: &str) -> String {
    format!("event_h IN (SELECT event_h FROM {db}.copies)")
}

/// The events among the rows that pass `only`, with `c` the rows' [`copy_cond`]: rows as
/// they are, those of possible copies by distinct `event_h`.
fn events_counted(only: &str) -> String {
    format!("countIf(NOT c AND {only}) + uniqExactIf(event_h, c AND {only})")
}

/// What a scoped thread gave; its panic is the caller's.
fn joined<T>(h: std::thread::ScopedJoinHandle<'_, T>) -> T {
    h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// `f` over the first half of `piles` and, on another thread, over the second: the piles of
/// an answer dealt by person or session, which never share one (a panic there is this
/// call's).
pub(super) fn in_two<T: Send, R: Send>(
    mut piles: Vec<T>,
    f: impl Fn(Vec<T>) -> R + Sync,
) -> (R, R) {
    let second = piles.split_off(piles.len() / 2);
    std::thread::scope(|s| {
        let other = s.spawn(|| f(second));
        (f(piles), joined(other))
    })
}

/// The events the journeys walk (of these names, none: all), once each, with columns
/// `event_h`, `session_h`, `person_h`, `person`, `time_ms`, `key` (the name and the path,
/// split by [`name_and_path`]) and `split` (the value of `split`, `''` without one).
pub(super) fn journey_source(
    c: &Client,
    pm: &str,
    (from_ms, to_ms): (i64, i64),
    events: Vec<String>,
    filters: &[Filter],
    sites: &[String],
    split: Option<Field>,
) -> String {
    // The name and the path as one key (a step may be either).
    const NAME_AND_PATH: &str = "concat(name, '\\0', path)";
    insights_source(
        &c.database,
        pm,
        &InsightsQuery {
            metric: Metric::Events,
            from_ms,
            to_ms,
            interval: Interval::Day,
            events,
            by: Some(Field::Event(NAME_AND_PATH)),
            split,
            filters: filters.to_vec(),
            sites: sites.to_vec(),
            tz: chrono_tz::Tz::UTC,
        },
    )
    .0
}

/// The [`journey_source`] of user paths `q` (every event, or page views only) under person map
/// `pm`.
pub(super) fn path_source(
    c: &Client,
    pm: &str,
    q: &journeys::PathQuery,
    split: Option<Field>,
) -> String {
    let pages = if q.pages_only {
        vec!["$pageview".into()]
    } else {
        Vec::new()
    };
    journey_source(
        c,
        pm,
        (q.from_ms, q.to_ms),
        pages,
        &q.filters,
        &q.sites,
        split,
    )
}

/// The event name and path of the `key` of a row of [`journey_source`].
fn name_and_path(key: &str) -> (String, String) {
    match key.split_once('\0') {
        Some((name, path)) => (name.to_owned(), path.to_owned()),
        None => (key.to_owned(), String::new()),
    }
}

/// The rows of a `TabSeparated` answer of `N` columns, each as its fields (still escaped;
/// `""` for a missing one), without an allocation per row.
fn tsv_fixed<const N: usize>(text: &str) -> impl Iterator<Item = [&str; N]> {
    text.lines().map(|line| {
        let mut row = [""; N];
        for (slot, field) in row.iter_mut().zip(line.split('\t')) {
            *slot = field;
        }
        row
    })
}

/// Field `n` of a `TabSeparated` row as a number (0 if missing).
pub(super) fn tsv_num<T: std::str::FromStr + Default>(row: &[&str], n: usize) -> T {
    row.get(n).and_then(|f| f.parse().ok()).unwrap_or_default()
}

/// The SQL of [`journeys::Step::mask`] over the `name_h` (the name's hash) and `path` of a
/// row of [`journey_source`]: which of `steps` the event is, as bits (a `UInt32`), so that an
/// answer carries numbers, not names and paths. A few names (or paths) are compared one by
/// one, the bits of the one that matches added up (an event has one name and one path, so at
/// most one term of each sum is not 0); more are looked up once (`transform`). At 10M events,
/// three names compared as text: 220–250 ms, looked up: 280–300 ms (the lookup wins from
/// about five); compared as hashes, the funnel's whole statement took 120 ms less.
pub(super) fn mask_sql(steps: &[journeys::Step]) -> String {
    mask_sql_of(steps, false)
}

/// [`mask_sql`], with page views' paths compared by their label's hash (`label_h`, as
/// `events` and `step_events` make it) when `labels`, else as text (`path`).
fn mask_sql_of(steps: &[journeys::Step], labels: bool) -> String {
    use journeys::Step;
    let (mut any, mut names, mut paths) = (0u32, Vec::new(), Vec::new());
    for (i, step) in steps.iter().enumerate() {
        let (list, key) = match step {
            Step::Any => {
                any |= 1 << i;
                continue;
            }
            Step::Event(name) => (&mut names, name),
            Step::Page(path) => (&mut paths, path),
        };
        match list.iter_mut().find(|(k, _)| k == key) {
            Some((_, bits)) => *bits |= 1u32 << i,
            None => list.push((key.clone(), 1u32 << i)),
        }
    }
    // Names by their hash (`name_h`, a number, read and compared in a fraction of the time
    // of the text), paths as they are.
    let name = |k: &str| format!("cityHash64({})", lit(k));
    let path = |k: &str| lit(k);
    let lookup = |col: &str, value: &dyn Fn(&str) -> String, list: &[(String, u32)]| {
        if list.len() <= COMPARED_KEYS {
            let terms: Vec<String> = list
                .iter()
                .map(|(k, b)| format!("{b} * ({col} = {})", value(k)))
                .collect();
            return format!("toUInt32({})", terms.join(" + "));
        }
        let keys: Vec<String> = list.iter().map(|(k, _)| value(k)).collect();
        let bits: Vec<String> = list.iter().map(|(_, b)| b.to_string()).collect();
        format!(
            "transform({col}, [{}], [toUInt32({})], toUInt32(0))",
            keys.join(", "),
            bits.join("), toUInt32(")
        )
    };
    let mut parts = vec![format!("toUInt32({any})")];
    if !names.is_empty() {
        parts.push(lookup("name_h", &name, &names));
    }
    let label = |k: &str| format!("bitXor({}, cityHash64({}))", name("$pageview"), lit(k));
    if !paths.is_empty() {
        let (col, value): (&str, &dyn Fn(&str) -> String) = match labels {
            true => ("label_h", &label),
            false => ("path", &path),
        };
        parts.push(format!(
            "if(name_h = {}, {}, toUInt32(0))",
            name("$pageview"),
            lookup(col, value, &paths)
        ));
    }
    parts
        .into_iter()
        .reduce(|a, b| format!("bitOr({a}, {b})"))
        .unwrap_or_default()
}

/// Up to this many names (or paths) [`mask_sql`] compares one by one.
const COMPARED_KEYS: usize = 4;

/// The events that are steps, each with its person's hash and which steps it is: the events
/// an insights query by name and path would count. Copies of an event not merged away yet
/// are not removed here: a copy has its original's person, time, steps and values, and the
/// funnel and retention rules give the same answer with or without it. Read in `Native`
/// (text only for a breakdown value or a person asked for).
pub fn step_events(
    c: &Client,
    q: &journeys::StepQuery,
) -> Result<journeys::StepEvents, StoreError> {
    let StepRows {
        sql,
        persons,
        narrow,
    } = step_rows(c, q)?;
    let answer = c.select_native(&sql)?;
    let bad = || StoreError::ClickHouse(ChError::Answer("step rows not as asked".into()));
    let blocks = rowbinary::native_blocks(&answer).ok_or_else(bad)?;
    if q.breakdown.is_none() && !q.people {
        let hits = plain_hits(&blocks, &persons, q.from_ms, narrow).ok_or_else(bad)?;
        return Ok(journeys::StepEvents {
            hits,
            keys: vec![None],
            people: HashMap::new(),
        });
    }
    let mut people = HashMap::new();
    let mut ids: HashMap<&[u8], u32> = HashMap::new();
    let mut keys: Vec<Option<String>> = vec![None];
    let mut hits = Vec::with_capacity(blocks.iter().map(|b| b.0).sum());
    for (rows, columns) in &blocks {
        let [anon, time, masks, rest @ ..] = columns.as_slice() else {
            return Err(bad());
        };
        let split = q.breakdown.is_some().then(|| rest.first()).flatten();
        let person = q.people.then(|| rest.last()).flatten();
        for i in 0..*rows {
            let anon_h = anon.u64(i);
            let person_h = persons.get(&anon_h).copied().unwrap_or(anon_h);
            if let Some(names) = person {
                people
                    .entry(person_h)
                    .or_insert_with(|| String::from_utf8_lossy(names.text(i)).into_owned());
            }
            let value = split.map_or(&[][..], |s| s.text(i));
            let key = if value.is_empty() {
                0
            } else {
                *ids.entry(value).or_insert_with(|| {
                    keys.push(non_empty(String::from_utf8_lossy(value).into_owned()));
                    keys.len() as u32 - 1
                })
            };
            hits.push(journeys::StepHit {
                person: person_h,
                time_ms: if narrow {
                    q.from_ms + i64::from(time.u32(i))
                } else {
                    time.u64(i) as i64
                },
                mask: masks.u32(i),
                key,
            });
        }
    }
    Ok(journeys::StepEvents { hits, keys, people })
}

/// The statement of [`step_events`] and what reading its answer needs.
struct StepRows {
    sql: String,
    /// The person of each anonymous ID that has one other than itself.
    persons: Arc<persons::PersonMap>,
    /// Whether times come as 4 bytes, in ms from the range's start.
    narrow: bool,
}

/// The statement of [`step_rows`] over `step_events` (the steps' rows alone, found by the
/// table's key), when it answers `q`: no breakdown, no people's IDs, and filters only on its
/// columns (bots, site, device, browser, OS, country). `time` and `mask_type` are as there.
fn step_events_sql(
    db: &str,
    q: &journeys::StepQuery,
    time: &str,
    mask_type: &str,
) -> Option<String> {
    let mut conds = step_events_conds(q)?;
    // The names the steps need (none when a step is any event: every row).
    let names = journeys::Step::names(&q.steps);
    if !names.is_empty() {
        let hashes: Vec<String> = names
            .iter()
            .map(|n| format!("cityHash64({})", lit(n)))
            .collect();
        conds = format!("name_h IN ({}) AND {conds}", hashes.join(", "));
    }
    let mask = mask_sql_of(&q.steps, true);
    // Steps that are all named events: every row of their names is a step, so no row's mask
    // is 0 and the second filter (a copy of every column that passes) is left out.
    if all_named(&q.steps) {
        return Some(format!(
            "SELECT anon_h, {time}, to{mask_type}({mask}) FROM {db}.step_events WHERE {conds}"
        ));
    }
    Some(format!(
        "SELECT anon_h, {time}, to{mask_type}(mask)
         FROM (SELECT anon_h, time_ms, {mask} AS mask FROM {db}.step_events WHERE {conds})
         WHERE mask != 0"
    ))
}

/// Whether every step is a named event (no page, no any event).
fn all_named(steps: &[journeys::Step]) -> bool {
    steps.iter().all(|s| matches!(s, journeys::Step::Event(_)))
}

/// The conditions on `step_events` of `q` other than the names, when that table answers it:
/// no breakdown, no people's IDs, and filters only on its columns (bots, site, device,
/// browser, OS, country).
fn step_events_conds(q: &journeys::StepQuery) -> Option<String> {
    let on_columns =
        |f: &Filter| matches!(&f.field, Field::Event(col) if HOURLY_DIMS.contains(col));
    if q.breakdown.is_some() || q.people || !q.filters.iter().all(on_columns) {
        return None;
    }
    let mut conds = vec![format!(
        "time_ms >= {} AND time_ms < {}",
        q.from_ms, q.to_ms
    )];
    if !q.sites.is_empty() {
        conds.push(format!("site IN {}", list(&q.sites)));
    }
    for f in &q.filters {
        if let Field::Event(col) = &f.field {
            conds.push(bot_cond(f).unwrap_or_else(|| cond(f, &column(col))));
        }
    }
    Some(conds.join(" AND "))
}

/// The statements of [`step_piles`] when every step is a named event and `step_events`
/// answers: one a name, its rows' steps known from the name, so that ClickHouse works out no
/// mask (at 10M events, 6M rows: 130 ms of its CPU for the three names of a funnel against
/// 155–165 ms for one statement with the mask).
fn step_name_statements(db: &str, q: &journeys::StepQuery) -> Option<Vec<(String, u32)>> {
    if !all_named(&q.steps) {
        return None;
    }
    let conds = step_events_conds(q)?;
    let time = narrow_time_sql(q);
    let statements = journeys::Step::names(&q.steps)
        .iter()
        .map(|name| {
            (
                format!(
                    "SELECT anon_h, {time} FROM {db}.step_events \
                     WHERE name_h = cityHash64({}) AND {conds}",
                    lit(name)
                ),
                journeys::Step::mask(&q.steps, name, ""),
            )
        })
        .collect();
    Some(statements)
}

/// A time as 4 bytes: ms from the range's start ([`narrow_times`]).
fn narrow_time_sql(q: &journeys::StepQuery) -> String {
    format!("toUInt32(time_ms - {})", q.from_ms)
}

fn step_rows(c: &Client, q: &journeys::StepQuery) -> Result<StepRows, StoreError> {
    let pm = persons::current(c)?;
    // A byte a row for the mask while it fits one.
    let mask_type = if q.steps.len() <= 8 {
        "UInt8"
    } else {
        "UInt16"
    };
    // Texts only when asked for: a breakdown's values, the people's IDs.
    let mut texts = String::new();
    if q.breakdown.is_some() {
        texts.push_str(", split");
    }
    if q.people {
        texts.push_str(", person");
    }
    // Anonymous IDs' hashes, their people looked up here: a `joinGet` per row costs
    // ClickHouse more than the whole map read once and a lookup per row costs here.
    let persons = persons::read(c, &pm)?;
    // In `Native`, column by column: at 10M events the server writes the 6.4M rows of a
    // three-step funnel in two thirds of `RowBinary`'s time.
    // Times as milliseconds from the range's start when they fit 4 bytes (49 days).
    let narrow = narrow_times(q);
    let time = if narrow {
        narrow_time_sql(q)
    } else {
        "time_ms".into()
    };
    let sql = step_events_sql(&c.database, q, &time, mask_type).unwrap_or_else(|| {
        // No list of the steps' names: the mask keeps only the events that are steps, and a
        // name list as well cost the statement 80 ms more at 10M events.
        let source = journey_source(
            c,
            &pm,
            (q.from_ms, q.to_ms),
            Vec::new(),
            &q.filters,
            &q.sites,
            q.breakdown.clone(),
        );
        format!(
            "SELECT anon_h, {time}, to{mask_type}(mask){texts}
             FROM (SELECT anon_h, time_ms{texts}, {mask} AS mask FROM ({source}))
             WHERE mask != 0",
            mask = mask_sql(&q.steps),
        )
    });
    Ok(StepRows {
        sql,
        persons,
        narrow,
    })
}

/// Whether the times of `q`'s range fit 4 bytes as ms from its start (49 days).
fn narrow_times(q: &journeys::StepQuery) -> bool {
    q.to_ms.saturating_sub(q.from_ms) < i64::from(u32::MAX)
}

/// The hits of [`step_events`] dealt by person into piles for [`journeys::funnel_piles`] block
/// by block as ClickHouse sends them; `None` for a question piles do not hold (a breakdown,
/// people, times over 49 days from the start). At 10M events (6M hits) the dealing ends about
/// when the answer does, and taking the piles apart and walking them take 60–75 ms after it
/// (from a file of the hits), where reading the whole answer took 85 ms after it and sorting
/// and walking it 180 ms more. Steps that are all named events are read one statement a name
/// ([`step_name_statements`]).
pub fn step_piles(
    c: &Client,
    q: &journeys::StepQuery,
) -> Result<Option<journeys::Piles>, StoreError> {
    if q.breakdown.is_some() || q.people || !narrow_times(q) {
        return Ok(None);
    }
    let StepRows {
        sql,
        persons,
        narrow,
    } = step_rows(c, q)?;
    let statements = match step_name_statements(&c.database, q) {
        Some(by_name) => by_name.into_iter().map(|(s, m)| (s, Some(m))).collect(),
        None => vec![(sql, None)],
    };
    let mut piles = journeys::Piles::new(q.from_ms);
    for (sql, mask) in statements {
        c.select_native_each(&sql, |block| {
            rowbinary::native_blocks(block)
                .and_then(|blocks| {
                    blocks.iter().try_for_each(|(rows, columns)| {
                        plain_rows(*rows, columns, mask, &persons, q.from_ms, narrow, |hit| {
                            let ms = (hit.time_ms - q.from_ms) as u32;
                            piles.push(hit.person, ms, hit.mask)
                        })
                    })
                })
                .ok_or_else(|| ChError::Answer("step rows not as asked".into()))
        })?;
    }
    Ok(Some(piles))
}

/// Each row of a block of step rows without texts (`anon_h`, the time, the mask; or without
/// the mask when every row's is `mask`) as a hit to `to`, its anonymous ID's person from
/// `persons`; `from_ms` is what a narrow time (4 bytes) counts from. `None` if a column is not
/// as asked.
fn plain_rows(
    rows: usize,
    columns: &[rowbinary::Column<'_>],
    mask: Option<u32>,
    persons: &persons::PersonMap,
    from_ms: i64,
    narrow: bool,
    mut to: impl FnMut(journeys::StepHit),
) -> Option<()> {
    // The masks' column, a byte or two a row; none when all are `mask`.
    let (anon, time, masks, wide) = match (columns, mask) {
        ([anon, time], Some(_)) => (anon, time, &[][..], false),
        ([anon, time, masks], None) => match masks.fixed(1) {
            Some(m) => (anon, time, m, false),
            None => (anon, time, masks.fixed(2)?, true),
        },
        _ => return None,
    };
    let anon = anon.fixed(8)?;
    let time = time.fixed(if narrow { 4 } else { 8 })?;
    if anon.len() != rows * 8 {
        return None;
    }
    // The rows come by anonymous ID (within each day from `events`, within each name from
    // `step_events`: the tables' order), about five an ID: the last row's person serves the
    // next of its ID with no lookup (at 10M events, 6.4M rows, 10–20 ms less CPU a funnel),
    // and the next ID is looked for from the last ([`persons::PersonMap::cursor`]).
    let mut last = None;
    let mut cursor = persons.cursor();
    for i in 0..rows {
        let anon_h = rowbinary::le_u64(anon, i);
        let person = match last {
            Some((a, p)) if a == anon_h => p,
            _ => {
                let p = cursor.person(anon_h);
                last = Some((anon_h, p));
                p
            }
        };
        to(journeys::StepHit {
            person,
            time_ms: if narrow {
                from_ms + i64::from(u32::from_le_bytes(time[i * 4..i * 4 + 4].try_into().ok()?))
            } else {
                i64::from_le_bytes(time[i * 8..i * 8 + 8].try_into().ok()?)
            },
            mask: match mask {
                Some(all) => all,
                None if wide => {
                    u32::from(u16::from_le_bytes(masks[i * 2..i * 2 + 2].try_into().ok()?))
                }
                None => u32::from(*masks.get(i)?),
            },
            key: 0,
        });
    }
    Some(())
}

/// The hits of step rows without texts (`anon_h`, the time, the mask: [`step_events`] without
/// a breakdown or people), each anonymous ID's person from `persons`; `from_ms` is what a
/// narrow time (4 bytes) counts from. Half of the blocks are read on another thread (at 10M
/// events, 6.4M rows: 135 ms on one). `None` if a column is not as asked.
fn plain_hits(
    blocks: &[(usize, Vec<rowbinary::Column<'_>>)],
    persons: &persons::PersonMap,
    from_ms: i64,
    narrow: bool,
) -> Option<Vec<journeys::StepHit>> {
    let total: usize = blocks.iter().map(|b| b.0).sum();
    let empty = journeys::StepHit {
        person: 0,
        time_ms: 0,
        mask: 0,
        key: 0,
    };
    let mut hits = vec![empty; total];
    // Each block's rows into its own part of `hits`.
    let fill = |blocks: &[(usize, Vec<rowbinary::Column<'_>>)],
                mut out: &mut [journeys::StepHit]| {
        for (rows, columns) in blocks {
            let (mine, rest) = std::mem::take(&mut out).split_at_mut(*rows);
            out = rest;
            let mut slots = mine.iter_mut();
            plain_rows(*rows, columns, None, persons, from_ms, narrow, |hit| {
                if let Some(slot) = slots.next() {
                    *slot = hit;
                }
            })?;
        }
        Some(())
    };
    // The blocks up to about half of the rows on the other thread.
    let mut half = 0;
    let mut rows = 0;
    while half < blocks.len() && rows * 2 < total {
        rows += blocks[half].0;
        half += 1;
    }
    if rows == total || rows == 0 {
        fill(blocks, &mut hits)?;
        return Some(hits);
    }
    let (a, b) = hits.split_at_mut(rows);
    let (first, second) = blocks.split_at(half);
    let done = std::thread::scope(|s| {
        let other = s.spawn(|| fill(first, a));
        let mine = fill(second, b);
        let theirs = other
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e));
        mine.and(theirs)
    });
    done.map(|()| hits)
}

/// The periods of a retention question ([`journeys::StepQuery::periods`]) of days or weeks,
/// without a breakdown or people, as SQL: see [`Period::sql`].
pub(super) struct Period {
    number: &'static str,
    tz: String,
    first: i64,
    /// How many periods there are.
    pub count: usize,
}

impl Period {
    /// The period of a time in ms (column `col`) as SQL: its day or week in the time zone,
    /// counted from the first period's, kept within the periods.
    pub fn sql(&self, col: &str) -> String {
        let Period {
            number,
            tz,
            first,
            count,
        } = self;
        format!(
            "toUInt64(greatest(0, least({last}, {number}(toDateTime(intDiv({col}, 1000)), {tz})
                 - {number}(toDateTime(intDiv({first}, 1000)), {tz}))))",
            last = count - 1,
        )
    }
}

/// The periods of `q` as [`Period`], if they are days or weeks and `q` has no breakdown and
/// names no people.
pub(super) fn retention_period(q: &journeys::StepQuery) -> Option<Period> {
    let p = q.periods.as_ref()?;
    let first = *p.starts.first()?;
    if q.breakdown.is_some() || q.people {
        return None;
    }
    let number = match p.interval {
        Interval::Day => "toRelativeDayNum",
        Interval::Week => "toRelativeWeekNum",
        Interval::Hour | Interval::Month => return None,
    };
    Some(Period {
        number,
        tz: lit(p.tz.name()),
        first,
        count: p.starts.len(),
    })
}

/// The events that user paths walk, each with its session's hash and its label. Copies of an
/// event not merged away yet are not removed: a copy lands next to its original in
/// [`journeys::paths`]' order, and an event repeated in a row counts once.
pub fn path_events(
    c: &Client,
    q: &journeys::PathQuery,
) -> Result<(Vec<journeys::PathEvent>, Vec<journeys::Label>), StoreError> {
    let pm = persons::current(c)?;
    let source = path_source(c, &pm, q, None);
    let text = c.select_tsv(&format!("SELECT session_h, time_ms, key FROM ({source})"))?;
    // Labels by the text of their key as it came, then by what it stands for (two keys
    // stand for one label when an event other than a page view has different paths).
    let mut seen: HashMap<&str, u32> = HashMap::new();
    let mut ids: HashMap<journeys::Label, u32> = HashMap::new();
    let mut labels: Vec<journeys::Label> = Vec::new();
    let events = tsv_fixed::<3>(&text)
        .map(|r| {
            let raw = r[2];
            let label = *seen.entry(raw).or_insert_with(|| {
                let (name, path) = name_and_path(&unescape(raw));
                let path = if name == "$pageview" {
                    path
                } else {
                    String::new()
                };
                *ids.entry((name, path)).or_insert_with_key(|k| {
                    labels.push(k.clone());
                    labels.len() as u32 - 1
                })
            });
            journeys::PathEvent {
                session: tsv_num(&r, 0),
                time_ms: tsv_num(&r, 1),
                label,
            }
        })
        .collect();
    Ok((events, labels))
}

/// The five people with the latest matching events. First from the latest 1,000 matching
/// events (read from `events` alone when no user property filters them, or when `passing`
/// decides those filters here, their people looked up afterwards); only if those hold fewer
/// than five people, and there are more events, by grouping every matching event by person. `source_from(ms)` is the query's source from
/// `ms` to the range's end (the whole of it from `from_ms`).
fn sample_users(
    c: &Client,
    pm: &str,
    source_from: &dyn Fn(i64) -> String,
    events_only: Option<&str>,
    (from_ms, to_ms): (i64, i64),
    passing: Option<&Passing>,
) -> Result<Vec<String>, StoreError> {
    const HOUR: i64 = 3_600_000;
    const DAY: i64 = 24 * HOUR;
    let db = &c.database;
    // The latest 1,000 of the range's events: those of its last hour, day or week when that
    // many are there (every earlier event is older than all of them), which reads the
    // granules of those days only (the day leads the sort key of `events`); else of the whole
    // range. Each window is `(since, its condition on events)`. A window ends where the range
    // does, not at a UTC midnight, so that the last day holds a day's events at any hour.
    // Under a user property filter each window joins every person's properties (at 10M
    // events about 100 ms), so the last hour is not tried alone.
    let spans: &[i64] = match events_only {
        Some(_) => &[HOUR, DAY, 7 * DAY],
        None => &[DAY, 7 * DAY],
    };
    let windows: Vec<(i64, String)> = windows_back(from_ms.max(0), to_ms, spans)
        .map(|since| {
            let cond = format!(
                " AND intDiv(time_ms, {DAY}) >= {} AND time_ms >= {since}",
                since / DAY
            );
            (since, cond)
        })
        .chain([(from_ms, String::new())])
        .collect();
    // How many of the latest events were read (before [`Passing`] kept some).
    let read;
    let latest: Vec<String> = match events_only {
        Some(conds) => {
            let mut rows = Vec::new();
            for (_, window) in &windows {
                rows = c
                    .select(&format!(
                        "SELECT anonymous_id, toString(anon_h) AS h FROM {db}.events
                         WHERE {conds}{window} ORDER BY time_ms DESC LIMIT 1000"
                    ))?
                    .0;
                if rows.len() == 1000 {
                    break;
                }
            }
            read = rows.len();
            // Only the events of people who pass the user property filters, if any.
            if let Some(passing) = passing {
                let persons = persons::read(c, pm)?;
                rows.retain(|r| {
                    let anon = s(r, "h").parse().unwrap_or_default();
                    passing.passes(persons.get(&anon).copied().unwrap_or(anon))
                });
            }
            let anons: Vec<String> = rows.iter().map(|r| s(r, "anonymous_id")).collect();
            let mut unique = anons.clone();
            unique.sort();
            unique.dedup();
            if unique.is_empty() {
                unique.push(String::new());
            }
            let (found, _) = c.select(&format!(
                "SELECT a, {alias_user} AS alias_user
                 FROM (SELECT arrayJoin([{anons}]) AS a) WHERE alias_user != ''",
                alias_user = persons::get(pm, "alias_user", "cityHash64(a)"),
                anons = unique.iter().map(|a| lit(a)).collect::<Vec<_>>().join(","),
            ))?;
            let person_of: HashMap<String, String> = found
                .iter()
                .map(|r| (s(r, "a"), s(r, "alias_user")))
                .collect();
            anons
                .into_iter()
                .map(|a| person_of.get(&a).cloned().unwrap_or(a))
                .collect()
        }
        None => {
            // A user property filters them: the same windows, each through the whole source
            // (its join with the people's properties) over the window alone. At 10M events,
            // 620–700 ms over 30 days.
            let mut rows = Vec::new();
            for &(since, _) in &windows {
                rows = c
                    .select(&format!(
                        "SELECT person FROM ({}) ORDER BY time_ms DESC LIMIT 1000",
                        source_from(since)
                    ))?
                    .0;
                if rows.len() == 1000 {
                    break;
                }
            }
            read = rows.len();
            rows.iter().map(|r| s(r, "person")).collect()
        }
    };
    let source = source_from(from_ms);
    let mut sample: Vec<String> = Vec::new();
    for p in &latest {
        if sample.len() < 5 && !sample.contains(p) {
            sample.push(p.clone());
        }
    }
    if sample.len() < 5 && read == 1000 {
        let (rows, _) = c.select(&format!(
            "SELECT person, max(time_ms) AS t FROM ({source}) GROUP BY person
             ORDER BY t DESC, person DESC LIMIT 5"
        ))?;
        sample = rows.iter().map(|r| s(r, "person")).collect();
    }
    Ok(sample)
}

/// The columns of an event as the user and session views show it.
const VIEW_COLUMNS: &str = "event_id, type, name, time_ms, client_ms, seq, url, path, props,
    traits, session_id, anonymous_id, browser, os, device, country, region, city, site";

/// Events (one row per `event_id`) grouped into sessions in order of their first event, and
/// the trait objects they set, in time order; `clauses` pick the events (`WHERE …`, or
/// `PREWHERE … WHERE …`).
fn load_sessions(c: &Client, clauses: &str) -> Result<(Vec<SessionView>, Traits), StoreError> {
    let db = &c.database;
    let (rows, _) = c.select(&format!(
        "SELECT {VIEW_COLUMNS} FROM {db}.events {clauses}
         ORDER BY time_ms, seq, ver DESC"
    ))?;
    let mut seen = HashSet::new();
    let mut sessions: Vec<SessionView> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut traits = Vec::new();
    for r in rows {
        if !seen.insert(s(&r, "event_id")) {
            continue;
        }
        let time_ms = i(&r, "time_ms");
        if let Some(t) = r["traits"].as_str() {
            if let Ok(Value::Object(t)) = serde_json::from_str(t) {
                traits.push(t);
            }
        }
        let session_id = s(&r, "session_id");
        let at = *index.entry(session_id.clone()).or_insert_with(|| {
            sessions.push(SessionView {
                session_id,
                site: s(&r, "site"),
                anonymous_id: s(&r, "anonymous_id"),
                started_at: rfc3339(time_ms),
                ended_at: String::new(),
                duration_seconds: 0.0,
                browser: non_empty(s(&r, "browser")),
                os: non_empty(s(&r, "os")),
                device: non_empty(s(&r, "device")),
                country: non_empty(s(&r, "country")),
                region: non_empty(s(&r, "region")),
                city: non_empty(s(&r, "city")),
                events: Vec::new(),
            });
            sessions.len() - 1
        });
        let session = &mut sessions[at];
        let started = chrono::DateTime::parse_from_rfc3339(&session.started_at)
            .map(|d| d.timestamp_millis())
            .unwrap_or_default();
        session.ended_at = rfc3339(time_ms);
        session.duration_seconds = (time_ms - started) as f64 / 1000.0;
        session.events.push(EventView {
            event_id: s(&r, "event_id"),
            kind: s(&r, "type"),
            name: s(&r, "name"),
            timestamp: rfc3339(time_ms),
            client_timestamp: rfc3339(i(&r, "client_ms")),
            seq: i(&r, "seq"),
            url: s(&r, "url"),
            path: s(&r, "path"),
            props: serde_json::from_str(&s(&r, "props")).unwrap_or_else(|_| serde_json::json!({})),
        });
    }
    Ok((sessions, traits))
}

/// The user ID that `id` (a user ID or an anonymous ID) belongs to, if identified.
fn identified(c: &Client, id: &str) -> Result<Option<String>, StoreError> {
    let (rows, _) = c.select(&format!(
        "SELECT alias_user FROM {} WHERE alias_user = {id} OR a = {id} LIMIT 1",
        aliases(&c.database, "a"),
        id = lit(id)
    ))?;
    Ok(rows.first().map(|r| s(r, "alias_user")))
}

/// Every anonymous ID of each identified person, sorted. Only the IDs ever joined to one of
/// `users` are grouped (each still to the user of its earliest alias, whoever that is): at
/// 10M events, 132k aliases, 90 ms for grouping every ID, 10 ms for these.
fn anonymous_ids(c: &Client, users: &[String]) -> Result<HashMap<String, Vec<String>>, StoreError> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    if users.is_empty() {
        return Ok(out);
    }
    let db = &c.database;
    let users = list(users);
    let (rows, _) = c.select(&format!(
        "SELECT alias_user, a FROM (
           SELECT anonymous_id AS a, argMin(user_id, (time_ms, event_id)) AS alias_user
           FROM {db}.aliases
           WHERE anonymous_id IN (SELECT anonymous_id FROM {db}.aliases WHERE user_id IN {users})
           GROUP BY anonymous_id)
         WHERE alias_user IN {users} ORDER BY a"
    ))?;
    for r in rows {
        out.entry(s(&r, "alias_user")).or_default().push(s(&r, "a"));
    }
    Ok(out)
}

/// The clauses that pick the events of anonymous IDs `ids` (`PREWHERE … WHERE …`, to follow
/// `FROM events`; more conditions may follow with `AND`): their hashes first, as `PREWHERE`,
/// so that ClickHouse reads the other columns only for the granules that hold them (and
/// `anon_h`, in the sort key, lets the index skip others), then the IDs themselves, so that two
/// IDs of one hash never mix. At 10M events the feed's traits for a page of 50 people: 90 ms,
/// against 430 ms as one `WHERE`.
fn of_anons(ids: &[String]) -> String {
    if ids.is_empty() {
        return format!("WHERE anonymous_id IN {}", list(ids));
    }
    format!(
        "PREWHERE anon_h IN ({}) WHERE anonymous_id IN {}",
        hashes_of(ids),
        list(ids)
    )
}

/// The `anon_h` of each of anonymous IDs `ids`, as a list of SQL expressions.
fn hashes_of(ids: &[String]) -> String {
    let hashes: Vec<String> = ids
        .iter()
        .map(|i| format!("cityHash64({})", lit(i)))
        .collect();
    hashes.join(",")
}

pub fn user(c: &Client, id: &str, scope: &Scope) -> Result<Option<UserDetail>, StoreError> {
    let identified = identified(c, id)?;
    let person = identified.clone().unwrap_or_else(|| id.to_owned());
    let anonymous_ids = match &identified {
        Some(_) => anonymous_ids(c, std::slice::from_ref(&person))?
            .remove(&person)
            .unwrap_or_default(),
        None => vec![person.clone()],
    };
    let (sessions, traits) = load_sessions(
        c,
        &format!(
            "{} AND {}",
            of_anons(&anonymous_ids),
            scope.sql("device", "site", lit)
        ),
    )?;
    Ok(UserDetail::assemble(
        person,
        identified,
        anonymous_ids,
        sessions,
        traits,
    ))
}

/// People: `id`, `uid` (the user ID, `''` if none), `first_ms`, `last_ms`, from the events
/// `scope` counts.
fn people(db: &str, pm: &str, scope: &Scope) -> String {
    format!(
        "SELECT if(uid = '', anon, uid) AS id, uid, first_ms, last_ms FROM (
           SELECT any(anon) AS anon, any(alias_user) AS uid, min(f) AS first_ms,
                  max(l) AS last_ms
           FROM (SELECT anon_h, anon, f, l, {person_cols} FROM ({anons}))
           GROUP BY {PERSON_H})",
        person_cols = person_cols(pm),
        anons = anons(db, scope, ", finalizeAggregation(a_id) AS anon"),
    )
}

/// The rows of `anon_rollup` that `scope` counts, each anonymous ID's first (`f`) and last
/// (`l`) time in it, and `more` columns: an ID may have several rows (one per site, device and
/// part not merged yet), which the callers' grouping by person takes together (`min`, `max`,
/// `any`) as merging them by ID first would, without that grouping (at 10M events, the
/// property keys' people 264–342 → 184–202 ms).
fn anons(db: &str, scope: &Scope, more: &str) -> String {
    format!(
        "SELECT anon_h, finalizeAggregation(a_first) AS f, finalizeAggregation(a_last) AS l{more}
         FROM {db}.anon_rollup WHERE {counted}",
        counted = scope.sql("device", "site", lit),
    )
}

/// The hashes of the [`LATEST_EVENTS`] people of `scope` seen last, of those seen in
/// `[from_ms, to_ms)` (their last time from `from_ms` on, their first before `to_ms`; among
/// people seen last at one time, any): the rows of `anon_rollup` read as they are, each
/// anonymous ID's person from the person map the client keeps, and people put together
/// here. At 10M events (529k anonymous IDs) ClickHouse grouping them by person took
/// 130–160 ms; reading the rows, 35 ms.
fn latest_people_by_hash(
    c: &Client,
    pm: &str,
    scope: &Scope,
    (from_ms, to_ms): (i64, i64),
) -> Result<Vec<u64>, StoreError> {
    let persons = persons::read(c, pm)?;
    let mut people: HashMap<u64, (i64, i64), foldhash::fast::RandomState> = HashMap::default();
    let bad = || ChError::Answer("anonymous ID rows not as asked".into());
    c.select_native_each(&anons(&c.database, scope, ""), |block| {
        for (rows, columns) in rowbinary::native_blocks(block).ok_or_else(bad)? {
            let [anon, first, last] =
                rowbinary::numbers(&columns, [8, 8, 8], rows).ok_or_else(bad)?;
            people.reserve(rows);
            for i in 0..rows {
                let anon = rowbinary::le_u64(anon, i);
                let person = persons.get(&anon).copied().unwrap_or(anon);
                let f = rowbinary::le_u64(first, i) as i64;
                let l = rowbinary::le_u64(last, i) as i64;
                let seen = people.entry(person).or_insert((f, l));
                *seen = (seen.0.min(f), seen.1.max(l));
            }
        }
        Ok(())
    })?;
    let mut latest: Vec<(i64, u64)> = people
        .into_iter()
        .filter(|(_, (f, l))| *l >= from_ms && *f < to_ms)
        .map(|(p, (_, l))| (l, p))
        .collect();
    let keep = LATEST_EVENTS as usize;
    if latest.len() > keep {
        latest.select_nth_unstable_by(keep - 1, |a, b| b.0.cmp(&a.0));
        latest.truncate(keep);
    }
    Ok(latest.into_iter().map(|(_, p)| p).collect())
}

/// A person of the users feed: their answer id, their user ID (the id again, if they have
/// one), first and last seen.
type FeedRow = (String, Option<String>, i64, i64);

/// The users feed's page of `q` (no search or list of ids; `matched`, the hashes of the people
/// with a matching event, when events, filters or sites pick some) as `limit + 1` rows, found from the anonymous IDs with the latest activity rather than by
/// grouping every person: a person's last time is their latest ID's, so the people of the
/// latest IDs are the latest people. Those IDs' people come from the person map (read whole
/// and kept), an identified person's other IDs are read by their hashes, and only then are
/// the answer ids looked up and the page put in the feed's order (latest first, ties by id).
/// At 10M events (529k anonymous IDs): 320 ms for grouping every person by their numbers
/// alone, 450–490 ms with their texts, about 100 ms this way. `None` when people tied on
/// their last time reach past the IDs read, so the order among them is not known: then the
/// caller sorts everyone by text.
fn latest_people(
    c: &Client,
    pm: &str,
    q: &UsersQuery,
    matched: Option<&str>,
) -> Result<Option<Vec<FeedRow>>, StoreError> {
    let db = &c.database;
    let want = q.limit + 1;
    // Twice the page: IDs tied with the last of them and sorted before it by id, or of a
    // person already read, are rarely more than that.
    let read = 2 * want;
    let persons = persons::read(c, pm)?;
    let person = |anon: u64| persons.get(&anon).copied().unwrap_or(anon);
    // An anonymous ID later than the cursor's time makes its person later than the cursor:
    // such IDs are left out, and an identified person's other IDs are read below anyway.
    let mut conds = vec![format!("l >= {}", q.from_ms)];
    if let Some(cur) = &q.cursor {
        conds.push(format!("l <= {}", cur.last_ms));
    }
    // Only the IDs of people with a matching event (all of a person's IDs or none).
    if let Some(people) = matched {
        conds.push(format!("{PERSON_H} IN ({people})"));
    }
    // (Hashes travel as text: JSON numbers are read as `i64` here.)
    let spans = |sql: String| -> Result<Vec<(u64, i64, i64)>, StoreError> {
        Ok(c.select(&sql)?
            .0
            .iter()
            .map(|r| (s(r, "h").parse().unwrap_or_default(), i(r, "f"), i(r, "l")))
            .collect())
    };
    // Each ID's person only when the matched people are asked for.
    let alias_h = match matched {
        Some(_) => persons::get(pm, "alias_h", "anon_h"),
        None => "0".into(),
    };
    // The latest IDs by their rows' last times, not by each ID's rows merged (at 10M events
    // grouping 529k IDs took 80–100 ms): an ID's best row that passes stands for it, and an
    // ID is read whole only if it is among the `read` latest so found. An ID whose later
    // row is past the cursor takes a place with an earlier row, and is dropped once read
    // whole; so `read` places may hold fewer IDs, but every ID later than the last place is
    // there.
    let counted = q.scope.sql("device", "site", lit);
    // The IDs' first and last times, their rows merged.
    let spans_of = |ids: &[String]| {
        spans(format!(
            "SELECT toString(anon_h) AS h, minMerge(a_first) AS f, maxMerge(a_last) AS l
             FROM {db}.anon_rollup WHERE {counted} AND anon_h IN ({}) GROUP BY anon_h",
            ids.join(", ")
        ))
    };
    let places = spans(format!(
        "SELECT toString(anon_h) AS h, 0 AS f, l
         FROM (SELECT anon_h, finalizeAggregation(a_last) AS l, {alias_h} AS alias_h
               FROM {db}.anon_rollup WHERE {counted})
         WHERE {conds} ORDER BY l DESC LIMIT 1 BY anon_h LIMIT {read}",
        conds = conds.join(" AND "),
    ))?;
    // The least last time read: IDs of that time may be missing when all `read` places came.
    // Every person later than that has their latest ID here.
    let edge = (places.len() == read).then(|| places.last().map_or(i64::MIN, |r| r.2));
    let mut latest = match places.is_empty() {
        true => Vec::new(),
        false => spans_of(&places.iter().map(|p| p.0.to_string()).collect::<Vec<_>>())?,
    };
    if let Some(cur) = &q.cursor {
        latest.retain(|r| r.2 <= cur.last_ms);
    }
    // Each person's first and last time, and one of their IDs (for their answer id).
    let mut people: HashMap<u64, (i64, i64, u64)> = HashMap::new();
    let mut identified: HashSet<u64> = HashSet::new();
    for &(anon, f, l) in &latest {
        match persons.get(&anon) {
            Some(&p) => {
                identified.insert(p);
            }
            None => {
                people.insert(anon, (f, l, anon));
            }
        }
    }
    if !identified.is_empty() {
        // Their IDs by the person map, and an ID whose hash is the person's own (the rare
        // anonymous ID that is some user's ID), as grouping by the person's hash has it.
        let all: Vec<String> = persons
            .iter()
            .filter(|(_, p)| identified.contains(p))
            .map(|(a, _)| a)
            .chain(&identified)
            .map(u64::to_string)
            .collect();
        for (anon, f, l) in spans_of(&all)? {
            let e = people.entry(person(anon)).or_insert((f, l, anon));
            e.0 = e.0.min(f);
            e.1 = e.1.max(l);
        }
    }
    people.retain(|_, (f, l, _)| *l >= q.from_ms && *f < q.to_ms);
    if people.is_empty() {
        return Ok(edge.is_none().then(Vec::new));
    }
    // Each person's answer id: their user ID, else their (one) anonymous ID.
    let list: Vec<String> = people.values().map(|p| p.2.to_string()).collect();
    let (ids, _) = c.select(&format!(
        "SELECT toString(anon_h) AS h, anyMerge(a_id) AS anon, {alias_user} AS uid
         FROM {db}.anon_rollup WHERE anon_h IN ({list}) GROUP BY anon_h",
        alias_user = persons::get(pm, "alias_user", "anon_h"),
        list = list.join(", "),
    ))?;
    let id_of: HashMap<u64, (String, bool)> = ids
        .iter()
        .map(|r| {
            let uid = s(r, "uid");
            let id = if uid.is_empty() {
                (s(r, "anon"), false)
            } else {
                (uid, true)
            };
            (s(r, "h").parse().unwrap_or_default(), id)
        })
        .collect();
    let mut rows: Vec<FeedRow> = Vec::with_capacity(people.len());
    for (first, last, anon) in people.into_values() {
        let Some((id, identified)) = id_of.get(&anon) else {
            return Ok(None);
        };
        let uid = identified.then(|| id.clone());
        rows.push((id.clone(), uid, first, last));
    }
    rows.sort_by(|a, b| b.3.cmp(&a.3).then_with(|| a.0.cmp(&b.0)));
    if let Some(cur) = &q.cursor {
        rows.retain(|r| r.3 < cur.last_ms || (r.3 == cur.last_ms && r.0 > cur.id));
    }
    rows.truncate(want);
    // Complete only if the page ends after the least time read (or every ID was read).
    match (edge, rows.len() == want, rows.last()) {
        (None, _, _) => Ok(Some(rows)),
        (Some(edge), true, Some(last)) if last.3 > edge => Ok(Some(rows)),
        _ => Ok(None),
    }
}

pub fn users(c: &Client, q: &UsersQuery) -> Result<UsersPage, StoreError> {
    let db = &c.database;
    let pm = persons::current(c)?;
    let mut conds = vec![format!(
        "last_ms >= {} AND first_ms < {}",
        q.from_ms, q.to_ms
    )];
    if let Some(cur) = &q.cursor {
        conds.push(format!(
            "(last_ms < {ms} OR (last_ms = {ms} AND id > {id}))",
            ms = cur.last_ms,
            id = lit(&cur.id)
        ));
    }
    // The people with a matching event, as their hashes, when events, filters or sites pick
    // some.
    let mut matched_people = None;
    if !q.plain() {
        // People with an event in the range that passes, as insights select events.
        let matching = InsightsQuery {
            metric: Metric::Users,
            from_ms: q.from_ms,
            to_ms: q.to_ms,
            interval: Interval::Day,
            events: q.events.clone(),
            by: None,
            split: None,
            filters: q.event_filters(),
            sites: q.scope.sites.clone(),
            tz: chrono_tz::Tz::UTC,
        };
        let (matched, _) = insights_source(db, &pm, &matching);
        conds.push(format!("id IN (SELECT person FROM ({matched}))"));
        // Their hashes from the hourly rollups where those answer (at 10M events, people who
        // bought with Safari in a week: 50 ms of every event's name and browser before).
        let hashed = hourly_users_source(db, &pm, &matching).unwrap_or(matched);
        matched_people = Some(format!("SELECT person_h FROM ({hashed})"));
    }
    if let Some(ids) = &q.ids {
        conds.push(format!("id IN {}", list(ids)));
    }
    if let Some(needle) = &q.contains {
        let needle = lit(&needle.to_ascii_lowercase());
        conds.push(format!(
            "(position(lower(id), {needle}) > 0 OR id IN (SELECT alias_user FROM {}
               WHERE position(lower(a), {needle}) > 0))",
            aliases(db, "a")
        ));
    }
    let page = if q.ids.is_none() && q.contains.is_none() {
        latest_people(c, &pm, q, matched_people.as_deref())?
    } else {
        None
    };
    let mut rows = match page {
        Some(rows) => rows,
        None => {
            let (rows, _) = c.select(&format!(
                "SELECT * FROM ({people}) WHERE {conds} ORDER BY last_ms DESC, id ASC LIMIT {limit}",
                people = people(db, &pm, &q.scope),
                conds = conds.join(" AND "),
                limit = q.limit + 1
            ))?;
            rows.iter()
                .map(|r| {
                    let id = s(r, "id");
                    let uid = non_empty(s(r, "uid")).map(|_| id.clone());
                    (id, uid, i(r, "first_ms"), i(r, "last_ms"))
                })
                .collect()
        }
    };
    let next = (rows.len() > q.limit).then(|| {
        rows.truncate(q.limit);
        let last = rows.last().expect("limit is at least 1");
        UsersCursor {
            last_ms: last.3,
            id: last.0.clone(),
        }
    });
    let identified: Vec<String> = rows
        .iter()
        .filter(|r| r.1.is_some())
        .map(|r| r.0.clone())
        .collect();
    let mut anons = anonymous_ids(c, &identified)?;
    let anons_of = |id: &String, identified: bool| -> Vec<String> {
        if identified {
            anons.get(id).cloned().unwrap_or_default()
        } else {
            vec![id.clone()]
        }
    };
    let all: Vec<String> = rows
        .iter()
        .flat_map(|r| anons_of(&r.0, r.1.is_some()))
        .collect();
    // Each anonymous ID's sessions with a counted event, from `session_rollup` (a row per
    // session, site, device and anonymous ID: 30 ms at 10M events, against 300 ms for the
    // events themselves), its hash named again by `transform`; asked while the traits are.
    let count_sessions = || -> Result<Vec<Value>, ChError> {
        if all.is_empty() {
            return Ok(Vec::new());
        }
        let texts: Vec<String> = all.iter().map(|a| lit(a)).collect();
        Ok(c.select(&format!(
            "SELECT transform(anon_h, [{h}], [{t}], '') AS anonymous_id,
                    uniqExact(session_h) AS n
             FROM {db}.session_rollup WHERE anon_h IN ({h}) AND {scope} GROUP BY anon_h",
            h = hashes_of(&all),
            t = texts.join(","),
            scope = q.scope.sql("device", "site", lit)
        ))?
        .0)
    };
    let (counts, traits) = std::thread::scope(|scope| {
        let counts = scope.spawn(count_sessions);
        let traits = match all.is_empty() {
            true => Ok((Vec::new(), None)),
            false => c.select(&format!(
                "SELECT event_id, anonymous_id, traits FROM {db}.trait_events
                 WHERE anon_h IN ({}) AND anonymous_id IN {} ORDER BY time_ms, seq",
                hashes_of(&all),
                list(&all)
            )),
        };
        Ok::<_, StoreError>((joined(counts)?, traits?.0))
    })?;
    let sessions: HashMap<String, u64> = counts
        .iter()
        .map(|r| (s(r, "anonymous_id"), u(r, "n")))
        .collect();
    let mut person_of: HashMap<&str, &str> = HashMap::new();
    for (id, user_id, _, _) in &rows {
        let anons = match user_id {
            Some(_) => anons.get(id).map(Vec::as_slice).unwrap_or_default(),
            None => std::slice::from_ref(id),
        };
        for a in anons {
            person_of.insert(a, id);
        }
    }
    // Each person's traits merged in time order, whichever anonymous ID set them.
    let mut seen = HashSet::new();
    let mut properties_of: HashMap<String, serde_json::Map<String, Value>> = HashMap::new();
    for r in traits {
        if !seen.insert(s(&r, "event_id")) {
            continue;
        }
        let Some(&p) = person_of.get(s(&r, "anonymous_id").as_str()) else {
            continue;
        };
        if let Ok(Value::Object(t)) = serde_json::from_str(&s(&r, "traits")) {
            properties_of.entry(p.to_owned()).or_default().extend(t);
        }
    }
    drop(person_of);
    let mut users = Vec::with_capacity(rows.len());
    for (id, user_id, first_ms, last_ms) in rows {
        let anonymous_ids = match &user_id {
            Some(_) => anons.remove(&id).unwrap_or_default(),
            None => vec![id.clone()],
        };
        let properties = properties_of.remove(&id).unwrap_or_default();
        users.push(UserSummary {
            session_count: anonymous_ids
                .iter()
                .map(|a| sessions.get(a).copied().unwrap_or(0))
                .sum(),
            id,
            user_id,
            anonymous_ids,
            first_seen: rfc3339(first_ms),
            last_seen: rfc3339(last_ms),
            properties: Value::Object(properties),
        });
    }
    Ok(UsersPage { users, next })
}

/// Sessions that started in `[from, to)` over the events `scope` keeps, a row each: `sid`,
/// `start_ms`, `end_ms`, distinct `events`, `pages` and `leaves` (rows, those of possible
/// copies counted distinct, as [`event_names`] counts), the first event's `anon` and
/// its `person` (through the person map `pm`), and for each of `first` the first event's value
/// as `first_COLUMN`.
///
/// Only the days from `from`'s UTC day on are read whole: a session that started in the range
/// has no event before it, and one with a (kept) event on an earlier day started before the
/// range, so it is left out by its hash alone: among the sessions of the range, those whose
/// `session_rollup` rows (per site and device, so the scope applies) began before that day
/// (at 10M events, a week's sessions: the days before cost a look-up in the rollup instead
/// of every column of every event, or every session's hash of those days).
fn session_spans(
    db: &str,
    pm: &str,
    scope: &Scope,
    (from, to): (i64, i64),
    first: &[&str],
) -> String {
    let counted = scope.flag_sql("is_bot", "site", lit);
    let firsts: String = first
        .iter()
        .map(|col| format!(", argMin({col}, time_ms) AS first_{col}"))
        .collect();
    format!(
        "SELECT *, {person} AS person FROM (
            WITH {copy} AS c
            SELECT any(session_id) AS sid, min(time_ms) AS start_ms, max(time_ms) AS end_ms,
                   {events} AS events, {pages} AS pages, {leaves} AS leaves,
                   argMin(anonymous_id, time_ms) AS anon, cityHash64(anon) AS first_anon_h,
                   {alias_user} AS alias_user {firsts}
            FROM {db}.events
            WHERE {counted} AND {day} >= {first_day}
              AND session_h IN (SELECT session_h FROM {db}.events
                                WHERE {range} AND {counted})
              AND session_h NOT IN (
                  SELECT session_h FROM {db}.session_rollup
                  WHERE {rollup_counted} AND finalizeAggregation(s_start) < {first_day_ms}
                    AND session_h IN (SELECT session_h FROM {db}.events
                                      WHERE {range} AND {counted}))
            GROUP BY session_h
            HAVING start_ms >= {from} AND start_ms < {to})",
        person = person("anon"),
        alias_user = persons::get(pm, "alias_user", "first_anon_h"),
        range = in_range(from, to),
        day = "intDiv(time_ms, 86400000)",
        first_day = from.div_euclid(86_400_000),
        first_day_ms = from.div_euclid(86_400_000) * 86_400_000,
        rollup_counted = scope.sql("device", "site", lit),
        copy = copy_cond(db),
        events = events_counted("1"),
        pages = events_counted("type = 'page'"),
        leaves = events_counted("name_h = cityHash64('$pageleave')"),
    )
}

/// A session's first value of `col` (`path`, else the `cityHash64` of the `site`,
/// `browser`, `os`, `device` or `country`: see [`hashed_names`]) in `session_rollup`: of a
/// row, or (`merged`, grouping by session) of its earliest row. The entry path is an
/// `argMin` state; the others are the rows' keys (each row is of one value).
fn first_value(col: &str, merged: bool) -> String {
    let value = match col {
        "path" => {
            return if merged {
                "argMinMerge(s_path)"
            } else {
                "finalizeAggregation(s_path)"
            }
            .to_owned()
        }
        "site" | "device" => format!("cityHash64({col})"),
        _ => format!("{col}_h"),
    };
    match merged {
        true => format!("argMin({value}, finalizeAggregation(s_start))"),
        false => value,
    }
}

/// The sessions [`session_spans`] finds, a row each with only what statistics need:
/// `start_ms`, `end_ms`, `bounce` (1 or 0), `first_COLUMN` for `first` (`path`, or the
/// `cityHash64` of the `site`, `browser`, `os`, `device` or `country`: see
/// [`hashed_names`]) and, if `person`, the first event's `person`. Read
/// from `session_rollup`: a session's rows (one per site, device and anonymous ID, and per
/// insert until merged) merged here, which is grouping the session's events. A bounce is
/// one distinct page view and one distinct event that is not a page leave.
fn session_stat_rows(
    db: &str,
    pm: &str,
    scope: &Scope,
    (from, to): (i64, i64),
    first: Option<&str>,
    person: bool,
) -> String {
    let counted = scope.sql("device", "site", lit);
    let mut cols = String::new();
    if let Some(col) = first {
        cols += &format!(", {} AS first_{col}", first_value(col, true));
    }
    if person {
        cols += &format!(
            ", argMinMerge(s_anon) AS anon, {} AS alias_user, {} AS person",
            persons::get(pm, "alias_user", "cityHash64(anon)"),
            self::person("anon")
        );
    }
    format!(
        "SELECT minMerge(s_start) AS start_ms, maxMerge(s_end) AS end_ms,
                uniqUpToIfMerge(1)(s_pages) = 1 AND uniqUpToIfMerge(1)(s_stays) = 1 AS bounce
                {cols}
         FROM {db}.session_rollup
         WHERE {counted}
         GROUP BY session_h
         HAVING start_ms >= {from} AND start_ms < {to}"
    )
}

/// The texts of the values of event column `col` (`site`, `device`, `browser`, `os` or
/// `country`) in `table`, by their `cityHash64`, as [`session_stat_rows`] gives them: from
/// `users_hourly`, which has every event's (a few thousand rows at most), or from `events`
/// for any it lacks (a rollup edited by hand).
fn hashed_names(c: &Client, col: &str, table: &str) -> Result<HashMap<u64, String>, ChError> {
    let (rows, _) = c.select(&format!(
        "SELECT cityHash64(v) AS h, v FROM (SELECT {col} AS v FROM {}.{table} GROUP BY v)",
        c.database
    ))?;
    Ok(rows
        .iter()
        .filter_map(|r| Some((r["h"].as_u64()?, s(r, "v"))))
        .collect())
}

pub fn session_stats(c: &Client, q: &SessionStatsQuery) -> Result<SessionStats, StoreError> {
    let (first, key) = match q.split {
        Some(SessionField::Browser) => (Some("browser"), "first_browser"),
        Some(SessionField::Os) => (Some("os"), "first_os"),
        Some(SessionField::Device) => (Some("device"), "first_device"),
        Some(SessionField::Country) => (Some("country"), "first_country"),
        Some(SessionField::EntryPath) => (Some("path"), "first_path"),
        Some(SessionField::Site) => (Some("site"), "first_site"),
        Some(SessionField::User) => (None, "person"),
        None => (None, "''"),
    };
    // A hashed first value is named after the grouping (rows of every value, a few
    // thousand at most, ordered and cut here as the SQL orders and cuts the others), the
    // names asked for meanwhile.
    let hashed = first.filter(|&col| col != "path");
    let here = q.user.is_none() && q.split != Some(SessionField::User);
    let (summed, names) = std::thread::scope(|s| {
        let names = hashed.map(|col| s.spawn(move || hashed_names(c, col, "users_hourly")));
        let summed = match here {
            true => merged_sessions(c, q, first),
            false => Ok(None),
        };
        (summed, names.map(joined))
    });
    let (rows, totals) = match summed? {
        Some(summed) => summed,
        None => {
            let pm = persons::current(c)?;
            let spans = session_stat_rows(
                &c.database,
                &pm,
                &q.scope,
                (q.from_ms, q.to_ms),
                first,
                q.user.is_some() || q.split == Some(SessionField::User),
            );
            let only = match &q.user {
                Some(user) => format!("WHERE person = {}", lit(user)),
                None => String::new(),
            };
            c.select(&format!(
                "SELECT {key} AS key, count() AS n, sum(end_ms - start_ms) AS ms,
                        sum(bounce) AS bounces
                 FROM ({spans})
                 {only}
                 GROUP BY key WITH TOTALS {order}",
                order = match hashed {
                    Some(_) => "",
                    None => "ORDER BY n DESC, key LIMIT 1000",
                },
            ))?
        }
    };
    let rows = match hashed {
        None => rows,
        Some(col) => {
            let mut names = names.unwrap_or_else(|| Ok(HashMap::new()))?;
            if rows
                .iter()
                .any(|r| r["key"].as_u64().is_some_and(|h| !names.contains_key(&h)))
            {
                names.extend(hashed_names(c, col, "events")?);
            }
            let mut named: Vec<Value> = rows
                .into_iter()
                .map(|mut r| {
                    let name = r["key"].as_u64().and_then(|h| names.get(&h)).cloned();
                    r["key"] = Value::String(name.unwrap_or_default());
                    r
                })
                .collect();
            named.sort_by(|a, b| {
                u(b, "n")
                    .cmp(&u(a, "n"))
                    .then_with(|| s(a, "key").cmp(&s(b, "key")))
            });
            named.truncate(1000);
            named
        }
    };
    let totals_of = |r: &Value| {
        let n = u(r, "n");
        let ms = i(r, "ms");
        let n_f = n.max(1) as f64;
        SessionTotals {
            total_sessions: n,
            avg_session_seconds: ms as f64 / 1000.0 / n_f,
            total_session_seconds: ms as f64 / 1000.0,
            bounce_rate: u(r, "bounces") as f64 / n_f,
        }
    };
    let table = match q.split {
        None => Vec::new(),
        Some(_) => rows
            .iter()
            .map(|r| SessionSplitRow {
                key: non_empty(s(r, "key")),
                totals: totals_of(r),
            })
            .collect(),
    };
    Ok(SessionStats {
        totals: totals_of(&totals.unwrap_or(Value::Null)),
        table,
    })
}

/// Rows of an answer and its `WITH TOTALS` row, as [`Client::select`] gives them.
type Rows = (Vec<Value>, Option<Value>);

/// [`session_stats`] without a person (no `user`, no split by user), as the rows and totals
/// its statement gives (`key`, `n`, `ms`, `bounces`; split by a hashed first value, keyed by
/// the hash; by the entry path, by the path, ordered and cut as the statement does).
///
/// ClickHouse sums the rows of `session_rollup` in the range as if each were a whole session
/// (their count, length and bounces, per first value), which each is once it has merged the
/// parts of the inserts that wrote the session. At the same time it sends each row's session
/// hash (8 bytes a row), among which the collector finds the sessions of more than one row.
/// For those alone (asked for by their hashes, which the table is sorted by), what the sums
/// counted of each of their rows is taken off, and each session, its rows merged there, is
/// counted once instead.
///
/// The statements must read the same rows: the table's active parts (which never change)
/// are listed before the first starts and after the last ends, and the answer stands only if
/// they are the same. Else it is asked again, twice at most, and then `None`: the caller
/// groups every session in ClickHouse (one statement, slower). In the test that asks while
/// inserts land (one every 30–40 ms), about one first try in ten met a change; a site
/// inserting every second would meet one in about a try in seven at 10M events (150 ms a
/// try), and all three tries in about one question in 300.
///
/// At 10M events (1.5M sessions) on ClickHouse 18.16 the whole question took 530–610 ms
/// grouping every session's states there, 260–300 ms with the states' values sent (40 bytes
/// a row) and put together by session here, 135–150 ms this way (BENCHMARKS.md).
fn merged_sessions(
    c: &Client,
    q: &SessionStatsQuery,
    first: Option<&str>,
) -> Result<Option<Rows>, StoreError> {
    const TRIES: usize = 3;
    for _ in 0..TRIES {
        let before = active_parts(c, "session_rollup")?;
        let answer = summed_sessions(c, q, first)?;
        if active_parts(c, "session_rollup")? == before {
            return Ok(Some(answer));
        }
    }
    Ok(None)
}

/// The names of `table`'s active parts, sorted: what a statement that starts now reads.
fn active_parts(c: &Client, table: &str) -> Result<Vec<String>, ChError> {
    let (rows, _) = c.select(&format!(
        "SELECT name FROM system.parts WHERE database = {} AND table = {} AND active
         ORDER BY name",
        lit(&c.database),
        lit(table)
    ))?;
    Ok(rows.iter().map(|r| s(r, "name")).collect())
}

/// One try of [`merged_sessions`], whose answer holds if no part changed meanwhile.
fn summed_sessions(
    c: &Client,
    q: &SessionStatsQuery,
    first: Option<&str>,
) -> Result<Rows, StoreError> {
    let db = &c.database;
    let scope = q.scope.sql("device", "site", lit);
    // A row's part, or a session's of its rows merged: start, end, bounce and first value.
    let row_cols = format!(
        "finalizeAggregation(s_start) AS start_ms, finalizeAggregation(s_end) AS end_ms,
         finalizeAggregation(s_pages) = 1 AND finalizeAggregation(s_stays) = 1 AS bounce,
         {key} AS key",
        key = first.map_or("toUInt64(0)".to_owned(), |col| first_value(col, false))
    );
    let merged_cols = format!(
        "minMerge(s_start) AS start_ms, maxMerge(s_end) AS end_ms,
         uniqUpToIfMerge(1)(s_pages) = 1 AND uniqUpToIfMerge(1)(s_stays) = 1 AS bounce,
         {key} AS key",
        key = first.map_or("toUInt64(0)".to_owned(), |col| first_value(col, true))
    );
    let summed = |from: &str| {
        format!(
            "SELECT key, count() AS n, sum(end_ms - start_ms) AS ms, sum(bounce) AS bounces
             FROM ({from}) WHERE start_ms >= {} AND start_ms < {} GROUP BY key",
            q.from_ms, q.to_ms
        )
    };
    // The sums over rows, and the sessions of several rows, at once.
    let sums_sql = summed(&format!(
        "SELECT {row_cols} FROM {db}.session_rollup WHERE {scope}"
    ));
    let hashes_sql = format!("SELECT session_h FROM {db}.session_rollup WHERE {scope}");
    let (sums, several) = std::thread::scope(|s| {
        let sums = s.spawn(|| c.select(&sums_sql));
        let several = several_rows(c, &hashes_sql);
        (joined(sums), several)
    });
    let (sums, several) = (sums?.0, several?);
    // Counts by key (the key's JSON text), with the key.
    type Count = (i64, i64, i64);
    let mut counts: HashMap<String, (Value, Count)> = HashMap::new();
    let mut add = |rows: Vec<Value>, sign: i64| {
        for r in rows {
            let n = (
                sign * i(&r, "n"),
                sign * i(&r, "ms"),
                sign * i(&r, "bounces"),
            );
            let at = counts
                .entry(r["key"].to_string())
                .or_insert_with(|| (r["key"].clone(), (0, 0, 0)));
            at.1 = (at.1 .0 + n.0, at.1 .1 + n.1, at.1 .2 + n.2);
        }
    };
    add(sums, 1);
    if !several.is_empty() {
        let mut hashes = Vec::with_capacity(several.len() * 8);
        for h in &several {
            hashes.extend_from_slice(&h.to_le_bytes());
        }
        let of_several =
            format!("{db}.session_rollup WHERE {scope} AND session_h IN (SELECT h FROM several)");
        let several = super::http::External {
            name: "several",
            structure: "h UInt64",
            rows: hashes,
        };
        let with = |sql: &str| c.select_with(sql, &several);
        let rows_sql = summed(&format!("SELECT {row_cols} FROM {of_several}"));
        let sessions_sql = summed(&format!(
            "SELECT {merged_cols} FROM {of_several} GROUP BY session_h"
        ));
        let (rows, sessions) = std::thread::scope(|s| {
            let rows = s.spawn(|| with(&rows_sql));
            let sessions = with(&sessions_sql);
            (joined(rows), sessions)
        });
        add(rows?, -1);
        add(sessions?, 1);
    }
    let row = |key: Value, (n, ms, bounces): Count| serde_json::json!({ "key": key, "n": n, "ms": ms, "bounces": bounces });
    let mut all: Count = (0, 0, 0);
    let mut keyed: Vec<(Value, Count)> = Vec::new();
    for (_, (key, n)) in counts {
        all = (all.0 + n.0, all.1 + n.1, all.2 + n.2);
        if n.0 > 0 {
            keyed.push((key, n));
        }
    }
    if first == Some("path") {
        // Ordered and cut as the statement orders and cuts them.
        keyed.sort_by(|a, b| {
            b.1 .0
                .cmp(&a.1 .0)
                .then_with(|| a.0.as_str().cmp(&b.0.as_str()))
        });
        keyed.truncate(1000);
    }
    let rows = match first {
        None => Vec::new(),
        Some(_) => keyed.into_iter().map(|(k, n)| row(k, n)).collect(),
    };
    Ok((rows, Some(row(Value::from(""), all))))
}

/// The session hashes that `sql` (a `SELECT session_h`) gives more than once, read as they
/// arrive in `Native`, dealt into piles by their first bits and sorted there, half of the
/// piles on another thread.
fn several_rows(c: &Client, sql: &str) -> Result<Vec<u64>, StoreError> {
    const PILE_BITS: u32 = 8;
    let mut piles: Vec<Vec<u64>> = (0..1 << PILE_BITS).map(|_| Vec::new()).collect();
    let bad = || ChError::Answer("session hashes not as asked".into());
    c.select_native_each(sql, |block| {
        for (rows, columns) in rowbinary::native_blocks(block).ok_or_else(bad)? {
            let [column] = rowbinary::numbers(&columns, [8], rows).ok_or_else(bad)?;
            for h in column.chunks_exact(8) {
                let h = u64::from_le_bytes(h.try_into().unwrap_or_default());
                piles[(h >> (64 - PILE_BITS)) as usize].push(h);
            }
        }
        Ok(())
    })?;
    let several = |piles: Vec<Vec<u64>>| {
        let mut out = Vec::new();
        for mut pile in piles {
            pile.sort_unstable();
            for same in pile.chunk_by(|a, b| a == b) {
                if same.len() > 1 {
                    out.push(same[0]);
                }
            }
        }
        out
    };
    let (mut out, more) = in_two(piles, several);
    out.extend(more);
    Ok(out)
}

/// The session list: as [`session_stats`] finds sessions, newest first, ties by session ID.
pub fn sessions(c: &Client, q: &SessionListQuery) -> Result<SessionPage, StoreError> {
    let pm = persons::current(c)?;
    let mut only = Vec::new();
    if let Some(user) = &q.user {
        only.push(format!("person = {}", lit(user)));
    }
    if let Some((ms, id)) = &q.after {
        only.push(format!(
            "(start_ms < {ms} OR (start_ms = {ms} AND sid > {}))",
            lit(id)
        ));
    }
    let only = if only.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", only.join(" AND "))
    };
    // The page's sessions are the latest to start (before the cursor): those that started
    // in the last day, or week, before the page's end when that many did (every session
    // that started earlier comes after all of them), which reads the days from the window's
    // first only (at 10M events a week's statement took 1.1 s, a day's 0.2 s); else those of
    // the whole range.
    const DAY: i64 = 86_400_000;
    let end = q
        .after
        .as_ref()
        .map_or(q.to_ms, |(ms, _)| q.to_ms.min(ms + 1));
    let mut rows = Vec::new();
    for since in windows_back(q.from_ms, end, &[DAY, 7 * DAY]).chain([q.from_ms]) {
        let spans = session_spans(
            &c.database,
            &pm,
            &q.scope,
            (since, q.to_ms),
            &["site", "path", "browser", "os", "device", "country"],
        );
        rows = c
            .select(&format!(
                "SELECT * FROM ({spans}) {only} ORDER BY start_ms DESC, sid LIMIT {}",
                q.limit + 1
            ))?
            .0;
        if rows.len() > q.limit {
            break;
        }
    }
    let more = rows.len() > q.limit;
    let sessions = rows
        .iter()
        .take(q.limit)
        .map(|r| {
            let (start, end) = (i(r, "start_ms"), i(r, "end_ms"));
            let (events, pages, leaves) = (u(r, "events"), u(r, "pages"), u(r, "leaves"));
            SessionRow {
                session_id: s(r, "sid"),
                site: s(r, "first_site"),
                user: s(r, "person"),
                anonymous_id: s(r, "anon"),
                started_at: rfc3339(start),
                ended_at: rfc3339(end),
                duration_seconds: (end - start) as f64 / 1000.0,
                events,
                pageviews: pages,
                bounce: pages == 1 && events == 1 + leaves,
                entry_path: non_empty(s(r, "first_path")),
                browser: non_empty(s(r, "first_browser")),
                os: non_empty(s(r, "first_os")),
                device: non_empty(s(r, "first_device")),
                country: non_empty(s(r, "first_country")),
                started_ms: start,
            }
        })
        .collect();
    Ok(SessionPage { sessions, more })
}

pub fn session(c: &Client, id: &str, scope: &Scope) -> Result<Option<SessionView>, StoreError> {
    let (sessions, _) = load_sessions(
        c,
        &format!(
            "WHERE session_id = {} AND {}",
            lit(id),
            scope.sql("device", "site", lit)
        ),
    )?;
    Ok(sessions.into_iter().next())
}

pub fn event_names(
    c: &Client,
    from_ms: i64,
    to_ms: i64,
    scope: &Scope,
) -> Result<Vec<(String, u64)>, StoreError> {
    // Three statements at once: the rows of each name's hash; for the events that may be
    // stored twice (`copies`, few; read first, by `PREWHERE`), how many rows more than events
    // each name has; and the names of the last day's events (then those of the other hashes,
    // read where they are). Exact, without a set of every event's ID (at 10M events 1 s for
    // `uniqExact(event_h)` over all of them), and without reading every event's name (at
    // 10M events over 90 days: one statement of 260–290 ms before).
    let db = &c.database;
    let conds = format!(
        "{} AND {}",
        in_range(from_ms, to_ms),
        scope.flag_sql("is_bot", "site", lit)
    );
    let hashed = |sql: String| -> Result<Vec<(u64, u64)>, StoreError> {
        let rows = c.select_binary(&sql)?;
        let mut r = rowbinary::Reader(&rows);
        let mut out = Vec::new();
        while let (Some(h), Some(n)) = (r.take::<8>(), r.take::<8>()) {
            out.push((u64::from_le_bytes(h), u64::from_le_bytes(n)));
        }
        Ok(out)
    };
    let names_of = |sql: String| -> Result<HashMap<u64, String>, StoreError> {
        let rows = c.select_binary(&sql)?;
        let mut r = rowbinary::Reader(&rows);
        let mut out = HashMap::new();
        while let (Some(name), Some(h)) = (r.text(), r.take::<8>()) {
            out.insert(
                u64::from_le_bytes(h),
                String::from_utf8_lossy(name).into_owned(),
            );
        }
        Ok(out)
    };
    let (rows, extra, mut names) = std::thread::scope(|scope| {
        let extra = scope.spawn(|| {
            hashed(format!(
                "SELECT name_h, toUInt64(count() - uniqExact(event_h)) FROM {db}.events
                 PREWHERE {copies} WHERE {conds} GROUP BY name_h",
                copies = copy_cond(db),
            ))
        });
        let names = scope.spawn(|| {
            names_of(format!(
                "SELECT any(name), name_h FROM {db}.events WHERE {} GROUP BY name_h",
                in_range(from_ms.max(to_ms.saturating_sub(DAY_MS)), to_ms),
            ))
        });
        let rows = hashed(format!(
            "SELECT name_h, count() FROM {db}.events WHERE {conds} GROUP BY name_h"
        ));
        Ok::<_, StoreError>((rows?, joined(extra)?, joined(names)?))
    })?;
    // The names not seen in the last day: read from the events that have them.
    let missing: Vec<String> = rows
        .iter()
        .filter(|(h, _)| !names.contains_key(h))
        .map(|(h, _)| h.to_string())
        .collect();
    if !missing.is_empty() {
        names.extend(names_of(format!(
            "SELECT any(name), name_h FROM {db}.events PREWHERE name_h IN ({}) WHERE {conds}
             GROUP BY name_h",
            missing.join(", ")
        ))?);
    }
    let extra: HashMap<u64, u64> = extra.into_iter().collect();
    let mut out: Vec<(String, u64)> = rows
        .into_iter()
        .map(|(h, n)| {
            let name = names.get(&h).cloned().unwrap_or_default();
            (name, n.saturating_sub(extra.get(&h).copied().unwrap_or(0)))
        })
        .collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out.truncate(500);
    Ok(out)
}

/// How many of the latest events, and of the latest people, property keys are counted over.
const LATEST_EVENTS: u64 = 5000;
const DAY_MS: i64 = 86_400_000;

pub fn property_keys(
    c: &Client,
    from_ms: i64,
    to_ms: i64,
    scope: &Scope,
) -> Result<PropertyKeys, StoreError> {
    let db = &c.database;
    let pm = persons::current(c)?;
    let counted = scope.flag_sql("is_bot", "site", lit);
    // The latest events' keys: looked for in the range's last day first, then its last
    // week, then all of it. Once a window holds that many events, the latest of the range
    // are all in it, and a busy site reads a day of events (the sort key leads with the day)
    // instead of sorting all of the range's by time (at 10M events: 2.2 s for 90 days).
    let mut from = from_ms;
    for window in [DAY_MS, 7 * DAY_MS] {
        let start = to_ms.saturating_sub(window);
        if start <= from_ms {
            break;
        }
        let (rows, _) = c.select(&format!(
            "SELECT uniqExact(event_h) AS n FROM {db}.events WHERE {} AND {counted}",
            in_range(start, to_ms)
        ))?;
        if rows.first().map_or(0, |r| u(r, "n")) >= LATEST_EVENTS {
            from = start;
            break;
        }
    }
    let range = in_range(from, to_ms);
    let counts = |rows: Vec<Value>| -> Vec<KeyCount> {
        rows.iter()
            .map(|r| KeyCount {
                key: s(r, "k"),
                count: u(r, "n"),
            })
            .collect()
    };
    let (event, _) = c.select(&format!(
        "SELECT k, count() AS n FROM (
            SELECT prop_keys FROM {db}.events
            WHERE {range} AND {counted}
            ORDER BY time_ms DESC LIMIT 1 BY event_h LIMIT {LATEST_EVENTS})
         ARRAY JOIN prop_keys AS k GROUP BY k ORDER BY n DESC, k LIMIT 200"
    ))?;
    // People as their hashes: the latest people of the range picked by numbers alone, no
    // text of theirs grouped or sorted (`latest_people_by_hash`). Which keys each anonymous
    // ID ever set, from `trait_rollup` (at 10M events the question took 367 ms with them
    // from `events`, 262 ms from the rollup).
    let latest = latest_people_by_hash(c, &pm, scope, (from_ms, to_ms))?;
    let mut people = Vec::with_capacity(latest.len() * 8);
    for p in &latest {
        people.extend_from_slice(&p.to_le_bytes());
    }
    let user = c.select_with(
        &format!(
            "SELECT k, uniqExact(person_h) AS n FROM (
                SELECT {PERSON_H} AS person_h, k
                FROM (SELECT anon_h, {alias_h} AS alias_h, key AS k FROM {db}.trait_rollup))
             WHERE person_h IN (SELECT h FROM latest)
             GROUP BY k ORDER BY n DESC, k LIMIT 200",
            alias_h = persons::get(&pm, "alias_h", "anon_h"),
        ),
        &super::http::External {
            name: "latest",
            structure: "h UInt64",
            rows: people,
        },
    )?;
    Ok(PropertyKeys {
        columns: column_names(),
        event: counts(event),
        user: counts(user),
    })
}

/// Deletes every row of a person and waits until ClickHouse applied the deletes.
pub fn erase(c: &Client, person: &str) -> Result<Erased, StoreError> {
    let db = &c.database;
    let user = identified(c, person)?;
    let mut anonymous_ids = match &user {
        Some(u) => anonymous_ids(c, std::slice::from_ref(u))?
            .remove(u)
            .unwrap_or_default(),
        None => vec![person.to_owned()],
    };
    anonymous_ids.dedup();
    let mut which = format!("anonymous_id IN {}", list(&anonymous_ids));
    if let Some(u) = &user {
        which = format!("{which} OR user_id = {}", lit(u));
    }
    let (rows, _) = c.select(&format!(
        "SELECT uniqExact(event_id) AS n FROM {db}.events WHERE {which}"
    ))?;
    let events = rows.first().map_or(0, |r| u(r, "n"));
    // Noted first, so that no spool replayed from now on brings the person back; and again
    // once the deletes are done, with that time: the replay rule then covers what arrived
    // while they ran, and every writer forgets the aliases it wrote before the end (the count
    // of `erasures` rows changed after the last alias the deletes could reach).
    let note = |at_ms: i64| {
        let mut noted = Vec::new();
        for a in &anonymous_ids {
            let row = serde_json::json!({
                "anonymous_id": a, "user_id": user.clone().unwrap_or_default(), "erased_ms": at_ms,
            });
            serde_json::to_writer(&mut noted, &row).expect("plain data");
            noted.push(b'\n');
        }
        c.insert("erasures", noted)
    };
    note(chrono::Utc::now().timestamp_millis())?;
    c.execute(&format!("ALTER TABLE {db}.events DELETE WHERE {which}"))?;
    c.execute(&format!("ALTER TABLE {db}.aliases DELETE WHERE {which}"))?;
    // The rollups hold the anonymous IDs' hashes (every event of the person has one of them:
    // an event with the user ID wrote its anonymous ID to `aliases`).
    let hashes: Vec<String> = anonymous_ids
        .iter()
        .map(|a| format!("cityHash64({})", lit(a)))
        .collect();
    for table in ROLLUP_TABLES.iter().filter(|_| !hashes.is_empty()) {
        c.execute(&format!(
            "ALTER TABLE {db}.{table} DELETE WHERE anon_h IN ({})",
            hashes.join(", ")
        ))?;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    loop {
        let (rows, _) = c.select(&format!(
            "SELECT count() AS n FROM system.mutations
             WHERE database = {} AND table IN ('events', 'aliases', {}) AND is_done = 0",
            lit(db),
            ROLLUP_TABLES.map(lit).join(", ")
        ))?;
        if rows.first().map_or(0, |r| u(r, "n")) == 0 {
            break;
        }
        if std::time::Instant::now() > deadline {
            return Err(StoreError::Write(
                "clickhouse did not finish the erase within 300 s".into(),
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    note(chrono::Utc::now().timestamp_millis())?;
    Ok(Erased {
        events,
        anonymous_ids,
    })
}

pub fn save_report(c: &Client, r: &Report, ver: u64, deleted: bool) -> Result<(), StoreError> {
    let created_ms = chrono::DateTime::parse_from_rfc3339(&r.created_at)
        .map(|t| t.timestamp_millis())
        .unwrap_or_default();
    let share = r.share.as_ref();
    let row = serde_json::json!({
        "id": r.id, "name": r.name, "view": r.view, "query": r.query,
        "share_token": share.map(|s| s.token.as_str()).unwrap_or_default(),
        "created_ms": created_ms, "created_by": r.created_by,
        "shared_by": share.map(|s| s.by.as_str()).unwrap_or_default(),
        "shared_ms": share.map(|s| s.at_ms).unwrap_or_default(),
        "share_expires_ms": share.and_then(|s| s.expires_ms).unwrap_or_default(),
        "deleted": u8::from(deleted), "ver": ver,
    });
    c.insert("reports", format!("{row}\n").into_bytes())?;
    Ok(())
}

/// Live reports, newest first; only the one with this ID or share token if given.
pub fn reports(c: &Client, only: Option<(&str, bool)>) -> Result<Vec<Report>, StoreError> {
    let having = match only {
        None => String::new(),
        Some((id, false)) => format!("AND id = {}", lit(id)),
        Some((token, true)) => format!("AND token = {}", lit(token)),
    };
    let (rows, _) = c.select(&format!(
        "SELECT id, argMax(name, ver) AS n, argMax(view, ver) AS v, argMax(query, ver) AS q,
                argMax(share_token, ver) AS token, min(created_ms) AS created,
                argMin(created_by, ver) AS owner, argMax(shared_by, ver) AS sharer,
                argMax(shared_ms, ver) AS shared, argMax(share_expires_ms, ver) AS expires,
                argMax(deleted, ver) AS d
         FROM {}.reports GROUP BY id HAVING d = 0 {having} ORDER BY created DESC",
        c.database
    ))?;
    Ok(rows
        .iter()
        .map(|r| Report {
            id: s(r, "id"),
            name: s(r, "n"),
            view: s(r, "v"),
            query: s(r, "q"),
            created_at: rfc3339(i(r, "created")),
            created_by: s(r, "owner"),
            share: non_empty(s(r, "token")).map(|token| Share {
                token,
                by: s(r, "sharer"),
                at_ms: i(r, "shared"),
                expires_ms: Some(i(r, "expires")).filter(|&ms| ms != 0),
            }),
        })
        .collect())
}

pub fn report(c: &Client, id: &str, shared: bool) -> Result<Option<Report>, StoreError> {
    Ok(reports(c, Some((id, shared)))?.into_iter().next())
}

/// A row of a token. Live rows (`deleted = 0`) are versioned by `last_used_ms`, so a merge
/// keeps the latest use however the writes were ordered; a revocation is a row of its own key
/// (the table is ordered by `(id, deleted)`), so no later use can replace it away.
pub fn save_token(c: &Client, t: &ApiToken, deleted: bool) -> Result<(), StoreError> {
    let used = t.last_used_ms.unwrap_or_default().max(0);
    let row = serde_json::json!({
        "id": t.id, "name": t.name, "hash": t.hash,
        "sites": serde_json::to_string(&t.sites).expect("plain data"),
        "scope": t.scope, "created_ms": t.created_ms,
        "last_used_ms": used, "deleted": u8::from(deleted), "ver": used,
    });
    c.insert("api_tokens", format!("{row}\n").into_bytes())?;
    Ok(())
}

/// Live tokens, oldest first.
pub fn tokens(c: &Client) -> Result<Vec<ApiToken>, StoreError> {
    let (rows, _) = c.select(&format!(
        "SELECT id, any(name) AS n, any(hash) AS h, any(sites) AS st,
                any(scope) AS sc, min(created_ms) AS created,
                max(last_used_ms) AS used, max(deleted) AS d
         FROM {}.api_tokens GROUP BY id HAVING d = 0 ORDER BY created, id",
        c.database
    ))?;
    Ok(rows
        .iter()
        .map(|r| ApiToken {
            id: s(r, "id"),
            name: s(r, "n"),
            hash: s(r, "h"),
            sites: serde_json::from_str(&s(r, "st")).unwrap_or_default(),
            scope: s(r, "sc"),
            created_ms: i(r, "created"),
            last_used_ms: Some(i(r, "used")).filter(|&t| t > 0),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Native` blocks of step rows: (anonymous ID hash, time, mask) in the widths given.
    fn step_blocks(blocks: &[&[(u64, u64, u16)]], time_width: usize, mask_width: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let (time_type, mask_type) = match (time_width, mask_width) {
            (4, 1) => ("UInt32", "UInt8"),
            _ => ("Int64", "UInt16"),
        };
        for rows in blocks {
            out.extend([3, rows.len() as u8]);
            rowbinary::string(&mut out, "anon_h");
            rowbinary::string(&mut out, "UInt64");
            rows.iter().for_each(|r| out.extend(r.0.to_le_bytes()));
            rowbinary::string(&mut out, "t");
            rowbinary::string(&mut out, time_type);
            rows.iter()
                .for_each(|r| out.extend(&r.1.to_le_bytes()[..time_width]));
            rowbinary::string(&mut out, "mask");
            rowbinary::string(&mut out, mask_type);
            rows.iter()
                .for_each(|r| out.extend(&r.2.to_le_bytes()[..mask_width]));
        }
        out
    }

    #[test]
    fn plain_hits_read_every_block_in_order_with_each_persons_number() {
        let rows: [&[(u64, u64, u16)]; 3] = [
            &[(10, 5, 1), (11, 7, 2)],
            &[(12, 0, 4), (10, 9, 3)],
            &[(13, 1, 1), (11, 2, 1), (14, 3, 2)],
        ];
        // Anonymous IDs 11 and 13 are one person's (number 99).
        let persons: persons::PersonMap = [(11, 99), (13, 99)].into_iter().collect();
        let want = |from: i64| -> Vec<(u64, i64, u32)> {
            rows.iter()
                .flat_map(|b| b.iter())
                .map(|&(a, t, m)| {
                    let person = if a == 11 || a == 13 { 99 } else { a };
                    (person, from + t as i64, u32::from(m))
                })
                .collect()
        };
        let got = |hits: Vec<journeys::StepHit>| -> Vec<(u64, i64, u32)> {
            hits.iter().map(|h| (h.person, h.time_ms, h.mask)).collect()
        };
        // Narrow: times from the range's start in 4 bytes, a mask of one byte.
        let answer = step_blocks(&rows, 4, 1);
        let blocks = rowbinary::native_blocks(&answer).unwrap();
        let hits = plain_hits(&blocks, &persons, 1_000, true).unwrap();
        assert_eq!(got(hits), want(1_000));
        // Wide: times as they are, a mask of two bytes.
        let answer = step_blocks(&rows, 8, 2);
        let blocks = rowbinary::native_blocks(&answer).unwrap();
        let hits = plain_hits(&blocks, &persons, 1_000, false).unwrap();
        assert_eq!(got(hits), want(0));
        // One block only, on this thread alone.
        let blocks = rowbinary::native_blocks(&answer).unwrap();
        let hits = plain_hits(&blocks[..1], &persons, 0, false).unwrap();
        assert_eq!(got(hits), want(0)[..2]);
        // A column not as asked (a narrow read of wide times): none.
        assert!(plain_hits(&blocks, &persons, 0, true).is_none());
    }
}
