//! `/api/v1/keys`: admins make, list and revoke API keys. A key is shown
//! once, in the answer that made it; only its digest is kept.

use actix_web::HttpResponse;
use actix_web::http::header;
use actix_web::web;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

use super::ApiState;
use super::extractors::{Admin, ValidJson};
use crate::auth::{create_key, revoke_key};
use crate::keys::{KeyRecord, Role};
use crate::problem::{ApiError, ProblemBody};

/// A key as listed: never the key itself.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ApiKey)]
pub(super) struct KeyResponse {
    #[schema(example = "ci-bot")]
    name: String,
    role: Role,
    created_at: DateTime<Utc>,
    last_used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

impl From<KeyRecord> for KeyResponse {
    fn from(key: KeyRecord) -> Self {
        Self {
            name: key.name,
            role: key.role,
            created_at: key.created_at,
            last_used_at: key.last_used_at,
            revoked_at: key.revoked_at,
        }
    }
}

/// A new key, shown this once.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = NewApiKey)]
pub(super) struct NewKeyResponse {
    #[serde(flatten)]
    info: KeyResponse,
    /// The key: 64 hex digits. It is not stored and cannot be shown again.
    key: String,
}

/// `POST /api/v1/keys`.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CreateApiKey)]
pub(super) struct CreateKeyRequest {
    /// 1-64 of letters, digits, `_ - . @`; unique.
    #[schema(
        example = "ci-bot",
        min_length = 1,
        max_length = 64,
        pattern = "^[A-Za-z0-9_.@-]{1,64}$"
    )]
    name: String,
    role: Role,
}

#[utoipa::path(
    get,
    path = "/api/v1/keys",
    tag = "keys",
    responses(
        (status = 200, description = "Every key, oldest first", body = [KeyResponse]),
        (status = 401, description = "No valid API key", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin key", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed attempts", body = ProblemBody, content_type = "application/problem+json", headers(("retry-after" = u64))),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(super) async fn list_keys(
    state: web::Data<ApiState>,
    _: Admin,
) -> Result<HttpResponse, ApiError> {
    let keys = state
        .keys
        .list_keys()
        .await
        .map_err(|e| ApiError::Unavailable(e.into()))?;
    let keys: Vec<KeyResponse> = keys.into_iter().map(KeyResponse::from).collect();
    Ok(HttpResponse::Ok().json(keys))
}

#[utoipa::path(
    post,
    path = "/api/v1/keys",
    tag = "keys",
    request_body = CreateKeyRequest,
    responses(
        (status = 201, description = "Created; the key is in the body, shown once", body = NewKeyResponse),
        (status = 400, description = "Malformed JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin key", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "The name is taken", body = ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid; `field` names it", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed attempts", body = ProblemBody, content_type = "application/problem+json", headers(("retry-after" = u64))),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(super) async fn create_key_handler(
    state: web::Data<ApiState>,
    _: Admin,
    ValidJson(wanted): ValidJson<CreateKeyRequest>,
) -> Result<HttpResponse, ApiError> {
    let new = create_key(state.keys.as_ref(), &wanted.name, wanted.role).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(NewKeyResponse {
            info: new.record.into(),
            key: new.key,
        }))
}

#[utoipa::path(
    delete,
    path = "/api/v1/keys/{name}",
    tag = "keys",
    params(("name" = String, Path, description = "The key's name")),
    responses(
        (status = 204, description = "Revoked; it stops working within 5 s on every instance"),
        (status = 401, description = "No valid API key", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin key", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No live key has this name", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed attempts", body = ProblemBody, content_type = "application/problem+json", headers(("retry-after" = u64))),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(super) async fn revoke_key_handler(
    state: web::Data<ApiState>,
    _: Admin,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    revoke_key(state.keys.as_ref(), &name).await?;
    state.auth.forget();
    Ok(HttpResponse::NoContent().finish())
}
