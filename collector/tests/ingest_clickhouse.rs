//! The ClickHouse insert path on a real server: rows go in `RowBinary` and come back exactly
//! as sent (quotes, newlines, backslashes, tabs, unicode, empty strings, NULLs, arrays); the
//! duplicate check finds an event stored by the same batch, by an earlier group (many batches
//! at once, overlapping, so groups follow each other while one is in flight), by
//! another collector, and by a database made before `event_ids` existed; a batch spooled
//! while ClickHouse was away and retried meanwhile through another collector is stored once.
//! Events stored twice (two collectors checking before either insert landed, a replayed
//! batch whose first attempt lands late, copies in a database from before `copies`) are
//! noted in `copies` and counted once.

mod common {
    pub mod clickhouse;
}

use common::clickhouse::ClickHouseServer;
use footfall_collector::store::*;
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

fn event(n: u64, server_ms: i64) -> StoredEvent {
    StoredEvent {
        event_id: format!("019ab0b4-0000-7000-8000-{n:012x}"),
        site: "demo".into(),
        kind: "track",
        name: "click".into(),
        time_ms: server_ms,
        client_ms: server_ms,
        server_ms,
        anonymous_id: format!("anon-{}", n % 7),
        session_id: format!("s-{}", n % 7),
        seq: n as i64,
        path: "/".into(),
        url: "https://shop.example/".into(),
        props: format!(r#"{{"n":{n}}}"#),
        ..Default::default()
    }
}

fn open(url: &str, dir: &Path) -> ClickHouse {
    ClickHouse::open(url, dir, 1 << 30).unwrap()
}

/// For each event, whether it was new.
fn insert(store: &dyn Store, events: Vec<StoredEvent>) -> Vec<bool> {
    store.insert(events).blocking_recv().unwrap().unwrap()
}

/// Rows in `events`, copies not merged away included.
fn rows(server: &ClickHouseServer, db: &str) -> usize {
    server
        .query(&format!("SELECT count() FROM {db}.events"))
        .trim()
        .parse()
        .unwrap()
}

fn drained(store: &ClickHouse) {
    let gauges = store.spool().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while gauges.batches.load(std::sync::atomic::Ordering::Relaxed) > 0 {
        assert!(Instant::now() < deadline, "the spool did not drain in 60 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A 64-bit integer of ClickHouse's JSON output: a string, or a number with
/// `output_format_json_quote_64bit_integers=0`.
fn int(v: &Value) -> i64 {
    v.as_i64()
        .or_else(|| v.as_str()?.parse().ok())
        .unwrap_or_else(|| panic!("not an integer: {v}"))
}

#[test]
fn odd_strings_arrive_exactly_as_sent() {
    let server = ClickHouseServer::start();
    let dir = tempfile::tempdir().unwrap();
    let store = open(&server.url("odd"), dir.path());
    let now = chrono::Utc::now().timestamp_millis();
    let odd = [
        "",
        "it's \"quoted\"",
        "two\nlines\r\nand\ttabs",
        "back\\slash \\' \\n",
        "ünïcødé — 日本語 🦶",
        "\u{1}\u{7f}nul\u{0}end",
        "FORMAT RowBinary'); DROP TABLE odd.events; --",
    ];
    let events: Vec<StoredEvent> = odd
        .iter()
        .enumerate()
        .map(|(i, s)| StoredEvent {
            name: s.to_string(),
            title: s.to_string(),
            referrer: s.repeat(40),
            anonymous_id: format!("anon {s}"),
            user_id: (i % 2 == 1).then(|| format!("user {s}")),
            traits: (i % 3 == 0).then(|| serde_json::json!({ "plan": s }).to_string()),
            bot_reason: (i == 2).then(|| s.to_string()),
            ip: None,
            // SQLite reads the properties at ingest; its text stops at a NUL.
            props: serde_json::json!({
                format!("k {}", s.replace('\0', "")): s.replace('\0', ""),
                "price": i as f64 + 0.25,
                "big": 1e300,
            })
            .to_string(),
            ..event(i as u64, now + i as i64)
        })
        .collect();
    let stored = insert(&store, events.clone());
    assert_eq!(stored, vec![true; odd.len()]);
    let text = server.query(
        "SELECT event_id, name, title, referrer, anonymous_id, user_id, traits, bot_reason, ip,
                props, prop_keys, prop_values, prop_nums, prop_reals, trait_keys, trait_values,
                time_ms, seq, ver
         FROM odd.events ORDER BY event_id FORMAT JSONEachRow",
    );
    let got: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(got.len(), odd.len());
    for (e, g) in events.iter().zip(&got) {
        assert_eq!(g["event_id"], e.event_id.as_str());
        assert_eq!(g["name"], e.name.as_str());
        assert_eq!(g["title"], e.title.as_str());
        assert_eq!(g["referrer"], e.referrer.as_str());
        assert_eq!(g["anonymous_id"], e.anonymous_id.as_str());
        assert_eq!(g["user_id"].as_str(), e.user_id.as_deref());
        assert_eq!(g["traits"].as_str(), e.traits.as_deref());
        assert_eq!(g["bot_reason"].as_str(), e.bot_reason.as_deref());
        assert!(g["ip"].is_null());
        assert_eq!(g["props"], e.props.as_str());
        assert_eq!(int(&g["time_ms"]), e.time_ms);
        assert_eq!(int(&g["seq"]), e.seq);
        let keys: Vec<&str> = g["prop_keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap())
            .collect();
        let props: serde_json::Map<String, Value> = serde_json::from_str(&e.props).unwrap();
        let mut want: Vec<&str> = props.keys().map(String::as_str).collect();
        let mut sorted = keys.clone();
        want.sort_unstable();
        sorted.sort_unstable();
        assert_eq!(sorted, want);
        let price = keys.iter().position(|&k| k == "price").unwrap();
        assert_eq!(g["prop_nums"][price], 1);
        assert_eq!(
            g["prop_reals"][price].as_f64(),
            Some(props["price"].as_f64().unwrap())
        );
        let big = keys.iter().position(|&k| k == "big").unwrap();
        assert_eq!(g["prop_reals"][big].as_f64(), Some(1e300));
        let text = keys
            .iter()
            .position(|&k| !["price", "big"].contains(&k))
            .unwrap();
        assert_eq!(g["prop_nums"][text], 0);
        assert_eq!(g["prop_values"][text], props[keys[text]]);
        match &e.traits {
            Some(t) => {
                let plan: Value = serde_json::from_str(t).unwrap();
                assert_eq!(g["trait_keys"], serde_json::json!(["plan"]));
                assert_eq!(g["trait_values"][0], plan["plan"]);
            }
            None => assert_eq!(g["trait_keys"], serde_json::json!([])),
        }
    }
    // The odd user IDs became aliases, byte for byte.
    let aliases =
        server.query("SELECT user_id FROM odd.aliases ORDER BY user_id FORMAT JSONEachRow");
    let mut want: Vec<String> = events.iter().filter_map(|e| e.user_id.clone()).collect();
    want.sort();
    let got: Vec<String> = aliases
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["user_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(got, want);
    // And the store reads them back through its queries.
    let everyone = Scope {
        bots: Bots::Include,
        sites: Vec::new(),
    };
    let user = store
        .user("user it's \"quoted\"", &everyone)
        .unwrap()
        .expect("the user with quotes in their ID");
    assert_eq!(user.user.anonymous_ids, ["anon it's \"quoted\""]);
}

#[test]
fn duplicates_are_found_within_a_batch_across_groups_and_across_collectors() {
    let server = ClickHouseServer::start();
    let url = server.url("dups");
    let (dir_x, dir_y) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let x = open(&url, dir_x.path());
    let now = chrono::Utc::now().timestamp_millis();

    // Within one batch: the second copy is a duplicate.
    let stored = insert(&x, vec![event(1, now), event(2, now), event(1, now)]);
    assert_eq!(stored, [true, true, false]);

    // Many batches at once, overlapping: they form several groups, each gathered while the
    // one before is in flight. Each ID is new exactly once, and stored once.
    let waiting: Vec<_> = (0..60u64)
        .map(|b| {
            let events = (0..200u64)
                .map(|i| event(3 + (b * 150 + i) % 5_000, now))
                .collect();
            x.insert(events)
        })
        .collect();
    let mut new = 0;
    for w in waiting {
        new += w
            .blocking_recv()
            .unwrap()
            .unwrap()
            .iter()
            .filter(|&&s| s)
            .count();
    }
    let distinct: std::collections::HashSet<u64> = (0..60u64)
        .flat_map(|b| (0..200u64).map(move |i| 3 + (b * 150 + i) % 5_000))
        .collect();
    assert_eq!(new, distinct.len());
    assert_eq!(rows(&server, "dups"), distinct.len() + 2);

    // Another collector finds what the first stored.
    let y = open(&url, dir_y.path());
    let stored = insert(&y, vec![event(1, now), event(3, now), event(90_000, now)]);
    assert_eq!(stored, [false, false, true]);
    let stored = insert(&x, vec![event(90_000, now), event(90_001, now)]);
    assert_eq!(stored, [false, true]);
    assert_eq!(rows(&server, "dups"), distinct.len() + 4);
}

#[test]
fn a_batch_spooled_and_retried_elsewhere_is_stored_once() {
    let server = ClickHouseServer::start();
    let url = server.url("retried");
    let (dir_x, dir_y) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let now = chrono::Utc::now().timestamp_millis();
    let batch: Vec<StoredEvent> = (0..50).map(|n| event(n, now)).collect();

    // Collector X cannot reach ClickHouse: it spools the batch and answers, but the answer
    // never reaches the client, whose request timed out.
    let x = open("http://127.0.0.1:9/retried", dir_x.path());
    assert_eq!(insert(&x, batch.clone()), vec![true; 50]);
    drop(x);
    // The client retries through collector Y, which stores it.
    let y = open(&url, dir_y.path());
    assert_eq!(insert(&y, batch.clone()), vec![true; 50]);
    // X comes back and replays its spool: ClickHouse has every event already.
    let x = open(&url, dir_x.path());
    drained(&x);
    assert_eq!(rows(&server, "retried"), 50);
    // A third try is a duplicate on either collector.
    assert_eq!(insert(&x, batch.clone()), vec![false; 50]);
    assert_eq!(insert(&y, batch), vec![false; 50]);
    assert_eq!(rows(&server, "retried"), 50);
}

/// The events of `copies` among these IDs, as `id` hashed, in order.
fn noted(server: &ClickHouseServer, db: &str, ids: impl IntoIterator<Item = u64>) -> Vec<u64> {
    let list: Vec<String> = ids
        .into_iter()
        .map(|n| format!("('{}', {n})", event(n, 0).event_id))
        .collect();
    let text = server.query(&format!(
        "SELECT n FROM (SELECT cityHash64(t.1) AS event_h, t.2 AS n
                        FROM system.one ARRAY JOIN [{}] AS t)
         WHERE event_h IN (SELECT event_h FROM {db}.copies) ORDER BY n",
        list.join(", ")
    ));
    text.lines().map(|l| l.trim().parse().unwrap()).collect()
}

/// `GET /api/v1/events`'s answer over every time, every site, bots left out.
fn names(store: &dyn Store) -> Vec<(String, u64)> {
    store
        .event_names(0, i64::MAX / 2, &Scope::default())
        .unwrap()
}

/// Makes the next duplicate check miss these events, as when another collector checked
/// before the insert that stored them had landed: `event_ids` is made again without them.
fn unseen(server: &ClickHouseServer, db: &str, ids: impl IntoIterator<Item = u64>) {
    let list: Vec<String> = ids
        .into_iter()
        .map(|n| format!("'{}'", event(n, 0).event_id))
        .collect();
    server.query(&format!(
        "RENAME TABLE {db}.event_ids TO {db}.event_ids_all"
    ));
    server.query(&format!(
        "CREATE TABLE {db}.event_ids AS {db}.event_ids_all"
    ));
    server.query(&format!(
        "INSERT INTO {db}.event_ids SELECT event_id FROM {db}.event_ids_all
         WHERE event_id NOT IN ({})",
        list.join(", ")
    ));
    server.query(&format!("DROP TABLE {db}.event_ids_all"));
}

#[test]
fn events_two_collectors_both_store_are_noted_as_copies_and_counted_once() {
    let server = ClickHouseServer::start();
    let url = server.url("racing");
    let (dir_x, dir_y) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (x, y) = (open(&url, dir_x.path()), open(&url, dir_y.path()));
    server.query("SYSTEM STOP MERGES racing.events");
    let now = chrono::Utc::now().timestamp_millis();
    let batch = |ns: std::ops::Range<u64>| ns.map(|n| event(n, now)).collect::<Vec<_>>();

    // X stores 0..20; Y receives 10..30 as a retry and checks before X's insert landed.
    assert_eq!(insert(&x, batch(0..20)), vec![true; 20]);
    unseen(&server, "racing", 10..20);
    assert_eq!(insert(&y, batch(10..30)), vec![true; 20]);
    assert_eq!(rows(&server, "racing"), 40, "ten events stored twice");
    // Y, whose insert finished second, found both rows of each and noted them.
    assert_eq!(
        noted(&server, "racing", 0..40),
        (10..20).collect::<Vec<_>>()
    );
    assert_eq!(names(&y), [("click".to_owned(), 30)]);
    assert_eq!(names(&x), names(&y));

    // Both at once, neither check seeing the other's insert (the view that fills
    // `event_ids` dropped meanwhile): whichever order the inserts and look-ups take, the
    // later insert's look-up finds both rows.
    server.query("DROP TABLE racing.event_ids_feed");
    let (wx, wy) = (x.insert(batch(40..50)), y.insert(batch(40..50)));
    assert_eq!(wx.blocking_recv().unwrap().unwrap(), vec![true; 10]);
    assert_eq!(wy.blocking_recv().unwrap().unwrap(), vec![true; 10]);
    // A collector starting makes the view again.
    drop(open(&url, tempfile::tempdir().unwrap().path()));
    assert_eq!(rows(&server, "racing"), 60);
    assert_eq!(
        noted(&server, "racing", 0..60),
        (10..20).chain(40..50).collect::<Vec<_>>()
    );
    assert_eq!(names(&x), [("click".to_owned(), 40)]);
    server.query("SYSTEM START MERGES racing.events");
}

#[test]
fn a_replayed_batch_is_noted_as_copies_so_a_late_first_attempt_counts_once() {
    let server = ClickHouseServer::start();
    let url = server.url("late");
    let dir = tempfile::tempdir().unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let batch: Vec<StoredEvent> = (0..25).map(|n| event(n, now)).collect();
    {
        let x = open("http://127.0.0.1:9/late", dir.path());
        assert_eq!(insert(&x, batch.clone()), vec![true; 25]);
    }
    let x = open(&url, dir.path());
    drained(&x);
    assert_eq!(rows(&server, "late"), 25);
    assert_eq!(noted(&server, "late", 0..25), (0..25).collect::<Vec<_>>());
    // The attempt that failed lands after all (a write ClickHouse finished after the
    // collector gave up on it): every event is stored twice, and still counted once.
    server.query("SYSTEM STOP MERGES late.events");
    server.query("INSERT INTO late.events SELECT * FROM late.events");
    assert_eq!(rows(&server, "late"), 50);
    assert_eq!(names(&x), [("click".to_owned(), 25)]);
    // Live inserts note nothing they stored once.
    let more: Vec<StoredEvent> = (25..40).map(|n| event(n, now)).collect();
    assert_eq!(insert(&x, more), vec![true; 15]);
    assert_eq!(noted(&server, "late", 0..40), (0..25).collect::<Vec<_>>());
    assert_eq!(names(&x), [("click".to_owned(), 40)]);
    server.query("SYSTEM START MERGES late.events");
}

#[test]
fn a_database_made_before_copies_gets_them_filled_once() {
    let server = ClickHouseServer::start();
    let url = server.url("nocopies");
    let dir = tempfile::tempdir().unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    {
        let store = open(&url, dir.path());
        let batch: Vec<StoredEvent> = (0..30).map(|n| event(n, now)).collect();
        assert_eq!(insert(&store, batch), vec![true; 30]);
    }
    // As a database written by an earlier version: no `event_rows` or `copies`, and copies
    // of events 0..5 that two collectors left.
    for t in ["event_rows_feed", "event_rows", "copies"] {
        server.query(&format!("DROP TABLE nocopies.{t}"));
    }
    server.query(
        "ALTER TABLE nocopies.rollups_filled DELETE WHERE rollup IN ('event_rows', 'copies')",
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while server
        .query(
            "SELECT count() FROM nocopies.rollups_filled WHERE rollup IN ('event_rows', 'copies')",
        )
        .trim()
        != "0"
    {
        assert!(
            Instant::now() < deadline,
            "the notes were not deleted in 60 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    server.query("SYSTEM STOP MERGES nocopies.events");
    server.query(&format!(
        "INSERT INTO nocopies.events SELECT * FROM nocopies.events WHERE event_id IN ({})",
        (0..5)
            .map(|n| format!("'{}'", event(n, 0).event_id))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    assert_eq!(rows(&server, "nocopies"), 35);

    let store = open(&url, dir.path());
    assert_eq!(
        noted(&server, "nocopies", 0..30),
        (0..5).collect::<Vec<_>>()
    );
    assert_eq!(
        server
            .query("SELECT count() FROM nocopies.event_rows")
            .trim(),
        "35",
        "a row of event_rows for each row of events"
    );
    assert_eq!(names(&store), [("click".to_owned(), 30)]);
    // A copy stored from now on is found through the filled `event_rows`.
    unseen(&server, "nocopies", 7..8);
    assert_eq!(insert(&store, vec![event(7, now)]), [true]);
    assert_eq!(noted(&server, "nocopies", 0..30), [0, 1, 2, 3, 4, 7]);
    assert_eq!(names(&store), [("click".to_owned(), 30)]);
    server.query("SYSTEM START MERGES nocopies.events");
}

#[test]
fn a_database_made_before_event_ids_gets_them_filled_once() {
    let server = ClickHouseServer::start();
    let url = server.url("older");
    let dir = tempfile::tempdir().unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let batch: Vec<StoredEvent> = (0..30).map(|n| event(n, now)).collect();
    {
        let store = open(&url, dir.path());
        assert_eq!(insert(&store, batch.clone()), vec![true; 30]);
    }
    // As a database written by an earlier version: events, but no `event_ids`.
    server.query("DROP TABLE older.event_ids_feed");
    server.query("DROP TABLE older.event_ids");
    let store = open(&url, dir.path());
    let stored = server.query("SELECT uniqExact(event_id) FROM older.event_ids");
    assert_eq!(stored.trim(), "30");
    let mut again = batch;
    again.push(event(30, now));
    let mut want = vec![false; 30];
    want.push(true);
    assert_eq!(insert(&store, again), want);
    assert_eq!(rows(&server, "older"), 31);
}
