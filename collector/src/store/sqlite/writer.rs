//! The writer thread: group commits of event inserts, each with the session and person
//! rollups it implies, and other writes one at a time.

use super::super::*;
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

pub(super) struct Job {
    pub events: Vec<StoredEvent>,
    pub reply: oneshot::Sender<InsertOutcome>,
}

/// Work for the writer thread: event inserts (committed in groups) or another write, run on
/// its own in a transaction of its own.
pub(super) enum Work {
    Insert(Job),
    Other(Box<dyn FnOnce(&mut Connection) + Send>),
}

/// Largest number of events committed in one transaction.
const MAX_GROUP_EVENTS: usize = 20_000;

pub(super) fn write_loop(mut conn: Connection, rx: mpsc::Receiver<Work>, pending: &AtomicUsize) {
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
pub(super) fn span_columns(bots: Bots) -> (&'static str, &'static str) {
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
