//! Scale-out with the real binary: several collector processes (`--clickhouse URL`) in front of
//! one real ClickHouse. Their answers equal those of one SQLite collector given the same
//! batches; ClickHouse going down in the middle of a load loses nothing acknowledged (the spool
//! holds it and replays it); a collector killed with `kill -9` while its spool holds batches
//! replays them when it starts again; a batch ClickHouse keeps refusing while it answers is set
//! aside, and the batches behind it go on.

mod common {
    pub mod clickhouse;
    pub mod http;
    pub mod process;
    pub mod rng;
}

use common::clickhouse::ClickHouseServer;
use common::http::{post_batch, request};
use common::rng::Rng;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Child;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

struct Collector {
    child: Child,
    addr: SocketAddr,
}

impl Collector {
    fn start(dir: &Path, clickhouse: Option<&str>) -> Collector {
        let extra = clickhouse.map(|url| ["--clickhouse", url]);
        let (child, addr) =
            common::process::start_collector(dir, extra.as_ref().map_or(&[], |a| &a[..]));
        Collector { child, addr }
    }

    /// The status and JSON body of a GET.
    fn answer(&self, path: &str) -> (u16, Value) {
        let r = request(self.addr, "GET", path, &[("Authorization", "Bearer t")], "").unwrap();
        (r.status, serde_json::from_str(&r.body).unwrap())
    }

    fn get(&self, path: &str) -> Value {
        let (status, body) = self.answer(path);
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// A gauge of `/metrics`.
    fn metric(&self, name: &str) -> f64 {
        let r = request(self.addr, "GET", "/metrics", &[], "").unwrap();
        r.body
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /metrics"))
    }

    /// Waits until the spool is empty.
    fn drained(&self, within: Duration) {
        let deadline = Instant::now() + within;
        while self.metric("footfall_spool_batches") > 0.0 {
            assert!(Instant::now() < deadline, "the spool did not drain");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn time(ms: i64) -> String {
    footfall_collector::store::rfc3339(ms)
}

/// Batches of wire events from visitors over the last week (no `sent_at`, so the stored time
/// is the client's and every collector stores the same).
fn batches(now: i64) -> Vec<String> {
    let mut rng = Rng(0xface_b00c_1234_5678);
    let agents = [
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
        "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
    ];
    let mut events = Vec::new();
    let mut n = 0u64;
    for v in 0..45u64 {
        let anon = format!("anon-{v:03}");
        let user = (v % 3 == 0).then(|| format!("user{}@example.com", v / 6));
        let agent = agents[rng.next(3) as usize];
        let mut t = now - 7 * DAY + rng.next(6 * DAY as u64) as i64;
        let mut identified = false;
        for s in 0..1 + rng.next(3) {
            let session = format!("sess-{v:03}-{s}");
            for seq in 0..1 + rng.next(6) {
                n += 1;
                t += 1 + rng.next(120_000) as i64 + (n % 5) as i64;
                let (kind, name) = match (seq, rng.next(5)) {
                    (0, _) | (_, 0 | 1) => ("page", "$pageview".to_owned()),
                    (_, 2) if user.is_some() && !identified => ("identify", "$identify".into()),
                    (_, 2) => ("track", "$pageleave".into()),
                    (_, k) => ("track", format!("click_{k}")),
                };
                identified |= kind == "identify";
                let path = ["/", "/pricing", "/docs"][rng.next(3) as usize];
                let plan = ["free", "pro"][rng.next(2) as usize];
                let mut e = json!({
                    "event_id": format!("019ab0b4-0000-7000-8000-{n:012x}"),
                    "type": kind, "name": name, "timestamp": time(t),
                    "anonymous_id": anon,
                    "user_id": if identified { json!(user) } else { Value::Null },
                    "session_id": session, "seq": seq + 1,
                    "page": { "url": format!("https://shop.example{path}"), "path": path },
                    "props": { "plan": plan, "n": rng.next(100) },
                    "ua": agent,
                });
                if kind == "identify" {
                    e["traits"] = json!({ "plan": "pro", "seats": rng.next(20) });
                }
                events.push((agent, e));
            }
            t += 2 * HOUR + rng.next(DAY as u64) as i64;
        }
    }
    // Batches of one agent each (the user agent is the request's, not the event's).
    let mut out = Vec::new();
    for agent in agents {
        let mine: Vec<Value> = events
            .iter()
            .filter(|(a, _)| *a == agent)
            .map(|(_, e)| {
                let mut e = e.clone();
                e.as_object_mut().unwrap().remove("ua");
                e
            })
            .collect();
        for chunk in mine.chunks(5) {
            out.push((agent, json!({ "key": "demo", "events": chunk }).to_string()));
        }
    }
    out.into_iter()
        .map(|(agent, body)| format!("{agent}\n{body}"))
        .collect()
}

fn send(addr: SocketAddr, batch: &str) -> common::http::Response {
    let (agent, body) = batch.split_once('\n').unwrap();
    request(
        addr,
        "POST",
        "/v1/batch",
        &[("Content-Type", "text/plain"), ("User-Agent", agent)],
        body,
    )
    .unwrap()
}

#[test]
fn three_collectors_answer_as_one() {
    let server = ClickHouseServer::start();
    let url = server.url("multi");
    let dirs: Vec<tempfile::TempDir> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let many: Vec<Collector> = (0..3)
        .map(|i| Collector::start(dirs[i].path(), Some(&url)))
        .collect();
    let one = Collector::start(dirs[3].path(), None);
    let now = chrono::Utc::now().timestamp_millis();
    let batches = batches(now);
    assert!(batches.len() > 40);

    // The reference collector gets every batch once, in order.
    for b in &batches {
        let r = send(one.addr, b);
        assert_eq!(r.status, 200, "{}", r.body);
    }
    // Three clients spread the batches over the three collectors; every seventh batch is
    // also retried on another collector, as a client whose answer was lost would.
    let addrs: Vec<SocketAddr> = many.iter().map(|c| c.addr).collect();
    let batches = Arc::new(batches);
    let duplicates = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..3)
        .map(|c| {
            let (batches, addrs, duplicates) = (batches.clone(), addrs.clone(), duplicates.clone());
            std::thread::spawn(move || {
                for (i, b) in batches.iter().enumerate().filter(|(i, _)| i % 3 == c) {
                    let r = send(addrs[(i / 3) % 3], b);
                    assert_eq!(r.status, 200, "{}", r.body);
                    if i % 7 == 0 {
                        let r = send(addrs[(i / 3 + 1) % 3], b);
                        assert_eq!(r.status, 200, "{}", r.body);
                        let answer: Value = serde_json::from_str(&r.body).unwrap();
                        duplicates
                            .fetch_add(answer["duplicates"].as_u64().unwrap(), Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    assert!(
        duplicates.load(Ordering::Relaxed) > 0,
        "retries were found duplicate"
    );

    let from = time(now - 8 * DAY);
    let to = time(now);
    let mut paths = Vec::new();
    for metric in ["users", "sessions", "events"] {
        for extra in [
            "interval=day",
            "interval=hour&tz=Europe/Paris",
            "interval=week&tz=America/New_York",
            "by=browser",
            "by=event.plan&filter=user.plan:eq:pro",
            "split=os&filter=path:neq:/docs",
            "interval=day&event=click_3&event=$pageview",
        ] {
            paths.push(format!(
                "/api/v1/insights?metric={metric}&from={from}&to={to}&{extra}"
            ));
        }
    }
    paths.push(format!("/api/v1/users?from={from}&to={to}&limit=1000"));
    paths.push(format!("/api/v1/users?from={from}&to={to}&limit=5"));
    for split in ["", "&split=browser", "&split=entry_path", "&split=user"] {
        paths.push(format!("/api/v1/sessions/stats?from={from}&to={to}{split}"));
    }
    paths.push(format!("/api/v1/events?from={from}&to={to}"));
    paths.push(format!("/api/v1/properties?from={from}&to={to}"));
    for id in [
        "anon-001",
        "anon-003",
        "user0@example.com",
        "user3@example.com",
    ] {
        paths.push(format!("/api/v1/users/{id}"));
    }
    for id in ["sess-001-0", "sess-006-1"] {
        paths.push(format!("/api/v1/sessions/{id}"));
    }
    for path in &paths {
        let want = one.answer(path);
        for (i, c) in many.iter().enumerate() {
            assert_eq!(c.answer(path), want, "collector {i}: GET {path}");
        }
    }
    let total = one.get(&format!(
        "/api/v1/insights?metric=events&from={from}&to={to}"
    ));
    assert!(total["total"].as_u64().unwrap() > 150, "{total}");
}

fn event_id(n: u64) -> String {
    format!("019ab0b4-0000-7000-9000-{n:012x}")
}

fn load_batch(ids: &[u64]) -> String {
    let t = time(chrono::Utc::now().timestamp_millis() - 1000);
    let events: Vec<Value> = ids
        .iter()
        .map(|&n| {
            json!({
                "event_id": event_id(n), "type": "track", "name": "load", "timestamp": t,
                "anonymous_id": format!("anon-{}", n % 50), "session_id": format!("s-{}", n % 50),
                "seq": n, "page": { "url": "http://localhost/", "path": "/" }, "props": { "n": n },
            })
        })
        .collect();
    json!({ "key": "demo", "events": events }).to_string()
}

/// The event IDs in ClickHouse, and how many rows (copies not merged away included) there
/// are after a forced merge into one part. (`OPTIMIZE` does nothing, without an error, while
/// a background merge holds some of the parts: it is asked again until one part is left.)
fn stored(server: &ClickHouseServer, db: &str) -> (HashSet<String>, usize) {
    let parts = || {
        server
            .query(&format!(
                "SELECT count() FROM system.parts
                 WHERE database = '{db}' AND table = 'events' AND active"
            ))
            .trim()
            .parse::<u64>()
            .unwrap()
    };
    for _ in 0..100 {
        server.query(&format!("OPTIMIZE TABLE {db}.events FINAL"));
        if parts() <= 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(parts() <= 1, "events merged into one part");
    let ids: HashSet<String> = server
        .query(&format!("SELECT event_id FROM {db}.events"))
        .lines()
        .map(str::to_owned)
        .collect();
    let rows: usize = server
        .query(&format!("SELECT count() FROM {db}.events"))
        .trim()
        .parse()
        .unwrap();
    (ids, rows)
}

#[test]
fn clickhouse_down_in_the_middle_of_a_load_loses_nothing() {
    let mut server = ClickHouseServer::start();
    let url = server.url("fault");
    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let collectors: Vec<Collector> = dirs
        .iter()
        .map(|d| Collector::start(d.path(), Some(&url)))
        .collect();
    let acked = Arc::new(Mutex::new(Vec::<u64>::new()));
    let next = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let addr = collectors[c % 2].addr;
            let (acked, next, stop) = (acked.clone(), next.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let first = next.fetch_add(25, Ordering::Relaxed);
                    let ids: Vec<u64> = (first..first + 25).collect();
                    let r = post_batch(addr, &load_batch(&ids)).unwrap();
                    assert_eq!(r.status, 200, "{}", r.body);
                    acked.lock().unwrap().extend(&ids);
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(800));
    server.kill();
    let at_kill = acked.lock().unwrap().len();
    std::thread::sleep(Duration::from_millis(2500));
    let spooled: f64 = collectors
        .iter()
        .map(|c| c.metric("footfall_spool_batches"))
        .sum();
    assert!(
        spooled > 0.0,
        "batches were spooled while ClickHouse was down"
    );
    assert!(
        acked.lock().unwrap().len() > at_kill,
        "batches were acknowledged while ClickHouse was down"
    );
    let t = Instant::now();
    server.restart();
    eprintln!("clickhouse restarted in {} ms", t.elapsed().as_millis());
    std::thread::sleep(Duration::from_millis(800));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let t = Instant::now();
    for c in &collectors {
        c.drained(Duration::from_secs(60));
    }
    eprintln!("spools drained in {} ms", t.elapsed().as_millis());
    let acked: Vec<u64> = acked.lock().unwrap().clone();
    let (ids, rows) = stored(&server, "fault");
    let missing = acked
        .iter()
        .filter(|&&n| !ids.contains(&event_id(n)))
        .count();
    assert_eq!(missing, 0, "acknowledged events lost of {}", acked.len());
    assert_eq!(rows, acked.len(), "every acknowledged event stored once");
    // And the API counts each once.
    // The load goes without a user agent (a bot's, left out by default): count it all.
    let total =
        collectors[0].get("/api/v1/insights?metric=events&last=1d&bots=include")["total"].clone();
    assert_eq!(total, json!(acked.len()));
}

#[test]
fn a_collector_killed_with_a_full_spool_replays_it_on_restart() {
    let mut server = ClickHouseServer::start();
    let url = server.url("replay");
    let dir = tempfile::tempdir().unwrap();
    // Create the schema, then take ClickHouse away.
    let mut collector = Collector::start(dir.path(), Some(&url));
    let r = post_batch(collector.addr, &load_batch(&[0])).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    server.kill();
    let mut acked = vec![0u64];
    for b in 0..40u64 {
        let ids: Vec<u64> = (1 + b * 10..1 + (b + 1) * 10).collect();
        let r = post_batch(collector.addr, &load_batch(&ids)).unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        acked.extend(ids);
    }
    assert_eq!(collector.metric("footfall_spool_batches"), 40.0);
    collector.child.kill().unwrap(); // SIGKILL
    collector.child.wait().unwrap();
    // A write cut short by the kill leaves a torn record at the end: never acknowledged, and
    // dropped on restart.
    let mut segments: Vec<_> = std::fs::read_dir(dir.path().join("spool"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    segments.sort();
    let last = segments.last().expect("a spool segment");
    let mut f = std::fs::OpenOptions::new().append(true).open(last).unwrap();
    std::io::Write::write_all(&mut f, &[200, 1, 0, 0, 7, 7, 7]).unwrap();
    drop(f);

    server.restart();
    let collector = Collector::start(dir.path(), Some(&url));
    collector.drained(Duration::from_secs(60));
    let (ids, rows) = stored(&server, "replay");
    let missing = acked
        .iter()
        .filter(|&&n| !ids.contains(&event_id(n)))
        .count();
    assert_eq!(missing, 0, "spooled events lost");
    assert_eq!(rows, acked.len(), "every spooled event stored once");
}

#[test]
fn a_batch_clickhouse_keeps_refusing_is_set_aside_and_the_rest_goes_on() {
    let server = ClickHouseServer::start();
    let url = server.url("quarantine");
    let dir = tempfile::tempdir().unwrap();
    let (child, addr) = common::process::start_collector_with(
        dir.path(),
        &["--clickhouse", &url],
        &[("FOOTFALL_SPOOL_REFUSED_FOR_MS", "300")],
    );
    let collector = Collector { child, addr };
    let r = post_batch(addr, &load_batch(&[0])).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    // ClickHouse now answers every write with an error (its table is away).
    server.query("RENAME TABLE quarantine.events TO quarantine.events_away");
    for b in 0..2u64 {
        let r = post_batch(addr, &load_batch(&[1 + b * 2, 2 + b * 2])).unwrap();
        assert_eq!(r.status, 200, "spooled: {}", r.body);
    }
    // Each refused batch is tried 5 times, a second apart, then set aside.
    collector.drained(Duration::from_secs(90));
    let refused = dir.path().join("spool/refused");
    let mut kept: Vec<String> = std::fs::read_dir(&refused)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    kept.sort();
    assert_eq!(kept.len(), 2, "one file per refused batch");
    for (b, text) in kept.iter().enumerate() {
        let ids: Vec<String> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["event_id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(
            ids,
            [event_id(1 + b as u64 * 2), event_id(2 + b as u64 * 2)]
        );
    }
    // With the table back, batches are stored again.
    server.query("RENAME TABLE quarantine.events_away TO quarantine.events");
    let r = post_batch(addr, &load_batch(&[9])).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let (ids, _) = stored(&server, "quarantine");
    assert!(ids.contains(&event_id(9)) && ids.contains(&event_id(0)));
    assert!(!ids.contains(&event_id(1)));
}
