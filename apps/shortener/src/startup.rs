//! Builds the service from its settings: store, NATS, outbox relay, HTTP.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle, Service};
use actix_web::middleware::{ErrorHandlers, from_fn};
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use async_nats::jetstream;
use service_kit::settings::ExposeSecret;
use service_kit::telemetry::{self, Sampling};
use tokio_util::sync::CancellationToken;

use crate::auth::Authenticator;
use crate::cache::{LinkCache, run_invalidation};
use crate::clicks::{
    ClickPublisher, ClickSettings, CountFlusher, SpoolRelay, VisitorKeys, click_pipeline,
};
use crate::configuration::{Settings, StoreSettings};
use crate::metrics::{Method, Metrics};
use crate::outbox::{OutboxRelay, RelaySettings};
use crate::probes::{self, Probes};
use crate::problem;
use crate::routes::{self, ApiState, CreateRateLimit, KeyedLimit};
use crate::service::LinkService;
use crate::store::Store;
use crate::store::mongo::MongoStore;
use crate::store::sqlite::SqliteStore;

/// The running service: HTTP server, outbox relay and click pipeline.
pub struct Application {
    port: u16,
    server: Server,
    relay: OutboxRelay,
    clicks: ClickPublisher,
    spool_relay: SpoolRelay,
    counts: CountFlusher,
    store: Arc<dyn Store>,
    jetstream: jetstream::Context,
    /// Servers the stream is created on.
    stream_replicas: usize,
    cache: Arc<LinkCache>,
    cache_created: time::OffsetDateTime,
}

/// Opens the store the settings choose.
pub async fn open_store(settings: &StoreSettings) -> anyhow::Result<Arc<dyn Store>> {
    Ok(match settings {
        StoreSettings::Sqlite { path } => Arc::new(SqliteStore::open(path).await?),
        StoreSettings::Mongo { uri, database } => Arc::new(
            MongoStore::connect(uri.expose_secret(), database)
                .await
                .context("failed to connect to MongoDB")?,
        ),
    })
}

/// A NATS client that keeps trying in the background: NATS may be down
/// at start, and the outbox and the click spool hold what waits for it.
async fn connect_nats(urls: &str) -> anyhow::Result<async_nats::Client> {
    async_nats::ConnectOptions::new()
        .name("shortener")
        .retry_on_initial_connect()
        .connect(service_kit::settings::nats_servers(
            "SHORTENER_NATS_URL",
            urls,
        )?)
        .await
        .with_context(|| format!("invalid NATS URL {}", crate::configuration::masked(urls)))
}

/// The HTTP server: the API, the redirects and the probes, with problem+json
/// for the framework's errors, request metrics and traces.
fn http_server(
    listener: TcpListener,
    state: web::Data<ApiState>,
    probes: web::Data<Probes>,
    metrics: Arc<Metrics>,
    workers: Option<usize>,
) -> anyhow::Result<Server> {
    let mut server = HttpServer::new(move || {
        let metrics = metrics.clone();
        App::new()
            .app_data(state.clone())
            .app_data(probes.clone())
            .app_data(web::PayloadConfig::new(routes::MAX_BODY_BYTES))
            .wrap(ErrorHandlers::new().default_handler(problem::problem_for_framework_errors))
            .wrap_fn(move |request, service| {
                let started = std::time::Instant::now();
                let method = Method::from(request.method());
                let response = service.call(request);
                let metrics = metrics.clone();
                async move {
                    let response = response.await?;
                    let route = route_label(response.request());
                    metrics.observe_request(
                        method,
                        route,
                        response.status().as_u16(),
                        started.elapsed(),
                    );
                    Ok(response)
                }
            })
            .wrap(from_fn(|request, next| {
                telemetry::trace_request(request, next, trace_sampling)
            }))
            .configure(service_kit::probes::routes(
                "shortener",
                env!("CARGO_PKG_VERSION"),
                probes::ready,
                probes::render_metrics,
            ))
            .configure(routes::routes)
            .configure(routes::redirect_route)
    });
    if let Some(workers) = workers {
        server = server.workers(workers);
    }
    Ok(server
        .listen(listener)
        .context("failed to start the HTTP server")?
        .run())
}

impl Application {
    /// Opens the store, connects to NATS and binds the listener (port 0
    /// picks a free port). NATS may be down: the client keeps retrying in the
    /// background and the outbox holds events until it is back.
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let store = open_store(&settings.store).await?;
        let nats = connect_nats(&settings.nats_url).await?;
        let jetstream = jetstream::new(nats.clone());
        let stream_replicas = settings.stream_replicas;
        let relay = OutboxRelay::new(
            store.clone(),
            jetstream.clone(),
            RelaySettings {
                stream_replicas,
                ..RelaySettings::default()
            },
        );
        let clicks = click_pipeline(
            store.clone(),
            nats.clone(),
            jetstream.clone(),
            VisitorKeys::new(settings.visitor_key_secret.as_ref()),
            ClickSettings {
                stream_replicas,
                ..ClickSettings::default()
            },
        );
        let cache = Arc::new(LinkCache::default());
        let cache_created = time::OffsetDateTime::now_utc();
        let service = LinkService::new(store.clone(), settings.codes, relay.waker(), cache.clone());
        if settings.api_key.is_none() {
            bootstrap_admin_key(store.as_ref()).await?;
        }
        let state = web::Data::new(ApiState {
            service,
            public_url: settings.public_url.clone(),
            auth: Authenticator::new(
                store.clone(),
                settings.api_key.as_ref(),
                settings.auth_failures_per_minute,
            ),
            keys: store.clone(),
            create_limit: CreateRateLimit::per_minute(settings.create_rate_per_minute),
            clicks: clicks.recorder,
            country_header: settings.country_header.clone(),
            proxies: settings.trusted_proxies.clone(),
            unlocks_by_client: KeyedLimit::per_minute(routes::UNLOCKS_PER_CLIENT_PER_MINUTE)
                .expect("a non-zero limit"),
            unlocks_by_link: KeyedLimit::per_minute(routes::UNLOCKS_PER_LINK_PER_MINUTE)
                .expect("a non-zero limit"),
        });
        let metrics = Arc::new(Metrics::new(&cache, &relay, &clicks.metrics));
        let probes = web::Data::new(Probes {
            store: store.clone(),
            nats,
            metrics: metrics.clone(),
            clicks: state.clicks.clone(),
            drops: clicks.metrics.drops.clone(),
        });
        let listener = TcpListener::bind(settings.http_addr)
            .with_context(|| format!("failed to bind {}", settings.http_addr))?;
        let port = listener.local_addr()?.port();
        let server = http_server(listener, state, probes, metrics, settings.workers)?;
        Ok(Self {
            port,
            server,
            relay,
            clicks: clicks.publisher,
            spool_relay: clicks.relay,
            counts: clicks.flusher,
            store,
            jetstream,
            stream_replicas,
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

    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// Serves until SIGINT/SIGTERM (or [`Application::handle`]'s stop):
    /// in-flight requests finish, then the click publisher publishes or
    /// spools what is queued, the counters are saved, and the outbox relay
    /// drains what is pending before this returns.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let shutdown = CancellationToken::new();
        // Cancelled only once the publisher is done, so its last acks count.
        let counts_shutdown = CancellationToken::new();
        let relay = tokio::spawn(self.relay.run(shutdown.clone()));
        let clicks = tokio::spawn(self.clicks.run(shutdown.clone()));
        let spool_relay = tokio::spawn(self.spool_relay.run(shutdown.clone()));
        let counts = tokio::spawn(self.counts.run(counts_shutdown.clone()));
        let invalidation = tokio::spawn(run_invalidation(
            self.jetstream,
            self.stream_replicas,
            self.cache,
            self.cache_created,
            shutdown.clone(),
        ));
        let served = self.server.await;
        tracing::info!("HTTP server stopped; draining clicks and the outbox");
        shutdown.cancel();
        let published = clicks.await;
        counts_shutdown.cancel();
        published.context("the click publisher panicked")?;
        counts.await.context("the click counter panicked")?;
        spool_relay.await.context("the spool relay panicked")?;
        relay.await.context("the outbox relay panicked")?;
        invalidation
            .await
            .context("the cache invalidation panicked")?;
        served.context("the HTTP server failed")
    }
}

/// With no key at all, nobody could use the API: make an admin key and
/// show it this once.
async fn bootstrap_admin_key(store: &dyn Store) -> anyhow::Result<()> {
    let keys = store
        .list_keys()
        .await
        .context("failed to read the API keys")?;
    if keys.iter().any(|k| k.revoked_at.is_none()) {
        return Ok(());
    }
    let name = format!("admin-{}", chrono::Utc::now().format("%Y%m%d%H%M%S"));
    let new = crate::auth::create_key(store, &name, crate::keys::Role::Admin)
        .await
        .context("failed to create the first admin key")?;
    // Printed, not logged: this is the one time the key exists in clear.
    println!(
        "No API key existed, so an admin key named {name:?} was created:\n\n    {}\n\nIt is stored only as a hash and will not be shown again.",
        new.key
    );
    Ok(())
}

/// Which requests are traced: a redirect is a click, sampled (its
/// `traceparent` honoured only from `SHORTENER_TRUSTED_PROXIES`); probes
/// and scrapes never; the API always (see `service_kit::telemetry`).
fn trace_sampling(request: &actix_web::dev::ServiceRequest) -> Sampling {
    let path = request.path();
    match telemetry::api_sampling(request) {
        Sampling::Never => Sampling::Never,
        _ if path == "/openapi.json" => Sampling::Always,
        _ if path.len() > 1 && !path[1..].contains('/') => {
            // Only a trusted proxy's trace context is continued.
            let trusted = request.peer_addr().is_some_and(|peer| {
                request
                    .app_data::<web::Data<ApiState>>()
                    .is_some_and(|state| state.proxies.contains(peer.ip()))
            });
            if trusted {
                Sampling::Click
            } else {
                Sampling::VisitorClick
            }
        }
        _ => Sampling::Always,
    }
}

/// The matched route pattern, for metrics. Every single-segment path but
/// the probes is the redirect route, so the hot path is labelled without
/// matching the path against every route again (which `match_pattern`
/// does) and without allocating.
fn route_label(request: &actix_web::HttpRequest) -> std::borrow::Cow<'static, str> {
    let path = request.path();
    let single_segment = path.len() > 1 && !path[1..].contains('/');
    if single_segment && !matches!(path, "/health" | "/ready" | "/metrics") {
        return std::borrow::Cow::Borrowed("/{code}");
    }
    request.match_pattern().map_or(
        std::borrow::Cow::Borrowed("unmatched"),
        std::borrow::Cow::Owned,
    )
}
