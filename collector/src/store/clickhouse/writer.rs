//! The writer thread: groups waiting batches into one INSERT block, spools what ClickHouse
//! cannot take, and replays the spool in order once it can.
//!
//! Live groups go through a pipeline of two steps: while one group's INSERT is in flight (on
//! the inserter thread), the writer gathers the batches that arrive meanwhile, so the next
//! block is as large as the wait allowed. Once the insert is done, the writer answers its
//! batches, asks ClickHouse which of the gathered event IDs it has (the IDs go as external
//! data, checked against `event_ids`), encodes the new rows in `RowBinary` and sends them. One
//! insert at a time keeps the order the spool relies on: a group whose insert fails is spooled
//! before anything after it.

use super::http::{Client, External};
use super::rowbinary;
use super::spool::{Spool, SpoolError};
use super::{create_schema, ChError, InsertOutcome, Row, StoreError};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
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

pub struct Job {
    pub rows: Vec<Row>,
    pub reply: oneshot::Sender<InsertOutcome>,
}

/// The INSERT blocks of one group, in `RowBinary`, aliases first: an event is never stored
/// without the alias it implies.
struct Blocks {
    aliases: Vec<u8>,
    events: Vec<u8>,
    /// The event IDs to look up in `event_rows` once `events` is stored (`RowBinary`
    /// strings): the new rows' of a live group; every row's of a replayed one, which go to
    /// `copies` before the insert instead.
    ids: Vec<u8>,
    replayed: bool,
}

/// A group ready to send: its blocks, whether each row was new, and the aliases written.
struct Prepared {
    blocks: Blocks,
    outcome: Vec<bool>,
    aliases: Vec<(String, String)>,
}

/// The group whose insert is in flight, and whom to answer once it is done.
struct InFlight {
    jobs: Vec<Job>,
    n: usize,
    outcome: Vec<bool>,
    aliases: Vec<(String, String)>,
}

/// Sends a group's blocks, and notes which of its events may be stored twice (`copies`, see
/// [`super::SCHEMA`]). A live group's events are looked up in `event_rows` after the insert:
/// of two collectors storing one event at once, the later to finish its insert finds both
/// rows. A replayed group's events are all noted before its insert, as the attempt that failed
/// may still land after this one (and its look-up). Errors spool the group as an insert's do.
fn send_blocks(client: &Client, blocks: Blocks) -> Result<(), ChError> {
    if !blocks.aliases.is_empty() {
        client.insert_binary("aliases", rowbinary::ALIAS_COLUMNS, blocks.aliases)?;
    }
    let db = &client.database;
    let ids = External {
        name: "incoming",
        structure: "event_id String",
        rows: blocks.ids,
    };
    if blocks.replayed && !ids.rows.is_empty() {
        client.execute_with(
            &format!("INSERT INTO {db}.copies SELECT cityHash64(event_id) FROM incoming"),
            &ids,
        )?;
    }
    if !blocks.events.is_empty() {
        client.insert_binary("events", rowbinary::EVENT_COLUMNS, blocks.events)?;
        if !blocks.replayed {
            client.execute_with(
                &format!(
                    "INSERT INTO {db}.copies SELECT event_h FROM {db}.event_rows
                     WHERE event_h IN (SELECT cityHash64(event_id) FROM incoming)
                     GROUP BY event_h HAVING count() > 1"
                ),
                &ids,
            )?;
        }
    }
    Ok(())
}

/// How often the writer looks whether the insert in flight is done while it gathers.
const POLL: Duration = Duration::from_millis(2);

fn no_inserter() -> ChError {
    ChError::Unreachable("the inserter thread is gone".into())
}

/// The inserter thread: sends each group's blocks as they come and answers with the outcome;
/// ends when the writer does.
fn inserter(client: Arc<Client>) -> (mpsc::Sender<Blocks>, mpsc::Receiver<Result<(), ChError>>) {
    let (tx, rx) = mpsc::channel::<Blocks>();
    let (done_tx, done) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("clickhouse-inserter".into())
        .spawn(move || {
            for blocks in rx {
                if done_tx.send(send_blocks(&client, blocks)).is_err() {
                    return;
                }
            }
        });
    if let Err(e) = spawned {
        // Without the thread every send fails at once, and each group goes to the spool.
        log::error!("clickhouse: cannot start the inserter thread: {e}");
    }
    (tx, done)
}

pub struct Writer {
    client: Arc<Client>,
    spool: Spool,
    pending: Arc<AtomicUsize>,
    schema_ready: bool,
    /// (anonymous ID, user ID) pairs already written to `aliases` by this writer, and the
    /// count of `erasures` rows when it last looked: any erase, by any collector, changes
    /// that count, and the pairs are forgotten (see [`Writer::forget_aliases_if_erased`]).
    aliases_written: HashSet<(String, String)>,
    erasures_seen: Option<u64>,
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
    /// The inserter thread's queue and answers, and the group it is sending.
    inserts: mpsc::Sender<Blocks>,
    inserted: mpsc::Receiver<Result<(), ChError>>,
    in_flight: Option<InFlight>,
}

impl Writer {
    pub fn new(
        client: Arc<Client>,
        spool: Spool,
        pending: Arc<AtomicUsize>,
        schema_ready: bool,
    ) -> Writer {
        let (inserts, inserted) = inserter(client.clone());
        let w = Writer {
            inserts,
            inserted,
            in_flight: None,
            client,
            pending,
            schema_ready,
            aliases_written: HashSet::new(),
            erasures_seen: None,
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
            let mut jobs = Vec::new();
            let mut n = 0;
            // An insert is in flight: gather what arrives until it is done.
            while self.in_flight.is_some() {
                match self.inserted.try_recv() {
                    Ok(result) => self.answer(result),
                    Err(mpsc::TryRecvError::Empty) if n >= MAX_GROUP_EVENTS => self.finish(),
                    Err(mpsc::TryRecvError::Empty) => match rx.recv_timeout(POLL) {
                        Ok(job) => {
                            n += job.rows.len();
                            jobs.push(job);
                        }
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        Err(mpsc::RecvTimeoutError::Disconnected) => {
                            self.finish();
                            if !jobs.is_empty() {
                                self.write(jobs, n);
                                self.finish();
                            }
                            return;
                        }
                    },
                    Err(mpsc::TryRecvError::Disconnected) => self.answer(Err(no_inserter())),
                }
            }
            if jobs.is_empty() {
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
                if let Some(job) = first {
                    n += job.rows.len();
                    jobs.push(job);
                }
            }
            while n < MAX_GROUP_EVENTS {
                match rx.try_recv() {
                    Ok(job) => {
                        n += job.rows.len();
                        jobs.push(job);
                    }
                    Err(_) => break,
                }
            }
            if !jobs.is_empty() {
                self.write(jobs, n);
            }
            if self.in_flight.is_none()
                && !self.spool.is_empty()
                && self.last_attempt.is_none_or(|t| t.elapsed() >= RETRY)
            {
                self.replay();
            }
        }
    }

    /// Stores a group (nothing in flight): into ClickHouse, sent on the inserter thread, when
    /// nothing waits in the spool and it answers, else into the spool. Each job is answered
    /// once its rows are durable.
    fn write(&mut self, jobs: Vec<Job>, n: usize) {
        let mut jobs = jobs;
        if self.spool.is_empty() {
            let rows: Vec<&Row> = jobs.iter().flat_map(|j| &j.rows).collect();
            let prepared = self.prepare(&rows, false);
            drop(rows);
            match prepared {
                Ok(Prepared {
                    blocks,
                    outcome,
                    aliases,
                }) => match self.inserts.send(blocks) {
                    Ok(()) => {
                        self.in_flight = Some(InFlight {
                            jobs,
                            n,
                            outcome,
                            aliases,
                        });
                        return;
                    }
                    Err(_) => self.start_spooling(n, &no_inserter()),
                },
                Err(e) => self.start_spooling(n, &e),
            }
        }
        self.spool_jobs(jobs.drain(..));
    }

    /// Waits for the insert in flight, if any, and answers its jobs.
    fn finish(&mut self) {
        if self.in_flight.is_some() {
            let result = self.inserted.recv().unwrap_or_else(|_| Err(no_inserter()));
            self.answer(result);
        }
    }

    /// Answers the jobs of the insert in flight with its result; spools them if it failed.
    fn answer(&mut self, result: Result<(), ChError>) {
        let Some(sent) = self.in_flight.take() else {
            return;
        };
        match result {
            Ok(()) => {
                self.pending.fetch_sub(sent.n, Ordering::Relaxed);
                let mut stored = sent.outcome.into_iter();
                for job in sent.jobs {
                    let outcome = stored.by_ref().take(job.rows.len()).collect();
                    let _ = job.reply.send(Ok(outcome));
                }
                if self.aliases_written.len() > 200_000 {
                    self.aliases_written.clear();
                }
                self.aliases_written.extend(sent.aliases);
            }
            Err(e) => {
                self.start_spooling(sent.n, &e);
                self.spool_jobs(sent.jobs.into_iter());
            }
        }
    }

    fn start_spooling(&mut self, n: usize, e: &ChError) {
        log::warn!("clickhouse cannot take {n} events ({e}); spooling to disk until it is back");
        if self.spooling.is_none() {
            self.spooling = Some((Instant::now(), 0, 0));
        }
        self.last_attempt = Some(Instant::now());
    }

    /// Into the spool, one record per job so a full spool refuses only what does not fit.
    fn spool_jobs(&mut self, jobs: impl Iterator<Item = Job>) {
        for job in jobs {
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
            match self.store_now(&refs) {
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

    /// Stores replayed rows not stored yet, and the aliases they imply, at once.
    fn store_now(&mut self, rows: &[&Row]) -> Result<(), ChError> {
        let p = self.prepare(rows, true)?;
        send_blocks(&self.client, p.blocks)?;
        self.aliases_written.extend(p.aliases);
        Ok(())
    }

    /// The blocks that store rows not stored yet, and the aliases they imply;
    /// for each row, whether it is new. Replayed rows (`replayed`) of a person erased after
    /// they arrived are dropped.
    fn prepare(&mut self, rows: &[&Row], replayed: bool) -> Result<Prepared, ChError> {
        if !self.schema_ready {
            create_schema(&self.client)?;
            self.schema_ready = true;
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
        let mut existing = self.stored_ids(rows.iter().map(|r| r.event_id.as_str()))?;
        let mut outcome = Vec::with_capacity(rows.len());
        let mut events = Vec::with_capacity(rows.len() * 512);
        let mut ids = Vec::with_capacity(rows.len() * 40);
        let mut aliases: HashMap<(&str, &str), (i64, &str)> = HashMap::new();
        for r in &rows {
            let new = existing.insert(r.event_id.clone());
            outcome.push(new);
            // See `Blocks::ids`: a replayed group's every row, a live one's new rows.
            if new || replayed {
                rowbinary::string(&mut ids, &r.event_id);
            }
            if !new {
                continue;
            }
            rowbinary::event(&mut events, r);
            if let Some(user) = &r.user_id {
                let key = (r.anonymous_id.as_str(), user.as_str());
                let first = aliases.entry(key).or_insert((r.time_ms, &r.event_id));
                if (r.time_ms, r.event_id.as_str()) < (first.0, first.1) {
                    *first = (r.time_ms, &r.event_id);
                }
            }
        }
        let remembered = aliases
            .keys()
            .any(|&(a, u)| self.aliases_written.contains(&(a.to_owned(), u.to_owned())));
        if remembered {
            self.forget_aliases_if_erased()?;
        }
        let mut alias_block = Vec::new();
        let mut written = Vec::new();
        for ((anon, user), (time_ms, event_id)) in aliases {
            if self
                .aliases_written
                .contains(&(anon.to_owned(), user.to_owned()))
            {
                continue;
            }
            rowbinary::alias(&mut alias_block, anon, user, time_ms, event_id);
            written.push((anon.to_owned(), user.to_owned()));
        }
        Ok(Prepared {
            blocks: Blocks {
                aliases: alias_block,
                events,
                ids,
                replayed,
            },
            outcome,
            aliases: written,
        })
    }

    /// Forgets the aliases written so far if anyone erased anyone since the writer last
    /// looked (the count of `erasures` rows changed): the erase may have deleted them, and a
    /// returning person's alias must then be written again. Asked only when a group would
    /// skip an alias, so a group of new aliases costs no extra query.
    ///
    /// An erase notes its rows before its deletes and again once they are done
    /// ([`super::query::erase`]), so an alias written while the deletes ran (and perhaps
    /// deleted by them) is forgotten at the next look after the erase ends.
    fn forget_aliases_if_erased(&mut self) -> Result<(), ChError> {
        let count = self.client.select_tsv(&format!(
            "SELECT count() FROM {}.erasures",
            self.client.database
        ))?;
        let count = count.trim().parse::<u64>().ok();
        if count.is_none() || count != self.erasures_seen {
            self.aliases_written.clear();
            self.erasures_seen = count;
        }
        Ok(())
    }

    /// Which of these event IDs ClickHouse has: the IDs go as external data, checked
    /// against `event_ids` (one short column, in ID order).
    fn stored_ids<'a>(
        &self,
        ids: impl Iterator<Item = &'a str>,
    ) -> Result<HashSet<String>, ChError> {
        let mut data = Vec::new();
        let mut any = false;
        for id in ids {
            rowbinary::string(&mut data, id);
            any = true;
        }
        if !any {
            return Ok(HashSet::new());
        }
        let found = self.client.select_with(
            &format!(
                "SELECT DISTINCT event_id FROM {}.event_ids WHERE event_id IN incoming",
                self.client.database
            ),
            &External {
                name: "incoming",
                structure: "event_id String",
                rows: data,
            },
        )?;
        Ok(found
            .into_iter()
            .filter_map(|r| r["event_id"].as_str().map(str::to_owned))
            .collect())
    }

    /// The latest erase of each anonymous ID or user ID of these rows.
    fn erased(&self, rows: &[&Row]) -> Result<HashMap<String, i64>, ChError> {
        let mut ids: HashSet<&String> = HashSet::new();
        for r in rows {
            ids.insert(&r.anonymous_id);
            ids.extend(r.user_id.as_ref());
        }
        let mut data = Vec::new();
        for id in &ids {
            rowbinary::string(&mut data, id);
        }
        let found = self.client.select_with(
            &format!(
                "SELECT id, max(erased_ms) AS t FROM (
                   SELECT anonymous_id AS id, erased_ms FROM {db}.erasures
                   UNION ALL SELECT user_id AS id, erased_ms FROM {db}.erasures WHERE user_id != '')
                 WHERE id IN incoming GROUP BY id",
                db = self.client.database,
            ),
            &External {
                name: "incoming",
                structure: "id String",
                rows: data,
            },
        )?;
        let mut out = HashMap::new();
        for r in found {
            let t = r["t"]
                .as_i64()
                .or_else(|| r["t"].as_str().and_then(|s| s.parse().ok()))
                .unwrap_or_default();
            if let Some(id) = r["id"].as_str() {
                out.insert(id.to_owned(), t);
            }
        }
        Ok(out)
    }
}
