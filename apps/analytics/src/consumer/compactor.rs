//! The compactor (ClickHouse): every few seconds, the days marked dirty
//! and settled are recomputed into the rollups (see
//! `store/clickhouse_rollups.rs`). Stats stay exact meanwhile: a query
//! reads a link's dirty days from raw clicks. On SQLite the rollups are
//! kept in the clicks' own transaction and this does nothing.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Ingest;
use crate::store::rollup::SETTLE_US;

/// How often the compactor looks for settled dirty days.
const EVERY: Duration = Duration::from_secs(2);

/// Runs until `shutdown`.
pub async fn run(ingest: Arc<Ingest>, shutdown: CancellationToken) {
    if ingest.store.kind() != "clickhouse" {
        return;
    }
    loop {
        let settled = chrono::Utc::now().timestamp_micros() - SETTLE_US;
        match ingest.store.compact(settled).await {
            Ok(buckets) => {
                ingest.metrics.rollup_days_compacted.inc_by(buckets);
            }
            Err(error) => tracing::warn!(%error, "compaction failed; it tries again"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(EVERY) => {}
        }
    }
}
