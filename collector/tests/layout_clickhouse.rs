//! The layout of `events` on a real ClickHouse: a database written before the table was
//! sorted by day (ordered by `event_id`, without the stored hashes) gets the hash columns on
//! start and gives the same answers; events keep arriving into it; and the rebuild the README
//! prints (its statements are read from the README and run as written, on this test's
//! database) moves it to the sorted order without changing an answer.

mod common {
    pub mod clickhouse;
}

use common::clickhouse::ClickHouseServer;
use footfall_collector::store::journeys::{self, Periods, Step, StepQuery};
use footfall_collector::store::*;
use std::path::Path;

const DAY: i64 = 86_400_000;

/// Events of 12 visitors over 6 days, some in the last minute before a UTC midnight: page
/// views of two paths, then `add` and sometimes `buy`.
fn events(start: i64, from: u64) -> Vec<StoredEvent> {
    let mut out = Vec::new();
    for n in from..from + 60 {
        let visitor = n % 12;
        let day = (n / 12) as i64 % 6;
        let at = start + day * DAY + if n % 5 == 0 { DAY - 30_000 } else { 3_600_000 } + n as i64;
        for (step, name, path) in [(0, "$pageview", "/"), (1, "add", "/p"), (2, "buy", "/p")] {
            if step == 2 && n % 3 != 0 {
                continue;
            }
            out.push(StoredEvent {
                event_id: format!("019ab0b4-0000-7000-8000-{:012x}", n * 10 + step),
                site: "demo".into(),
                kind: if step == 0 { "page" } else { "track" },
                name: name.into(),
                time_ms: at + step as i64 * 1000,
                client_ms: at,
                server_ms: at,
                anonymous_id: format!("anon-{visitor}"),
                session_id: format!("s-{visitor}-{day}"),
                seq: step as i64 + 1,
                path: path.into(),
                url: format!("https://shop.example{path}"),
                browser: ["Chrome", "Firefox"][(visitor % 2) as usize].into(),
                ..Default::default()
            });
        }
    }
    out
}

fn open(url: &str, dir: &Path) -> ClickHouse {
    ClickHouse::open(url, dir, 1 << 30).unwrap()
}

fn insert(store: &dyn Store, events: Vec<StoredEvent>) {
    let fresh = store.insert(events).blocking_recv().unwrap().unwrap();
    assert!(fresh.iter().all(|&f| f), "every event is new");
}

/// The answers that read `events` by time, hash and name, as one comparable value.
fn answers(store: &dyn Store, start: i64) -> String {
    let (from, to) = (start, start + 7 * DAY);
    let insights = |metric, by: Option<&str>| {
        store
            .insights(&InsightsQuery {
                metric,
                from_ms: from,
                to_ms: to,
                interval: Interval::Day,
                events: Vec::new(),
                by: by.and_then(Field::parse),
                split: None,
                filters: Vec::new(),
                sites: Vec::new(),
                tz: chrono_tz::UTC,
            })
            .unwrap()
    };
    let steps = vec![
        Step::Page("/".into()),
        Step::Event("add".into()),
        Step::Event("buy".into()),
    ];
    let funnel = journeys::funnel(
        store
            .step_events(&StepQuery {
                from_ms: from,
                to_ms: to + DAY,
                steps: steps.clone(),
                filters: Vec::new(),
                sites: Vec::new(),
                breakdown: Field::parse("browser"),
                people: false,
                periods: None,
            })
            .unwrap(),
        steps.len(),
        from,
        to,
        DAY,
    );
    let starts = bucket_starts(from, to, Interval::Day, chrono_tz::UTC);
    // The store's own retention: whole hours from `users_hourly` and `steps_hourly`.
    let retention = store
        .retention(
            &StepQuery {
                from_ms: from,
                to_ms: to,
                steps: vec![Step::Any, Step::Event("buy".into())],
                filters: Vec::new(),
                sites: Vec::new(),
                breakdown: None,
                people: false,
                periods: Some(Periods {
                    starts: starts.clone(),
                    interval: Interval::Day,
                    tz: chrono_tz::UTC,
                }),
            },
            &starts,
        )
        .unwrap();
    let sessions = store
        .session_stats(&SessionStatsQuery {
            from_ms: from,
            to_ms: to,
            user: None,
            split: None,
            scope: Scope::default(),
        })
        .unwrap();
    let names = store.event_names(from, to, &Scope::default()).unwrap();
    format!(
        "{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}",
        insights(Metric::Users, None),
        insights(Metric::Events, Some("name")),
        insights(Metric::Sessions, Some("browser")),
        (funnel.steps, funnel.breakdown),
        retention,
        sessions,
        names,
    )
}

fn sorting_key(server: &ClickHouseServer, db: &str) -> String {
    server.query(&format!(
        "SELECT engine_full FROM system.tables WHERE database = '{db}' AND name = 'events'"
    ))
}

fn columns(server: &ClickHouseServer, db: &str) -> String {
    server.query(&format!(
        "SELECT name FROM system.columns WHERE database = '{db}' AND table = 'events'
         AND name IN ('event_h', 'session_h', 'anon_h', 'name_h', 'is_bot', 'label_h')
         ORDER BY name"
    ))
}

/// The README's rebuild statements, for database `db`.
fn readme_rebuild(db: &str) -> Vec<String> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let (_, after) = readme
        .split_once("<!-- rebuild:")
        .expect("the README prints the rebuild");
    let (_, sql) = after.split_once("```sql").unwrap();
    let (sql, _) = sql.split_once("```").unwrap();
    let stmts: Vec<String> = sql
        .split(';')
        .map(|s| s.trim().replace("footfall.", &format!("{db}.")))
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(stmts.len(), 13, "{stmts:?}");
    stmts
}

#[test]
fn a_database_ordered_by_event_id_answers_the_same_before_and_after_the_rebuild() {
    let server = ClickHouseServer::start();
    let url = server.url("layout");
    let dir = tempfile::tempdir().unwrap();
    let start = 1_790_000_000_000 / DAY * DAY;
    let want = {
        let store = open(&url, dir.path());
        assert!(sorting_key(&server, "layout").contains("intDiv(time_ms, 86400000)"));
        insert(&store, events(start, 0));
        answers(&store, start)
    };
    assert!(want.contains("buy"), "{want}");

    // As an earlier version left it: ordered by event ID, no hash columns.
    server.query(
        "CREATE TABLE layout.events_v0 ENGINE = ReplacingMergeTree(ver) ORDER BY event_id
         AS SELECT * FROM layout.events",
    );
    server.query("DROP TABLE layout.event_ids_feed");
    // Nor the rows and copies noted (filled from `events` on start).
    for t in ["event_rows_feed", "event_rows", "copies"] {
        server.query(&format!("DROP TABLE layout.{t}"));
    }
    // Nor the rollups: the collector fills them from `events` on start.
    for table in [
        "users_hourly",
        "session_rollup",
        "steps_hourly",
        "anon_rollup",
        "trait_rollup",
        "props_hourly",
        "trait_events",
        "step_events",
    ] {
        server.query(&format!("DROP TABLE layout.{table}_feed"));
        server.query(&format!("DROP TABLE layout.{table}"));
    }
    server.query("DROP TABLE layout.rollups_filled");
    server.query("DROP TABLE layout.events");
    server.query("RENAME TABLE layout.events_v0 TO layout.events");
    assert_eq!(columns(&server, "layout"), "");

    let store = open(&url, dir.path());
    assert_eq!(
        columns(&server, "layout"),
        "anon_h\nevent_h\nis_bot\nlabel_h\nname_h\nsession_h\n"
    );
    assert!(sorting_key(&server, "layout").contains("ORDER BY event_id"));
    assert_eq!(
        answers(&store, start),
        want,
        "the older layout answers the same"
    );
    // Events keep arriving into it, their duplicates still found.
    insert(&store, events(start, 60));
    let grown = answers(&store, start);
    assert_ne!(grown, want);
    let again = store
        .insert(events(start, 60))
        .blocking_recv()
        .unwrap()
        .unwrap();
    assert!(again.iter().all(|&fresh| !fresh), "duplicates found");
    drop(store);

    for stmt in readme_rebuild("layout") {
        server.query(&stmt);
    }
    let store = open(&url, dir.path());
    assert!(sorting_key(&server, "layout").contains("intDiv(time_ms, 86400000)"));
    assert_eq!(
        answers(&store, start),
        grown,
        "the rebuilt table answers the same"
    );
    // The view that feeds the duplicate check, and each rollup's, runs on the new table.
    let rollups = [
        "users_hourly",
        "session_rollup",
        "steps_hourly",
        "anon_rollup",
        "step_events",
        "event_rows",
    ];
    let rows = |table: &str| server.query(&format!("SELECT count() FROM layout.{table}"));
    let before: Vec<String> = rollups.iter().map(|t| rows(t)).collect();
    let late = events(start, 120);
    let ids = late.len();
    insert(&store, late.clone());
    let dup = store.insert(late).blocking_recv().unwrap().unwrap();
    assert_eq!(dup, vec![false; ids], "duplicates found after the rebuild");
    for (table, before) in rollups.iter().zip(before) {
        assert_ne!(rows(table), before, "{table} is fed from the rebuilt table");
    }
    server.query("DROP TABLE layout.events_by_id");
    assert_ne!(answers(&store, start), grown, "the new events are counted");
}
