//! Click events: exactly one `shortener.url.clicked` per served redirect,
//! published in batches off the request path, and `click_count` kept in step.
//!
//! The redirect handler only puts the event on a bounded channel
//! ([`ClickRecorder`]); under overload that is backpressure, never loss. The
//! [`ClickPublisher`] task takes what is queued (up to a batch, or what
//! arrived within a short linger), publishes it with `Nats-Msg-Id` =
//! `event_id`, awaits the acks, retries only the unacknowledged ones, and
//! counts acknowledged clicks per link into the store every
//! `count_flush_interval`. On shutdown it closes the channel, publishes what
//! is left and flushes the counts. What a SIGKILL can lose is what sits in
//! the channel and the batch in flight: at most `channel_capacity` events,
//! and in practice the clicks of the last `linger`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use chrono::{DateTime, Datelike, Utc};
use contracts::{encode, Envelope, UrlClicked};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::configuration::Secret;
use crate::outbox::header_map;
use crate::service::PRODUCER;
use crate::store::{Link, LinkStore};

const MAX_REFERRER_CHARS: usize = 2048;
const MAX_USER_AGENT_CHARS: usize = 1024;

/// Tuning of the click pipeline.
#[derive(Debug, Clone)]
pub struct ClickSettings {
    /// Events queued before redirects wait for the publisher.
    pub channel_capacity: usize,
    /// Events per JetStream batch.
    pub batch_size: usize,
    /// How long a batch waits to fill once its first event arrived.
    pub linger: Duration,
    /// How often acknowledged clicks are added to the links' counters.
    pub count_flush_interval: Duration,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// How long shutdown may keep publishing and flushing.
    pub drain_timeout: Duration,
}

impl Default for ClickSettings {
    fn default() -> Self {
        Self {
            channel_capacity: 65_536,
            batch_size: 1_000,
            linger: Duration::from_millis(5),
            count_flush_interval: Duration::from_millis(250),
            min_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(15),
        }
    }
}

/// Derives `visitor_key`: a keyed hash of IP and user agent under a key that
/// changes every UTC day, so the raw IP never leaves the service and keys
/// cannot be linked across days. Counting unique visitors over several days
/// therefore counts a returning visitor once per day: the privacy trade-off.
#[derive(Clone)]
pub struct VisitorKeys {
    master: [u8; 32],
}

impl VisitorKeys {
    /// From the configured secret; without one, a random secret (keys are
    /// then stable only for this process).
    pub fn new(secret: Option<&Secret>) -> Self {
        let master = match secret {
            Some(secret) => {
                blake3::derive_key("url-shortener visitor key v1", secret.expose().as_bytes())
            }
            None => rand::random(),
        };
        Self { master }
    }

    pub fn key(&self, ip: IpAddr, user_agent: &str, at: DateTime<Utc>) -> String {
        let day = at.date_naive().num_days_from_ce().to_le_bytes();
        let day_key = blake3::keyed_hash(&self.master, &day);
        let mut hasher = blake3::Hasher::new_keyed(day_key.as_bytes());
        match ip {
            IpAddr::V4(v4) => hasher.update(&v4.octets()),
            IpAddr::V6(v6) => hasher.update(&v6.octets()),
        };
        hasher.update(&[0]);
        hasher.update(user_agent.as_bytes());
        hex::encode(&hasher.finalize().as_bytes()[..16])
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

fn truncated(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => text[..end].to_owned(),
        None => text.to_owned(),
    }
}

/// Hands clicks to the publisher; cheap to clone into every worker.
#[derive(Clone)]
pub struct ClickRecorder {
    tx: mpsc::Sender<Envelope<UrlClicked>>,
    visitors: VisitorKeys,
}

impl ClickRecorder {
    /// Events waiting for the publisher.
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Queues the click event of a redirect being served.
    pub async fn record(&self, link: &Link, context: ClickContext<'_>) {
        let at = Utc::now();
        let country = context
            .country
            .map(str::trim)
            .filter(|c| c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic()))
            .map(str::to_ascii_uppercase);
        let event = Envelope::new(
            PRODUCER,
            at,
            UrlClicked {
                url_id: link.id,
                short_code: link.code.clone(),
                clicked_at: at,
                referrer: context
                    .referrer
                    .filter(|r| !r.is_empty())
                    .map(|r| truncated(r, MAX_REFERRER_CHARS)),
                user_agent: context
                    .user_agent
                    .filter(|u| !u.is_empty())
                    .map(|u| truncated(u, MAX_USER_AGENT_CHARS)),
                visitor_key: context.ip.map(|ip| {
                    self.visitors
                        .key(ip, context.user_agent.unwrap_or_default(), at)
                }),
                country,
            },
        );
        if self.tx.send(event).await.is_err() {
            // Only after shutdown began; the redirect itself was still served.
            tracing::error!(code = %link.code, "click arrived after the click publisher stopped; it is not recorded");
        }
    }
}

/// What the click publisher reports to `/metrics`.
#[derive(Clone)]
pub struct ClickMetrics {
    pub published: Counter,
    pub failures: Counter,
    pub lag_seconds: Histogram,
}

impl Default for ClickMetrics {
    fn default() -> Self {
        Self {
            published: Counter::default(),
            failures: Counter::default(),
            // 1 ms to ~33 s.
            lag_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
        }
    }
}

/// Publishes queued clicks and keeps the counters; see the module documentation.
pub struct ClickPublisher {
    rx: mpsc::Receiver<Envelope<UrlClicked>>,
    store: Arc<dyn LinkStore>,
    jetstream: jetstream::Context,
    settings: ClickSettings,
    /// Acknowledged clicks not yet added to the store.
    counts: HashMap<Uuid, u64>,
    last_flush: Instant,
    metrics: ClickMetrics,
    /// Cancelled when shutdown begins; set by `run`.
    shutdown: CancellationToken,
    /// When unacknowledged clicks are given up: one deadline for the whole
    /// drain, set when shutdown begins, however many batches are left.
    give_up_at: Option<Instant>,
}

/// The two ends of the click pipeline.
pub fn click_pipeline(
    store: Arc<dyn LinkStore>,
    jetstream: jetstream::Context,
    visitors: VisitorKeys,
    settings: ClickSettings,
) -> (ClickRecorder, ClickPublisher) {
    let (tx, rx) = mpsc::channel(settings.channel_capacity);
    let publisher = ClickPublisher {
        rx,
        store,
        jetstream,
        settings,
        counts: HashMap::new(),
        last_flush: Instant::now(),
        metrics: ClickMetrics::default(),
        shutdown: CancellationToken::new(),
        give_up_at: None,
    };
    (ClickRecorder { tx, visitors }, publisher)
}

impl ClickPublisher {
    /// Its counters, for registering with `/metrics`.
    pub fn metrics(&self) -> ClickMetrics {
        self.metrics.clone()
    }

    /// Runs until `shutdown` is cancelled, then drains.
    pub async fn run(mut self, shutdown: CancellationToken) {
        self.shutdown = shutdown.clone();
        loop {
            let first = tokio::select! {
                event = self.rx.recv() => event,
                _ = tokio::time::sleep(self.settings.count_flush_interval), if !self.counts.is_empty() => {
                    self.flush_counts().await;
                    continue;
                }
                _ = shutdown.cancelled() => None,
            };
            let Some(first) = first else { break };
            let batch = self.fill_batch(first).await;
            self.publish(batch).await;
            if self.last_flush.elapsed() >= self.settings.count_flush_interval {
                self.flush_counts().await;
            }
        }
        self.drain().await;
    }

    /// The first event plus whatever arrives within the linger, up to a batch.
    async fn fill_batch(&mut self, first: Envelope<UrlClicked>) -> Vec<Envelope<UrlClicked>> {
        let mut batch = Vec::with_capacity(self.settings.batch_size);
        batch.push(first);
        let deadline = tokio::time::Instant::now() + self.settings.linger;
        while batch.len() < self.settings.batch_size {
            match self.rx.try_recv() {
                Ok(event) => batch.push(event),
                Err(_) => match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                    Ok(Some(event)) => batch.push(event),
                    _ => break,
                },
            }
        }
        batch
    }

    /// Publishes until every event is acknowledged; gives up only when
    /// shutdown's drain time is over (and says how many were lost).
    async fn publish(&mut self, mut batch: Vec<Envelope<UrlClicked>>) {
        let mut backoff = self.settings.min_backoff;
        loop {
            // Checked before the attempt too: once the drain time is over,
            // an attempt against an unreachable NATS would only add one ack
            // timeout per remaining batch.
            if self.give_up_at.is_some_and(|at| Instant::now() >= at) {
                tracing::error!(
                    lost = batch.len(),
                    "click publisher gave up at shutdown; these clicks are lost"
                );
                return;
            }
            batch = self.publish_once(batch).await;
            if batch.is_empty() {
                return;
            }
            if self.shutdown.is_cancelled() {
                self.give_up_at
                    .get_or_insert_with(|| Instant::now() + self.settings.drain_timeout);
            }
            tracing::warn!(pending = batch.len(), retry_in = ?backoff, "clicks not acknowledged by JetStream; retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.settings.max_backoff);
        }
    }

    /// One attempt; returns the events that were not acknowledged.
    async fn publish_once(
        &mut self,
        batch: Vec<Envelope<UrlClicked>>,
    ) -> Vec<Envelope<UrlClicked>> {
        let mut acks = Vec::with_capacity(batch.len());
        let mut unsent = Vec::new();
        for event in batch {
            let payload = match encode(&event) {
                Ok(payload) => payload,
                Err(error) => {
                    // Built from validated values above; this would be a bug.
                    tracing::error!(%error, "click event breaks its contract; dropped");
                    continue;
                }
            };
            match self
                .jetstream
                .publish_with_headers(event.subject(), header_map(event.headers()), payload.into())
                .await
            {
                Ok(ack) => acks.push((event, ack)),
                Err(_) => unsent.push(event),
            }
        }
        for (event, ack) in acks {
            match ack.await {
                Ok(_) => {
                    *self.counts.entry(event.data.url_id).or_default() += 1;
                    self.metrics.published.inc();
                    let lag = (Utc::now() - event.occurred_at)
                        .to_std()
                        .unwrap_or_default();
                    self.metrics.lag_seconds.observe(lag.as_secs_f64());
                }
                Err(_) => unsent.push(event),
            }
        }
        self.metrics.failures.inc_by(unsent.len() as u64);
        unsent
    }

    async fn flush_counts(&mut self) {
        self.last_flush = Instant::now();
        if self.counts.is_empty() {
            return;
        }
        let counts: Vec<(Uuid, u64)> = self.counts.iter().map(|(id, n)| (*id, *n)).collect();
        match self.store.add_clicks(&counts).await {
            Ok(()) => self.counts.clear(),
            Err(error) => {
                tracing::warn!(%error, links = counts.len(), "click counts not saved; retrying with the next flush")
            }
        }
    }

    async fn drain(&mut self) {
        self.rx.close();
        let deadline = *self
            .give_up_at
            .get_or_insert_with(|| Instant::now() + self.settings.drain_timeout);
        while let Some(first) = self.rx.recv().await {
            let batch = self.fill_batch(first).await;
            self.publish(batch).await;
        }
        while !self.counts.is_empty() && Instant::now() < deadline {
            self.flush_counts().await;
            if !self.counts.is_empty() {
                tokio::time::sleep(self.settings.min_backoff).await;
            }
        }
        if self.counts.is_empty() {
            tracing::info!("click publisher drained");
        } else {
            tracing::error!(
                links = self.counts.len(),
                "click counts could not be saved before shutdown"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visitor_keys_hide_the_ip_and_change_daily() {
        let keys = VisitorKeys::new(Some(&Secret::new("s")));
        let ip: IpAddr = "203.0.113.9".parse().unwrap();
        let day1 = DateTime::from_timestamp(1_763_700_000, 0).unwrap();
        let same_day = day1 + chrono::Duration::hours(1);
        let next_day = day1 + chrono::Duration::days(1);
        let key = keys.key(ip, "UA", day1);
        assert_eq!(key.len(), 32);
        assert!(!key.contains("203"));
        assert_eq!(key, keys.key(ip, "UA", same_day));
        assert_ne!(key, keys.key(ip, "UA", next_day));
        assert_ne!(key, keys.key(ip, "other UA", day1));
        assert_ne!(
            key,
            VisitorKeys::new(Some(&Secret::new("t"))).key(ip, "UA", day1)
        );
    }

    #[test]
    fn long_headers_are_cut_on_character_boundaries() {
        assert_eq!(truncated("äbc", 2), "äb");
        assert_eq!(truncated("ab", 5), "ab");
    }
}
