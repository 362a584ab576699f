//! Acknowledged means durable: a load of batches against the real collector process, killed
//! with SIGKILL at random moments and restarted on the same data dir. Every event that was
//! acknowledged must be in the store, none twice; clients that got no answer send again, and
//! dedup makes that harmless.

mod common {
    pub mod http;
    pub mod process;
}

use common::http::post_batch;
use common::process::{start_collector, stored_event_ids};
use std::collections::HashSet;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn event_id(n: u64) -> String {
    format!("019ab0b4-0000-7000-8000-{n:012x}")
}

fn batch(ids: &[u64]) -> String {
    let now = chrono::Utc::now().to_rfc3339();
    let events: Vec<String> = ids
        .iter()
        .map(|&n| {
            format!(
                r#"{{"event_id":"{}","type":"track","name":"load","timestamp":"{now}","anonymous_id":"anon-{}","user_id":null,"session_id":"s-{}","seq":{},"page":{{"url":"http://localhost/","path":"/"}},"props":{{"n":{n}}}}}"#,
                event_id(n),
                n % 50,
                n % 50,
                n
            )
        })
        .collect();
    format!(
        r#"{{"key":"demo","sent_at":"{now}","events":[{}]}}"#,
        events.join(",")
    )
}

#[test]
fn sigterm_drains_and_commits_before_exit() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = start_collector(dir.path(), &[]);
    let acked = Arc::new(Mutex::new(Vec::<u64>::new()));
    let next = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (acked, next) = (acked.clone(), next.clone());
            std::thread::spawn(move || loop {
                let first = next.fetch_add(20, Ordering::Relaxed);
                let ids: Vec<u64> = (first..first + 20).collect();
                match post_batch(addr, &batch(&ids)) {
                    Ok(r) if r.status == 200 => acked.lock().unwrap().extend(&ids),
                    _ => break,
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(400));
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "a clean exit on SIGTERM: {exit}");
    for c in clients {
        c.join().unwrap();
    }
    let acked = acked.lock().unwrap();
    assert!(acked.len() > 100);
    let stored = stored_ids(dir.path());
    let missing = acked
        .iter()
        .filter(|&&n| !stored.contains(&event_id(n)))
        .count();
    assert_eq!(missing, 0, "acknowledged events lost at shutdown");
}

fn stored_ids(dir: &Path) -> HashSet<String> {
    stored_event_ids(&dir.join("footfall.sqlite"))
        .into_iter()
        .collect()
}

#[test]
fn acknowledged_events_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let acked = Arc::new(Mutex::new(Vec::<u64>::new()));
    let unacked = Arc::new(Mutex::new(Vec::<Vec<u64>>::new()));
    let next = Arc::new(AtomicU64::new(0));
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut random = move |max: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % max
    };
    for round in 0..5 {
        let (mut child, addr) = start_collector(dir.path(), &[]);
        let stop = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = (0..4)
            .map(|_| {
                let (acked, unacked, next, stop) =
                    (acked.clone(), unacked.clone(), next.clone(), stop.clone());
                std::thread::spawn(move || {
                    // First, what earlier rounds sent without an answer.
                    let mut retry = unacked.lock().unwrap().pop();
                    while !stop.load(Ordering::Relaxed) {
                        let ids = retry.take().unwrap_or_else(|| {
                            let first = next.fetch_add(20, Ordering::Relaxed);
                            (first..first + 20).collect()
                        });
                        match post_batch(addr, &batch(&ids)) {
                            Ok(r) if r.status == 200 => acked.lock().unwrap().extend(&ids),
                            _ => {
                                unacked.lock().unwrap().push(ids);
                                break;
                            }
                        }
                        retry = unacked.lock().unwrap().pop();
                    }
                    // A batch taken to send again when the round stopped goes back, to be
                    // sent once more below (its earlier send may have been stored).
                    if let Some(ids) = retry {
                        unacked.lock().unwrap().push(ids);
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(150 + random(500)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        stop.store(true, Ordering::Relaxed);
        for c in clients {
            c.join().unwrap();
        }
        eprintln!(
            "round {round}: {} events acknowledged so far, {} batches unanswered",
            acked.lock().unwrap().len(),
            unacked.lock().unwrap().len()
        );
    }
    // Everyone who got no answer sends once more to a collector that stays up.
    let (mut child, addr) = start_collector(dir.path(), &[]);
    for ids in unacked.lock().unwrap().drain(..) {
        let r = post_batch(addr, &batch(&ids)).unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        acked.lock().unwrap().extend(&ids);
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let acked = acked.lock().unwrap();
    assert!(
        acked.len() > 1000,
        "the load was real: {} events",
        acked.len()
    );
    let stored = stored_event_ids(&dir.path().join("footfall.sqlite"));
    let stored_set: HashSet<&String> = stored.iter().collect();
    assert_eq!(stored_set.len(), stored.len(), "an event stored twice");
    let missing: Vec<u64> = acked
        .iter()
        .copied()
        .filter(|&n| !stored_set.contains(&event_id(n)))
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged events lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    let acked_set: HashSet<u64> = acked.iter().copied().collect();
    assert_eq!(
        acked_set.len(),
        stored.len(),
        "every event sent is stored exactly once"
    );
}
