//! Signing in with a shortener key, and out.
//!
//! The key is checked at the shortener: a list of the key's links answers
//! 200 for any live key, and the key list answers 200 only to an admin. So
//! the shortener alone decides who is who; the console keeps no users.

use std::net::IpAddr;

use actix_web::{HttpRequest, HttpResponse};
use governor::DefaultKeyedRateLimiter;
use maud::html;

use super::{Fields, Nav, PageError, State, client_ip, per_minute_limit, render, see_other};
use crate::session::{
    LOGIN_COOKIE, Role, SESSION_COOKIE, SessionData, cookie, random_token, removal, tokens_match,
};
use crate::upstream::CallError;

/// Sign-in attempts per address and minute: a guesser is stopped here,
/// before the shortener's own failed-key limit (which sees the console as
/// one client unless it trusts it as a proxy) would lock everybody out.
const LOGINS_PER_MINUTE: u32 = 10;

/// Longest key accepted at the login.
const MAX_KEY_BYTES: usize = 256;
const INVALID_KEY: &str = "That key is not valid (or was revoked).";

/// Sign-in attempts, per address.
pub struct LoginLimit(DefaultKeyedRateLimiter<IpAddr>);

impl LoginLimit {
    pub fn new() -> Self {
        Self(per_minute_limit(LOGINS_PER_MINUTE))
    }
}

impl Default for LoginLimit {
    fn default() -> Self {
        Self::new()
    }
}

fn login_page(request: &HttpRequest, error: Option<&str>, status: u16) -> HttpResponse {
    let token = random_token();
    let body = html! {
        h1 { "Log in" }
        p.muted { "With a key of the shortener: an admin key, or an author key an admin made for you on the Keys page." }
        @if let Some(error) = error { p.error role="alert" { (error) } }
        form.stack.card method="post" action="/login" {
            input type="hidden" name="csrf" value=(token);
            div {
                label for="key" { "API key" }
                input #key type="password" name="key" required autocomplete="current-password" autofocus;
            }
            div { button type="submit" { "Log in" } }
        }
    };
    let mut response = render(None, "Log in", Nav::None, body);
    *response.status_mut() = actix_web::http::StatusCode::from_u16(status).unwrap_or_default();
    let _ = response.add_cookie(&cookie(request, LOGIN_COOKIE, token));
    response
}

pub async fn login_form(state: State, request: HttpRequest) -> HttpResponse {
    if state.sessions.find(&request).is_some() {
        return see_other("/links");
    }
    login_page(&request, None, 200)
}

pub async fn log_in(
    state: State,
    request: HttpRequest,
    fields: Fields,
) -> Result<HttpResponse, PageError> {
    // The login form's double-submit token: the cookie and the field match.
    let cookie_token = request.cookie(LOGIN_COOKIE).map(|c| c.value().to_owned());
    match (cookie_token, fields.get("csrf")) {
        (Some(a), Some(b)) if tokens_match(&a, b) => {}
        _ => return Err(PageError::Csrf),
    }
    let ip = client_ip(&request);
    let key = fields
        .get("key")
        .map(|k| k.trim())
        .unwrap_or_default()
        .to_owned();
    if key.is_empty() {
        return Ok(login_page(&request, Some("Enter a key."), 422));
    }
    // Keys are printable ASCII; anything else cannot be one (and could not
    // travel in a header), so it is refused here, as an invalid key.
    if key.len() > MAX_KEY_BYTES || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Ok(login_page(&request, Some(INVALID_KEY), 401));
    }
    // Throttled before asking the shortener, so a guesser is stopped here.
    if state.logins.0.check_key(&ip).is_err() {
        return Err(PageError::TooMany(60));
    }
    let client = ip.to_string();
    match state.upstream.list_links(&key, &client, "limit=1").await {
        Ok(_) => {}
        Err(CallError::Problem(p)) if p.status == 401 => {
            return Ok(login_page(
                &request,
                Some("That key is not valid (or was revoked)."),
                401,
            ));
        }
        Err(error) => return Err(PageError::from_call(error)),
    }
    let role = match state.upstream.keys(&key, &client).await {
        Ok(_) => Role::Admin,
        Err(CallError::Problem(p)) if p.status == 403 => Role::Author,
        Err(error) => return Err(PageError::from_call(error)),
    };
    let session = state.sessions.start(SessionData { key, role });
    let mut response = see_other("/links");
    response
        .add_cookie(&cookie(&request, SESSION_COOKIE, session.id.clone()))
        .map_err(|e| PageError::Upstream(e.to_string()))?;
    let _ = response.add_cookie(&removal(&request, LOGIN_COOKIE));
    Ok(response)
}

pub async fn log_out(
    state: State,
    request: HttpRequest,
    fields: Fields,
) -> Result<HttpResponse, PageError> {
    if let Some(session) = state.sessions.find(&request) {
        // Signed in: only a form of this session's pages logs it out.
        match fields.get("csrf") {
            Some(token) if tokens_match(token, &session.csrf) => state.sessions.end(&session),
            _ => return Err(PageError::Csrf),
        }
    }
    let mut response = see_other("/login");
    let _ = response.add_cookie(&removal(&request, SESSION_COOKIE));
    Ok(response)
}
