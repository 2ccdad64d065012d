//! The statistics API: the links analytics knows (a page at a time, with
//! their click totals), per-link stats (by code or by the shortener's id),
//! the reconciliation report, and the OpenAPI document. Analytics serves
//! no pages: the console (`apps/console`) shows these numbers to people.
//! One file per resource; the key check in front of them is `startup`'s.

mod links;
mod reconciliation;
mod stats;

use std::sync::{Arc, OnceLock};

use actix_web::{HttpResponse, web};
use serde::Serialize;
use service_kit::openapi::KeySecurity;
use utoipa::OpenApi;

use crate::probes::{ConsumerStatus, StatusResponse};
use crate::problem::{ApiError, InvalidParam, ProblemBody, resource};
pub use crate::stats::{
    LinkInfo, MAX_BUCKETS, SeriesPoint, Stats, StatsQuery, TopItem, known_by_code, stats,
};
use crate::store::AnalyticsStore;
pub use links::{CopyItem, CopyPage};
pub use reconciliation::{DeletedItem, OrphanItem, Reconciliation};

/// Rows a page may ask for (`limit`), at most.
const MAX_PAGE: u32 = 1_000;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "URL shortener analytics",
        version = "1.0.0",
        description = "Click statistics built from the shortener's events. Errors are RFC 7807 application/problem+json."
    ),
    paths(links::list_links, stats::stats_by_code, stats::stats_by_id, reconciliation::reconciliation, crate::probes::status),
    components(schemas(CopyPage, CopyItem, Stats, SeriesPoint, TopItem, LinkInfo, Reconciliation, OrphanItem, DeletedItem, StatusResponse, ConsumerStatus, ProblemBody, InvalidParam)),
    modifiers(&KEY_SECURITY),
    tags((name = "stats", description = "Click statistics"), (name = "operations", description = "Consistency checks and how this instance is doing"))
)]
pub struct ApiDoc;

/// Every endpoint but `/health`, `/ready` and `/metrics` needs a key.
const KEY_SECURITY: KeySecurity = KeySecurity {
    description: "An analytics API key (analytics api-key create)",
};

/// The OpenAPI document, rendered once.
pub fn openapi_json() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        ApiDoc::openapi()
            .to_pretty_json()
            .expect("the OpenAPI document serialises")
    })
}

async fn openapi_document() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(openapi_json())
}

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .service(resource("/api/v1/openapi.json", "GET").route(web::get().to(openapi_document)))
        .service(resource("/api/v1/links", "GET").route(web::get().to(links::list_links)))
        .service(
            resource("/api/v1/links/{code}/stats", "GET")
                .route(web::get().to(stats::stats_by_code)),
        )
        .service(
            resource("/api/v1/urls/{shortener_url_id}/stats", "GET")
                .route(web::get().to(stats::stats_by_id)),
        )
        .service(
            resource("/api/v1/reconciliation", "GET")
                .route(web::get().to(reconciliation::reconciliation)),
        )
        .service(resource("/api/v1/status", "GET").route(web::get().to(crate::probes::status)));
}

pub type Store = web::Data<Arc<dyn AnalyticsStore>>;

/// A page size, 1 to [`MAX_PAGE`].
#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(try_from = "u32")]
struct PageSize(u32);

impl TryFrom<u32> for PageSize {
    type Error = String;

    fn try_from(n: u32) -> Result<Self, String> {
        match (1..=MAX_PAGE).contains(&n) {
            true => Ok(Self(n)),
            false => Err(format!("must be an integer from 1 to {MAX_PAGE}")),
        }
    }
}

/// A `cursor` this API gave, read by `parse`.
fn cursor<T>(text: Option<&str>, parse: impl Fn(&str) -> Option<T>) -> Result<Option<T>, ApiError> {
    text.map(|text| {
        parse(text).ok_or_else(|| {
            ApiError::invalid(
                "cursor",
                "not a cursor this API gave (use next_cursor as it is)",
            )
        })
    })
    .transpose()
}

fn json<T: Serialize>(body: &T) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(body)
}
