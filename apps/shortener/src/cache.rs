//! The redirect cache: a cache hit serves a redirect without touching the
//! store.
//!
//! Bounded (`quick_cache`: S3-FIFO, where a hit is a shard read lock and a
//! hash lookup, no per-read bookkeeping queue) and kept correct in three
//! ways:
//! a write on this instance invalidates its entry at once; writes on other
//! instances arrive as `shortener.url.updated`/`deleted` events, which every
//! instance consumes with its own ordered consumer (not a shared durable one:
//! each instance must see every event); and entries expire after a TTL, which
//! bounds staleness if events are ever missed. Expiry of a link is checked on
//! every hit, so an expired link is never served from the cache.
//!
//! Unknown codes are cached too, briefly and bounded, so a flood of random
//! codes does not reach the store; creating a code ends its "unknown" entry
//! at once here and, through the created event, on every other instance.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer};
use contracts::{AnyEvent, decode_any, subjects};
use futures::StreamExt;
use prometheus_client::metrics::counter::Counter;
use quick_cache::UnitWeighter;
use quick_cache::sync::{Cache, DefaultLifecycle};
use tokio_util::sync::CancellationToken;

use crate::publish::ensure_shortener_stream;
use crate::store::Link;
use service_kit::Backoff;

/// Replaying a few seconds of invalidations too many is harmless; missing
/// one is not.
const CLOCK_SKEW_MARGIN: time::Duration = time::Duration::seconds(5);
/// Every redirect hashes its code: a fast hasher with a per-process random
/// seed, so codes an attacker picks cannot be made to collide.
type Hasher = foldhash::quality::RandomState;

/// Codes share this many invalidation generations (by hash).
const STRIPES: usize = 256;

/// A value with the instant it was put in.
type Stamped<V> = (V, Instant);

/// A bounded map whose entries are forgotten `ttl` after they were put in.
struct Timed<V: Clone> {
    entries: Cache<String, Stamped<V>, UnitWeighter, Hasher, DefaultLifecycle<String, Stamped<V>>>,
    ttl: Duration,
}

impl<V: Clone> Timed<V> {
    fn new(capacity: u64, ttl: Duration) -> Self {
        Self {
            entries: Cache::with(
                usize::try_from(capacity).unwrap_or(usize::MAX),
                capacity,
                UnitWeighter,
                Hasher::default(),
                DefaultLifecycle::default(),
            ),
            ttl,
        }
    }

    fn get(&self, key: &str) -> Option<V> {
        let (value, at) = self.entries.get(key)?;
        if at.elapsed() < self.ttl {
            return Some(value);
        }
        // Only this stale entry: not one a concurrent insert just put in.
        self.entries.remove_if(key, |(_, put)| *put == at);
        None
    }

    fn insert(&self, key: String, value: V) {
        self.entries.insert(key, (value, Instant::now()));
    }

    fn invalidate(&self, key: &str) {
        self.entries.remove(key);
    }
}

/// What the cache knows about a code.
#[derive(Debug, Clone)]
pub enum Cached {
    Link(Arc<Link>),
    /// Looked up recently and unknown to the store.
    Missing,
    /// Not cached: ask the store.
    Unknown,
}

/// A lookup's ticket: taken before reading the store, it lets the result in
/// only if no invalidation of the code happened meanwhile.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    stripe: usize,
    generations: Generations,
}

/// Per stripe: bumped by every invalidation (`links`), and by those plus
/// every creation (`missing`): a creation can make an "unknown" stale, never
/// a link.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Generations {
    links: u64,
    missing: u64,
}

/// Cached links and recently unknown codes, with hit counters for `/metrics`.
///
/// A lookup that read a link before an update or delete must not put the
/// stale link back after the invalidation. Each code hashes to one of
/// [`STRIPES`] generations; an invalidation bumps its generation and removes
/// the entries under the stripe's lock, and an insert checks, under the same
/// lock, that the generation is still the one its lookup started with.
pub struct LinkCache {
    links: Timed<Arc<Link>>,
    missing: Timed<()>,
    generations: Vec<Mutex<Generations>>,
    hits: Counter,
    misses: Counter,
}

impl LinkCache {
    /// `capacity` links for `ttl`, and as many unknown codes for `missing_ttl`.
    pub fn new(capacity: u64, ttl: Duration, missing_ttl: Duration) -> Self {
        Self {
            links: Timed::new(capacity, ttl),
            missing: Timed::new(capacity, missing_ttl),
            generations: (0..STRIPES)
                .map(|_| Mutex::new(Generations::default()))
                .collect(),
            hits: Counter::default(),
            misses: Counter::default(),
        }
    }

    fn stripe(code: &str) -> usize {
        // FNV-1a: cheap, and only needs to spread codes over the stripes.
        let hash = code.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        (hash % STRIPES as u64) as usize
    }

    pub fn get(&self, code: &str) -> Cached {
        let found = match self.links.get(code) {
            Some(link) => Cached::Link(link),
            None if self.missing.get(code).is_some() => Cached::Missing,
            None => Cached::Unknown,
        };
        let counter = match found {
            Cached::Unknown => &self.misses,
            _ => &self.hits,
        };
        counter.inc();
        found
    }

    /// Take before reading the store; see [`LinkCache`].
    pub fn ticket(&self, code: &str) -> Ticket {
        let stripe = Self::stripe(code);
        let generations = *self.generations[stripe]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        Ticket {
            stripe,
            generations,
        }
    }

    /// Caches what the store said (`None`: unknown), unless the code was
    /// invalidated since `ticket` was taken.
    pub fn insert(&self, code: &str, found: Option<Arc<Link>>, ticket: Ticket) {
        let now = self.generations[ticket.stripe]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match found {
            Some(link) if now.links == ticket.generations.links => {
                self.links.insert(code.to_owned(), link)
            }
            None if now.missing == ticket.generations.missing => {
                self.missing.insert(code.to_owned(), ())
            }
            _ => {}
        }
    }

    /// Forgets the code: after a write here, or an event from elsewhere.
    pub fn invalidate(&self, code: &str) {
        let mut generations = self.generations[Self::stripe(code)]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        generations.links += 1;
        generations.missing += 1;
        self.links.invalidate(code);
        self.missing.invalidate(code);
    }

    /// Forgets only that the code was unknown (it was just created
    /// elsewhere); a cached link of it stays.
    pub fn forget_missing(&self, code: &str) {
        let mut generations = self.generations[Self::stripe(code)]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        generations.missing += 1;
        self.missing.invalidate(code);
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
        Self::new(100_000, Duration::from_secs(60), Duration::from_secs(5))
    }
}

/// Consumes created/updated/deleted events and drops the codes they name
/// from the cache (a created event ends a cached "unknown"), until `shutdown`. Delivery starts at `cache_created` (less a
/// margin for clock skew), not at "new": an event published after the cache
/// could first hold a link, but before this consumer existed, must not be
/// missed. Survives NATS outages: ordered consumers resume after the last
/// event they saw, and the whole loop restarts on failure.
pub async fn run_invalidation(
    jetstream: jetstream::Context,
    stream_replicas: usize,
    cache: Arc<LinkCache>,
    cache_created: time::OffsetDateTime,
    shutdown: CancellationToken,
) {
    let start_time = cache_created - CLOCK_SKEW_MARGIN;
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    while !shutdown.is_cancelled() {
        let run = async {
            let stream = ensure_shortener_stream(&jetstream, stream_replicas).await?;
            let mut merged = Vec::new();
            for subject in [
                subjects::URL_CREATED,
                subjects::URL_UPDATED,
                subjects::URL_DELETED,
            ] {
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
                    Ok(AnyEvent::Created(e)) => cache.forget_missing(&e.data.short_code),
                    Ok(AnyEvent::Updated(e)) => cache.invalidate(&e.data.short_code),
                    Ok(AnyEvent::Deleted(e)) => cache.invalidate(&e.data.short_code),
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
            tracing::warn!(
                error = format!("{error:#}"),
                "cache invalidation interrupted; restarting it"
            );
        }
        backoff.wait(shutdown.cancelled()).await;
    }
}
