//! The HTTP API: links under `/api/v1/links`, redirects at `/{code}`.

use std::borrow::Cow;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::http::header;
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use contracts::RedirectType;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use uuid::Uuid;
use validator::{Validate, ValidationError, ValidationErrors};

use crate::clicks::{ClickContext, ClickRecorder};
use crate::configuration::Secret;
use crate::domain::{Alias, ExpiresAt, ShortCode, TargetUrl, MAX_URL_LENGTH};
use crate::problem::{ApiError, InvalidParam, ProblemBody};
use crate::service::{LinkChanges, LinkService, NewLink};
use crate::store::Link;

/// Largest accepted request body; a link request is a few hundred bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
const DEFAULT_PAGE_SIZE: u32 = 20;
const MAX_PAGE_SIZE: u32 = 100;
/// `validator` wants its bounds as `u64`.
const MAX_URL_CHARS: u64 = MAX_URL_LENGTH as u64;

/// Shared state of the handlers.
pub struct ApiState {
    pub service: LinkService,
    /// Base of `short_url`, without a trailing slash.
    pub public_url: String,
    pub api_key: Option<Secret>,
    pub create_limit: Option<CreateRateLimit>,
    pub clicks: ClickRecorder,
    pub country_header: Option<header::HeaderName>,
}

/// Link creations per client IP per minute.
pub struct CreateRateLimit {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    checks: AtomicU64,
}

impl CreateRateLimit {
    pub fn per_minute(rate: u32) -> Option<Self> {
        NonZeroU32::new(rate).map(|rate| Self {
            limiter: RateLimiter::keyed(Quota::per_minute(rate)),
            checks: AtomicU64::new(0),
        })
    }

    fn check(&self, ip: IpAddr) -> Result<(), ApiError> {
        // Forget idle addresses now and then, so memory stays bounded.
        if self.checks.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(&ip).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            ApiError::RateLimited {
                retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
            }
        })
    }
}

/// The OpenAPI document of this API, generated from the handlers and types
/// themselves so it cannot drift from them.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "URL shortener",
        version = "1.0.0",
        description = "Short links with redirects. Errors are RFC 7807 application/problem+json."
    ),
    paths(create_link, list_links, get_link, update_link, delete_link, redirect),
    components(schemas(LinkResponse, LinkPage, CreateLinkRequest, UpdateLinkRequest, ProblemBody, InvalidParam)),
    modifiers(&ApiKeySecurity),
    tags(
        (name = "links", description = "Create and manage links"),
        (name = "redirect", description = "Follow a short link")
    )
)]
pub struct ApiDoc;

/// Declares the optional `X-Api-Key` scheme the write endpoints accept.
struct ApiKeySecurity;

impl Modify for ApiKeySecurity {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Api-Key",
                "Required on writes when the service is configured with SHORTENER_API_KEY",
            ))),
        );
    }
}

/// The document as JSON, built once.
pub fn openapi_json() -> &'static str {
    static DOCUMENT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        ApiDoc::openapi()
            .to_pretty_json()
            .expect("the OpenAPI document serialises")
    });
    &DOCUMENT
}

async fn openapi_document() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(openapi_json())
}

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/api/v1/openapi.json", web::get().to(openapi_document))
        .service(
            web::resource("/api/v1/links")
                .route(web::post().to(create_link))
                .route(web::get().to(list_links)),
        )
        .service(
            web::resource("/api/v1/links/{code}")
                .route(web::get().to(get_link))
                .route(web::patch().to(update_link))
                .route(web::delete().to(delete_link)),
        );
}

/// The redirect route; registered last, so it never shadows the API.
pub fn redirect_route(config: &mut web::ServiceConfig) {
    config.route("/{code}", web::get().to(redirect));
}

/// A link as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Link)]
pub struct LinkResponse {
    pub id: Uuid,
    /// The short code: generated (base62) or the alias.
    #[schema(example = "aZ3kP9q")]
    pub code: String,
    #[schema(example = "https://sho.rt/aZ3kP9q")]
    pub short_url: String,
    /// The normalised target.
    #[schema(example = "https://example.com/docs")]
    pub url: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When the link stops redirecting; null when it never expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// 301, 302, 307 or 308.
    #[schema(example = 302)]
    pub redirect_type: u16,
    /// Redirects served, updated in batches (within about a second).
    pub click_count: u64,
}

impl LinkResponse {
    fn new(link: Link, public_url: &str) -> Self {
        Self {
            short_url: format!("{public_url}/{}", link.code),
            id: link.id,
            code: link.code,
            url: link.url,
            created_at: link.created_at,
            updated_at: link.updated_at,
            expires_at: link.expires_at,
            redirect_type: link.redirect_type.status(),
            click_count: link.click_count,
        }
    }
}

fn reason(field: &'static str, result: Result<impl Sized, String>) -> Result<(), ValidationError> {
    result
        .map(drop)
        .map_err(|message| ValidationError::new(field).with_message(Cow::Owned(message)))
}

fn valid_url(url: &str) -> Result<(), ValidationError> {
    reason("url", TargetUrl::parse(url))
}

fn valid_alias(alias: &str) -> Result<(), ValidationError> {
    reason("alias", Alias::parse(alias))
}

fn valid_redirect_type(status: u16) -> Result<(), ValidationError> {
    reason("redirect_type", RedirectType::try_from(status))
}

fn valid_expiry(at: &DateTime<Utc>) -> Result<(), ValidationError> {
    reason("expires_at", ExpiresAt::parse(*at, Utc::now()))
}

/// `POST /api/v1/links`.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CreateLink)]
struct CreateLinkRequest {
    /// Absolute http(s) URL, at most 2048 characters, no credentials.
    #[schema(example = "https://example.com/docs")]
    #[validate(length(max = MAX_URL_CHARS), custom(function = "valid_url"))]
    url: String,
    /// Custom code: 3-64 of `[A-Za-z0-9_-]`, not a reserved word.
    #[validate(custom(function = "valid_alias"))]
    alias: Option<String>,
    /// Must be in the future.
    #[validate(custom(function = "valid_expiry"))]
    expires_at: Option<DateTime<Utc>>,
    /// 301, 302 (default), 307 or 308.
    #[validate(custom(function = "valid_redirect_type"))]
    redirect_type: Option<u16>,
}

impl CreateLinkRequest {
    /// Every rule was checked by `validate`; this only builds the values.
    fn into_new_link(self) -> Result<NewLink, ApiError> {
        let now = Utc::now();
        Ok(NewLink {
            url: TargetUrl::parse(&self.url).map_err(|e| ApiError::invalid("url", e))?,
            alias: self
                .alias
                .as_deref()
                .map(Alias::parse)
                .transpose()
                .map_err(|e| ApiError::invalid("alias", e))?,
            expires_at: self
                .expires_at
                .map(|at| ExpiresAt::parse(at, now))
                .transpose()
                .map_err(|e| ApiError::invalid("expires_at", e))?,
            redirect_type: self
                .redirect_type
                .map(RedirectType::try_from)
                .transpose()
                .map_err(|e| ApiError::invalid("redirect_type", e))?
                .unwrap_or_default(),
        })
    }
}

/// `PATCH /api/v1/links/{code}`: only the fields present change; at least
/// one must be. `expires_at: null` removes the expiry.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = UpdateLink)]
struct UpdateLinkRequest {
    #[serde(default, deserialize_with = "contracts::present")]
    #[schema(value_type = Option<String>)]
    url: Option<Option<String>>,
    #[serde(default, deserialize_with = "contracts::present")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    expires_at: Option<Option<DateTime<Utc>>>,
    #[serde(default, deserialize_with = "contracts::present")]
    #[schema(value_type = Option<u16>)]
    redirect_type: Option<Option<u16>>,
}

impl UpdateLinkRequest {
    fn into_changes(self) -> Result<LinkChanges, ApiError> {
        let mut invalid = Vec::new();
        let mut changes = LinkChanges::default();
        match self.url {
            Some(Some(url)) => match TargetUrl::parse(&url) {
                Ok(url) => changes.url = Some(url),
                Err(e) => invalid.push(InvalidParam::new("url", e)),
            },
            Some(None) => invalid.push(InvalidParam::new("url", "must not be null")),
            None => {}
        }
        match self.expires_at {
            Some(Some(at)) => match ExpiresAt::parse(at, Utc::now()) {
                Ok(at) => changes.expires_at = Some(Some(at)),
                Err(e) => invalid.push(InvalidParam::new("expires_at", e)),
            },
            Some(None) => changes.expires_at = Some(None),
            None => {}
        }
        match self.redirect_type {
            Some(Some(status)) => match RedirectType::try_from(status) {
                Ok(t) => changes.redirect_type = Some(t),
                Err(e) => invalid.push(InvalidParam::new("redirect_type", e)),
            },
            Some(None) => invalid.push(InvalidParam::new("redirect_type", "must not be null")),
            None => {}
        }
        if !invalid.is_empty() {
            return Err(ApiError::InvalidBody(invalid));
        }
        if changes.url.is_none() && changes.expires_at.is_none() && changes.redirect_type.is_none()
        {
            return Err(ApiError::invalid(
                "body",
                "must change at least one of url, expires_at, redirect_type",
            ));
        }
        Ok(changes)
    }
}

fn validation_errors(errors: ValidationErrors) -> ApiError {
    let mut params: Vec<InvalidParam> = errors
        .field_errors()
        .into_iter()
        .flat_map(|(field, errors)| {
            errors.iter().map(move |e| {
                let reason = e
                    .message
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_else(|| match e.code.as_ref() {
                        "length" => format!("must be at most {MAX_URL_LENGTH} characters"),
                        other => format!("is invalid ({other})"),
                    });
                InvalidParam::new(field.to_string(), reason)
            })
        })
        .collect();
    params.sort_by(|a, b| a.name.cmp(&b.name));
    ApiError::InvalidBody(params)
}

/// The field a serde error is about: its path, or the name quoted in
/// "missing field `x`" / "unknown field `x`" errors, which are reported at
/// the enclosing object.
fn field_of(path: &str, message: &str) -> String {
    if path != "." && !path.is_empty() {
        return path.to_owned();
    }
    message
        .split('`')
        .nth(1)
        .filter(|_| message.starts_with("missing field") || message.starts_with("unknown field"))
        .unwrap_or("body")
        .to_owned()
}

/// Parses and validates a JSON request body.
fn json_body<T: DeserializeOwned + Validate>(
    request: &HttpRequest,
    body: &Bytes,
) -> Result<T, ApiError> {
    let is_json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<actix_web::mime::Mime>().ok())
        .is_some_and(|m| {
            use actix_web::mime;
            m.type_() == mime::APPLICATION
                && (m.subtype() == mime::JSON || m.suffix() == Some(mime::JSON))
        });
    if !is_json {
        return Err(ApiError::UnsupportedMediaType);
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let message = inner.to_string();
                let message = message
                    .split(" at line ")
                    .next()
                    .unwrap_or(&message)
                    .to_owned();
                ApiError::invalid(field_of(&path, &message), message)
            }
            _ => ApiError::MalformedJson(inner.to_string()),
        }
    })?;
    deserializer
        .end()
        .map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    value.validate().map_err(validation_errors)?;
    Ok(value)
}

fn require_api_key(state: &ApiState, request: &HttpRequest) -> Result<(), ApiError> {
    let Some(expected) = &state.api_key else {
        return Ok(());
    };
    let given = request
        .headers()
        .get("x-api-key")
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    // Constant time in the key's length, so timing does not leak a prefix.
    let expected = expected.expose().as_bytes();
    let same = given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

fn code_in_path(request: &HttpRequest) -> Result<ShortCode, ApiError> {
    let raw = request.match_info().get("code").unwrap_or_default();
    ShortCode::parse(raw).map_err(|_| ApiError::NotFound(raw.to_owned()))
}

#[utoipa::path(
    post,
    path = "/api/v1/links",
    tag = "links",
    request_body = CreateLinkRequest,
    responses(
        (status = 201, description = "Created", body = LinkResponse, headers(("location" = String, description = "The link's API URL"))),
        (status = 400, description = "Malformed JSON or query", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "X-Api-Key missing or wrong (when configured)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "The alias is taken", body = ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid; `field` names it", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "Too many creations from this address", body = ProblemBody, content_type = "application/problem+json", headers(("retry-after" = u64))),
    ),
    security((), ("api_key" = []))
)]
async fn create_link(
    state: web::Data<ApiState>,
    request: HttpRequest,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    require_api_key(&state, &request)?;
    if let (Some(limit), Some(peer)) = (&state.create_limit, request.peer_addr()) {
        limit.check(peer.ip())?;
    }
    let new = json_body::<CreateLinkRequest>(&request, &body)?.into_new_link()?;
    let link = state.service.create(new).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/links/{}", link.code)))
        .json(LinkResponse::new(link, &state.public_url)))
}

#[utoipa::path(
    get,
    path = "/api/v1/links/{code}",
    tag = "links",
    params(("code" = String, Path, description = "The short code")),
    responses(
        (status = 200, description = "The link", body = LinkResponse),
        (status = 404, description = "Unknown code", body = ProblemBody, content_type = "application/problem+json"),
        (status = 410, description = "Deleted", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
async fn get_link(
    state: web::Data<ApiState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let code = code_in_path(&request)?;
    let link = state.service.get(code.as_str()).await?;
    Ok(HttpResponse::Ok().json(LinkResponse::new(link, &state.public_url)))
}

/// One page of links, newest first.
#[derive(Serialize, ToSchema)]
struct LinkPage {
    items: Vec<LinkResponse>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    next_cursor: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/links",
    tag = "links",
    params(
        ("limit" = Option<u32>, Query, description = "Page size, 1-100 (default 20)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "A page of live links, newest first", body = LinkPage),
        (status = 400, description = "Invalid parameter; `field` names it", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
async fn list_links(
    state: web::Data<ApiState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let mut limit = DEFAULT_PAGE_SIZE;
    let mut after = None;
    let mut invalid = Vec::new();
    for (name, value) in url::form_urlencoded::parse(request.query_string().as_bytes()) {
        match name.as_ref() {
            "limit" => match value.parse::<u32>() {
                Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => limit = n,
                _ => invalid.push(InvalidParam::new(
                    "limit",
                    format!("must be an integer from 1 to {MAX_PAGE_SIZE}"),
                )),
            },
            "cursor" => match Uuid::parse_str(&value) {
                Ok(id) => after = Some(id),
                Err(_) => invalid.push(InvalidParam::new(
                    "cursor",
                    "is not a cursor this API returned",
                )),
            },
            other => invalid.push(InvalidParam::new(
                other,
                "is not a known parameter (limit, cursor)",
            )),
        }
    }
    if !invalid.is_empty() {
        return Err(ApiError::InvalidQuery(invalid));
    }
    // One more than asked for tells whether another page follows.
    let mut links = state.service.list(after, limit + 1).await?;
    let more = links.len() > limit as usize;
    links.truncate(limit as usize);
    let next_cursor = links.last().filter(|_| more).map(|l| l.id.to_string());
    let items = links
        .into_iter()
        .map(|l| LinkResponse::new(l, &state.public_url))
        .collect();
    Ok(HttpResponse::Ok().json(LinkPage { items, next_cursor }))
}

#[utoipa::path(
    patch,
    path = "/api/v1/links/{code}",
    tag = "links",
    params(("code" = String, Path, description = "The short code")),
    request_body = UpdateLinkRequest,
    responses(
        (status = 200, description = "The updated link", body = LinkResponse),
        (status = 400, description = "Malformed JSON or query", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "X-Api-Key missing or wrong (when configured)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "Unknown code", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "Changed concurrently too often; retry", body = ProblemBody, content_type = "application/problem+json"),
        (status = 410, description = "Deleted", body = ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid; `field` names it", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security((), ("api_key" = []))
)]
async fn update_link(
    state: web::Data<ApiState>,
    request: HttpRequest,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    require_api_key(&state, &request)?;
    let code = code_in_path(&request)?;
    let changes = json_body::<UpdateLinkRequest>(&request, &body)?.into_changes()?;
    let link = state.service.update(code.as_str(), &changes).await?;
    Ok(HttpResponse::Ok().json(LinkResponse::new(link, &state.public_url)))
}

#[utoipa::path(
    delete,
    path = "/api/v1/links/{code}",
    tag = "links",
    params(("code" = String, Path, description = "The short code")),
    responses(
        (status = 204, description = "Deleted; the code answers 410 from now on"),
        (status = 401, description = "X-Api-Key missing or wrong (when configured)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "Unknown code", body = ProblemBody, content_type = "application/problem+json"),
        (status = 410, description = "Already deleted", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security((), ("api_key" = []))
)]
async fn delete_link(
    state: web::Data<ApiState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    require_api_key(&state, &request)?;
    let code = code_in_path(&request)?;
    state.service.delete(code.as_str()).await?;
    Ok(HttpResponse::NoContent().finish())
}

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
    )
)]
async fn redirect(
    state: web::Data<ApiState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let code = code_in_path(&request)?;
    let link = state.service.resolve(code.as_str()).await?;
    let headers = request.headers();
    let text = |name: &header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let context = ClickContext {
        ip: request.peer_addr().map(|a| a.ip()),
        user_agent: text(&header::USER_AGENT),
        referrer: text(&header::REFERER),
        country: state.country_header.as_ref().and_then(text),
    };
    state.clicks.record(&link, context).await;
    let status = actix_web::http::StatusCode::from_u16(link.redirect_type.status())
        .unwrap_or(actix_web::http::StatusCode::FOUND);
    // Permanent redirects may be cached briefly (so changes still propagate);
    // temporary ones never, so every click reaches us and is counted.
    let cache = match link.redirect_type {
        RedirectType::MovedPermanently | RedirectType::PermanentRedirect => "public, max-age=300",
        RedirectType::Found | RedirectType::TemporaryRedirect => "private, no-store",
    };
    Ok(HttpResponse::build(status)
        .insert_header((
            header::LOCATION,
            merge_query(&link.url, request.query_string()),
        ))
        .insert_header((header::CACHE_CONTROL, cache))
        .finish())
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

    #[test]
    fn serde_errors_are_attributed_to_their_field() {
        assert_eq!(
            field_of("url", "invalid type: integer `5`, expected a string"),
            "url"
        );
        assert_eq!(field_of(".", "missing field `url`"), "url");
        assert_eq!(
            field_of(".", "unknown field `target`, expected one of `url`"),
            "target"
        );
        assert_eq!(
            field_of(".", "invalid type: sequence, expected struct"),
            "body"
        );
    }
}
