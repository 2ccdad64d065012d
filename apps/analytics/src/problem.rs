//! RFC 7807 problem details: the one shape of every error this service sends
//! (the same members as the shortener's: `type`, `title`, `status`,
//! `detail`, `code`, `field`, `invalid-params`).

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::ServiceResponse;
use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// One parameter at fault and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct InvalidParam {
    pub name: String,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the query string has invalid parameters")]
    InvalidQuery(Vec<InvalidParam>),
    #[error("{0}")]
    NotFound(String),
    #[error("the analytics store is temporarily unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error("not ready: {}", .0.join("; "))]
    NotReady(Vec<String>),
    #[error("a valid API key is required (X-Api-Key or Authorization: Bearer)")]
    Unauthorized,
    #[error("too many failed attempts from this address; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
}

impl From<crate::keys::AuthError> for ApiError {
    fn from(error: crate::keys::AuthError) -> Self {
        use crate::keys::AuthError;
        match error {
            AuthError::Refused => ApiError::Unauthorized,
            AuthError::Throttled { retry_after_secs } => ApiError::RateLimited { retry_after_secs },
            AuthError::Unavailable(e) => ApiError::Unavailable(e.into()),
        }
    }
}

impl ApiError {
    pub fn invalid(name: &str, reason: impl Into<String>) -> Self {
        ApiError::InvalidQuery(vec![InvalidParam {
            name: name.to_owned(),
            reason: reason.into(),
        }])
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidQuery(_) => "invalid_query",
            ApiError::NotFound(_) => "not_found",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::NotReady(_) => "not_ready",
            ApiError::Unauthorized => "unauthorized",
            ApiError::RateLimited { .. } => "rate_limited",
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(error: crate::store::StoreError) -> Self {
        ApiError::Unavailable(error.into())
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::InvalidQuery(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Unavailable(_) | ApiError::NotReady(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    fn error_response(&self) -> HttpResponse<BoxBody> {
        if let ApiError::Unavailable(cause) = self {
            tracing::error!(error = %format!("{cause:#}"), "request failed");
        }
        let mut detail = self.to_string();
        let params = match self {
            ApiError::InvalidQuery(params) => params.clone(),
            _ => Vec::new(),
        };
        if !params.is_empty() {
            let listed: Vec<String> = params
                .iter()
                .map(|p| format!("{}: {}", p.name, p.reason))
                .collect();
            detail = format!("{detail}: {}", listed.join("; "));
        }
        let mut response = render(self.status_code(), self.code(), &detail, params);
        match self {
            ApiError::Unauthorized => {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Bearer, ApiKey header=\"X-Api-Key\""),
                );
            }
            ApiError::RateLimited { retry_after_secs } => {
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    header::HeaderValue::from(*retry_after_secs),
                );
            }
            _ => {}
        }
        response
    }
}

/// An RFC 7807 problem, as every error of this API is sent.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Problem)]
pub struct ProblemBody {
    #[serde(rename = "type")]
    kind: &'static str,
    title: String,
    status: u16,
    detail: String,
    /// Stable machine-readable kind, e.g. `invalid_query`, `not_found`.
    code: String,
    /// The first parameter at fault, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
    #[serde(rename = "invalid-params", skip_serializing_if = "Vec::is_empty")]
    invalid_params: Vec<InvalidParam>,
}

pub fn render(
    status: StatusCode,
    code: &str,
    detail: &str,
    invalid_params: Vec<InvalidParam>,
) -> HttpResponse {
    let body = ProblemBody {
        kind: "about:blank",
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        status: status.as_u16(),
        detail: detail.to_owned(),
        code: code.to_owned(),
        field: invalid_params.first().map(|p| p.name.clone()),
        invalid_params,
    };
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, PROBLEM_JSON))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(serde_json::to_vec(&body).unwrap_or_default())
}

/// Gives actix-web's own error responses (unknown route, wrong method, ...)
/// the problem+json shape.
pub fn problem_for_framework_errors<B: MessageBody + 'static>(
    response: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if is_problem {
        return Ok(ErrorHandlerResponse::Response(
            response.map_into_left_body(),
        ));
    }
    let status = response.status();
    let (code, detail) = match status {
        StatusCode::NOT_FOUND => (
            "not_found",
            format!("nothing is served at {}", response.request().path()),
        ),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            format!(
                "{} is not allowed on {}",
                response.request().method(),
                response.request().path()
            ),
        ),
        s if s.is_server_error() => ("internal", "an internal error occurred".to_owned()),
        s => (
            "bad_request",
            s.canonical_reason().unwrap_or("error").to_lowercase(),
        ),
    };
    let (request, _) = response.into_parts();
    let problem = render(status, code, &detail, Vec::new()).map_into_right_body();
    Ok(ErrorHandlerResponse::Response(ServiceResponse::new(
        request, problem,
    )))
}

/// A resource on `path` whose other methods answer 405 problem+json with
/// an `Allow` header listing `allow` (RFC 9110 requires it).
pub fn resource(path: &str, allow: &'static str) -> actix_web::Resource {
    actix_web::web::resource(path).default_service(actix_web::web::to(
        move |request: actix_web::HttpRequest| async move {
            let mut response = render(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                &format!(
                    "{} is not allowed on {}; use {allow}",
                    request.method(),
                    request.path()
                ),
                Vec::new(),
            );
            response
                .headers_mut()
                .insert(header::ALLOW, header::HeaderValue::from_static(allow));
            response
        },
    ))
}
