//! `/api/v1/links`: create, list, read, change and delete links.

use std::borrow::Cow;

use actix_web::http::header;
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use contracts::RedirectType;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use validator::{Validate, ValidationError};

use super::ApiState;
use super::extractors::{caller, client, code_in_path, json_body, json_value};
use crate::domain::{
    ALIAS_PATTERN, Alias, ExpiresAt, MAX_TAG_CHARS, MAX_TAGS, MAX_TITLE_CHARS, MAX_URL_LENGTH,
    Password, RESERVED_WORDS, TAG_PATTERN, Tag, Tags, TargetUrl, Title, URL_PATTERN,
};
use crate::problem::{ApiError, InvalidParam, ProblemBody};
use crate::service::{LinkChanges, NewLink};
use crate::store::{Link, LinkCursor, LinkOrder, LinkQuery};

const DEFAULT_PAGE_SIZE: u32 = 20;
const MAX_PAGE_SIZE: u32 = 100;
/// `validator` wants its bounds as `u64`.
const MAX_URL_CHARS: u64 = MAX_URL_LENGTH as u64;

/// A link as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Link)]
pub(super) struct LinkResponse {
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
    /// Redirects served, updated in batches (every 5 s).
    pub click_count: u64,
    /// Whether the visitor's query string is merged into the target.
    pub forward_query: bool,
    /// What the author calls the link; null when untitled.
    #[schema(example = "Q3 launch docs")]
    pub title: Option<String>,
    /// Labels to find the link by.
    #[schema(example = json!(["docs", "q3-launch"]))]
    pub tags: Vec<String>,
    /// Whether the link has a password (it is never shown).
    pub password_protected: bool,
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
            forward_query: link.forward_query,
            password_protected: link.password_hash.is_some(),
            title: link.title,
            tags: link.tags,
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

fn valid_title(title: &str) -> Result<(), ValidationError> {
    reason("title", Title::parse(title))
}

fn valid_tags(tags: &[String]) -> Result<(), ValidationError> {
    reason("tags", Tags::parse(tags))
}

fn valid_password(password: &str) -> Result<(), ValidationError> {
    reason("password", Password::parse(password))
}

/// A password as the document states it.
fn password_schema() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .min_length(Some(crate::domain::password::MIN_PASSWORD_CHARS))
        .max_length(Some(crate::domain::password::MAX_PASSWORD_CHARS))
        .pattern(Some("^[^\\u0000-\\u001F\\u007F-\\u009F]*$"))
        .description(Some(
            "A password visitors must give before the redirect: 4-128 characters, no control \
             characters. Stored as an argon2id hash and never returned; null removes it.",
        ))
        .build()
}

/// A title as the document states it (no control characters: the `Cc`
/// category, which is what the service refuses).
fn title_schema() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .max_length(Some(MAX_TITLE_CHARS))
        .pattern(Some("^[^\\u0000-\\u001F\\u007F-\\u009F]*$"))
        .description(Some(format!(
            "What the author calls the link: at most {MAX_TITLE_CHARS} characters, \
             no control characters; trimmed, and blank or null means untitled."
        )))
        .examples(Some(serde_json::json!("Q3 launch docs")))
        .build()
}

/// Tags as the document states them.
fn tags_schema() -> utoipa::openapi::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaType, Type};
    ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(
            ObjectBuilder::new()
                .schema_type(SchemaType::new(Type::String))
                .pattern(Some(TAG_PATTERN))
                .max_length(Some(MAX_TAG_CHARS)),
        )
        .max_items(Some(MAX_TAGS))
        .description(Some(format!(
            "At most {MAX_TAGS} tags, each 1-{MAX_TAG_CHARS} of lower-case letters, digits \
             and '-'; a repeated tag is kept once. Null or [] means none."
        )))
        .build()
}

/// A target as the document states it: exactly the pattern the service
/// enforces, so a schema-valid target is an accepted one.
fn url_schema() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(MAX_URL_LENGTH))
        .pattern(Some(URL_PATTERN))
        .description(Some(
            "An absolute http(s) URL, as a browser's address bar shows it. The host is an \
             IPv4 address or a name: ASCII letters, digits, hyphens, underscores and dots \
             (at most 254 characters), or a name that also has Latin, Greek, Cyrillic, \
             Chinese, Japanese or Korean letters, at most 20 characters before its last \
             dot and 20 after it (give a host in another script in punycode; an xn-- \
             label must be valid punycode). Path, query and fragment may hold any \
             character but a control character. No user name or password; spaces around \
             the URL are dropped. Stored normalised as the WHATWG URL Standard serialises \
             it (scheme and host in lower case, the host in punycode, default port and \
             dot segments removed, non-ASCII characters percent-encoded as UTF-8, spaces \
             as %20, ' in a query as %27), then as an RFC 3986 URI: [ ] | { } ^ ` \\, a \
             second # and a % that starts no escape percent-encoded too. At most 2048 \
             characters as sent and once normalised.",
        ))
        .examples(Some(serde_json::json!("https://example.com/docs")))
        .build()
}

/// A custom code as the document states it: the characters and length as a
/// pattern, the reserved words (any case) as a `not`.
fn alias_schema() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .pattern(Some(ALIAS_PATTERN))
        .description(Some(format!(
            "Custom code: 3-64 of `[A-Za-z0-9_-]`, not a reserved word ({}, in any case).",
            RESERVED_WORDS.join(", ")
        )))
        .build()
}

/// The redirect statuses a link may use, as the document states them (an
/// enum, so a client generator and a contract test know 303 is refused).
fn redirect_type_schema() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Integer, Type::Null]))
        .enum_values(Some([
            serde_json::json!(301),
            serde_json::json!(302),
            serde_json::json!(307),
            serde_json::json!(308),
            serde_json::Value::Null,
        ]))
        .description(Some("301, 302 (default), 307 or 308."))
        .build()
}

/// [`redirect_type_schema`] where null is not accepted (a change).
fn redirect_type_schema_not_null() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    ObjectBuilder::new()
        .schema_type(SchemaType::new(Type::Integer))
        .enum_values(Some([301, 302, 307, 308].map(|s| serde_json::json!(s))))
        .description(Some("301, 302, 307 or 308."))
        .build()
}

/// `POST /api/v1/links`.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CreateLink)]
pub(super) struct CreateLinkRequest {
    #[schema(schema_with = url_schema)]
    #[validate(length(max = MAX_URL_CHARS), custom(function = "valid_url"))]
    url: String,
    #[schema(schema_with = alias_schema)]
    #[validate(custom(function = "valid_alias"))]
    alias: Option<String>,
    /// When the link stops redirecting (410 after); an instant already past
    /// expires it at once.
    expires_at: Option<DateTime<Utc>>,
    /// 301, 302 (default), 307 or 308.
    #[schema(schema_with = redirect_type_schema)]
    #[validate(custom(function = "valid_redirect_type"))]
    redirect_type: Option<u16>,
    /// Whether the visitor's query string is merged into the target
    /// (default true).
    forward_query: Option<bool>,
    #[schema(schema_with = title_schema)]
    #[validate(custom(function = "valid_title"))]
    title: Option<String>,
    #[schema(schema_with = tags_schema)]
    #[validate(custom(function = "valid_tags"))]
    tags: Option<Vec<String>>,
    #[schema(schema_with = password_schema)]
    #[validate(custom(function = "valid_password"))]
    password: Option<String>,
}

impl CreateLinkRequest {
    /// Every rule was checked by `validate`; this only builds the values.
    fn into_new_link(self) -> Result<NewLink, ApiError> {
        Ok(NewLink {
            url: TargetUrl::parse(&self.url).map_err(|e| ApiError::invalid("url", e))?,
            alias: self
                .alias
                .as_deref()
                .map(Alias::parse)
                .transpose()
                .map_err(|e| ApiError::invalid("alias", e))?,
            expires_at: self.expires_at.map(ExpiresAt::new),
            redirect_type: self
                .redirect_type
                .map(RedirectType::try_from)
                .transpose()
                .map_err(|e| ApiError::invalid("redirect_type", e))?
                .unwrap_or_default(),
            forward_query: self.forward_query.unwrap_or(true),
            title: self
                .title
                .as_deref()
                .map(Title::parse)
                .transpose()
                .map_err(|e| ApiError::invalid("title", e))?
                .flatten(),
            tags: Tags::parse(self.tags.as_deref().unwrap_or_default())
                .map_err(|e| ApiError::invalid("tags", e))?,
            password: self
                .password
                .as_deref()
                .map(Password::parse)
                .transpose()
                .map_err(|e| ApiError::invalid("password", e))?,
        })
    }
}

/// `PATCH /api/v1/links/{code}`: only the fields present change; at least
/// one must be. `expires_at: null` removes the expiry.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = UpdateLink)]
pub(super) struct UpdateLinkRequest {
    /// The new target (not null).
    #[serde(default, deserialize_with = "contracts::present")]
    #[schema(schema_with = url_schema, required = false)]
    url: Option<Option<String>>,
    /// The new expiry; null removes it.
    #[serde(default, deserialize_with = "contracts::present")]
    #[schema(value_type = Option<DateTime<Utc>>, required = false)]
    expires_at: Option<Option<DateTime<Utc>>>,
    /// The new status (not null).
    #[serde(default, deserialize_with = "contracts::present")]
    #[schema(schema_with = redirect_type_schema_not_null, required = false)]
    redirect_type: Option<Option<u16>>,
    /// Whether the visitor's query string is merged into the target (not null).
    #[serde(default, deserialize_with = "contracts::present")]
    #[schema(value_type = bool, required = false)]
    forward_query: Option<Option<bool>>,
    /// The new title; null or blank removes it.
    #[serde(default, deserialize_with = "contracts::present")]
    #[schema(schema_with = title_schema, required = false)]
    title: Option<Option<String>>,
    /// The new tags, replacing the old; null or [] removes them all.
    #[serde(default, deserialize_with = "contracts::present")]
    #[schema(schema_with = tags_schema, required = false)]
    tags: Option<Option<Vec<String>>>,
    /// A new password; null removes it.
    #[serde(default, deserialize_with = "contracts::present")]
    #[schema(schema_with = password_schema, required = false)]
    password: Option<Option<String>>,
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
        changes.expires_at = self.expires_at.map(|at| at.map(ExpiresAt::new));
        match self.redirect_type {
            Some(Some(status)) => match RedirectType::try_from(status) {
                Ok(t) => changes.redirect_type = Some(t),
                Err(e) => invalid.push(InvalidParam::new("redirect_type", e)),
            },
            Some(None) => invalid.push(InvalidParam::new("redirect_type", "must not be null")),
            None => {}
        }
        match self.forward_query {
            Some(Some(forward)) => changes.forward_query = Some(forward),
            Some(None) => invalid.push(InvalidParam::new("forward_query", "must not be null")),
            None => {}
        }
        if let Some(title) = self.title {
            match title.as_deref().map(Title::parse).transpose() {
                Ok(title) => changes.title = Some(title.flatten()),
                Err(e) => invalid.push(InvalidParam::new("title", e)),
            }
        }
        if let Some(tags) = self.tags {
            match Tags::parse(tags.as_deref().unwrap_or_default()) {
                Ok(tags) => changes.tags = Some(tags),
                Err(e) => invalid.push(InvalidParam::new("tags", e)),
            }
        }
        if let Some(password) = self.password {
            match password.as_deref().map(Password::parse).transpose() {
                Ok(password) => changes.password = Some(password),
                Err(e) => invalid.push(InvalidParam::new("password", e)),
            }
        }
        if !invalid.is_empty() {
            return Err(ApiError::InvalidBody(invalid));
        }
        if changes.url.is_none()
            && changes.expires_at.is_none()
            && changes.redirect_type.is_none()
            && changes.forward_query.is_none()
            && changes.title.is_none()
            && changes.tags.is_none()
            && changes.password.is_none()
        {
            return Err(ApiError::invalid(
                "body",
                "must change at least one of url, expires_at, redirect_type, forward_query, \
                 title, tags, password",
            ));
        }
        Ok(changes)
    }
}

/// The caller of a create, within the per-address creation limit.
async fn creator(state: &ApiState, request: &HttpRequest) -> Result<crate::keys::Caller, ApiError> {
    let caller = caller(state, request).await?;
    if let Some(limit) = &state.create_limit {
        limit.check(client(state, request).0)?;
    }
    Ok(caller)
}

#[utoipa::path(
    post,
    path = "/api/v1/links",
    tag = "links",
    request_body = CreateLinkRequest,
    responses(
        (status = 201, description = "Created", body = LinkResponse, headers(("location" = String, description = "The link's API URL"))),
        (status = 400, description = "Malformed JSON or query", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "The alias is taken", body = ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid; `field` names it", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "Too many creations, or failed attempts, from this address", body = ProblemBody, content_type = "application/problem+json", headers(("retry-after" = u64))),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(super) async fn create_link(
    state: web::Data<ApiState>,
    request: HttpRequest,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    let caller = creator(&state, &request).await?;
    let new = json_body::<CreateLinkRequest>(&request, &body)?.into_new_link()?;
    let link = state.service.create(new, caller.key_id).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/links/{}", link.code)))
        .json(LinkResponse::new(link, &state.public_url)))
}

/// Most links one bulk create takes.
pub const MAX_BULK_ITEMS: usize = 1000;
/// Largest bulk body: 1,000 links with long targets.
pub const MAX_BULK_BODY_BYTES: usize = 4 * 1024 * 1024;

/// One item's answer in a bulk create: 201 with the link, or the problem
/// (409 for a taken alias, 422 for an invalid field) of that item alone.
#[derive(Serialize, ToSchema)]
#[schema(as = BulkItem)]
pub(super) struct BulkItem {
    /// 201, 409, 422, or 503 when the store failed for this item's chunk.
    #[schema(example = 201)]
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    link: Option<LinkResponse>,
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<ProblemBody>,
}

/// The body of a bulk create as the document states it: an array of 1 to
/// 1,000 items. Each should be a `CreateLink`, but is read on its own: an
/// item that is not one (not even an object) is refused in its own answer
/// (422), never the request, so the document accepts any item.
pub(super) struct BulkCreateBody;

impl utoipa::PartialSchema for BulkCreateBody {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaType};
        ArrayBuilder::new()
            .items(ObjectBuilder::new().schema_type(SchemaType::AnyValue))
            .min_items(Some(1))
            .max_items(Some(MAX_BULK_ITEMS))
            .description(Some(
                "1 to 1,000 links, each as POST /api/v1/links takes it (a CreateLink). Each \
                 item is checked on its own: one that is not a valid CreateLink gets its own \
                 422 in the answer, and the others are still created.",
            ))
            .into()
    }
}

impl ToSchema for BulkCreateBody {}

/// The answer to a bulk create: one item per request item, in order.
#[derive(Serialize, ToSchema)]
#[schema(as = BulkResult)]
pub(super) struct BulkResult {
    items: Vec<BulkItem>,
}

#[utoipa::path(
    post,
    path = "/api/v1/links/bulk",
    tag = "links",
    request_body(content = BulkCreateBody, description = "1 to 1,000 links, each as POST /api/v1/links takes it"),
    responses(
        (status = 200, description = "One result per item, in order: 201 with the link, or 409/422 with the item's problem", body = BulkResult),
        (status = 400, description = "Malformed JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "Body too large (4 MiB at most)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "The body is not an array of 1 to 1,000 items", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "Too many creations, or failed attempts, from this address", body = ProblemBody, content_type = "application/problem+json", headers(("retry-after" = u64))),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(super) async fn bulk_create(
    state: web::Data<ApiState>,
    request: HttpRequest,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    // A bulk request counts as one creation against the per-address limit:
    // it is how an importer brings its links, with a key.
    let caller = creator(&state, &request).await?;
    let items = json_body::<BulkBody>(&request, &body)?.0;
    if items.is_empty() || items.len() > MAX_BULK_ITEMS {
        return Err(ApiError::invalid(
            "body",
            format!("must be an array of 1 to {MAX_BULK_ITEMS} links"),
        ));
    }
    let parsed: Vec<Result<NewLink, ApiError>> = items
        .into_iter()
        .map(|item| {
            json_value::<CreateLinkRequest>(item).and_then(CreateLinkRequest::into_new_link)
        })
        .collect();
    let valid: Vec<NewLink> = parsed
        .iter()
        .filter_map(|p| p.as_ref().ok().cloned())
        .collect();
    let mut created = state
        .service
        .create_many(&valid, caller.key_id)
        .await
        .into_iter();
    let items = parsed
        .into_iter()
        .map(|item| {
            let outcome = item.and_then(|_| {
                created
                    .next()
                    .unwrap_or_else(|| {
                        Err(crate::service::LinkError::Internal(anyhow::anyhow!(
                            "a result is missing"
                        )))
                    })
                    .map_err(ApiError::from)
            });
            match outcome {
                Ok(link) => BulkItem {
                    status: 201,
                    link: Some(LinkResponse::new(link, &state.public_url)),
                    problem: None,
                },
                Err(error) => {
                    let problem = error.problem();
                    BulkItem {
                        status: problem.status(),
                        link: None,
                        problem: Some(problem),
                    }
                }
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(BulkResult { items }))
}

/// A bulk body: an array of items, each read on its own.
#[derive(Deserialize)]
struct BulkBody(Vec<serde_json::Value>);

impl Validate for BulkBody {
    fn validate(&self) -> Result<(), validator::ValidationErrors> {
        Ok(())
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/links/{code}",
    tag = "links",
    params(("code" = String, Path, description = "The short code")),
    responses(
        (status = 200, description = "The link", body = LinkResponse),
        (status = 401, description = "No valid API key", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed attempts from this address", body = ProblemBody, content_type = "application/problem+json", headers(("retry-after" = u64))),
        (status = 404, description = "Unknown code, or another author's link", body = ProblemBody, content_type = "application/problem+json"),
        (status = 410, description = "Deleted", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(super) async fn get_link(
    state: web::Data<ApiState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let caller = caller(&state, &request).await?;
    let code = code_in_path(&request)?;
    let link = state.service.get(code.as_str(), caller.scope()).await?;
    Ok(HttpResponse::Ok().json(LinkResponse::new(link, &state.public_url)))
}

/// One page of links, newest first.
#[derive(Serialize, ToSchema)]
pub(super) struct LinkPage {
    items: Vec<LinkResponse>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    next_cursor: Option<String>,
}

/// Longest search text, in characters.
const MAX_SEARCH_CHARS: usize = 200;

/// Where a page ended, as `next_cursor` shows it: `<clicks>~<id>`. Both
/// orders read the same form, so a cursor is never refused for the order
/// it is used with. (A bare id, the form before the order by clicks, is
/// still read in the order by creation.)
fn format_cursor(link: &Link) -> String {
    format!("{}~{}", link.click_count, link.id)
}

fn parse_cursor(raw: &str, order: LinkOrder) -> Result<LinkCursor, &'static str> {
    let (clicks, id) = match raw.split_once('~') {
        Some((clicks, id)) => (
            Some(clicks.parse::<u64>().ok().filter(|&n| n <= i64::MAX as u64)),
            id,
        ),
        None => (None, raw),
    };
    let id = Uuid::parse_str(id).map_err(|_| "is not a cursor this API returned")?;
    match (clicks, order) {
        (Some(None), _) => Err("is not a cursor this API returned"),
        (Some(Some(clicks)), _) => Ok(LinkCursor { id, clicks }),
        (None, LinkOrder::Newest) => Ok(LinkCursor { id, clicks: 0 }),
        (None, LinkOrder::MostClicked) => {
            Err("is a cursor of the order by creation; start the order by clicks without one")
        }
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/links",
    tag = "links",
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size, 1-100 (default 20)"),
        ("cursor" = Option<String>, Query, pattern = r"^(0|[1-9][0-9]{0,17})~[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$", description = "`next_cursor` of the previous page (same q, tag and sort)"),
        ("q" = Option<String>, Query, max_length = 200, description = "Only links whose code, target or title contains this text, ignoring case"),
        ("tag" = Option<String>, Query, pattern = "^[a-z0-9-]{1,32}$", description = "Only links with this tag"),
        ("ids" = Option<String>, Query, pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(,[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}){0,99}$", description = "Only these links (1 to 100 ids, comma-separated): which of them are live and yours"),
        ("sort" = Option<String>, Query, pattern = "^(created|clicks)$", description = "`created` (newest first, the default) or `clicks` (most redirects first)"),
    ),
    responses(
        (status = 200, description = "A page of live links (an author's own only)", body = LinkPage),
        (status = 400, description = "Invalid parameter; `field` names it", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed attempts from this address", body = ProblemBody, content_type = "application/problem+json", headers(("retry-after" = u64))),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(super) async fn list_links(
    state: web::Data<ApiState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let caller = caller(&state, &request).await?;
    let mut query = LinkQuery {
        limit: DEFAULT_PAGE_SIZE,
        ..LinkQuery::default()
    };
    let mut cursor = None;
    let mut invalid = Vec::new();
    for (name, value) in url::form_urlencoded::parse(request.query_string().as_bytes()) {
        match name.as_ref() {
            "limit" => match value.parse::<u32>() {
                Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => query.limit = n,
                _ => invalid.push(InvalidParam::new(
                    "limit",
                    format!("must be an integer from 1 to {MAX_PAGE_SIZE}"),
                )),
            },
            "cursor" => cursor = Some(value.into_owned()),
            "q" if value.chars().count() > MAX_SEARCH_CHARS => invalid.push(InvalidParam::new(
                "q",
                format!("must be at most {MAX_SEARCH_CHARS} characters"),
            )),
            // Empty means no filter, as a search box sends it.
            "q" => query.text = Some(value.to_ascii_lowercase()).filter(|q| !q.is_empty()),
            "tag" => match Tag::parse(&value) {
                Ok(tag) => query.tag = Some(tag.as_str().to_owned()),
                Err(e) => invalid.push(InvalidParam::new("tag", e)),
            },
            "ids" => {
                let ids: Result<Vec<Uuid>, _> = value
                    .split(',')
                    .map(|id| Uuid::parse_str(id.trim()))
                    .collect();
                match ids {
                    Ok(ids) if (1..=MAX_PAGE_SIZE as usize).contains(&ids.len()) => {
                        query.ids = Some(ids)
                    }
                    _ => invalid.push(InvalidParam::new(
                        "ids",
                        format!("must be 1 to {MAX_PAGE_SIZE} comma-separated link ids"),
                    )),
                }
            }
            "sort" => match value.as_ref() {
                "created" => query.order = LinkOrder::Newest,
                "clicks" => query.order = LinkOrder::MostClicked,
                _ => invalid.push(InvalidParam::new("sort", "must be created or clicks")),
            },
            other => invalid.push(InvalidParam::new(
                other,
                "is not a known parameter (limit, cursor, q, tag, ids, sort)",
            )),
        }
    }
    if let Some(raw) = cursor {
        match parse_cursor(&raw, query.order) {
            Ok(after) => query.after = Some(after),
            Err(e) => invalid.push(InvalidParam::new("cursor", e)),
        }
    }
    if !invalid.is_empty() {
        return Err(ApiError::InvalidQuery(invalid));
    }
    let limit = query.limit as usize;
    // One more than asked for tells whether another page follows.
    query.limit += 1;
    let mut links = state.service.list(query, caller.scope()).await?;
    let more = links.len() > limit;
    links.truncate(limit);
    let next_cursor = links.last().filter(|_| more).map(format_cursor);
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
        (status = 401, description = "No valid API key", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "Unknown code, or another author's link", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "Changed concurrently too often; retry", body = ProblemBody, content_type = "application/problem+json"),
        (status = 410, description = "Deleted", body = ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid; `field` names it", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed attempts from this address", body = ProblemBody, content_type = "application/problem+json", headers(("retry-after" = u64))),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(super) async fn update_link(
    state: web::Data<ApiState>,
    request: HttpRequest,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    let caller = caller(&state, &request).await?;
    let code = code_in_path(&request)?;
    let changes = json_body::<UpdateLinkRequest>(&request, &body)?.into_changes()?;
    let link = state
        .service
        .update(code.as_str(), &changes, caller.scope())
        .await?;
    Ok(HttpResponse::Ok().json(LinkResponse::new(link, &state.public_url)))
}

#[utoipa::path(
    delete,
    path = "/api/v1/links/{code}",
    tag = "links",
    params(("code" = String, Path, description = "The short code")),
    responses(
        (status = 204, description = "Deleted; the code answers 410 from now on"),
        (status = 401, description = "No valid API key", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "Unknown code, or another author's link", body = ProblemBody, content_type = "application/problem+json"),
        (status = 410, description = "Already deleted", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed attempts from this address", body = ProblemBody, content_type = "application/problem+json", headers(("retry-after" = u64))),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(super) async fn delete_link(
    state: web::Data<ApiState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let caller = caller(&state, &request).await?;
    let code = code_in_path(&request)?;
    state.service.delete(code.as_str(), caller.scope()).await?;
    Ok(HttpResponse::NoContent().finish())
}
