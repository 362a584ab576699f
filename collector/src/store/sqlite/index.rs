//! The event index: a compact in-memory copy of the columns that insights group, filter and
//! count by, so that "daily users over 30 days" reads a few arrays instead of a million rows.
//!
//! Each event costs 28 bytes: its rowid, time, anonymous ID, session, name, path and the
//! rest of its low-cardinality columns (browser, OS, country, UTM, ...) as numbers into
//! dictionaries. The index follows the database rather than the writer: before every query it
//! reads the rows added since the last one (`rowid > last`) and the new aliases, in one read
//! transaction, so it can never disagree with what was committed. Erasing a person bumps a
//! counter in the same transaction as the deletes; the index sees the counter change and is
//! rebuilt from scratch.
//!
//! What it cannot hold (event properties, `url`, `title`, user properties) is asked of SQLite
//! for just that part of the query: the rowids of matching events, or the value per event,
//! which the scan then looks up.

use super::sql::{filter_sql, Sql};
use crate::store::journeys::{Label, PathEvent, PathQuery, Step, StepEvents, StepHit, StepQuery};
use crate::store::{
    rfc3339, series_from_grid, sort_table, sqlite_real, Field, Filter, Insights, InsightsQuery,
    Metric, Op, Scope, SessionField, SessionListQuery, SessionPage, SessionRow, SessionSplitRow,
    SessionStats, SessionStatsQuery, SessionTotals, StoreError, TableRow, UsersQuery,
};
use rusqlite::{params_from_iter, Connection};

/// The index's maps hash numbers and short strings by the million per query: with foldhash's
/// fast hasher (seeded per map), not SipHash, which took a tenth of a query's time.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
use std::hash::{Hash, Hasher};

/// The event columns held as one dictionary of tuples (most events share a handful).
const DIMS: &[&str] = &[
    "browser",
    "browser_version",
    "os",
    "device",
    "country",
    "region",
    "city",
    "type",
    "referrer_domain",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "language",
    "timezone",
    "site",
];

/// The position of a column in [`DIMS`].
fn dim(d: &str) -> usize {
    DIMS.iter().position(|x| *x == d).expect("a column of DIMS")
}

/// Strings to dense numbers and back.
#[derive(Default)]
struct Dict<K> {
    ids: HashMap<K, u32>,
    values: Vec<K>,
}

impl<K: Hash + Eq + Clone> Dict<K> {
    fn intern(&mut self, k: &K) -> u32 {
        if let Some(&id) = self.ids.get(k) {
            return id;
        }
        let id = self.values.len() as u32;
        self.ids.insert(k.clone(), id);
        self.values.push(k.clone());
        id
    }
}

/// Where a field's value comes from in a query.
enum Source {
    Name,
    Path,
    Dim(usize),
    Prop(String),
    /// Asked of SQLite per event (`url`, `title`).
    Events,
    /// Asked of SQLite per person (user properties).
    People,
}

fn source(f: &Field) -> Source {
    match f {
        Field::Event("name") => Source::Name,
        Field::Event("path") => Source::Path,
        Field::Event(col) => DIMS
            .iter()
            .position(|d| d == col)
            .map_or(Source::Events, Source::Dim),
        Field::EventProp(k) => Source::Prop(k.clone()),
        Field::UserProp(_) => Source::People,
    }
}

/// What a query selects events by, before it groups them.
pub(super) struct Selection<'a> {
    pub from_ms: i64,
    pub to_ms: i64,
    /// Event names (none: any).
    pub events: &'a [String],
    /// Site keys (none: any).
    pub sites: &'a [String],
    pub filters: &'a [Filter],
}

/// A session over the events a query keeps: first and last time, counts, its first event.
#[derive(Clone, Copy)]
struct Span {
    start: i64,
    end: i64,
    events: u32,
    pages: u32,
    leaves: u32,
    first: usize,
}

#[derive(Default)]
pub(super) struct Index {
    erasures: i64,
    last_event: i64,
    last_alias: i64,
    rowid: Vec<i64>,
    time: Vec<i64>,
    anon: Vec<u32>,
    session: Vec<u32>,
    name: Vec<u32>,
    path: Vec<u32>,
    dims: Vec<u32>,
    /// Each event's properties: `prop_start[i]..prop_start[i + 1]` in `prop_key`/`prop_value`.
    prop_start: Vec<u32>,
    prop_key: Vec<u32>,
    prop_value: Vec<u32>,
    prop_keys: Dict<String>,
    /// A property's value as SQLite reads it: whether it is a number, and its text.
    prop_values: Dict<(bool, String)>,
    names: Dict<String>,
    paths: Dict<String>,
    tuples: Dict<Vec<String>>,
    /// Sessions by a 64-bit hash of their ID (only their number of distinct values matters).
    sessions: HashMap<u64, u32>,
    anons: Dict<String>,
    /// The person of each anonymous ID: a user ID it was joined to, else itself.
    person_of: Vec<u32>,
    persons: Dict<String>,
}

/// Column `i` of a row as text, borrowed.
fn text<'r>(r: &'r rusqlite::Row, i: usize) -> rusqlite::Result<&'r str> {
    r.get_ref(i)?.as_str().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn hash64(s: &str) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

impl Index {
    /// Reads what was committed since the last call (everything after an erasure).
    /// Whether the store holds rows, aliases or erasures the index has not read yet.
    pub fn stale(&self, c: &Connection) -> Result<bool, StoreError> {
        let (erasures, event, alias): (i64, i64, i64) = c.query_row(
            "SELECT (SELECT value FROM counters WHERE name = 'erasures'),
                    (SELECT IFNULL(MAX(rowid), 0) FROM events),
                    (SELECT IFNULL(MAX(rowid), 0) FROM aliases)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        Ok(erasures != self.erasures || event > self.last_event || alias > self.last_alias)
    }

    pub fn sync(&mut self, c: &Connection) -> Result<(), StoreError> {
        c.execute_batch("BEGIN")?;
        let result = self.sync_in(c);
        c.execute_batch("COMMIT")?;
        result
    }

    fn sync_in(&mut self, c: &Connection) -> Result<(), StoreError> {
        let erasures: i64 = c.query_row(
            "SELECT value FROM counters WHERE name = 'erasures'",
            [],
            |r| r.get(0),
        )?;
        if erasures != self.erasures {
            *self = Index {
                erasures,
                ..Index::default()
            };
        }
        let mut sql =
            String::from("SELECT e.rowid, e.time_ms, e.anonymous_id, e.session_id, e.name, e.path");
        for d in DIMS {
            sql.push_str(", e.");
            sql.push_str(d);
        }
        // One row per property (or one without), as `json_extract` would read each.
        sql.push_str(
            ", j.key, j.type IN ('integer', 'real', 'true', 'false'), CAST(j.value AS TEXT)
             FROM events e LEFT JOIN json_each(
               CASE WHEN json_valid(e.props) THEN e.props ELSE '{}' END) j
             WHERE e.rowid > ?1 ORDER BY e.rowid",
        );
        let props = 6 + DIMS.len();
        let mut stmt = c.prepare(&sql)?;
        let mut rows = stmt.query([self.last_event])?;
        let mut tuple = Vec::with_capacity(DIMS.len());
        if self.prop_start.is_empty() {
            self.prop_start.push(0);
        }
        while let Some(r) = rows.next()? {
            let rowid: i64 = r.get(0)?;
            if rowid == self.last_event {
                self.add_prop(r, props)?;
                continue;
            }
            self.rowid.push(rowid);
            self.time.push(r.get(1)?);
            let anon = self.anon_id(text(r, 2)?);
            self.anon.push(anon);
            let n = self.sessions.len() as u32;
            let session = *self.sessions.entry(hash64(text(r, 3)?)).or_insert(n);
            self.session.push(session);
            let name = self.names.intern(&r.get::<_, String>(4)?);
            self.name.push(name);
            let path = self.paths.intern(&r.get::<_, String>(5)?);
            self.path.push(path);
            tuple.clear();
            for i in 0..DIMS.len() {
                tuple.push(r.get::<_, String>(6 + i)?);
            }
            let dims = self.tuples.intern(&tuple);
            self.dims.push(dims);
            self.last_event = rowid;
            self.prop_start.push(self.prop_key.len() as u32);
            self.add_prop(r, props)?;
        }
        let mut stmt = c.prepare(
            "SELECT rowid, anonymous_id, user_id FROM aliases WHERE rowid > ?1 ORDER BY rowid",
        )?;
        let mut rows = stmt.query([self.last_alias])?;
        while let Some(r) = rows.next()? {
            self.last_alias = r.get(0)?;
            let anon = self.anon_id(text(r, 1)?);
            let person = self.persons.intern(&r.get::<_, String>(2)?);
            self.person_of[anon as usize] = person;
        }
        Ok(())
    }

    /// The property in columns `at..at + 3` of `r` (key, is a number, text), if any, for the
    /// last event read. A key repeated in one object keeps its first value.
    fn add_prop(&mut self, r: &rusqlite::Row, at: usize) -> rusqlite::Result<()> {
        let Some(key) = r.get_ref(at)?.as_str_or_null().ok().flatten() else {
            return Ok(());
        };
        let Some(text) = r.get::<_, Option<String>>(at + 2)? else {
            return Ok(()); // null reads as a missing key
        };
        let key = self.prop_keys.intern(&key.to_owned());
        let begin = self.prop_start[self.prop_start.len() - 2] as usize;
        if self.prop_key[begin..].contains(&key) {
            return Ok(());
        }
        let value = self.prop_values.intern(&(r.get(at + 1)?, text));
        self.prop_key.push(key);
        self.prop_value.push(value);
        *self.prop_start.last_mut().expect("started") += 1;
        Ok(())
    }

    /// The value of property `key` of event `i`.
    fn prop(&self, i: usize, key: u32) -> Option<u32> {
        let range = self.prop_start[i] as usize..self.prop_start[i + 1] as usize;
        self.prop_key[range.clone()]
            .iter()
            .position(|&k| k == key)
            .map(|at| self.prop_value[range.start + at])
    }

    fn anon_id(&mut self, anonymous_id: &str) -> u32 {
        if let Some(&id) = self.anons.ids.get(anonymous_id) {
            return id;
        }
        let id = self.anons.intern(&anonymous_id.to_owned());
        let person = self.persons.intern(&anonymous_id.to_owned());
        self.person_of.push(person);
        id
    }

    /// Events held.
    pub fn len(&self) -> usize {
        self.time.len()
    }

    /// The number of the event with this rowid.
    fn position(&self, rowid: i64) -> Option<usize> {
        self.rowid.binary_search(&rowid).ok()
    }

    /// Which events pass a selection: in its range, of its events and sites, and through
    /// every filter.
    fn passing(&self, c: &Connection, w: &Selection) -> Result<Vec<bool>, StoreError> {
        let n = self.time.len();
        // Which events pass: time, names, then each filter.
        let mut pass: Vec<bool> = (0..n)
            .map(|i| self.time[i] >= w.from_ms && self.time[i] < w.to_ms)
            .collect();
        if !w.events.is_empty() {
            let wanted: Vec<bool> = self
                .names
                .values
                .iter()
                .map(|v| w.events.contains(v))
                .collect();
            for (i, p) in pass.iter_mut().enumerate() {
                *p = *p && wanted[self.name[i] as usize];
            }
        }
        if !w.sites.is_empty() {
            let site_at = dim("site");
            let ok: Vec<bool> = self
                .tuples
                .values
                .iter()
                .map(|t| w.sites.contains(&t[site_at]))
                .collect();
            for (i, p) in pass.iter_mut().enumerate() {
                *p = *p && ok[self.dims[i] as usize];
            }
        }
        for f in w.filters {
            match source(&f.field) {
                Source::Name => self.keep(&mut pass, &self.name, &self.names.values, f),
                Source::Path => self.keep(&mut pass, &self.path, &self.paths.values, f),
                Source::Dim(d) => {
                    let ok: Vec<bool> = self
                        .tuples
                        .values
                        .iter()
                        .map(|t| matches(f, Val::Text(&t[d])))
                        .collect();
                    for (i, p) in pass.iter_mut().enumerate() {
                        *p = *p && ok[self.dims[i] as usize];
                    }
                }
                Source::Prop(key) => {
                    let key = self.prop_keys.ids.get(&key).copied();
                    let ok: Vec<bool> = self
                        .prop_values
                        .values
                        .iter()
                        .map(|(number, text)| matches(f, Val::new(*number, text)))
                        .collect();
                    let missing = matches(f, Val::Null);
                    for (i, p) in pass.iter_mut().enumerate() {
                        *p = *p
                            && key
                                .and_then(|k| self.prop(i, k))
                                .map_or(missing, |v| ok[v as usize]);
                    }
                }
                Source::Events => {
                    let mut sql = Sql::default();
                    sql.push("SELECT e.rowid FROM events e WHERE e.time_ms >= ")
                        .bind(w.from_ms)
                        .push(" AND e.time_ms < ")
                        .bind(w.to_ms)
                        .push(" AND ");
                    filter_sql(&mut sql, f);
                    let mut ok = vec![false; n];
                    let mut stmt = c.prepare(&sql.text)?;
                    let mut rows = stmt.query(params_from_iter(sql.params.iter()))?;
                    while let Some(r) = rows.next()? {
                        if let Some(i) = self.position(r.get(0)?) {
                            ok[i] = true;
                        }
                    }
                    for (p, ok) in pass.iter_mut().zip(ok) {
                        *p = *p && ok;
                    }
                }
                Source::People => {
                    // People without a row have no properties: the filter sees a NULL.
                    let mut ok = vec![matches(f, Val::Null); self.persons.values.len()];
                    let mut sql = Sql::default();
                    sql.push("SELECT p.id, (");
                    filter_sql(&mut sql, f);
                    sql.push(") FROM people p");
                    let mut stmt = c.prepare(&sql.text)?;
                    let mut rows = stmt.query(params_from_iter(sql.params.iter()))?;
                    while let Some(r) = rows.next()? {
                        if let Some(&p) = self.persons.ids.get(text(r, 0)?) {
                            ok[p as usize] = r.get::<_, Option<bool>>(1)?.unwrap_or(false);
                        }
                    }
                    for (i, p) in pass.iter_mut().enumerate() {
                        *p = *p && ok[self.person_of[self.anon[i] as usize] as usize];
                    }
                }
            }
        }
        Ok(pass)
    }

    pub fn insights(
        &self,
        c: &Connection,
        q: &InsightsQuery,
        starts: &[i64],
    ) -> Result<Insights, StoreError> {
        let n = self.time.len();
        let pass = self.passing(
            c,
            &Selection {
                from_ms: q.from_ms,
                to_ms: q.to_ms,
                events: &q.events,
                sites: &q.sites,
                filters: &q.filters,
            },
        )?;

        // Each passing event's `by` and `split` values, as numbers into their dictionaries,
        // and the pair of both as one number (a cell key) into `pairs`.
        let mut by_keys: Dict<Option<String>> = Dict::default();
        let mut split_keys: Dict<Option<String>> = Dict::default();
        let by_of = self.key_fn(c, (q.from_ms, q.to_ms), q.by.as_ref(), &mut by_keys)?;
        let split_of = self.key_fn(c, (q.from_ms, q.to_ms), q.split.as_ref(), &mut split_keys)?;
        let mut pairs: Dict<(u32, u32)> = Dict::default();

        // What is counted: the event itself, its session or its person.
        let domain = match q.metric {
            Metric::Events => n,
            Metric::Sessions => self.sessions.len(),
            Metric::Users => self.persons.values.len(),
        };
        let entity = |i: usize| -> u32 {
            match q.metric {
                Metric::Events => i as u32,
                Metric::Sessions => self.session[i],
                Metric::Users => self.person_of[self.anon[i] as usize],
            }
        };
        // The passing events as (bucket, pair) grouped by what they count (a counting sort):
        // then each entity's few hits are deduplicated on their own, with no large sort or
        // hash set. And each person's last time, for the samples.
        // The passing events' numbers, once: both passes below walk them, not all `n`.
        let passed: Vec<usize> = (0..n).filter(|&i| pass[i]).collect();
        drop(pass);
        let mut start = vec![0u32; domain + 1];
        let mut last_seen = vec![i64::MIN; self.persons.values.len()];
        for &i in &passed {
            start[entity(i) as usize + 1] += 1;
            let person = self.person_of[self.anon[i] as usize] as usize;
            last_seen[person] = last_seen[person].max(self.time[i]);
        }
        for e in 0..domain {
            start[e + 1] += start[e];
        }
        let mut fill = start.clone();
        let mut hits = vec![(0u32, 0u32); start[domain] as usize];
        for &i in &passed {
            let e = entity(i) as usize;
            let bucket = starts
                .partition_point(|&s| s <= self.time[i])
                .saturating_sub(1);
            hits[fill[e] as usize] = (bucket as u32, pairs.intern(&(by_of(i), split_of(i))));
            fill[e] += 1;
        }
        drop((by_of, split_of, fill));
        let of = |e: usize| &hits[start[e] as usize..start[e + 1] as usize];
        let counted: Vec<usize> = (0..domain).filter(|&e| !of(e).is_empty()).collect();
        // How many counted entities have a hit in each cell, where `cell` names a hit's cell
        // (or none): each entity counts once per cell.
        let count = |cell: &dyn Fn(u32, u32) -> Option<u64>| -> HashMap<u64, u64> {
            let mut per_cell: HashMap<u64, u64> = HashMap::default();
            let mut seen: Vec<u64> = Vec::new();
            for &e in &counted {
                seen.clear();
                seen.extend(of(e).iter().filter_map(|&(b, k)| cell(b, k)));
                seen.sort_unstable();
                seen.dedup();
                for &c in &seen {
                    *per_cell.entry(c).or_default() += 1;
                }
            }
            per_cell
        };
        let total = counted.len() as u64;

        // The series are keyed by `by` if given, else by `split`: the 20 largest keys' (or
        // the one series of everything).
        let (series_field, series_dict) = match (&q.by, &q.split) {
            (Some(_), _) => (true, &by_keys),
            (None, Some(_)) => (false, &split_keys),
            (None, None) => (true, &by_keys),
        };
        let series_key = |k: u32| {
            let (by, split) = pairs.values[k as usize];
            if series_field {
                by
            } else {
                split
            }
        };
        let mut ranked: Vec<(Option<String>, u64)> = count(&|_, k| Some(series_key(k).into()))
            .into_iter()
            .map(|(key, n)| (series_dict.values[key as usize].clone(), n))
            .collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let series_keys: Vec<Option<String>> = match (&q.by, &q.split) {
            (None, None) => vec![None],
            _ => ranked.iter().take(20).map(|(k, _)| k.clone()).collect(),
        };
        let mut rank = vec![u32::MAX; series_dict.values.len()];
        for (r, k) in series_keys.iter().enumerate() {
            rank[series_dict.ids[k] as usize] = r as u32;
        }
        let buckets = starts.len().max(1);
        let mut counts = vec![0u64; series_keys.len() * buckets];
        let cells = count(&|b, k| {
            let r = rank[series_key(k) as usize];
            (r != u32::MAX).then(|| u64::from(r) * buckets as u64 + u64::from(b))
        });
        for (cell, n) in cells {
            counts[cell as usize] = n;
        }
        let series = series_from_grid(series_keys, starts, &counts);

        // The table: one row per `by` value (and `split` value), or per bucket and `split`
        // value; without either, the caller reads the one series.
        let mut table: Vec<TableRow> = match (&q.by, &q.split) {
            (None, None) => Vec::new(),
            (Some(_), None) => ranked
                .into_iter()
                .map(|(key, value)| TableRow {
                    key,
                    split: None,
                    value,
                })
                .collect(),
            (Some(_), Some(_)) => count(&|_, k| Some(k.into()))
                .into_iter()
                .map(|(k, value)| {
                    let (by, split) = pairs.values[k as usize];
                    TableRow {
                        key: by_keys.values[by as usize].clone(),
                        split: split_keys.values[split as usize].clone(),
                        value,
                    }
                })
                .collect(),
            (None, Some(_)) => {
                count(&|b, k| Some(u64::from(b) << 32 | u64::from(pairs.values[k as usize].1)))
                    .into_iter()
                    .map(|(cell, value)| TableRow {
                        key: Some(rfc3339(starts[(cell >> 32) as usize])),
                        split: split_keys.values[(cell & 0xffff_ffff) as usize].clone(),
                        value,
                    })
                    .collect()
            }
        };
        sort_table(&mut table, q.by.is_none());

        let mut recent: Vec<(i64, u32)> = last_seen
            .iter()
            .enumerate()
            .filter(|(_, &t)| t > i64::MIN)
            .map(|(p, &t)| (t, p as u32))
            .collect();
        let top = recent.len().min(5);
        if top > 0 {
            recent.select_nth_unstable_by(top - 1, |a, b| b.cmp(a));
        }
        recent.truncate(top);
        recent.sort_unstable_by(|a, b| b.cmp(a));
        let sample_users = recent
            .iter()
            .map(|&(_, p)| self.persons.values[p as usize].clone())
            .collect();
        Ok(Insights {
            total,
            series,
            table,
            sample_users,
        })
    }

    /// The events that are steps, each with its person's number and which steps it is.
    pub fn step_events(&self, c: &Connection, q: &StepQuery) -> Result<StepEvents, StoreError> {
        let names = Step::names(&q.steps);
        let pass = self.passing(
            c,
            &Selection {
                from_ms: q.from_ms,
                to_ms: q.to_ms,
                events: &names,
                sites: &q.sites,
                filters: &q.filters,
            },
        )?;
        // Which steps each name is, and each path for page views.
        let by_name: Vec<u32> = self
            .names
            .values
            .iter()
            .map(|n| Step::mask(&q.steps, n, "\u{0}"))
            .collect();
        let by_path: Vec<u32> = self
            .paths
            .values
            .iter()
            .map(|p| Step::mask(&q.steps, "$pageview", p))
            .collect();
        let pageview = self.names.ids.get("$pageview").copied();
        let mut keys: Dict<Option<String>> = Dict::default();
        let key_of = self.key_fn(c, (q.from_ms, q.to_ms), q.breakdown.as_ref(), &mut keys)?;
        let hits: Vec<StepHit> = (0..self.time.len())
            .filter(|&i| pass[i])
            .filter_map(|i| {
                let mut mask = by_name[self.name[i] as usize];
                if Some(self.name[i]) == pageview {
                    mask |= by_path[self.path[i] as usize];
                }
                (mask != 0).then(|| StepHit {
                    person: u64::from(self.person_of[self.anon[i] as usize]),
                    time_ms: self.time[i],
                    mask,
                    key: key_of(i),
                })
            })
            .collect();
        drop(key_of);
        let mut people = std::collections::HashMap::new();
        if q.people {
            for h in &hits {
                people
                    .entry(h.person)
                    .or_insert_with(|| self.persons.values[h.person as usize].clone());
            }
        }
        Ok(StepEvents {
            hits,
            keys: keys.values,
            people,
        })
    }

    /// The events that user paths walk, each with its session's number and its label.
    pub fn path_events(
        &self,
        c: &Connection,
        q: &PathQuery,
    ) -> Result<(Vec<PathEvent>, Vec<Label>), StoreError> {
        let pages = ["$pageview".to_owned()];
        let pass = self.passing(
            c,
            &Selection {
                from_ms: q.from_ms,
                to_ms: q.to_ms,
                events: if q.pages_only { &pages } else { &[] },
                sites: &q.sites,
                filters: &q.filters,
            },
        )?;
        let pageview = self.names.ids.get("$pageview").copied();
        let mut ids: HashMap<(u32, u32), u32> = HashMap::default();
        let mut labels: Vec<Label> = Vec::new();
        let mut events = Vec::new();
        for i in (0..self.time.len()).filter(|&i| pass[i]) {
            let name = self.name[i];
            let path = if Some(name) == pageview {
                self.path[i]
            } else {
                u32::MAX
            };
            let label = *ids.entry((name, path)).or_insert_with(|| {
                labels.push((
                    self.names.values[name as usize].clone(),
                    self.paths
                        .values
                        .get(path as usize)
                        .cloned()
                        .unwrap_or_default(),
                ));
                labels.len() as u32 - 1
            });
            events.push(PathEvent {
                session: u64::from(self.session[i]),
                time_ms: self.time[i],
                label,
            });
        }
        Ok((events, labels))
    }

    /// People for `/api/v1/users` when its events must be looked at (a site, an event or a
    /// filter): those with an event in the range that passes, each with the first and last
    /// time of their events in scope, newest first from the cursor on; at most `limit + 1`.
    /// `(id, first_ms, last_ms)` each.
    pub fn people(
        &self,
        c: &Connection,
        q: &UsersQuery,
    ) -> Result<Vec<(String, i64, i64)>, StoreError> {
        let filters = q.event_filters();
        let pass = self.passing(
            c,
            &Selection {
                from_ms: q.from_ms,
                to_ms: q.to_ms,
                events: &q.events,
                sites: &q.scope.sites,
                filters: &filters,
            },
        )?;
        let person = |i: usize| self.person_of[self.anon[i] as usize] as usize;
        let mut matched = vec![false; self.persons.values.len()];
        for i in (0..self.time.len()).filter(|&i| pass[i]) {
            matched[person(i)] = true;
        }
        if let Some(ids) = &q.ids {
            let mut wanted = vec![false; matched.len()];
            for id in ids {
                if let Some(&p) = self.persons.ids.get(id) {
                    wanted[p as usize] = matched[p as usize];
                }
            }
            matched = wanted;
        }
        if let Some(needle) = &q.contains {
            // The needle in the person's ID or in one of their anonymous IDs.
            let needle = needle.to_lowercase();
            let mut found = vec![false; matched.len()];
            for (p, id) in self.persons.values.iter().enumerate() {
                found[p] = matched[p] && id.to_lowercase().contains(&needle);
            }
            for (a, id) in self.anons.values.iter().enumerate() {
                let p = self.person_of[a] as usize;
                found[p] = found[p] || (matched[p] && id.to_lowercase().contains(&needle));
            }
            matched = found;
        }
        let (device_at, site_at) = (dim("device"), dim("site"));
        let in_scope: Vec<bool> = self
            .tuples
            .values
            .iter()
            .map(|t| q.scope.keeps(&t[device_at], &t[site_at]))
            .collect();
        let mut span = vec![(i64::MAX, i64::MIN); matched.len()];
        for i in 0..self.time.len() {
            let p = person(i);
            if matched[p] && in_scope[self.dims[i] as usize] {
                span[p] = (span[p].0.min(self.time[i]), span[p].1.max(self.time[i]));
            }
        }
        let mut rows: Vec<(i64, &str, i64)> = span
            .iter()
            .enumerate()
            .filter(|(p, _)| matched[*p])
            .map(|(p, &(first, last))| (last, self.persons.values[p].as_str(), first))
            .filter(|&(last, id, _)| match &q.cursor {
                None => true,
                Some(cur) => last < cur.last_ms || (last == cur.last_ms && id > cur.id.as_str()),
            })
            .collect();
        let order = |a: &(i64, &str, i64), b: &(i64, &str, i64)| b.0.cmp(&a.0).then(a.1.cmp(b.1));
        let keep = (q.limit + 1).min(rows.len());
        if keep > 0 && keep < rows.len() {
            rows.select_nth_unstable_by(keep - 1, order);
        }
        rows.truncate(keep);
        rows.sort_unstable_by(order);
        Ok(rows
            .into_iter()
            .map(|(last, id, first)| (id.to_owned(), first, last))
            .collect())
    }

    /// Session count, time and bounce rate of the sessions that began in the range, each
    /// session summed from its events: from its first to its last event; a bounce has one
    /// page view and nothing else but its `$pageleave`. Its browser, OS, device, country and
    /// entry path are those of its first event.
    /// For each dimension tuple, whether `scope` keeps its events (by device and site).
    fn kept_by(&self, scope: &Scope) -> Vec<bool> {
        let (device_at, site_at) = (dim("device"), dim("site"));
        self.tuples
            .values
            .iter()
            .map(|t| scope.keeps(&t[device_at], &t[site_at]))
            .collect()
    }

    /// Every session's span over the events `scope` keeps (`events == 0`: none kept).
    fn spans(&self, scope: &Scope) -> Vec<Span> {
        let mut spans = vec![
            Span {
                start: i64::MAX,
                end: i64::MIN,
                events: 0,
                pages: 0,
                leaves: 0,
                first: 0,
            };
            self.sessions.len()
        ];
        let column = dim;
        let type_at = column("type");
        let page: Vec<bool> = self
            .tuples
            .values
            .iter()
            .map(|t| t[type_at] == "page")
            .collect();
        let leave = self.names.ids.get("$pageleave").copied();
        let counted = self.kept_by(scope);
        for i in 0..self.time.len() {
            if !counted[self.dims[i] as usize] {
                continue;
            }
            let s = &mut spans[self.session[i] as usize];
            let t = self.time[i];
            if t < s.start {
                s.start = t;
                s.first = i;
            }
            s.end = s.end.max(t);
            s.events += 1;
            s.pages += u32::from(page[self.dims[i] as usize]);
            s.leaves += u32::from(Some(self.name[i]) == leave);
        }
        spans
    }

    /// The sessions that started in the range, newest first, ties by session ID: the spans
    /// before the cursor, and enough of them (whole groups of equal start) for a page, with
    /// their IDs read from SQLite by the rowid of their first event.
    pub fn session_list(
        &self,
        c: &Connection,
        q: &SessionListQuery,
    ) -> Result<SessionPage, StoreError> {
        let spans = self.spans(&q.scope);
        let only = q.user.as_ref().map(|u| self.persons.ids.get(u).copied());
        let person = |s: &Span| self.person_of[self.anon[s.first] as usize];
        let before = q.after.as_ref().map_or(i64::MAX, |(ms, _)| *ms);
        let mut found: Vec<&Span> = spans
            .iter()
            .filter(|s| s.events > 0 && s.start >= q.from_ms && s.start < q.to_ms)
            .filter(|s| s.start <= before)
            .filter(|s| only.is_none_or(|p| p == Some(person(s))))
            .collect();
        found.sort_unstable_by_key(|s| std::cmp::Reverse(s.start));
        // Whole groups of equal start until the page and one more row are surely inside (the
        // cursor's own group counts for nothing until its IDs are known).
        let (mut upto, mut surely) = (0, 0);
        while upto < found.len() && surely <= q.limit {
            let start = found[upto].start;
            let group = found[upto..]
                .iter()
                .take_while(|s| s.start == start)
                .count();
            upto += group;
            if start != before {
                surely += group;
            }
        }
        found.truncate(upto);
        let mut ids: HashMap<i64, String> = HashMap::default();
        for chunk in found.chunks(500) {
            let rowids: Vec<String> = chunk
                .iter()
                .map(|s| self.rowid[s.first].to_string())
                .collect();
            let mut stmt = c.prepare(&format!(
                "SELECT rowid, session_id FROM events WHERE rowid IN ({})",
                rowids.join(",")
            ))?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                ids.insert(r.get(0)?, r.get(1)?);
            }
        }
        let mut rows: Vec<(&Span, &str)> = found
            .iter()
            .filter_map(|s| Some((*s, ids.get(&self.rowid[s.first])?.as_str())))
            .filter(|(s, id)| match &q.after {
                Some((ms, after)) => s.start < *ms || (s.start == *ms && *id > after.as_str()),
                None => true,
            })
            .collect();
        rows.sort_by(|a, b| b.0.start.cmp(&a.0.start).then_with(|| a.1.cmp(b.1)));
        let more = rows.len() > q.limit;
        rows.truncate(q.limit);
        let text = |v: &str| (!v.is_empty()).then(|| v.to_owned());
        let sessions = rows
            .into_iter()
            .map(|(s, id)| {
                let dims = &self.tuples.values[self.dims[s.first] as usize];
                let at = |d: &str| text(&dims[dim(d)]);
                SessionRow {
                    session_id: id.to_owned(),
                    site: dims[dim("site")].clone(),
                    user: self.persons.values[person(s) as usize].clone(),
                    anonymous_id: self.anons.values[self.anon[s.first] as usize].clone(),
                    started_at: rfc3339(s.start),
                    ended_at: rfc3339(s.end),
                    duration_seconds: (s.end - s.start) as f64 / 1000.0,
                    events: u64::from(s.events),
                    pageviews: u64::from(s.pages),
                    bounce: s.pages == 1 && s.events - 1 - s.leaves == 0,
                    entry_path: text(&self.paths.values[self.path[s.first] as usize]),
                    browser: at("browser"),
                    os: at("os"),
                    device: at("device"),
                    country: at("country"),
                    started_ms: s.start,
                }
            })
            .collect();
        Ok(SessionPage { sessions, more })
    }

    /// Event names in the range with their counts, most frequent first (ties by name), at most
    /// 500: as `SELECT name, COUNT(*) … GROUP BY name` reads them, in one pass over the arrays.
    pub fn event_names(&self, from_ms: i64, to_ms: i64, scope: &Scope) -> Vec<(String, u64)> {
        let kept = self.kept_by(scope);
        let mut counts = vec![0u64; self.names.values.len()];
        for i in 0..self.time.len() {
            let t = self.time[i];
            if t >= from_ms && t < to_ms && kept[self.dims[i] as usize] {
                counts[self.name[i] as usize] += 1;
            }
        }
        let mut names: Vec<(String, u64)> = counts
            .into_iter()
            .enumerate()
            .filter(|&(_, n)| n > 0)
            .map(|(id, n)| (self.names.values[id].clone(), n))
            .collect();
        names.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        names.truncate(500);
        names
    }

    pub fn session_stats(&self, q: &SessionStatsQuery) -> SessionStats {
        let spans = self.spans(&q.scope);
        let column = dim;
        let person = |s: &Span| self.person_of[self.anon[s.first] as usize];
        let only = q.user.as_ref().map(|u| self.persons.ids.get(u).copied());
        let dim_at = match q.split {
            Some(SessionField::Browser) => column("browser"),
            Some(SessionField::Os) => column("os"),
            Some(SessionField::Device) => column("device"),
            Some(SessionField::Country) => column("country"),
            Some(SessionField::Site) => column("site"),
            _ => 0,
        };
        let key = |s: &Span| -> &str {
            let dim = || self.tuples.values[self.dims[s.first] as usize][dim_at].as_str();
            match q.split {
                None => "",
                Some(
                    SessionField::Browser
                    | SessionField::Os
                    | SessionField::Device
                    | SessionField::Country
                    | SessionField::Site,
                ) => dim(),
                Some(SessionField::EntryPath) => &self.paths.values[self.path[s.first] as usize],
                Some(SessionField::User) => &self.persons.values[person(s) as usize],
            }
        };
        /// Sessions, summed milliseconds and bounces.
        #[derive(Default, Clone, Copy)]
        struct Sum(u64, i64, u64);
        let mut all = Sum::default();
        let mut per_key: HashMap<&str, Sum> = HashMap::default();
        for s in spans.iter().filter(|s| s.events > 0) {
            if s.start < q.from_ms || s.start >= q.to_ms {
                continue;
            }
            if only.is_some_and(|p| p != Some(person(s))) {
                continue;
            }
            let bounce = u64::from(s.pages == 1 && s.events - 1 - s.leaves == 0);
            for sum in [&mut all, per_key.entry(key(s)).or_default()] {
                *sum = Sum(sum.0 + 1, sum.1 + (s.end - s.start), sum.2 + bounce);
            }
        }
        let totals = |Sum(n, ms, bounces): Sum| {
            let n_f = n.max(1) as f64;
            SessionTotals {
                total_sessions: n,
                avg_session_seconds: ms as f64 / 1000.0 / n_f,
                total_session_seconds: ms as f64 / 1000.0,
                bounce_rate: bounces as f64 / n_f,
            }
        };
        let mut table: Vec<SessionSplitRow> = match q.split {
            None => Vec::new(),
            Some(_) => per_key
                .into_iter()
                .map(|(key, sum)| SessionSplitRow {
                    key: (!key.is_empty()).then(|| key.to_owned()),
                    totals: totals(sum),
                })
                .collect(),
        };
        table.sort_by(|a, b| {
            (b.totals.total_sessions.cmp(&a.totals.total_sessions)).then_with(|| a.key.cmp(&b.key))
        });
        table.truncate(1000);
        SessionStats {
            totals: totals(all),
            table,
        }
    }

    /// Narrows `pass` to events whose value (a number into `values`) matches `f`.
    fn keep(&self, pass: &mut [bool], column: &[u32], values: &[String], f: &Filter) {
        let ok: Vec<bool> = values.iter().map(|v| matches(f, Val::Text(v))).collect();
        for (p, &v) in pass.iter_mut().zip(column) {
            *p = *p && ok[v as usize];
        }
    }

    /// Each event's value of `field` as a number into `keys` (all `None` without a field).
    fn key_fn<'a>(
        &'a self,
        c: &Connection,
        (from_ms, to_ms): (i64, i64),
        field: Option<&Field>,
        keys: &mut Dict<Option<String>>,
    ) -> Result<Box<dyn Fn(usize) -> u32 + 'a>, StoreError> {
        let none = keys.intern(&None);
        Ok(match field.map(|f| (f, source(f))) {
            None => Box::new(move |_| none),
            Some((_, Source::Name)) => {
                let map = self.key_map(keys, &self.names.values, |v| v);
                Box::new(move |i| map[self.name[i] as usize])
            }
            Some((_, Source::Path)) => {
                let map = self.key_map(keys, &self.paths.values, |v| v);
                Box::new(move |i| map[self.path[i] as usize])
            }
            Some((_, Source::Dim(d))) => {
                let map = self.key_map(keys, &self.tuples.values, |t| &t[d]);
                Box::new(move |i| map[self.dims[i] as usize])
            }
            Some((_, Source::Prop(key))) => {
                let key = self.prop_keys.ids.get(&key).copied();
                let map: Vec<u32> = self
                    .prop_values
                    .values
                    .iter()
                    .map(|(_, text)| keys.intern(&(!text.is_empty()).then(|| text.clone())))
                    .collect();
                Box::new(move |i| {
                    key.and_then(|k| self.prop(i, k))
                        .map_or(none, |v| map[v as usize])
                })
            }
            Some((field, Source::Events)) => {
                let mut sql = Sql::default();
                sql.push("SELECT e.rowid, CAST(")
                    .field(field)
                    .push(" AS TEXT) FROM events e WHERE e.time_ms >= ")
                    .bind(from_ms)
                    .push(" AND e.time_ms < ")
                    .bind(to_ms);
                let mut map = vec![none; self.time.len()];
                let mut stmt = c.prepare(&sql.text)?;
                let mut rows = stmt.query(params_from_iter(sql.params.iter()))?;
                while let Some(r) = rows.next()? {
                    if let Some(i) = self.position(r.get(0)?) {
                        let v: Option<String> = r.get(1)?;
                        map[i] = keys.intern(&v.filter(|v| !v.is_empty()));
                    }
                }
                Box::new(move |i| map[i])
            }
            Some((field, Source::People)) => {
                let mut sql = Sql::default();
                sql.push("SELECT p.id, CAST(")
                    .field(field)
                    .push(" AS TEXT) FROM people p");
                let mut map = vec![none; self.persons.values.len()];
                let mut stmt = c.prepare(&sql.text)?;
                let mut rows = stmt.query(params_from_iter(sql.params.iter()))?;
                while let Some(r) = rows.next()? {
                    if let Some(&p) = self.persons.ids.get(text(r, 0)?) {
                        let v: Option<String> = r.get(1)?;
                        map[p as usize] = keys.intern(&v.filter(|v| !v.is_empty()));
                    }
                }
                Box::new(move |i| map[self.person_of[self.anon[i] as usize] as usize])
            }
        })
    }

    /// For each value of a dictionary, its number among the split's keys.
    fn key_map<T>(
        &self,
        keys: &mut Dict<Option<String>>,
        values: &[T],
        get: impl Fn(&T) -> &String,
    ) -> Vec<u32> {
        values
            .iter()
            .map(|v| {
                let v = get(v);
                keys.intern(&(!v.is_empty()).then(|| v.clone()))
            })
            .collect()
    }
}

/// A value as SQL sees it: NULL, a number (with its text), or text.
#[derive(Clone, Copy)]
enum Val<'a> {
    Null,
    Number(&'a str),
    Text(&'a str),
}

impl<'a> Val<'a> {
    fn new(number: bool, text: &'a str) -> Val<'a> {
        if number {
            Val::Number(text)
        } else {
            Val::Text(text)
        }
    }
}

/// Whether a value passes a filter, exactly as the SQL of [`filter_sql`] decides it.
fn matches(f: &Filter, value: Val) -> bool {
    let text = match value {
        Val::Null => None,
        Val::Number(t) | Val::Text(t) => Some(t),
    };
    match f.op {
        Op::Exists => text.is_some_and(|v| !v.is_empty()),
        Op::Eq => text.unwrap_or("") == f.value,
        Op::Neq => text.unwrap_or("") != f.value,
        Op::Contains => text.is_some_and(|v| {
            v.to_ascii_lowercase()
                .contains(&f.value.to_ascii_lowercase())
        }),
        Op::Gt | Op::Lt => {
            let order = match (f.value.parse::<f64>(), value) {
                (_, Val::Null) => return false,
                (Ok(n), Val::Number(v) | Val::Text(v)) => sqlite_real(v).partial_cmp(&n),
                // Against text, SQL puts every number first.
                (Err(_), Val::Number(_)) => Some(std::cmp::Ordering::Less),
                (Err(_), Val::Text(v)) => Some(v.cmp(f.value.as_str())),
            };
            order
                == Some(if f.op == Op::Gt {
                    std::cmp::Ordering::Greater
                } else {
                    std::cmp::Ordering::Less
                })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Durability;
    use crate::store::{Interval, Sqlite, Store, StoredEvent};

    fn event(i: usize, props: &str) -> StoredEvent {
        StoredEvent {
            event_id: format!("e{i}"),
            site: "demo".into(),
            kind: "track",
            name: "x".into(),
            time_ms: 1_000 + i as i64,
            anonymous_id: format!("a{}", i % 3),
            session_id: format!("s{}", i % 5),
            seq: 1,
            props: props.into(),
            ..Default::default()
        }
    }

    /// Every filter and split on a property of every JSON type gives what SQLite's own
    /// `json_extract` gives.
    #[test]
    fn property_filters_and_splits_agree_with_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let store = Sqlite::open(dir.path(), Durability::Process).unwrap();
        let values = [
            "null",
            "true",
            "false",
            "0",
            "1.5",
            "150",
            "-3",
            "1e20",
            "\"150\"",
            "\"abc\"",
            "\"ABCdef\"",
            "\"\"",
            "[1]",
            "{\"a\":1}",
        ];
        let mut props: Vec<String> = values.iter().map(|v| format!("{{\"v\":{v}}}")).collect();
        props.extend(["{}".into(), "{\"v\":1,\"v\":2}".into(), "{\"w\":5}".into()]);
        let events = props.iter().enumerate().map(|(i, p)| event(i, p)).collect();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(store.insert(events)).unwrap().unwrap();
        let sql = rusqlite::Connection::open(dir.path().join("footfall.sqlite")).unwrap();
        let query = |filters, by| InsightsQuery {
            metric: Metric::Events,
            from_ms: 0,
            to_ms: i64::MAX / 2,
            interval: Interval::Day,
            events: Vec::new(),
            by,
            split: None,
            filters,
            sites: Vec::new(),
            tz: chrono_tz::Tz::UTC,
        };
        for op in ["eq", "neq", "contains", "gt", "lt", "exists"] {
            for value in ["150", "1", "0", "abc", "", "!!", "1e20", "[1]", "-5", "ab"] {
                let f = Filter::parse(&format!("event.v:{op}:{value}")).unwrap();
                let mut where_ = Sql::default();
                filter_sql(&mut where_, &f);
                let want: i64 = sql
                    .query_row(
                        &format!("SELECT COUNT(*) FROM events e WHERE {}", where_.text),
                        params_from_iter(where_.params.iter()),
                        |r| r.get(0),
                    )
                    .unwrap();
                let got = store.insights(&query(vec![f], None)).unwrap().total;
                assert_eq!(got, want as u64, "event.v:{op}:{value}");
            }
        }
        let got = store
            .insights(&query(vec![], Some(Field::parse("event.v").unwrap())))
            .unwrap()
            .table
            .into_iter()
            .map(|r| (r.key, r.value))
            .collect::<Vec<_>>();
        let mut want: Vec<(Option<String>, u64)> = sql
            .prepare(
                "SELECT NULLIF(CAST(json_extract(props, '$.v') AS TEXT), ''), COUNT(*)
                 FROM events GROUP BY 1",
            )
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        want.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        assert_eq!(got, want);
    }

    #[test]
    fn text_becomes_a_number_as_sqlite_casts_it() {
        for (text, n) in [
            ("120", 120.0),
            ("120.0.6099", 120.0),
            (" -3.5e2x", -350.0),
            ("Chrome", 0.0),
            ("", 0.0),
            (".5", 0.5),
            ("7e", 7.0),
        ] {
            assert_eq!(sqlite_real(text), n, "{text:?}");
        }
    }

    #[test]
    fn filters_decide_as_their_sql_does() {
        let f = |s: &str| Filter::parse(s).unwrap();
        assert!(matches(&f("browser:gt:100"), Val::Text("120")));
        assert!(!matches(&f("browser:gt:100"), Val::Text("Chrome")));
        assert!(matches(&f("browser:gt:B"), Val::Text("Chrome")));
        assert!(!matches(&f("browser:lt:B"), Val::Null));
        assert!(matches(&f("browser:contains:ROM"), Val::Text("Chrome")));
        assert!(!matches(&f("browser:contains:x"), Val::Null));
        assert!(matches(&f("browser:eq:"), Val::Null));
        assert!(matches(&f("browser:neq:Chrome"), Val::Null));
        assert!(!matches(&f("browser:exists"), Val::Text("")));
        assert!(matches(&f("event.n:lt:abc"), Val::Number("99")));
        assert!(!matches(&f("event.n:gt:!!"), Val::Number("99")));
        assert!(matches(&f("event.n:gt:!!"), Val::Text("99")));
    }
}
