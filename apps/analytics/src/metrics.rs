//! Prometheus metrics, served at `GET /metrics` in the text format; one
//! registry per application, so several instances can share a test process.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SubjectLabel {
    pub subject: &'static str,
}

/// Why the consumer dead-letters a message besides its contract failing:
/// a store write that kept failing on the last delivery, and a message
/// that cannot be republished as a dead letter as it is.
const CONSUMER_DEAD_LETTER_REASONS: [&str; 2] = ["delivery_limit", "unpublishable"];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StreamLabel {
    pub stream: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeadLetterLabels {
    pub subject: &'static str,
    pub reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub status: u16,
}

/// Everything analytics reports.
pub struct Metrics {
    registry: Registry,
    /// Events stored (or merged into a link copy) and acknowledged.
    pub processed: Family<SubjectLabel, Counter>,
    /// Messages sent to the dead-letter subject.
    pub dead_letters: Family<DeadLetterLabels, Counter>,
    /// [`Metrics::dead_letters`] of every subject and reason together
    /// (not exposed on its own: `/api/v1/status` shows it).
    pub dead_letters_total: Counter,
    /// Messages the consumer has not acknowledged yet: pending plus in flight.
    pub consumer_lag: Family<SubjectLabel, Gauge>,
    /// 1 while the subject's consumer answers the 2-second probe, else 0.
    pub consumer_up: Family<SubjectLabel, Gauge>,
    /// Times the subject's consumer task was started again after it ended
    /// or panicked.
    pub consumer_restarts: Family<SubjectLabel, Counter>,
    /// Time of one batched store write.
    pub insert_seconds: Histogram,
    /// Failed store writes (retried).
    pub store_failures: Counter,
    /// From a click's publication in JetStream to its stats including it
    /// (the commit of its batch), first deliveries only.
    pub click_freshness: Histogram,
    /// Clicks not stored because they were older than the raw retention.
    pub clicks_past_retention: Counter,
    /// Raw clicks dropped by the retention (their rollups stay).
    pub raw_clicks_dropped: Counter,
    /// (link, day) pairs recomputed into the rollups (ClickHouse).
    pub rollup_days_compacted: Counter,
    /// 1 while the compactor runs (ClickHouse).
    pub rollup_compacting: Gauge,
    /// Clicks marked before this time (Unix seconds) are in the rollups
    /// (ClickHouse); later ones are read from raw clicks meanwhile.
    pub rollup_compacted_through: Gauge,
    pub requests: Family<RequestLabels, Counter>,
    /// Bytes each JetStream stream holds, and its `max_bytes` limit (-1:
    /// none), as analytics last saw them (every 2 s).
    pub stream_bytes: Family<StreamLabel, Gauge>,
    pub stream_max_bytes: Family<StreamLabel, Gauge>,
    /// What `/ready` would answer, at the last scrape.
    pub ready: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("analytics");
        let processed = Family::<SubjectLabel, Counter>::default();
        registry.register(
            "events_processed",
            "Events stored and acknowledged, by subject",
            processed.clone(),
        );
        let dead_letters = Family::<DeadLetterLabels, Counter>::default();
        registry.register(
            "dead_letters",
            "Messages moved to the dead-letter subject, by subject and reason",
            dead_letters.clone(),
        );
        let consumer_lag = Family::<SubjectLabel, Gauge>::default();
        registry.register(
            "consumer_lag_messages",
            "Messages of a subject not yet acknowledged by its consumer",
            consumer_lag.clone(),
        );
        let consumer_up = Family::<SubjectLabel, Gauge>::default();
        registry.register(
            "consumer_up",
            "1 while the subject's durable consumer answers, else 0",
            consumer_up.clone(),
        );
        let consumer_restarts = Family::<SubjectLabel, Counter>::default();
        registry.register(
            "consumer_restarts",
            "Consumer tasks started again after they ended or panicked, by subject",
            consumer_restarts.clone(),
        );
        let ready = Gauge::default();
        registry.register(
            "ready",
            "1 when /ready would answer 200 (store, NATS and every consumer), at this scrape",
            ready.clone(),
        );
        // 0.5 ms to ~16 s.
        let insert_seconds = Histogram::new(exponential_buckets(0.000_5, 2.0, 16));
        registry.register(
            "store_insert_duration_seconds",
            "Time of one batched store write",
            insert_seconds.clone(),
        );
        let store_failures = Counter::default();
        registry.register(
            "store_write_failures",
            "Store writes that failed and were retried",
            store_failures.clone(),
        );
        // 5 ms to ~80 s.
        let click_freshness = Histogram::new(exponential_buckets(0.005, 2.0, 15));
        registry.register(
            "click_freshness_seconds",
            "From a click's publication to JetStream to its stats including it (first deliveries)",
            click_freshness.clone(),
        );
        let clicks_past_retention = Counter::default();
        registry.register(
            "clicks_past_retention",
            "Clicks not stored because they were older than ANALYTICS_RAW_RETENTION_DAYS",
            clicks_past_retention.clone(),
        );
        let raw_clicks_dropped = Counter::default();
        registry.register(
            "raw_clicks_dropped",
            "Raw clicks dropped by the retention; the rollups keep them counted",
            raw_clicks_dropped.clone(),
        );
        let rollup_days_compacted = Counter::default();
        registry.register(
            "rollup_days_compacted",
            "Days of a link recomputed into the rollups from raw clicks (ClickHouse)",
            rollup_days_compacted.clone(),
        );
        let rollup_compacting = Gauge::default();
        registry.register(
            "rollup_compacting",
            "1 while the compactor recomputes dirty days into the rollups (ClickHouse)",
            rollup_compacting.clone(),
        );
        let rollup_compacted_through = Gauge::default();
        registry.register(
            "rollup_compacted_through_seconds",
            "Clicks stored before this Unix time are in the rollups (ClickHouse)",
            rollup_compacted_through.clone(),
        );
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests served, by route and status",
            requests.clone(),
        );
        let stream_bytes = Family::<StreamLabel, Gauge>::default();
        registry.register(
            "stream_bytes",
            "Bytes the JetStream stream holds",
            stream_bytes.clone(),
        );
        let stream_max_bytes = Family::<StreamLabel, Gauge>::default();
        registry.register(
            "stream_max_bytes",
            "The stream's max_bytes limit (-1: none)",
            stream_max_bytes.clone(),
        );
        // Every series an alert reads exists from the start at 0, so its
        // first increase is seen (a series born at 3 shows no increase).
        for subject in contracts::subjects::ALL {
            let _ = processed.get_or_create(&SubjectLabel { subject });
            let _ = consumer_restarts.get_or_create(&SubjectLabel { subject });
            let contract = contracts::ErrorKind::ALL.map(contracts::ErrorKind::as_str);
            for reason in contract.into_iter().chain(CONSUMER_DEAD_LETTER_REASONS) {
                let _ = dead_letters.get_or_create(&DeadLetterLabels { subject, reason });
            }
        }
        Self {
            ready,
            registry,
            processed,
            dead_letters,
            dead_letters_total: Counter::default(),
            consumer_lag,
            consumer_up,
            consumer_restarts,
            insert_seconds,
            store_failures,
            click_freshness,
            clicks_past_retention,
            raw_clicks_dropped,
            rollup_days_compacted,
            rollup_compacting,
            rollup_compacted_through,
            requests,
            stream_bytes,
            stream_max_bytes,
        }
    }
}

impl Metrics {
    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}
