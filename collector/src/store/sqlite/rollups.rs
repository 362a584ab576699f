//! The rollups: what each commit of events adds to the `sessions` table (one row per session:
//! start, end, counts, entry dimensions) and the `people` table (one row per person: first and
//! last seen, of people's and of bots' events, and the merged traits), summed in memory and
//! upserted once per session and person in the writer's transaction.

use super::super::{Bots, StoredEvent};
use rusqlite::{params, OptionalExtension};
use std::collections::HashMap;

/// What one commit adds to the `sessions` and `people` tables, summed in memory so that each
/// session and person costs one upsert per commit, not one per event.
#[derive(Default)]
pub(super) struct Rollup {
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
    /// The earliest time of a trait in this commit (`i64::MAX` without any): one earlier than
    /// the person's stored last event may be older than a value already stored.
    first_trait_ms: i64,
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

    pub(super) fn add(
        &mut self,
        tx: &rusqlite::Transaction,
        e: &StoredEvent,
    ) -> rusqlite::Result<()> {
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
            first_trait_ms: i64::MAX,
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
            p.first_trait_ms = p.first_trait_ms.min(e.time_ms);
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
    pub(super) fn join(
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
        // Each key's latest value by event time over both, not the user's row's over the ID's.
        tx.execute(PROPERTIES_FROM_EVENTS, [user_id])?;
        self.person_of
            .insert(anonymous_id.to_owned(), user_id.to_owned());
        Ok(())
    }

    pub(super) fn flush(&mut self, tx: &rusqlite::Transaction) -> rusqlite::Result<()> {
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
        let mut last_of = tx.prepare_cached("SELECT last_ms FROM people WHERE id = ?1")?;
        let mut from_events = tx.prepare_cached(PROPERTIES_FROM_EVENTS)?;
        for (id, p) in self.people.drain() {
            // A trait older than the person's stored last event (a batch that arrived late)
            // may be older than a value stored already: then the person's properties are
            // worked out again from their events, as they would be had everything arrived in
            // time order. In order (the usual case), the patch below is that already.
            let late = p.first_trait_ms != i64::MAX
                && last_of
                    .query_row([&id], |r| r.get::<_, i64>(0))
                    .optional()?
                    .is_some_and(|last| p.first_trait_ms < last);
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
            if late {
                from_events.execute([&id])?;
            }
        }
        Ok(())
    }
}

/// Sets person `?1`'s properties to each trait's latest value by event time (ties: the later
/// stored) over the events of their anonymous IDs, as the V7 migration worked them out
/// (`schema.rs`): the events of IDs joined to the user `?1`, or of the ID `?1` if joined to
/// none. Read through the indexes on `aliases (user_id)` and `events (anonymous_id, …)`.
const PROPERTIES_FROM_EVENTS: &str = "
UPDATE people SET properties = COALESCE((
    SELECT json_group_object(key, json(value)) FROM (
        SELECT j.key AS key, e.traits -> j.fullkey AS value,
               ROW_NUMBER() OVER (PARTITION BY j.key ORDER BY e.time_ms DESC, e.rowid DESC) AS n
        FROM events e, json_each(e.traits) j
        WHERE e.anonymous_id IN (
                SELECT anonymous_id FROM aliases WHERE user_id = ?1
                UNION ALL
                SELECT ?1 WHERE NOT EXISTS (SELECT 1 FROM aliases WHERE anonymous_id = ?1))
          AND e.traits IS NOT NULL AND json_valid(e.traits) AND json_type(e.traits) = 'object')
    WHERE n = 1), '{}')
WHERE id = ?1";

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
