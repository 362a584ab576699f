//! The scale-out store: ClickHouse, shared by any number of stateless collectors, with a local
//! disk spool for the times it cannot be reached.
//!
//! **Tables** (created on start, `CREATE TABLE IF NOT EXISTS`; see [`SCHEMA`]):
//! - `events`: a `ReplacingMergeTree` ordered by UTC day of the event time, site, anonymous
//!   ID hash and `event_id` (the receive time, which differs between retries, is not part of
//!   the key, so copies of an event of the same day are one key). Not partitioned: no batch,
//!   however odd its clients' clocks, can touch more partitions than ClickHouse allows in one
//!   insert (current releases refuse over 100, which would stall the spool on that batch).
//!   Merges remove duplicates of a day eventually; until then, and for copies whose event
//!   times fall on two days, every query deduplicates
//!   itself: counts are `uniqExact(event_id)`, lists keep one row per `event_id`. Of two
//!   copies that differ (two collectors receiving the same retried batch), the one received
//!   first wins (`ver` is higher for an earlier receive time). Event properties are stored
//!   twice: as the JSON text, and as parallel arrays (key, text, is-a-number, number) computed
//!   at ingest by SQLite's own JSON functions, so filters on them decide exactly as the
//!   SQLite store decides; user traits likewise.
//! - `aliases`: anonymous ID → user ID, one row per pair seen in an event carrying a user ID.
//!   An anonymous ID joined to several user IDs belongs to the one of its earliest event.
//!   Written before the events of the same batch, so an event is never stored without its
//!   alias.
//! - `event_ids`: every stored event ID, one short column in ID order, filled by the
//!   materialized view `event_ids_feed` inside each INSERT into `events`: what the writer's
//!   duplicate check reads, so it costs no read of `events` whatever order that table keeps.
//!   A database made before it gets it filled from `events` once, on start. It keeps the IDs
//!   of erased events (random IDs, nothing of the person), so a late retry of an erased event
//!   is a duplicate rather than the person back.
//! - `persons_*`: the person map, each identified anonymous ID's user ID as a `Join` table
//!   that queries read with `joinGet` (see [`persons`]): derived from `aliases`, rebuilt by the
//!   first query after `aliases` changed; no migration (built on first use, safe to drop).
//! - `users_hourly`, `session_rollup`, `steps_hourly`, `anon_rollup`, `trait_rollup`,
//!   `props_hourly`, `trait_events` and `step_events`: the rollups ([`ROLLUPS`]), filled by
//!   materialized views inside each INSERT into `events` and keyed by the anonymous ID's hash, so that insights counting
//!   users read whole hours from far fewer rows (with a `gt`/`lt` event property filter, from
//!   `props_hourly`), session statistics one row per session, the users feed one row per
//!   anonymous ID and user property filters one row per identified ID, persons mapped
//!   through the person map at query time; retention reads whole hours from `users_hourly`
//!   (any event) and `steps_hourly` (named steps), funnels the steps' rows of `step_events`
//!   (`trait_events` and `step_events` are rows of events, not rolled up).
//!   Made, and filled from `events` once, on the first start on a database from before them
//!   (or before their current layout: [`RELAID`]).
//! - `reports`: saved reports, a `ReplacingMergeTree` by `id` whose rows are versions; a
//!   deletion is a version with `deleted = 1`.
//! - `api_tokens`: API tokens (the SHA-256 of each secret; nothing of a token changes but its
//!   last use), a `ReplacingMergeTree` by `(id, deleted)` versioned by the last use, so rows
//!   that record a use never replace a revocation; a token is live while no row of it has
//!   `deleted = 1`.
//!
//! **Writes** go through one writer thread per collector, which takes every batch waiting and
//! sends them as one `INSERT` block in `RowBinary` (after asking which of their `event_id`s
//! are already in `event_ids`, the IDs sent as external data; that is how duplicates are
//! reported; two collectors racing on the same event may both store it, and queries
//! deduplicate). One block is in flight while the next group is gathered, checked and encoded
//! (see [`writer`]). When ClickHouse cannot take a block, it is
//! appended to the spool and fsynced instead (see [`spool`]: unreachable, an error, or no answer
//! within 15 s); while the spool holds anything,
//! new batches go behind it, and the writer replays it in order as soon as ClickHouse answers.
//! A full spool answers 503, which the SDK retries.
//!
//! **Reads** are SQL run by ClickHouse; the answers are the SQLite store's, number for number,
//! on the same data (the shared test suite in `tests/store_suite.rs` holds that). Person
//! properties are the latest value of each key by event time.
//!
//! **Erasing** runs `ALTER TABLE ... DELETE` and waits for the mutations to finish, so the
//! answer comes when the data is gone from every query. It notes the person's anonymous IDs
//! and user ID in `erasures`, with the time, before the deletes and again once they are done:
//! a spool replayed later (by this collector or another that was cut off from ClickHouse)
//! drops the person's events received before the erase ended and keeps those received after
//! (a new visit), so an erased person does not come back. Writers forget which aliases they
//! wrote whenever the count of `erasures` rows changed, so a returning person's alias is
//! written again whichever collector erased them.

mod http;
mod journey_sql;
mod native;
mod persons;
mod query;
mod rowbinary;
mod spool;
mod tally;
mod writer;

pub use http::ChError;
pub use spool::SpoolGauges;

use super::*;
use http::Client;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};

/// The tables, `{db}` replaced by the database name.
const SCHEMA: &[&str] = &[
    "CREATE DATABASE IF NOT EXISTS {db}",
    // Sorted by UTC day, site and anonymous ID (its hash), so that a question reads only the
    // granules of its days (each query names the day as well as the time: `query::in_range`),
    // and a visitor's events of a day lie together for the grouping by person and session. A
    // table made before this order (`ORDER BY event_id`) answers the same, reading everything;
    // README, "Scale-out with ClickHouse", has the one-shot rebuild. Copies of an event are
    // merged away when they share a day, and counted once by every query either way.
    "CREATE TABLE IF NOT EXISTS {db}.events (
        event_id String, site String, type String, name String,
        time_ms Int64, client_ms Int64, server_ms Int64,
        anonymous_id String, user_id Nullable(String), session_id String, seq Int64,
        url String, path String, title String, referrer String, screen String,
        viewport String, language String, timezone String, sdk String,
        props String, traits Nullable(String),
        browser String, browser_version String, os String, device String,
        bot_reason Nullable(String), referrer_domain String,
        utm_source String, utm_medium String, utm_campaign String, utm_term String,
        utm_content String, country String, region String, city String, ip Nullable(String),
        prop_keys Array(String), prop_values Array(String), prop_nums Array(UInt8),
        prop_reals Array(Float64),
        trait_keys Array(String), trait_values Array(String), trait_nums Array(UInt8),
        trait_reals Array(Float64),
        ver UInt64,
        event_h UInt64 MATERIALIZED cityHash64(event_id),
        session_h UInt64 MATERIALIZED cityHash64(session_id),
        anon_h UInt64 MATERIALIZED cityHash64(anonymous_id),
        name_h UInt64 MATERIALIZED cityHash64(name),
        is_bot UInt8 MATERIALIZED device = 'bot',
        label_h UInt64 MATERIALIZED bitXor(cityHash64(name),
                                           if(name = '$pageview', cityHash64(path), 0))
    ) ENGINE = ReplacingMergeTree(ver)
    ORDER BY (intDiv(time_ms, 86400000), site, anon_h, event_id)",
    "CREATE TABLE IF NOT EXISTS {db}.aliases (
        anonymous_id String, user_id String, time_ms Int64, event_id String
    ) ENGINE = ReplacingMergeTree ORDER BY (anonymous_id, user_id)",
    "CREATE TABLE IF NOT EXISTS {db}.erasures (
        anonymous_id String, user_id String, erased_ms Int64
    ) ENGINE = MergeTree ORDER BY anonymous_id",
    "CREATE TABLE IF NOT EXISTS {db}.reports (
        id String, name String, view String, query String, share_token String,
        created_ms Int64, deleted UInt8, ver UInt64
    ) ENGINE = ReplacingMergeTree(ver) ORDER BY id",
    "CREATE TABLE IF NOT EXISTS {db}.api_tokens (
        id String, name String, hash String, sites String, scope String,
        created_ms Int64, last_used_ms Int64, deleted UInt8, ver UInt64
    ) ENGINE = ReplacingMergeTree(ver) ORDER BY (id, deleted)",
    // The ingest path's duplicate check reads this, not `events`: one short column in the
    // order of the IDs, filled by the view inside each INSERT into `events`. Databases made
    // before it are filled once from `events` ([`create_schema`]).
    "CREATE TABLE IF NOT EXISTS {db}.event_ids (event_id String)
    ENGINE = ReplacingMergeTree ORDER BY event_id",
    "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.event_ids_feed TO {db}.event_ids
    AS SELECT event_id FROM {db}.events",
    // One row per row of `events`, its ID's hash, never merged away: an ID stored twice
    // shows twice here. After each insert the writer looks up the IDs it stored, and those
    // found twice go to `copies` ([`writer`]); a replayed batch's IDs go there before its
    // insert (an earlier attempt may land late). So every event with two rows in `events`
    // has its hash in `copies` (some that have one row too), and counting events is
    // `count()` with the rows of `copies`' events counted distinct: the events' count no
    // longer puts every ID into one set (see [`query::event_names`]). Databases made before
    // them are filled once from `events` ([`fill_copies`]).
    "CREATE TABLE IF NOT EXISTS {db}.event_rows (event_h UInt64)
    ENGINE = MergeTree ORDER BY event_h",
    "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.event_rows_feed TO {db}.event_rows
    AS SELECT cityHash64(event_id) AS event_h FROM {db}.events",
    "CREATE TABLE IF NOT EXISTS {db}.copies (event_h UInt64)
    ENGINE = ReplacingMergeTree ORDER BY event_h",
];

/// How long a query may take before it fails.
const QUERY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);
/// How long the writer waits for ClickHouse before it spools the batches instead.
const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// Columns added to a table after its first release: (table, column, type). Added when missing,
/// so an older database is upgraded in place (`ADD COLUMN IF NOT EXISTS` is newer than 18.16).
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    // Who saved a report; who shared it, when, and until when (issue #19).
    ("reports", "created_by", "String"),
    ("reports", "shared_by", "String"),
    ("reports", "shared_ms", "Int64"),
    ("reports", "share_expires_ms", "Int64"),
    // The hashes every question counts or groups by, stored instead of hashed from the
    // strings at each read (an older table computes them on read until its parts merge).
    (
        "events",
        "event_h",
        "UInt64 MATERIALIZED cityHash64(event_id)",
    ),
    (
        "events",
        "session_h",
        "UInt64 MATERIALIZED cityHash64(session_id)",
    ),
    (
        "events",
        "anon_h",
        "UInt64 MATERIALIZED cityHash64(anonymous_id)",
    ),
    // The name's hash, which funnels and retention compare instead of the name (issue #18).
    ("events", "name_h", "UInt64 MATERIALIZED cityHash64(name)"),
    // Whether the event is a bot's, which the API's default filter reads.
    ("events", "is_bot", "UInt8 MATERIALIZED device = 'bot'"),
    // The hash of the event's label in user paths, which they read instead of the name and
    // path (issue #16; `journey_sql::paths` hashes `steps_hourly`'s names and pages alike).
    (
        "events",
        "label_h",
        "UInt64 MATERIALIZED bitXor(cityHash64(name),
                                    if(name = '$pageview', cityHash64(path), 0))",
    ),
];

/// The rollups (issues #16, #18): (table, its `CREATE`, the view that feeds it inside each
/// INSERT into `events`, and the `SELECT` over `events` that both the view and the one-shot
/// backfill run). Created after [`ADDED_COLUMNS`], so a view never reads a column an old
/// `events` lacks. All are duplicate-safe: a replayed event adds a row that says nothing new
/// (`users_hourly` and `steps_hourly` are sets of keys; `session_rollup` holds
/// min/max/argMin and distinct-count states; `props_hourly` is read for whether any row
/// passes), so a copy
/// of an event, or a backfill that overlaps what the view already wrote, changes no answer.
/// Rows are keyed by the anonymous ID's hash, never by the person: a later identify changes
/// no row, queries map anonymous IDs to people through the person map ([`persons`]).
const ROLLUPS: &[(&str, &str, &str)] = &[
    (
        // Who was there, per UTC hour, site and the dimensions insights split by: insights
        // counting users with no filter beyond these columns read it for whole hours.
        "users_hourly",
        "CREATE TABLE IF NOT EXISTS {db}.users_hourly (
            hour Int64, site String, device String, browser String, os String, country String,
            anon_h UInt64
        ) ENGINE = ReplacingMergeTree ORDER BY (hour, site, device, browser, os, country, anon_h)",
        "SELECT intDiv(time_ms, 3600000) AS hour, site, device, browser, os, country,
                cityHash64(anonymous_id) AS anon_h
         FROM {db}.events GROUP BY hour, site, device, browser, os, country, anon_h",
    ),
    (
        // Each session's span, first values and whether it bounced, per site, device,
        // browser, OS and country (what a scope keeps or drops, and what a session keeps
        // from event to event, unless its visitor moves country): session statistics put a
        // session's rows together at query time, its first values those of its earliest
        // row (texts as their hashes, which queries name again from `users_hourly`, where
        // every event's are), its entry path and anonymous ID `argMin` states. A bounce is
        // one distinct page view and one distinct event that is not a page leave (SQLite's
        // `pages = 1 AND events = 1 + leaves` said otherwise): each kind's distinct event ID
        // hashes counted up to two (`uniqUpTo(1)`: 0, 1, or 2 for more), a state that a copy
        // of an event leaves as it was. At 10M events, 1.5M sessions, ClickHouse 18.16 takes
        // about 17 ms to read a state of each row, 27 ms an `argMin`, 3 ms a number column.
        "session_rollup",
        "CREATE TABLE IF NOT EXISTS {db}.session_rollup (
            session_h UInt64, site String, device String, anon_h UInt64,
            browser_h UInt64, os_h UInt64, country_h UInt64,
            s_start AggregateFunction(min, Int64),
            s_end AggregateFunction(max, Int64),
            s_pages AggregateFunction(uniqUpToIf(1), UInt64, UInt8),
            s_stays AggregateFunction(uniqUpToIf(1), UInt64, UInt8),
            s_anon AggregateFunction(argMin, String, Int64),
            s_path AggregateFunction(argMin, String, Int64)
        ) ENGINE = AggregatingMergeTree
        ORDER BY (session_h, site, device, anon_h, browser_h, os_h, country_h)",
        "SELECT cityHash64(session_id) AS session_h, site, device,
                cityHash64(anonymous_id) AS anon_h, cityHash64(browser) AS browser_h,
                cityHash64(os) AS os_h, cityHash64(country) AS country_h,
                minState(time_ms) AS s_start, maxState(time_ms) AS s_end,
                uniqUpToIfState(1)(cityHash64(event_id), type = 'page') AS s_pages,
                uniqUpToIfState(1)(cityHash64(event_id), name != '$pageleave') AS s_stays,
                argMinState(anonymous_id, time_ms) AS s_anon,
                argMinState(path, time_ms) AS s_path
         FROM {db}.events GROUP BY session_h, site, device, anon_h, browser_h, os_h, country_h",
    ),
    (
        // Who did which event (and, of page views, on which page), per UTC hour, site and
        // the dimensions of `users_hourly`: retention whose steps are named reads the hours
        // of its steps' names from here (issue #18). Sorted by name and page first, so a
        // step reads its own rows only.
        "steps_hourly",
        "CREATE TABLE IF NOT EXISTS {db}.steps_hourly (
            name String, page String, hour Int64, site String, device String, browser String,
            os String, country String, anon_h UInt64
        ) ENGINE = ReplacingMergeTree
        ORDER BY (name, page, hour, site, device, browser, os, country, anon_h)",
        "SELECT name, if(name = '$pageview', path, '') AS page, intDiv(time_ms, 3600000) AS hour,
                site, device, browser, os, country, cityHash64(anonymous_id) AS anon_h
         FROM {db}.events GROUP BY name, page, hour, site, device, browser, os, country, anon_h",
    ),
    (
        // Each anonymous ID's first and last event and the ID itself, per site and device
        // (what a scope keeps or drops): the users feed (and the list of user-property keys)
        // puts people together from these rows, through the person map, instead of grouping
        // every event by person (issue #16).
        "anon_rollup",
        "CREATE TABLE IF NOT EXISTS {db}.anon_rollup (
            anon_h UInt64, site String, device String,
            a_first AggregateFunction(min, Int64),
            a_last AggregateFunction(max, Int64),
            a_id AggregateFunction(any, String)
        ) ENGINE = AggregatingMergeTree ORDER BY (anon_h, site, device)",
        "SELECT cityHash64(anonymous_id) AS anon_h, site, device,
                minState(time_ms) AS a_first, maxState(time_ms) AS a_last,
                anyState(anonymous_id) AS a_id
         FROM {db}.events GROUP BY anon_h, site, device",
    ),
    (
        // Each anonymous ID's latest value of each user property (trait), by event time: a
        // filter or split on a user property puts people's values together from these rows
        // (a few per identified ID), through the person map, instead of reading the traits
        // of every event. A key an event names twice counts once, as `indexOf` reads it.
        "trait_rollup",
        "CREATE TABLE IF NOT EXISTS {db}.trait_rollup (
            key String, anon_h UInt64,
            t_value AggregateFunction(argMax, String, Int64),
            t_num AggregateFunction(argMax, UInt8, Int64),
            t_real AggregateFunction(argMax, Float64, Int64)
        ) ENGINE = AggregatingMergeTree ORDER BY (key, anon_h)",
        "SELECT trait_keys[i] AS key, cityHash64(anonymous_id) AS anon_h,
                argMaxState(trait_values[i], time_ms) AS t_value,
                argMaxState(trait_nums[i], time_ms) AS t_num,
                argMaxState(trait_reals[i], time_ms) AS t_real
         FROM {db}.events
         ARRAY JOIN arrayFilter(i -> indexOf(trait_keys, trait_keys[i]) = i,
                                arrayEnumerate(trait_keys)) AS i
         GROUP BY key, anon_h",
    ),
    (
        // Each event property's least and greatest number (`prop_reals`, what a `gt` or `lt`
        // filter compares) per UTC hour, site, the dimensions of `users_hourly` and anonymous
        // ID: insights counting users with one such filter read the whole hours from here
        // instead of every event's property arrays. Rows are not merged: an hour has an event
        // over X when one of its rows' greatest is, so a copy of an event, or a fill that
        // overlaps the view, adds nothing counted. A key an event names twice counts once,
        // as `indexOf` reads it.
        "props_hourly",
        "CREATE TABLE IF NOT EXISTS {db}.props_hourly (
            key String, hour Int64, site String, device String, browser String, os String,
            country String, anon_h UInt64, p_min Float64, p_max Float64
        ) ENGINE = MergeTree ORDER BY (key, hour, site, device, browser, os, country, anon_h)",
        "SELECT prop_keys[i] AS key, intDiv(time_ms, 3600000) AS hour, site, device, browser,
                os, country, cityHash64(anonymous_id) AS anon_h,
                min(prop_reals[i]) AS p_min, max(prop_reals[i]) AS p_max
         FROM {db}.events
         ARRAY JOIN arrayFilter(i -> indexOf(prop_keys, prop_keys[i]) = i,
                                arrayEnumerate(prop_keys)) AS i
         GROUP BY key, hour, site, device, browser, os, country, anon_h",
    ),
    (
        // Each event that set user properties (traits), by anonymous ID: the users feed reads
        // the properties of a page's people from here, a few rows each found by the table's
        // key (in granules of 1,024 rows: a page's 50 people are in as many), instead of
        // every event's anonymous ID (at 10M events, 70 ms a page). A copy
        // of an event is a row again until merged, which readers leave out by its ID.
        "trait_events",
        "CREATE TABLE IF NOT EXISTS {db}.trait_events (
            anon_h UInt64, time_ms Int64, seq Int64, event_id String, anonymous_id String,
            traits Nullable(String)
        ) ENGINE = ReplacingMergeTree ORDER BY (anon_h, time_ms, seq, event_id)
        SETTINGS index_granularity = 1024",
        // (`traits` as it is: an alias of that name would be what `WHERE` reads.)
        "SELECT cityHash64(anonymous_id) AS anon_h, time_ms, seq, event_id, anonymous_id, traits
         FROM {db}.events WHERE traits IS NOT NULL
         GROUP BY anon_h, time_ms, seq, event_id, anonymous_id, traits",
    ),
    (
        // Each event as what funnels read of it (its name's and label's hashes, anonymous ID,
        // time), with the columns of `users_hourly`'s filters, sorted by name and bot first:
        // a funnel whose filters are only on those columns reads its steps' rows and nothing
        // else (at 10M events, ClickHouse 18.16 read the 6M rows of a three-step funnel in
        // 65–80 ms, where it took 200 ms over `events`' 10M). Keyed as `events` is within a
        // name, so the copies of an event that merge there merge here (the one received
        // first stays, by `ver`); until then both are rows, as in `events`.
        "step_events",
        "CREATE TABLE IF NOT EXISTS {db}.step_events (
            name_h UInt64, is_bot UInt8, site String, anon_h UInt64, day Int64, event_h UInt64,
            label_h UInt64, time_ms Int64, device String, browser String, os String,
            country String, ver UInt64
        ) ENGINE = ReplacingMergeTree(ver)
        ORDER BY (name_h, is_bot, site, anon_h, day, event_h)",
        "SELECT cityHash64(name) AS name_h, toUInt8(device = 'bot') AS is_bot, site,
                cityHash64(anonymous_id) AS anon_h, intDiv(time_ms, 86400000) AS day,
                cityHash64(event_id) AS event_h,
                bitXor(cityHash64(name), if(name = '$pageview', cityHash64(path), 0)) AS label_h,
                time_ms, device, browser, os, country, ver
         FROM {db}.events",
    ),
];

/// The rollups' tables, which an erase deletes from as from `events`.
const ROLLUP_TABLES: [&str; 8] = [
    "users_hourly",
    "session_rollup",
    "steps_hourly",
    "anon_rollup",
    "trait_rollup",
    "props_hourly",
    "trait_events",
    "step_events",
];

/// Rollups whose layout changed since they first shipped: (table, a column only the current
/// layout has, the note its fill leaves in `rollups_filled`). On start a table of an older
/// layout (without that column) is dropped with its view, then made and filled again like a
/// missing one (the older layout's note does not count for it).
const RELAID: &[(&str, &str, &str)] = &[("session_rollup", "country_h", "session_rollup 3")];

/// Events per statement of a backfill (whole UTC days each, so at least a day's).
const FILL_CHUNK: u64 = 2_000_000;

/// Creates the rollups and their views if missing, and fills each from `events` once (the
/// backfill), after its view exists, so nothing inserted meanwhile is missed (what both wrote
/// twice changes no answer). A rollup counts as filled once its note (its name, or its layout's
/// in [`RELAID`]) is in `rollups_filled`,
/// written after the last statement of its fill: a fill cut short (a stop, a timeout) is run
/// again whole on the next start, which the rollups' duplicate safety allows.
fn create_rollups(client: &Client) -> Result<(), ChError> {
    let db = &client.database;
    client.execute(&format!(
        "CREATE TABLE IF NOT EXISTS {db}.rollups_filled (rollup String, filled_ms Int64)
         ENGINE = MergeTree ORDER BY rollup"
    ))?;
    let (rows, _) = client.select(&format!("SELECT DISTINCT rollup FROM {db}.rollups_filled"))?;
    let filled = |t: &str| rows.iter().any(|r| r["rollup"].as_str() == Some(t));
    for (table, create, select) in ROLLUPS {
        let select = select.replace("{db}", db);
        let relaid = RELAID.iter().find(|r| r.0 == *table);
        let mut remade = false;
        if let Some((_, column, _)) = relaid {
            let (cols, _) = client.select(&format!(
                "SELECT count() AS n, countIf(name = {}) AS current FROM system.columns
                 WHERE database = {} AND table = {}",
                http::lit(column),
                http::lit(db),
                http::lit(table)
            ))?;
            let has = |k: &str| cols.first().and_then(|r| r[k].as_u64()).unwrap_or(0) > 0;
            if has("n") && !has("current") {
                log::info!("clickhouse: {db}.{table} is of an older layout: made again");
                // The view first, so that no insert into `events` writes to a missing table.
                client.execute(&format!("DROP TABLE IF EXISTS {db}.{table}_feed"))?;
                client.execute(&format!("DROP TABLE IF EXISTS {db}.{table}"))?;
                remade = true;
            }
        }
        let note = relaid.map_or(*table, |r| r.2);
        client.execute(&create.replace("{db}", db))?;
        client.execute(&format!(
            "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{table}_feed TO {db}.{table} AS {select}"
        ))?;
        if remade || !filled(note) {
            fill(client, table, &select)?;
            let now = chrono::Utc::now().timestamp_millis();
            client.execute(&format!(
                "INSERT INTO {db}.rollups_filled VALUES ({}, {now})",
                http::lit(note)
            ))?;
        }
    }
    // Then `event_rows` and `copies`, by the same notes.
    fill_copies(client, &filled)
}

/// Fills rollup `table` from `events` by `select` (its view's), a few whole UTC days per
/// statement, with the progress in the log.
fn fill(client: &Client, table: &str, select: &str) -> Result<(), ChError> {
    let db = &client.database;
    let num = |v: &serde_json::Value| {
        v.as_i64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .unwrap_or_default()
    };
    let (days, _) = client.select(&format!(
        "SELECT intDiv(time_ms, 86400000) AS d, count() AS n FROM {db}.events GROUP BY d ORDER BY d"
    ))?;
    let days: Vec<(i64, u64)> = days
        .iter()
        .map(|r| (num(&r["d"]), num(&r["n"]).max(0) as u64))
        .collect();
    let total: u64 = days.iter().map(|d| d.1).sum();
    // A grouped select's days' condition goes before its `GROUP BY`.
    let (head, group) = match select.split_once(" GROUP BY ") {
        Some((head, group)) => (head, format!("GROUP BY {group}")),
        None => (select, String::new()),
    };
    // The days' condition joins the select's own, if it has one.
    let and = match head.contains(" WHERE ") {
        true => "AND",
        false => "WHERE",
    };
    let started = std::time::Instant::now();
    log::info!("clickhouse: filling the rollup {db}.{table} from {total} events once");
    let (mut done, mut from, mut count) = (0u64, None, 0u64);
    for (n, &(day, events)) in days.iter().enumerate() {
        let first = *from.get_or_insert(day);
        count += events;
        if count < FILL_CHUNK && n + 1 < days.len() {
            continue;
        }
        client.execute(&format!(
            "INSERT INTO {db}.{table} {head}
             {and} intDiv(time_ms, 86400000) >= {first} AND intDiv(time_ms, 86400000) <= {day}
             {group}"
        ))?;
        done += count;
        (from, count) = (None, 0);
        log::info!(
            "clickhouse: rollup {db}.{table}: {done} of {total} events ({:.1} s)",
            started.elapsed().as_secs_f64()
        );
    }
    log::info!(
        "clickhouse: rollup {db}.{table} filled in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Creates the database and tables if missing, and adds missing columns. A database made
/// before `event_ids` existed gets it filled from `events` once, when it is created (events
/// stored meanwhile through the view may be there twice, which its merges remove and the
/// duplicate check does not mind).
fn create_schema(client: &Client) -> Result<(), ChError> {
    let db = &client.database;
    // The database first: every SELECT runs in it.
    let (database, tables) = SCHEMA.split_first().expect("the schema");
    client.execute(&database.replace("{db}", db))?;
    let had_event_ids = client
        .select(&format!(
            "SELECT count() AS n FROM system.tables WHERE database = {} AND name = 'event_ids'",
            http::lit(db)
        ))?
        .0
        .first()
        .and_then(|r| r["n"].as_u64())
        .unwrap_or(0)
        > 0;
    for stmt in tables {
        client.execute(&stmt.replace("{db}", db))?;
    }
    if !had_event_ids {
        client.execute(&format!(
            "INSERT INTO {db}.event_ids SELECT event_id FROM {db}.events"
        ))?;
    }
    let (rows, _) = client.select(&format!(
        "SELECT table, name FROM system.columns WHERE database = {}",
        http::lit(&client.database)
    ))?;
    let has = |table: &str, column: &str| {
        rows.iter()
            .any(|r| r["table"].as_str() == Some(table) && r["name"].as_str() == Some(column))
    };
    for (table, column, kind) in ADDED_COLUMNS {
        if !has(table, column) {
            client.execute(&format!(
                "ALTER TABLE {}.{table} ADD COLUMN {column} {kind}",
                client.database
            ))?;
        }
    }
    create_rollups(client)
}

/// Fills `event_rows` and `copies` from `events` once (a database from before them;
/// `filled` tells the notes in `rollups_filled`), each noted there when done, `copies` after
/// `event_rows`: an event stored twice while `event_rows` was still filling, whose writer's
/// look-up missed the first row, is found by `copies`' fill, which reads `events` after it. A
/// fill cut short runs again whole; rows `event_rows` then holds twice only send more events
/// to `copies`, which changes no count.
fn fill_copies(client: &Client, filled: &dyn Fn(&str) -> bool) -> Result<(), ChError> {
    let db = &client.database;
    let fills = [
        (
            "event_rows",
            format!("INSERT INTO {db}.event_rows SELECT cityHash64(event_id) FROM {db}.events"),
        ),
        (
            "copies",
            format!(
                "INSERT INTO {db}.copies SELECT cityHash64(event_id) AS h FROM {db}.events
                 GROUP BY h HAVING count() > 1"
            ),
        ),
    ];
    for (table, sql) in fills {
        if filled(table) {
            continue;
        }
        let started = std::time::Instant::now();
        log::info!("clickhouse: filling {db}.{table} from events once");
        client.execute(&sql)?;
        let now = chrono::Utc::now().timestamp_millis();
        client.execute(&format!(
            "INSERT INTO {db}.rollups_filled VALUES ({}, {now})",
            http::lit(table)
        ))?;
        log::info!(
            "clickhouse: {db}.{table} filled in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// One event as a row of `events` (and of a spool record).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Row {
    event_id: String,
    site: String,
    #[serde(rename = "type")]
    kind: String,
    name: String,
    time_ms: i64,
    client_ms: i64,
    server_ms: i64,
    anonymous_id: String,
    user_id: Option<String>,
    session_id: String,
    seq: i64,
    url: String,
    path: String,
    title: String,
    referrer: String,
    screen: String,
    viewport: String,
    language: String,
    timezone: String,
    sdk: String,
    props: String,
    traits: Option<String>,
    browser: String,
    browser_version: String,
    os: String,
    device: String,
    bot_reason: Option<String>,
    referrer_domain: String,
    utm_source: String,
    utm_medium: String,
    utm_campaign: String,
    utm_term: String,
    utm_content: String,
    country: String,
    region: String,
    city: String,
    ip: Option<String>,
    prop_keys: Vec<String>,
    prop_values: Vec<String>,
    prop_nums: Vec<u8>,
    prop_reals: Vec<f64>,
    trait_keys: Vec<String>,
    trait_values: Vec<String>,
    trait_nums: Vec<u8>,
    trait_reals: Vec<f64>,
    ver: u64,
}

/// A JSON object's members as SQLite's JSON functions read them: key, text, whether a number.
/// A key repeated keeps its first value; `null` reads as a missing key.
type Members = (Vec<String>, Vec<String>, Vec<u8>, Vec<f64>);

thread_local! {
    static JSON: rusqlite::Connection =
        rusqlite::Connection::open_in_memory().expect("an in-memory SQLite");
}

fn members(json: Option<&str>) -> Members {
    let mut out: Members = Default::default();
    let Some(json) = json else { return out };
    let read = JSON.with(|c| -> rusqlite::Result<Vec<(String, bool, String)>> {
        let mut stmt = c.prepare_cached(
            "SELECT key, type IN ('integer', 'real', 'true', 'false'), CAST(value AS TEXT)
             FROM json_each(CASE WHEN json_valid(?1) THEN ?1 ELSE '{}' END)
             WHERE typeof(key) = 'text' AND value IS NOT NULL",
        )?;
        let rows = stmt.query_map([json], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        rows.collect()
    });
    for (key, number, text) in read.unwrap_or_default() {
        if out.0.contains(&key) {
            continue;
        }
        let real = super::sqlite_real(&text);
        out.0.push(key);
        out.3.push(if real.is_finite() {
            real
        } else {
            f64::MAX.copysign(real)
        });
        out.1.push(text);
        out.2.push(u8::from(number));
    }
    out
}

impl Row {
    fn new(e: StoredEvent) -> Row {
        let (prop_keys, prop_values, prop_nums, prop_reals) = members(Some(&e.props));
        let (trait_keys, trait_values, trait_nums, trait_reals) = members(e.traits.as_deref());
        Row {
            // An earlier receive wins among copies of one event.
            ver: (i64::MAX - e.server_ms.max(0)) as u64,
            event_id: e.event_id,
            site: e.site,
            kind: e.kind.to_owned(),
            name: e.name,
            time_ms: e.time_ms,
            client_ms: e.client_ms,
            server_ms: e.server_ms,
            anonymous_id: e.anonymous_id,
            user_id: e.user_id,
            session_id: e.session_id,
            seq: e.seq,
            url: e.url,
            path: e.path,
            title: e.title,
            referrer: e.referrer,
            screen: e.screen,
            viewport: e.viewport,
            language: e.language,
            timezone: e.timezone,
            sdk: e.sdk,
            props: e.props,
            traits: e.traits,
            browser: e.browser,
            browser_version: e.browser_version,
            os: e.os,
            device: e.device,
            bot_reason: e.bot_reason,
            referrer_domain: e.referrer_domain,
            utm_source: e.utm_source,
            utm_medium: e.utm_medium,
            utm_campaign: e.utm_campaign,
            utm_term: e.utm_term,
            utm_content: e.utm_content,
            country: e.country,
            region: e.region,
            city: e.city,
            ip: e.ip,
            prop_keys,
            prop_values,
            prop_nums,
            prop_reals,
            trait_keys,
            trait_values,
            trait_nums,
            trait_reals,
        }
    }
}

pub struct ClickHouse {
    client: Arc<Client>,
    writer: Mutex<mpsc::Sender<writer::Job>>,
    pending: Arc<AtomicUsize>,
    gauges: Arc<SpoolGauges>,
    /// Versions of report rows: increasing within this process, and across processes as far
    /// as their clocks agree.
    report_ver: AtomicU64,
}

impl ClickHouse {
    /// Connects to the ClickHouse named by `url`, creates the tables if they are missing, and
    /// starts the writer with the spool in `data_dir/spool`. ClickHouse being down is no
    /// error: batches are spooled and the schema is created once it answers.
    pub fn open(url: &str, data_dir: &Path, spool_max_bytes: u64) -> Result<ClickHouse, String> {
        let client = Arc::new(Client::new(url, QUERY_TIMEOUT)?);
        let write_client = Arc::new(Client::new(url, WRITE_TIMEOUT)?);
        let schema_ready = match create_schema(&client) {
            Ok(()) => true,
            Err(e) => {
                log::warn!("clickhouse: cannot create the schema now ({e}); will retry");
                false
            }
        };
        let spool_dir = data_dir.join("spool");
        let spool = spool::Spool::open(&spool_dir, spool_max_bytes)
            .map_err(|e| format!("spool {}: {e}", spool_dir.display()))?;
        let gauges = spool.gauges.clone();
        let (tx, rx) = mpsc::channel();
        let pending = Arc::new(AtomicUsize::new(0));
        let w = writer::Writer::new(write_client, spool, pending.clone(), schema_ready);
        std::thread::Builder::new()
            .name("clickhouse-writer".into())
            .spawn(move || w.run(rx))
            .map_err(|e| e.to_string())?;
        Ok(ClickHouse {
            client,
            writer: Mutex::new(tx),
            pending,
            gauges,
            report_ver: AtomicU64::new(0),
        })
    }

    /// Runs `f` on a thread of its own and answers through a channel (for the trait's
    /// asynchronous writes that are not event inserts).
    fn background<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Client) -> Result<T, StoreError> + Send + 'static,
    ) -> oneshot::Receiver<Result<T, StoreError>> {
        let (reply, rx) = oneshot::channel();
        let client = self.client.clone();
        std::thread::spawn(move || {
            let _ = reply.send(f(&client));
        });
        rx
    }

    fn next_report_ver(&self) -> u64 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or_default();
        let mut last = self.report_ver.load(Ordering::SeqCst);
        loop {
            let v = now.max(last + 1);
            match self
                .report_ver
                .compare_exchange(last, v, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return v,
                Err(seen) => last = seen,
            }
        }
    }
}

impl Store for ClickHouse {
    fn insert(&self, events: Vec<StoredEvent>) -> oneshot::Receiver<InsertOutcome> {
        let (reply, rx) = oneshot::channel();
        let n = events.len();
        let rows: Vec<Row> = events.into_iter().map(Row::new).collect();
        self.pending.fetch_add(n, Ordering::Relaxed);
        let job = writer::Job { rows, reply };
        if let Err(mpsc::SendError(job)) = self.writer.lock().expect("writer").send(job) {
            self.pending.fetch_sub(n, Ordering::Relaxed);
            let _ = job.reply.send(Err(StoreError::Closed));
        }
        rx
    }

    fn queue_depth(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }

    fn insights(&self, q: &InsightsQuery) -> Result<Insights, StoreError> {
        query::insights(&self.client, q)
    }

    fn user(&self, id: &str, scope: &Scope) -> Result<Option<UserDetail>, StoreError> {
        query::user(&self.client, id, scope)
    }

    fn users(&self, q: &UsersQuery) -> Result<UsersPage, StoreError> {
        query::users(&self.client, q)
    }

    fn step_events(&self, q: &journeys::StepQuery) -> Result<journeys::StepEvents, StoreError> {
        query::step_events(&self.client, q)
    }

    fn path_events(
        &self,
        q: &journeys::PathQuery,
    ) -> Result<(Vec<journeys::PathEvent>, Vec<journeys::Label>), StoreError> {
        query::path_events(&self.client, q)
    }

    fn funnel(
        &self,
        q: &journeys::StepQuery,
        to_ms: i64,
        window_ms: i64,
    ) -> Result<journeys::Funnel, StoreError> {
        let (steps, from_ms) = (q.steps.len(), q.from_ms);
        Ok(match query::step_piles(&self.client, q)? {
            Some(piles) => journeys::funnel_piles(piles, steps, from_ms, to_ms, window_ms),
            None => journeys::funnel(self.step_events(q)?, steps, from_ms, to_ms, window_ms),
        })
    }

    fn retention(
        &self,
        q: &journeys::StepQuery,
        starts: &[i64],
    ) -> Result<Vec<journeys::Cohort>, StoreError> {
        journey_sql::retention(&self.client, q, starts)
    }

    fn paths(
        &self,
        q: &journeys::PathQuery,
        start: &journeys::Step,
        direction: journeys::Direction,
        depth: usize,
    ) -> Result<journeys::Paths, StoreError> {
        journey_sql::paths(&self.client, q, start, direction, depth)
    }

    fn sessions(&self, q: &SessionListQuery) -> Result<SessionPage, StoreError> {
        query::sessions(&self.client, q)
    }

    fn session_stats(&self, q: &SessionStatsQuery) -> Result<SessionStats, StoreError> {
        query::session_stats(&self.client, q)
    }

    fn session(&self, id: &str, scope: &Scope) -> Result<Option<SessionView>, StoreError> {
        query::session(&self.client, id, scope)
    }

    fn erase(&self, person: &str) -> oneshot::Receiver<Result<Erased, StoreError>> {
        let person = person.to_owned();
        self.background(move |c| query::erase(c, &person))
    }

    fn event_names(
        &self,
        from_ms: i64,
        to_ms: i64,
        scope: &Scope,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        query::event_names(&self.client, from_ms, to_ms, scope)
    }

    fn property_keys(
        &self,
        from_ms: i64,
        to_ms: i64,
        scope: &Scope,
    ) -> Result<PropertyKeys, StoreError> {
        query::property_keys(&self.client, from_ms, to_ms, scope)
    }

    fn save_report(&self, r: Report) -> oneshot::Receiver<Result<(), StoreError>> {
        let ver = self.next_report_ver();
        self.background(move |c| query::save_report(c, &r, ver, false))
    }

    fn delete_report(&self, id: &str) -> oneshot::Receiver<Result<bool, StoreError>> {
        let id = id.to_owned();
        let ver = self.next_report_ver();
        self.background(move |c| {
            let Some(r) = query::report(c, &id, false)? else {
                return Ok(false);
            };
            query::save_report(c, &r, ver, true)?;
            Ok(true)
        })
    }

    fn reports(&self) -> Result<Vec<Report>, StoreError> {
        query::reports(&self.client, None)
    }

    fn report(&self, id: &str, shared: bool) -> Result<Option<Report>, StoreError> {
        query::report(&self.client, id, shared)
    }

    fn save_token(&self, t: ApiToken) -> oneshot::Receiver<Result<(), StoreError>> {
        self.background(move |c| query::save_token(c, &t, false))
    }

    fn revoke_token(&self, id: &str) -> oneshot::Receiver<Result<bool, StoreError>> {
        let id = id.to_owned();
        self.background(move |c| {
            let Some(t) = query::tokens(c)?.into_iter().find(|t| t.id == id) else {
                return Ok(false);
            };
            query::save_token(c, &t, true)?;
            Ok(true)
        })
    }

    fn touch_token(&self, t: ApiToken, at_ms: i64) -> oneshot::Receiver<Result<(), StoreError>> {
        let t = ApiToken {
            last_used_ms: Some(at_ms),
            ..t
        };
        self.background(move |c| query::save_token(c, &t, false))
    }

    fn tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        query::tokens(&self.client)
    }

    fn spool(&self) -> Option<&SpoolGauges> {
        Some(&self.gauges)
    }
}
