//! Rust types of the envelope and of every event payload.
//!
//! Field for field these mirror the JSON Schemas; `tests/drift.rs` compares the
//! schema `schemars` derives from them with the hand-written files, so adding a
//! field on one side only fails the build's tests.

use std::borrow::Cow;
use std::marker::PhantomData;

use chrono::{DateTime, Utc};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

use crate::subjects;

/// An event payload type: its subject and the schema version it is written in.
pub trait Event: Serialize + DeserializeOwned + JsonSchema + Clone + Send + Sync + 'static {
    /// The `event_type`, which is also the subject it is published on.
    const EVENT_TYPE: &'static str;
    /// The schema version this type is written in.
    const VERSION: u32;
}

/// The common envelope of every event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Envelope<T> {
    /// Unique per event; the deduplication key on both sides of the wire.
    pub event_id: Uuid,
    /// Equal to the subject; see [`Event::EVENT_TYPE`].
    pub event_type: String,
    /// Schema version of `data`; see [`Event::VERSION`].
    pub event_version: u32,
    /// When the thing happened (not when it was published).
    pub occurred_at: DateTime<Utc>,
    /// The service that produced the event.
    pub producer: String,
    /// The event's payload.
    pub data: T,
}

impl<T: Event> Envelope<T> {
    /// A new event with a fresh, time-ordered `event_id` (UUID v7, so ids sort
    /// roughly by creation and index well).
    pub fn new(producer: impl Into<String>, occurred_at: DateTime<Utc>, data: T) -> Self {
        Self {
            event_id: Uuid::now_v7(),
            event_type: T::EVENT_TYPE.to_owned(),
            event_version: T::VERSION,
            occurred_at,
            producer: producer.into(),
            data,
        }
    }

    /// The subject to publish this event on.
    pub fn subject(&self) -> &'static str {
        T::EVENT_TYPE
    }

    /// The headers every published event carries; see [`crate::headers::for_event`].
    pub fn headers(&self) -> [(&'static str, String); 3] {
        crate::headers::for_event(self.event_id, &self.event_type, self.event_version)
    }
}

/// HTTP status a link redirects with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(try_from = "u16", into = "u16")]
pub enum RedirectType {
    /// 301 Moved Permanently: browsers cache it, so later clicks may never reach us.
    MovedPermanently,
    /// 302 Found: the default; every click is seen.
    #[default]
    Found,
    /// 307 Temporary Redirect: like 302, but the method is kept.
    TemporaryRedirect,
    /// 308 Permanent Redirect: like 301, but the method is kept.
    PermanentRedirect,
}

impl RedirectType {
    /// Every redirect type, in status order.
    pub const ALL: [RedirectType; 4] = [
        RedirectType::MovedPermanently,
        RedirectType::Found,
        RedirectType::TemporaryRedirect,
        RedirectType::PermanentRedirect,
    ];

    /// The HTTP status code.
    pub fn status(self) -> u16 {
        match self {
            RedirectType::MovedPermanently => 301,
            RedirectType::Found => 302,
            RedirectType::TemporaryRedirect => 307,
            RedirectType::PermanentRedirect => 308,
        }
    }
}

impl TryFrom<u16> for RedirectType {
    type Error = String;

    fn try_from(status: u16) -> Result<Self, Self::Error> {
        Self::ALL
            .into_iter()
            .find(|t| t.status() == status)
            .ok_or_else(|| format!("redirect type must be one of 301, 302, 307, 308, not {status}"))
    }
}

impl From<RedirectType> for u16 {
    fn from(t: RedirectType) -> u16 {
        t.status()
    }
}

/// `shortener.url.created` version 1. Kept so that old events in the stream
/// (which keeps months of history for replays) still decode: they are upcast
/// to [`UrlCreated`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UrlCreatedV1 {
    pub url_id: Uuid,
    pub short_code: String,
    pub original_url: String,
    pub created_at: DateTime<Utc>,
    #[schemars(with = "PresentOrNull<DateTime<Utc>>")]
    pub expires_at: Option<DateTime<Utc>>,
}

impl Event for UrlCreatedV1 {
    const EVENT_TYPE: &'static str = subjects::URL_CREATED;
    const VERSION: u32 = 1;
}

/// `shortener.url.created`, latest version (2): a link was created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UrlCreated {
    /// The shortener's id of the link; a soft reference everywhere else.
    pub url_id: Uuid,
    pub short_code: String,
    /// The normalised target URL.
    pub original_url: String,
    /// Lower-case ASCII host of `original_url`: what analytics groups by,
    /// carried so that no consumer has to re-parse URLs. New in version 2.
    pub target_host: String,
    pub created_at: DateTime<Utc>,
    /// `None` when the link never expires.
    #[schemars(with = "PresentOrNull<DateTime<Utc>>")]
    pub expires_at: Option<DateTime<Utc>>,
}

impl UrlCreated {
    /// The `target_host` of a target URL: its host, lower-case ASCII (IDN
    /// hosts in punycode, IPv6 in brackets). `None` for a URL without a host.
    /// The one definition both the shortener and the v1 upcaster use.
    pub fn host_of(original_url: &str) -> Option<String> {
        url::Url::parse(original_url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
    }
}

impl Event for UrlCreated {
    const EVENT_TYPE: &'static str = subjects::URL_CREATED;
    const VERSION: u32 = 2;
}

/// `shortener.url.clicked` v1: one served redirect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UrlClicked {
    pub url_id: Uuid,
    pub short_code: String,
    pub clicked_at: DateTime<Utc>,
    /// The `Referer` header as sent; analytics reduces it to a host.
    #[schemars(with = "PresentOrNull<String>")]
    pub referrer: Option<String>,
    #[schemars(with = "PresentOrNull<String>")]
    pub user_agent: Option<String>,
    /// Keyed hash of IP and user agent: counts unique visitors without the IP
    /// ever leaving the shortener.
    #[schemars(with = "PresentOrNull<String>")]
    pub visitor_key: Option<String>,
    /// ISO 3166-1 alpha-2, when the shortener could tell.
    #[schemars(with = "PresentOrNull<String>")]
    pub country: Option<String>,
}

impl Event for UrlClicked {
    const EVENT_TYPE: &'static str = subjects::URL_CLICKED;
    const VERSION: u32 = 1;
}

/// `shortener.url.updated` v1: only the fields that changed are present.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UrlUpdated {
    pub url_id: Uuid,
    pub short_code: String,
    /// The new target, when it changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String")]
    pub original_url: Option<String>,
    /// Outer `None`: the expiry did not change. `Some(None)`: it was removed.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    #[schemars(with = "Option<DateTime<Utc>>")]
    pub expires_at: Option<Option<DateTime<Utc>>>,
    /// The new redirect status, when it changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "u16")]
    pub redirect_type: Option<RedirectType>,
    pub updated_at: DateTime<Utc>,
}

impl Event for UrlUpdated {
    const EVENT_TYPE: &'static str = subjects::URL_UPDATED;
    const VERSION: u32 = 1;
}

/// Tells a present `null` (`Some(None)`) from an absent field (`None`, through
/// `#[serde(default)]`). For "only the fields that changed" documents: the
/// `updated` event here, and the shortener's PATCH body.
pub fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// Schema of a property that must be present but may be `null` (what the
/// contracts call "nullable"). `schemars` renders a plain `Option<T>` as
/// optional, and `#[schemars(required)]` drops the `null`; this keeps both.
struct PresentOrNull<T>(PhantomData<T>);

impl<T: JsonSchema> JsonSchema for PresentOrNull<T> {
    fn schema_name() -> Cow<'static, str> {
        format!("PresentOrNull_{}", T::schema_name()).into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        Option::<T>::json_schema(generator)
    }
}

/// `shortener.url.deleted` v1: the link no longer redirects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UrlDeleted {
    pub url_id: Uuid,
    pub short_code: String,
    pub deleted_at: DateTime<Utc>,
}

impl Event for UrlDeleted {
    const EVENT_TYPE: &'static str = subjects::URL_DELETED;
    const VERSION: u32 = 1;
}

/// Any event, in its latest version: what a consumer of several subjects, or a
/// replay of the whole stream, receives from [`crate::decode_any`].
#[derive(Debug, Clone, PartialEq)]
pub enum AnyEvent {
    Created(Envelope<UrlCreated>),
    Clicked(Envelope<UrlClicked>),
    Updated(Envelope<UrlUpdated>),
    Deleted(Envelope<UrlDeleted>),
}

impl AnyEvent {
    /// The event's id, whatever its type.
    pub fn event_id(&self) -> Uuid {
        match self {
            AnyEvent::Created(e) => e.event_id,
            AnyEvent::Clicked(e) => e.event_id,
            AnyEvent::Updated(e) => e.event_id,
            AnyEvent::Deleted(e) => e.event_id,
        }
    }

    /// The shortener's id of the link the event is about.
    pub fn url_id(&self) -> Uuid {
        match self {
            AnyEvent::Created(e) => e.data.url_id,
            AnyEvent::Clicked(e) => e.data.url_id,
            AnyEvent::Updated(e) => e.data.url_id,
            AnyEvent::Deleted(e) => e.data.url_id,
        }
    }

    /// The subject the event belongs on.
    pub fn subject(&self) -> &'static str {
        match self {
            AnyEvent::Created(e) => e.subject(),
            AnyEvent::Clicked(e) => e.subject(),
            AnyEvent::Updated(e) => e.subject(),
            AnyEvent::Deleted(e) => e.subject(),
        }
    }
}
