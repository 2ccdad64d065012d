//! The raw retention (`ANALYTICS_RAW_RETENTION_DAYS`): raw clicks older
//! than the cutoff are deleted at start and then every hour, a few links per
//! transaction so ingest goes on meanwhile. The rollups keep counting them, so
//! all-time stats do not change.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Ingest;

/// How often the retention looks for clicks to drop.
const EVERY: Duration = Duration::from_secs(3_600);

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
    if shutdown.is_cancelled() {
        return;
    }
    let dropped = match ingest.clicks.drop_raw_clicks_before(cutoff).await {
        Ok(n) => n,
        Err(error) => {
            tracing::warn!(%error, "the raw retention failed; it tries again later");
            return;
        }
    };
    ingest.metrics.raw_clicks_dropped.inc_by(dropped);
    if dropped > 0 {
        tracing::info!(
            dropped,
            cutoff = %crate::stats::rfc3339(cutoff),
            "raw clicks past the retention dropped; their rollups stay"
        );
    }
}
