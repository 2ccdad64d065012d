//! RFC 7807 problem details: the one shape of every error a service sends.
//!
//! A service's own error enum says which status and `code` each error has;
//! [`ProblemBody`] is how it is written: `type`, `title`, `status`,
//! `detail`, a stable machine-readable `code`, the first offending `field`,
//! and every offending field in `invalid-params` (the member RFC 7807 itself
//! uses in its example). [`problem_for_framework_errors`] gives actix-web's
//! own errors (unknown route, wrong method, oversized body, ...) the same
//! shape, and [`resource`] answers a wrong method with `Allow`.

use actix_web::HttpResponse;
use actix_web::body::MessageBody;
use actix_web::dev::ServiceResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::ErrorHandlerResponse;
use serde::Serialize;

/// Media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One field or parameter at fault, and why.
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

/// An RFC 7807 problem, as every error of an API is sent.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Problem)]
pub struct ProblemBody {
    /// Always `about:blank`: the title is the status's phrase and `code`
    /// carries the precise kind.
    #[serde(rename = "type")]
    kind: &'static str,
    title: String,
    status: u16,
    detail: String,
    /// Stable machine-readable kind, e.g. `invalid_body`, `not_found`.
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

    /// The problem of an error whose message is `error`: the fields at
    /// fault, if any, are listed after it in `detail` too, so a reader of
    /// the detail alone learns what to change.
    pub fn of_error(
        status: StatusCode,
        code: &str,
        error: &dyn std::fmt::Display,
        invalid_params: Vec<InvalidParam>,
    ) -> Self {
        let mut detail = error.to_string();
        if !invalid_params.is_empty() {
            let listed: Vec<String> = invalid_params
                .iter()
                .map(|p| format!("{}: {}", p.name, p.reason))
                .collect();
            detail = format!("{detail}: {}", listed.join("; "));
        }
        Self::new(status, code, &detail, invalid_params)
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

/// Says how to present a key, on a 401.
pub fn challenge(response: &mut HttpResponse) {
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer, ApiKey header=\"X-Api-Key\""),
    );
}

/// Says when to try again, on a 429.
pub fn retry_after(response: &mut HttpResponse, seconds: u64) {
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
}

/// `ErrorHandlers` default handler: an error response that is not already
/// problem+json (actix-web's unknown route, wrong method, payload too large,
/// ...) is replaced by one with the same status. Pages a service writes
/// itself for people (`text/html`) are kept as they are.
pub fn problem_for_framework_errors<B: MessageBody + 'static>(
    response: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
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
        s if s.is_server_error() => "an internal error occurred".to_owned(),
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
                .insert(header::ALLOW, HeaderValue::from_static(allow));
            response
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_names_its_first_field_and_lists_every_one_in_the_detail() {
        let problem = ProblemBody::of_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            &"the request has invalid fields",
            vec![
                InvalidParam::new("url", "must not be empty"),
                InvalidParam::new("alias", "is too short"),
            ],
        );
        let json = serde_json::to_value(&problem).unwrap();
        assert_eq!(json["type"], "about:blank");
        assert_eq!(json["title"], "Unprocessable Entity");
        assert_eq!(json["status"], 422);
        assert_eq!(json["field"], "url");
        assert_eq!(
            json["detail"],
            "the request has invalid fields: url: must not be empty; alias: is too short"
        );
        assert_eq!(json["invalid-params"].as_array().unwrap().len(), 2);
        let response = problem.response();
        assert_eq!(
            response.headers().get(header::CONTENT_TYPE).unwrap(),
            PROBLEM_JSON
        );
        assert_eq!(
            response.headers().get(header::CACHE_CONTROL).unwrap(),
            "no-store"
        );
    }

    #[test]
    fn a_problem_without_fields_has_no_field_members() {
        let json = serde_json::to_value(ProblemBody::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no",
            vec![],
        ))
        .unwrap();
        assert!(json.get("field").is_none() && json.get("invalid-params").is_none());
    }
}
