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

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::pull::{self, Stream as PullStream};
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::{self, AckKind, Message};
use contracts::headers::{
    DLQ_DELIVERIES, DLQ_ERROR, DLQ_ORIGINAL_SEQUENCE, DLQ_ORIGINAL_SUBJECT, DLQ_PATH, DLQ_REASON,
};
use contracts::subjects::{self, dead_letter_subject};
use contracts::{decode, ContractError, UrlClicked, UrlCreated, UrlDeleted, UrlUpdated};
use futures::StreamExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::links::LinkCopies;
use crate::metrics::{DeadLetterLabels, Metrics, SubjectLabel};
use crate::model::{ClickRow, LinkChange};
use crate::store::{AnalyticsStore, StoreError};

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
        }
    }
}

/// Durable name of the consumer of `subject`: `analytics-shortener-url-clicked`.
pub fn consumer_name(subject: &str) -> String {
    format!("analytics-{}", subject.replace('.', "-"))
}

fn consumer_config(subject: &str, settings: &ConsumerSettings) -> pull::Config {
    let name = consumer_name(subject);
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
            .get_or_create_consumer(&consumer_name(subject), consumer_config(subject, settings))
            .await
            .map_err(|e| anyhow::anyhow!("failed to create the consumer of {subject}: {e}"))?;
        consumers.push((subject, consumer));
    }
    Ok(consumers)
}

/// Deletes the durable consumers (replay starts them over from the first message).
pub async fn delete_consumers(stream: &jetstream::stream::Stream) -> anyhow::Result<()> {
    for subject in SUBJECTS {
        let name = consumer_name(subject);
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

/// What a message decoded to.
enum Decoded {
    Click(ClickRow),
    Link(LinkChange),
}

fn decode_for(subject: &str, payload: &[u8]) -> Result<Decoded, ContractError> {
    Ok(match subject {
        subjects::URL_CLICKED => {
            Decoded::Click(ClickRow::from_event(&decode::<UrlClicked>(payload)?))
        }
        subjects::URL_CREATED => Decoded::Link(LinkChange::Created(decode::<UrlCreated>(payload)?)),
        subjects::URL_UPDATED => Decoded::Link(LinkChange::Updated(decode::<UrlUpdated>(payload)?)),
        _ => Decoded::Link(LinkChange::Deleted(decode::<UrlDeleted>(payload)?)),
    })
}

/// Below this many messages a batch is decoded in place.
const PARALLEL_DECODE_FROM: usize = 512;

/// Decodes (validates, enriches) a batch. Decoding is the CPU-bound part of
/// ingest, so a large batch is split over the blocking pool's threads while
/// the consumers' own thread stays free for I/O.
async fn decode_all(
    subject: &'static str,
    batch: &[Message],
) -> Vec<Result<Decoded, ContractError>> {
    if batch.len() < PARALLEL_DECODE_FROM {
        return batch
            .iter()
            .map(|m| decode_for(subject, &m.payload))
            .collect();
    }
    let parts = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .max(2);
    let chunk = batch.len().div_ceil(parts);
    let tasks: Vec<_> = batch
        .chunks(chunk)
        .map(|messages| {
            let payloads: Vec<_> = messages.iter().map(|m| m.payload.clone()).collect();
            tokio::task::spawn_blocking(move || {
                payloads
                    .iter()
                    .map(|p| decode_for(subject, p))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut decoded = Vec::with_capacity(batch.len());
    for task in tasks {
        decoded.extend(task.await.expect("decoding does not panic"));
    }
    decoded
}

/// Why a message goes to the dead-letter subject.
struct DeadLetter<'a> {
    reason: &'static str,
    error: String,
    path: Option<&'a str>,
}

/// Turns messages into stored rows; shared by the consumers of every subject.
pub struct Ingest {
    pub store: Arc<dyn AnalyticsStore>,
    pub links: Arc<LinkCopies>,
    pub jetstream: jetstream::Context,
    pub metrics: Arc<Metrics>,
    pub settings: ConsumerSettings,
}

impl Ingest {
    /// Consumes `subject` until `shutdown`; the batch in hand is finished first.
    pub async fn run(
        self: Arc<Self>,
        subject: &'static str,
        consumer: PullConsumer,
        shutdown: CancellationToken,
    ) {
        let mut backoff = self.settings.min_backoff;
        while !shutdown.is_cancelled() {
            let messages = consumer
                .stream()
                .max_messages_per_batch(self.settings.batch_size)
                .heartbeat(Duration::from_secs(5))
                .expires(Duration::from_secs(30))
                .messages()
                .await;
            match messages {
                Ok(messages) => {
                    backoff = self.settings.min_backoff;
                    self.consume(subject, messages, &shutdown).await;
                }
                Err(error) => {
                    tracing::warn!(subject, %error, retry_in = ?backoff, "cannot pull messages; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => {}
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(self.settings.max_backoff);
                }
            }
        }
        tracing::info!(subject, "consumer stopped");
    }

    /// Handles batches from one pull stream until it fails or shutdown.
    async fn consume(
        &self,
        subject: &'static str,
        mut messages: PullStream,
        shutdown: &CancellationToken,
    ) {
        loop {
            let first = tokio::select! {
                _ = shutdown.cancelled() => return,
                next = messages.next() => next,
            };
            let first = match first {
                Some(Ok(message)) => message,
                Some(Err(error)) => {
                    tracing::warn!(subject, %error, "pull stream failed; starting a new one");
                    return;
                }
                None => return,
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
            self.handle(subject, batch, shutdown).await;
        }
    }

    /// Dead-letters what cannot be decoded, stores the rest, then acks.
    async fn handle(
        &self,
        subject: &'static str,
        batch: Vec<Message>,
        shutdown: &CancellationToken,
    ) {
        let mut valid = Vec::with_capacity(batch.len());
        let mut clicks = Vec::new();
        let mut changes = Vec::new();
        let decoded = decode_all(subject, &batch).await;
        for (message, decoded) in batch.into_iter().zip(decoded) {
            match decoded {
                Ok(Decoded::Click(row)) => clicks.push(row),
                Ok(Decoded::Link(change)) => changes.push(change),
                Err(error) => {
                    let letter = DeadLetter {
                        reason: error.kind().as_str(),
                        error: error.to_string(),
                        path: Some(error.path()),
                    };
                    if !self.dead_letter(subject, &message, letter, shutdown).await {
                        return;
                    }
                    continue;
                }
            }
            valid.push(message);
        }
        if valid.is_empty() {
            return;
        }
        if !self
            .store_batch(subject, &clicks, &changes, &valid, shutdown)
            .await
        {
            return;
        }
        for message in &valid {
            if let Err(error) = message.ack().await {
                // The row is stored; a redelivery will be absorbed.
                tracing::warn!(subject, %error, "ack failed; the message will be redelivered");
            }
        }
        self.metrics
            .processed
            .get_or_create(&SubjectLabel { subject })
            .inc_by(valid.len() as u64);
    }

    async fn write(&self, clicks: &[ClickRow], changes: &[LinkChange]) -> Result<(), StoreError> {
        if !clicks.is_empty() {
            let links: Vec<(Uuid, &str)> = clicks
                .iter()
                .map(|c| (c.shortener_url_id, c.short_code.as_str()))
                .collect();
            self.links.ensure(&links).await?;
            self.store.insert_clicks(clicks).await?;
        }
        self.links.apply(changes).await
    }

    /// Writes until it succeeds; false if shutdown came first (the messages
    /// stay unacknowledged and are redelivered later).
    async fn store_batch(
        &self,
        subject: &'static str,
        clicks: &[ClickRow],
        changes: &[LinkChange],
        messages: &[Message],
        shutdown: &CancellationToken,
    ) -> bool {
        let mut backoff = self.settings.min_backoff;
        let mut claimed_at = Instant::now();
        loop {
            let started = Instant::now();
            let error = match self.write(clicks, changes).await {
                Ok(()) => {
                    self.metrics
                        .insert_seconds
                        .observe(started.elapsed().as_secs_f64());
                    return true;
                }
                Err(error) => error,
            };
            self.metrics.store_failures.inc();
            tracing::warn!(subject, %error, messages = messages.len(), retry_in = ?backoff, "store write failed; retrying");
            // Last deliveries are kept safe on the dead-letter subject before
            // the server could give them up.
            for message in messages {
                let last = message
                    .info()
                    .is_ok_and(|i| i.delivered >= self.settings.max_deliver);
                if last {
                    let letter = DeadLetter {
                        reason: "delivery_limit",
                        error: format!("store write kept failing on the last delivery: {error}"),
                        path: None,
                    };
                    self.dead_letter(subject, message, letter, shutdown).await;
                }
            }
            if claimed_at.elapsed() >= self.settings.ack_wait / 3 {
                for message in messages {
                    let _ = message.ack_with(AckKind::Progress).await;
                }
                claimed_at = Instant::now();
            }
            tokio::select! {
                _ = shutdown.cancelled() => return false,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(self.settings.max_backoff);
        }
    }

    /// Republishes `message` on the dead-letter subject (awaiting the
    /// JetStream ack), then acks it. False if shutdown came first.
    async fn dead_letter(
        &self,
        subject: &'static str,
        message: &Message,
        letter: DeadLetter<'_>,
        shutdown: &CancellationToken,
    ) -> bool {
        let mut headers = message.headers.clone().unwrap_or_default();
        headers.insert(DLQ_REASON, letter.reason);
        headers.insert(DLQ_ERROR, letter.error.as_str());
        if let Some(path) = letter.path {
            headers.insert(DLQ_PATH, path);
        }
        headers.insert(DLQ_ORIGINAL_SUBJECT, message.subject.as_str());
        if let Ok(info) = message.info() {
            headers.insert(
                DLQ_ORIGINAL_SEQUENCE,
                info.stream_sequence.to_string().as_str(),
            );
            headers.insert(DLQ_DELIVERIES, info.delivered.to_string().as_str());
        }
        tracing::warn!(subject, reason = letter.reason, error = %letter.error, "message dead-lettered");
        let target = dead_letter_subject(subject);
        let mut backoff = self.settings.min_backoff;
        loop {
            let published = match self
                .jetstream
                .publish_with_headers(target.clone(), headers.clone(), message.payload.clone())
                .await
            {
                Ok(ack) => ack.await.map(drop).map_err(anyhow::Error::from),
                Err(error) => Err(error.into()),
            };
            match published {
                Ok(()) => break,
                Err(error) => {
                    tracing::warn!(subject, %error, retry_in = ?backoff, "dead letter not accepted; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return false,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(self.settings.max_backoff);
                }
            }
        }
        self.metrics
            .dead_letters
            .get_or_create(&DeadLetterLabels {
                subject,
                reason: letter.reason,
            })
            .inc();
        if let Err(error) = message.ack().await {
            tracing::warn!(subject, %error, "ack of a dead-lettered message failed; it may be dead-lettered twice");
        }
        true
    }
}
