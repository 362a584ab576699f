//! The disk fills up under the collector: with its data dir on a small tmpfs that the test
//! fills, batches get `503` with `Retry-After` (the SDK retries those), the collector stays up
//! and answers queries, nothing it acknowledged is lost, and once there is room again it takes
//! batches as before.
//!
//! The tmpfs lives in a mount namespace of the collector's own (`unshare --mount`, as root; a
//! user namespace as well otherwise), so nothing is left mounted if the test dies; the test
//! reaches it through `/proc/PID/root`.

mod common {
    pub mod http;
    pub mod process;
}

use common::http::{post_as_person, request};
use common::process::listening_address;
use serde_json::Value;
use std::io::Write;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn event_id(n: u64) -> String {
    format!("019ab0b4-0000-7000-8000-{n:012x}")
}

/// 100 events with ids `first..first + 100`, each with a property that makes it about 1 KB.
fn batch(first: u64) -> String {
    let now = chrono::Utc::now().to_rfc3339();
    let pad = "x".repeat(800);
    let events: Vec<String> = (first..first + 100)
        .map(|n| {
            format!(
                r#"{{"event_id":"{}","type":"track","name":"fill","timestamp":"{now}","anonymous_id":"anon-{}","session_id":"s-{}","seq":{n},"page":{{"url":"http://localhost/","path":"/"}},"props":{{"pad":"{pad}"}}}}"#,
                event_id(n),
                n % 97,
                n % 97
            )
        })
        .collect();
    format!(
        r#"{{"key":"demo","sent_at":"{now}","events":[{}]}}"#,
        events.join(",")
    )
}

/// Kills the collector (and so its mount namespace) when the test ends, failed or not.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The collector with its data dir on a tmpfs of `size` in a mount namespace of its own.
fn start_on_tmpfs(dir: &str, size: &str) -> (Child, SocketAddr) {
    let mut cmd = Command::new("unshare");
    // Root needs no user namespace.
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    if !root {
        cmd.args(["--user", "--map-root-user"]);
    }
    let mut child = cmd
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(format!(
            "mount -t tmpfs -o size={size} tmpfs \"$0\" && exec \"$1\" --listen 127.0.0.1:0 \
             --rate-limit 0 --admin-token t --data-dir \"$0\""
        ))
        .arg(dir)
        .arg(env!("CARGO_BIN_EXE_footfall-collector"))
        .env("RUST_LOG", "off")
        .stdout(Stdio::piped())
        .spawn()
        .expect("unshare (util-linux)");
    let addr = listening_address(&mut child);
    (child, addr)
}

fn total_events(addr: SocketAddr) -> u64 {
    let r = request(
        addr,
        "GET",
        "/api/v1/insights?metric=events&last=1d&interval=day",
        &[("Authorization", "Bearer t")],
        "",
    )
    .unwrap();
    assert_eq!(r.status, 200, "queries still answered: {}", r.body);
    let v: Value = serde_json::from_str(&r.body).unwrap();
    v["total"].as_u64().unwrap()
}

#[test]
fn a_full_disk_is_a_503_to_retry_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (child, addr) = start_on_tmpfs(dir.path().to_str().unwrap(), "24m");
    let seen = format!("/proc/{}/root{}", child.id(), dir.path().display());
    let _running = Running(child);
    let mut next = 0u64;
    let mut acked = 0u64;
    for _ in 0..20 {
        let r = post_as_person(addr, &batch(next)).unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        next += 100;
        acked += 100;
    }

    // Fill what is left of the filesystem.
    let filler = format!("{seen}/filler");
    let mut f = std::fs::File::create(&filler).expect("the tmpfs through /proc/PID/root");
    let chunk = vec![7u8; 1 << 20];
    while f.write_all(&chunk).is_ok() {}
    let _ = f.sync_all();
    drop(f);

    // SQLite may still fit a few commits in the WAL it has; then it is full.
    let mut refused = None;
    for _ in 0..2000 {
        let r = post_as_person(addr, &batch(next)).unwrap();
        if r.status == 200 {
            acked += 100;
            next += 100;
            continue;
        }
        refused = Some(r);
        break;
    }
    let refused = refused.expect("a batch refused once the disk is full");
    assert_eq!(refused.status, 503, "{}", refused.body);
    let err: Value = serde_json::from_str(&refused.body).unwrap();
    assert_eq!(err["error"]["code"], "unavailable", "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("disk is full"),
        "{err}"
    );
    assert!(
        refused.head.contains("\r\nretry-after: 30"),
        "{}",
        refused.head
    );
    let again = post_as_person(addr, &batch(next)).unwrap();
    assert_eq!(again.status, 503, "still full: {}", again.body);
    let head = request(addr, "GET", "/healthz", &[], "").unwrap();
    assert_eq!(head.status, 200, "the collector stays up");
    assert_eq!(
        total_events(addr),
        acked,
        "every acknowledged event answered"
    );

    // Room again: the refused batch, sent again as the SDK would, is taken.
    std::fs::remove_file(&filler).unwrap();
    let mut taken = false;
    for _ in 0..100 {
        let r = post_as_person(addr, &batch(next)).unwrap();
        if r.status == 200 {
            let v: Value = serde_json::from_str(&r.body).unwrap();
            assert_eq!(v["accepted"], 100, "{v}");
            taken = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(taken, "batches are taken again once there is room");
    acked += 100;
    next += 100;
    for _ in 0..5 {
        let r = post_as_person(addr, &batch(next)).unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        acked += 100;
        next += 100;
    }
    assert_eq!(total_events(addr), acked);
}
