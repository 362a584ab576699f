//! Erasing a person on ClickHouse when more than one collector writes: a collector that was
//! cut off from ClickHouse and spooled the person's events must not bring them back when it
//! replays after the erase (events it received after the erase are new data and are kept),
//! and a collector that had written the person's alias writes it again when the person
//! returns, whichever collector ran the erase.

mod common {
    pub mod clickhouse;
}

use common::clickhouse::ClickHouseServer;
use footfall_collector::store::*;
use std::path::Path;
use std::time::{Duration, Instant};

fn event(n: u64, anon: &str, user: Option<&str>, server_ms: i64) -> StoredEvent {
    StoredEvent {
        event_id: format!("019ab0b4-0000-7000-8000-{n:012x}"),
        site: "demo".into(),
        kind: if user.is_some() { "identify" } else { "page" },
        name: if user.is_some() {
            "$identify"
        } else {
            "$pageview"
        }
        .into(),
        time_ms: server_ms,
        client_ms: server_ms,
        server_ms,
        anonymous_id: anon.into(),
        user_id: user.map(str::to_owned),
        // Who signs in sets a user property.
        traits: user.map(|_| r#"{"plan":"pro"}"#.to_owned()),
        session_id: format!("s-{anon}-{}", server_ms / 3_600_000),
        seq: n as i64,
        path: "/".into(),
        url: "https://shop.example/".into(),
        props: "{}".into(),
        device: "desktop".into(),
        browser: "Firefox".into(),
        ..Default::default()
    }
}

fn insert(store: &dyn Store, events: Vec<StoredEvent>) {
    let stored = store.insert(events).blocking_recv().unwrap().unwrap();
    assert!(stored.iter().all(|&s| s), "{stored:?}");
}

fn open(url: &str, dir: &Path) -> ClickHouse {
    ClickHouse::open(url, dir, 1 << 30).unwrap()
}

fn spooled(store: &ClickHouse) -> u64 {
    store
        .spool()
        .unwrap()
        .batches
        .load(std::sync::atomic::Ordering::Relaxed)
}

/// Events stored for `person` (by user ID or anonymous ID) and their anonymous IDs.
fn person(store: &dyn Store, person: &str) -> Option<(Vec<String>, usize)> {
    let everyone = Scope {
        bots: Bots::Include,
        sites: Vec::new(),
    };
    let p = store.user(person, &everyone).unwrap()?;
    let events = p.sessions.iter().map(|s| s.events.len()).sum();
    Some((p.user.anonymous_ids, events))
}

fn drained(store: &ClickHouse) {
    let gauges = store.spool().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while gauges.batches.load(std::sync::atomic::Ordering::Relaxed) > 0 {
        assert!(Instant::now() < deadline, "the spool did not drain in 60 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_erased_person_stays_erased_across_spools_and_returns_whole() {
    let server = ClickHouseServer::start();
    let url = server.url("erase_many");
    let (dir_x, dir_y) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let now = chrono::Utc::now().timestamp_millis();
    let everyone = Scope {
        bots: Bots::Include,
        sites: Vec::new(),
    };

    // Collector X cannot reach ClickHouse: Pat's earlier visit and Quinn's wait in its spool.
    let x = open("http://127.0.0.1:9/erase_many", dir_x.path());
    insert(
        &x,
        vec![
            event(1, "anon-pat-1", None, now - 3_600_000),
            event(2, "anon-pat-1", Some("pat@example.com"), now - 3_599_000),
            event(3, "anon-quinn", None, now - 3_500_000),
        ],
    );
    assert!(
        x.spool()
            .unwrap()
            .batches
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    );
    drop(x);

    // Collector Y sees Pat on a second browser, then erases Pat.
    let y = open(&url, dir_y.path());
    insert(
        &y,
        vec![
            event(4, "anon-pat-2", None, now - 60_000),
            event(5, "anon-pat-2", Some("pat@example.com"), now - 59_000),
        ],
    );
    let erased = y.erase("pat@example.com").blocking_recv().unwrap().unwrap();
    assert_eq!(erased.events, 2);
    assert!(y.user("pat@example.com", &everyone).unwrap().is_none());
    // Nothing of Pat's second browser is left in any table keyed by the anonymous ID (the
    // events, every rollup, the user properties' events), and they held some before.
    let tables = server.query(
        "SELECT name FROM system.tables WHERE database = 'erase_many'
           AND engine LIKE '%MergeTree' AND name IN (
               SELECT table FROM system.columns
               WHERE database = 'erase_many' AND name = 'anon_h')
         ORDER BY name",
    );
    assert!(
        tables.contains("trait_events") && tables.contains("session_rollup"),
        "{tables}"
    );
    for table in tables.lines() {
        let left = server.query(&format!(
            "SELECT count() FROM erase_many.{table} WHERE anon_h = cityHash64('anon-pat-2')"
        ));
        assert_eq!(left.trim(), "0", "{table}");
    }

    // X comes back and replays: Quinn arrives, Pat does not.
    std::thread::sleep(Duration::from_millis(200));
    let x = open(&url, dir_x.path());
    drained(&x);
    assert!(y.user("anon-quinn", &everyone).unwrap().is_some());
    assert!(
        y.user("pat@example.com", &everyone).unwrap().is_none(),
        "the replay brought Pat back"
    );
    assert!(y.user("anon-pat-1", &everyone).unwrap().is_none());

    // Pat returns on the second browser and signs in again: Y wrote that alias before the
    // erase, and writes it again, so the new visit is Pat's.
    insert(
        &y,
        vec![
            event(6, "anon-pat-2", None, now + 1_000),
            event(7, "anon-pat-2", Some("pat@example.com"), now + 2_000),
        ],
    );
    let pat = y
        .user("pat@example.com", &everyone)
        .unwrap()
        .expect("Pat by user ID after returning");
    assert_eq!(pat.user.anonymous_ids, ["anon-pat-2"]);
    let events: usize = pat.sessions.iter().map(|s| s.events.len()).sum();
    assert_eq!(events, 2, "only the visit after the erase");
}

#[test]
fn an_alias_written_before_another_collectors_erase_is_written_again() {
    let server = ClickHouseServer::start();
    let url = server.url("erase_alias");
    let (dir_x, dir_y) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let now = chrono::Utc::now().timestamp_millis();
    let x = open(&url, dir_x.path());
    let y = open(&url, dir_y.path());

    // X writes Pat's alias, then sees Pat again: the second group finds the alias already
    // written by X.
    insert(
        &x,
        vec![
            event(1, "anon-pat", None, now - 60_000),
            event(2, "anon-pat", Some("pat@example.com"), now - 59_000),
        ],
    );
    insert(
        &x,
        vec![event(3, "anon-pat", Some("pat@example.com"), now - 58_000)],
    );
    assert_eq!(
        person(&x, "pat@example.com"),
        Some((vec!["anon-pat".to_owned()], 3))
    );

    // Y erases Pat; Pat comes back at once on X's side, within any time a cache could last.
    let erased = y.erase("pat@example.com").blocking_recv().unwrap().unwrap();
    assert_eq!(erased.events, 3);
    assert_eq!(person(&x, "pat@example.com"), None);
    insert(
        &x,
        vec![
            event(4, "anon-pat", None, now + 1_000),
            event(5, "anon-pat", Some("pat@example.com"), now + 2_000),
        ],
    );
    assert_eq!(
        person(&y, "pat@example.com"),
        Some((vec!["anon-pat".to_owned()], 2)),
        "X skipped the alias it had written before the erase"
    );
    assert_eq!(
        server.query("SELECT DISTINCT anonymous_id, user_id FROM erase_alias.aliases FORMAT TSV"),
        "anon-pat\tpat@example.com\n"
    );
}

#[test]
fn spooled_events_of_an_erased_person_stay_out_after_a_restart_and_later_ones_stay_in() {
    let mut server = ClickHouseServer::start();
    let url = server.url("erase_spool");
    let (dir_x, dir_y) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let before = chrono::Utc::now().timestamp_millis();

    // Pat's first visit reaches ClickHouse through X.
    let x = open(&url, dir_x.path());
    insert(
        &x,
        vec![
            event(1, "anon-pat-1", None, before - 3_600_000),
            event(2, "anon-pat-1", Some("pat@example.com"), before - 3_599_000),
        ],
    );
    assert_eq!(spooled(&x), 0);

    // ClickHouse stops. X receives Pat's visit on a second browser and Quinn's, spools them,
    // and stops too.
    server.kill();
    insert(
        &x,
        vec![
            event(3, "anon-pat-2", None, before),
            event(4, "anon-pat-2", Some("pat@example.com"), before + 1),
            event(5, "anon-quinn", None, before + 2),
        ],
    );
    assert!(spooled(&x) > 0, "ClickHouse is down: the batch is spooled");
    drop(x);
    std::thread::sleep(Duration::from_millis(200));

    // ClickHouse is back; Y erases Pat before X restarts.
    server.restart();
    let y = open(&url, dir_y.path());
    let erased = y.erase("pat@example.com").blocking_recv().unwrap().unwrap();
    assert_eq!(erased.events, 2);

    // X restarts and replays: Quinn arrives; Pat's spooled events, received before the erase,
    // do not.
    let x = open(&url, dir_x.path());
    drained(&x);
    assert_eq!(
        person(&y, "anon-quinn"),
        Some((vec!["anon-quinn".to_owned()], 1))
    );
    assert_eq!(
        person(&y, "pat@example.com"),
        None,
        "the replay brought Pat back"
    );
    assert_eq!(person(&y, "anon-pat-2"), None);

    // ClickHouse stops again; Pat returns on the second browser after the erase: new data,
    // spooled, and stored when ClickHouse is back.
    server.kill();
    let after = chrono::Utc::now().timestamp_millis();
    insert(
        &x,
        vec![
            event(6, "anon-pat-2", None, after),
            event(7, "anon-pat-2", Some("pat@example.com"), after + 1),
        ],
    );
    assert!(spooled(&x) > 0);
    server.restart();
    drained(&x);
    assert_eq!(
        person(&y, "pat@example.com"),
        Some((vec!["anon-pat-2".to_owned()], 2)),
        "events received after the erase are kept"
    );
}
