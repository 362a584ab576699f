//! Ingest load benchmark: the release collector on loopback, many concurrent clients sending
//! realistic batches (20–50 events, about 400 bytes each) over keep-alive connections, every
//! answer a durable acknowledgement, each batch with a browser's user agent (2,000 distinct).
//! Bounded in time and count; stops by itself.
//!
//! `cargo bench -p footfall-collector --bench ingest_load` (options through env:
//! `LOAD_SECONDS` (default 10), `LOAD_CLIENTS` (default 32), `LOAD_MAX_EVENTS` (default
//! 5,000,000), `LOAD_DURABILITY` (`process` or `power`), `LOAD_STORE` (`sqlite`, the default,
//! or `clickhouse`: a ClickHouse server started for the run, as the tests start it),
//! `LOAD_COLLECTORS` (default 1: with ClickHouse, that many collector processes share it, the
//! clients spread over them in turn), `LOAD_COLLECTOR` (the collector binary to run; default:
//! this build's)).

#[path = "../tests/common/clickhouse.rs"]
mod clickhouse;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One keep-alive connection: POSTs a body, reads the status and the answer.
struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    fn open(addr: SocketAddr) -> Conn {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_nodelay(true).unwrap();
        Conn {
            reader: BufReader::new(s),
        }
    }

    fn post(&mut self, body: &str, user_agent: &str) -> u16 {
        let head = format!(
            "POST /v1/batch HTTP/1.1\r\nHost: bench\r\nContent-Type: text/plain\r\nUser-Agent: {user_agent}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let s = self.reader.get_mut();
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body.as_bytes()).unwrap();
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let mut length = 0usize;
        loop {
            line.clear();
            self.reader.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).unwrap();
        status
    }
}

fn batch(client: u64, seq: &mut u64, n: usize, now: &str) -> String {
    let mut events = Vec::with_capacity(n);
    for _ in 0..n {
        *seq += 1;
        events.push(format!(
            r#"{{"event_id":"019ab0b4-{client:04x}-7000-8000-{seq:012x}","type":"track","name":"add_to_cart","timestamp":"{now}","anonymous_id":"3f0c2a1e-5b6d-4c7e-8f90-{client:012x}","user_id":null,"session_id":"019ab0b4-8a20-7000-8000-{client:012x}","seq":{seq},"page":{{"url":"https://shop.example/p/boots?utm_source=news","path":"/p/boots","title":"Walking boots","referrer":"https://www.google.com/"}},"context":{{"screen":"1920x1080","viewport":"1280x720","language":"en-GB","timezone":"Europe/London","sdk":"footfall-web/0.1.0"}},"props":{{"product":"boots","price":89}}}}"#
        ));
    }
    format!(
        r#"{{"key":"demo","sent_at":"{now}","events":[{}]}}"#,
        events.join(",")
    )
}

fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// A browser's user agent: four kinds, 500 versions each (2,000 distinct, as a site sees many).
fn user_agent(rng: u64) -> String {
    let (major, build) = (100 + (rng >> 8) % 50, (rng >> 16) % 10);
    match rng % 4 {
        0 => format!("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{major}.0.{build}.0 Safari/537.36"),
        1 => format!("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{major}.0.{build}.0 Mobile Safari/537.36"),
        2 => format!("Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:{major}.{build}) Gecko/20100101 Firefox/{major}.{build}"),
        _ => format!("Mozilla/5.0 (iPhone; CPU iPhone OS 18_{build} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/{major}.{build} Mobile/15E148 Safari/604.1"),
    }
}

fn main() {
    let seconds: u64 = env_or("LOAD_SECONDS", 10);
    let clients: u64 = env_or("LOAD_CLIENTS", 32);
    let max_events: u64 = env_or("LOAD_MAX_EVENTS", 5_000_000);
    let durability: String = env_or("LOAD_DURABILITY", "process".to_owned());
    let store: String = env_or("LOAD_STORE", "sqlite".to_owned());
    let collectors: usize = env_or("LOAD_COLLECTORS", 1);
    assert!(
        collectors == 1 || store == "clickhouse",
        "LOAD_COLLECTORS above 1 needs LOAD_STORE=clickhouse (SQLite is one collector's file)"
    );
    let server = (store == "clickhouse").then(clickhouse::ClickHouseServer::start);
    let dirs: Vec<tempfile::TempDir> = (0..collectors)
        .map(|_| tempfile::tempdir().unwrap())
        .collect();
    // `LOAD_COLLECTOR`: another build of the collector, to compare two versions in turns.
    let collector = std::env::var("LOAD_COLLECTOR")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_footfall-collector").to_owned());
    let mut children = Vec::new();
    let mut addrs = Vec::new();
    for dir in &dirs {
        let mut command = Command::new(&collector);
        if let Some(server) = &server {
            command.args(["--clickhouse", &server.url("bench")]);
        }
        let mut child = command
            .args([
                "--listen",
                "127.0.0.1:0",
                "--rate-limit",
                "0",
                "--admin-token",
                "bench",
            ])
            .args(["--durability", &durability])
            .arg("--data-dir")
            .arg(dir.path())
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the collector");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr: SocketAddr = line
            .trim()
            .strip_prefix("footfall listening on http://")
            .expect("the collector's URL")
            .parse()
            .unwrap();
        children.push(child);
        addrs.push(addr);
    }
    println!(
        "ingest load: {clients} clients, {seconds} s, store {store}, durability {durability}, collectors at {addrs:?}"
    );

    let stop = Arc::new(AtomicBool::new(false));
    let events_done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|c| {
            let (stop, events_done) = (stop.clone(), events_done.clone());
            let addr = addrs[c as usize % addrs.len()];
            std::thread::spawn(move || {
                let mut conn = Conn::open(addr);
                let mut seq = 0u64;
                let mut latencies = Vec::new();
                let mut failures = 0u64;
                let mut rng = c.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
                while !stop.load(Ordering::Relaxed) {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let n = 20 + (rng % 31) as usize;
                    let now = chrono::Utc::now().to_rfc3339();
                    let body = batch(c, &mut seq, n, &now);
                    let t = Instant::now();
                    let status = conn.post(&body, &user_agent(rng));
                    latencies.push(t.elapsed());
                    if status == 200 {
                        if events_done.fetch_add(n as u64, Ordering::Relaxed) + n as u64
                            >= max_events
                        {
                            stop.store(true, Ordering::Relaxed);
                        }
                    } else {
                        failures += 1;
                    }
                }
                (latencies, failures)
            })
        })
        .collect();
    let mut progress = 0;
    while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_millis(200));
        let s = started.elapsed().as_secs();
        if s > progress {
            progress = s;
            println!(
                "  {s:>3} s: {} events acknowledged",
                events_done.load(Ordering::Relaxed)
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    let mut failures = 0;
    for w in workers {
        let (l, f) = w.join().unwrap();
        latencies.extend(l);
        failures += f;
    }
    let elapsed = started.elapsed().as_secs_f64();
    // The machine's load while the bench ran (other work on it slows it down).
    println!(
        "load average at the end: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    // The largest collector's peak: each is a process of its own.
    let rss = children
        .iter()
        .map(|c| peak_rss_kib(c.id()))
        .max()
        .unwrap_or(0);
    for mut child in children {
        child.kill().ok();
        child.wait().ok();
    }
    let events = events_done.load(Ordering::Relaxed);
    if let Some(server) = &server {
        let stored = server.query("SELECT uniqExact(event_id), count() FROM bench.events");
        println!(
            "events in ClickHouse (distinct, rows): {}",
            stored.trim().replace('\t', ", ")
        );
        // Every acknowledged event stored, none twice (a batch still unanswered when the
        // load stopped may be stored too).
        let counts: Vec<u64> = stored
            .split_whitespace()
            .filter_map(|n| n.parse().ok())
            .collect();
        assert!(
            counts.len() == 2 && counts[0] == counts[1] && counts[0] >= events,
            "stored {counts:?} for {events} acknowledged events"
        );
    }
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!();
    println!(
        "| collectors | clients | batches | events | events/s | events/s per collector | p50 ms | p99 ms | peak RSS MB | failures |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    println!(
        "| {collectors} | {clients} | {} | {events} | {:.0} | {:.0} | {:.2} | {:.2} | {:.1} | {failures} |",
        latencies.len(),
        events as f64 / elapsed,
        events as f64 / elapsed / collectors as f64,
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        rss as f64 / 1024.0,
    );
}
