//! Builds the service from its settings: store, NATS consumers, HTTP.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Server, ServerHandle, Service, ServiceRequest, ServiceResponse};
use actix_web::middleware::{ErrorHandlers, Next, from_fn};
use actix_web::{App, HttpServer, ResponseError, web};
use anyhow::Context;
use async_nats::jetstream;
use service_kit::settings::ExposeSecret;
use service_kit::telemetry;
use tokio_util::sync::CancellationToken;

use crate::configuration::{Settings, StoreSettings};
use crate::consumer::Ingest;
use crate::consumer::supervise::run_consumers;
use crate::keys::{Authenticator, bootstrap_key};
use crate::metrics::{Metrics, RequestLabels};
use crate::probes::{self, Probes};
use crate::problem::{self, ApiError};
use crate::routes;
use crate::store::{AnalyticsStore, ClickHouseStore, SqliteStore};

/// Opens the store the settings choose (applying its migrations).
pub async fn open_store(settings: &StoreSettings) -> anyhow::Result<Arc<dyn AnalyticsStore>> {
    Ok(match settings {
        StoreSettings::Sqlite { path } => Arc::new(SqliteStore::open(path).await?),
        StoreSettings::ClickHouse(ch) => Arc::new(ClickHouseStore::open(ch.clone()).await?),
    })
}

/// Connects to NATS; when it is down the client keeps retrying in the background.
pub async fn connect_nats(url: &str) -> anyhow::Result<async_nats::Client> {
    async_nats::ConnectOptions::new()
        .name("analytics")
        .retry_on_initial_connect()
        .connect(service_kit::settings::nats_servers(
            "ANALYTICS_NATS_URL",
            url,
        )?)
        .await
        .with_context(|| format!("invalid NATS URL {}", crate::configuration::masked(url)))
}

/// The running service: HTTP server and the consumers.
pub struct Application {
    port: u16,
    server: Server,
    store: Arc<dyn AnalyticsStore>,
    ingest: Arc<Ingest>,
    consuming: Arc<AtomicBool>,
}

impl Application {
    /// Opens the store, connects to NATS and binds the listener (port 0
    /// picks a free port). Consumers start with [`Application::run_until_stopped`].
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let store = open_store(&settings.store).await?;
        let nats = connect_nats(&settings.nats_url).await?;
        let metrics = Arc::new(Metrics::default());
        let ingest = Arc::new(Ingest::new(
            store.clone(),
            store.clone(),
            jetstream::new(nats.clone()),
            metrics.clone(),
            settings.consumers.clone(),
        ));
        let consuming = Arc::new(AtomicBool::new(false));
        let probes = web::Data::new(Probes {
            store: store.clone(),
            nats,
            metrics: metrics.clone(),
            consuming: consuming.clone(),
            health: ingest.health.clone(),
        });
        if settings.api_key.is_none() {
            bootstrap_key(store.as_ref()).await?;
        }
        let auth = web::Data::new(Authenticator::new(
            store.clone(),
            settings.api_key.as_ref().map(|k| k.expose_secret()),
            settings.auth_failures_per_minute,
        ));
        let store_data: routes::Store = web::Data::new(store.clone());
        let listener = TcpListener::bind(settings.http_addr)
            .with_context(|| format!("failed to bind {}", settings.http_addr))?;
        let port = listener.local_addr()?.port();
        let server = HttpServer::new(move || {
            let metrics = metrics.clone();
            App::new()
                .app_data(store_data.clone())
                .app_data(probes.clone())
                .app_data(auth.clone())
                .wrap(from_fn(require_key))
                .wrap(ErrorHandlers::new().default_handler(problem::problem_for_framework_errors))
                .wrap_fn(move |request, service| {
                    let response = service.call(request);
                    let metrics = metrics.clone();
                    async move {
                        let response = response.await?;
                        let route = response
                            .request()
                            .match_pattern()
                            .unwrap_or_else(|| "unmatched".into());
                        metrics
                            .requests
                            .get_or_create(&RequestLabels {
                                route,
                                status: response.status().as_u16(),
                            })
                            .inc();
                        Ok(response)
                    }
                })
                .wrap(from_fn(|request, next| {
                    telemetry::trace_request(request, next, telemetry::api_sampling)
                }))
                .configure(service_kit::probes::routes(
                    "analytics",
                    env!("CARGO_PKG_VERSION"),
                    probes::ready,
                    probes::render_metrics,
                ))
                .configure(routes::routes)
        })
        .listen(listener)
        .context("failed to start the HTTP server")?
        .run();
        Ok(Self {
            port,
            server,
            store,
            ingest,
            consuming,
        })
    }

    /// The port actually bound.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the HTTP server, which ends `run_until_stopped`.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    pub fn store(&self) -> Arc<dyn AnalyticsStore> {
        self.store.clone()
    }

    /// Serves and consumes until SIGINT/SIGTERM (or [`Application::handle`]'s
    /// stop); each consumer finishes the batch in hand before this returns.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let shutdown = CancellationToken::new();
        let consumers = tokio::spawn(run_consumers(
            self.ingest.clone(),
            self.consuming.clone(),
            shutdown.clone(),
        ));
        let retention = tokio::spawn(crate::consumer::retention::run(
            self.ingest.clone(),
            shutdown.clone(),
        ));
        let compactor = tokio::spawn(crate::consumer::compactor::run(
            self.ingest.clone(),
            shutdown.clone(),
        ));
        let served = self.server.await;
        tracing::info!("HTTP server stopped; stopping the consumers");
        shutdown.cancel();
        consumers.await.context("the consumers panicked")?;
        retention.await.context("the raw retention panicked")?;
        compactor.await.context("the compactor panicked")?;
        served.context("the HTTP server failed")
    }
}

/// Paths anyone may read: probes and metrics. Everything else, the
/// unknown paths included, needs a key.
const PUBLIC: [&str; 3] = ["/health", "/ready", "/metrics"];

/// The key check in front of every route but [`PUBLIC`].
async fn require_key(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if PUBLIC.contains(&request.path()) {
        return next
            .call(request)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    }
    let auth = request
        .app_data::<web::Data<Authenticator>>()
        .expect("the authenticator is registered")
        .clone();
    let key = service_kit::auth::presented_key(request.headers()).map(str::to_owned);
    let client = request
        .peer_addr()
        .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |peer| peer.ip());
    match auth.authenticate(key.as_deref(), client).await {
        Ok(()) => next
            .call(request)
            .await
            .map(ServiceResponse::map_into_boxed_body),
        Err(error) => {
            let response = ApiError::from(error).error_response();
            Ok(request.into_response(response))
        }
    }
}
