//! Erasing a person on ClickHouse when more than one collector writes: a collector that was
//! cut off from ClickHouse and spooled the person's events must not bring them back when it
//! replays after the erase, and a collector that had written the person's alias writes it
//! again when the person returns.

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
