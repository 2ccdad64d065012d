//! Durable JetStream consumers: one pull consumer per subject, so a slow or
//! broken subject never holds up another and each has its own lag.
//!
//! Each consumer fetches in batches, decodes every message against its
//! contract, writes the batch to the store in one go and acknowledges the
//! messages only once the write returned: a crash before that means a
//! redelivery, which the store absorbs (rows are unique by `event_id`, link
//! copies merge idempotently). A message that can never be processed (not
//! JSON, breaking its schema, an unknown version, the wrong event type) is
//! republished to `analytics.dlq.<subject>` with the reason, the original
//! payload and headers, and then acknowledged: never dropped silently, never
//! blocking the stream. A store outage is waited out (with backoff, keeping
//! the messages claimed by progress acks), so it cannot use up deliveries;
//! a message that nevertheless reaches its last delivery while the store
//! fails is put on the dead-letter subject too, so it can be re-driven.

//!
//! The module's parts: `decode` (payloads to rows), `commit` (the store
//! write and the acks), `dead_letters`, `health` (whether each consumer
//! answers) and `supervise` (the tasks, started again when they end).

mod commit;
pub mod compactor;
mod dead_letters;
mod decode;
mod health;
pub mod retention;
pub mod supervise;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::jetstream::consumer::pull::{self, Stream as PullStream};
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::{self, Message};
use contracts::stream::{dead_letter_stream_config, ensure_stream, shortener_stream_config};
use contracts::subjects;
use futures::StreamExt;
use service_kit::Backoff;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::links::CopyKeeper;
use crate::metrics::Metrics;
use crate::store::{ClickLog, LinkCopies};

use decode::Decoded;
pub use health::{CONSUMER_SILENCE_LIMIT, ConsumerHealth};

/// The subjects analytics consumes, one durable consumer each.
pub const SUBJECTS: [&str; 4] = [
    subjects::URL_CREATED,
    subjects::URL_UPDATED,
    subjects::URL_DELETED,
    subjects::URL_CLICKED,
];

/// Tuning of the consumers.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    /// Messages per fetch and per store write.
    pub batch_size: usize,
    /// How long a batch waits to fill once its first message arrived.
    pub linger: Duration,
    /// How long the server waits for an ack before redelivering.
    pub ack_wait: Duration,
    /// Deliveries before the server gives a message up (it is dead-lettered first).
    pub max_deliver: i64,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// Test hook: the task of this subject panics once, at its first batch,
    /// so a test can see it restarted. Never set outside tests.
    pub panic_once_on: Option<&'static str>,
    /// Durable names are `<prefix>-<subject with dashes>`: `analytics` for
    /// the service, another for a replay consuming beside it.
    pub consumer_prefix: &'static str,
    /// The server removes the consumers after this long without a client
    /// (a replay's, should it be killed); `None` keeps them for good.
    pub inactive_threshold: Option<Duration>,
    /// Raw clicks older than this many whole UTC days are dropped (the
    /// rollups keep them counted); a click that old arriving now is not
    /// stored, since its duplicate could no longer be recognised.
    pub raw_retention_days: Option<u32>,
    /// Servers the streams are created on (`ANALYTICS_STREAM_REPLICAS`).
    pub stream_replicas: usize,
}

impl ConsumerSettings {
    /// The oldest click time kept at `now` (seconds), under the retention.
    pub fn raw_cutoff(&self, now: i64) -> Option<i64> {
        self.raw_retention_days
            .map(|days| crate::store::rollup::floor(now, 86_400) - i64::from(days) * 86_400)
    }

    /// The wait between attempts at anything that failed, from
    /// `min_backoff` doubling up to `max_backoff`.
    pub fn backoff(&self) -> Backoff {
        Backoff::new(self.min_backoff, self.max_backoff)
    }
}

impl Default for ConsumerSettings {
    fn default() -> Self {
        Self {
            batch_size: 10_000,
            linger: Duration::from_millis(50),
            ack_wait: Duration::from_secs(30),
            max_deliver: 20,
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            panic_once_on: None,
            stream_replicas: 1,
            consumer_prefix: SERVICE_CONSUMERS,
            inactive_threshold: None,
            raw_retention_days: None,
        }
    }
}

/// The service's durable consumers' prefix.
pub const SERVICE_CONSUMERS: &str = "analytics";

/// Durable name of the consumer of `subject` under `prefix`:
/// `analytics-shortener-url-clicked` for the service.
pub fn consumer_name(prefix: &str, subject: &str) -> String {
    format!("{prefix}-{}", subject.replace('.', "-"))
}

fn consumer_config(subject: &str, settings: &ConsumerSettings) -> pull::Config {
    let name = consumer_name(settings.consumer_prefix, subject);
    // Redeliveries of unacknowledged messages back off: ack_wait, then 2x, 4x, ...
    let backoff = (0..4).map(|i| settings.ack_wait * (1 << i)).collect();
    pull::Config {
        durable_name: Some(name.clone()),
        name: Some(name),
        description: Some(format!("analytics: stores {subject}")),
        // One subject per consumer: nats-server 2.9 ignores `filter_subjects`.
        filter_subject: subject.to_owned(),
        deliver_policy: DeliverPolicy::All,
        ack_policy: AckPolicy::Explicit,
        ack_wait: settings.ack_wait,
        max_deliver: settings.max_deliver,
        backoff,
        max_ack_pending: i64::try_from(settings.batch_size * 4).unwrap_or(i64::MAX),
        inactive_threshold: settings.inactive_threshold.unwrap_or_default(),
        ..Default::default()
    }
}

/// Creates (or finds) the durable consumer of every subject.
pub async fn ensure_consumers(
    stream: &jetstream::stream::Stream,
    settings: &ConsumerSettings,
) -> anyhow::Result<Vec<(&'static str, PullConsumer)>> {
    let mut consumers = Vec::new();
    for subject in SUBJECTS {
        let consumer = stream
            .get_or_create_consumer(
                &consumer_name(settings.consumer_prefix, subject),
                consumer_config(subject, settings),
            )
            .await
            .map_err(|e| anyhow::anyhow!("failed to create the consumer of {subject}: {e}"))?;
        consumers.push((subject, consumer));
    }
    Ok(consumers)
}

/// Deletes the durable consumers under `prefix`, those that exist.
pub async fn delete_consumers(
    stream: &jetstream::stream::Stream,
    prefix: &str,
) -> anyhow::Result<()> {
    for subject in SUBJECTS {
        let name = consumer_name(prefix, subject);
        match stream.delete_consumer(&name).await {
            Ok(_) => {}
            Err(error) if error.to_string().contains("not found") => {}
            Err(error) => anyhow::bail!("failed to delete consumer {name}: {error}"),
        }
    }
    Ok(())
}

/// Messages of `consumer` not acknowledged yet (waiting plus in flight).
pub async fn lag(consumer: &mut PullConsumer) -> anyhow::Result<u64> {
    let info = consumer.info().await?;
    Ok(info.num_pending + u64::try_from(info.num_ack_pending).unwrap_or_default())
}

/// Turns messages into stored rows; shared by the consumers of every subject.
pub struct Ingest {
    pub clicks: Arc<dyn ClickLog>,
    pub links: Arc<CopyKeeper>,
    pub jetstream: jetstream::Context,
    pub metrics: Arc<Metrics>,
    pub settings: ConsumerSettings,
    pub health: Arc<ConsumerHealth>,
    /// Whether the test hook of `settings.panic_once_on` fired already.
    pub panicked: AtomicBool,
}

impl Ingest {
    pub fn new(
        clicks: Arc<dyn ClickLog>,
        copies: Arc<dyn LinkCopies>,
        jetstream: jetstream::Context,
        metrics: Arc<Metrics>,
        settings: ConsumerSettings,
    ) -> Self {
        Self {
            links: Arc::new(CopyKeeper::new(copies)),
            clicks,
            jetstream,
            metrics,
            settings,
            health: Arc::new(ConsumerHealth::default()),
            panicked: AtomicBool::new(false),
        }
    }

    /// Consumes `subject` until `shutdown`; the batch in hand is finished first.
    ///
    /// After a pull stream ends or fails, the stream and the durable
    /// consumer are looked up again and created if they are gone: a broker
    /// restarted on an empty data directory, or an operator's
    /// `consumer rm`, must not leave ingestion pulling from nothing.
    pub async fn run(
        self: Arc<Self>,
        subject: &'static str,
        mut consumer: PullConsumer,
        shutdown: CancellationToken,
    ) {
        let mut backoff = self.settings.backoff();
        let mut recheck = false;
        while !shutdown.is_cancelled() {
            if recheck {
                match self.recreate(subject).await {
                    Ok(found) => consumer = found,
                    Err(error) => {
                        tracing::warn!(subject, error = %format!("{error:#}"), "cannot find or create the consumer; retrying");
                        backoff.wait(shutdown.cancelled()).await;
                        continue;
                    }
                }
            }
            recheck = true;
            let messages = consumer
                .stream()
                .max_messages_per_batch(self.settings.batch_size)
                .heartbeat(Duration::from_secs(5))
                .expires(Duration::from_secs(30))
                .messages()
                .await;
            match messages {
                Ok(messages) => {
                    backoff.reset();
                    self.consume(subject, messages, &shutdown).await;
                }
                Err(error) => {
                    tracing::warn!(subject, %error, "cannot pull messages; retrying");
                    backoff.wait(shutdown.cancelled()).await;
                }
            }
        }
        tracing::info!(subject, "consumer stopped");
    }

    /// The durable consumer of `subject`, with its streams, created if gone.
    pub async fn recreate(&self, subject: &'static str) -> anyhow::Result<PullConsumer> {
        let replicas = self.settings.stream_replicas;
        let stream = ensure_stream(&self.jetstream, shortener_stream_config(replicas)).await?;
        ensure_stream(&self.jetstream, dead_letter_stream_config(replicas)).await?;
        stream
            .get_or_create_consumer(
                &consumer_name(self.settings.consumer_prefix, subject),
                consumer_config(subject, &self.settings),
            )
            .await
            .map_err(|e| anyhow::anyhow!("failed to create the consumer of {subject}: {e}"))
    }

    /// Handles batches from one pull stream until it fails or shutdown.
    ///
    /// Two batches are in hand at a time: while one is written to the store
    /// and acknowledged, the next is gathered and decoded, so neither the
    /// store's round trip nor decoding leaves the other idle. Writes stay in
    /// stream order: a batch is written only after the one before it.
    async fn consume(
        &self,
        subject: &'static str,
        mut messages: PullStream,
        shutdown: &CancellationToken,
    ) {
        let mut decoded: Option<Decoded> = None;
        loop {
            let commit = async {
                if let Some(batch) = decoded.take() {
                    self.commit(subject, batch, shutdown).await;
                }
            };
            let next = async {
                let batch = self.gather(subject, &mut messages, shutdown).await?;
                if self.settings.panic_once_on == Some(subject)
                    && !self.panicked.swap(true, Ordering::SeqCst)
                {
                    panic!("test hook: the {subject} consumer task panics once");
                }
                self.decode(subject, batch, shutdown).await
            };
            let ((), next) = tokio::join!(commit, next);
            match next {
                Some(batch) => decoded = Some(batch),
                None => return,
            }
        }
    }

    /// The next batch: the first message, then whatever arrives within the
    /// linger, up to a batch. None when the pull stream ended or failed, or
    /// at shutdown.
    async fn gather(
        &self,
        subject: &'static str,
        messages: &mut PullStream,
        shutdown: &CancellationToken,
    ) -> Option<Vec<Message>> {
        let first = tokio::select! {
            _ = shutdown.cancelled() => return None,
            next = messages.next() => next,
        };
        let first = match first {
            Some(Ok(message)) => message,
            Some(Err(error)) => {
                tracing::warn!(subject, %error, "pull stream failed; starting a new one");
                return None;
            }
            None => return None,
        };
        let mut batch = vec![first];
        let deadline = Instant::now() + self.settings.linger;
        while batch.len() < self.settings.batch_size {
            match tokio::time::timeout_at(deadline, messages.next()).await {
                Ok(Some(Ok(message))) => batch.push(message),
                Ok(Some(Err(error))) => {
                    tracing::warn!(subject, %error, "pull stream failed mid-batch");
                    break;
                }
                Ok(None) | Err(_) => break,
            }
        }
        Some(batch)
    }
}
