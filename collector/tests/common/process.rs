//! The real collector binary as a child process, for the tests that kill and restart it.
// Each test crate that includes this module uses a part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Starts the collector on a free loopback port with data in `dir`, no rate limit and admin
/// token `t`, plus `extra` arguments; answers once it printed its address.
pub fn start_collector(dir: &Path, extra: &[&str]) -> (Child, SocketAddr) {
    start_collector_with(dir, extra, &[])
}

/// [`start_collector`] with these environment variables.
pub fn start_collector_with(
    dir: &Path,
    extra: &[&str],
    envs: &[(&str, &str)],
) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_footfall-collector"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--rate-limit",
            "0",
            "--admin-token",
            "t",
        ])
        .arg("--data-dir")
        .arg(dir)
        .args(extra)
        .envs(envs.iter().copied())
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let addr = listening_address(&mut child);
    (child, addr)
}

/// Reads the collector's first line (`footfall listening on http://ADDR`) and its address.
pub fn listening_address(child: &mut Child) -> SocketAddr {
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout piped"))
        .read_line(&mut line)
        .unwrap();
    line.trim()
        .strip_prefix("footfall listening on http://")
        .unwrap_or_else(|| panic!("the collector did not start: {line:?}"))
        .parse()
        .unwrap()
}

/// Every event ID in the SQLite store `db`, as many times as stored.
pub fn stored_event_ids(db: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn.prepare("SELECT event_id FROM events").unwrap();
    let ids = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    ids
}
