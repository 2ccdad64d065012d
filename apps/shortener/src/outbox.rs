//! The outbox relay: moves events from the store's outbox to JetStream.
//!
//! Handlers write a link and its event in one transaction and return; this
//! task publishes the event later, which is why a 201 never depends on NATS
//! being up. It reads the oldest unsent events, publishes them in order with
//! `Nats-Msg-Id` = `event_id`, awaits the server's acks, and only then marks
//! them sent. A crash between ack and mark republishes them on restart; the
//! stream's duplicate window drops those, and consumers deduplicate on
//! `event_id` beyond it. While NATS is away it retries with capped
//! exponential backoff. It creates the `SHORTENER` stream if it is missing.
//!
//! Shutdown: when the token is cancelled the relay keeps publishing until
//! the outbox is empty or the drain timeout passes; what is left stays in the
//! outbox for the next start, so nothing is lost either way.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream;
use async_nats::HeaderMap;
use chrono::Utc;
use contracts::headers;
use contracts::stream::{ensure_stream, shortener_stream_config};
use prometheus_client::metrics::counter::Counter;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::store::LinkStore;

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
    /// How long shutdown may keep publishing what is pending.
    pub drain_timeout: Duration,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            batch_size: 256,
            poll_interval: Duration::from_millis(500),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(10),
        }
    }
}

/// Publishes outbox events to JetStream; see the module documentation.
pub struct OutboxRelay {
    store: Arc<dyn LinkStore>,
    jetstream: jetstream::Context,
    settings: RelaySettings,
    wake: Arc<Notify>,
    /// Set once the stream is known to exist; checked before every round
    /// until then, the drain's included.
    stream_ready: bool,
    published: Counter,
}

impl OutboxRelay {
    pub fn new(
        store: Arc<dyn LinkStore>,
        jetstream: jetstream::Context,
        settings: RelaySettings,
    ) -> Self {
        Self {
            store,
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
        let mut backoff = self.settings.min_backoff;
        while !shutdown.is_cancelled() {
            match self.publish_batch().await {
                Ok(published) => {
                    backoff = self.settings.min_backoff;
                    if published == 0 {
                        tokio::select! {
                            _ = self.wake.notified() => {}
                            _ = tokio::time::sleep(self.settings.poll_interval) => {}
                            _ = shutdown.cancelled() => {}
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(error = format!("{error:#}"), retry_in = ?backoff, "outbox relay cannot publish");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.cancelled() => {}
                    }
                    backoff = (backoff * 2).min(self.settings.max_backoff);
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
            ensure_stream(&self.jetstream, shortener_stream_config())
                .await
                .context("failed to create or check the SHORTENER stream")?;
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
        // Send them all, in order, before awaiting any ack: one round trip
        // of latency for the batch instead of one per event.
        let mut pending_acks = Vec::with_capacity(events.len());
        let mut failure = None;
        for event in events {
            let headers = headers::for_event(event.event_id, &event.subject, event.event_version);
            match self
                .jetstream
                .publish_with_headers(event.subject, header_map(headers), event.payload.into())
                .await
            {
                Ok(ack) => pending_acks.push((event.event_id, ack)),
                Err(error) => {
                    failure = Some(anyhow::Error::from(error).context("failed to send an event"));
                    break;
                }
            }
        }
        let mut acked = Vec::with_capacity(pending_acks.len());
        for (event_id, ack) in pending_acks {
            match ack.await {
                // A duplicate ack means the stream already has it: done too.
                Ok(_) => acked.push(event_id),
                Err(error) => {
                    failure.get_or_insert_with(|| {
                        anyhow::Error::from(error).context("event was not acknowledged")
                    });
                }
            }
        }
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

/// The NATS headers of an event (see `contracts::headers::for_event`).
pub(crate) fn header_map(headers: [(&'static str, String); 3]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.insert(name, value.as_str());
    }
    map
}
