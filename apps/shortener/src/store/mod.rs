//! The shortener's store: one port per aggregate, one adapter per database.
//!
//! [`Links`], [`Outbox`], [`ClickSpool`] and [`Keys`] are the ports; each
//! part of the service takes only the one it needs. `sqlite/` (embedded
//! default, through sea-orm) and `mongo/` (production) implement all four,
//! a file per port, and the database is chosen once at start-up from
//! configuration ([`Store`]). Every write that other
//! services must hear about takes its [`OutboxEvent`] and stores it in the
//! same transaction as the link: that is the transactional outbox, and the
//! reason a link answered with 201 always reaches analytics.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use contracts::{ContractError, Envelope, Event, RedirectType, UrlCreated, encode};
use uuid::Uuid;

use crate::domain::{ShortCode, TargetUrl};
use crate::keys::{KeyDigest, KeyRecord, Role};

pub mod mongo;
pub mod sqlite;

/// A link as stored. Deleted links are kept (with `deleted_at`) so that their
/// code answers 410 Gone and is never handed out again.
#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    /// Time-ordered (UUID v7), so listing by id is listing by creation.
    pub id: Uuid,
    pub code: ShortCode,
    /// The normalised target, and its host.
    pub url: TargetUrl,
    pub redirect_type: RedirectType,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
    /// Served redirects, added in batches by the click publisher.
    pub click_count: u64,
    /// Bumped by every update; updates are compare-and-set on it, so two
    /// concurrent PATCHes never silently overwrite each other.
    pub version: u64,
    /// The id of the key that created the link: an author sees only its
    /// own. `None` for links made before keys existed (admins see them).
    /// The shortener's own data: it never travels in events.
    pub owner: Option<Uuid>,
    /// Whether the visitor's query string is merged into the target.
    pub forward_query: bool,
    /// What the author calls the link; the shortener's own, like `tags`.
    pub title: Option<String>,
    /// Labels to find the link by (`domain::Tags`).
    pub tags: Vec<String>,
    /// The argon2id hash (PHC string) of the link's password; a link with
    /// one answers its redirect only to whoever gives the password.
    pub password_hash: Option<String>,
}

impl Link {
    /// The `shortener.url.created` payload describing this link.
    pub fn created_event(&self) -> UrlCreated {
        UrlCreated {
            url_id: self.id,
            short_code: self.code.to_string(),
            original_url: self.url.to_string(),
            target_host: self.url.host().to_owned(),
            created_at: self.created_at,
            expires_at: self.expires_at,
        }
    }
}

/// Which live links a listing returns, and in which order.
#[derive(Debug, Clone, Default)]
pub struct LinkQuery {
    /// Only the links of this key.
    pub owner: Option<Uuid>,
    /// Only links whose code, target or title contains this text, ignoring
    /// case; given in lower case.
    pub text: Option<String>,
    /// Only links with this tag.
    pub tag: Option<String>,
    /// Only these links (by id).
    pub ids: Option<Vec<Uuid>>,
    pub order: LinkOrder,
    /// Continue after this link (the last of the previous page).
    pub after: Option<LinkCursor>,
    pub limit: u32,
}

/// The order of a listing; the id breaks ties, so every order is total and
/// a cursor never skips or repeats a link.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
pub enum LinkOrder {
    /// Newest first (ids are time-ordered).
    #[default]
    #[serde(rename = "created")]
    Newest,
    /// Most redirects first.
    #[serde(rename = "clicks")]
    MostClicked,
}

/// Where a page ended: the last link's id, and its click count when the
/// order is by clicks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkCursor {
    pub id: Uuid,
    pub clicks: u64,
}

/// An event waiting in the outbox, already encoded and validated.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEvent {
    pub event_id: Uuid,
    pub subject: String,
    pub event_version: u32,
    /// The exact bytes to publish.
    pub payload: Vec<u8>,
    pub created_at: DateTime<Utc>,
    /// The W3C `traceparent` of the request that wrote the event, when it
    /// was traced: the relay publishes the event in that trace.
    pub traceparent: Option<String>,
}

impl OutboxEvent {
    /// Encodes (and so validates) an event for the outbox, in the trace of
    /// the current request.
    pub fn new<T: Event>(envelope: &Envelope<T>) -> Result<Self, ContractError> {
        Ok(Self {
            event_id: envelope.event_id,
            subject: envelope.subject().to_owned(),
            event_version: envelope.event_version,
            payload: encode(envelope)?,
            created_at: envelope.occurred_at,
            traceparent: service_kit::telemetry::current_traceparent(),
        })
    }
}

/// A click event JetStream did not take in time, kept in the store until
/// the click relay publishes it (with its own `event_id` as `Nats-Msg-Id`).
#[derive(Debug, Clone, PartialEq)]
pub struct SpooledClick {
    pub event_id: Uuid,
    /// The link, so the relay can add the click to its counter.
    pub url_id: Uuid,
    pub clicked_at: DateTime<Utc>,
    /// The encoded event, exactly as it is published.
    pub payload: bytes::Bytes,
}

/// How far behind the click spool is, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SpoolState {
    pub depth: u64,
    /// When the oldest spooled click happened.
    pub oldest: Option<DateTime<Utc>>,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The code is already used by another link (live or deleted).
    #[error("short code {0:?} is taken")]
    CodeTaken(String),
    /// The link changed since it was read (its `version` moved on).
    #[error("link {0:?} was changed concurrently")]
    Conflict(String),
    /// Another key already has this name.
    #[error("a key named {0:?} exists")]
    KeyNameTaken(String),
    /// The database failed or is unreachable.
    #[error("store unavailable: {0}")]
    Unavailable(#[source] anyhow::Error),
}

/// Reads a redirect status back from a store; anything but 301/302/307/308
/// means the row was written by something else and is reported, not guessed.
pub(crate) fn stored_redirect_type(code: &str, status: i32) -> Result<RedirectType, StoreError> {
    u16::try_from(status)
        .ok()
        .and_then(|s| RedirectType::try_from(s).ok())
        .ok_or_else(|| {
            StoreError::Unavailable(anyhow::anyhow!(
                "link {code:?} has an invalid stored redirect type {status}"
            ))
        })
}

/// Reads a role back from a store; anything else was written by something
/// else and is reported, not guessed.
pub(crate) fn stored_role(name: &str, role: &str) -> Result<Role, StoreError> {
    role.parse().map_err(|e: String| {
        StoreError::Unavailable(anyhow::anyhow!(
            "key {name:?} has an invalid stored role: {e}"
        ))
    })
}

/// Reads a digest back from a store.
pub(crate) fn stored_digest(name: &str, hex: &str) -> Result<KeyDigest, StoreError> {
    KeyDigest::from_hex(hex).ok_or_else(|| {
        StoreError::Unavailable(anyhow::anyhow!("key {name:?} has an invalid stored digest"))
    })
}

/// The links: what people create, change and follow.
#[async_trait]
pub trait Links: Send + Sync + 'static {
    /// Inserts a new link and its created event atomically.
    /// [`StoreError::CodeTaken`] when the code exists, deleted or not.
    async fn insert(&self, link: &Link, event: &OutboxEvent) -> Result<(), StoreError>;

    /// Inserts new links and their created events in one transaction,
    /// skipping each whose code exists (deleted or not): per link, whether
    /// it was inserted. [`StoreError::Conflict`] when a concurrent writer
    /// took a code meanwhile (nothing was written; try again).
    async fn insert_many(&self, links: &[(Link, OutboxEvent)]) -> Result<Vec<bool>, StoreError>;

    /// The link with this code, deleted ones included.
    async fn find(&self, code: &str) -> Result<Option<Link>, StoreError>;

    /// Live links as `query` says.
    async fn list(&self, query: &LinkQuery) -> Result<Vec<Link>, StoreError>;

    /// Replaces the mutable fields of `link` (url, host, redirect type,
    /// query forwarding, title, tags, password, expiry, deletion,
    /// updated_at) if its stored version is still `link.version - 1`, and
    /// queues the event (when the change is one other services hear
    /// about), atomically.
    /// [`StoreError::Conflict`] when someone else updated it first.
    async fn update(&self, link: &Link, event: Option<&OutboxEvent>) -> Result<(), StoreError>;

    /// Adds served redirects to the links' counters, in one transaction.
    async fn add_clicks(&self, counts: &[(Uuid, u64)]) -> Result<(), StoreError>;
}

/// The transactional outbox: events written with their link, published by
/// the relay in write order.
#[async_trait]
pub trait Outbox: Send + Sync + 'static {
    /// The oldest unsent outbox events, in the order they were written.
    async fn outbox_pending(&self, limit: u32) -> Result<Vec<OutboxEvent>, StoreError>;

    /// Marks events as published (their JetStream ack was received).
    async fn outbox_mark_sent(
        &self,
        event_ids: &[Uuid],
        sent_at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// How many events wait to be published.
    async fn outbox_depth(&self) -> Result<u64, StoreError>;
}

/// Click events JetStream did not take in time, kept until it does.
#[async_trait]
pub trait ClickSpool: Send + Sync + 'static {
    /// Keeps click events JetStream did not take, in one transaction.
    /// Idempotent: a click already spooled (same `event_id`) is kept once.
    async fn spool_clicks(&self, clicks: &[SpooledClick]) -> Result<(), StoreError>;

    /// The oldest spooled clicks, oldest first.
    async fn spooled_clicks(&self, limit: u32) -> Result<Vec<SpooledClick>, StoreError>;

    /// Removes clicks JetStream has acknowledged and adds them to their
    /// links' counters, in one transaction, so each counts exactly once.
    async fn unspool_clicks(
        &self,
        event_ids: &[Uuid],
        counts: &[(Uuid, u64)],
    ) -> Result<(), StoreError>;

    /// How many clicks wait in the spool, and since when.
    async fn spool_state(&self) -> Result<SpoolState, StoreError>;
}

/// API keys, stored as digests.
#[async_trait]
pub trait Keys: Send + Sync + 'static {
    /// Stores a new key; [`StoreError::KeyNameTaken`] when the name is used.
    async fn insert_key(&self, key: &KeyRecord) -> Result<(), StoreError>;

    /// The key with this digest, revoked ones included.
    async fn find_key(&self, digest: &KeyDigest) -> Result<Option<KeyRecord>, StoreError>;

    /// Every key, oldest first.
    async fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError>;

    /// Revokes the key of this name; false when no live key has it.
    async fn revoke_key(&self, name: &str, at: DateTime<Utc>) -> Result<bool, StoreError>;

    /// Notes that the key was used.
    async fn touch_key(&self, id: Uuid, at: DateTime<Utc>) -> Result<(), StoreError>;
}

/// One database holding every aggregate: what start-up opens. Each part of
/// the service is handed only the port it uses (`Arc<dyn Store>` coerces to
/// `Arc<dyn Links>`, `Arc<dyn Keys>`, ...).
#[async_trait]
pub trait Store: Links + Outbox + ClickSpool + Keys {
    /// Whether the database answers (for `/ready`).
    async fn ping(&self) -> Result<(), StoreError>;
}
