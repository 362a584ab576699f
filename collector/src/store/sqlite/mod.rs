//! The default store: one SQLite file in WAL mode.
//!
//! Writes go through one writer thread that commits whatever requests are waiting in a single
//! transaction (group commit) and answers each request only after its commit: an acknowledged
//! event survives a `kill -9` of the collector (WAL with `synchronous=NORMAL`; the stricter
//! `FULL` would also survive power loss at a cost per commit). Reads use a small pool of
//! read-only connections, which WAL lets run beside the writer.
//!
//! The folder: [`schema`] (the migrations), [`writer`] (the group-commit thread), [`rollups`]
//! (the `sessions` and `people` tables each commit updates), [`sql`] (SQL text with its
//! parameters, filters as conditions) and [`index`] (the in-memory event index insights read).
//! This file opens the store and answers the [`Store`] trait. Nothing here uses the ClickHouse
//! store; what both share lives in `store/` (a test in `store/mod.rs` holds that line).

mod index;
mod rollups;
mod schema;
mod sql;
mod writer;

use index::Index;

use super::*;
use crate::config::Durability;
use rollups::span_columns;
use rusqlite::{params, params_from_iter, Connection, OpenFlags, OptionalExtension};
use schema::migrate;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, RwLock};
use writer::{write_loop, Job, Work};

pub struct Sqlite {
    writer: Mutex<mpsc::Sender<Work>>,
    pending: Arc<AtomicUsize>,
    readers: Mutex<Vec<Connection>>,
    path: std::path::PathBuf,
    index: Arc<RwLock<Index>>,
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
        let index = Arc::new(RwLock::new(Index::default()));
        let (warm, reader) = (index.clone(), read_only(&path)?);
        std::thread::Builder::new()
            .name("event-index".into())
            .spawn(move || {
                let t = std::time::Instant::now();
                let mut index = warm.write().expect("event index");
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

    /// The event index, brought up to date with what `c` sees. Queries share it (a read lock
    /// each, so the dashboard's calls run side by side on every core); reading new rows into it
    /// takes it alone, and only when there are new rows.
    fn fresh_index(
        &self,
        c: &Connection,
    ) -> Result<std::sync::RwLockReadGuard<'_, Index>, StoreError> {
        let stale = self.index.read().expect("event index").stale(c)?;
        if stale {
            self.index.write().expect("event index").sync(c)?;
        }
        Ok(self.index.read().expect("event index"))
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
                let index = self.fresh_index(c)?;
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
            let index = self.fresh_index(c)?;
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

    fn step_events(&self, q: &journeys::StepQuery) -> Result<journeys::StepEvents, StoreError> {
        self.with_reader(|c| {
            let index = self.fresh_index(c)?;
            index.step_events(c, q)
        })
    }

    fn path_events(
        &self,
        q: &journeys::PathQuery,
    ) -> Result<(Vec<journeys::PathEvent>, Vec<journeys::Label>), StoreError> {
        self.with_reader(|c| {
            let index = self.fresh_index(c)?;
            index.path_events(c, q)
        })
    }

    fn session_stats(&self, q: &SessionStatsQuery) -> Result<SessionStats, StoreError> {
        self.with_reader(|c| {
            let index = self.fresh_index(c)?;
            Ok(index.session_stats(q))
        })
    }

    fn sessions(&self, q: &SessionListQuery) -> Result<SessionPage, StoreError> {
        self.with_reader(|c| {
            let index = self.fresh_index(c)?;
            index.session_list(c, q)
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
        self.with_reader(|c| Ok(self.fresh_index(c)?.event_names(from_ms, to_ms, scope)))
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
            let share = r.share.as_ref();
            tx.execute(
                "INSERT INTO reports (id, name, view, query, share_token, created_ms, created_by,
                                      shared_by, shared_ms, share_expires_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT(id) DO UPDATE SET name = excluded.name, view = excluded.view,
                   query = excluded.query, share_token = excluded.share_token,
                   shared_by = excluded.shared_by, shared_ms = excluded.shared_ms,
                   share_expires_ms = excluded.share_expires_ms",
                params![
                    r.id,
                    r.name,
                    r.view,
                    r.query,
                    share.map(|s| &s.token),
                    created,
                    r.created_by,
                    share.map(|s| s.by.as_str()).unwrap_or_default(),
                    share.map(|s| s.at_ms),
                    share.and_then(|s| s.expires_ms),
                ],
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
            Ok(c.prepare(&format!(
                "SELECT {REPORT_COLUMNS} FROM reports ORDER BY created_ms DESC"
            ))?
            .query_map([], report_row)?
            .collect::<Result<_, _>>()?)
        })
    }

    fn report(&self, id: &str, shared: bool) -> Result<Option<Report>, StoreError> {
        let column = if shared { "share_token" } else { "id" };
        self.with_reader(|c| {
            Ok(c.query_row(
                &format!("SELECT {REPORT_COLUMNS} FROM reports WHERE {column} = ?1"),
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

const REPORT_COLUMNS: &str = "id, name, view, query, share_token, created_ms, created_by, \
                              shared_by, shared_ms, share_expires_ms";

fn report_row(r: &rusqlite::Row) -> rusqlite::Result<Report> {
    let token: Option<String> = r.get(4)?;
    Ok(Report {
        id: r.get(0)?,
        name: r.get(1)?,
        view: r.get(2)?,
        query: r.get(3)?,
        created_at: rfc3339(r.get(5)?),
        created_by: r.get(6)?,
        share: match token {
            Some(token) => Some(Share {
                token,
                by: r.get(7)?,
                at_ms: r.get::<_, Option<i64>>(8)?.unwrap_or_default(),
                expires_ms: r.get(9)?,
            }),
            None => None,
        },
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
