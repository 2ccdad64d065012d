//! `/api/v1/links`: create, list, read, change and delete links.

use actix_web::HttpResponse;
use actix_web::http::header;
use actix_web::web;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use validator::Validate;

use super::ApiState;
use super::extractors::{Creator, ValidJson, json_value};
use crate::domain::ShortCode;
use crate::keys::Caller;
use crate::problem::{ApiError, ProblemBody};
use crate::service::NewLink;
use crate::store::Link;

/// A link as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Link)]
pub(super) struct LinkResponse {
    pub id: Uuid,
    /// The short code: generated (base62) or the alias.
    #[schema(example = "aZ3kP9q")]
    pub code: String,
    #[schema(example = "https://sho.rt/aZ3kP9q")]
    pub short_url: String,
    /// The normalised target.
    #[schema(example = "https://example.com/docs")]
    pub url: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When the link stops redirecting; null when it never expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// 301, 302, 307 or 308.
    #[schema(example = 302)]
    pub redirect_type: u16,
    /// Redirects served, updated in batches (every 5 s).
    pub click_count: u64,
    /// Whether the visitor's query string is merged into the target.
    pub forward_query: bool,
    /// What the author calls the link; null when untitled.
    #[schema(example = "Q3 launch docs")]
    pub title: Option<String>,
    /// Labels to find the link by.
    #[schema(example = json!(["docs", "q3-launch"]))]
    pub tags: Vec<String>,
    /// Whether the link has a password (it is never shown).
    pub password_protected: bool,
}

impl LinkResponse {
    fn new(link: Link, public_url: &str) -> Self {
        Self {
            short_url: format!("{public_url}/{}", link.code),
            id: link.id,
            code: link.code.to_string(),
            url: link.url.to_string(),
            created_at: link.created_at,
            updated_at: link.updated_at,
            expires_at: link.expires_at,
            redirect_type: link.redirect_type.status(),
            click_count: link.click_count,
            forward_query: link.forward_query,
            password_protected: link.password_hash.is_some(),
            title: link.title,
            tags: link.tags,
        }
    }
}

mod list;
mod requests;

pub(super) use list::{__path_list_links, LinkPage, list_links};
pub(super) use requests::{CreateLinkRequest, UpdateLinkRequest};

#[utoipa::path(
    post,
    path = "/api/v1/links",
    tag = "links",
    request_body = CreateLinkRequest,
    responses(
        (status = 201, description = "Created", body = LinkResponse, headers(("location" = String, description = "The link's API URL"))),
        (status = 400, description = "Malformed JSON or query", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "The alias is taken", body = ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid; `field` names it", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "Too many creations, or failed attempts, from this address", body = ProblemBody, content_type = "application/problem+json", headers(("retry-after" = u64))),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(super) async fn create_link(
    state: web::Data<ApiState>,
    Creator(caller): Creator,
    ValidJson(body): ValidJson<CreateLinkRequest>,
) -> Result<HttpResponse, ApiError> {
    let link = state.service.create(body.into(), caller.key_id).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/links/{}", link.code)))
        .json(LinkResponse::new(link, &state.public_url)))
}

/// Most links one bulk create takes.
pub const MAX_BULK_ITEMS: usize = 1000;
/// Largest bulk body: 1,000 links with long targets.
pub const MAX_BULK_BODY_BYTES: usize = 4 * 1024 * 1024;

/// One item's answer in a bulk create: 201 with the link, or the problem
/// (409 for a taken alias, 422 for an invalid field) of that item alone.
#[derive(Serialize, ToSchema)]
#[schema(as = BulkItem)]
pub(super) struct BulkItem {
    /// 201, 409, 422, or 503 when the store failed for this item's chunk.
    #[schema(example = 201)]
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    link: Option<LinkResponse>,
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<ProblemBody>,
}

/// The body of a bulk create as the document states it: an array of 1 to
/// 1,000 items. Each should be a `CreateLink`, but is read on its own: an
/// item that is not one (not even an object) is refused in its own answer
/// (422), never the request, so the document accepts any item.
pub(super) struct BulkCreateBody;

impl utoipa::PartialSchema for BulkCreateBody {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaType};
        ArrayBuilder::new()
            .items(ObjectBuilder::new().schema_type(SchemaType::AnyValue))
            .min_items(Some(1))
            .max_items(Some(MAX_BULK_ITEMS))
            .description(Some(
                "1 to 1,000 links, each as POST /api/v1/links takes it (a CreateLink). Each \
                 item is checked on its own: one that is not a valid CreateLink gets its own \
                 422 in the answer, and the others are still created.",
            ))
            .into()
    }
}

impl ToSchema for BulkCreateBody {}

/// The answer to a bulk create: one item per request item, in order.
#[derive(Serialize, ToSchema)]
#[schema(as = BulkResult)]
pub(super) struct BulkResult {
    items: Vec<BulkItem>,
}

#[utoipa::path(
    post,
    path = "/api/v1/links/bulk",
    tag = "links",
    request_body(content = BulkCreateBody, description = "1 to 1,000 links, each as POST /api/v1/links takes it"),
    responses(
        (status = 200, description = "One result per item, in order: 201 with the link, or 409/422 with the item's problem", body = BulkResult),
        (status = 400, description = "Malformed JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "Body too large (4 MiB at most)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "The body is not an array of 1 to 1,000 items", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "Too many creations, or failed attempts, from this address", body = ProblemBody, content_type = "application/problem+json", headers(("retry-after" = u64))),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(super) async fn bulk_create(
    state: web::Data<ApiState>,
    // A bulk request counts as one creation against the per-address limit:
    // it is how an importer brings its links, with a key.
    Creator(caller): Creator,
    ValidJson(BulkBody(items)): ValidJson<BulkBody>,
) -> Result<HttpResponse, ApiError> {
    if items.is_empty() || items.len() > MAX_BULK_ITEMS {
        return Err(ApiError::invalid(
            "body",
            format!("must be an array of 1 to {MAX_BULK_ITEMS} links"),
        ));
    }
    let parsed: Vec<Result<NewLink, ApiError>> = items
        .into_iter()
        .map(|item| json_value::<CreateLinkRequest>(item).map(NewLink::from))
        .collect();
    let valid: Vec<NewLink> = parsed
        .iter()
        .filter_map(|p| p.as_ref().ok().cloned())
        .collect();
    let mut created = state
        .service
        .create_many(&valid, caller.key_id)
        .await
        .into_iter();
    let items = parsed
        .into_iter()
        .map(|item| {
            let outcome = item.and_then(|_| {
                created
                    .next()
                    .unwrap_or_else(|| {
                        Err(crate::service::LinkError::Internal(anyhow::anyhow!(
                            "a result is missing"
                        )))
                    })
                    .map_err(ApiError::from)
            });
            match outcome {
                Ok(link) => BulkItem {
                    status: 201,
                    link: Some(LinkResponse::new(link, &state.public_url)),
                    problem: None,
                },
                Err(error) => {
                    let problem = error.problem();
                    BulkItem {
                        status: problem.status(),
                        link: None,
                        problem: Some(problem),
                    }
                }
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(BulkResult { items }))
}

/// A bulk body: an array of items, each read on its own.
#[derive(Deserialize)]
pub(super) struct BulkBody(Vec<serde_json::Value>);

impl Validate for BulkBody {
    fn validate(&self) -> Result<(), validator::ValidationErrors> {
        Ok(())
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/links/{code}",
    tag = "links",
    params(("code" = String, Path, description = "The short code")),
    responses(
        (status = 200, description = "The link", body = LinkResponse),
        (status = 401, description = "No valid API key", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed attempts from this address", body = ProblemBody, content_type = "application/problem+json", headers(("retry-after" = u64))),
        (status = 404, description = "Unknown code, or another author's link", body = ProblemBody, content_type = "application/problem+json"),
        (status = 410, description = "Deleted", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(super) async fn get_link(
    state: web::Data<ApiState>,
    caller: Caller,
    code: ShortCode,
) -> Result<HttpResponse, ApiError> {
    let link = state.service.get(code.as_str(), caller.scope()).await?;
    Ok(HttpResponse::Ok().json(LinkResponse::new(link, &state.public_url)))
}

#[utoipa::path(
    patch,
    path = "/api/v1/links/{code}",
    tag = "links",
    params(("code" = String, Path, description = "The short code")),
    request_body = UpdateLinkRequest,
    responses(
        (status = 200, description = "The updated link", body = LinkResponse),
        (status = 400, description = "Malformed JSON or query", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "Unknown code, or another author's link", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "Changed concurrently too often; retry", body = ProblemBody, content_type = "application/problem+json"),
        (status = 410, description = "Deleted", body = ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid; `field` names it", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed attempts from this address", body = ProblemBody, content_type = "application/problem+json", headers(("retry-after" = u64))),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(super) async fn update_link(
    state: web::Data<ApiState>,
    caller: Caller,
    code: ShortCode,
    ValidJson(body): ValidJson<UpdateLinkRequest>,
) -> Result<HttpResponse, ApiError> {
    let changes = body.into_changes()?;
    let link = state
        .service
        .update(code.as_str(), &changes, caller.scope())
        .await?;
    Ok(HttpResponse::Ok().json(LinkResponse::new(link, &state.public_url)))
}

#[utoipa::path(
    delete,
    path = "/api/v1/links/{code}",
    tag = "links",
    params(("code" = String, Path, description = "The short code")),
    responses(
        (status = 204, description = "Deleted; the code answers 410 from now on"),
        (status = 401, description = "No valid API key", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "Unknown code, or another author's link", body = ProblemBody, content_type = "application/problem+json"),
        (status = 410, description = "Already deleted", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed attempts from this address", body = ProblemBody, content_type = "application/problem+json", headers(("retry-after" = u64))),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(super) async fn delete_link(
    state: web::Data<ApiState>,
    caller: Caller,
    code: ShortCode,
) -> Result<HttpResponse, ApiError> {
    state.service.delete(code.as_str(), caller.scope()).await?;
    Ok(HttpResponse::NoContent().finish())
}
