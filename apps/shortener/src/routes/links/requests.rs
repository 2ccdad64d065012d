//! The bodies of a create and a change, and the values they become.

use chrono::{DateTime, Utc};
use contracts::RedirectType;
use serde::Deserialize;
use utoipa::ToSchema;
use validator::Validate;

use crate::domain::{Alias, ExpiresAt, Password, Tags, TargetUrl, Title};
use crate::problem::{ApiError, InvalidParam};
use crate::service::{LinkChanges, NewLink};

use super::fields::*;

/// `POST /api/v1/links`.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CreateLink)]
pub(in crate::routes) struct CreateLinkRequest {
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
    pub(super) fn into_new_link(self) -> Result<NewLink, ApiError> {
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
pub(in crate::routes) struct UpdateLinkRequest {
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
    pub(super) fn into_changes(self) -> Result<LinkChanges, ApiError> {
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
