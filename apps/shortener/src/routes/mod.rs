//! The HTTP API: links under `/api/v1/links`, redirects at `/{code}`, and
//! the OpenAPI document. One file per resource; the hot path, the redirect,
//! is `redirect.rs`.

mod extractors;
mod links;
mod openapi;
mod redirect;

use actix_web::http::header;
use actix_web::web;

pub use extractors::CreateRateLimit;
pub use openapi::{openapi_json, ApiDoc};
pub use redirect::merge_query;

use crate::clicks::ClickRecorder;
use crate::configuration::Secret;
use crate::service::LinkService;

/// Largest accepted request body; a link request is a few hundred bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Shared state of the handlers.
pub struct ApiState {
    pub service: LinkService,
    /// Base of `short_url`, without a trailing slash.
    pub public_url: String,
    pub api_key: Option<Secret>,
    pub create_limit: Option<CreateRateLimit>,
    pub clicks: ClickRecorder,
    pub country_header: Option<header::HeaderName>,
}

/// The API's routes.
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route(
            "/api/v1/openapi.json",
            web::get().to(openapi::openapi_document),
        )
        .service(
            web::resource("/api/v1/links")
                .route(web::post().to(links::create_link))
                .route(web::get().to(links::list_links)),
        )
        .service(
            web::resource("/api/v1/links/{code}")
                .route(web::get().to(links::get_link))
                .route(web::patch().to(links::update_link))
                .route(web::delete().to(links::delete_link)),
        );
}

/// The redirect route, GET and HEAD; registered last, so it never shadows
/// the API.
pub fn redirect_route(config: &mut web::ServiceConfig) {
    config.service(
        web::resource("/{code}")
            .route(web::get().to(redirect::redirect))
            .route(web::head().to(redirect::redirect_head)),
    );
}
