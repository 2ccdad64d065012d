//! The raw retention (`ANALYTICS_RAW_RETENTION_DAYS`): raw clicks older
//! than the cutoff are deleted at start and then every hour, a chunk at a
//! time so ingest goes on meanwhile. The rollups keep counting them, so
//! all-time stats do not change.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Ingest;

/// How often the retention looks for clicks to drop.
const EVERY: Duration = Duration::from_secs(3_600);
/// Clicks deleted per statement (one short write transaction each).
const CHUNK: u32 = 10_000;

/// Runs until `shutdown`; returns at once without a retention.
pub async fn run(ingest: Arc<Ingest>, shutdown: CancellationToken) {
    if ingest.settings.raw_retention_days.is_none() {
        return;
    }
    loop {
        drop_old_clicks(&ingest, &shutdown).await;
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(EVERY) => {}
        }
    }
}

async fn drop_old_clicks(ingest: &Ingest, shutdown: &CancellationToken) {
    let Some(cutoff) = ingest.settings.raw_cutoff(chrono::Utc::now().timestamp()) else {
        return;
    };
    let mut dropped = 0;
    while !shutdown.is_cancelled() {
        match ingest.store.drop_raw_clicks_before(cutoff, CHUNK).await {
            Ok(0) => break,
            Ok(n) => {
                dropped += n;
                ingest.metrics.raw_clicks_dropped.inc_by(n);
                // Let the consumers' writes in between chunks.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(error) => {
                tracing::warn!(%error, "the raw retention failed; it tries again later");
                break;
            }
        }
    }
    if dropped > 0 {
        tracing::info!(
            dropped,
            cutoff = %crate::stats::rfc3339(cutoff),
            "raw clicks past the retention dropped; their rollups stay"
        );
    }
}
