//! Delivery: how the outbox reaches the collector. A synchronous state machine: its host tells
//! it what happened (an event recorded, the end of a task, a timer, a send's answer, the page
//! hidden, the browser back online) and it tells the host what to do through [`Net`] (post a
//! chunk, queue a beacon, set a timer, resolve `flush()` calls). Every rule of sending lives
//! here, so native tests run them all with a fake clock:
//!
//! - a batch leaves when `batchSize` events wait, or `flushInterval` after the first of them;
//! - one send at a time per tab, oldest events first, in chunks under [`MAX_SEND_BYTES`];
//! - a failed send waits with exponential backoff and jitter (1–2 s, 2–4 s, ... up to
//!   5–10 min), never less than a 429's or 503's `Retry-After`, which even `flush()` honours;
//! - a 4xx other than 429 drops the chunk (the collector will never take it) with a warning;
//! - three sends in a row refused at once while online mean the endpoint is blocked (an ad
//!   blocker): this page stops sending and the outbox waits for the next page;
//! - a hidden page sends everything by beacon, in chunks, and does not send those events
//!   again itself (the next page load does, as a beacon's answer is never known).

#[allow(unused_imports)]
use crate::prelude::*;

use crate::outbox::{self, Outbox};
use crate::platform::Storage;
use footfall_wire::json;

/// Most bytes of one send's body (sendBeacon refuses more than 64 KB in flight).
pub const MAX_SEND_BYTES: usize = 60 * 1024;
/// Most sends refused at once, in a row, while online, before the endpoint counts as blocked.
pub const BLOCKED_AFTER: u32 = 3;
/// A failure quicker than this is "at once" (an ad blocker answers without the network).
pub const INSTANT_MS: i64 = 250;
/// The longest base wait between retries (jitter adds up to as much again).
pub const MAX_BACKOFF_MS: i64 = 5 * 60 * 1000;

/// Work the host runs later for the delivery: at the end of the current task (`Net::later`)
/// or after a timer (`Net::timer`). The numbers cross the wasm boundary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Later {
    /// Write the outbox.
    Save = 0,
    /// Start a drain of the outbox.
    Drain = 2,
    /// The flush interval passed.
    FlushTimer = 3,
    /// The backoff after a failed send passed.
    RetryTimer = 4,
}

impl Later {
    pub fn from_u32(n: u32) -> Later {
        match n {
            0 => Later::Save,
            2 => Later::Drain,
            3 => Later::FlushTimer,
            _ => Later::RetryTimer,
        }
    }
}

/// What the delivery asks of its host (the browser, or a test).
pub trait Net {
    fn now_ms(&self) -> i64;
    /// `ms` as a batch's `sent_at` is written (see [`crate::platform::Clock::timestamp`]).
    fn timestamp(&self, ms: i64) -> String {
        footfall_wire::time::rfc3339_millis(ms)
    }
    /// `navigator.onLine`.
    fn online(&self) -> bool;
    /// Two random bytes, for the jitter.
    fn random_u16(&mut self) -> u16;
    /// POSTs `body`; the answer comes back through [`Delivery::answered`].
    fn post(&mut self, url: &str, body: &str);
    /// `navigator.sendBeacon`: true when the browser queued it.
    fn beacon(&mut self, url: &str, body: &str) -> bool;
    /// Calls [`Delivery::run`] with `what` at the end of the current task.
    fn later(&mut self, what: Later);
    /// Calls [`Delivery::run`] with `what` after `ms` (never cancelled: what it starts checks
    /// whether it is still due).
    fn timer(&mut self, what: Later, ms: i64);
    /// Resolves the oldest `count` calls of `flush()`.
    fn flushed(&mut self, count: u32);
    fn warn(&mut self, msg: &str);
}

/// A batch's JSON text: the site's key, when it was sent (a timestamp), and the encoded
/// events (one a line, nothing else: a chunk of the outbox).
pub fn batch_body(key: &str, sent_at: &str, events: &str) -> String {
    json::batch_from_encoded(key, sent_at, crate::platform::fields(events, b'\n'))
}

pub struct Delivery<S> {
    pub outbox: Outbox,
    /// localStorage, where the outbox is kept (none in `memory` persistence).
    pub local: Option<S>,
    /// `<endpoint>/v1/batch`.
    url: String,
    /// The site's key.
    key: String,
    batch_size: usize,
    flush_interval_ms: i64,
    /// The flush interval's timer is set.
    flush_timer: bool,
    /// A drain is running (a chunk in flight, or about to be).
    sending: bool,
    /// A drain is asked for at the end of this task and has not started yet.
    drain_queued: bool,
    save_queued: bool,
    /// IDs of events this page sent by beacon, one after another: not sent again by it.
    beaconed: String,
    /// The chunk in flight (its events, one a line), and when it left.
    in_flight: String,
    sent_at: i64,
    /// Sends that failed in a row, and when the next may go.
    failures: u32,
    retry_at: i64,
    /// A 429's `Retry-After`: not even `flush()` sends before it.
    not_before: i64,
    /// The drain running goes on even while backing off (a `flush()`).
    drain_now: bool,
    /// `flush()` calls answered when the drain running ends, and those that wait for it to
    /// end and then drain again (the chunk in flight carries only part of their queue).
    flushes_now: u32,
    flushes_next: u32,
    /// Sends refused at once while online, in a row; the endpoint counts as blocked at
    /// [`BLOCKED_AFTER`].
    instant_failures: u32,
    blocked: bool,
    /// The outbox-full warning was given (once a page).
    full_warned: bool,
}

impl<S: Storage> Delivery<S> {
    pub fn new(
        endpoint: &str,
        key: &str,
        batch_size: usize,
        flush_interval_ms: i64,
        local: Option<S>,
    ) -> Self {
        let mut url = crate::platform::owned(endpoint);
        url.push_str("/v1/batch");
        Delivery {
            outbox: Outbox::default(),
            local,
            url,
            key: crate::platform::owned(key),
            batch_size,
            flush_interval_ms,
            flush_timer: false,
            sending: false,
            drain_queued: false,
            save_queued: false,
            beaconed: String::new(),
            in_flight: String::new(),
            sent_at: 0,
            failures: 0,
            retry_at: 0,
            not_before: 0,
            drain_now: false,
            flushes_now: 0,
            flushes_next: 0,
            instant_failures: 0,
            blocked: false,
            full_warned: false,
        }
    }

    /// An event was recorded: it waits in the outbox (saved at the end of the task) until a
    /// batch is full or the flush interval passes.
    pub fn push(&mut self, event: &str, net: &mut impl Net) {
        self.outbox.push(event);
        self.save_soon(net);
        if self.outbox.len() >= self.batch_size + self.beaconed.len() / outbox::ID_LEN {
            self.send_soon(net);
        } else if !core::mem::replace(&mut self.flush_timer, true) {
            net.timer(Later::FlushTimer, self.flush_interval_ms);
        }
    }

    /// What the host runs at the end of a task, or when a timer fires.
    pub fn run(&mut self, what: Later, net: &mut impl Net) {
        match what {
            Later::Save => self.save_now(net),
            Later::Drain => self.drain(false, net),
            Later::FlushTimer => {
                self.flush_timer = false;
                self.send_soon(net);
            }
            Later::RetryTimer => self.send_soon(net),
        }
    }

    /// The browser is back online: the backoff is over.
    pub fn online(&mut self, net: &mut impl Net) {
        self.retry_at = 0;
        self.send_soon(net);
    }

    /// `flush()`: sends what is queued now (even while backing off, never before a
    /// `Retry-After`), and resolves once the collector answered for it or a send failed.
    pub fn flush(&mut self, net: &mut impl Net) {
        if self.sending {
            // The chunk in flight carries only part of the queue: drain again after it.
            self.flushes_next += 1;
        } else {
            self.flushes_now += 1;
            self.drain(true, net);
        }
    }

    /// Writes the outbox at the end of this task (once for a burst of calls).
    pub fn save_soon(&mut self, net: &mut impl Net) {
        if !core::mem::replace(&mut self.save_queued, true) {
            net.later(Later::Save);
        }
    }

    pub fn save_now(&mut self, net: &mut impl Net) {
        self.save_queued = false;
        if let Some(store) = &mut self.local {
            self.outbox.save(store, net.now_ms());
        }
        if self.outbox.dropped > 0 && !core::mem::replace(&mut self.full_warned, true) {
            net.warn("outbox full (1,000 events or 512 KB); oldest dropped");
        }
    }

    /// Starts a drain at the end of this task, unless one is running or about to (a burst of
    /// calls on a full queue would otherwise start one each).
    pub fn send_soon(&mut self, net: &mut impl Net) {
        if !self.sending && !core::mem::replace(&mut self.drain_queued, true) {
            net.later(Later::Drain);
        }
    }

    /// The body of a send or a beacon of `chunk` (events, one a line), sent now.
    fn body(&self, chunk: &str, net: &impl Net) -> String {
        batch_body(&self.key, &net.timestamp(net.now_ms()), chunk)
    }

    /// Sends the outbox, oldest first, chunk by chunk, until it is empty or a send fails.
    fn drain(&mut self, now: bool, net: &mut impl Net) {
        self.drain_queued = false;
        if core::mem::replace(&mut self.sending, true) {
            return;
        }
        self.drain_now = now;
        self.send_next(net);
    }

    fn send_next(&mut self, net: &mut impl Net) {
        let t = net.now_ms();
        if !self.blocked
            && t >= self.not_before
            && (self.drain_now || t >= self.retry_at)
            && net.online()
        {
            let chunk = self.outbox.peek(MAX_SEND_BYTES, &self.beaconed);
            if !chunk.is_empty() {
                let body = self.body(&chunk, net);
                self.in_flight = chunk;
                self.sent_at = t;
                net.post(&self.url, &body);
                return;
            }
        }
        self.drained(net);
    }

    /// The answer to the chunk in flight: its HTTP status and `Retry-After` (seconds), or
    /// status 0 when the request did not complete (offline, blocked, refused by CORS).
    pub fn answered(&mut self, status: u32, retry_after_s: i64, net: &mut impl Net) {
        if !self.sending {
            return;
        }
        let chunk = core::mem::take(&mut self.in_flight);
        let took = net.now_ms() - self.sent_at;
        if self.settle(status, retry_after_s, &chunk, took, net) {
            self.send_next(net);
        } else {
            self.drained(net);
        }
    }

    /// Acts on an answer; true to send the next chunk.
    fn settle(
        &mut self,
        status: u32,
        retry_after_s: i64,
        chunk: &str,
        took: i64,
        net: &mut impl Net,
    ) -> bool {
        let mut wait = 0;
        match status {
            200..=299 => {
                self.outbox.ack(chunk);
                self.failures = 0;
                self.instant_failures = 0;
                return true;
            }
            400..=499 if status != 429 => {
                net.warn("collector refused a batch (4xx); dropped");
                self.outbox.ack(chunk);
                return true;
            }
            0 if net.online() && took < INSTANT_MS => {
                self.instant_failures += 1;
                if self.instant_failures >= BLOCKED_AFTER {
                    self.blocked = true;
                    net.warn("collector unreachable (blocked?); events kept for the next page");
                    return false;
                }
            }
            0 => {}
            _ => {
                self.instant_failures = 0;
                wait = retry_after_s.clamp(0, 86_400) * 1000;
                self.not_before = net.now_ms() + wait;
            }
        }
        // Exponential backoff with jitter, never sooner than a Retry-After.
        self.failures += 1;
        let base = (1000i64 << (self.failures - 1).min(20)).min(MAX_BACKOFF_MS);
        let jitter = base * i64::from(net.random_u16()) / 65_536;
        let wait = wait.max(base + jitter);
        self.retry_at = net.now_ms() + wait;
        net.timer(Later::RetryTimer, wait);
        false
    }

    /// The drain ended: the flushes it answers resolve, the outbox is saved, and flushes that
    /// waited for it drain again.
    fn drained(&mut self, net: &mut impl Net) {
        self.sending = false;
        let done = core::mem::take(&mut self.flushes_now);
        self.flushes_now = core::mem::take(&mut self.flushes_next);
        if done > 0 {
            net.flushed(done);
        }
        self.save_now(net);
        if self.flushes_now > 0 {
            self.drain(true, net);
        }
    }

    /// The page is hidden or goes: the outbox leaves by `sendBeacon`, in chunks under
    /// [`MAX_SEND_BYTES`]. The events stay in the outbox, as a beacon's answer is never known:
    /// the next page load sends them again (the collector drops copies by `event_id`).
    ///
    /// The browser refuses beacons past 64 KB in flight; what they would have carried goes by
    /// a normal send, which finishes if the page lives on (a hidden tab).
    pub fn beacon_all(&mut self, net: &mut impl Net) {
        self.save_now(net);
        loop {
            let chunk = self.outbox.peek(MAX_SEND_BYTES, &self.beaconed);
            if chunk.is_empty() {
                return;
            }
            if !net.beacon(&self.url, &self.body(&chunk, net)) {
                return self.send_soon(net);
            }
            self.beaconed.push_str(&outbox::ids(&chunk));
        }
    }

    /// Takes in the outbox of a gone tab, saved at once (while its lock is held, so that its
    /// events are never in neither outbox), and sends.
    pub fn adopt(&mut self, key: &str, net: &mut impl Net) {
        if let Some(store) = &mut self.local {
            self.outbox.adopt(store, key);
            self.save_now(net);
            self.send_soon(net);
        }
    }

    /// Opt-out: every event is forgotten, in storage too.
    pub fn clear(&mut self, net: &mut impl Net) {
        self.outbox.clear();
        self.save_now(net);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::fake::MemStorage;

    const T0: i64 = 1_795_428_000_000;
    const KEY: &str = "ff_outbox_me";

    /// The browser as the delivery sees it: a clock moved by hand, and a log of what it was
    /// asked to do. Sends are answered by the test.
    #[derive(Default)]
    struct FakeNet {
        now: i64,
        offline: bool,
        random: u16,
        beacons_refused_after: Option<usize>,
        posts: Vec<String>,
        beacons: Vec<String>,
        later: Vec<Later>,
        timers: Vec<(Later, i64)>,
        flushed: u32,
        warnings: Vec<String>,
    }

    impl Net for FakeNet {
        fn now_ms(&self) -> i64 {
            self.now
        }
        fn online(&self) -> bool {
            !self.offline
        }
        fn random_u16(&mut self) -> u16 {
            self.random
        }
        fn post(&mut self, url: &str, body: &str) {
            assert_eq!(url, "https://c.example/v1/batch");
            self.posts.push(body.into());
        }
        fn beacon(&mut self, _: &str, body: &str) -> bool {
            if self
                .beacons_refused_after
                .is_some_and(|n| self.beacons.len() >= n)
            {
                return false;
            }
            self.beacons.push(body.into());
            true
        }
        fn later(&mut self, what: Later) {
            self.later.push(what);
        }
        fn timer(&mut self, what: Later, ms: i64) {
            self.timers.push((what, ms));
        }
        fn flushed(&mut self, count: u32) {
            self.flushed += count;
        }
        fn warn(&mut self, msg: &str) {
            self.warnings.push(msg.into());
        }
    }

    struct Page {
        d: Delivery<MemStorage>,
        net: FakeNet,
        store: MemStorage,
        n: usize,
    }

    fn page(batch_size: usize) -> Page {
        let store = MemStorage::default();
        let mut d = Delivery::new(
            "https://c.example",
            "site",
            batch_size,
            5_000,
            Some(store.clone()),
        );
        d.outbox.own(&store, KEY.into());
        Page {
            d,
            net: FakeNet {
                now: T0,
                ..FakeNet::default()
            },
            store,
            n: 0,
        }
    }

    fn event(n: usize, pad: usize) -> String {
        format!(
            "{{\"event_id\":\"019ab0b4-0000-7000-8000-{n:012x}\",\"p\":\"{}\"}}",
            "x".repeat(pad)
        )
    }

    /// The event IDs of a batch body.
    fn ids(body: &str) -> Vec<usize> {
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        v["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let id = e["event_id"].as_str().unwrap();
                usize::from_str_radix(&id[24..], 16).unwrap()
            })
            .collect()
    }

    impl Page {
        fn track(&mut self) {
            self.track_padded(0);
        }
        fn track_padded(&mut self, pad: usize) {
            self.d.push(&event(self.n, pad), &mut self.net);
            self.n += 1;
        }
        /// The end of the task: what it queued runs, in order, until nothing is left.
        fn end_task(&mut self) {
            while !self.net.later.is_empty() {
                let what = self.net.later.remove(0);
                self.d.run(what, &mut self.net);
            }
        }
        fn advance(&mut self, ms: i64) {
            self.net.now += ms;
        }
        /// Fires the timers that are due by now (the fake keeps their delay from when set:
        /// tests advance by at least that).
        fn fire(&mut self, what: Later) {
            let (due, rest): (Vec<_>, Vec<_>) =
                self.net.timers.drain(..).partition(|(w, _)| *w == what);
            self.net.timers = rest;
            for _ in due {
                self.d.run(what, &mut self.net);
            }
            self.end_task();
        }
        fn answer(&mut self, status: u32, retry_after: i64) {
            self.advance(300);
            self.d.answered(status, retry_after, &mut self.net);
            self.end_task();
        }
        fn last_post(&self) -> Vec<usize> {
            ids(self.net.posts.last().expect("a post"))
        }
        fn stored(&self) -> usize {
            crate::outbox::lines(&crate::outbox::load(&self.store, KEY).0).count()
        }
        fn retry_wait(&self) -> i64 {
            self.net
                .timers
                .iter()
                .rev()
                .find(|(w, _)| *w == Later::RetryTimer)
                .expect("a retry timer")
                .1
        }
    }

    #[test]
    fn a_full_batch_leaves_at_the_end_of_the_task_and_an_answer_empties_the_outbox() {
        let mut p = page(3);
        p.track();
        p.track();
        assert_eq!(p.net.timers, [(Later::FlushTimer, 5_000)], "one timer");
        p.end_task();
        assert!(p.net.posts.is_empty());
        assert_eq!(p.stored(), 2, "saved at the end of the task");
        p.track();
        p.end_task();
        assert_eq!(p.last_post(), [0, 1, 2]);
        assert_eq!(p.stored(), 3, "kept until answered");
        p.answer(200, 0);
        assert_eq!(p.stored(), 0);
        assert_eq!(p.net.posts.len(), 1, "nothing more to send");
    }

    #[test]
    fn the_flush_interval_sends_a_partial_batch() {
        let mut p = page(20);
        p.track();
        p.end_task();
        assert!(p.net.posts.is_empty());
        p.advance(5_000);
        p.fire(Later::FlushTimer);
        assert_eq!(p.last_post(), [0]);
        p.answer(204, 0);
        p.track();
        assert_eq!(
            p.net.timers,
            [(Later::FlushTimer, 5_000)],
            "a new timer for the next event"
        );
    }

    #[test]
    fn failures_back_off_exponentially_with_jitter_up_to_ten_minutes() {
        let mut p = page(1);
        p.net.random = u16::MAX / 2;
        p.track();
        p.end_task();
        let mut waits = Vec::new();
        for _ in 0..12 {
            p.answer(503, 0);
            waits.push(p.retry_wait());
            // A timer that fires early (a retry timer of an older failure) sends nothing.
            let posts = p.net.posts.len();
            p.d.run(Later::RetryTimer, &mut p.net);
            p.end_task();
            assert_eq!(p.net.posts.len(), posts, "not before the backoff");
            p.advance(p.retry_wait());
            p.fire(Later::RetryTimer);
            assert_eq!(p.net.posts.len(), posts + 1, "sent again after it");
        }
        // Base 1 s doubling, plus half of it as jitter (random 0.5), capped at 5 min base.
        assert_eq!(&waits[..4], [1_499, 2_999, 5_999, 11_999]);
        assert_eq!(waits[11], 300_000 + 149_995);
        assert!(waits.windows(2).all(|w| w[0] <= w[1]));
        p.answer(200, 0);
        assert_eq!(p.stored(), 0);
        // Success resets the backoff.
        p.track();
        p.end_task();
        p.answer(0, 0);
        assert!(p.retry_wait() < 2_000);
    }

    #[test]
    fn jitter_spreads_retries_between_one_and_two_times_the_base() {
        for (random, wait) in [(0, 1_000), (u16::MAX, 1_999)] {
            let mut p = page(1);
            p.net.random = random;
            p.track();
            p.end_task();
            p.answer(500, 0);
            assert_eq!(p.retry_wait(), wait);
        }
    }

    #[test]
    fn retry_after_holds_even_a_flush() {
        let mut p = page(1);
        p.track();
        p.end_task();
        p.answer(429, 120);
        assert_eq!(p.retry_wait(), 120_000, "Retry-After over the backoff");
        assert_eq!(p.net.flushed, 0);
        p.d.flush(&mut p.net);
        p.end_task();
        assert_eq!(p.net.posts.len(), 1, "flush() waits for Retry-After");
        assert_eq!(p.net.flushed, 1, "and resolves, the events kept");
        assert_eq!(p.stored(), 1);
        p.advance(120_000);
        p.d.flush(&mut p.net);
        assert_eq!(p.net.posts.len(), 2);
        p.answer(200, 0);
        assert_eq!(p.net.flushed, 2);
        assert_eq!(p.stored(), 0);
    }

    #[test]
    fn flush_sends_while_backing_off() {
        let mut p = page(1);
        p.track();
        p.end_task();
        p.answer(0, 0);
        p.advance(500);
        p.d.flush(&mut p.net);
        assert_eq!(p.net.posts.len(), 2, "at once, not after the backoff");
        p.answer(200, 0);
        assert_eq!(p.net.flushed, 1);
    }

    #[test]
    fn a_flush_during_a_send_waits_for_it_and_sends_the_rest() {
        let mut p = page(1);
        // Chunks of 60 KB: 3 events of 25 KB go in two sends.
        p.track_padded(25_000);
        p.end_task();
        assert_eq!(p.last_post(), [0]);
        p.track_padded(25_000);
        p.track_padded(25_000);
        p.d.flush(&mut p.net);
        assert_eq!(p.net.posts.len(), 1, "one send at a time");
        p.answer(200, 0);
        assert_eq!(p.last_post(), [1, 2], "the rest, in one chunk");
        assert_eq!(p.net.flushed, 0, "not before its events are answered");
        p.answer(200, 0);
        assert_eq!(p.net.flushed, 1);
        assert_eq!(p.stored(), 0);
    }

    #[test]
    fn a_refused_batch_is_dropped_and_the_next_one_goes() {
        let mut p = page(1);
        p.track_padded(40_000);
        p.track_padded(40_000);
        p.end_task();
        assert_eq!(p.last_post(), [0]);
        p.answer(400, 0);
        assert_eq!(p.last_post(), [1], "the next chunk at once");
        assert_eq!(p.net.warnings.len(), 1);
        p.answer(200, 0);
        assert_eq!(p.stored(), 0);
        assert!(p.net.timers.iter().all(|(w, _)| *w != Later::RetryTimer));
    }

    #[test]
    fn three_instant_refusals_while_online_mean_blocked() {
        let mut p = page(1);
        p.track();
        p.end_task();
        for n in 0..3 {
            p.d.flush(&mut p.net);
            assert_eq!(p.net.posts.len(), n + 1);
            p.advance(10);
            p.d.answered(0, 0, &mut p.net);
            p.end_task();
        }
        assert!(p.net.warnings[0].contains("blocked"));
        p.advance(3_600_000);
        p.d.flush(&mut p.net);
        p.track();
        p.end_task();
        assert_eq!(p.net.posts.len(), 3, "this page sends no more");
        assert_eq!(p.stored(), 2, "the events wait for the next page");
        assert_eq!(p.net.flushed, 4, "flush() still resolves");
    }

    #[test]
    fn slow_or_offline_failures_are_not_a_block() {
        for offline in [false, true] {
            let mut p = page(1);
            p.track();
            p.end_task();
            for _ in 0..5 {
                p.d.flush(&mut p.net);
                // Slow (300 ms), or offline at the time of the answer.
                p.net.offline = offline;
                p.answer(0, 0);
                p.net.offline = false;
            }
            assert!(p.net.warnings.is_empty());
            p.d.flush(&mut p.net);
            p.answer(200, 0);
            assert_eq!(p.stored(), 0);
        }
    }

    #[test]
    fn offline_waits_and_online_sends_at_once() {
        let mut p = page(1);
        p.net.offline = true;
        p.track();
        p.end_task();
        assert!(p.net.posts.is_empty());
        p.net.offline = false;
        p.d.online(&mut p.net);
        p.end_task();
        assert_eq!(p.last_post(), [0]);
        // Back online also ends a backoff.
        p.answer(503, 0);
        p.track();
        p.end_task();
        assert_eq!(p.net.posts.len(), 1);
        p.d.online(&mut p.net);
        p.end_task();
        assert_eq!(p.last_post(), [0, 1]);
    }

    #[test]
    fn hiding_sends_everything_by_beacon_in_chunks_once() {
        let mut p = page(100);
        for _ in 0..5 {
            p.track_padded(25_000);
        }
        p.d.beacon_all(&mut p.net);
        assert_eq!(
            p.stored(),
            5,
            "saved first, kept: a beacon's answer is never known"
        );
        let chunks: Vec<Vec<usize>> = p.net.beacons.iter().map(|b| ids(b)).collect();
        assert_eq!(chunks, [vec![0, 1], vec![2, 3], vec![4]]);
        assert!(p.net.beacons.iter().all(|b| b.len() <= MAX_SEND_BYTES));
        // Hidden again: nothing twice.
        p.track();
        p.d.beacon_all(&mut p.net);
        assert_eq!(ids(p.net.beacons.last().unwrap()), [5]);
        // A normal send of this page skips what left by beacon.
        p.d.flush(&mut p.net);
        assert!(p.net.posts.is_empty(), "all of it left by beacon");
        assert_eq!(p.net.flushed, 1);
    }

    #[test]
    fn a_refused_beacon_leaves_the_rest_to_a_normal_send() {
        let mut p = page(100);
        for _ in 0..3 {
            p.track_padded(40_000);
        }
        p.end_task();
        p.net.beacons_refused_after = Some(1);
        p.d.beacon_all(&mut p.net);
        assert_eq!(p.net.beacons.len(), 1);
        p.end_task();
        assert_eq!(
            p.last_post(),
            [1],
            "the rest by fetch, beaconed ones skipped"
        );
        p.answer(200, 0);
        assert_eq!(p.last_post(), [2]);
    }

    #[test]
    fn the_outbox_is_saved_once_a_task_and_a_full_one_warns_once() {
        let mut p = page(5_000);
        for _ in 0..1_005 {
            p.track();
        }
        assert_eq!(p.net.later, [Later::Save]);
        p.end_task();
        assert_eq!(p.stored(), crate::outbox::MAX_EVENTS);
        p.track();
        p.end_task();
        assert_eq!(p.net.warnings.len(), 1);
    }

    #[test]
    fn opting_out_forgets_the_outbox_in_storage() {
        let mut p = page(10);
        p.track();
        p.end_task();
        assert_eq!(p.stored(), 1);
        p.d.clear(&mut p.net);
        assert_eq!(p.store.get(KEY), None);
    }

    #[test]
    fn an_adopted_outbox_goes_first_and_is_sent() {
        let mut p = page(10);
        let mut other = Outbox::default();
        other.own(&p.store, "ff_outbox_gone".into());
        other.push(&event(100, 0));
        other.save(&mut p.store, T0 - 60_000);
        p.track();
        p.d.adopt("ff_outbox_gone", &mut p.net);
        assert_eq!(p.store.get("ff_outbox_gone"), None);
        assert_eq!(p.stored(), 2, "saved at once");
        p.end_task();
        assert_eq!(p.last_post(), [100, 0]);
    }

    #[test]
    fn a_stray_answer_changes_nothing() {
        let mut p = page(10);
        p.track();
        p.d.answered(200, 0, &mut p.net);
        assert_eq!(p.d.outbox.len(), 1);
        assert_eq!(p.net.flushed, 0);
    }
}
