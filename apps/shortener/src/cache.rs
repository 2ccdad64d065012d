//! The redirect cache: a cache hit serves a redirect without touching the
//! store.
//!
//! Bounded (`moka`, TinyLFU admission) and kept correct in three ways:
//! a write on this instance invalidates its entry at once; writes on other
//! instances arrive as `shortener.url.updated`/`deleted` events, which every
//! instance consumes with its own ordered consumer (not a shared durable one:
//! each instance must see every event); and entries expire after a TTL, which
//! bounds staleness if events are ever missed. Expiry of a link is checked on
//! every hit, so an expired link is never served from the cache.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use contracts::stream::{ensure_stream, shortener_stream_config};
use contracts::{decode_any, subjects, AnyEvent};
use futures::StreamExt;
use moka::future::Cache;
use prometheus_client::metrics::counter::Counter;
use tokio_util::sync::CancellationToken;

use crate::store::Link;

/// Replaying a few seconds of invalidations too many is harmless; missing
/// one is not.
const CLOCK_SKEW_MARGIN: time::Duration = time::Duration::seconds(5);

/// Cached links by code, with hit counters for `/metrics`.
pub struct LinkCache {
    links: Cache<String, Arc<Link>>,
    hits: Counter,
    misses: Counter,
}

impl LinkCache {
    pub fn new(capacity: u64, ttl: Duration) -> Self {
        Self {
            links: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
            hits: Counter::default(),
            misses: Counter::default(),
        }
    }

    pub async fn get(&self, code: &str) -> Option<Arc<Link>> {
        let found = self.links.get(code).await;
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.inc();
        found
    }

    pub async fn insert(&self, link: Arc<Link>) {
        self.links.insert(link.code.clone(), link).await;
    }

    pub async fn invalidate(&self, code: &str) {
        self.links.invalidate(code).await;
    }

    /// `(hits, misses)` since start.
    pub fn stats(&self) -> (u64, u64) {
        (self.hits.get(), self.misses.get())
    }

    /// The hit and miss counters, for registering with `/metrics`.
    pub fn counters(&self) -> (Counter, Counter) {
        (self.hits.clone(), self.misses.clone())
    }
}

impl Default for LinkCache {
    fn default() -> Self {
        Self::new(100_000, Duration::from_secs(60))
    }
}

/// Consumes updated/deleted events and drops the links they name from the
/// cache, until `shutdown`. Delivery starts at `cache_created` (less a
/// margin for clock skew), not at "new": an event published after the cache
/// could first hold a link, but before this consumer existed, must not be
/// missed. Survives NATS outages: ordered consumers resume after the last
/// event they saw, and the whole loop restarts on failure.
pub async fn run_invalidation(
    jetstream: jetstream::Context,
    cache: Arc<LinkCache>,
    cache_created: time::OffsetDateTime,
    shutdown: CancellationToken,
) {
    let start_time = cache_created - CLOCK_SKEW_MARGIN;
    let mut backoff = Duration::from_millis(100);
    while !shutdown.is_cancelled() {
        let run = async {
            let stream = ensure_stream(&jetstream, shortener_stream_config()).await?;
            let mut merged = Vec::new();
            for subject in [subjects::URL_UPDATED, subjects::URL_DELETED] {
                let consumer = stream
                    .create_consumer(consumer::pull::OrderedConfig {
                        filter_subject: subject.to_owned(),
                        deliver_policy: consumer::DeliverPolicy::ByStartTime { start_time },
                        ..Default::default()
                    })
                    .await?;
                merged.push(consumer.messages().await?);
            }
            let mut messages = futures::stream::select_all(merged);
            tracing::info!("redirect cache follows link updates and deletions");
            while let Some(message) = messages.next().await {
                let message = message?;
                match decode_any(&message.payload) {
                    Ok(AnyEvent::Updated(e)) => cache.invalidate(&e.data.short_code).await,
                    Ok(AnyEvent::Deleted(e)) => cache.invalidate(&e.data.short_code).await,
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(%error, "ignoring an undecodable event on an invalidation subject")
                    }
                }
            }
            anyhow::Ok(())
        };
        let outcome = tokio::select! {
            outcome = run => outcome,
            _ = shutdown.cancelled() => return,
        };
        if let Err(error) = outcome {
            tracing::warn!(error = format!("{error:#}"), retry_in = ?backoff, "cache invalidation interrupted");
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.cancelled() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
