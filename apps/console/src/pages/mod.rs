//! The pages: one module per area, and what they share here (the layout,
//! sign-in checks, CSRF, errors).

mod auth;
mod edges;
mod export;
mod import;
mod keys;
mod links;
mod system;

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use maud::{DOCTYPE, Markup, html};

use crate::Console;
use crate::session::{Role, SESSION_COOKIE, Session};
use crate::upstream::CallError;

pub use auth::LoginLimit;
pub use edges::{Admin, CsrfForm, SignedIn};
pub use import::PendingImport;

pub type State = web::Data<Console>;
/// A submitted form's fields (a repeated name keeps its last value).
pub type Fields = web::Form<HashMap<String, String>>;

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/", web::get().to(home))
        .route("/login", web::get().to(auth::login_form))
        .route("/login", web::post().to(auth::log_in))
        .route("/logout", web::post().to(auth::log_out))
        .route("/links", web::get().to(links::list))
        .route("/links", web::post().to(links::create))
        .route("/links/new", web::get().to(links::new_form))
        // Before `/links/{code}`, which would take the path (codes have no dots).
        .route("/links/export.csv", web::get().to(export::links_csv))
        .route("/links/import", web::get().to(import::form))
        .route("/links/import", web::post().to(import::preview))
        .route("/links/import/{id}", web::post().to(import::run))
        .route(
            "/links/{code}/clicks.csv",
            web::get().to(export::clicks_csv),
        )
        .route("/links/{code}", web::get().to(links::show))
        .route("/links/{code}", web::post().to(links::update))
        .route("/links/{code}/delete", web::get().to(links::confirm_delete))
        .route("/links/{code}/delete", web::post().to(links::delete))
        .route("/links/{code}/qr", web::get().to(links::qr))
        .route("/keys", web::get().to(keys::list))
        .route("/keys", web::post().to(keys::create))
        .route("/keys/{name}/revoke", web::post().to(keys::revoke))
        .route("/system", web::get().to(system::show))
        .default_service(web::to(not_found));
}

async fn home(state: State, request: HttpRequest) -> HttpResponse {
    let to = if state.sessions.find(&request).is_some() {
        "/links"
    } else {
        "/login"
    };
    see_other(to)
}

async fn not_found(state: State, request: HttpRequest) -> HttpResponse {
    let session = state.sessions.find(&request);
    render_error(
        session.as_ref(),
        StatusCode::NOT_FOUND,
        "Not found",
        "There is no page here.",
    )
}

/// A 303 to `to` (after a form, so a reload does not post again).
pub fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to))
        .finish()
}

/// What went wrong while making a page.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// Not signed in, or the key stopped working: to the login page.
    #[error("sign in first")]
    SignIn,
    #[error("{0}")]
    NotFound(String),
    #[error("only an admin key may do this")]
    Forbidden,
    /// A form without this session's token.
    #[error("the form has expired; reload the page and try again")]
    Csrf,
    #[error("{0}")]
    BadRequest(String),
    #[error("too many attempts; retry in {0} s")]
    TooMany(u64),
    /// A service is down or answered what the console cannot use.
    #[error("{0}")]
    Upstream(String),
}

impl PageError {
    /// A failed call as a page error: 401 means the key no longer works.
    pub fn from_call(error: CallError) -> Self {
        match error {
            CallError::Problem(p) if p.status == 401 => PageError::SignIn,
            CallError::Problem(p) if p.status == 403 => PageError::Forbidden,
            CallError::Problem(p) if p.status == 404 || p.status == 410 => {
                PageError::NotFound(p.detail)
            }
            CallError::Problem(p) if p.status == 429 => PageError::TooMany(60),
            CallError::Problem(p) if p.status < 500 => PageError::BadRequest(p.detail),
            other => {
                // The details (addresses, errors) go to the log, not the page.
                tracing::warn!(error = %other, "a service call failed");
                PageError::Upstream(format!(
                    "The {} is unavailable right now. Try again in a moment.",
                    other.service()
                ))
            }
        }
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        match self {
            PageError::SignIn => StatusCode::SEE_OTHER,
            PageError::NotFound(_) => StatusCode::NOT_FOUND,
            PageError::Forbidden | PageError::Csrf => StatusCode::FORBIDDEN,
            PageError::BadRequest(_) => StatusCode::BAD_REQUEST,
            PageError::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
            PageError::Upstream(_) => StatusCode::BAD_GATEWAY,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let PageError::SignIn = self {
            return HttpResponse::SeeOther()
                .insert_header((header::LOCATION, "/login"))
                .cookie(expired_session_cookie())
                .finish();
        }
        let title = match self {
            PageError::NotFound(_) => "Not found",
            PageError::Forbidden => "Not allowed",
            PageError::Csrf => "Form expired",
            PageError::TooMany(_) => "Too many attempts",
            PageError::Upstream(_) => "A service is unavailable",
            _ => "Bad request",
        };
        let mut response = render_error(None, self.status_code(), title, &self.to_string());
        if let PageError::TooMany(seconds) = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(*seconds));
        }
        response
    }
}

fn expired_session_cookie() -> actix_web::cookie::Cookie<'static> {
    let mut gone = actix_web::cookie::Cookie::build(SESSION_COOKIE, "")
        .path("/")
        .http_only(true)
        .same_site(actix_web::cookie::SameSite::Strict)
        .finish();
    gone.make_removal();
    gone
}

fn render_error(
    session: Option<&Session>,
    status: StatusCode,
    title: &str,
    detail: &str,
) -> HttpResponse {
    let body = html! {
        h1 { (title) }
        p.error role="alert" { (detail) }
        p { a href="/links" { "Back to your links" } }
    };
    let mut response = render(session, title, Nav::None, body);
    *response.status_mut() = status;
    response
}

/// The browser's address, as the console's peer sees it.
pub fn client_ip(request: &HttpRequest) -> IpAddr {
    request
        .peer_addr()
        .map(|a| a.ip())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]))
}

/// The hidden CSRF field of a form.
pub fn csrf_field(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf); }
}

/// Which navigation entry a page belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Links,
    New,
    Import,
    Keys,
    System,
    None,
}

fn nav_link(current: Nav, this: Nav, href: &str, text: &str) -> Markup {
    html! {
        @if current == this {
            a href=(href) aria-current="page" { (text) }
        } @else {
            a href=(href) { (text) }
        }
    }
}

/// A whole page.
pub fn render(session: Option<&Session>, title: &str, nav: Nav, body: Markup) -> HttpResponse {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Links console" }
                link rel="stylesheet" href="/static/console.css";
                script src="/static/console.js" defer {}
            }
            body {
                header {
                    a.brand href="/" { "Links console" }
                    @if let Some(session) = session {
                        nav aria-label="Main" {
                            (nav_link(nav, Nav::Links, "/links", "Links"))
                            (nav_link(nav, Nav::New, "/links/new", "New link"))
                            (nav_link(nav, Nav::Import, "/links/import", "Import"))
                            @if session.data.role == Role::Admin {
                                (nav_link(nav, Nav::Keys, "/keys", "Keys"))
                            }
                            (nav_link(nav, Nav::System, "/system", "System"))
                        }
                        span.who { (if session.data.role == Role::Admin { "admin" } else { "author" }) }
                        form method="post" action="/logout" {
                            (csrf_field(session))
                            button.secondary type="submit" { "Log out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    };
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(markup.into_string())
}

/// A per-address limit of `per_minute` events.
pub fn per_minute_limit(per_minute: u32) -> DefaultKeyedRateLimiter<IpAddr> {
    let per_minute = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
    RateLimiter::keyed(Quota::per_minute(per_minute))
}

/// A query string of these pairs (empty values left out).
pub fn query_string<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        if !value.is_empty() {
            out.append_pair(name, value);
        }
    }
    out.finish()
}
