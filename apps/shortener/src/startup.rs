//! Builds the service from its settings: store, NATS, outbox relay, HTTP.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle, Service};
use actix_web::middleware::ErrorHandlers;
use actix_web::{web, App, HttpResponse, HttpServer};
use anyhow::Context;
use async_nats::jetstream;
use tokio_util::sync::CancellationToken;

use crate::api::{self, ApiState, CreateRateLimit};
use crate::cache::{run_invalidation, LinkCache};
use crate::clicks::{click_pipeline, ClickPublisher, ClickRecorder, ClickSettings, VisitorKeys};
use crate::configuration::{Settings, StoreSettings};
use crate::metrics::{Method, Metrics};
use crate::outbox::{OutboxRelay, RelaySettings};
use crate::problem::{self, ApiError};
use crate::service::LinkService;
use crate::store::mongo::MongoStore;
use crate::store::sqlite::SqliteStore;
use crate::store::LinkStore;

/// The running service: HTTP server and outbox relay.
pub struct Application {
    port: u16,
    server: Server,
    relay: OutboxRelay,
    clicks: ClickPublisher,
    store: Arc<dyn LinkStore>,
    jetstream: jetstream::Context,
    cache: Arc<LinkCache>,
    cache_created: time::OffsetDateTime,
}

/// Opens the store the settings choose.
pub async fn open_store(settings: &StoreSettings) -> anyhow::Result<Arc<dyn LinkStore>> {
    Ok(match settings {
        StoreSettings::Sqlite { path } => Arc::new(SqliteStore::open(path).await?),
        StoreSettings::Mongo { uri, database } => Arc::new(
            MongoStore::connect(uri.expose(), database)
                .await
                .context("failed to connect to MongoDB")?,
        ),
    })
}

impl Application {
    /// Opens the store, connects to NATS and binds the listener (port 0
    /// picks a free port). NATS may be down: the client keeps retrying in the
    /// background and the outbox holds events until it is back.
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let store = open_store(&settings.store).await?;
        let nats = async_nats::ConnectOptions::new()
            .name("shortener")
            .retry_on_initial_connect()
            .connect(&settings.nats_url)
            .await
            .with_context(|| format!("invalid NATS URL {:?}", settings.nats_url))?;
        let jetstream = jetstream::new(nats.clone());
        let relay = OutboxRelay::new(store.clone(), jetstream.clone(), RelaySettings::default());
        let (recorder, clicks) = click_pipeline(
            store.clone(),
            jetstream.clone(),
            VisitorKeys::new(settings.visitor_key_secret.as_ref()),
            ClickSettings::default(),
        );
        let cache = Arc::new(LinkCache::default());
        let cache_created = time::OffsetDateTime::now_utc();
        let service = LinkService::new(store.clone(), settings.codes, relay.waker(), cache.clone());
        let state = web::Data::new(ApiState {
            service,
            public_url: settings.public_url.clone(),
            api_key: settings.api_key.clone(),
            create_limit: CreateRateLimit::per_minute(settings.create_rate_per_minute),
            clicks: recorder,
            country_header: settings.country_header.clone(),
        });
        let metrics = Arc::new(Metrics::new(&cache, &relay, &clicks));
        let probes = web::Data::new(Probes {
            store: store.clone(),
            nats,
            metrics: metrics.clone(),
            clicks: state.clicks.clone(),
        });
        let listener = TcpListener::bind(settings.http_addr)
            .with_context(|| format!("failed to bind {}", settings.http_addr))?;
        let port = listener.local_addr()?.port();
        let mut server = HttpServer::new(move || {
            let metrics = metrics.clone();
            App::new()
                .app_data(state.clone())
                .app_data(probes.clone())
                .app_data(web::PayloadConfig::new(api::MAX_BODY_BYTES))
                .wrap(ErrorHandlers::new().default_handler(problem::problem_for_framework_errors))
                .wrap_fn(move |request, service| {
                    let started = std::time::Instant::now();
                    let method = Method::from(request.method());
                    let response = service.call(request);
                    let metrics = metrics.clone();
                    async move {
                        let response = response.await?;
                        let route = response
                            .request()
                            .match_pattern()
                            .unwrap_or_else(|| "unmatched".into());
                        metrics.observe_request(
                            method,
                            route,
                            response.status().as_u16(),
                            started.elapsed(),
                        );
                        Ok(response)
                    }
                })
                .route("/health", web::get().to(health))
                .route("/ready", web::get().to(ready))
                .route("/metrics", web::get().to(render_metrics))
                .configure(api::routes)
                .configure(api::redirect_route)
        });
        if let Some(workers) = settings.workers {
            server = server.workers(workers);
        }
        let server = server
            .listen(listener)
            .context("failed to start the HTTP server")?
            .run();
        Ok(Self {
            port,
            server,
            relay,
            clicks,
            store,
            jetstream,
            cache,
            cache_created,
        })
    }

    /// The port actually bound.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the HTTP server (gracefully or not), which ends `run_until_stopped`.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    pub fn store(&self) -> Arc<dyn LinkStore> {
        self.store.clone()
    }

    /// Serves until SIGINT/SIGTERM (or [`Application::handle`]'s stop):
    /// in-flight requests finish, then the click publisher and the outbox
    /// relay drain what is pending before this returns.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let shutdown = CancellationToken::new();
        let relay = tokio::spawn(self.relay.run(shutdown.clone()));
        let clicks = tokio::spawn(self.clicks.run(shutdown.clone()));
        let invalidation = tokio::spawn(run_invalidation(
            self.jetstream,
            self.cache,
            self.cache_created,
            shutdown.clone(),
        ));
        let served = self.server.await;
        tracing::info!("HTTP server stopped; draining clicks and the outbox");
        shutdown.cancel();
        clicks.await.context("the click publisher panicked")?;
        relay.await.context("the outbox relay panicked")?;
        invalidation
            .await
            .context("the cache invalidation panicked")?;
        served.context("the HTTP server failed")
    }
}

/// What `/ready` and `/metrics` look at.
struct Probes {
    store: Arc<dyn LinkStore>,
    nats: async_nats::Client,
    metrics: Arc<Metrics>,
    clicks: ClickRecorder,
}

/// Readiness: the store answers and NATS is connected. A shortener without
/// NATS still creates links (the outbox holds the events) but stops being
/// ready, so an orchestrator can tell and route redirects elsewhere.
async fn ready(probes: web::Data<Probes>) -> Result<HttpResponse, ApiError> {
    let store = probes
        .store
        .ping()
        .await
        .err()
        .map(|e| format!("store: {e}"));
    let nats = match probes.nats.connection_state() {
        async_nats::connection::State::Connected => None,
        other => Some(format!("nats: {other}")),
    };
    let failing: Vec<String> = [store, nats].into_iter().flatten().collect();
    if failing.is_empty() {
        Ok(HttpResponse::Ok().json(
            serde_json::json!({ "status": "ready", "checks": { "store": "ok", "nats": "ok" } }),
        ))
    } else {
        Err(ApiError::NotReady(failing))
    }
}

async fn render_metrics(probes: web::Data<Probes>) -> HttpResponse {
    if let Ok(depth) = probes.store.outbox_depth().await {
        probes
            .metrics
            .outbox_depth
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
    }
    probes
        .metrics
        .clicks_queued
        .set(i64::try_from(probes.clicks.queued()).unwrap_or(i64::MAX));
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(probes.metrics.render())
}

/// Liveness: the process is up and serving HTTP.
async fn health() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok", "service": "shortener" }))
}
