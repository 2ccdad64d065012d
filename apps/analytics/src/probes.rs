//! What this instance says about itself: `/ready` and `/metrics` (no key,
//! for load balancers and Prometheus), and `GET /api/v1/status` (with a
//! key), its readiness and figures as JSON for an operator's page, so that
//! page does not depend on metric names.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::{HttpResponse, web};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use serde::Serialize;
use utoipa::ToSchema;

use crate::consumer::{CONSUMER_SILENCE_LIMIT, ConsumerHealth, SUBJECTS};
use crate::metrics::{Metrics, SubjectLabel};
use crate::problem::{ApiError, ProblemBody};
use crate::store::AnalyticsStore;

/// What `/ready` and `/metrics` look at.
pub struct Probes {
    pub store: Arc<dyn AnalyticsStore>,
    pub nats: async_nats::Client,
    pub metrics: Arc<Metrics>,
    pub consuming: Arc<AtomicBool>,
    pub health: Arc<ConsumerHealth>,
}

/// Readiness: the store answers, NATS is connected and the consumers run.
/// What is not ready, named (never described: error texts can carry hosts
/// and users); empty when all is.
async fn not_ready(probes: &Probes) -> Vec<String> {
    let ping = tokio::time::timeout(std::time::Duration::from_secs(2), probes.store.ping());
    let store = match ping.await {
        Ok(Ok(())) => None,
        Ok(Err(error)) => {
            tracing::warn!(%error, "readiness: the store does not answer");
            Some("store".to_owned())
        }
        Err(_) => {
            tracing::warn!("readiness: the store did not answer within 2 s");
            Some("store".to_owned())
        }
    };
    let nats = match probes.nats.connection_state() {
        async_nats::connection::State::Connected => None,
        other => Some(format!("nats: {other}")),
    };
    let consumers = (!probes.consuming.load(Ordering::Acquire))
        .then(|| "consumers: not running yet".to_owned());
    let silences = probes.health.silences();
    let silent = silences
        .iter()
        .filter(|(_, silence)| *silence > CONSUMER_SILENCE_LIMIT)
        .map(|(subject, silence)| {
            format!("consumer of {subject}: silent for {} s", silence.as_secs())
        });
    [store, nats, consumers]
        .into_iter()
        .flatten()
        .chain(silent)
        .collect()
}

pub async fn ready(probes: web::Data<Probes>) -> Result<HttpResponse, ApiError> {
    let failing = not_ready(&probes).await;
    if failing.is_empty() {
        let silences = probes.health.silences();
        let subjects: serde_json::Map<String, serde_json::Value> = silences
            .iter()
            .map(|(subject, silence)| {
                let seconds = silence.as_secs_f64();
                (
                    (*subject).to_owned(),
                    serde_json::json!({ "answered_seconds_ago": (seconds * 10.0).round() / 10.0 }),
                )
            })
            .collect();
        Ok(HttpResponse::Ok().json(serde_json::json!({
            "status": "ready",
            "store": probes.store.kind(),
            "checks": { "store": "ok", "nats": "ok", "consumers": "ok" },
            "consumers": subjects,
        })))
    } else {
        Err(ApiError::NotReady(failing))
    }
}

pub async fn render_metrics(probes: web::Data<Probes>) -> HttpResponse {
    let ready = not_ready(&probes).await.is_empty();
    probes.metrics.ready.set(i64::from(ready));
    service_kit::probes::metrics_response(probes.metrics.render())
}

/// This instance as an operator's page shows it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Status)]
pub struct StatusResponse {
    #[schema(example = "analytics")]
    pub service: &'static str,
    #[schema(example = "0.1.0")]
    pub version: &'static str,
    /// Whether `/ready` answers 200: the store answers, NATS is connected
    /// and every consumer runs.
    pub ready: bool,
    /// What is not ready, named; empty when ready.
    pub not_ready: Vec<String>,
    /// `sqlite` or `clickhouse`.
    pub store: &'static str,
    /// One per subject analytics consumes.
    pub consumers: Vec<ConsumerStatus>,
    /// Messages moved to the dead-letter subject since this instance started.
    pub dead_letters: u64,
}

/// One durable consumer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsumerStatus {
    #[schema(example = "shortener.url.clicked")]
    pub subject: &'static str,
    /// Whether it answered its last probe.
    pub up: bool,
    /// Messages of the subject not yet acknowledged, at the last look.
    pub lag: u64,
    /// Seconds since it last answered.
    pub answered_seconds_ago: f64,
}

/// Analytics' readiness and figures, for any valid key: what the
/// console's System page shows.
#[utoipa::path(
    get,
    path = "/api/v1/status",
    tag = "operations",
    responses(
        (status = 200, description = "Readiness, the consumers and the dead letters, now (also when not ready)", body = StatusResponse),
        (status = 401, description = "No valid API key", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed attempts from this address", body = ProblemBody, content_type = "application/problem+json", headers(("retry-after" = u64))),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub async fn status(probes: web::Data<Probes>) -> HttpResponse {
    let not_ready = not_ready(&probes).await;
    probes.metrics.ready.set(i64::from(not_ready.is_empty()));
    let silences = probes.health.silences();
    let consumers = SUBJECTS
        .into_iter()
        .map(|subject| {
            let label = SubjectLabel { subject };
            let gauge = |family: &Family<SubjectLabel, Gauge>| family.get_or_create(&label).get();
            let silence = silences
                .iter()
                .find(|(s, _)| *s == subject)
                .map_or(0.0, |(_, silence)| silence.as_secs_f64());
            ConsumerStatus {
                subject,
                up: gauge(&probes.metrics.consumer_up) == 1,
                lag: u64::try_from(gauge(&probes.metrics.consumer_lag)).unwrap_or(0),
                answered_seconds_ago: (silence * 10.0).round() / 10.0,
            }
        })
        .collect();
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(StatusResponse {
            service: "analytics",
            version: env!("CARGO_PKG_VERSION"),
            ready: not_ready.is_empty(),
            not_ready,
            store: probes.store.kind(),
            consumers,
            dead_letters: probes.metrics.dead_letters_total.get(),
        })
}
