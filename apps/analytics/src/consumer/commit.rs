//! The store write of a decoded batch, then its acks; a store outage is
//! waited out, and a last delivery that still fails is dead-lettered.

use async_nats::jetstream::{AckKind, Message};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::Ingest;
use super::dead_letters::DeadLetter;
use super::decode::Decoded;
use crate::domain::{ClickRow, LinkChange};
use crate::metrics::SubjectLabel;
use crate::store::StoreError;

impl Ingest {
    /// Stores a decoded batch, then acks its messages.
    pub(super) async fn commit(
        &self,
        subject: &'static str,
        batch: Decoded,
        shutdown: &CancellationToken,
    ) {
        if batch.valid.is_empty() {
            return;
        }
        // Each traced message's store span, a child of its consume span,
        // open for the batch's write (the write is one for the batch).
        let store_spans: Vec<tracing::Span> = batch
            .traced
            .iter()
            .map(|(_, consume)| {
                consume.in_scope(|| {
                    service_kit::traced_span!(
                        format_args!("store {subject}"),
                        "client",
                        db.system.name = self.clicks.kind(),
                        batch_size = batch.valid.len(),
                    )
                })
            })
            .collect();
        for span in &store_spans {
            service_kit::telemetry::continue_trace(span, None);
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
        drop(store_spans);
        if !batch.clicks.is_empty() {
            // The batch's clicks are in the stats from now on.
            let now = time::OffsetDateTime::now_utc();
            for info in batch.valid.iter().filter_map(|m| m.info().ok()) {
                if info.delivered == 1 {
                    let age = (now - info.published).as_seconds_f64().max(0.0);
                    self.metrics.click_freshness.observe(age);
                }
            }
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

    pub(super) async fn write(
        &self,
        clicks: &[ClickRow],
        changes: &[LinkChange],
    ) -> Result<(), StoreError> {
        let kept: Vec<ClickRow>;
        let clicks = match self.settings.raw_cutoff(chrono::Utc::now().timestamp()) {
            Some(cutoff) if clicks.iter().any(|c| c.clicked_at < cutoff) => {
                kept = clicks
                    .iter()
                    .filter(|c| c.clicked_at >= cutoff)
                    .cloned()
                    .collect();
                let past = (clicks.len() - kept.len()) as u64;
                self.metrics.clicks_past_retention.inc_by(past);
                tracing::warn!(
                    clicks = past,
                    "clicks older than the raw retention were not stored"
                );
                &kept[..]
            }
            _ => clicks,
        };
        if !clicks.is_empty() {
            let links: Vec<(Uuid, &str)> = clicks
                .iter()
                .map(|c| (c.shortener_url_id, c.short_code.as_str()))
                .collect();
            self.links.ensure(&links).await?;
            self.clicks.insert_clicks(clicks).await?;
        }
        self.links.apply(changes).await
    }

    /// Writes until it succeeds; false if shutdown came first (the messages
    /// stay unacknowledged and are redelivered later).
    pub(super) async fn store_batch(
        &self,
        subject: &'static str,
        clicks: &[ClickRow],
        changes: &[LinkChange],
        messages: &[Message],
        shutdown: &CancellationToken,
    ) -> bool {
        let mut backoff = self.settings.backoff();
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
            tracing::warn!(subject, %error, messages = messages.len(), "store write failed; retrying");
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
            backoff.wait(shutdown.cancelled()).await;
            if shutdown.is_cancelled() {
                return false;
            }
        }
    }
}
