//! Takes clicks off the queue and publishes them, or spools what JetStream
//! does not take in time; see the module documentation of `clicks`.

use std::sync::Arc;

use contracts::{Event, UrlClicked};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::counts::PerLink;
use super::{ClickCounts, ClickMetrics, ClickSettings, QueuedClick};
use crate::publish::{Outgoing, Publisher};
use crate::store::{ClickSpool, SpooledClick};
use service_kit::Backoff;

/// The click publisher task.
pub struct ClickPublisher {
    pub(crate) rx: mpsc::Receiver<QueuedClick>,
    pub(crate) store: Arc<dyn ClickSpool>,
    pub(crate) nats: async_nats::Client,
    pub(crate) publisher: Publisher,
    pub(crate) settings: ClickSettings,
    pub(crate) counts: Arc<ClickCounts>,
    pub(crate) metrics: ClickMetrics,
    /// Told when clicks were spooled, so the relay looks at once.
    pub(crate) spooled: Arc<Notify>,
}

/// The clicks' subject and version, the same for every click.
pub(super) fn outgoing(click: &SpooledClick) -> Outgoing<'_> {
    Outgoing {
        event_id: click.event_id,
        subject: async_nats::Subject::from_static(UrlClicked::EVENT_TYPE),
        event_type: UrlClicked::EVENT_TYPE,
        event_version: UrlClicked::VERSION,
        payload: click.payload.clone(),
        traceparent: None,
    }
}

impl ClickPublisher {
    /// Runs until `shutdown` is cancelled, then publishes or spools what is
    /// still queued.
    pub async fn run(mut self, shutdown: CancellationToken) {
        loop {
            let first = tokio::select! {
                click = self.rx.recv() => click,
                _ = shutdown.cancelled() => None,
            };
            let Some(first) = first else { break };
            let batch = self.fill_batch(first).await;
            self.handle(batch, None).await;
        }
        self.rx.close();
        let deadline = Instant::now() + self.settings.drain_timeout;
        let mut left = 0;
        while let Some(first) = self.rx.recv().await {
            let batch = self.fill_batch(first).await;
            self.handle(batch, Some(deadline)).await;
            left += 1;
        }
        tracing::info!(batches = left, "click publisher drained its queue");
    }

    /// The first click plus whatever arrives within the linger, up to a
    /// batch. It sleeps through the linger and then takes what queued up,
    /// rather than waiting on the queue: a waiting receiver is woken by
    /// every click, a thread switch per redirect at full load.
    async fn fill_batch(&mut self, first: QueuedClick) -> Vec<QueuedClick> {
        let mut batch = Vec::with_capacity(self.settings.batch_size);
        batch.push(first);
        let deadline = Instant::now() + self.settings.linger;
        self.drain_into(&mut batch);
        if batch.len() < self.settings.batch_size {
            tokio::time::sleep_until(deadline).await;
            self.drain_into(&mut batch);
        }
        batch
    }

    /// Moves queued clicks into `batch`, up to a batch, without waiting.
    fn drain_into(&mut self, batch: &mut Vec<QueuedClick>) {
        while batch.len() < self.settings.batch_size {
            match self.rx.try_recv() {
                Ok(click) => batch.push(click),
                Err(_) => break,
            }
        }
    }

    /// Publishes a batch; what is not acknowledged in time is spooled.
    async fn handle(&mut self, batch: Vec<QueuedClick>, deadline: Option<Instant>) {
        // A sampled click's trace goes on to JetStream; a spooled click is
        // published later, outside the trace of its redirect.
        let mut traceparents = Vec::new();
        let clicks: Vec<SpooledClick> = batch
            .into_iter()
            .enumerate()
            .map(|(index, QueuedClick { event, traceparent })| {
                if let Some(traceparent) = traceparent {
                    traceparents.push((index, traceparent));
                }
                let payload = event.encode();
                let event = event.into_envelope();
                SpooledClick {
                    event_id: event.event_id,
                    url_id: event.data.url_id,
                    clicked_at: event.data.clicked_at,
                    payload: payload.into(),
                }
            })
            .collect();
        // While disconnected a publish could only wait for its deadline.
        let connected = matches!(
            self.nats.connection_state(),
            async_nats::connection::State::Connected
        );
        let unacknowledged = if connected {
            let mut messages: Vec<Outgoing> = clicks.iter().map(outgoing).collect();
            for (index, traceparent) in &traceparents {
                messages[*index].traceparent = Some(traceparent);
            }
            let acked = self
                .publisher
                .publish_all(&messages, self.settings.publish_timeout)
                .await;
            drop(messages);
            let mut unacknowledged = Vec::new();
            let mut counted = PerLink::default();
            let now = chrono::Utc::now();
            for (click, acked) in clicks.into_iter().zip(acked) {
                if acked {
                    *counted.entry(click.url_id).or_default() += 1;
                    self.metrics.acknowledged(click.clicked_at, now);
                } else {
                    unacknowledged.push(click);
                }
            }
            // One lock for the batch, not one per click.
            self.counts.add_all(counted);
            self.metrics.failures.inc_by(unacknowledged.len() as u64);
            unacknowledged
        } else {
            clicks
        };
        if !unacknowledged.is_empty() {
            self.spool(unacknowledged, deadline).await;
        }
    }

    /// Keeps clicks in the store for the relay; drops them (counted) only
    /// when the store refuses them too.
    async fn spool(&self, clicks: Vec<SpooledClick>, deadline: Option<Instant>) {
        let mut backoff = Backoff::new(self.settings.min_backoff, self.settings.max_backoff);
        for attempt in 1..=self.settings.spool_attempts {
            let limit = match deadline {
                Some(at) => self.settings.store_timeout.min(at - Instant::now()),
                None => self.settings.store_timeout,
            };
            match tokio::time::timeout(limit, self.store.spool_clicks(&clicks)).await {
                Ok(Ok(())) => {
                    self.metrics.spooled.inc_by(clicks.len() as u64);
                    self.spooled.notify_one();
                    return;
                }
                Ok(Err(error)) => {
                    tracing::warn!(%error, clicks = clicks.len(), attempt, "clicks could not be spooled")
                }
                Err(_) => {
                    tracing::warn!(clicks = clicks.len(), attempt, "spooling clicks timed out")
                }
            }
            if deadline.is_some_and(|at| Instant::now() >= at) {
                break;
            }
            tokio::time::sleep(backoff.next_delay()).await;
        }
        self.metrics
            .drops
            .add("broker_and_store_unavailable", clicks.len() as u64);
    }
}
