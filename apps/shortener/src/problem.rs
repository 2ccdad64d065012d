//! The shortener's errors, each with its status and stable `code`, written
//! as RFC 7807 problem+json by `service_kit::problem` (which also gives
//! actix-web's own errors that shape).

use actix_web::body::BoxBody;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
pub use service_kit::problem::{
    InvalidParam, PROBLEM_JSON, ProblemBody, problem_for_framework_errors, render, resource,
};

use crate::auth::{AuthError, KeyError};
use crate::service::LinkError;

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
            AuthError::Unavailable(e) => ApiError::Unavailable(e),
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
        ProblemBody::of_error(self.status_code(), self.code(), self, self.invalid_params())
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
                service_kit::problem::retry_after(&mut response, *retry_after_secs)
            }
            ApiError::Unauthorized => service_kit::problem::challenge(&mut response),
            _ => {}
        }
        response
    }
}
