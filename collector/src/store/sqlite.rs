//! The default store: one SQLite file in WAL mode.
//!
//! Writes go through one writer thread that commits whatever requests are waiting in a single
//! transaction (group commit) and answers each request only after its commit: an acknowledged
//! event survives a `kill -9` of the collector (WAL with `synchronous=NORMAL`; the stricter
//! `FULL` would also survive power loss at a cost per commit). Reads use a small pool of
//! read-only connections, which WAL lets run beside the writer.

use super::index::Index;
use super::*;
use crate::config::Durability;
use rusqlite::{params, params_from_iter, Connection, OpenFlags, OptionalExtension};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};

/// The schema, one migration per step; `PRAGMA user_version` counts the steps applied.
const MIGRATIONS: &[&str] = &[
    SCHEMA_V1, SCHEMA_V2, SCHEMA_V3, SCHEMA_V4, SCHEMA_V5, SCHEMA_V6, SCHEMA_V7, SCHEMA_V8,
    SCHEMA_V9,
];

/// API tokens (issue #19): the SHA-256 of each secret, never the secret; `sites` is a JSON
/// array of site keys. Revoking deletes the row.
const SCHEMA_V9: &str = r#"
CREATE TABLE api_tokens (
    id           TEXT NOT NULL PRIMARY KEY,
    name         TEXT NOT NULL,
    hash         TEXT NOT NULL UNIQUE,
    sites        TEXT NOT NULL,
    scope        TEXT NOT NULL,
    created_ms   INTEGER NOT NULL,
    last_used_ms INTEGER
);
"#;

/// Repairs what V4's backfill left out for stores that had events before it: each session's
/// entry page (the path of its earliest event, as the writer keeps it) and each person's
/// properties (every trait's latest value by event time). Rows the writer kept since V4 already
/// have these; recomputing them gives the same.
const SCHEMA_V7: &str = r#"
UPDATE sessions SET entry_path = COALESCE((
    SELECT e.path FROM events e WHERE e.session_id = sessions.session_id
    ORDER BY e.time_ms, e.rowid LIMIT 1), '')
WHERE entry_path = '';
CREATE TEMP TABLE person_traits AS
SELECT COALESCE(a.user_id, e.anonymous_id) AS person, e.time_ms, e.rowid AS rid, e.traits
FROM events e LEFT JOIN aliases a ON a.anonymous_id = e.anonymous_id
WHERE e.traits IS NOT NULL AND json_valid(e.traits) AND json_type(e.traits) = 'object';
CREATE INDEX temp.person_traits_person ON person_traits (person);
UPDATE people SET properties = (
    SELECT json_group_object(key, json(value)) FROM (
        SELECT j.key AS key, t.traits -> j.fullkey AS value,
               ROW_NUMBER() OVER (PARTITION BY j.key ORDER BY t.time_ms DESC, t.rid DESC) AS n
        FROM person_traits t, json_each(t.traits) j
        WHERE t.person = people.id)
    WHERE n = 1)
WHERE properties = '{}' AND id IN (SELECT person FROM person_traits);
DROP TABLE person_traits;
"#;

/// Bots apart (issue #14). Events flagged with a bot reason before device `bot` meant it
/// (headless browsers, `bot`/`spider` markers) become `bot`, and their sessions too; each
/// person gets first and last seen over people's events (`h_`) and over bots' (`b_`), NULL
/// when there are none, so the users feed can leave bots out. The raw user agent was never
/// stored, so older events are not parsed again (README, "Enrichment at ingest").
const SCHEMA_V8: &str = r#"
UPDATE events SET device = 'bot' WHERE bot_reason IS NOT NULL AND device != 'bot';
UPDATE sessions SET device = 'bot'
WHERE device != 'bot' AND session_id IN (SELECT session_id FROM events WHERE device = 'bot');
ALTER TABLE people ADD COLUMN h_first_ms INTEGER;
ALTER TABLE people ADD COLUMN h_last_ms INTEGER;
ALTER TABLE people ADD COLUMN b_first_ms INTEGER;
ALTER TABLE people ADD COLUMN b_last_ms INTEGER;
CREATE TEMP TABLE person_spans AS
SELECT COALESCE(a.user_id, e.anonymous_id) AS id,
       MIN(CASE WHEN e.device != 'bot' THEN e.time_ms END) AS h_first,
       MAX(CASE WHEN e.device != 'bot' THEN e.time_ms END) AS h_last,
       MIN(CASE WHEN e.device = 'bot' THEN e.time_ms END) AS b_first,
       MAX(CASE WHEN e.device = 'bot' THEN e.time_ms END) AS b_last
FROM events e LEFT JOIN aliases a ON a.anonymous_id = e.anonymous_id
GROUP BY 1;
UPDATE people SET
  h_first_ms = (SELECT h_first FROM person_spans s WHERE s.id = people.id),
  h_last_ms = (SELECT h_last FROM person_spans s WHERE s.id = people.id),
  b_first_ms = (SELECT b_first FROM person_spans s WHERE s.id = people.id),
  b_last_ms = (SELECT b_last FROM person_spans s WHERE s.id = people.id);
DROP TABLE person_spans;
CREATE INDEX people_h_last ON people (h_last_ms);
CREATE INDEX people_b_last ON people (b_last_ms);
"#;

/// Counters readers watch: `erasures` tells the event index (`index.rs`) that rows it holds
/// were deleted.
const SCHEMA_V6: &str = r#"
CREATE TABLE counters (
    name  TEXT NOT NULL PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT INTO counters VALUES ('erasures', 0);
"#;

/// Saved reports: a view and its query string, private or shared by a link's token.
const SCHEMA_V5: &str = r#"
CREATE TABLE reports (
    id          TEXT NOT NULL PRIMARY KEY,
    name        TEXT NOT NULL,
    view        TEXT NOT NULL,
    query       TEXT NOT NULL,
    share_token TEXT UNIQUE,
    created_ms  INTEGER NOT NULL
);
"#;

/// Kept up to date at ingest: one row per session and one per person (a user ID, or an
/// anonymous ID never identified), so the query API need not scan events for them.
const SCHEMA_V4: &str = r#"
CREATE TABLE sessions (
    session_id   TEXT NOT NULL PRIMARY KEY,
    site         TEXT NOT NULL,
    anonymous_id TEXT NOT NULL,
    started_ms   INTEGER NOT NULL,
    ended_ms     INTEGER NOT NULL,
    events       INTEGER NOT NULL,
    pageviews    INTEGER NOT NULL,
    pageleaves   INTEGER NOT NULL,
    entry_path   TEXT NOT NULL,
    browser      TEXT NOT NULL,
    os           TEXT NOT NULL,
    device       TEXT NOT NULL,
    country      TEXT NOT NULL
);
CREATE INDEX sessions_started ON sessions (started_ms);
CREATE INDEX sessions_anon ON sessions (anonymous_id, started_ms);
CREATE TABLE people (
    id         TEXT NOT NULL PRIMARY KEY,
    user_id    TEXT,
    first_ms   INTEGER NOT NULL,
    last_ms    INTEGER NOT NULL,
    properties TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX people_last ON people (last_ms);
INSERT INTO sessions
SELECT session_id, MIN(site), MIN(anonymous_id), MIN(time_ms), MAX(time_ms), COUNT(*),
       SUM(type = 'page'), SUM(name = '$pageleave'), '', MIN(browser), MIN(os), MIN(device),
       MIN(country)
FROM events GROUP BY session_id;
INSERT INTO people (id, user_id, first_ms, last_ms)
SELECT COALESCE(a.user_id, e.anonymous_id), MIN(a.user_id), MIN(e.time_ms), MAX(e.time_ms)
FROM events e LEFT JOIN aliases a ON a.anonymous_id = e.anonymous_id
GROUP BY 1;
"#;

const SCHEMA_V3: &str = r#"
ALTER TABLE events ADD COLUMN country TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN region TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN city TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN ip TEXT;
"#;

const SCHEMA_V2: &str = r#"
ALTER TABLE events ADD COLUMN browser TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN browser_version TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN os TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN device TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN bot_reason TEXT;
ALTER TABLE events ADD COLUMN referrer_domain TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN utm_source TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN utm_medium TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN utm_campaign TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN utm_term TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN utm_content TEXT NOT NULL DEFAULT '';
"#;

fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let done: usize = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (i, step) in MIGRATIONS.iter().enumerate().skip(done) {
        let tx = conn.transaction()?;
        tx.execute_batch(step)?;
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
    }
    Ok(())
}

const SCHEMA_V1: &str = r#"
CREATE TABLE IF NOT EXISTS events (
    event_id     TEXT NOT NULL PRIMARY KEY,
    site         TEXT NOT NULL,
    type         TEXT NOT NULL,
    name         TEXT NOT NULL,
    time_ms      INTEGER NOT NULL,
    client_ms    INTEGER NOT NULL,
    server_ms    INTEGER NOT NULL,
    anonymous_id TEXT NOT NULL,
    user_id      TEXT,
    session_id   TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    url          TEXT NOT NULL,
    path         TEXT NOT NULL,
    title        TEXT NOT NULL,
    referrer     TEXT NOT NULL,
    screen       TEXT NOT NULL,
    viewport     TEXT NOT NULL,
    language     TEXT NOT NULL,
    timezone     TEXT NOT NULL,
    sdk          TEXT NOT NULL,
    props        TEXT NOT NULL,
    traits       TEXT
);
CREATE INDEX IF NOT EXISTS events_time ON events (time_ms);
CREATE INDEX IF NOT EXISTS events_anon ON events (anonymous_id, time_ms);
CREATE INDEX IF NOT EXISTS events_session ON events (session_id, time_ms);
-- Every anonymous ID that was identified, with the user ID it was joined to (the first wins).
CREATE TABLE IF NOT EXISTS aliases (
    anonymous_id TEXT NOT NULL PRIMARY KEY,
    user_id      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS aliases_user ON aliases (user_id);
"#;

struct Job {
    events: Vec<StoredEvent>,
    reply: oneshot::Sender<InsertOutcome>,
}

/// Work for the writer thread: event inserts (committed in groups) or another write, run on
/// its own in a transaction of its own.
enum Work {
    Insert(Job),
    Other(Box<dyn FnOnce(&mut Connection) + Send>),
}

pub struct Sqlite {
    writer: Mutex<mpsc::Sender<Work>>,
    pending: Arc<AtomicUsize>,
    readers: Mutex<Vec<Connection>>,
    path: std::path::PathBuf,
    index: Arc<Mutex<Index>>,
}

impl Sqlite {
    /// Opens (creating if needed) `footfall.sqlite` under `dir` and starts the writer thread.
    pub fn open(dir: &Path, durability: Durability) -> Result<Sqlite, StoreError> {
        let path = dir.join("footfall.sqlite");
        let mut conn = Connection::open(&path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        let synchronous = match durability {
            Durability::Process => "NORMAL",
            Durability::Power => "FULL",
        };
        conn.pragma_update(None, "synchronous", synchronous)?;
        // A larger page cache, and checkpoints moved off the writer to their own thread
        // (`checkpoint_loop`): the writer spends its time inserting rather than re-reading
        // index pages or waiting on a checkpoint's fsyncs.
        conn.pragma_update(None, "cache_size", -32_768)?;
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        migrate(&mut conn)?;
        let checkpointer = Connection::open(&path)?;
        checkpointer.busy_timeout(std::time::Duration::from_secs(5))?;
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || checkpoint_loop(checkpointer))
            .expect("spawn the sqlite checkpointer");
        let (tx, rx) = mpsc::channel::<Work>();
        let pending = Arc::new(AtomicUsize::new(0));
        let counter = pending.clone();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || write_loop(conn, rx, &counter))
            .expect("spawn the sqlite writer");
        // Build the event index now rather than on the first query.
        let index = Arc::new(Mutex::new(Index::default()));
        let (warm, reader) = (index.clone(), read_only(&path)?);
        std::thread::Builder::new()
            .name("event-index".into())
            .spawn(move || {
                let t = std::time::Instant::now();
                let mut index = warm.lock().expect("event index");
                match index.sync(&reader) {
                    Ok(()) => log::info!(
                        "event index: {} events read in {} ms",
                        index.len(),
                        t.elapsed().as_millis()
                    ),
                    Err(e) => log::warn!("event index: {e}"),
                }
            })
            .expect("spawn the event index");
        Ok(Sqlite {
            pending,
            writer: Mutex::new(tx),
            readers: Mutex::new(Vec::new()),
            path,
            index,
        })
    }

    fn with_reader<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let pooled = self.readers.lock().expect("reader pool").pop();
        let conn = match pooled {
            Some(c) => c,
            None => read_only(&self.path)?,
        };
        let out = f(&conn);
        self.readers.lock().expect("reader pool").push(conn);
        out
    }
}

impl Sqlite {
    /// Copies the store under `dir` to `dest` (which must not exist) while a collector may be
    /// writing to it, with SQLite's online backup: the copy is the database as of the moment the
    /// backup began (one read transaction is held across every step, so the collector's commits
    /// neither block nor restart it; they go on into the WAL meanwhile). The copy is written
    /// beside `dest` and renamed into place when complete. `progress` gets bytes done and the
    /// total after each step. Returns the bytes copied.
    /// The users feed when events must be looked at: the event index picks the page of
    /// people, and the people table adds who they are.
    fn users_from_events(&self, q: &UsersQuery) -> Result<UsersPage, StoreError> {
        self.with_reader(|c| {
            let mut rows = {
                let mut index = self.index.lock().expect("event index");
                index.sync(c)?;
                index.people(c, q)?
            };
            let next = (rows.len() > q.limit).then(|| {
                rows.truncate(q.limit);
                let (id, _, last_ms) = rows.last().expect("limit is at least 1");
                UsersCursor {
                    last_ms: *last_ms,
                    id: id.clone(),
                }
            });
            let mut users = Vec::with_capacity(rows.len());
            for (id, first_ms, last_ms) in rows {
                let (user_id, properties): (Option<String>, String) = c
                    .query_row(
                        "SELECT user_id, properties FROM people WHERE id = ?1",
                        [&id],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?
                    .unwrap_or((None, "{}".into()));
                users.push(summary(
                    c, &q.scope, id, user_id, first_ms, last_ms, properties,
                )?);
            }
            Ok(UsersPage { users, next })
        })
    }

    pub fn backup(
        dir: &Path,
        dest: &Path,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<u64, StoreError> {
        let source = dir.join("footfall.sqlite");
        if !source.is_file() {
            return Err(StoreError::Write(format!(
                "no store at {} (is --data-dir right?)",
                source.display()
            )));
        }
        if dest.exists() {
            return Err(StoreError::Write(format!(
                "{} exists already; name a new file",
                dest.display()
            )));
        }
        let partial = dest.with_extension("partial");
        let _ = std::fs::remove_file(&partial);
        let src = Connection::open_with_flags(&source, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        src.busy_timeout(std::time::Duration::from_secs(5))?;
        // The snapshot: a read transaction, opened by a first read, held to the end.
        src.execute_batch("BEGIN")?;
        let page_size: i64 = src.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        src.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))?;
        let mut dst = Connection::open(&partial)?;
        let result = (|| -> rusqlite::Result<u64> {
            let backup = rusqlite::backup::Backup::new(&src, &mut dst)?;
            loop {
                // 4,096 pages a step (16 MB with SQLite's default 4 KB pages).
                let state = backup.step(4096)?;
                let p = backup.progress();
                let total = p.pagecount.max(0) as u64 * page_size as u64;
                let done = total - p.remaining.max(0) as u64 * page_size as u64;
                progress(done, total);
                match state {
                    rusqlite::backup::StepResult::Done => return Ok(total),
                    rusqlite::backup::StepResult::More => {}
                    _ => std::thread::sleep(std::time::Duration::from_millis(50)),
                }
            }
        })();
        let _ = src.execute_batch("COMMIT");
        let copied = result.map_err(StoreError::from)?;
        // The copy as a plain file of its own (no WAL beside it), synced before it is named.
        dst.pragma_update(None, "journal_mode", "DELETE")?;
        drop(dst);
        std::fs::File::open(&partial)
            .and_then(|f| f.sync_all())
            .map_err(|e| StoreError::from_io("backup", e))?;
        std::fs::rename(&partial, dest).map_err(|e| StoreError::from_io("backup", e))?;
        Ok(copied)
    }
}

fn read_only(path: &Path) -> rusqlite::Result<Connection> {
    let c = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    c.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(c)
}

/// Copies the WAL back into the database every second without blocking the writer
/// (`PASSIVE`), so the WAL stays small and commits never wait for a checkpoint.
fn checkpoint_loop(conn: Connection) {
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            log::warn!("sqlite checkpoint: {e}");
        }
    }
}

/// Largest number of events committed in one transaction.
const MAX_GROUP_EVENTS: usize = 20_000;

fn write_loop(mut conn: Connection, rx: mpsc::Receiver<Work>, pending: &AtomicUsize) {
    let mut next = None;
    while let Some(work) = next.take().or_else(|| rx.recv().ok()) {
        let first = match work {
            Work::Other(f) => {
                f(&mut conn);
                continue;
            }
            Work::Insert(job) => job,
        };
        let mut jobs = vec![first];
        let mut n = jobs[0].events.len();
        while n < MAX_GROUP_EVENTS {
            match rx.try_recv() {
                Ok(Work::Insert(job)) => {
                    n += job.events.len();
                    jobs.push(job);
                }
                Ok(other) => {
                    // Runs after this group, in the order it came.
                    next = Some(other);
                    break;
                }
                Err(_) => break,
            }
        }
        let result = commit(&mut conn, &jobs);
        pending.fetch_sub(n, Ordering::Relaxed);
        match result {
            Ok(outcomes) => {
                for (job, outcome) in jobs.into_iter().zip(outcomes) {
                    let _ = job.reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                log::error!("sqlite commit of {n} events failed: {e}");
                for job in jobs {
                    let _ = job.reply.send(Err(match e.sqlite_error_code() {
                        Some(rusqlite::ErrorCode::DiskFull) => StoreError::Full(e.to_string()),
                        _ => StoreError::Write(e.to_string()),
                    }));
                }
            }
        }
    }
}

impl Sqlite {
    /// Runs `f` in a transaction on the writer thread; the answer comes after the commit.
    fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction) -> rusqlite::Result<T> + Send + 'static,
    ) -> oneshot::Receiver<Result<T, StoreError>> {
        let (reply, rx) = oneshot::channel();
        let work = Work::Other(Box::new(move |conn: &mut Connection| {
            let result = conn.transaction().and_then(|tx| {
                let out = f(&tx)?;
                tx.commit()?;
                Ok(out)
            });
            let _ = reply.send(result.map_err(StoreError::from));
        }));
        if let Err(mpsc::SendError(Work::Other(f))) = self.writer.lock().expect("writer").send(work)
        {
            drop(f);
        }
        rx
    }
}

/// What one commit adds to the `sessions` and `people` tables, summed in memory so that each
/// session and person costs one upsert per commit, not one per event.
#[derive(Default)]
struct Rollup {
    sessions: HashMap<String, SessionSum>,
    people: HashMap<String, PersonSum>,
    /// Person of each anonymous ID seen in this commit.
    person_of: HashMap<String, String>,
}

struct SessionSum {
    site: String,
    anonymous_id: String,
    started_ms: i64,
    ended_ms: i64,
    events: i64,
    pageviews: i64,
    pageleaves: i64,
    entry_path: String,
    browser: String,
    os: String,
    device: String,
    country: String,
}

struct PersonSum {
    user_id: Option<String>,
    first_ms: i64,
    last_ms: i64,
    /// First and last time of people's events and of bots' events, if any.
    human: Option<(i64, i64)>,
    bot: Option<(i64, i64)>,
    /// Traits in time order, merged last-write-wins.
    properties: serde_json::Map<String, serde_json::Value>,
    last_trait_ms: i64,
}

impl Rollup {
    fn person(
        &mut self,
        tx: &rusqlite::Transaction,
        anonymous_id: &str,
    ) -> rusqlite::Result<String> {
        if let Some(p) = self.person_of.get(anonymous_id) {
            return Ok(p.clone());
        }
        let p: Option<String> = tx
            .prepare_cached("SELECT user_id FROM aliases WHERE anonymous_id = ?1")?
            .query_row([anonymous_id], |r| r.get(0))
            .optional()?;
        let p = p.unwrap_or_else(|| anonymous_id.to_owned());
        self.person_of.insert(anonymous_id.to_owned(), p.clone());
        Ok(p)
    }

    fn add(&mut self, tx: &rusqlite::Transaction, e: &StoredEvent) -> rusqlite::Result<()> {
        let s = self
            .sessions
            .entry(e.session_id.clone())
            .or_insert_with(|| SessionSum {
                site: e.site.clone(),
                anonymous_id: e.anonymous_id.clone(),
                started_ms: e.time_ms,
                ended_ms: e.time_ms,
                events: 0,
                pageviews: 0,
                pageleaves: 0,
                entry_path: e.path.clone(),
                browser: e.browser.clone(),
                os: e.os.clone(),
                device: e.device.clone(),
                country: e.country.clone(),
            });
        if e.time_ms < s.started_ms {
            s.started_ms = e.time_ms;
            s.entry_path = e.path.clone();
        }
        s.ended_ms = s.ended_ms.max(e.time_ms);
        s.events += 1;
        s.pageviews += i64::from(e.kind == "page");
        s.pageleaves += i64::from(e.name == "$pageleave");

        let person = self.person(tx, &e.anonymous_id)?;
        let p = self.people.entry(person).or_insert_with(|| PersonSum {
            user_id: None,
            first_ms: e.time_ms,
            last_ms: e.time_ms,
            human: None,
            bot: None,
            properties: serde_json::Map::new(),
            last_trait_ms: i64::MIN,
        });
        p.first_ms = p.first_ms.min(e.time_ms);
        p.last_ms = p.last_ms.max(e.time_ms);
        let span = if e.device == "bot" {
            &mut p.bot
        } else {
            &mut p.human
        };
        *span = Some(span.map_or((e.time_ms, e.time_ms), |(f, l)| {
            (f.min(e.time_ms), l.max(e.time_ms))
        }));
        if p.user_id.is_none() {
            p.user_id = e.user_id.clone();
        }
        if let Some(serde_json::Value::Object(t)) = e
            .traits
            .as_deref()
            .and_then(|t| serde_json::from_str(t).ok())
        {
            if e.time_ms >= p.last_trait_ms {
                p.properties.extend(t);
                p.last_trait_ms = e.time_ms;
            } else {
                for (k, v) in t {
                    p.properties.entry(k).or_insert(v);
                }
            }
        }
        Ok(())
    }

    /// `anonymous_id` was just joined to `user_id`: its person row (from earlier commits and
    /// this one) becomes part of the user's.
    fn join(
        &mut self,
        tx: &rusqlite::Transaction,
        anonymous_id: &str,
        user_id: &str,
    ) -> rusqlite::Result<()> {
        self.flush(tx)?;
        tx.execute(
            &format!(
                "INSERT INTO people (id, user_id, first_ms, last_ms, properties,
                   h_first_ms, h_last_ms, b_first_ms, b_last_ms)
                 SELECT ?2, ?2, first_ms, last_ms, properties,
                   h_first_ms, h_last_ms, b_first_ms, b_last_ms FROM people WHERE id = ?1
                 ON CONFLICT(id) DO UPDATE SET
                   first_ms = MIN(first_ms, excluded.first_ms),
                   last_ms = MAX(last_ms, excluded.last_ms),
                   properties = json_patch(excluded.properties, properties), {SPANS_MERGE}"
            ),
            params![anonymous_id, user_id],
        )?;
        tx.execute("DELETE FROM people WHERE id = ?1", [anonymous_id])?;
        self.person_of
            .insert(anonymous_id.to_owned(), user_id.to_owned());
        Ok(())
    }

    fn flush(&mut self, tx: &rusqlite::Transaction) -> rusqlite::Result<()> {
        let mut upsert_session = tx.prepare_cached(
            "INSERT INTO sessions (session_id, site, anonymous_id, started_ms, ended_ms, events,
               pageviews, pageleaves, entry_path, browser, os, device, country)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
             ON CONFLICT(session_id) DO UPDATE SET
               entry_path = CASE WHEN excluded.started_ms < started_ms
                            THEN excluded.entry_path ELSE entry_path END,
               started_ms = MIN(started_ms, excluded.started_ms),
               ended_ms = MAX(ended_ms, excluded.ended_ms),
               events = events + excluded.events,
               pageviews = pageviews + excluded.pageviews,
               pageleaves = pageleaves + excluded.pageleaves",
        )?;
        for (id, s) in self.sessions.drain() {
            upsert_session.execute(params![
                id,
                s.site,
                s.anonymous_id,
                s.started_ms,
                s.ended_ms,
                s.events,
                s.pageviews,
                s.pageleaves,
                s.entry_path,
                s.browser,
                s.os,
                s.device,
                s.country
            ])?;
        }
        let mut upsert_person = tx.prepare_cached(&format!(
            "INSERT INTO people (id, user_id, first_ms, last_ms, properties,
               h_first_ms, h_last_ms, b_first_ms, b_last_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT(id) DO UPDATE SET
               user_id = COALESCE(user_id, excluded.user_id),
               first_ms = MIN(first_ms, excluded.first_ms),
               last_ms = MAX(last_ms, excluded.last_ms),
               properties = json_patch(properties, excluded.properties), {SPANS_MERGE}"
        ))?;
        for (id, p) in self.people.drain() {
            let props = serde_json::Value::Object(p.properties).to_string();
            upsert_person.execute(params![
                id,
                p.user_id,
                p.first_ms,
                p.last_ms,
                props,
                p.human.map(|s| s.0),
                p.human.map(|s| s.1),
                p.bot.map(|s| s.0),
                p.bot.map(|s| s.1)
            ])?;
        }
        Ok(())
    }
}

/// Merges a person's first and last seen of people's and of bots' events on upsert, where
/// either side may be NULL (SQLite's two-argument MIN and MAX are NULL if either is).
const SPANS_MERGE: &str = "
    h_first_ms = COALESCE(MIN(h_first_ms, excluded.h_first_ms), h_first_ms, excluded.h_first_ms),
    h_last_ms = COALESCE(MAX(h_last_ms, excluded.h_last_ms), h_last_ms, excluded.h_last_ms),
    b_first_ms = COALESCE(MIN(b_first_ms, excluded.b_first_ms), b_first_ms, excluded.b_first_ms),
    b_last_ms = COALESCE(MAX(b_last_ms, excluded.b_last_ms), b_last_ms, excluded.b_last_ms)";

/// A person's first and last seen columns in the people table, as `bots` counts them.
fn span_columns(bots: Bots) -> (&'static str, &'static str) {
    match bots {
        Bots::Include => ("first_ms", "last_ms"),
        Bots::Exclude => ("h_first_ms", "h_last_ms"),
        Bots::Only => ("b_first_ms", "b_last_ms"),
    }
}

fn commit(conn: &mut Connection, jobs: &[Job]) -> rusqlite::Result<Vec<Vec<bool>>> {
    let tx = conn.transaction()?;
    let mut outcomes = Vec::with_capacity(jobs.len());
    let mut rollup = Rollup::default();
    {
        let mut insert = tx.prepare_cached(
            "INSERT OR IGNORE INTO events (event_id, site, type, name, time_ms, client_ms,
             server_ms, anonymous_id, user_id, session_id, seq, url, path, title, referrer,
             screen, viewport, language, timezone, sdk, props, traits, browser, browser_version,
             os, device, bot_reason, referrer_domain, utm_source, utm_medium, utm_campaign,
             utm_term, utm_content, country, region, city, ip)
             VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,?21,
                     ?22,?23,?24,?25,?26,?27,?28,?29,?30,?31,?32,?33,?34,?35,?36,?37)",
        )?;
        let mut alias = tx.prepare_cached(
            "INSERT OR IGNORE INTO aliases (anonymous_id, user_id) VALUES (?1, ?2)",
        )?;
        for job in jobs {
            let mut stored = Vec::with_capacity(job.events.len());
            for e in &job.events {
                let n = insert.execute(params![
                    e.event_id,
                    e.site,
                    e.kind,
                    e.name,
                    e.time_ms,
                    e.client_ms,
                    e.server_ms,
                    e.anonymous_id,
                    e.user_id,
                    e.session_id,
                    e.seq,
                    e.url,
                    e.path,
                    e.title,
                    e.referrer,
                    e.screen,
                    e.viewport,
                    e.language,
                    e.timezone,
                    e.sdk,
                    e.props,
                    e.traits,
                    e.browser,
                    e.browser_version,
                    e.os,
                    e.device,
                    e.bot_reason,
                    e.referrer_domain,
                    e.utm_source,
                    e.utm_medium,
                    e.utm_campaign,
                    e.utm_term,
                    e.utm_content,
                    e.country,
                    e.region,
                    e.city,
                    e.ip,
                ])?;
                if n == 1 {
                    if let Some(user) = &e.user_id {
                        if alias.execute(params![e.anonymous_id, user])? == 1 {
                            rollup.join(&tx, &e.anonymous_id, user)?;
                        }
                    }
                    rollup.add(&tx, e)?;
                }
                stored.push(n == 1);
            }
            outcomes.push(stored);
        }
    }
    rollup.flush(&tx)?;
    tx.commit()?;
    Ok(outcomes)
}

/// SQL text with its positional parameters, built in order.
#[derive(Default)]
pub(super) struct Sql {
    pub text: String,
    pub params: Vec<rusqlite::types::Value>,
}

impl Sql {
    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }
    pub fn bind(&mut self, v: impl Into<rusqlite::types::Value>) -> &mut Self {
        self.text.push('?');
        self.params.push(v.into());
        self
    }
    /// The SQL expression of a field.
    pub fn field(&mut self, f: &Field) -> &mut Self {
        match f {
            Field::Event(col) => self.push("e.").push(col),
            Field::EventProp(k) => self
                .push("json_extract(e.props, ")
                .bind(format!("$.\"{k}\""))
                .push(")"),
            Field::UserProp(k) => self
                .push("json_extract(p.properties, ")
                .bind(format!("$.\"{k}\""))
                .push(")"),
        }
    }
}

/// The SQL condition of a filter on an event (`e`) or a person (`p`).
pub(super) fn filter_sql(sql: &mut Sql, f: &Filter) {
    let number = f.value.parse::<f64>().ok();
    match f.op {
        Op::Exists => {
            sql.push("COALESCE(").field(&f.field).push(", '') <> ''");
        }
        Op::Eq | Op::Neq => {
            sql.push("COALESCE(CAST(")
                .field(&f.field)
                .push(" AS TEXT), '')");
            sql.push(if f.op == Op::Eq { " = " } else { " <> " });
            sql.bind(f.value.clone());
        }
        Op::Contains => {
            sql.push("instr(lower(CAST(")
                .field(&f.field)
                .push(" AS TEXT)), lower(")
                .bind(f.value.clone())
                .push(")) > 0");
        }
        Op::Gt | Op::Lt => {
            let cmp = if f.op == Op::Gt { " > " } else { " < " };
            match number {
                Some(n) => sql
                    .push("CAST(")
                    .field(&f.field)
                    .push(" AS REAL)")
                    .push(cmp)
                    .bind(n),
                None => sql.field(&f.field).push(cmp).bind(f.value.clone()),
            };
        }
    }
}

fn json_object(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|_| serde_json::json!({}))
}

impl Store for Sqlite {
    fn insert(&self, events: Vec<StoredEvent>) -> oneshot::Receiver<InsertOutcome> {
        let (reply, rx) = oneshot::channel();
        self.pending.fetch_add(events.len(), Ordering::Relaxed);
        let job = Work::Insert(Job { events, reply });
        if let Err(mpsc::SendError(Work::Insert(job))) =
            self.writer.lock().expect("writer").send(job)
        {
            self.pending.fetch_sub(job.events.len(), Ordering::Relaxed);
            let _ = job.reply.send(Err(StoreError::Closed));
        }
        rx
    }

    fn erase(&self, person: &str) -> oneshot::Receiver<Result<Erased, StoreError>> {
        let person = person.to_owned();
        self.write(move |tx| {
            let user: Option<String> = tx
                .query_row(
                    "SELECT user_id FROM aliases WHERE user_id = ?1 OR anonymous_id = ?1 LIMIT 1",
                    [&person],
                    |r| r.get(0),
                )
                .optional()?;
            let mut anonymous_ids: Vec<String> = match &user {
                Some(u) => tx
                    .prepare("SELECT anonymous_id FROM aliases WHERE user_id = ?1 ORDER BY 1")?
                    .query_map([u], |r| r.get(0))?
                    .collect::<Result<_, _>>()?,
                None => vec![person.clone()],
            };
            anonymous_ids.dedup();
            let mut events = 0;
            for anon in &anonymous_ids {
                events += tx.execute("DELETE FROM events WHERE anonymous_id = ?1", [anon])?;
                tx.execute("DELETE FROM sessions WHERE anonymous_id = ?1", [anon])?;
                tx.execute("DELETE FROM people WHERE id = ?1", [anon])?;
                tx.execute("DELETE FROM aliases WHERE anonymous_id = ?1", [anon])?;
            }
            if let Some(u) = &user {
                events += tx.execute("DELETE FROM events WHERE user_id = ?1", [u])?;
                tx.execute("DELETE FROM people WHERE id = ?1", [u])?;
                tx.execute("DELETE FROM aliases WHERE user_id = ?1", [u])?;
            }
            tx.execute(
                "UPDATE counters SET value = value + 1 WHERE name = 'erasures'",
                [],
            )?;
            Ok(Erased {
                events: events as u64,
                anonymous_ids,
            })
        })
    }

    fn queue_depth(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }

    fn insights(&self, q: &InsightsQuery) -> Result<Insights, StoreError> {
        let starts = bucket_starts(q.from_ms, q.to_ms, q.interval, q.tz);
        self.with_reader(|c| {
            let mut index = self.index.lock().expect("event index");
            index.sync(c)?;
            index.insights(c, q, &starts)
        })
    }

    fn user(&self, id: &str, scope: &Scope) -> Result<Option<UserDetail>, StoreError> {
        self.with_reader(|c| {
            let identified: Option<String> = c
                .query_row(
                    "SELECT user_id FROM aliases WHERE user_id = ?1 OR anonymous_id = ?1 LIMIT 1",
                    [id],
                    |r| r.get(0),
                )
                .optional()?;
            let person = identified.clone().unwrap_or_else(|| id.to_owned());
            let anonymous_ids = anonymous_ids_of(c, &person, identified.is_some())?;
            let placeholders = vec!["?"; anonymous_ids.len()].join(",");
            let (sessions, traits) = load_sessions(
                c,
                &format!(
                    "anonymous_id IN ({placeholders}) AND {}",
                    scope.sql("device", "site", lit)
                ),
                &anonymous_ids,
            )?;
            Ok(UserDetail::assemble(
                person,
                identified,
                anonymous_ids,
                sessions,
                traits,
            ))
        })
    }

    fn users(&self, q: &UsersQuery) -> Result<UsersPage, StoreError> {
        use rusqlite::types::Value;
        if !q.plain() {
            return self.users_from_events(q);
        }
        self.with_reader(|c| {
            let (first, last) = span_columns(q.scope.bots);
            let mut sql = format!(
                "SELECT id, user_id, {first}, {last}, properties FROM people
                 WHERE {last} >= ? AND {first} < ?"
            );
            let mut params = vec![Value::Integer(q.from_ms), Value::Integer(q.to_ms)];
            if let Some(cur) = &q.cursor {
                sql.push_str(&format!(
                    " AND ({last} < ? OR ({last} = ? AND id > ?))"
                ));
                params.extend([
                    Value::Integer(cur.last_ms),
                    Value::Integer(cur.last_ms),
                    Value::Text(cur.id.clone()),
                ]);
            }
            if let Some(ids) = &q.ids {
                sql.push_str(&format!(" AND id IN ({})", vec!["?"; ids.len()].join(",")));
                params.extend(ids.iter().cloned().map(Value::Text));
            }
            if let Some(needle) = &q.contains {
                sql.push_str(
                    " AND (instr(lower(id), lower(?)) > 0 OR EXISTS (SELECT 1 FROM aliases a
                       WHERE a.user_id = people.id AND instr(lower(a.anonymous_id), lower(?)) > 0))",
                );
                params.extend([Value::Text(needle.clone()), Value::Text(needle.clone())]);
            }
            sql.push_str(&format!(" ORDER BY {last} DESC, id ASC LIMIT ?"));
            params.push(Value::Integer(q.limit as i64 + 1));
            let mut rows: Vec<(String, Option<String>, i64, i64, String)> = c
                .prepare(&sql)?
                .query_map(params_from_iter(params.iter()), |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })?
                .collect::<Result<_, _>>()?;
            let next = (rows.len() > q.limit).then(|| {
                rows.truncate(q.limit);
                let last = rows.last().expect("limit is at least 1");
                UsersCursor {
                    last_ms: last.3,
                    id: last.0.clone(),
                }
            });
            let mut users = Vec::with_capacity(rows.len());
            for (id, user_id, first_ms, last_ms, properties) in rows {
                users.push(summary(
                    c, &q.scope, id, user_id, first_ms, last_ms, properties,
                )?);
            }
            Ok(UsersPage { users, next })
        })
    }

    fn step_events(&self, q: &journeys::StepQuery) -> Result<Vec<journeys::StepHit>, StoreError> {
        self.with_reader(|c| {
            let mut index = self.index.lock().expect("event index");
            index.sync(c)?;
            index.step_events(c, q)
        })
    }

    fn path_events(
        &self,
        q: &journeys::PathQuery,
    ) -> Result<(Vec<journeys::PathEvent>, Vec<journeys::Label>), StoreError> {
        self.with_reader(|c| {
            let mut index = self.index.lock().expect("event index");
            index.sync(c)?;
            index.path_events(c, q)
        })
    }

    fn session_stats(&self, q: &SessionStatsQuery) -> Result<SessionStats, StoreError> {
        self.with_reader(|c| {
            let mut index = self.index.lock().expect("event index");
            index.sync(c)?;
            Ok(index.session_stats(q))
        })
    }

    fn session(&self, id: &str, scope: &Scope) -> Result<Option<SessionView>, StoreError> {
        self.with_reader(|c| {
            let filter = format!("session_id = ? AND {}", scope.sql("device", "site", lit));
            let (sessions, _) = load_sessions(c, &filter, &[id.to_owned()])?;
            Ok(sessions.into_iter().next())
        })
    }

    fn event_names(
        &self,
        from_ms: i64,
        to_ms: i64,
        scope: &Scope,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        self.with_reader(|c| {
            let names = c
                .prepare(&format!(
                    "SELECT name, COUNT(*) FROM events WHERE time_ms >= ?1 AND time_ms < ?2
                     AND {} GROUP BY name ORDER BY 2 DESC, 1 LIMIT 500",
                    scope.sql("device", "site", lit)
                ))?
                .query_map([from_ms, to_ms], |r| {
                    Ok((r.get(0)?, r.get::<_, i64>(1)? as u64))
                })?
                .collect::<Result<_, _>>()?;
            Ok(names)
        })
    }

    fn property_keys(
        &self,
        from_ms: i64,
        to_ms: i64,
        scope: &Scope,
    ) -> Result<PropertyKeys, StoreError> {
        let (first, last) = span_columns(scope.bots);
        let device = scope.sql("device", "site", lit);
        // With sites named, only people with an event of one of them.
        let of_sites = if scope.sites.is_empty() {
            String::new()
        } else {
            let sites: Vec<String> = scope.sites.iter().map(|s| lit(s)).collect();
            format!(
                "AND EXISTS (SELECT 1 FROM sessions s WHERE s.site IN ({}) AND s.anonymous_id IN
                   (SELECT people.id UNION ALL SELECT anonymous_id FROM aliases
                    WHERE user_id = people.id))",
                sites.join(", ")
            )
        };
        self.with_reader(|c| {
            let counts = |sql: &str| -> Result<Vec<KeyCount>, StoreError> {
                Ok(c.prepare(sql)?
                    .query_map([from_ms, to_ms], |r| {
                        Ok(KeyCount {
                            key: r.get(0)?,
                            count: r.get::<_, i64>(1)? as u64,
                        })
                    })?
                    .collect::<Result<_, _>>()?)
            };
            Ok(PropertyKeys {
                columns: column_names(),
                event: counts(&format!(
                    "SELECT j.key, COUNT(*) FROM (SELECT props FROM events
                       WHERE time_ms >= ?1 AND time_ms < ?2 AND {device}
                       ORDER BY time_ms DESC LIMIT 5000) e,
                     json_each(e.props) j GROUP BY j.key ORDER BY 2 DESC, 1 LIMIT 200",
                ))?,
                user: counts(&format!(
                    "SELECT j.key, COUNT(*) FROM (SELECT properties FROM people
                       WHERE {last} >= ?1 AND {first} < ?2 {of_sites}
                       ORDER BY {last} DESC LIMIT 5000) p,
                     json_each(p.properties) j GROUP BY j.key ORDER BY 2 DESC, 1 LIMIT 200",
                ))?,
            })
        })
    }

    fn save_report(&self, r: Report) -> oneshot::Receiver<Result<(), StoreError>> {
        self.write(move |tx| {
            let created = chrono::DateTime::parse_from_rfc3339(&r.created_at)
                .map(|t| t.timestamp_millis())
                .unwrap_or_default();
            tx.execute(
                "INSERT INTO reports (id, name, view, query, share_token, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(id) DO UPDATE SET name = excluded.name, view = excluded.view,
                   query = excluded.query, share_token = excluded.share_token",
                params![r.id, r.name, r.view, r.query, r.share_token, created],
            )?;
            Ok(())
        })
    }

    fn delete_report(&self, id: &str) -> oneshot::Receiver<Result<bool, StoreError>> {
        let id = id.to_owned();
        self.write(move |tx| Ok(tx.execute("DELETE FROM reports WHERE id = ?1", [id])? == 1))
    }

    fn reports(&self) -> Result<Vec<Report>, StoreError> {
        self.with_reader(|c| {
            Ok(c.prepare(
                "SELECT id, name, view, query, share_token, created_ms FROM reports
                 ORDER BY created_ms DESC",
            )?
            .query_map([], report_row)?
            .collect::<Result<_, _>>()?)
        })
    }

    fn report(&self, id: &str, shared: bool) -> Result<Option<Report>, StoreError> {
        let column = if shared { "share_token" } else { "id" };
        self.with_reader(|c| {
            Ok(c.query_row(
                &format!(
                    "SELECT id, name, view, query, share_token, created_ms FROM reports
                     WHERE {column} = ?1"
                ),
                [id],
                report_row,
            )
            .optional()?)
        })
    }

    fn save_token(&self, t: ApiToken) -> oneshot::Receiver<Result<(), StoreError>> {
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO api_tokens (id, name, hash, sites, scope, created_ms, last_used_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    t.id,
                    t.name,
                    t.hash,
                    serde_json::to_string(&t.sites).expect("plain data"),
                    t.scope,
                    t.created_ms,
                    t.last_used_ms
                ],
            )?;
            Ok(())
        })
    }

    fn revoke_token(&self, id: &str) -> oneshot::Receiver<Result<bool, StoreError>> {
        let id = id.to_owned();
        self.write(move |tx| Ok(tx.execute("DELETE FROM api_tokens WHERE id = ?1", [id])? == 1))
    }

    fn touch_token(&self, t: ApiToken, at_ms: i64) -> oneshot::Receiver<Result<(), StoreError>> {
        self.write(move |tx| {
            tx.execute(
                "UPDATE api_tokens SET last_used_ms = MAX(COALESCE(last_used_ms, 0), ?2)
                 WHERE id = ?1",
                params![t.id, at_ms],
            )?;
            Ok(())
        })
    }

    fn tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        self.with_reader(|c| {
            Ok(c.prepare(
                "SELECT id, name, hash, sites, scope, created_ms, last_used_ms FROM api_tokens
                 ORDER BY created_ms, id",
            )?
            .query_map([], token_row)?
            .collect::<Result<_, _>>()?)
        })
    }
}

fn token_row(r: &rusqlite::Row) -> rusqlite::Result<ApiToken> {
    let sites: String = r.get(3)?;
    Ok(ApiToken {
        id: r.get(0)?,
        name: r.get(1)?,
        hash: r.get(2)?,
        sites: serde_json::from_str(&sites).unwrap_or_default(),
        scope: r.get(4)?,
        created_ms: r.get(5)?,
        last_used_ms: r.get(6)?,
    })
}

fn report_row(r: &rusqlite::Row) -> rusqlite::Result<Report> {
    Ok(Report {
        id: r.get(0)?,
        name: r.get(1)?,
        view: r.get(2)?,
        query: r.get(3)?,
        share_token: r.get(4)?,
        created_at: rfc3339(r.get(5)?),
    })
}

/// Text as an SQLite string literal.
fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A person of the users feed, with their anonymous IDs and the sessions `scope` counts.
fn summary(
    c: &Connection,
    scope: &Scope,
    id: String,
    user_id: Option<String>,
    first_ms: i64,
    last_ms: i64,
    properties: String,
) -> Result<UserSummary, StoreError> {
    let anonymous_ids = anonymous_ids_of(c, &id, user_id.is_some())?;
    let placeholders = vec!["?"; anonymous_ids.len()].join(",");
    let session_count: i64 = c.query_row(
        &format!(
            "SELECT COUNT(*) FROM sessions WHERE anonymous_id IN ({placeholders}) AND {}",
            scope.sql("device", "site", lit)
        ),
        params_from_iter(anonymous_ids.iter()),
        |r| r.get(0),
    )?;
    Ok(UserSummary {
        id,
        user_id,
        anonymous_ids,
        first_seen: rfc3339(first_ms),
        last_seen: rfc3339(last_ms),
        properties: json_object(&properties),
        session_count: session_count as u64,
    })
}

/// Every anonymous ID of a person: those joined to the user ID, or the ID itself.
fn anonymous_ids_of(
    c: &Connection,
    person: &str,
    identified: bool,
) -> Result<Vec<String>, StoreError> {
    if !identified {
        return Ok(vec![person.to_owned()]);
    }
    let ids = c
        .prepare_cached("SELECT anonymous_id FROM aliases WHERE user_id = ?1 ORDER BY 1")?
        .query_map([person], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(ids)
}

/// The sessions of the events matching `filter`, each with its events in order, and the
/// traits those events set (in time order).
fn load_sessions(
    c: &Connection,
    filter: &str,
    params: &[String],
) -> Result<(Vec<SessionView>, Traits), StoreError> {
    let mut stmt = c.prepare(&format!(
        "SELECT event_id, type, name, time_ms, client_ms, seq, url, path, props, traits,
                session_id, anonymous_id, browser, os, device, country, region, city, site
         FROM events WHERE {filter} ORDER BY time_ms, seq"
    ))?;
    let mut sessions: Vec<SessionView> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut traits = Vec::new();
    let mut rows = stmt.query(params_from_iter(params.iter()))?;
    while let Some(r) = rows.next()? {
        let time_ms: i64 = r.get(3)?;
        if let Some(t) = r.get::<_, Option<String>>(9)? {
            if let serde_json::Value::Object(t) = json_object(&t) {
                traits.push(t);
            }
        }
        let session_id: String = r.get(10)?;
        let at = match index.get(&session_id) {
            Some(&i) => i,
            None => {
                index.insert(session_id.clone(), sessions.len());
                sessions.push(SessionView {
                    session_id,
                    site: r.get(18)?,
                    anonymous_id: r.get(11)?,
                    started_at: rfc3339(time_ms),
                    ended_at: String::new(),
                    duration_seconds: 0.0,
                    browser: non_empty(r.get(12)?),
                    os: non_empty(r.get(13)?),
                    device: non_empty(r.get(14)?),
                    country: non_empty(r.get(15)?),
                    region: non_empty(r.get(16)?),
                    city: non_empty(r.get(17)?),
                    events: Vec::new(),
                });
                sessions.len() - 1
            }
        };
        let s = &mut sessions[at];
        s.ended_at = rfc3339(time_ms);
        s.duration_seconds = (time_ms - parse_ms(&s.started_at)) as f64 / 1000.0;
        s.events.push(EventView {
            event_id: r.get(0)?,
            kind: r.get(1)?,
            name: r.get(2)?,
            timestamp: rfc3339(time_ms),
            client_timestamp: rfc3339(r.get(4)?),
            seq: r.get(5)?,
            url: r.get(6)?,
            path: r.get(7)?,
            props: json_object(&r.get::<_, String>(8)?),
        });
    }
    Ok((sessions, traits))
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

fn parse_ms(t: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|d| d.timestamp_millis())
        .unwrap_or(0)
}

/// The first instant of a local date in `tz`, as UTC milliseconds (midnight, or later when a
/// DST gap swallows it).
pub fn day_start(d: chrono::NaiveDate, tz: chrono_tz::Tz) -> i64 {
    use chrono::TimeZone;
    (0..24)
        .find_map(|h| {
            tz.from_local_datetime(&d.and_hms_opt(h, 0, 0)?)
                .earliest()
                .map(|t| t.timestamp_millis())
        })
        .unwrap_or_default()
}

/// Every bucket start, as UTC milliseconds, from the one holding `from_ms` up to `to_ms`
/// (exclusive): hours, or local midnights of days, Mondays and first days of months in `tz`
/// (so a day in a zone with daylight saving time may last 23 or 25 hours). At most 5,000.
pub fn bucket_starts(from_ms: i64, to_ms: i64, interval: Interval, tz: chrono_tz::Tz) -> Vec<i64> {
    use chrono::{Datelike, Duration, NaiveDate, TimeZone, Utc};
    const HOUR: i64 = 3_600_000;
    if interval == Interval::Hour {
        let first = from_ms.div_euclid(HOUR) * HOUR;
        return (0..5_000)
            .map(|i| first + i * HOUR)
            .take_while(|&t| t < to_ms)
            .collect();
    }
    let local = |ms: i64| {
        Utc.timestamp_millis_opt(ms)
            .single()
            .unwrap_or_default()
            .with_timezone(&tz)
            .date_naive()
    };
    let start_of = |d: NaiveDate| day_start(d, tz);
    let mut d = local(from_ms);
    d = match interval {
        Interval::Week => d - Duration::days(d.weekday().num_days_from_monday().into()),
        Interval::Month => d.with_day(1).unwrap_or(d),
        _ => d,
    };
    let mut out = Vec::new();
    while out.len() < 5_000 {
        let t = start_of(d);
        if t >= to_ms {
            break;
        }
        out.push(t);
        d = match interval {
            Interval::Day | Interval::Hour => d + Duration::days(1),
            Interval::Week => d + Duration::days(7),
            Interval::Month => d
                .checked_add_months(chrono::Months::new(1))
                .unwrap_or(d + Duration::days(31)),
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Migration 8 on a store written before it: events flagged as bots become device `bot`
    /// with their sessions, and each person's spans of people's and bots' events are filled.
    #[test]
    fn migration_8_sets_bots_apart_in_stored_events() {
        let mut c = Connection::open_in_memory().unwrap();
        for step in &MIGRATIONS[..6] {
            c.execute_batch(step).unwrap();
        }
        c.pragma_update(None, "user_version", 6).unwrap();
        let row = |id: &str, anon: &str, session: &str, t: i64, device: &str, bot: Option<&str>| {
            c.execute(
                "INSERT INTO events (event_id, site, type, name, time_ms, client_ms, server_ms,
                   anonymous_id, session_id, seq, url, path, title, referrer, screen, viewport,
                   language, timezone, sdk, props, device, bot_reason)
                 VALUES (?1, 'demo', 'page', '$pageview', ?2, ?2, ?2, ?3, ?4, 1, '', '/', '', '',
                   '', '', '', '', '', '{}', ?5, ?6)",
                params![id, t, anon, session, device, bot],
            )
            .unwrap();
        };
        row("e1", "a1", "s1", 10, "desktop", None);
        row(
            "e2",
            "a2",
            "s2",
            20,
            "desktop",
            Some("user agent contains \"headless\""),
        );
        row("e3", "a3", "s3", 30, "mobile", None);
        row("e4", "a3", "s4", 40, "bot", Some("crawler: Googlebot"));
        c.execute_batch(
            "INSERT INTO aliases VALUES ('a3', 'u3');
             INSERT INTO sessions SELECT session_id, site, anonymous_id, time_ms, time_ms, 1, 1, 0,
               path, browser, os, device, country FROM events;
             INSERT INTO people (id, user_id, first_ms, last_ms) VALUES
               ('a1', NULL, 10, 10), ('a2', NULL, 20, 20), ('u3', 'u3', 30, 40);",
        )
        .unwrap();
        migrate(&mut c).unwrap();
        let devices: Vec<(String, String)> = c
            .prepare("SELECT e.device, s.device FROM events e JOIN sessions s USING (session_id) ORDER BY e.event_id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let pair = |a: &str, b: &str| (a.to_owned(), b.to_owned());
        assert_eq!(
            devices,
            [
                pair("desktop", "desktop"),
                pair("bot", "bot"),
                pair("mobile", "mobile"),
                pair("bot", "bot")
            ]
        );
        type Spans = (String, Option<i64>, Option<i64>, Option<i64>, Option<i64>);
        let people: Vec<Spans> = c
            .prepare(
                "SELECT id, h_first_ms, h_last_ms, b_first_ms, b_last_ms FROM people ORDER BY id",
            )
            .unwrap()
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            people,
            [
                ("a1".to_owned(), Some(10), Some(10), None, None),
                ("a2".to_owned(), None, None, Some(20), Some(20)),
                ("u3".to_owned(), Some(30), Some(30), Some(40), Some(40)),
            ]
        );
    }

    fn ms(s: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn days_follow_the_zone_through_daylight_saving_time() {
        let paris = chrono_tz::Europe::Paris;
        let starts = bucket_starts(
            ms("2026-03-28T12:00:00Z"),
            ms("2026-03-31T00:00:00Z"),
            Interval::Day,
            paris,
        );
        let want = [
            "2026-03-27T23:00:00Z", // midnight, UTC+1
            "2026-03-28T23:00:00Z", // 29 March: 23 hours long
            "2026-03-29T22:00:00Z", // midnight, UTC+2
            "2026-03-30T22:00:00Z",
        ];
        assert_eq!(starts, want.map(ms));
    }

    #[test]
    fn weeks_start_on_monday_and_months_on_the_first() {
        let utc = chrono_tz::UTC;
        let weeks = bucket_starts(
            ms("2026-11-25T10:00:00Z"),
            ms("2026-12-08T00:00:00Z"),
            Interval::Week,
            utc,
        );
        assert_eq!(
            weeks,
            [
                "2026-11-23T00:00:00Z",
                "2026-11-30T00:00:00Z",
                "2026-12-07T00:00:00Z"
            ]
            .map(ms)
        );
        let months = bucket_starts(
            ms("2026-11-25T10:00:00Z"),
            ms("2027-01-02T00:00:00Z"),
            Interval::Month,
            utc,
        );
        assert_eq!(
            months,
            [
                "2026-11-01T00:00:00Z",
                "2026-12-01T00:00:00Z",
                "2027-01-01T00:00:00Z"
            ]
            .map(ms)
        );
    }
}
