//! The links' `click_count`, kept in step with acknowledged clicks in a task
//! of its own: a slow or absent store delays the counters, never publishing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::store::Links;
use service_kit::Backoff;

/// Clicks per link. Counted once per published click, so hashed with a
/// fast seeded hasher rather than SipHash.
pub type PerLink = HashMap<Uuid, u64, foldhash::fast::RandomState>;

/// Acknowledged clicks per link, not yet added to the store.
#[derive(Default)]
pub struct ClickCounts(Mutex<PerLink>);

impl ClickCounts {
    /// Adds a batch's clicks under one lock.
    pub fn add_all(&self, clicks: PerLink) {
        if clicks.is_empty() {
            return;
        }
        if let Ok(mut counts) = self.0.lock() {
            for (link, n) in clicks {
                *counts.entry(link).or_default() += n;
            }
        }
    }

    fn take(&self) -> PerLink {
        self.0
            .lock()
            .map(|mut c| std::mem::take(&mut *c))
            .unwrap_or_default()
    }

    /// Puts back what could not be saved, adding to what arrived meanwhile.
    fn restore(&self, unsaved: PerLink) {
        self.add_all(unsaved);
    }
}

/// Adds [`ClickCounts`] to the store every interval; see the module docs.
pub struct CountFlusher {
    pub store: Arc<dyn Links>,
    pub counts: Arc<ClickCounts>,
    pub interval: Duration,
    pub backoff: Backoff,
    /// How long the last flush at shutdown may keep trying.
    pub drain_timeout: Duration,
}

impl CountFlusher {
    /// Flushes until `shutdown`, then once more until the counts are saved
    /// or the drain time is over. Cancel `shutdown` only after the
    /// publisher has finished, so its last acks are counted too.
    pub async fn run(mut self, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            let delay = match self.flush().await {
                true => {
                    self.backoff.reset();
                    self.interval
                }
                false => self.backoff.next_delay().max(self.interval),
            };
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.cancelled() => {}
            }
        }
        let deadline = Instant::now() + self.drain_timeout;
        loop {
            if self.flush().await {
                return;
            }
            if Instant::now() >= deadline {
                let left = self.counts.take();
                tracing::error!(
                    links = left.len(),
                    clicks = left.values().sum::<u64>(),
                    "click counts could not be saved before shutdown"
                );
                return;
            }
            tokio::time::sleep(self.backoff.next_delay()).await;
        }
    }

    /// One flush; false when the store refused it (the counts are kept).
    /// Not cut short by a timeout: a write that timed out here might still
    /// commit, and the retry would then count twice.
    async fn flush(&self) -> bool {
        let counts = self.counts.take();
        if counts.is_empty() {
            return true;
        }
        let list: Vec<(Uuid, u64)> = counts.iter().map(|(id, n)| (*id, *n)).collect();
        match self.store.add_clicks(&list).await {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(%error, links = list.len(), "click counts not saved; retrying");
                self.counts.restore(counts);
                false
            }
        }
    }
}
