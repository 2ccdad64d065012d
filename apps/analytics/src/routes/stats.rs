//! Per-link stats: `GET /api/v1/links/{code}/stats` and
//! `GET /api/v1/urls/{shortener_url_id}/stats`.

use actix_web::{HttpResponse, web};
use chrono::Utc;
use uuid::Uuid;

use super::{Store, json};
use crate::domain::LinkCopy;
use crate::problem::{ApiError, ProblemBody};
use crate::stats::{Stats, StatsParams, StatsQuery, known_by_code, stats};
use service_kit::extract::Query;

async fn stats_response(
    store: &Store,
    link: &LinkCopy,
    query: StatsQuery,
) -> Result<HttpResponse, ApiError> {
    let now = Utc::now().timestamp();
    Ok(json(
        &stats(store.as_ref().as_ref(), link, query, now).await?,
    ))
}

/// Stats of the link with this short code.
#[utoipa::path(
    get,
    path = "/api/v1/links/{code}/stats",
    tag = "stats",
    params(("code" = String, Path, description = "The short code"), StatsParams),
    responses(
        (status = 200, description = "The link's statistics", body = Stats),
        (status = 400, description = "A parameter is invalid; `field` names it", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "Analytics knows no link with this code", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed attempts from this address", body = ProblemBody, content_type = "application/problem+json", headers(("retry-after" = u64))),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(super) async fn stats_by_code(
    store: Store,
    code: web::Path<String>,
    Query(params): Query<StatsParams>,
) -> Result<HttpResponse, ApiError> {
    let link = known_by_code(store.as_ref().as_ref(), &code).await?;
    stats_response(&store, &link, params.into()).await
}

/// Stats of the link with this id (the shortener's `id`).
#[utoipa::path(
    get,
    path = "/api/v1/urls/{shortener_url_id}/stats",
    tag = "stats",
    params(("shortener_url_id" = Uuid, Path, description = "The link's id at the shortener"), StatsParams),
    responses(
        (status = 200, description = "The link's statistics", body = Stats),
        (status = 400, description = "A parameter is invalid; `field` names it", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "Analytics knows no link with this id", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed attempts from this address", body = ProblemBody, content_type = "application/problem+json", headers(("retry-after" = u64))),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(super) async fn stats_by_id(
    store: Store,
    id: web::Path<String>,
    Query(params): Query<StatsParams>,
) -> Result<HttpResponse, ApiError> {
    let id = Uuid::parse_str(id.trim()).map_err(|e| {
        ApiError::invalid(
            "shortener_url_id",
            format!("{:?} is not a UUID ({e})", id.as_str()),
        )
    })?;
    let link = store
        .links(&[id])
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| {
            ApiError::NotFound(format!("no link with the id {id} is known to analytics"))
        })?;
    stats_response(&store, &link, params.into()).await
}
