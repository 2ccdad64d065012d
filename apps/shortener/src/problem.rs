//! RFC 7807 problem details: the one shape of every error this service sends.
//!
//! Handlers return [`ApiError`]; `render` turns it into
//! `application/problem+json` with `type`, `title`, `status`, `detail`, a
//! stable machine-readable `code`, the first offending `field`, and every
//! offending field in `invalid-params` (the member RFC 7807 itself uses in its
//! example). [`problem_for_framework_errors`] gives actix-web's own errors
//! (unknown route, wrong method, oversized body, ...) the same shape.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::ServiceResponse;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::auth::{AuthError, KeyError};
use crate::service::LinkError;

/// Media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One field at fault and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct InvalidParam {
    pub name: String,
    pub reason: String,
}

impl InvalidParam {
    pub fn new(name: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            reason: reason.into(),
        }
    }
}

/// Everything an API call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the request body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("the request body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    #[error("the request has invalid fields")]
    InvalidBody(Vec<InvalidParam>),
    #[error("the query string has invalid parameters")]
    InvalidQuery(Vec<InvalidParam>),
    #[error("no link has the code {0:?}")]
    NotFound(String),
    #[error("the link {code:?} {reason}")]
    Gone { code: String, reason: &'static str },
    #[error("the alias {0:?} is already taken")]
    AliasTaken(String),
    #[error("the link {0:?} was changed concurrently; retry")]
    Conflict(String),
    #[error("a key named {0:?} exists")]
    KeyNameTaken(String),
    #[error("no live key is named {0:?}")]
    KeyNotFound(String),
    #[error("a valid API key is required (X-Api-Key or Authorization: Bearer)")]
    Unauthorized,
    #[error("this key's role may not do this")]
    Forbidden,
    #[error("too many requests from this address; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("the service is temporarily unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// Readiness checks that failed; naming them leaks nothing and is what
    /// an operator needs.
    #[error("not ready: {}", .0.join("; "))]
    NotReady(Vec<String>),
    #[error("an internal error occurred")]
    Internal(#[source] anyhow::Error),
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::Missing | AuthError::Refused => ApiError::Unauthorized,
            AuthError::Throttled { retry_after_secs } => ApiError::RateLimited { retry_after_secs },
            AuthError::Unavailable(e) => ApiError::Unavailable(e.into()),
        }
    }
}

impl From<KeyError> for ApiError {
    fn from(error: KeyError) -> Self {
        match error {
            KeyError::InvalidName(reason) => ApiError::invalid("name", reason),
            KeyError::NameTaken(name) => ApiError::KeyNameTaken(name),
            KeyError::NotFound(name) => ApiError::KeyNotFound(name),
            KeyError::Unavailable(e) => ApiError::Unavailable(e.into()),
        }
    }
}

impl From<LinkError> for ApiError {
    fn from(error: LinkError) -> Self {
        match error {
            LinkError::NotFound(code) => ApiError::NotFound(code),
            LinkError::Gone { code, reason } => ApiError::Gone { code, reason },
            LinkError::AliasTaken(code) => ApiError::AliasTaken(code),
            LinkError::Conflict(code) => ApiError::Conflict(code),
            LinkError::Unavailable(e) => ApiError::Unavailable(e),
            LinkError::Internal(e) => ApiError::Internal(e),
        }
    }
}

impl ApiError {
    /// The problem this error is answered with (also one item's answer in
    /// a bulk create).
    pub fn problem(&self) -> ProblemBody {
        let mut detail = self.to_string();
        let params = self.invalid_params();
        if !params.is_empty() {
            let listed: Vec<String> = params
                .iter()
                .map(|p| format!("{}: {}", p.name, p.reason))
                .collect();
            detail = format!("{detail}: {}", listed.join("; "));
        }
        ProblemBody::new(self.status_code(), self.code(), &detail, params)
    }

    /// A single invalid body field.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ApiError::InvalidBody(vec![InvalidParam::new(field, reason)])
    }

    /// Stable machine-readable identifier of the problem.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::MalformedJson(_) => "malformed_json",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::InvalidBody(_) => "invalid_body",
            ApiError::InvalidQuery(_) => "invalid_query",
            ApiError::NotFound(_) => "not_found",
            ApiError::Gone { .. } => "gone",
            ApiError::AliasTaken(_) => "alias_taken",
            ApiError::Conflict(_) => "conflict",
            ApiError::KeyNameTaken(_) => "key_name_taken",
            ApiError::KeyNotFound(_) => "not_found",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden => "forbidden",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::NotReady(_) => "not_ready",
            ApiError::Internal(_) => "internal",
        }
    }

    fn invalid_params(&self) -> Vec<InvalidParam> {
        match self {
            ApiError::InvalidBody(params) | ApiError::InvalidQuery(params) => params.clone(),
            ApiError::AliasTaken(_) => vec![InvalidParam::new("alias", "is already taken")],
            ApiError::KeyNameTaken(_) => vec![InvalidParam::new("name", "is already taken")],
            _ => Vec::new(),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::MalformedJson(_) | ApiError::InvalidQuery(_) => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::InvalidBody(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::NotFound(_) | ApiError::KeyNotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Gone { .. } => StatusCode::GONE,
            ApiError::AliasTaken(_) | ApiError::Conflict(_) | ApiError::KeyNameTaken(_) => {
                StatusCode::CONFLICT
            }
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) | ApiError::NotReady(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse<BoxBody> {
        let status = self.status_code();
        if status.is_server_error() && !matches!(self, ApiError::NotReady(_)) {
            // The cause goes to the log, never to the client.
            let cause = std::error::Error::source(self).map(|c| format!("{c:#}"));
            tracing::error!(error = %self, cause, "request failed");
        }
        let mut response = self.problem().response();
        match self {
            ApiError::RateLimited { retry_after_secs } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            ApiError::Unauthorized => {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer, ApiKey header=\"X-Api-Key\""),
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
    /// Always `about:blank`: the title is the status's phrase and `code`
    /// carries the precise kind.
    #[serde(rename = "type")]
    kind: &'static str,
    title: String,
    status: u16,
    detail: String,
    /// Stable machine-readable kind, e.g. `invalid_body`, `alias_taken`.
    code: String,
    /// The first field at fault, when a field is at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
    /// Every field at fault.
    #[serde(rename = "invalid-params", skip_serializing_if = "Vec::is_empty")]
    invalid_params: Vec<InvalidParam>,
}

impl ProblemBody {
    pub fn new(
        status: StatusCode,
        code: &str,
        detail: &str,
        invalid_params: Vec<InvalidParam>,
    ) -> Self {
        Self {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.to_owned(),
            code: code.to_owned(),
            field: invalid_params.first().map(|p| p.name.clone()),
            invalid_params,
        }
    }

    pub fn status(&self) -> u16 {
        self.status
    }

    /// The problem+json response of this problem.
    pub fn response(&self) -> HttpResponse {
        HttpResponse::build(
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        )
        .insert_header((header::CONTENT_TYPE, PROBLEM_JSON))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(serde_json::to_vec(self).unwrap_or_default())
    }
}

/// A problem+json response.
pub fn render(
    status: StatusCode,
    code: &str,
    detail: &str,
    invalid_params: Vec<InvalidParam>,
) -> HttpResponse {
    ProblemBody::new(status, code, detail, invalid_params).response()
}

/// `ErrorHandlers` default handler: an error response that is not already
/// problem+json (actix-web's unknown route, wrong method, payload too large,
/// ...) is replaced by one with the same status.
pub fn problem_for_framework_errors<B: MessageBody + 'static>(
    response: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    // Problems are kept, and so are the pages the service writes itself
    // (a password link's form answers 401 and 429 as HTML, for people).
    let is_ours = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| {
            v.as_bytes().starts_with(PROBLEM_JSON.as_bytes())
                || v.as_bytes().starts_with(b"text/html")
        });
    if is_ours {
        return Ok(ErrorHandlerResponse::Response(
            response.map_into_left_body(),
        ));
    }
    let status = response.status();
    let detail = match status {
        StatusCode::NOT_FOUND => format!("nothing is served at {}", response.request().path()),
        StatusCode::METHOD_NOT_ALLOWED => format!(
            "{} is not allowed on {}",
            response.request().method(),
            response.request().path()
        ),
        StatusCode::PAYLOAD_TOO_LARGE => "the request body is too large".to_owned(),
        _ => status.canonical_reason().unwrap_or("error").to_lowercase(),
    };
    let code = match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
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
