//! Analytics' errors, each with its status and stable `code`, written as
//! RFC 7807 problem+json by `service_kit::problem` (the same shape as every
//! service's, also for actix-web's own errors).

use actix_web::body::BoxBody;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
pub use service_kit::problem::{
    InvalidParam, PROBLEM_JSON, ProblemBody, problem_for_framework_errors, render, resource,
};

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
            AuthError::Missing | AuthError::Refused => ApiError::Unauthorized,
            AuthError::Throttled { retry_after_secs } => ApiError::RateLimited { retry_after_secs },
            AuthError::Unavailable(e) => ApiError::Unavailable(e),
        }
    }
}

impl ApiError {
    pub fn invalid(name: &str, reason: impl Into<String>) -> Self {
        ApiError::InvalidQuery(vec![InvalidParam::new(name, reason)])
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
        let params = match self {
            ApiError::InvalidQuery(params) => params.clone(),
            _ => Vec::new(),
        };
        let mut response =
            ProblemBody::of_error(self.status_code(), self.code(), self, params).response();
        match self {
            ApiError::Unauthorized => service_kit::problem::challenge(&mut response),
            ApiError::RateLimited { retry_after_secs } => {
                service_kit::problem::retry_after(&mut response, *retry_after_secs)
            }
            _ => {}
        }
        response
    }
}
