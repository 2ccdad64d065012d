//! The HTTP API: links under `/api/v1/links`, redirects at `/{code}`, and
//! the OpenAPI document. One file per resource; the hot path, the redirect,
//! is `redirect.rs`.

mod extractors;
mod keys;
mod links;
mod openapi;
mod qr;
mod redirect;

use actix_web::http::header;
use actix_web::web;

pub use extractors::{CreateRateLimit, KeyedLimit};
pub use openapi::{ApiDoc, openapi_json};
pub use redirect::merge_query;
pub use redirect::{UNLOCKS_PER_CLIENT_PER_MINUTE, UNLOCKS_PER_LINK_PER_MINUTE};

use std::sync::Arc;

use crate::auth::Authenticator;
use crate::clicks::ClickRecorder;
use crate::client_addr::TrustedProxies;
use crate::problem::resource;
use crate::service::LinkService;
use crate::store::Keys;

/// Largest accepted request body; a link request is a few hundred bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Shared state of the handlers.
pub struct ApiState {
    pub service: LinkService,
    /// Base of `short_url`, without a trailing slash.
    pub public_url: String,
    pub auth: Authenticator,
    /// For key management, which is not a link use case.
    pub keys: Arc<dyn Keys>,
    pub create_limit: Option<CreateRateLimit>,
    pub clicks: ClickRecorder,
    /// Honoured only from a trusted proxy.
    pub country_header: Option<header::HeaderName>,
    pub proxies: TrustedProxies,
    /// Password attempts at protected links, per client and per link.
    pub unlocks_by_client: KeyedLimit<std::net::IpAddr>,
    pub unlocks_by_link: KeyedLimit<String>,
}

/// The API's routes.
pub fn routes(config: &mut web::ServiceConfig) {
    // One scope: a redirect is told apart from the API by one prefix
    // comparison, not by trying every API route (some of them regexes).
    // Every request in it, unknown paths included, shows a key first.
    config.service(
        web::scope("/api/v1")
            .wrap(actix_web::middleware::from_fn(extractors::require_key))
            .service(
                resource("/openapi.json", "GET").route(web::get().to(openapi::openapi_document)),
            )
            .service(
                resource("/links", "GET, POST")
                    .route(web::post().to(links::create_link))
                    .route(web::get().to(links::list_links)),
            )
            // Before `/links/{code}`, which would otherwise take the path.
            .service(
                resource("/links/bulk", "POST")
                    .app_data(web::PayloadConfig::new(links::MAX_BULK_BODY_BYTES))
                    .route(web::post().to(links::bulk_create)),
            )
            .service(
                resource("/links/{code}", "GET, PATCH, DELETE")
                    .route(web::get().to(links::get_link))
                    .route(web::patch().to(links::update_link))
                    .route(web::delete().to(links::delete_link)),
            )
            .service(resource("/links/{code}/qr", "GET").route(web::get().to(qr::link_qr)))
            .service(resource("/status", "GET").route(web::get().to(crate::probes::status)))
            .service(
                resource("/keys", "GET, POST")
                    .route(web::get().to(keys::list_keys))
                    .route(web::post().to(keys::create_key_handler)),
            )
            .service(
                resource("/keys/{name}", "DELETE")
                    .route(web::delete().to(keys::revoke_key_handler)),
            ),
    );
}

/// The redirect route, GET and HEAD; registered last, so it never shadows
/// the API.
pub fn redirect_route(config: &mut web::ServiceConfig) {
    config.service(
        resource("/{code}", "GET, HEAD, POST")
            .route(web::get().to(redirect::redirect))
            .route(web::head().to(redirect::redirect_head))
            .route(web::post().to(redirect::unlock)),
    );
}
