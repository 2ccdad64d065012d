//! The outbox relay: moves events from the store's outbox to JetStream.
//!
//! Handlers write a link and its event in one transaction and return; this
//! task publishes the event later, which is why a 201 never depends on NATS
//! being up. It reads the oldest unsent events, publishes them in order with
//! `Nats-Msg-Id` = `event_id`, awaits the server's acks, and only then marks
//! them sent. A crash between ack and mark republishes them on restart; the
//! stream's duplicate window drops those, and consumers deduplicate on
//! `event_id` beyond it. Every batch has one deadline from its first send
//! (see `publish`), so an unreachable or restarting broker can delay the
//! relay but never stop it. While NATS is away it retries with capped
//! exponential backoff. It creates the `SHORTENER` stream if it is missing,
//! and checks again after every failure: a broker restarted on an empty
//! data directory has none.
//!
//! Shutdown: when the token is cancelled the relay keeps publishing until
//! the outbox is empty or the drain timeout passes; what is left stays in the
//! outbox for the next start, so nothing is lost either way.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream;
use chrono::Utc;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::publish::{Outgoing, Publisher, ensure_shortener_stream};
use crate::store::Outbox;
use service_kit::Backoff;

/// Tuning of the relay.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// Events published per round trip to the store.
    pub batch_size: u32,
    /// How often the outbox is checked when nobody signalled a write (writes
    /// by another instance, or a missed wake-up).
    pub poll_interval: Duration,
    /// First and longest wait between attempts while NATS is unreachable.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// How long a batch may take from its first send to its last ack.
    pub publish_timeout: Duration,
    /// How long shutdown may keep publishing what is pending.
    pub drain_timeout: Duration,
    /// Servers the stream is created on (`SHORTENER_STREAM_REPLICAS`).
    pub stream_replicas: usize,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            batch_size: 256,
            poll_interval: Duration::from_millis(500),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            publish_timeout: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(10),
            stream_replicas: 1,
        }
    }
}

/// Publishes outbox events to JetStream; see the module documentation.
pub struct OutboxRelay {
    store: Arc<dyn Outbox>,
    jetstream: jetstream::Context,
    publisher: Publisher,
    settings: RelaySettings,
    wake: Arc<Notify>,
    /// Set once the stream is known to exist; checked before every round
    /// until then, the drain's included.
    stream_ready: bool,
    published: Counter,
}

impl OutboxRelay {
    pub fn new(
        store: Arc<dyn Outbox>,
        jetstream: jetstream::Context,
        settings: RelaySettings,
    ) -> Self {
        Self {
            store,
            publisher: Publisher::new(jetstream.client()),
            jetstream,
            settings,
            wake: Arc::new(Notify::new()),
            stream_ready: false,
            published: Counter::default(),
        }
    }

    /// Events published so far, for `/metrics`.
    pub fn published_counter(&self) -> Counter {
        self.published.clone()
    }

    /// Signal this after writing to the outbox to have the event published
    /// at once rather than at the next poll.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Runs until `shutdown` is cancelled, then drains.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut backoff = Backoff::new(self.settings.min_backoff, self.settings.max_backoff);
        while !shutdown.is_cancelled() {
            match self.publish_batch().await {
                Ok(published) => {
                    backoff.reset();
                    if published == 0 {
                        tokio::select! {
                            _ = self.wake.notified() => {}
                            _ = tokio::time::sleep(self.settings.poll_interval) => {}
                            _ = shutdown.cancelled() => {}
                        }
                    }
                }
                Err(error) => {
                    // A broker restarted on an empty data directory has no
                    // stream: check (and create) it before the next try.
                    self.stream_ready = false;
                    tracing::warn!(
                        error = format!("{error:#}"),
                        "outbox relay cannot publish; retrying"
                    );
                    backoff.wait(shutdown.cancelled()).await;
                }
            }
        }
        self.drain().await;
    }

    /// Publishes what is pending until the outbox is empty or time runs out.
    async fn drain(&mut self) {
        let outcome = tokio::time::timeout(self.settings.drain_timeout, async {
            loop {
                match self.publish_batch().await {
                    Ok(0) => return Ok(()),
                    Ok(_) => {}
                    Err(error) => return Err(error),
                }
            }
        })
        .await;
        let left = self.store.outbox_depth().await.ok();
        match outcome {
            Ok(Ok(())) => tracing::info!("outbox relay drained the outbox"),
            // A failed stream check with nothing pending left nothing behind.
            Ok(Err(_)) if left == Some(0) => {
                tracing::info!("outbox relay stopped; the outbox is empty")
            }
            Ok(Err(error)) => tracing::warn!(
                error = format!("{error:#}"),
                left,
                "outbox relay stopped with events pending; they are published on the next start"
            ),
            Err(_) => tracing::warn!(
                left,
                "outbox relay ran out of drain time; the rest is published on the next start"
            ),
        }
    }

    /// One round: publish the oldest pending events and mark the acked ones.
    /// Returns how many were published.
    async fn publish_batch(&mut self) -> anyhow::Result<usize> {
        if !self.stream_ready {
            ensure_shortener_stream(&self.jetstream, self.settings.stream_replicas).await?;
            self.stream_ready = true;
        }
        let events = self
            .store
            .outbox_pending(self.settings.batch_size)
            .await
            .context("failed to read the outbox")?;
        if events.is_empty() {
            return Ok(0);
        }
        // Sent in order before any ack is awaited, one deadline for all.
        let outgoing: Vec<Outgoing> = events
            .iter()
            .map(|event| Outgoing {
                event_id: event.event_id,
                subject: async_nats::Subject::from(event.subject.clone()),
                event_type: &event.subject,
                event_version: event.event_version,
                payload: event.payload.clone().into(),
                traceparent: event.traceparent.as_deref(),
            })
            .collect();
        let acked_flags = self
            .publisher
            .publish_all(&outgoing, self.settings.publish_timeout)
            .await;
        let acked: Vec<Uuid> = events
            .iter()
            .zip(&acked_flags)
            .filter(|(_, acked)| **acked)
            .map(|(event, _)| event.event_id)
            .collect();
        let failure = (acked.len() < events.len()).then(|| {
            anyhow::anyhow!(
                "{} of {} events were not acknowledged in time",
                events.len() - acked.len(),
                events.len()
            )
        });
        self.store
            .outbox_mark_sent(&acked, Utc::now())
            .await
            .context("failed to mark published events as sent")?;
        self.published.inc_by(acked.len() as u64);
        match failure {
            Some(error) => Err(error),
            None => Ok(acked.len()),
        }
    }
}
