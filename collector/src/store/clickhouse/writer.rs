//! The writer thread: groups waiting batches into one INSERT block, spools what ClickHouse
//! cannot take, and replays the spool in order once it can.

use super::http::{list, Client};
use super::spool::{Spool, SpoolError};
use super::{create_schema, ChError, InsertOutcome, Row, StoreError};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Largest number of events sent in one INSERT.
const MAX_GROUP_EVENTS: usize = 50_000;
/// How often a spool waiting for ClickHouse tries again.
const RETRY: Duration = Duration::from_secs(1);
/// Refusals of one spooled batch (ClickHouse answering, with an error) before it is set aside,
/// if they also span [`REFUSED_FOR`] (so an overloaded server that refuses everything for a
/// while, e.g. with too many parts, sets nothing aside).
const MAX_REFUSALS: u32 = 5;
const REFUSED_FOR: Duration = Duration::from_secs(600);
/// Longest the writer replays before it looks at new batches again.
const REPLAY_SLICE: Duration = Duration::from_millis(500);
/// How long the writer trusts its memory of the aliases it wrote: another collector's erase
/// may have deleted them since.
const ALIASES_FOR: Duration = Duration::from_secs(60);

pub struct Job {
    pub rows: Vec<Row>,
    pub reply: oneshot::Sender<InsertOutcome>,
}

pub struct Writer {
    client: Arc<Client>,
    spool: Spool,
    pending: Arc<AtomicUsize>,
    schema_ready: bool,
    /// (anonymous ID, user ID) pairs already written to `aliases` by this writer, since when,
    /// and the count of this collector's erases then.
    aliases_written: HashSet<(String, String)>,
    aliases_since: Instant,
    erasures_seen: u64,
    erasures: Arc<AtomicU64>,
    last_attempt: Option<Instant>,
    /// Consecutive times ClickHouse refused the first spooled batch, since when.
    refusals: u32,
    /// Records still to replay one at a time, after ClickHouse refused a group of them.
    one_by_one: usize,
    first_refusal: Option<Instant>,
    /// How long a batch must be refused before it is set aside ([`REFUSED_FOR`]; tests set
    /// `FOOTFALL_SPOOL_REFUSED_FOR_MS`).
    refused_for: Duration,
    /// When the current outage began spooling, and what it spooled since.
    spooling: Option<(Instant, u64, u64)>,
}

impl Writer {
    pub fn new(
        client: Arc<Client>,
        spool: Spool,
        pending: Arc<AtomicUsize>,
        erasures: Arc<AtomicU64>,
        schema_ready: bool,
    ) -> Writer {
        let w = Writer {
            client,
            pending,
            schema_ready,
            aliases_written: HashSet::new(),
            aliases_since: Instant::now(),
            erasures_seen: 0,
            erasures,
            last_attempt: None,
            refusals: 0,
            one_by_one: 0,
            first_refusal: None,
            refused_for: std::env::var("FOOTFALL_SPOOL_REFUSED_FOR_MS")
                .ok()
                .and_then(|v| v.parse().ok())
                .map_or(REFUSED_FOR, Duration::from_millis),
            spooling: (!spool.is_empty()).then(|| (Instant::now(), 0, 0)),
            spool,
        };
        if !w.spool.is_empty() {
            log::warn!(
                "spool: {} batches ({} bytes) left from an earlier run; replaying once ClickHouse answers",
                w.spool.batches(),
                w.spool.bytes()
            );
        }
        w
    }

    pub fn run(mut self, rx: mpsc::Receiver<Job>) {
        loop {
            let first = if self.spool.is_empty() {
                match rx.recv() {
                    Ok(job) => Some(job),
                    Err(_) => return,
                }
            } else {
                let wait = self
                    .last_attempt
                    .map_or(Duration::ZERO, |t| RETRY.saturating_sub(t.elapsed()));
                match rx.recv_timeout(wait) {
                    Ok(job) => Some(job),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                }
            };
            if let Some(first) = first {
                let mut jobs = vec![first];
                let mut n = jobs[0].rows.len();
                while n < MAX_GROUP_EVENTS {
                    match rx.try_recv() {
                        Ok(job) => {
                            n += job.rows.len();
                            jobs.push(job);
                        }
                        Err(_) => break,
                    }
                }
                self.write(jobs, n);
            }
            if !self.spool.is_empty() && self.last_attempt.is_none_or(|t| t.elapsed() >= RETRY) {
                self.replay();
            }
        }
    }

    /// Stores a group: into ClickHouse when nothing waits in the spool and it answers, else
    /// into the spool. Each job is answered once its rows are durable.
    fn write(&mut self, jobs: Vec<Job>, n: usize) {
        let mut jobs = jobs;
        if self.spool.is_empty() {
            let rows: Vec<&Row> = jobs.iter().flat_map(|j| &j.rows).collect();
            match self.store(&rows, false) {
                Ok(stored) => {
                    self.pending.fetch_sub(n, Ordering::Relaxed);
                    let mut stored = stored.into_iter();
                    for job in jobs {
                        let outcome = stored.by_ref().take(job.rows.len()).collect();
                        let _ = job.reply.send(Ok(outcome));
                    }
                    return;
                }
                Err(e) => {
                    log::warn!(
                        "clickhouse cannot take {n} events ({e}); spooling to disk until it is back"
                    );
                    self.spooling = Some((Instant::now(), 0, 0));
                    self.last_attempt = Some(Instant::now());
                }
            }
        }
        // Into the spool, one record per job so a full spool refuses only what does not fit.
        for job in jobs.drain(..) {
            let len = job.rows.len();
            let outcome = self.spool_rows(&job.rows).map(|()| vec![true; len]);
            self.pending.fetch_sub(len, Ordering::Relaxed);
            let _ = job.reply.send(outcome);
        }
    }

    fn spool_rows(&mut self, rows: &[Row]) -> Result<(), StoreError> {
        let mut payload = Vec::new();
        for r in rows {
            serde_json::to_writer(&mut payload, r).expect("rows serialize");
            payload.push(b'\n');
        }
        match self.spool.append(&payload) {
            Ok(()) => {
                if let Some((_, batches, events)) = &mut self.spooling {
                    *batches += 1;
                    *events += rows.len() as u64;
                }
                Ok(())
            }
            Err(SpoolError::Full(max)) => {
                log::error!(
                    "spool full ({max} bytes): refusing a batch with 503 until ClickHouse is back"
                );
                Err(StoreError::SpoolFull)
            }
            Err(SpoolError::Io(e)) => Err(StoreError::from_io("spool", e)),
        }
    }

    /// Replays spool records in order while ClickHouse takes them, for one slice of time;
    /// many records go in one INSERT, as live batches do.
    fn replay(&mut self) {
        let began = Instant::now();
        while began.elapsed() < REPLAY_SLICE {
            // After ClickHouse refused a group, records go one at a time to find the one it
            // refuses.
            let max = if self.one_by_one > 0 { 1 } else { 5_000 };
            let records = match self.spool.peek_many(max, 32 << 20) {
                Ok(r) if r.is_empty() => break,
                Ok(r) => r,
                Err(e) => {
                    log::error!("spool: cannot read: {e}");
                    self.last_attempt = Some(Instant::now());
                    return;
                }
            };
            let rows: Vec<Row> = records
                .iter()
                .flat_map(|r| r.split(|&b| b == b'\n'))
                .filter(|l| !l.is_empty())
                .filter_map(|l| serde_json::from_slice(l).ok())
                .collect();
            let refs: Vec<&Row> = rows.iter().collect();
            match self.store(&refs, true) {
                Ok(_) => {
                    self.refusals = 0;
                    self.first_refusal = None;
                    self.one_by_one = self.one_by_one.saturating_sub(records.len());
                }
                Err(ChError::Server { status, message }) if records.len() == 1 => {
                    self.refusals += 1;
                    let since = *self.first_refusal.get_or_insert_with(Instant::now);
                    if self.refusals < MAX_REFUSALS || since.elapsed() < self.refused_for {
                        log::warn!(
                            "spool replay: clickhouse refused a batch ({status}): {message}"
                        );
                        self.last_attempt = Some(Instant::now());
                        return;
                    }
                    // A batch ClickHouse refuses every time while it answers: set it aside
                    // rather than hold every later batch behind it.
                    match self.set_aside(&records[0]) {
                        Ok(path) => log::error!(
                            "spool replay: clickhouse refused a batch for {} s ({status}: {message}); kept in {} and skipped",
                            since.elapsed().as_secs(),
                            path.display()
                        ),
                        Err(e) => {
                            log::error!("spool: cannot set a refused batch aside: {e}");
                            self.last_attempt = Some(Instant::now());
                            return;
                        }
                    }
                    self.refusals = 0;
                    self.first_refusal = None;
                    self.one_by_one = self.one_by_one.saturating_sub(1);
                }
                Err(e @ ChError::Server { .. }) => {
                    log::warn!("spool replay: clickhouse refused a group; retrying one batch at a time: {e}");
                    self.one_by_one = records.len();
                    self.last_attempt = Some(Instant::now());
                    return;
                }
                Err(e) => {
                    log::debug!("spool replay waits for clickhouse: {e}");
                    self.last_attempt = Some(Instant::now());
                    return;
                }
            }
            for _ in &records {
                if let Err(e) = self.spool.pop() {
                    log::error!("spool: cannot advance: {e}");
                    self.last_attempt = Some(Instant::now());
                    return;
                }
            }
        }
        if self.spool.is_empty() {
            let (since, batches, events) = self.spooling.take().unwrap_or((began, 0, 0));
            log::info!(
                "spool replayed: clickhouse has every spooled batch ({batches} batches, {events} events spooled during the last {} s)",
                since.elapsed().as_secs()
            );
            self.last_attempt = None;
        }
    }

    /// Writes a spool record ClickHouse keeps refusing to `spool/refused/`, as JSON lines.
    fn set_aside(&self, record: &[u8]) -> std::io::Result<std::path::PathBuf> {
        let dir = self.spool.dir().join("refused");
        std::fs::create_dir_all(&dir)?;
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let path = dir.join(format!("{stamp}.jsonl"));
        let mut f = std::fs::File::create(&path)?;
        std::io::Write::write_all(&mut f, record)?;
        f.sync_all()?;
        Ok(path)
    }

    /// Stores rows not stored yet, and the aliases they imply; for each row, whether it was
    /// new. Replayed rows (`replayed`) of a person erased after they arrived are dropped.
    fn store(&mut self, rows: &[&Row], replayed: bool) -> Result<Vec<bool>, ChError> {
        if !self.schema_ready {
            create_schema(&self.client)?;
            self.schema_ready = true;
        }
        let erasures = self.erasures.load(Ordering::Relaxed);
        if erasures != self.erasures_seen || self.aliases_since.elapsed() > ALIASES_FOR {
            self.aliases_written.clear();
            self.aliases_since = Instant::now();
            self.erasures_seen = erasures;
        }
        let mut erased = if replayed {
            self.erased(rows)?
        } else {
            HashMap::new()
        };
        // An anonymous ID identified in these rows as an erased user is that user's too.
        for r in rows {
            let by_user = r
                .user_id
                .as_ref()
                .and_then(|u| erased.get(u.as_str()))
                .copied();
            if let Some(t) = by_user.filter(|&t| r.server_ms <= t) {
                let at = erased.entry(r.anonymous_id.clone()).or_insert(t);
                *at = (*at).max(t);
            }
        }
        let gone = |r: &Row| {
            [Some(&r.anonymous_id), r.user_id.as_ref()]
                .into_iter()
                .flatten()
                .any(|id| erased.get(id.as_str()).is_some_and(|&t| r.server_ms <= t))
        };
        let rows: Vec<&Row> = rows.iter().copied().filter(|r| !gone(r)).collect();
        let rows = rows.as_slice();
        let db = &self.client.database;
        let ids: HashSet<&String> = rows.iter().map(|r| &r.event_id).collect();
        let mut existing: HashSet<String> = HashSet::new();
        let ids: Vec<&String> = ids.into_iter().collect();
        for chunk in ids.chunks(20_000) {
            let (found, _) = self.client.select(&format!(
                "SELECT DISTINCT event_id FROM {db}.events WHERE event_id IN {}",
                list(chunk.iter().copied())
            ))?;
            existing.extend(
                found
                    .into_iter()
                    .filter_map(|r| r["event_id"].as_str().map(str::to_owned)),
            );
        }
        let mut outcome = Vec::with_capacity(rows.len());
        let mut body = Vec::new();
        let mut aliases: HashMap<(&str, &str), (i64, &str)> = HashMap::new();
        for r in rows {
            let new = existing.insert(r.event_id.clone());
            outcome.push(new);
            if !new {
                continue;
            }
            serde_json::to_writer(&mut body, r).expect("rows serialize");
            body.push(b'\n');
            if let Some(user) = &r.user_id {
                let key = (r.anonymous_id.as_str(), user.as_str());
                let first = aliases.entry(key).or_insert((r.time_ms, &r.event_id));
                if (r.time_ms, r.event_id.as_str()) < (first.0, first.1) {
                    *first = (r.time_ms, &r.event_id);
                }
            }
        }
        let mut alias_body = Vec::new();
        let mut written = Vec::new();
        for ((anon, user), (time_ms, event_id)) in aliases {
            if self
                .aliases_written
                .contains(&(anon.to_owned(), user.to_owned()))
            {
                continue;
            }
            let row = serde_json::json!({
                "anonymous_id": anon, "user_id": user, "time_ms": time_ms, "event_id": event_id,
            });
            serde_json::to_writer(&mut alias_body, &row).expect("rows serialize");
            alias_body.push(b'\n');
            written.push((anon.to_owned(), user.to_owned()));
        }
        // Aliases first: an event is never stored without the alias it implies.
        if !alias_body.is_empty() {
            self.client.insert("aliases", alias_body)?;
        }
        if !body.is_empty() {
            self.client.insert("events", body)?;
        }
        if self.aliases_written.len() > 200_000 {
            self.aliases_written.clear();
        }
        self.aliases_written.extend(written);
        Ok(outcome)
    }

    /// The latest erase of each anonymous ID or user ID of these rows.
    fn erased(&self, rows: &[&Row]) -> Result<HashMap<String, i64>, ChError> {
        let mut ids: HashSet<&String> = HashSet::new();
        for r in rows {
            ids.insert(&r.anonymous_id);
            ids.extend(r.user_id.as_ref());
        }
        let ids: Vec<&String> = ids.into_iter().collect();
        let mut out = HashMap::new();
        for chunk in ids.chunks(20_000) {
            let (found, _) = self.client.select(&format!(
                "SELECT id, max(erased_ms) AS t FROM (
                   SELECT anonymous_id AS id, erased_ms FROM {db}.erasures
                   UNION ALL SELECT user_id AS id, erased_ms FROM {db}.erasures WHERE user_id != '')
                 WHERE id IN {ids} GROUP BY id",
                db = self.client.database,
                ids = list(chunk.iter().copied())
            ))?;
            for r in found {
                let t = r["t"]
                    .as_i64()
                    .or_else(|| r["t"].as_str().and_then(|s| s.parse().ok()))
                    .unwrap_or_default();
                if let Some(id) = r["id"].as_str() {
                    out.insert(id.to_owned(), t);
                }
            }
        }
        Ok(out)
    }
}
