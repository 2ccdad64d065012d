//! Builds the HTTP server on a bound listener.

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::{web, App, HttpResponse, HttpServer};
use anyhow::Context;

use crate::configuration::Settings;

/// The running service: its HTTP server, bound and ready to be awaited.
pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    /// Binds the listener (port 0 picks a free port) and builds the server.
    pub fn build(settings: &Settings) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(settings.http_addr)
            .with_context(|| format!("failed to bind {}", settings.http_addr))?;
        let port = listener.local_addr()?.port();
        let server = HttpServer::new(|| App::new().route("/health", web::get().to(health)))
            .listen(listener)
            .context("failed to start the HTTP server")?
            .run();
        Ok(Self { port, server })
    }

    /// The port actually bound.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGINT/SIGTERM (actix-web's signal handling drains
    /// in-flight requests before returning).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// Liveness: the process is up and serving HTTP.
async fn health() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok", "service": "shortener" }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn health_answers_ok_on_the_bound_port() {
        let settings = Settings {
            http_addr: "127.0.0.1:0".parse().unwrap(),
        };
        let app = Application::build(&settings).unwrap();
        let port = app.port();
        assert_ne!(port, 0);
        let server = actix_web::rt::spawn(app.run_until_stopped());
        let response = tokio::task::spawn_blocking(move || {
            use std::io::{Read, Write};
            let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            write!(stream, "GET /health HTTP/1.0\r\n\r\n").unwrap();
            let mut response = String::new();
            stream.read_to_string(&mut response).unwrap();
            response
        })
        .await
        .unwrap();
        server.abort();
        assert!(response.starts_with("HTTP/1.0 200"), "{response}");
        assert!(response.contains(r#""service":"shortener""#), "{response}");
    }
}
