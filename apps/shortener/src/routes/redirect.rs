//! `GET /{code}` and `HEAD /{code}`: the product's heartbeat. A cache hit
//! touches nothing but memory, and recording the click is a non-blocking
//! hand-off (see `clicks`), so nothing downstream can slow a redirect.
//!
//! A link with a password answers GET with a small form instead (HEAD with
//! 401); the form posts to `POST /{code}`, which checks the password off
//! the async workers and, when it is right, answers the redirect and
//! records the click. Attempts are limited per client and per link, and
//! every attempt does the same work whether the code exists or not.

use actix_web::http::{Method, StatusCode, header};
use actix_web::web;
use actix_web::{HttpRequest, HttpResponse};
use contracts::RedirectType;
use serde::Deserialize;
use utoipa::ToSchema;

use super::ApiState;
use super::extractors::{Form, client};
use crate::clicks::ClickContext;
use crate::domain::{ShortCode, SubmittedPassword, password};
use crate::problem::{ApiError, ProblemBody};
use crate::store::Link;

/// Password attempts per client per minute, and per link per minute (from
/// every client together: a guesser spread over many addresses).
pub const UNLOCKS_PER_CLIENT_PER_MINUTE: u32 = 10;
pub const UNLOCKS_PER_LINK_PER_MINUTE: u32 = 60;

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
        (status = 200, description = "The link has a password: a form that posts it to POST /{code}", content_type = "text/html"),
        (status = 404, description = "Unknown code", body = ProblemBody, content_type = "application/problem+json"),
        (status = 410, description = "Deleted or expired", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "The link is not cached and the store is unavailable", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub(super) async fn redirect(
    state: web::Data<ApiState>,
    code: ShortCode,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let link = state.service.resolve(code.as_str()).await?;
    if link.password_hash.is_some() {
        // Nobody followed the link yet: no click until the password.
        return Ok(match *request.method() {
            Method::HEAD => HttpResponse::Unauthorized()
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .finish(),
            _ => password_page(StatusCode::OK, None),
        });
    }
    // HEAD answers as GET does, but nobody followed the link: no click.
    if request.method() != Method::HEAD {
        record_click(&state, &request, &link);
    }
    follow(&request, &link)
}

/// Hands the click of `link` to the click recorder (non-blocking).
fn record_click(state: &ApiState, request: &HttpRequest, link: &Link) {
    let headers = request.headers();
    let text = |name: &header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let (ip, from_proxy) = client(state, request);
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
    state.clicks.record(link, context);
}

/// The redirect to `link`'s target.
fn follow(request: &HttpRequest, link: &Link) -> Result<HttpResponse, ApiError> {
    let status = StatusCode::from_u16(link.redirect_type.status()).unwrap_or(StatusCode::FOUND);
    // Permanent redirects may be cached briefly (so changes still propagate);
    // temporary ones never, so every click reaches us and is counted.
    let cache = match link.redirect_type {
        RedirectType::MovedPermanently | RedirectType::PermanentRedirect => "public, max-age=300",
        RedirectType::Found | RedirectType::TemporaryRedirect => "private, no-store",
    };
    let location = match link.forward_query {
        true => merge_query(link.url.as_str(), request.query_string()),
        false => link.url.to_string(),
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
        (status = 401, description = "The link has a password (GET shows its form)"),
        (status = 404, description = "Unknown code"),
        (status = 410, description = "Deleted or expired"),
        (status = 503, description = "The link is not cached and the store is unavailable"),
    )
)]
pub(super) async fn redirect_head(
    state: web::Data<ApiState>,
    code: ShortCode,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    redirect(state, code, request).await
}

/// The password form's body. Anything longer than any password is
/// refused before anything else, as the document says, so no link's
/// answer is given for it.
#[derive(Deserialize, ToSchema)]
#[schema(as = PasswordForm)]
pub(super) struct PasswordForm {
    #[schema(inline)]
    password: SubmittedPassword,
}

const PAGE_STYLE: &str = "body{margin:0;font:16px/1.5 system-ui,sans-serif;color:#1d2433;\
background:#f7f8fb}main{max-width:420px;margin:12vh auto;padding:24px;background:#fff;\
border:1px solid #e3e6ee;border-radius:8px}h1{font-size:20px;margin:0 0 8px}\
label{display:block;font-weight:600;margin:16px 0 4px}input{width:100%;box-sizing:border-box;\
padding:8px 10px;font:inherit;border:1px solid #c9cedb;border-radius:6px}\
button{margin-top:14px;padding:8px 18px;font:inherit;color:#fff;background:#3056d3;\
border:0;border-radius:6px}.error{color:#9b1c1c}";

/// The password form, served by the shortener itself with nothing from
/// elsewhere. It posts to the page's own URL, query string included, so
/// forwarded query parameters survive.
fn password_page(status: StatusCode, message: Option<&str>) -> HttpResponse {
    let message = message
        .map(|m| format!("<p class=\"error\" role=\"alert\">{m}</p>"))
        .unwrap_or_default();
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Password required</title><style>{PAGE_STYLE}</style></head><body><main>\
         <h1>This link is protected</h1><p>Enter its password to continue.</p>{message}\
         <form method=\"post\"><label for=\"password\">Password</label>\
         <input id=\"password\" name=\"password\" type=\"password\" required autofocus \
         autocomplete=\"current-password\"><button type=\"submit\">Continue</button>\
         </form></main></body></html>"
    );
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            // No form-action: the right password's answer redirects to
            // the link's target, wherever it is, and browsers hold a form's
            // redirects to that directive too.
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; \
             base-uri 'none'",
        ))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .body(body)
}

#[utoipa::path(
    post,
    path = "/{code}",
    tag = "redirect",
    operation_id = "unlock",
    params(("code" = String, Path, description = "The short code of a password-protected link")),
    request_body(content = PasswordForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 301, description = "The right password: Moved Permanently (per link)", headers(("location" = String))),
        (status = 302, description = "The right password: Found (default)", headers(("location" = String))),
        (status = 307, description = "The right password: Temporary Redirect (per link)", headers(("location" = String))),
        (status = 308, description = "The right password: Permanent Redirect (per link)", headers(("location" = String))),
        (status = 401, description = "A wrong password: the form again", content_type = "text/html"),
        (status = 404, description = "Unknown code", body = ProblemBody, content_type = "application/problem+json"),
        (status = 410, description = "Deleted or expired", body = ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "Not a form", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "No password field", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "Too many attempts from this client, or at this link: the form with the wait", content_type = "text/html", headers(("retry-after" = u64))),
        (status = 503, description = "The link is not cached and the store is unavailable", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub(super) async fn unlock(
    state: web::Data<ApiState>,
    code: ShortCode,
    Form(form): Form<PasswordForm>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let submitted = form.password.0;
    // Limited before any lookup, so the answer says nothing of the code.
    let (ip, _) = client(&state, &request);
    let limited = state
        .unlocks_by_client
        .check(ip)
        .and_then(|()| state.unlocks_by_link.check_key(code.as_str().to_owned()));
    if let Err(ApiError::RateLimited { retry_after_secs }) = limited {
        let mut page = password_page(
            StatusCode::TOO_MANY_REQUESTS,
            Some(&format!(
                "Too many attempts. Try again in {retry_after_secs} s."
            )),
        );
        page.headers_mut().insert(
            header::RETRY_AFTER,
            header::HeaderValue::from(retry_after_secs),
        );
        return Ok(page);
    }
    let resolved = state.service.resolve(code.as_str()).await;
    let hash = resolved.as_ref().ok().and_then(|l| l.password_hash.clone());
    // The same argon2 work whether the code exists, has a password, or not.
    let right = tokio::task::spawn_blocking(move || password::verify(hash.as_deref(), &submitted))
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("the password check failed: {e}")))?;
    let link = resolved?;
    if link.password_hash.is_some() && !right {
        return Ok(password_page(
            StatusCode::UNAUTHORIZED,
            Some("Wrong password."),
        ));
    }
    // The right password (or a link without one): followed, so counted.
    record_click(&state, &request, &link);
    follow(&request, &link)
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
