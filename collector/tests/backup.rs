//! `footfall-collector backup FILE`: a copy taken from a running collector under ingest load.
//! A collector started on the copy answers every question about what was acknowledged before
//! the backup began exactly as the original does, and holds every such event.

mod common {
    pub mod http;
    pub mod process;
}

use common::http::{post_as_person, request};
use common::process::{start_collector, stored_event_ids};
use serde_json::Value;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const DAY_MS: i64 = 86_400_000;

fn event_id(phase: u8, n: u64) -> String {
    format!("019ab0b4-0000-7000-80{phase:02x}-{n:012x}")
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// One batch of `ids`: person `n % people`, a session per person and phase, page views with a
/// `$pageleave` and a `buy` now and then, an identify for every fifth person; client times
/// `ago_ms` before now.
fn batch(phase: u8, ids: &[u64], people: u64, ago_ms: i64) -> String {
    let now = chrono::Utc::now().timestamp_millis();
    let events: Vec<String> = ids
        .iter()
        .map(|&n| {
            let person = n % people;
            let (kind, name, extra) = match n % 7 {
                0 if person.is_multiple_of(5) => (
                    "identify",
                    "$identify",
                    format!(r#","user_id":"user-{phase}-{person}@example.com","traits":{{"plan":"pro"}}"#),
                ),
                1 => ("track", "buy", String::new()),
                2 => ("track", "$pageleave", String::new()),
                _ => ("page", "$pageview", String::new()),
            };
            format!(
                r#"{{"event_id":"{}","type":"{kind}","name":"{name}","timestamp":"{}","anonymous_id":"anon-{phase}-{person}","session_id":"s-{phase}-{person}","seq":{n},"page":{{"url":"https://shop.example/p{}","path":"/p{}"}},"props":{{"n":{n}}}{extra}}}"#,
                event_id(phase, n),
                rfc3339(now - ago_ms + n as i64),
                n % 4,
                n % 4
            )
        })
        .collect();
    format!(
        r#"{{"key":"demo","sent_at":"{}","events":[{}]}}"#,
        rfc3339(now),
        events.join(",")
    )
}

/// Kills the collector when the test ends, failed or not.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn get(addr: SocketAddr, path: &str) -> Value {
    let r = request(addr, "GET", path, &[("Authorization", "Bearer t")], "").unwrap();
    assert_eq!(r.status, 200, "GET {path}: {}", r.body);
    serde_json::from_str(&r.body).unwrap()
}

#[test]
fn a_backup_under_load_answers_as_the_original() {
    let dir = tempfile::tempdir().unwrap();
    let (original, addr) = start_collector(dir.path(), &[]);
    let _original = Running(original);

    // Phase 1: three days ago, 300 people, 3,000 events, all acknowledged before the backup.
    for first in (0..3000).step_by(50) {
        let ids: Vec<u64> = (first..first + 50).collect();
        let r = post_as_person(addr, &batch(1, &ids, 300, 3 * DAY_MS)).unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
    }

    // Phase 2: other people, now, from four clients without pause until told to stop.
    let acked = Arc::new(Mutex::new(Vec::<u64>::new()));
    let next = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (acked, next, stop) = (acked.clone(), next.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let first = next.fetch_add(100, Ordering::Relaxed);
                    let ids: Vec<u64> = (first..first + 100).collect();
                    let r = post_as_person(addr, &batch(2, &ids, 5000, 0)).unwrap();
                    assert_eq!(r.status, 200, "{}", r.body);
                    acked.lock().unwrap().extend(&ids);
                }
            })
        })
        .collect();
    // A store of some size first, so that the copy takes several steps.
    while acked.lock().unwrap().len() < 60_000 {
        std::thread::sleep(Duration::from_millis(50));
    }
    let before: Vec<u64> = acked.lock().unwrap().clone();
    let copy = dir.path().join("copy.sqlite");
    let out = Command::new(env!("CARGO_BIN_EXE_footfall-collector"))
        .arg("backup")
        .arg(&copy)
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let during = acked.lock().unwrap().len() - before.len();
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "backup failed: {log}");
    assert!(
        log.contains("backup: ") && log.contains(" MB ("),
        "progress shown: {log}"
    );
    assert!(during > 0, "the load went on while the backup ran");

    // Every event acknowledged before the backup began is in the copy.
    let in_copy: HashSet<String> = stored_event_ids(&copy).into_iter().collect();
    let missing = before
        .iter()
        .filter(|&&n| !in_copy.contains(&event_id(2, n)))
        .count();
    assert_eq!(
        missing,
        0,
        "of {} acknowledged before the backup",
        before.len()
    );
    assert!((0..3000).all(|n| in_copy.contains(&event_id(1, n))));

    // A collector on the copy answers about phase 1 as the original does.
    let restored = tempfile::tempdir().unwrap();
    std::fs::copy(&copy, restored.path().join("footfall.sqlite")).unwrap();
    let (second, addr2) = start_collector(restored.path(), &[]);
    let _second = Running(second);
    let now = chrono::Utc::now().timestamp_millis();
    let range = format!(
        "from={}&to={}",
        rfc3339(now - 4 * DAY_MS),
        rfc3339(now - 2 * DAY_MS)
    );
    let mut questions = vec![
        format!("/api/v1/insights?metric=users&interval=hour&{range}"),
        format!("/api/v1/insights?metric=sessions&by=path&{range}"),
        format!("/api/v1/insights?metric=events&by=name&{range}"),
        format!("/api/v1/insights?metric=users&event=buy&filter=user.plan:eq:pro&{range}"),
        format!("/api/v1/users?limit=1000&{range}"),
        format!("/api/v1/sessions/stats?{range}"),
        format!("/api/v1/sessions/stats?split=entry_path&{range}"),
    ];
    for person in (0..300).step_by(37) {
        questions.push(format!("/api/v1/users/anon-1-{person}"));
    }
    questions.push("/api/v1/users/user-1-5@example.com".into());
    let users = get(addr, &questions[4]);
    assert_eq!(users["users"].as_array().unwrap().len(), 300);
    for q in &questions {
        assert_eq!(get(addr2, q), get(addr, q), "{q}");
    }
}

#[test]
fn backup_refuses_to_overwrite_and_names_clickhouse_tools() {
    let dir = tempfile::tempdir().unwrap();
    let existing = dir.path().join("there.sqlite");
    std::fs::write(&existing, "keep me").unwrap();
    let _running = Running(start_collector(dir.path(), &[]).0);
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_footfall-collector"))
            .args(args)
            .output()
            .unwrap()
    };
    let dir_arg = dir.path().to_str().unwrap();
    let out = run(&["backup", existing.to_str().unwrap(), "--data-dir", dir_arg]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("exists already"));
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "keep me");
    let out = run(&[
        "backup",
        "/tmp/x.sqlite",
        "--data-dir",
        "/nonexistent-footfall",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no store at"));
    let out = run(&[
        "--clickhouse",
        "http://127.0.0.1:1/footfall",
        "backup",
        "/tmp/x.sqlite",
    ]);
    assert!(!out.status.success());
    let why = String::from_utf8_lossy(&out.stderr);
    assert!(why.contains("ClickHouse") && why.contains("spool"), "{why}");
}
