//! Each field of a link request: its rule (a `validator` check that
//! defers to the domain type) and its schema in the OpenAPI document.

use std::borrow::Cow;

use contracts::RedirectType;
use validator::ValidationError;

use crate::domain::{
    ALIAS_PATTERN, Alias, MAX_TAG_CHARS, MAX_TAGS, MAX_TITLE_CHARS, MAX_URL_LENGTH, Password,
    RESERVED_WORDS, TAG_PATTERN, Tags, TargetUrl, Title, URL_PATTERN,
};

/// `validator` wants its bounds as `u64`.
pub(super) const MAX_URL_CHARS: u64 = MAX_URL_LENGTH as u64;

pub(super) fn reason(
    field: &'static str,
    result: Result<impl Sized, String>,
) -> Result<(), ValidationError> {
    result
        .map(drop)
        .map_err(|message| ValidationError::new(field).with_message(Cow::Owned(message)))
}

pub(super) fn valid_url(url: &str) -> Result<(), ValidationError> {
    reason("url", TargetUrl::parse(url))
}

pub(super) fn valid_alias(alias: &str) -> Result<(), ValidationError> {
    reason("alias", Alias::parse(alias))
}

pub(super) fn valid_redirect_type(status: u16) -> Result<(), ValidationError> {
    reason("redirect_type", RedirectType::try_from(status))
}

pub(super) fn valid_title(title: &str) -> Result<(), ValidationError> {
    reason("title", Title::parse(title))
}

pub(super) fn valid_tags(tags: &[String]) -> Result<(), ValidationError> {
    reason("tags", Tags::parse(tags))
}

pub(super) fn valid_password(password: &str) -> Result<(), ValidationError> {
    reason("password", Password::parse(password))
}

/// A password as the document states it.
pub(super) fn password_schema() -> utoipa::openapi::Object {
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
pub(super) fn title_schema() -> utoipa::openapi::Object {
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
pub(super) fn tags_schema() -> utoipa::openapi::Array {
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
pub(super) fn url_schema() -> utoipa::openapi::Object {
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
pub(super) fn alias_schema() -> utoipa::openapi::Object {
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
pub(super) fn redirect_type_schema() -> utoipa::openapi::Object {
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
pub(super) fn redirect_type_schema_not_null() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    ObjectBuilder::new()
        .schema_type(SchemaType::new(Type::Integer))
        .enum_values(Some([301, 302, 307, 308].map(|s| serde_json::json!(s))))
        .description(Some("301, 302, 307 or 308."))
        .build()
}
