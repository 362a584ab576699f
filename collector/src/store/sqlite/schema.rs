//! The SQLite schema: one migration per step, applied in order at open.

use rusqlite::Connection;

/// The schema, one migration per step; `PRAGMA user_version` counts the steps applied.
const MIGRATIONS: &[&str] = &[
    SCHEMA_V1, SCHEMA_V2, SCHEMA_V3, SCHEMA_V4, SCHEMA_V5, SCHEMA_V6, SCHEMA_V7, SCHEMA_V8,
    SCHEMA_V9, SCHEMA_V10,
];

/// Reports record who saved them, and a shared link who made it, when, and when it expires
/// (issue #19). Links made before this step count as made when their report was saved.
const SCHEMA_V10: &str = r#"
ALTER TABLE reports ADD COLUMN created_by TEXT NOT NULL DEFAULT '';
ALTER TABLE reports ADD COLUMN shared_by TEXT NOT NULL DEFAULT '';
ALTER TABLE reports ADD COLUMN shared_ms INTEGER;
ALTER TABLE reports ADD COLUMN share_expires_ms INTEGER;
UPDATE reports SET shared_ms = created_ms WHERE share_token IS NOT NULL;
"#;

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

pub(super) fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::params;

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
}
