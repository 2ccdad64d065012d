//! Click events: one `shortener.url.clicked` per served redirect, and the
//! links' `click_count` kept in step, without the redirect ever waiting.
//!
//! ```text
//!  redirect ──try_send──► queue ──► ClickPublisher ──ack──► counts ──► CountFlusher ──► store
//!                                        │ no ack in time                (own task)
//!                                        ▼
//!                                  store: click_spool ──► SpoolRelay ──ack──► delete + count
//! ```
//!
//! - [`ClickRecorder::record`] is a non-blocking hand-off onto a bounded
//!   queue. A full queue drops the click and counts it
//!   (`shortener_clicks_dropped_total{reason="queue_full"}`); the redirect
//!   is served all the same.
//! - [`ClickPublisher`] takes batches off the queue and publishes them with
//!   one deadline from the first send. Whatever JetStream did not
//!   acknowledge by then, or everything while NATS is disconnected, goes to
//!   the store's click spool in one transaction, so the queue keeps draining
//!   through a broker outage of any length. A click is dropped (and counted,
//!   and logged at most once a second) only when both the broker and the
//!   store refuse it.
//! - [`SpoolRelay`] publishes spooled clicks once JetStream is back, with
//!   their own `event_id` as `Nats-Msg-Id`, and then deletes them and adds
//!   them to their links' counters in one transaction: counted exactly once.
//! - [`CountFlusher`] adds directly published clicks to the counters in its
//!   own task, so a slow store never holds up publishing.
//! - Shutdown: the publisher publishes or spools what is queued, then the
//!   flusher saves the counts. What a SIGKILL loses is what sat in the queue
//!   and in the batch in flight.

mod counts;
mod publisher;
mod relay;

use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use chrono::{DateTime, Datelike, Utc};
use contracts::{ClickEvent, ClickFacts, VisitorKey};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use tokio::sync::Notify;
use tokio::sync::mpsc::{self, error::TrySendError};

pub use counts::{ClickCounts, CountFlusher};
pub use publisher::ClickPublisher;
pub use relay::SpoolRelay;

use crate::publish::Publisher;
use crate::service::PRODUCER;
use crate::store::{Link, Store};
use service_kit::Backoff;
use service_kit::settings::{ExposeSecret, SecretString};

/// Tuning of the click pipeline.
#[derive(Debug, Clone)]
pub struct ClickSettings {
    /// Clicks queued for the publisher; beyond this they are dropped, counted.
    pub channel_capacity: usize,
    /// Clicks per JetStream batch, per spool transaction and per relay round.
    pub batch_size: usize,
    /// How long a batch waits to fill once its first click arrived.
    pub linger: Duration,
    /// How long a batch may take from its first send to its last ack.
    pub publish_timeout: Duration,
    /// How long one spool write may take before it is tried again.
    pub store_timeout: Duration,
    /// Spool writes of one batch before its clicks are dropped.
    pub spool_attempts: usize,
    /// How often directly published clicks are added to the counters.
    pub count_flush_interval: Duration,
    /// How often the relay looks at the spool when nobody woke it.
    pub relay_poll_interval: Duration,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// How long shutdown may keep publishing, spooling and flushing.
    pub drain_timeout: Duration,
    /// Servers the stream is created on (`SHORTENER_STREAM_REPLICAS`).
    pub stream_replicas: usize,
}

impl Default for ClickSettings {
    fn default() -> Self {
        Self {
            channel_capacity: 65_536,
            batch_size: 1_000,
            linger: Duration::from_millis(20),
            publish_timeout: Duration::from_secs(2),
            store_timeout: Duration::from_secs(5),
            spool_attempts: 3,
            count_flush_interval: Duration::from_secs(5),
            relay_poll_interval: Duration::from_secs(1),
            min_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(15),
            stream_replicas: 1,
        }
    }
}

/// Derives `visitor_key`: a keyed hash of IP and user agent under a key that
/// changes every UTC day, so the raw IP never leaves the service and keys
/// cannot be linked across days. Counting unique visitors over several days
/// therefore counts a returning visitor once per day: the privacy trade-off.
/// The day's key is derived once per day, not once per click.
#[derive(Clone)]
pub struct VisitorKeys {
    master: [u8; 32],
    /// The day (days since the common era) and its key.
    today: Arc<RwLock<(i32, [u8; 32])>>,
}

impl VisitorKeys {
    /// From the configured secret; without one, a random secret (keys are
    /// then stable only for this process).
    pub fn new(secret: Option<&SecretString>) -> Self {
        let master = match secret {
            Some(secret) => blake3::derive_key(
                "url-shortener visitor key v1",
                secret.expose_secret().as_bytes(),
            ),
            None => rand::random(),
        };
        Self {
            master,
            today: Arc::new(RwLock::new((i32::MIN, [0; 32]))),
        }
    }

    fn day_key(&self, day: i32) -> [u8; 32] {
        if let Ok(today) = self.today.read() {
            if today.0 == day {
                return today.1;
            }
        }
        let key = *blake3::keyed_hash(&self.master, &day.to_le_bytes()).as_bytes();
        if let Ok(mut today) = self.today.write() {
            *today = (day, key);
        }
        key
    }

    pub fn key(&self, ip: IpAddr, user_agent: &str, at: DateTime<Utc>) -> VisitorKey {
        let day_key = self.day_key(at.date_naive().num_days_from_ce());
        let mut hasher = blake3::Hasher::new_keyed(&day_key);
        match ip {
            IpAddr::V4(v4) => hasher.update(&v4.octets()),
            IpAddr::V6(v6) => hasher.update(&v6.octets()),
        };
        hasher.update(&[0]);
        hasher.update(user_agent.as_bytes());
        let mut key = [0; 16];
        key.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
        VisitorKey(key)
    }
}

/// What the redirect handler knows about a click.
#[derive(Debug, Default)]
pub struct ClickContext<'a> {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<&'a str>,
    pub referrer: Option<&'a str>,
    /// ISO 3166-1 alpha-2, from a header set by a trusted proxy or CDN.
    pub country: Option<&'a str>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DropLabels {
    pub reason: &'static str,
}

/// Why clicks were dropped: counted, and logged at most once a second with
/// how many, never silently and never a log line per click.
pub struct Drops {
    pub counter: Family<DropLabels, Counter>,
    /// When the last line was logged, and what was dropped since.
    unlogged: Mutex<(Instant, u64)>,
}

/// Every reason a click can be dropped for.
pub const DROP_REASONS: [&str; 4] = [
    "queue_full",
    "broker_and_store_unavailable",
    "shutting_down",
    "invalid",
];

impl Default for Drops {
    fn default() -> Self {
        // Each reason's series exists from the start at 0, so an alert on
        // its increase sees the first drop.
        let counter = Family::default();
        for reason in DROP_REASONS {
            let _ = counter.get_or_create(&DropLabels { reason });
        }
        Self {
            counter,
            unlogged: Mutex::new((Instant::now() - Duration::from_secs(1), 0)),
        }
    }
}

impl Drops {
    pub fn add(&self, reason: &'static str, clicks: u64) {
        if clicks == 0 {
            return;
        }
        self.counter
            .get_or_create(&DropLabels { reason })
            .inc_by(clicks);
        let Ok(mut unlogged) = self.unlogged.lock() else {
            return;
        };
        unlogged.1 += clicks;
        if unlogged.0.elapsed() >= Duration::from_secs(1) {
            tracing::error!(
                dropped = unlogged.1,
                reason,
                "click events dropped since the last report; see shortener_clicks_dropped_total"
            );
            *unlogged = (Instant::now(), 0);
        }
    }
}

/// What the click pipeline reports to `/metrics`.
#[derive(Clone)]
pub struct ClickMetrics {
    /// Acknowledged by JetStream, directly or from the spool.
    pub published: Counter,
    /// Not acknowledged in time (then spooled).
    pub failures: Counter,
    pub spooled: Counter,
    pub relayed: Counter,
    pub lag_seconds: Histogram,
    pub drops: Arc<Drops>,
}

impl Default for ClickMetrics {
    fn default() -> Self {
        Self {
            published: Counter::default(),
            failures: Counter::default(),
            spooled: Counter::default(),
            relayed: Counter::default(),
            // 1 ms to ~9 h: spooled clicks can be published hours later.
            lag_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 25)),
            drops: Arc::default(),
        }
    }
}

impl ClickMetrics {
    /// Counts clicks JetStream acknowledged at `now` (one clock read per
    /// batch).
    fn acknowledged(&self, clicked_at: DateTime<Utc>, now: DateTime<Utc>) {
        self.published.inc();
        let lag = (now - clicked_at).to_std().unwrap_or_default();
        self.lag_seconds.observe(lag.as_secs_f64());
    }
}

/// A click on its way to the publisher, with the `traceparent` of its
/// redirect when that redirect was sampled for tracing.
pub struct QueuedClick {
    pub event: ClickEvent,
    pub traceparent: Option<String>,
}

/// Hands clicks to the publisher; cheap to clone into every worker.
#[derive(Clone)]
pub struct ClickRecorder {
    tx: mpsc::Sender<QueuedClick>,
    visitors: VisitorKeys,
    drops: Arc<Drops>,
}

impl ClickRecorder {
    /// Clicks waiting for the publisher.
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Queues the click of a redirect being served. Never waits: when the
    /// queue is full the click is dropped and counted.
    pub fn record(&self, link: &Link, context: ClickContext<'_>) {
        let at = Utc::now();
        let facts = ClickFacts {
            url_id: link.id,
            short_code: link.code.as_str(),
            clicked_at: at,
            referrer: context.referrer,
            user_agent: context.user_agent,
            visitor_key: context.ip.map(|ip| {
                self.visitors
                    .key(ip, context.user_agent.unwrap_or_default(), at)
            }),
            country: context.country,
        };
        let event = match ClickEvent::new(PRODUCER, facts) {
            Ok(event) => event,
            Err(error) => {
                // Stored codes were validated when the link was made.
                tracing::error!(%error, code = %link.code, "a stored link makes no valid click event");
                return self.drops.add("invalid", 1);
            }
        };
        let click = QueuedClick {
            event,
            traceparent: service_kit::telemetry::current_traceparent(),
        };
        match self.tx.try_send(click) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => self.drops.add("queue_full", 1),
            Err(TrySendError::Closed(_)) => self.drops.add("shutting_down", 1),
        }
    }
}

/// Every part of the click pipeline, wired together; see the module docs.
pub struct ClickPipeline {
    pub recorder: ClickRecorder,
    pub publisher: ClickPublisher,
    pub relay: SpoolRelay,
    pub flusher: CountFlusher,
    pub metrics: ClickMetrics,
}

/// Builds the pipeline over the store and the NATS connection.
pub fn click_pipeline(
    store: Arc<dyn Store>,
    nats: async_nats::Client,
    jetstream: jetstream::Context,
    visitors: VisitorKeys,
    settings: ClickSettings,
) -> ClickPipeline {
    let metrics = ClickMetrics::default();
    let (tx, rx) = mpsc::channel(settings.channel_capacity);
    let counts = Arc::new(ClickCounts::default());
    let spooled = Arc::new(Notify::new());
    ClickPipeline {
        recorder: ClickRecorder {
            tx,
            visitors,
            drops: metrics.drops.clone(),
        },
        publisher: ClickPublisher {
            rx,
            store: store.clone(),
            nats: nats.clone(),
            publisher: Publisher::new(nats.clone()),
            settings: settings.clone(),
            counts: counts.clone(),
            metrics: metrics.clone(),
            spooled: spooled.clone(),
        },
        relay: SpoolRelay {
            store: store.clone(),
            publisher: Publisher::new(nats.clone()),
            nats,
            jetstream,
            settings: settings.clone(),
            metrics: metrics.clone(),
            wake: spooled,
        },
        flusher: CountFlusher {
            store,
            counts,
            interval: settings.count_flush_interval,
            backoff: Backoff::new(settings.min_backoff, settings.max_backoff),
            drain_timeout: settings.drain_timeout,
        },
        metrics,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visitor_keys_hide_the_ip_and_change_daily() {
        let keys = VisitorKeys::new(Some(&SecretString::from("s")));
        let ip: IpAddr = "203.0.113.9".parse().unwrap();
        let day1 = DateTime::from_timestamp(1_763_700_000, 0).unwrap();
        let same_day = day1 + chrono::Duration::hours(1);
        let next_day = day1 + chrono::Duration::days(1);
        let key = keys.key(ip, "UA", day1);
        assert_eq!(key.to_hex().len(), 32);
        assert!(!key.to_hex().contains("203"));
        assert_eq!(key, keys.key(ip, "UA", same_day));
        assert_ne!(key, keys.key(ip, "UA", next_day));
        // Back to the first day: the cached day key is replaced, not reused.
        assert_eq!(key, keys.key(ip, "UA", day1));
        assert_ne!(key, keys.key(ip, "other UA", day1));
        assert_ne!(
            key,
            VisitorKeys::new(Some(&SecretString::from("t"))).key(ip, "UA", day1)
        );
    }

    #[test]
    fn visitor_keys_are_those_of_the_first_release() {
        // The same derivation as before the day key was cached: a changed
        // key would split every visitor of the day of an upgrade in two.
        let keys = VisitorKeys::new(Some(&SecretString::from("s")));
        let at = DateTime::from_timestamp(1_763_700_000, 0).unwrap();
        let master = blake3::derive_key("url-shortener visitor key v1", b"s");
        let day = at.date_naive().num_days_from_ce().to_le_bytes();
        let day_key = blake3::keyed_hash(&master, &day);
        let mut hasher = blake3::Hasher::new_keyed(day_key.as_bytes());
        hasher.update(&[203, 0, 113, 9, 0]);
        hasher.update(b"UA");
        assert_eq!(
            keys.key("203.0.113.9".parse().unwrap(), "UA", at).to_hex(),
            hex::encode(&hasher.finalize().as_bytes()[..16])
        );
    }
}
