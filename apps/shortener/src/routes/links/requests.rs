//! The bodies of a create and a change. Each field is a domain value that
//! reads itself (and states its rule in the OpenAPI document), so a body
//! that deserialises holds only valid values; what is left here are the
//! rules of the request as a whole.

use chrono::{DateTime, Utc};
use contracts::RedirectType;
use serde::Deserialize;
use utoipa::ToSchema;
use validator::{Validate, ValidationError};

use crate::domain::{Alias, ExpiresAt, GivenTitle, Password, Tags, TargetUrl};
use crate::problem::{ApiError, InvalidParam};
use crate::service::{LinkChanges, NewLink};

/// `POST /api/v1/links`.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CreateLink)]
pub(in crate::routes) struct CreateLinkRequest {
    url: TargetUrl,
    alias: Option<Alias>,
    /// When the link stops redirecting (410 after); an instant already past
    /// expires it at once.
    expires_at: Option<DateTime<Utc>>,
    /// 301, 302 (default), 307 or 308.
    #[schema(schema_with = redirect_type_schema)]
    redirect_type: Option<RedirectType>,
    /// Whether the visitor's query string is merged into the target
    /// (default true).
    forward_query: Option<bool>,
    title: Option<GivenTitle>,
    tags: Option<Tags>,
    password: Option<Password>,
}

impl From<CreateLinkRequest> for NewLink {
    fn from(request: CreateLinkRequest) -> Self {
        NewLink {
            url: request.url,
            alias: request.alias,
            expires_at: request.expires_at.map(ExpiresAt::new),
            redirect_type: request.redirect_type.unwrap_or_default(),
            forward_query: request.forward_query.unwrap_or(true),
            title: request.title.and_then(|t| t.0),
            tags: request.tags.unwrap_or_default(),
            password: request.password,
        }
    }
}

/// `PATCH /api/v1/links/{code}`: only the fields present change; at least
/// one must be. `expires_at: null` removes the expiry.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[validate(schema(function = "changes_something"))]
#[schema(as = UpdateLink)]
pub(in crate::routes) struct UpdateLinkRequest {
    /// The new target (not null).
    #[serde(default, deserialize_with = "contracts::present")]
    #[schema(value_type = TargetUrl, required = false)]
    url: Option<Option<TargetUrl>>,
    /// The new expiry; null removes it.
    #[serde(default, deserialize_with = "contracts::present")]
    #[schema(value_type = Option<DateTime<Utc>>, required = false)]
    expires_at: Option<Option<DateTime<Utc>>>,
    /// The new status (not null).
    #[serde(default, deserialize_with = "contracts::present")]
    #[schema(schema_with = redirect_type_schema_not_null, required = false)]
    redirect_type: Option<Option<RedirectType>>,
    /// Whether the visitor's query string is merged into the target (not null).
    #[serde(default, deserialize_with = "contracts::present")]
    #[schema(value_type = bool, required = false)]
    forward_query: Option<Option<bool>>,
    /// The new title; null or blank removes it.
    #[serde(default, deserialize_with = "contracts::present")]
    #[schema(value_type = Option<GivenTitle>, required = false)]
    title: Option<Option<GivenTitle>>,
    /// The new tags, replacing the old; null or [] removes them all.
    #[serde(default, deserialize_with = "contracts::present")]
    #[schema(value_type = Option<Tags>, required = false)]
    tags: Option<Option<Tags>>,
    /// A new password; null removes it.
    #[serde(default, deserialize_with = "contracts::present")]
    #[schema(value_type = Option<Password>, required = false)]
    password: Option<Option<Password>>,
}

/// A change must change something.
fn changes_something(request: &UpdateLinkRequest) -> Result<(), ValidationError> {
    let nothing = request.url.is_none()
        && request.expires_at.is_none()
        && request.redirect_type.is_none()
        && request.forward_query.is_none()
        && request.title.is_none()
        && request.tags.is_none()
        && request.password.is_none();
    match nothing {
        false => Ok(()),
        true => Err(ValidationError::new("empty").with_message(
            "must change at least one of url, expires_at, redirect_type, forward_query, \
             title, tags, password"
                .into(),
        )),
    }
}

/// A field that may be left out but, when given, not be null.
fn not_null<T>(
    field: &'static str,
    value: Option<Option<T>>,
    invalid: &mut Vec<InvalidParam>,
) -> Option<T> {
    match value {
        Some(None) => {
            invalid.push(InvalidParam::new(field, "must not be null"));
            None
        }
        other => other.flatten(),
    }
}

impl UpdateLinkRequest {
    /// The changes; every value was read valid, so only nulls where a
    /// value is needed are refused here.
    pub(super) fn into_changes(self) -> Result<LinkChanges, ApiError> {
        let mut invalid = Vec::new();
        let changes = LinkChanges {
            url: not_null("url", self.url, &mut invalid),
            expires_at: self.expires_at.map(|at| at.map(ExpiresAt::new)),
            redirect_type: not_null("redirect_type", self.redirect_type, &mut invalid),
            forward_query: not_null("forward_query", self.forward_query, &mut invalid),
            title: self.title.map(|title| title.and_then(|t| t.0)),
            tags: self.tags.map(Option::unwrap_or_default),
            password: self.password,
        };
        match invalid.is_empty() {
            true => Ok(changes),
            false => Err(ApiError::InvalidBody(invalid)),
        }
    }
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
