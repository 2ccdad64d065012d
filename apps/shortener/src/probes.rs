//! What this instance says about itself: `/ready` and `/metrics` (no key,
//! for load balancers and Prometheus), and `GET /api/v1/status` (with a
//! key), the same figures as JSON for an operator's page, so that page
//! does not depend on metric names.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::clicks::{ClickRecorder, DROP_REASONS, DropLabels, Drops};
use crate::keys::Caller;
use crate::metrics::Metrics;
use crate::problem::{ApiError, ProblemBody};
use crate::store::Store;

/// What `/ready`, `/metrics` and `/api/v1/status` look at.
pub struct Probes {
    pub store: Arc<dyn Store>,
    pub nats: async_nats::Client,
    pub metrics: Arc<Metrics>,
    pub clicks: ClickRecorder,
    pub drops: Arc<Drops>,
}

/// How long a probe may wait for the store.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

fn nats_connected(nats: &async_nats::Client) -> bool {
    matches!(
        nats.connection_state(),
        async_nats::connection::State::Connected
    )
}

/// Readiness: this instance can serve redirects and the API, which means
/// its store answers. NATS is reported, not required: without it links are
/// still created (the outbox holds their events) and clicks wait in the
/// spool, so a broker outage must not take every replica out of the load
/// balancer at once.
pub async fn ready(probes: web::Data<Probes>) -> Result<HttpResponse, ApiError> {
    let store = tokio::time::timeout(PROBE_TIMEOUT, probes.store.ping()).await;
    if !matches!(store, Ok(Ok(()))) {
        // Named, not described: error texts can carry hosts and users.
        return Err(ApiError::NotReady(vec!["store".into()]));
    }
    // Disconnected: clicks wait in the spool, events in the outbox.
    let nats = if nats_connected(&probes.nats) {
        "ok"
    } else {
        "disconnected"
    };
    Ok(HttpResponse::Ok()
        .json(serde_json::json!({ "status": "ready", "checks": { "store": "ok", "nats": nats } })))
}

/// This instance as an operator's page shows it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Status)]
pub struct StatusResponse {
    #[schema(example = "shortener")]
    pub service: &'static str,
    #[schema(example = "0.1.0")]
    pub version: &'static str,
    /// Whether `/ready` answers 200: the store answers.
    pub ready: bool,
    /// What is not ready, named; empty when ready.
    pub not_ready: Vec<String>,
    /// Whether this instance is connected to NATS. Not needed to be ready:
    /// events wait in the outbox and clicks in the spool.
    pub nats_connected: bool,
    /// Link events written but not yet published; null when the store did
    /// not answer.
    pub outbox_depth: Option<u64>,
    /// Click events kept in the store because JetStream did not take them;
    /// null when the store did not answer.
    pub click_spool_depth: Option<u64>,
    /// Age of the oldest spooled click event, in seconds (0 when none);
    /// null when the store did not answer.
    pub click_spool_oldest_age_seconds: Option<f64>,
    /// Click events waiting in memory for the publisher.
    pub clicks_queued: u64,
    /// Click events lost since this instance started, by reason.
    #[schema(example = json!({"queue_full": 0, "broker_and_store_unavailable": 0, "shutting_down": 0, "invalid": 0}))]
    pub clicks_dropped: BTreeMap<&'static str, u64>,
}

impl Probes {
    /// Reads every figure now (the store with a timeout), and sets the
    /// gauges that `/metrics` shows from them.
    async fn status(&self) -> StatusResponse {
        let metrics = &self.metrics;
        // The store answering the outbox's depth is what `/ready` asks of it.
        let depth = tokio::time::timeout(PROBE_TIMEOUT, self.store.outbox_depth()).await;
        let outbox_depth = match depth {
            Ok(Ok(depth)) => Some(depth),
            _ => None,
        };
        let spool = match tokio::time::timeout(PROBE_TIMEOUT, self.store.spool_state()).await {
            Ok(Ok(spool)) => Some(spool),
            _ => None,
        };
        let oldest_age = spool.as_ref().map(|spool| {
            spool.oldest.map_or(0.0, |at| {
                (chrono::Utc::now() - at).num_milliseconds().max(0) as f64 / 1000.0
            })
        });
        let status = StatusResponse {
            service: "shortener",
            version: env!("CARGO_PKG_VERSION"),
            ready: outbox_depth.is_some(),
            not_ready: match outbox_depth {
                Some(_) => Vec::new(),
                None => vec!["store".to_owned()],
            },
            nats_connected: nats_connected(&self.nats),
            outbox_depth,
            click_spool_depth: spool.as_ref().map(|spool| spool.depth),
            click_spool_oldest_age_seconds: oldest_age,
            clicks_queued: self.clicks.queued() as u64,
            clicks_dropped: DROP_REASONS
                .into_iter()
                .map(|reason| {
                    let counter = self.drops.counter.get_or_create(&DropLabels { reason });
                    (reason, counter.get())
                })
                .collect(),
        };
        let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        metrics.ready.set(i64::from(status.ready));
        if let Some(depth) = status.outbox_depth {
            metrics.outbox_depth.set(gauge(depth));
        }
        if let (Some(depth), Some(age)) = (
            status.click_spool_depth,
            status.click_spool_oldest_age_seconds,
        ) {
            metrics.spool_depth.set(gauge(depth));
            metrics.spool_oldest_age.set(age);
        }
        metrics.clicks_queued.set(gauge(status.clicks_queued));
        metrics.nats_connected.set(i64::from(status.nats_connected));
        status
    }
}

pub async fn render_metrics(probes: web::Data<Probes>) -> HttpResponse {
    probes.status().await;
    service_kit::probes::metrics_response(probes.metrics.render())
}

/// This instance's readiness and figures, for any valid key: what the
/// console's System page shows.
#[utoipa::path(
    get,
    path = "/api/v1/status",
    tag = "operations",
    responses(
        (status = 200, description = "Readiness and the click pipeline's figures, now (also when not ready)", body = StatusResponse),
        (status = 401, description = "No valid API key", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed attempts from this address", body = ProblemBody, content_type = "application/problem+json", headers(("retry-after" = u64))),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub async fn status(probes: web::Data<Probes>, _: Caller) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(probes.status().await)
}
