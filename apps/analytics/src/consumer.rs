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

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::consumer::pull::{self, Stream as PullStream};
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::{self, AckKind, Message};
use contracts::headers::{
    DLQ_DELIVERIES, DLQ_ERROR, DLQ_ORIGINAL_SEQUENCE, DLQ_ORIGINAL_SUBJECT, DLQ_PATH,
    DLQ_PAYLOAD_OMITTED, DLQ_REASON,
};
use contracts::stream::{dead_letter_stream_config, ensure_stream, shortener_stream_config};
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
    /// Test hook: the task of this subject panics once, at its first batch,
    /// so a test can see it restarted. Never set outside tests.
    pub panic_once_on: Option<&'static str>,
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
        }
    }
}

/// How long a subject's consumer may go without answering before `/ready`
/// fails; `analytics_consumer_up` drops to 0 at the first unanswered probe.
pub const CONSUMER_SILENCE_LIMIT: Duration = Duration::from_secs(30);

/// When each subject's consumer last answered (its info is fetched every
/// 2 s by the lag reporter), for `/ready`.
pub struct ConsumerHealth {
    /// Unix milliseconds of the last answer; the start counts as one.
    last_answer: Vec<(&'static str, AtomicU64)>,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Default for ConsumerHealth {
    fn default() -> Self {
        let now = unix_ms();
        Self {
            last_answer: SUBJECTS
                .iter()
                .map(|&subject| (subject, AtomicU64::new(now)))
                .collect(),
        }
    }
}

impl ConsumerHealth {
    /// The consumer of `subject` answered just now.
    pub fn answered(&self, subject: &str) {
        if let Some((_, at)) = self.last_answer.iter().find(|(s, _)| *s == subject) {
            at.store(unix_ms(), Ordering::Relaxed);
        }
    }

    /// Per subject, how long since its consumer last answered.
    pub fn silences(&self) -> Vec<(&'static str, Duration)> {
        let now = unix_ms();
        self.last_answer
            .iter()
            .map(|(subject, at)| {
                let since = now.saturating_sub(at.load(Ordering::Relaxed));
                (*subject, Duration::from_millis(since))
            })
            .collect()
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
enum Row {
    Click(ClickRow),
    Link(LinkChange),
}

fn decode_for(subject: &str, payload: &[u8]) -> Result<Row, ContractError> {
    Ok(match subject {
        subjects::URL_CLICKED => Row::Click(ClickRow::from_event(&decode::<UrlClicked>(payload)?)),
        subjects::URL_CREATED => Row::Link(LinkChange::Created(decode::<UrlCreated>(payload)?)),
        subjects::URL_UPDATED => Row::Link(LinkChange::Updated(decode::<UrlUpdated>(payload)?)),
        _ => Row::Link(LinkChange::Deleted(decode::<UrlDeleted>(payload)?)),
    })
}

/// A batch ready for the store: its valid messages and what they decoded to
/// (the rest were dead-lettered).
struct Decoded {
    valid: Vec<Message>,
    clicks: Vec<ClickRow>,
    changes: Vec<LinkChange>,
}

/// Below this many messages a batch is decoded in place.
const PARALLEL_DECODE_FROM: usize = 512;

/// Decodes (validates, enriches) a batch. Decoding is the CPU-bound part of
/// ingest, so a large batch is split over the blocking pool's threads while
/// the consumers' own thread stays free for I/O.
async fn decode_all(subject: &'static str, batch: &[Message]) -> Vec<Result<Row, ContractError>> {
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

/// Dead letters published before their acks are awaited; well below the
/// client's limit of acks in flight.
const DEAD_LETTER_CHUNK: usize = 1_000;

/// A message on its way to the dead-letter subject: the original, its
/// reason, and the headers and payload it is republished with.
type Letter<'m> = (
    &'m Message,
    &'static str,
    async_nats::HeaderMap,
    bytes::Bytes,
);

/// The longest error text a dead letter carries, in bytes.
const MAX_ERROR_TEXT: usize = 1024;

/// Room kept for the protocol's own bytes beside headers and payload.
const LETTER_OVERHEAD: usize = 512;

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
    pub health: Arc<ConsumerHealth>,
    /// Whether the test hook of `settings.panic_once_on` fired already.
    pub panicked: AtomicBool,
}

impl Ingest {
    pub fn new(
        store: Arc<dyn AnalyticsStore>,
        jetstream: jetstream::Context,
        metrics: Arc<Metrics>,
        settings: ConsumerSettings,
    ) -> Self {
        Self {
            links: Arc::new(LinkCopies::new(store.clone())),
            store,
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
        let mut backoff = self.settings.min_backoff;
        let mut recheck = false;
        while !shutdown.is_cancelled() {
            if recheck {
                match self.recreate(subject).await {
                    Ok(found) => consumer = found,
                    Err(error) => {
                        tracing::warn!(subject, error = %format!("{error:#}"), retry_in = ?backoff, "cannot find or create the consumer; retrying");
                        tokio::select! {
                            _ = shutdown.cancelled() => {}
                            _ = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(self.settings.max_backoff);
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

    /// The durable consumer of `subject`, with its streams, created if gone.
    pub async fn recreate(&self, subject: &'static str) -> anyhow::Result<PullConsumer> {
        let stream = ensure_stream(&self.jetstream, shortener_stream_config()).await?;
        ensure_stream(&self.jetstream, dead_letter_stream_config()).await?;
        stream
            .get_or_create_consumer(
                &consumer_name(subject),
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

    /// Decodes a batch and dead-letters what cannot be decoded. None if
    /// shutdown came while dead-lettering.
    async fn decode(
        &self,
        subject: &'static str,
        batch: Vec<Message>,
        shutdown: &CancellationToken,
    ) -> Option<Decoded> {
        let mut decoded = Decoded {
            valid: Vec::with_capacity(batch.len()),
            clicks: Vec::new(),
            changes: Vec::new(),
        };
        let rows = decode_all(subject, &batch).await;
        let mut rejected = Vec::new();
        for (message, row) in batch.into_iter().zip(rows) {
            match row {
                Ok(Row::Click(row)) => decoded.clicks.push(row),
                Ok(Row::Link(change)) => decoded.changes.push(change),
                Err(error) => {
                    rejected.push((message, error));
                    continue;
                }
            }
            decoded.valid.push(message);
        }
        let letters: Vec<_> = rejected
            .iter()
            .map(|(message, error)| {
                let letter = DeadLetter {
                    reason: error.kind().as_str(),
                    error: error.to_string(),
                    path: Some(error.path()),
                };
                (message, letter)
            })
            .collect();
        self.dead_letter(subject, letters, shutdown)
            .await
            .then_some(decoded)
    }

    /// Stores a decoded batch, then acks its messages.
    async fn commit(&self, subject: &'static str, batch: Decoded, shutdown: &CancellationToken) {
        if batch.valid.is_empty() {
            return;
        }
        if !self
            .store_batch(
                subject,
                &batch.clicks,
                &batch.changes,
                &batch.valid,
                shutdown,
            )
            .await
        {
            return;
        }
        for message in &batch.valid {
            if let Err(error) = message.ack().await {
                // The row is stored; a redelivery will be absorbed.
                tracing::warn!(subject, %error, "ack failed; the message will be redelivered");
            }
        }
        self.metrics
            .processed
            .get_or_create(&SubjectLabel { subject })
            .inc_by(batch.valid.len() as u64);
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
            let last_deliveries = messages
                .iter()
                .filter(|m| {
                    m.info()
                        .is_ok_and(|i| i.delivered >= self.settings.max_deliver)
                })
                .map(|message| {
                    let letter = DeadLetter {
                        reason: "delivery_limit",
                        error: format!("store write kept failing on the last delivery: {error}"),
                        path: None,
                    };
                    (message, letter)
                })
                .collect();
            self.dead_letter(subject, last_deliveries, shutdown).await;
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

    /// Republishes each message on the dead-letter subject with its reason,
    /// retrying what was not accepted, and acks each original once its dead
    /// letter is stored. False if shutdown came first: the originals not
    /// yet acked are redelivered later.
    async fn dead_letter(
        &self,
        subject: &'static str,
        letters: Vec<(&Message, DeadLetter<'_>)>,
        shutdown: &CancellationToken,
    ) -> bool {
        let target = dead_letter_subject(subject);
        let max_payload = self.jetstream.client().server_info().max_payload;
        let mut pending: Vec<Letter> = letters
            .into_iter()
            .map(|(message, letter)| {
                let (headers, payload) = dead_letter_of(message, &letter, max_payload);
                tracing::warn!(subject, reason = letter.reason, error = %headers.get(DLQ_ERROR).map(|v| v.as_str()).unwrap_or_default(), "message dead-lettered");
                (message, letter.reason, headers, payload)
            })
            .collect();
        let mut backoff = self.settings.min_backoff;
        while !pending.is_empty() {
            let mut refused = Vec::new();
            // In chunks: the client holds a bounded number of acks in flight,
            // and a publish beyond it waits until one is awaited.
            let mut letters = pending.into_iter().peekable();
            while letters.peek().is_some() {
                let chunk = letters.by_ref().take(DEAD_LETTER_CHUNK).collect();
                refused.extend(self.send_dead_letters(subject, &target, chunk).await);
            }
            if refused.is_empty() {
                break;
            }
            tracing::warn!(subject, letters = refused.len(), retry_in = ?backoff, "retrying dead letters");
            tokio::select! {
                _ = shutdown.cancelled() => return false,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(self.settings.max_backoff);
            pending = refused;
        }
        true
    }

    /// Publishes the letters together, then awaits each JetStream ack;
    /// returns the ones not accepted.
    async fn send_dead_letters<'m>(
        &self,
        subject: &'static str,
        target: &str,
        letters: Vec<Letter<'m>>,
    ) -> Vec<Letter<'m>> {
        let mut acks = Vec::with_capacity(letters.len());
        for (_, _, headers, payload) in &letters {
            acks.push(
                self.jetstream
                    .publish_with_headers(target.to_owned(), headers.clone(), payload.clone())
                    .await,
            );
        }
        let mut refused = Vec::new();
        let mut last_error = None;
        for (letter, ack) in letters.into_iter().zip(acks) {
            let accepted = match ack {
                Ok(ack) => ack.await.map(drop).map_err(anyhow::Error::from),
                // Retrying cannot make a letter smaller: the original is
                // given up (terminated, counted), never retried forever.
                Err(error) if error.kind() == PublishErrorKind::MaxPayloadExceeded => {
                    self.unpublishable(subject, letter.0, &error).await;
                    continue;
                }
                Err(error) => Err(error.into()),
            };
            match accepted {
                Ok(()) => self.dead_lettered(subject, letter.0, letter.1).await,
                Err(error) => {
                    last_error = Some(error);
                    refused.push(letter);
                }
            }
        }
        if let Some(error) = last_error {
            tracing::warn!(subject, %error, letters = refused.len(), "dead letters not accepted");
        }
        refused
    }

    /// Terminates a message whose dead letter can never be published, after
    /// saying so: it stays on the source stream, at the logged sequence.
    async fn unpublishable(&self, subject: &'static str, message: &Message, error: &PublishError) {
        let sequence = message.info().map(|i| i.stream_sequence).ok();
        tracing::error!(subject, ?sequence, %error, "a dead letter cannot be published; the message is terminated");
        self.metrics
            .dead_letters
            .get_or_create(&DeadLetterLabels {
                subject,
                reason: "unpublishable",
            })
            .inc();
        if let Err(error) = message.ack_with(AckKind::Term).await {
            tracing::warn!(subject, %error, "terminating an unpublishable message failed");
        }
    }

    /// Counts a message the dead-letter subject accepted and acks the original.
    async fn dead_lettered(&self, subject: &'static str, message: &Message, reason: &'static str) {
        self.metrics
            .dead_letters
            .get_or_create(&DeadLetterLabels { subject, reason })
            .inc();
        if let Err(error) = message.ack().await {
            tracing::warn!(subject, %error, "ack of a dead-lettered message failed; it may be dead-lettered twice");
        }
    }
}

/// The letter for `message`: its original headers plus why and from where it
/// was dead-lettered, every added value on one line and bounded; and its
/// payload, unless the letter would then exceed the server's `max_payload`,
/// in which case it says so and where the original is.
fn dead_letter_of(
    message: &Message,
    letter: &DeadLetter<'_>,
    max_payload: usize,
) -> (async_nats::HeaderMap, bytes::Bytes) {
    let mut headers = message.headers.clone().unwrap_or_default();
    headers.insert(DLQ_REASON, letter.reason);
    headers.insert(DLQ_ERROR, header_text(&letter.error).as_str());
    if let Some(path) = letter.path {
        headers.insert(DLQ_PATH, header_text(path).as_str());
    }
    headers.insert(DLQ_ORIGINAL_SUBJECT, message.subject.as_str());
    if let Ok(info) = message.info() {
        headers.insert(
            DLQ_ORIGINAL_SEQUENCE,
            info.stream_sequence.to_string().as_str(),
        );
        headers.insert(DLQ_DELIVERIES, info.delivered.to_string().as_str());
    }
    let header_bytes: usize = headers
        .iter()
        .map(|(name, values)| {
            values
                .iter()
                .map(|v| AsRef::<str>::as_ref(name).len() + v.as_str().len() + 4)
                .sum::<usize>()
        })
        .sum();
    let payload = message.payload.clone();
    if header_bytes + payload.len() + LETTER_OVERHEAD <= max_payload {
        return (headers, payload);
    }
    headers.insert(DLQ_PAYLOAD_OMITTED, payload.len().to_string().as_str());
    (headers, bytes::Bytes::new())
}

/// `text` fit for a header value: control characters (CR and LF above all,
/// which the client refuses) as spaces, and at most [`MAX_ERROR_TEXT`] bytes.
fn header_text(text: &str) -> String {
    const ELLIPSIS: char = '…';
    let mut out = String::with_capacity(text.len().min(MAX_ERROR_TEXT));
    for c in text.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if out.len() + c.len_utf8() > MAX_ERROR_TEXT - ELLIPSIS.len_utf8() {
            out.push(ELLIPSIS);
            break;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_text_is_one_bounded_line() {
        assert_eq!(header_text("a\r\nb\tc"), "a  b c");
        let long = header_text(&"é".repeat(2_000));
        assert!(long.len() <= MAX_ERROR_TEXT, "{}", long.len());
        assert!(long.ends_with('…'));
        assert_eq!(header_text("short"), "short");
    }
}
