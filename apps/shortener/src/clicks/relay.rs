//! Publishes spooled clicks once JetStream takes them again; see the module
//! documentation of `clicks`.

use std::collections::HashMap;
use std::sync::Arc;

use async_nats::jetstream;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::publisher::outgoing;
use super::{ClickMetrics, ClickSettings};
use crate::publish::{Publisher, ensure_shortener_stream};
use crate::store::ClickSpool;
use service_kit::Backoff;

/// The spool relay task.
pub struct SpoolRelay {
    pub(crate) store: Arc<dyn ClickSpool>,
    pub(crate) nats: async_nats::Client,
    pub(crate) jetstream: jetstream::Context,
    pub(crate) publisher: Publisher,
    pub(crate) settings: ClickSettings,
    pub(crate) metrics: ClickMetrics,
    pub(crate) wake: Arc<Notify>,
}

impl SpoolRelay {
    /// Relays until `shutdown`. What is still spooled then stays in the
    /// store and is relayed after the next start.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut backoff = Backoff::new(self.settings.min_backoff, self.settings.max_backoff);
        // Checked again after every failure: a broker restarted on an empty
        // data directory has no stream until someone creates it.
        let mut stream_checked = false;
        while !shutdown.is_cancelled() {
            let connected = matches!(
                self.nats.connection_state(),
                async_nats::connection::State::Connected
            );
            let outcome = if connected {
                self.relay_batch(&mut stream_checked).await
            } else {
                Ok(0)
            };
            match outcome {
                Ok(0) => {
                    tokio::select! {
                        _ = self.wake.notified() => {}
                        _ = tokio::time::sleep(self.settings.relay_poll_interval) => {}
                        _ = shutdown.cancelled() => {}
                    }
                }
                Ok(_) => backoff.reset(),
                Err(error) => {
                    stream_checked = false;
                    tracing::warn!(
                        error = format!("{error:#}"),
                        "spooled clicks not relayed yet"
                    );
                    backoff.wait(shutdown.cancelled()).await;
                }
            }
        }
    }

    /// Publishes the oldest spooled clicks; returns how many were relayed.
    async fn relay_batch(&mut self, stream_checked: &mut bool) -> anyhow::Result<usize> {
        let limit = u32::try_from(self.settings.batch_size).unwrap_or(u32::MAX);
        let clicks = self.store.spooled_clicks(limit).await?;
        if clicks.is_empty() {
            return Ok(0);
        }
        if !*stream_checked {
            ensure_shortener_stream(&self.jetstream, self.settings.stream_replicas).await?;
            *stream_checked = true;
        }
        let acked = self
            .publisher
            .publish_all(
                &clicks.iter().map(outgoing).collect::<Vec<_>>(),
                self.settings.publish_timeout,
            )
            .await;
        let mut ids = Vec::new();
        let mut counts: HashMap<Uuid, u64> = HashMap::new();
        for (click, acked) in clicks.iter().zip(&acked) {
            if *acked {
                ids.push(click.event_id);
                *counts.entry(click.url_id).or_default() += 1;
            }
        }
        if !ids.is_empty() {
            let counts: Vec<(Uuid, u64)> = counts.into_iter().collect();
            // Deleted and counted together: if this fails, they are
            // published again later (a duplicate to JetStream) and counted then.
            self.store.unspool_clicks(&ids, &counts).await?;
            let now = chrono::Utc::now();
            for (click, acked) in clicks.iter().zip(&acked) {
                if *acked {
                    self.metrics.acknowledged(click.clicked_at, now);
                }
            }
            self.metrics.relayed.inc_by(ids.len() as u64);
        }
        if ids.len() < clicks.len() {
            anyhow::bail!(
                "{} of {} spooled clicks were not acknowledged in time",
                clicks.len() - ids.len(),
                clicks.len()
            );
        }
        Ok(ids.len())
    }
}
