//! The compactor (ClickHouse): the days marked dirty and settled are
//! recomputed into the rollups (see `store/clickhouse/rollups.rs`). Stats
//! stay exact meanwhile: a query reads a link's dirty days from raw clicks.
//! On SQLite the rollups are kept in the clicks' own transaction and this
//! does nothing.
//!
//! Ingest comes first. While the click consumer is catching up (more than
//! a batch waiting), a recomputation would take the cores the backlog
//! needs, and every day the backlog touches would be recomputed again
//! moments later; so the compactor waits, at most `MAX_DEFER` since its
//! last run. Otherwise it is paced: after a run that took `t`, it waits
//! `3t` (at least 2 s), so it takes at most a quarter of the time (and one
//! core) while clicks keep coming, and follows within seconds when the
//! system is quiet.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::Ingest;
use crate::metrics::SubjectLabel;
use crate::store::rollup::SETTLE_US;

/// The shortest wait between two runs.
const AT_LEAST: Duration = Duration::from_secs(2);
/// The wait after a run, as a multiple of the run's time.
const PACE: u32 = 3;
/// The longest a backlog defers a run.
const MAX_DEFER: Duration = Duration::from_secs(300);

/// Runs until `shutdown`.
pub async fn run(ingest: Arc<Ingest>, shutdown: CancellationToken) {
    if ingest.clicks.kind() != "clickhouse" {
        return;
    }
    let mut last_run = Instant::now();
    loop {
        if catching_up(&ingest) && last_run.elapsed() < MAX_DEFER {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(AT_LEAST) => continue,
            }
        }
        let now = chrono::Utc::now().timestamp_micros();
        let settled = now - SETTLE_US;
        let started = Instant::now();
        last_run = started;
        ingest.metrics.rollup_compacting.set(1);
        match ingest.clicks.compact(settled).await {
            Ok(days) => {
                ingest.metrics.rollup_days_compacted.inc_by(days);
                ingest
                    .metrics
                    .rollup_compacted_through
                    .set(settled / 1_000_000);
            }
            Err(error) => tracing::warn!(%error, "compaction failed; it tries again"),
        }
        ingest.metrics.rollup_compacting.set(0);
        let wait = (started.elapsed() * PACE).max(AT_LEAST);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Whether more than a batch of clicks waits for the consumer (its lag, as
/// last reported to `/metrics`).
fn catching_up(ingest: &Ingest) -> bool {
    let lag = ingest
        .metrics
        .consumer_lag
        .get_or_create(&SubjectLabel {
            subject: contracts::subjects::URL_CLICKED,
        })
        .get();
    usize::try_from(lag).unwrap_or(0) > ingest.settings.batch_size
}
