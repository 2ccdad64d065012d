//! Prometheus metrics, served at `GET /metrics` in the text format.
//!
//! One registry per application (no global recorder, so several instances
//! can live in one process, as they do in tests). Components own their
//! counters (the cache its hits, the relay and the click publisher theirs)
//! and the registry holds clones of them; gauges that are cheaper to read
//! than to maintain (outbox depth, queued clicks) are set at scrape time.

use std::borrow::Cow;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::gauge::Gauge as GaugeOf;

use crate::cache::LinkCache;
use crate::clicks::ClickMetrics;
use crate::outbox::OutboxRelay;

/// HTTP method, as a closed set so labels need no allocation.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(clippy::upper_case_acronyms)]
pub enum Method {
    GET,
    HEAD,
    POST,
    PUT,
    PATCH,
    DELETE,
    OPTIONS,
    OTHER,
}

impl From<&actix_web::http::Method> for Method {
    fn from(method: &actix_web::http::Method) -> Self {
        match method.as_str() {
            "GET" => Method::GET,
            "HEAD" => Method::HEAD,
            "POST" => Method::POST,
            "PUT" => Method::PUT,
            "PATCH" => Method::PATCH,
            "DELETE" => Method::DELETE,
            "OPTIONS" => Method::OPTIONS,
            _ => Method::OTHER,
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: Method,
    /// The matched route pattern (`/{code}`, `/api/v1/links`), never the raw
    /// path, so the label set stays small.
    pub route: Cow<'static, str>,
    pub status: u16,
}

/// The service's metrics.
/// The answers of the redirect route, whose counters are kept at hand.
const REDIRECT_STATUSES: [u16; 6] = [301, 302, 307, 308, 404, 410];

pub struct Metrics {
    registry: Registry,
    /// `requests` of GET and HEAD on `/{code}` by [`REDIRECT_STATUSES`].
    redirect_counters: [[Counter; 6]; 2],
    pub requests: Family<RequestLabels, Counter>,
    pub redirect_seconds: Histogram,
    pub outbox_depth: Gauge,
    pub clicks_queued: Gauge,
    pub spool_depth: Gauge,
    pub spool_oldest_age: GaugeOf<f64, AtomicU64>,
    pub nats_connected: Gauge,
    /// What `/ready` would answer, at the last scrape.
    pub ready: Gauge,
}

impl Metrics {
    pub fn new(cache: &LinkCache, relay: &OutboxRelay, click: &ClickMetrics) -> Self {
        let mut registry = Registry::with_prefix("shortener");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests served, by route and status",
            requests.clone(),
        );
        // 50 µs to ~1.6 s.
        let redirect_seconds = Histogram::new(exponential_buckets(0.000_05, 2.0, 16));
        registry.register(
            "redirect_duration_seconds",
            "Time to serve a redirect",
            redirect_seconds.clone(),
        );
        let (hits, misses) = cache.counters();
        registry.register(
            "redirect_cache_hits",
            "Redirects served from the cache",
            hits,
        );
        registry.register(
            "redirect_cache_misses",
            "Redirects that had to read the store",
            misses,
        );
        let outbox_depth = Gauge::default();
        registry.register(
            "outbox_depth",
            "Events waiting in the outbox to be published",
            outbox_depth.clone(),
        );
        registry.register(
            "outbox_published",
            "Outbox events published to JetStream",
            relay.published_counter(),
        );
        let clicks_queued = Gauge::default();
        registry.register(
            "clicks_queued",
            "Click events waiting to be published",
            clicks_queued.clone(),
        );
        registry.register(
            "clicks_published",
            "Click events acknowledged by JetStream, directly or from the spool",
            click.published.clone(),
        );
        registry.register(
            "click_publish_failures",
            "Click events JetStream did not acknowledge in time (then spooled)",
            click.failures.clone(),
        );
        registry.register(
            "click_publish_lag_seconds",
            "Time from a click to its JetStream ack",
            click.lag_seconds.clone(),
        );
        registry.register(
            "clicks_spooled",
            "Click events kept in the store because JetStream did not take them",
            click.spooled.clone(),
        );
        registry.register(
            "clicks_relayed",
            "Spooled click events published once JetStream was back",
            click.relayed.clone(),
        );
        registry.register(
            "clicks_dropped",
            "Click events lost, by reason (queue_full, broker_and_store_unavailable, ...)",
            click.drops.counter.clone(),
        );
        let spool_depth = Gauge::default();
        registry.register(
            "click_spool_depth",
            "Click events waiting in the store's spool",
            spool_depth.clone(),
        );
        let spool_oldest_age = GaugeOf::<f64, AtomicU64>::default();
        registry.register(
            "click_spool_oldest_age_seconds",
            "Age of the oldest spooled click (0 when the spool is empty)",
            spool_oldest_age.clone(),
        );
        let nats_connected = Gauge::default();
        registry.register(
            "nats_connected",
            "1 while the NATS connection is up",
            nats_connected.clone(),
        );
        let ready = Gauge::default();
        registry.register(
            "ready",
            "1 when /ready would answer 200 (the store answers), at this scrape",
            ready.clone(),
        );
        let redirect_counters = [Method::GET, Method::HEAD].map(|method| {
            REDIRECT_STATUSES.map(|status| {
                requests
                    .get_or_create(&RequestLabels {
                        method,
                        route: Cow::Borrowed("/{code}"),
                        status,
                    })
                    .clone()
            })
        });
        Self {
            registry,
            redirect_counters,
            requests,
            redirect_seconds,
            outbox_depth,
            clicks_queued,
            spool_depth,
            spool_oldest_age,
            nats_connected,
            ready,
        }
    }

    pub fn observe_request(
        &self,
        method: Method,
        route: Cow<'static, str>,
        status: u16,
        elapsed: Duration,
    ) {
        if route == "/{code}" {
            self.redirect_seconds.observe(elapsed.as_secs_f64());
            if let Some(counter) = self.redirect_counter(method, status) {
                counter.inc();
                return;
            }
        }
        self.requests
            .get_or_create(&RequestLabels {
                method,
                route,
                status,
            })
            .inc();
    }

    /// The counter of a usual redirect answer, looked up without hashing:
    /// this runs once per redirect.
    fn redirect_counter(&self, method: Method, status: u16) -> Option<&Counter> {
        let row = match method {
            Method::GET => 0,
            Method::HEAD => 1,
            _ => return None,
        };
        let column = REDIRECT_STATUSES.iter().position(|s| *s == status)?;
        Some(&self.redirect_counters[row][column])
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}
