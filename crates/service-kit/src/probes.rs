//! `/health`, `/ready` and `/metrics`: the three endpoints every service
//! answers without a key, registered the same way everywhere.
//!
//! `/health` is liveness (the process serves HTTP) and is the same for
//! every service; what `/ready` checks and what `/metrics` counts are each
//! service's own, so it hands its two handlers in. Each answers GET only;
//! another method gets 405 problem+json with `Allow`.

use actix_web::dev::Handler;
use actix_web::{FromRequest, HttpResponse, Responder, web};

use crate::problem::resource;

/// The Prometheus text exposition format.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A `/metrics` answer of `text` in the Prometheus text format.
pub fn metrics_response(text: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(METRICS_CONTENT_TYPE)
        .body(text)
}

/// Registers `/health` (the service's name and version), and `ready` and
/// `metrics` on `/ready` and `/metrics`.
pub fn routes<R, RArgs, M, MArgs>(
    service: &'static str,
    version: &'static str,
    ready: R,
    metrics: M,
) -> impl FnOnce(&mut web::ServiceConfig)
where
    R: Handler<RArgs>,
    RArgs: FromRequest + 'static,
    R::Output: Responder + 'static,
    M: Handler<MArgs>,
    MArgs: FromRequest + 'static,
    M::Output: Responder + 'static,
{
    move |config| {
        config
            .service(
                resource("/health", "GET").route(web::get().to(move || async move {
                    HttpResponse::Ok().json(serde_json::json!({
                        "status": "ok",
                        "service": service,
                        "version": version,
                    }))
                })),
            )
            .service(resource("/ready", "GET").route(web::get().to(ready)))
            .service(resource("/metrics", "GET").route(web::get().to(metrics)));
    }
}
