//! `GET /metrics` in the Prometheus text format: what ingest accepted, found duplicate or
//! rejected (by reason), how many of the stored events were bots' (by reason), how long batches took, how many events wait for a commit, and what
//! the ClickHouse spool holds.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    pub accepted: IntCounter,
    pub duplicates: IntCounter,
    /// Events refused, by reason (`invalid`, `too-large`, `too-deep`) or, for a whole batch,
    /// by its error code.
    pub rejected: IntCounterVec,
    /// Events stored as a bot's (kept, left out of answers by default), by the kind of
    /// reason: `no-user-agent`, `crawler-list`, `uap-spider`.
    pub bots: IntCounterVec,
    /// Seconds from a batch's arrival to its answer, by status.
    pub batch_seconds: HistogramVec,
    /// Events handed to the store and not yet committed.
    pub queue_depth: IntGauge,
    /// With ClickHouse: bytes and batches in the disk spool, waiting to be replayed.
    pub spool_bytes: IntGauge,
    pub spool_batches: IntGauge,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let accepted = IntCounter::new(
            "footfall_events_accepted_total",
            "Events stored (acknowledged after commit).",
        )
        .expect("valid metric");
        let duplicates = IntCounter::new(
            "footfall_events_duplicate_total",
            "Events whose event_id was already stored.",
        )
        .expect("valid metric");
        let rejected = IntCounterVec::new(
            Opts::new(
                "footfall_events_rejected_total",
                "Events refused, by reason.",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let bots = IntCounterVec::new(
            Opts::new(
                "footfall_events_bot_total",
                "Events stored as a bot's (kept, left out of answers by default), by reason.",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let batch_seconds = HistogramVec::new(
            HistogramOpts::new(
                "footfall_batch_duration_seconds",
                "Time from a batch's arrival to its answer, in seconds.",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["status"],
        )
        .expect("valid metric");
        let queue_depth = IntGauge::new(
            "footfall_write_queue_events",
            "Events waiting for the store to commit them.",
        )
        .expect("valid metric");
        let spool_bytes = IntGauge::new(
            "footfall_spool_bytes",
            "Bytes in the disk spool waiting for ClickHouse (0 without ClickHouse).",
        )
        .expect("valid metric");
        let spool_batches = IntGauge::new(
            "footfall_spool_batches",
            "Batches in the disk spool waiting for ClickHouse (0 without ClickHouse).",
        )
        .expect("valid metric");
        for m in [
            Box::new(accepted.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(spool_bytes.clone()),
            Box::new(spool_batches.clone()),
            Box::new(duplicates.clone()),
            Box::new(rejected.clone()),
            Box::new(bots.clone()),
            Box::new(batch_seconds.clone()),
            Box::new(queue_depth.clone()),
        ] {
            registry.register(m).expect("unique metric names");
        }
        Metrics {
            registry,
            accepted,
            duplicates,
            rejected,
            bots,
            batch_seconds,
            queue_depth,
            spool_bytes,
            spool_batches,
        }
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding cannot fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
