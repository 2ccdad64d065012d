//! The console: the web app people use to shorten, manage and understand
//! their links.
//!
//! A backend-for-frontend: it owns no business data and reaches the
//! shortener and analytics only through their HTTP APIs ([`upstream`]).
//! Pages are rendered on the server (maud) and work without JS; a small
//! script (`static/console.js`) only improves them. Nothing is fetched from
//! elsewhere at run time: the stylesheet and the script are compiled in.
//!
//! Users sign in with a shortener key, which stays on the server
//! ([`session`]); the shortener decides what the key may see. Stats come
//! from analytics with the console's own key, and only for a link the
//! user's key has just read at the shortener.

pub mod api;
pub mod charts;
pub mod configuration;
pub mod consistency;
pub mod import;
pub mod metrics;
mod pages;
pub mod session;
pub mod upstream;

use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::{DefaultHeaders, from_fn};
use actix_web::{App, HttpResponse, HttpServer, web};
use service_kit::settings::ExposeSecret;
use service_kit::telemetry::{self, Sampling};

pub use configuration::Settings;

/// Shared state of the handlers.
pub struct Console {
    pub upstream: upstream::Upstream,
    pub sessions: session::Sessions,
    pub logins: pages::LoginLimit,
    /// Imports between their preview and their run (an hour at most; a
    /// dropped one removes its file).
    pub imports: moka::sync::Cache<String, std::sync::Arc<pages::PendingImport>>,
    /// The consistency monitor (its last report and copies).
    pub monitor: consistency::Monitor,
    /// Calls of the JSON API, per address.
    pub api_calls: api::ApiLimit,
    /// What the monitor's own runs found, for `/metrics`.
    pub monitor_metrics: metrics::MonitorMetrics,
}

/// Every page's headers: nothing from elsewhere may load, nothing may frame
/// the console, and nothing is cached (pages show a user's data).
fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((
            "Content-Security-Policy",
            "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
             img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ))
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("Referrer-Policy", "same-origin"))
        .add(("X-Frame-Options", "DENY"))
}

async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header(("Cache-Control", "public, max-age=3600"))
        .body(include_str!("../static/console.css"))
}

async fn script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header(("Cache-Control", "public, max-age=3600"))
        .body(include_str!("../static/console.js"))
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "status": "ok",
        "service": "console",
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

/// The monitor's findings, open like every service's metrics.
async fn render_metrics(console: web::Data<Console>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(console.monitor_metrics.render())
}

/// Ready when the shortener answers: without it nobody can sign in.
async fn ready(console: web::Data<Console>) -> HttpResponse {
    let probe = console.upstream.probe_health("shortener").await;
    if probe {
        HttpResponse::Ok().json(serde_json::json!({ "status": "ready" }))
    } else {
        HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({ "status": "not ready", "failing": ["shortener"] }))
    }
}

/// The console, bound and ready to run.
pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    pub fn build(settings: &Settings) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(settings.http_addr)?;
        let port = listener.local_addr()?.port();
        let console = web::Data::new(Console {
            upstream: upstream::Upstream::new(
                settings.shortener_url.clone(),
                settings.analytics_url.clone(),
                settings.analytics_key.clone(),
            )?,
            sessions: session::Sessions::new(
                settings.session_secret.expose_secret(),
                Duration::from_secs(settings.session_idle_minutes * 60),
            ),
            logins: pages::LoginLimit::new(),
            imports: moka::sync::Cache::builder()
                .max_capacity(1_000)
                .time_to_live(Duration::from_secs(3600))
                .build(),
            monitor: consistency::Monitor::new(),
            api_calls: api::ApiLimit::default(),
            monitor_metrics: metrics::MonitorMetrics::new(settings.monitor_key.is_some()),
        });
        let monitor = settings.monitor_key.clone().map(|key| {
            let console = console.clone();
            let interval = Duration::from_secs(settings.monitor_interval_seconds);
            async move {
                metrics::run_monitor(
                    &console.monitor,
                    &console.upstream,
                    &console.monitor_metrics,
                    key.expose_secret(),
                    interval,
                )
                .await;
            }
        });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(console.clone())
                .app_data(web::FormConfig::default().limit(64 * 1024))
                .wrap(security_headers())
                .wrap(from_fn(|request, next| {
                    telemetry::trace_request(request, next, console_sampling)
                }))
                .route("/health", web::get().to(health))
                .route("/ready", web::get().to(ready))
                .route("/metrics", web::get().to(render_metrics))
                .route("/static/console.css", web::get().to(stylesheet))
                .route("/static/console.js", web::get().to(script))
                .configure(api::routes)
                .configure(pages::routes)
        })
        .shutdown_timeout(10)
        .listen(listener)?
        .run();
        if let Some(monitor) = monitor {
            actix_web::rt::spawn(monitor);
        }
        Ok(Self { port, server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// Which requests are traced: pages and the API always, probes and static
/// files never (see `service_kit::telemetry`).
fn console_sampling(request: &actix_web::dev::ServiceRequest) -> Sampling {
    if request.path().starts_with("/static/") {
        return Sampling::Never;
    }
    telemetry::api_sampling(request)
}
