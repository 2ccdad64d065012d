//! The console's own JSON API: `GET /api/v1/consistency`, the consistency
//! monitor for scripts and alerts.
//!
//! Like the services' APIs it takes a key in `X-Api-Key` (or
//! `Authorization: Bearer`), here an admin key of the shortener (the
//! monitor must see every link), and answers errors as RFC 7807
//! problem+json.

use std::net::IpAddr;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use governor::DefaultKeyedRateLimiter;
use serde::Serialize;

use crate::Console;
use crate::consistency::MonitorError;
use crate::pages::{client_ip, per_minute_limit};
use crate::upstream::CallError;

/// Calls per address and minute; a monitoring script polls far less, and
/// a key guesser gets nowhere.
const CALLS_PER_MINUTE: u32 = 60;
/// Longest key accepted (as at the login).
const MAX_KEY_BYTES: usize = 256;

/// Calls of the API, per address.
pub struct ApiLimit(DefaultKeyedRateLimiter<IpAddr>);

impl Default for ApiLimit {
    fn default() -> Self {
        Self(per_minute_limit(CALLS_PER_MINUTE))
    }
}

pub fn routes(config: &mut web::ServiceConfig) {
    config.route("/api/v1/consistency", web::get().to(consistency));
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'static str,
    status: u16,
    detail: &'a str,
    code: &'static str,
}

fn problem(status: StatusCode, code: &'static str, detail: &str) -> HttpResponse {
    let body = Problem {
        kind: "about:blank",
        title: status.canonical_reason().unwrap_or("Error"),
        status: status.as_u16(),
        detail,
        code,
    };
    let mut response = HttpResponse::build(status);
    response
        .insert_header((header::CONTENT_TYPE, "application/problem+json"))
        .insert_header((header::CACHE_CONTROL, "no-store"));
    match status {
        StatusCode::UNAUTHORIZED => {
            response.insert_header((
                header::WWW_AUTHENTICATE,
                "Bearer, ApiKey header=\"X-Api-Key\"",
            ));
        }
        StatusCode::TOO_MANY_REQUESTS => {
            response.insert_header((header::RETRY_AFTER, "60"));
        }
        _ => {}
    }
    response.body(serde_json::to_vec(&body).unwrap_or_default())
}

fn presented_key(request: &HttpRequest) -> Option<&str> {
    service_kit::auth::presented_key(request.headers())
}

/// A failed service call as the problem this API answers.
fn call_problem(error: &CallError) -> HttpResponse {
    match error {
        CallError::Problem(p) if p.status == 401 => problem(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the key is not valid (or was revoked)",
        ),
        CallError::Problem(p) if p.status == 403 => problem(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the consistency monitor needs an admin key: it compares every link",
        ),
        CallError::Problem(p) if p.status == 429 => problem(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            "too many failed keys from this address; retry later",
        ),
        other => {
            tracing::warn!(error = %other, "the consistency monitor could not run");
            problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                &format!("the {} is unavailable right now", other.service()),
            )
        }
    }
}

/// `GET /api/v1/consistency`: how far analytics' copies of the links are
/// behind the shortener (see [`crate::consistency`]).
async fn consistency(console: web::Data<Console>, request: HttpRequest) -> HttpResponse {
    let ip = client_ip(&request);
    if console.api_calls.0.check_key(&ip).is_err() {
        return problem(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            "too many calls from this address; retry in a minute",
        );
    }
    let key = match presented_key(&request) {
        Some(key) if !key.is_empty() => key,
        _ => {
            return problem(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "an admin API key is required (X-Api-Key or Authorization: Bearer)",
            );
        }
    };
    if key.len() > MAX_KEY_BYTES || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return problem(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the key is not valid (or was revoked)",
        );
    }
    let client = ip.to_string();
    // The shortener decides: only an admin key may list the keys.
    if let Err(error) = console.upstream.keys(key, &client).await {
        return call_problem(&error);
    }
    match console
        .monitor
        .report(&console.upstream, key, &client)
        .await
    {
        Ok(report) => HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(report.as_ref()),
        Err(MonitorError::Call(error)) => call_problem(&error),
        Err(error @ MonitorError::NoCopies) => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            &error.to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn keys_come_from_either_header() {
        let request = TestRequest::default()
            .insert_header(("X-Api-Key", "k1"))
            .to_http_request();
        assert_eq!(presented_key(&request), Some("k1"));
        let request = TestRequest::default()
            .insert_header(("Authorization", "bearer  k2"))
            .to_http_request();
        assert_eq!(presented_key(&request), Some("k2"));
        let request = TestRequest::default()
            .insert_header(("Authorization", "Basic k3"))
            .to_http_request();
        assert_eq!(presented_key(&request), None);
    }
}
