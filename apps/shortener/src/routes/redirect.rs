//! `GET /{code}` and `HEAD /{code}`: the product's heartbeat. A cache hit
//! touches nothing but memory, and recording the click is a non-blocking
//! hand-off (see `clicks`), so nothing downstream can slow a redirect.

use actix_web::http::{header, Method};
use actix_web::web;
use actix_web::{HttpRequest, HttpResponse};
use contracts::RedirectType;

use super::extractors::{client, code_in_path};
use super::ApiState;
use crate::clicks::ClickContext;
use crate::problem::{ApiError, ProblemBody};

/// The target with the request's query string appended to its own (before
/// any fragment), so campaign parameters survive the redirect.
pub fn merge_query(target: &str, query: &str) -> String {
    if query.is_empty() {
        return target.to_owned();
    }
    let (base, fragment) = match target.split_once('#') {
        Some((base, fragment)) => (base, Some(fragment)),
        None => (target, None),
    };
    let separator = match base.contains('?') {
        false => "?",
        true if base.ends_with(['?', '&']) => "",
        true => "&",
    };
    let mut merged = format!("{base}{separator}{query}");
    if let Some(fragment) = fragment {
        merged.push('#');
        merged.push_str(fragment);
    }
    merged
}

#[utoipa::path(
    get,
    path = "/{code}",
    tag = "redirect",
    params(("code" = String, Path, description = "The short code; the request's query string is appended to the target's")),
    responses(
        (status = 301, description = "Moved Permanently (per link)", headers(("location" = String))),
        (status = 302, description = "Found (default)", headers(("location" = String))),
        (status = 307, description = "Temporary Redirect (per link)", headers(("location" = String))),
        (status = 308, description = "Permanent Redirect (per link)", headers(("location" = String))),
        (status = 404, description = "Unknown code", body = ProblemBody, content_type = "application/problem+json"),
        (status = 410, description = "Deleted or expired", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "The link is not cached and the store is unavailable", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub(super) async fn redirect(
    state: web::Data<ApiState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let code = code_in_path(&request)?;
    let link = state.service.resolve(code.as_str()).await?;
    // HEAD answers as GET does, but nobody followed the link: no click.
    if request.method() != Method::HEAD {
        let headers = request.headers();
        let text = |name: &header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
        let (ip, from_proxy) = client(&state, &request);
        let context = ClickContext {
            ip: Some(ip),
            user_agent: text(&header::USER_AGENT),
            referrer: text(&header::REFERER),
            // Anyone can send the header; only a trusted proxy's counts.
            country: state
                .country_header
                .as_ref()
                .filter(|_| from_proxy)
                .and_then(text),
        };
        state.clicks.record(&link, context);
    }
    let status = actix_web::http::StatusCode::from_u16(link.redirect_type.status())
        .unwrap_or(actix_web::http::StatusCode::FOUND);
    // Permanent redirects may be cached briefly (so changes still propagate);
    // temporary ones never, so every click reaches us and is counted.
    let cache = match link.redirect_type {
        RedirectType::MovedPermanently | RedirectType::PermanentRedirect => "public, max-age=300",
        RedirectType::Found | RedirectType::TemporaryRedirect => "private, no-store",
    };
    let location = match link.forward_query {
        true => merge_query(&link.url, request.query_string()),
        false => link.url.clone(),
    };
    // Taken as they are: stored targets are normalised, valid header bytes.
    let location =
        header::HeaderValue::from_maybe_shared(bytes::Bytes::from(location)).map_err(|e| {
            ApiError::Internal(anyhow::anyhow!("a stored target is no header value: {e}"))
        })?;
    Ok(HttpResponse::build(status)
        .insert_header((header::LOCATION, location))
        .insert_header((
            header::CACHE_CONTROL,
            header::HeaderValue::from_static(cache),
        ))
        .finish())
}

/// `HEAD /{code}`: the same answer as GET, without a body and without a click.
#[utoipa::path(
    head,
    path = "/{code}",
    tag = "redirect",
    operation_id = "redirect_head",
    params(("code" = String, Path, description = "The short code")),
    responses(
        (status = 301, description = "Moved Permanently (per link)", headers(("location" = String))),
        (status = 302, description = "Found (default)", headers(("location" = String))),
        (status = 307, description = "Temporary Redirect (per link)", headers(("location" = String))),
        (status = 308, description = "Permanent Redirect (per link)", headers(("location" = String))),
        (status = 404, description = "Unknown code"),
        (status = 410, description = "Deleted or expired"),
        (status = 503, description = "The link is not cached and the store is unavailable"),
    )
)]
pub(super) async fn redirect_head(
    state: web::Data<ApiState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    redirect(state, request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_query_is_merged_into_the_target() {
        let cases = [
            ("https://e.com/p", "", "https://e.com/p"),
            ("https://e.com/p", "utm=1", "https://e.com/p?utm=1"),
            ("https://e.com/p?a=1", "utm=1", "https://e.com/p?a=1&utm=1"),
            ("https://e.com/p?", "utm=1", "https://e.com/p?utm=1"),
            (
                "https://e.com/p?a=1#top",
                "utm=1&x=%20",
                "https://e.com/p?a=1&utm=1&x=%20#top",
            ),
            ("https://e.com/#frag", "b=2", "https://e.com/?b=2#frag"),
            ("https://e.com/p&", "b=2", "https://e.com/p&?b=2"),
            ("https://e.com/p?a=1&", "b=2", "https://e.com/p?a=1&b=2"),
        ];
        for (target, query, expected) in cases {
            assert_eq!(merge_query(target, query), expected, "{target} + {query}");
        }
    }
}
