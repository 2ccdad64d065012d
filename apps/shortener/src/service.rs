//! What the shortener does with links, independent of HTTP.
//!
//! Every change is written together with its event (the outbox), then the
//! relay is woken so the event is published at once. Generated codes retry on
//! the rare collision; aliases do not (a taken alias is the client's problem).
//! Updates read, change and compare-and-set on the version, retrying when
//! another writer got there first.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use contracts::{Envelope, RedirectType, UrlDeleted, UrlUpdated};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::cache::{Cached, LinkCache};
use crate::domain::{Alias, CodeGenerator, ExpiresAt, Password, ShortCode, Tags, TargetUrl, Title};
use crate::keys::Scope;
use crate::store::{Link, LinkQuery, Links, OutboxEvent, StoreError};

/// How long one store call of a request may take before the request is
/// answered 503: a store that hangs (a paused server, a lost connection)
/// must not hang the API with it.
const STORE_TIMEOUT: Duration = Duration::from_secs(5);

/// What a use case can fail with; the HTTP layer maps it in one place.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("no link has the code {0:?}")]
    NotFound(String),
    #[error("the link {code:?} {reason}")]
    Gone { code: String, reason: &'static str },
    #[error("the alias {0:?} is already taken")]
    AliasTaken(String),
    #[error("the link {0:?} was changed concurrently; retry")]
    Conflict(String),
    #[error("the store is unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error("an internal error occurred")]
    Internal(#[source] anyhow::Error),
}

/// Producer name on every event.
pub const PRODUCER: &str = "shortener";
/// Attempts at a fresh generated code before giving up (each collides with
/// probability ~n/62^7; five in a row means something else is wrong).
const CODE_ATTEMPTS: usize = 5;
/// Links written per transaction by a bulk create.
const BULK_CHUNK: usize = 100;
/// Attempts at a compare-and-set update under contention.
const UPDATE_ATTEMPTS: usize = 10;

/// A link to create, already validated.
#[derive(Debug, Clone)]
pub struct NewLink {
    pub url: TargetUrl,
    pub alias: Option<Alias>,
    pub expires_at: Option<ExpiresAt>,
    pub redirect_type: RedirectType,
    /// Whether the visitor's query string is merged into the target.
    pub forward_query: bool,
    pub title: Option<Title>,
    pub tags: Tags,
    /// The link's password; only its hash is stored.
    pub password: Option<Password>,
}

/// Changes to a link, already validated; `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct LinkChanges {
    pub url: Option<TargetUrl>,
    /// `Some(None)` removes the expiry.
    pub expires_at: Option<Option<ExpiresAt>>,
    pub redirect_type: Option<RedirectType>,
    pub forward_query: Option<bool>,
    /// `Some(None)` removes the title.
    pub title: Option<Option<Title>>,
    pub tags: Option<Tags>,
    /// `Some(None)` removes the password; `Some(Some(p))` sets one.
    pub password: Option<Option<Password>>,
}

/// The shortener's use cases.
#[derive(Clone)]
pub struct LinkService {
    store: Arc<dyn Links>,
    codes: CodeGenerator,
    relay: Arc<Notify>,
    cache: Arc<LinkCache>,
}

/// Stored times are whole milliseconds (MongoDB's precision), so what a
/// response shows is what a later read returns.
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(3)
}

impl From<StoreError> for LinkError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::CodeTaken(code) => LinkError::AliasTaken(code),
            StoreError::Conflict(code) => LinkError::Conflict(code),
            StoreError::Unavailable(e) => LinkError::Unavailable(e),
            // Links never touch keys; reaching this is a bug.
            StoreError::KeyNameTaken(name) => {
                LinkError::Internal(anyhow::anyhow!("a link write reported key {name:?}"))
            }
        }
    }
}

/// A store call, bounded by [`STORE_TIMEOUT`].
async fn bounded<T>(call: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
    tokio::time::timeout(STORE_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| {
            Err(StoreError::Unavailable(anyhow::anyhow!(
                "the store did not answer within {STORE_TIMEOUT:?}"
            )))
        })
}

fn outbox<T: contracts::Event>(envelope: Envelope<T>) -> Result<OutboxEvent, LinkError> {
    // Everything here was validated on the way in, so an event that breaks
    // its schema is a bug in this service, not bad input.
    OutboxEvent::new(&envelope)
        .map_err(|e| LinkError::Internal(anyhow::anyhow!("event does not match its contract: {e}")))
}

impl LinkService {
    pub fn new(
        store: Arc<dyn Links>,
        codes: CodeGenerator,
        relay: Arc<Notify>,
        cache: Arc<LinkCache>,
    ) -> Self {
        Self {
            store,
            codes,
            relay,
            cache,
        }
    }

    /// Creates a link owned by the key `owner`.
    pub async fn create(&self, new: NewLink, owner: Uuid) -> Result<Link, LinkError> {
        let password_hash = hash_password(new.password.clone()).await?;
        let attempts = if new.alias.is_some() {
            1
        } else {
            CODE_ATTEMPTS
        };
        for _ in 0..attempts {
            let code = match &new.alias {
                Some(alias) => alias.clone().into_code(),
                None => self.codes.generate(),
            };
            let at = now();
            let link = Self::new_link(&new, code, at, owner, password_hash.clone());
            let event = outbox(Envelope::new(PRODUCER, at, link.created_event()))?;
            match bounded(self.store.insert(&link, &event)).await {
                Ok(()) => {
                    tracing::info!(code = %link.code, url_id = %link.id, event_id = %event.event_id, "link created");
                    // The code may be cached as unknown.
                    self.cache.invalidate(link.code.as_str());
                    self.relay.notify_one();
                    return Ok(link);
                }
                Err(StoreError::CodeTaken(code)) if new.alias.is_none() => {
                    tracing::warn!(%code, "generated code collided; drawing another");
                }
                Err(error) => return Err(error.into()),
            }
        }
        Err(LinkError::Internal(anyhow::anyhow!(
            "{CODE_ATTEMPTS} generated codes in a row were taken; increase SHORTENER_CODE_LENGTH"
        )))
    }

    /// The link `new` describes, with `code`, as of `at`, owned by `owner`.
    fn new_link(
        new: &NewLink,
        code: ShortCode,
        at: DateTime<Utc>,
        owner: Uuid,
        password_hash: Option<String>,
    ) -> Link {
        Link {
            id: Uuid::now_v7(),
            code,
            url: new.url.clone(),
            redirect_type: new.redirect_type,
            created_at: at,
            updated_at: at,
            expires_at: new.expires_at.map(ExpiresAt::get),
            deleted_at: None,
            click_count: 0,
            version: 1,
            owner: Some(owner),
            forward_query: new.forward_query,
            title: new.title.clone().map(Title::into_string),
            tags: new.tags.clone().into_vec(),
            password_hash,
        }
    }

    /// Creates many links owned by `owner`: one result per item, in order.
    /// Each chunk of [`BULK_CHUNK`] is one transaction with its links'
    /// created events. An alias taken (in the store, or earlier in `news`)
    /// is refused for its item alone; a generated code that collides is
    /// drawn again.
    pub async fn create_many(&self, news: &[NewLink], owner: Uuid) -> Vec<Result<Link, LinkError>> {
        let mut results: Vec<Option<Result<Link, LinkError>>> = news.iter().map(|_| None).collect();
        refuse_repeated_aliases(news, &mut results);
        let hashes = hash_passwords(news, &mut results).await;
        let open: Vec<usize> = (0..news.len()).filter(|&i| results[i].is_none()).collect();
        for chunk in open.chunks(BULK_CHUNK) {
            self.insert_chunk(chunk, news, owner, &hashes, &mut results)
                .await;
        }
        self.relay.notify_one();
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(LinkError::Internal(anyhow::anyhow!("no result")))))
            .collect()
    }

    /// Inserts the links `chunk` points at in one transaction, drawing a
    /// generated code again (a few times) where one collides.
    async fn insert_chunk(
        &self,
        chunk: &[usize],
        news: &[NewLink],
        owner: Uuid,
        hashes: &[Option<String>],
        results: &mut [Option<Result<Link, LinkError>>],
    ) {
        let mut pending = chunk.to_vec();
        for _ in 0..CODE_ATTEMPTS {
            if pending.is_empty() {
                break;
            }
            let at = now();
            let mut batch = Vec::with_capacity(pending.len());
            for &i in &pending {
                let code = match &news[i].alias {
                    Some(alias) => alias.clone().into_code(),
                    None => self.codes.generate(),
                };
                let link = Self::new_link(&news[i], code, at, owner, hashes[i].clone());
                match outbox(Envelope::new(PRODUCER, at, link.created_event())) {
                    Ok(event) => batch.push((i, link, event)),
                    Err(error) => results[i] = Some(Err(error)),
                }
            }
            let pairs: Vec<(Link, OutboxEvent)> = batch
                .iter()
                .map(|(_, l, e)| (l.clone(), e.clone()))
                .collect();
            match bounded(self.store.insert_many(&pairs)).await {
                Ok(inserted) => {
                    pending.clear();
                    for ((i, link, _), ok) in batch.into_iter().zip(inserted) {
                        if ok {
                            self.cache.invalidate(link.code.as_str());
                            results[i] = Some(Ok(link));
                        } else if news[i].alias.is_some() {
                            results[i] = Some(Err(LinkError::AliasTaken(link.code.to_string())));
                        } else {
                            pending.push(i);
                        }
                    }
                }
                // Someone took a code meanwhile; nothing was written.
                Err(StoreError::Conflict(_)) => {}
                Err(error) => {
                    let error = LinkError::from(error);
                    for &i in &pending {
                        results[i] = Some(Err(match &error {
                            LinkError::Unavailable(e) => {
                                LinkError::Unavailable(anyhow::anyhow!("{e}"))
                            }
                            other => LinkError::Internal(anyhow::anyhow!("{other}")),
                        }));
                    }
                    pending.clear();
                }
            }
        }
        for i in pending {
            results[i] = Some(Err(LinkError::Internal(anyhow::anyhow!(
                "{CODE_ATTEMPTS} attempts at free codes failed; increase SHORTENER_CODE_LENGTH"
            ))));
        }
    }

    /// The link with this code; deleted links are gone (410). A link
    /// outside `scope` is unknown (404), exactly as a code nobody has, so
    /// codes cannot be probed.
    pub async fn get(&self, code: &str, scope: Scope) -> Result<Link, LinkError> {
        let found = bounded(self.store.find(code))
            .await?
            .filter(|link| scope.allows(link.owner));
        live(code, found)
    }

    /// Live links in `scope` as `query` asks (its owner is set here).
    pub async fn list(&self, mut query: LinkQuery, scope: Scope) -> Result<Vec<Link>, LinkError> {
        query.owner = match scope {
            Scope::All => None,
            Scope::OwnedBy(key) => Some(key),
        };
        Ok(bounded(self.store.list(&query)).await?)
    }

    /// Applies `changes`; emits `shortener.url.updated` with exactly the
    /// fields that changed (nothing is written when nothing changes).
    pub async fn update(
        &self,
        code: &str,
        changes: &LinkChanges,
        scope: Scope,
    ) -> Result<Link, LinkError> {
        // Hashed once, before the compare-and-set attempts.
        let password_hash = match &changes.password {
            None => None,
            Some(password) => Some(hash_password(password.clone()).await?),
        };
        for _ in 0..UPDATE_ATTEMPTS {
            let current = self.get(code, scope).await?;
            let (mut next, mut event) = changes.applied_to(&current, password_hash.as_ref());
            if next == current {
                return Ok(current);
            }
            let at = now();
            next.updated_at = at;
            next.version = current.version + 1;
            event.updated_at = at;
            let told = event.original_url.is_some()
                || event.expires_at.is_some()
                || event.redirect_type.is_some();
            let event = told
                .then(|| outbox(Envelope::new(PRODUCER, at, event)))
                .transpose()?;
            match bounded(self.store.update(&next, event.as_ref())).await {
                Ok(()) => {
                    tracing::info!(code, url_id = %next.id, event_id = event.as_ref().map(|e| e.event_id.to_string()), "link updated");
                    self.cache.invalidate(code);
                    self.relay.notify_one();
                    return Ok(next);
                }
                Err(StoreError::Conflict(_)) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(LinkError::Conflict(code.to_owned()))
    }

    /// Deletes the link: it stops redirecting (410) and its code is never
    /// reused; `shortener.url.deleted` tells the others.
    pub async fn delete(&self, code: &str, scope: Scope) -> Result<(), LinkError> {
        for _ in 0..UPDATE_ATTEMPTS {
            let current = self.get(code, scope).await?;
            let at = now();
            let mut next = current.clone();
            next.deleted_at = Some(at);
            next.updated_at = at;
            next.version = current.version + 1;
            let event = outbox(Envelope::new(
                PRODUCER,
                at,
                UrlDeleted {
                    url_id: current.id,
                    short_code: current.code.to_string(),
                    deleted_at: at,
                },
            ))?;
            match bounded(self.store.update(&next, Some(&event))).await {
                Ok(()) => {
                    tracing::info!(code, url_id = %next.id, event_id = %event.event_id, "link deleted");
                    self.cache.invalidate(code);
                    self.relay.notify_one();
                    return Ok(());
                }
                Err(StoreError::Conflict(_)) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(LinkError::Conflict(code.to_owned()))
    }

    /// Where `code` redirects to now: 404 unknown, 410 deleted or expired.
    /// Served from the cache when it can be, unknown codes included; see
    /// `cache` for why a lookup cannot put a stale link back.
    pub async fn resolve(&self, code: &str) -> Result<Arc<Link>, LinkError> {
        let link = match self.cache.get(code) {
            Cached::Link(link) => link,
            Cached::Missing => return Err(LinkError::NotFound(code.to_owned())),
            Cached::Unknown => {
                let ticket = self.cache.ticket(code);
                let found = bounded(self.store.find(code)).await?.map(Arc::new);
                self.cache.insert(code, found.clone(), ticket);
                match found {
                    Some(link) => link,
                    None => return Err(LinkError::NotFound(code.to_owned())),
                }
            }
        };
        not_deleted(code, &link)?;
        if link.expires_at.is_some_and(|at| at <= Utc::now()) {
            return Err(LinkError::Gone {
                code: code.to_owned(),
                reason: "has expired",
            });
        }
        Ok(link)
    }
}

/// The hash of `password`, made off the async workers (argon2 costs tens
/// of milliseconds of CPU on purpose).
async fn hash_password(password: Option<Password>) -> Result<Option<String>, LinkError> {
    let Some(password) = password else {
        return Ok(None);
    };
    tokio::task::spawn_blocking(move || password.hash())
        .await
        .map_err(|e| LinkError::Internal(anyhow::anyhow!("the hashing task failed: {e}")))?
        .map(Some)
        .map_err(|e| LinkError::Internal(anyhow::anyhow!(e)))
}

/// A found link unless it is unknown (404) or deleted (410).
fn live(code: &str, found: Option<Link>) -> Result<Link, LinkError> {
    let link = found.ok_or_else(|| LinkError::NotFound(code.to_owned()))?;
    not_deleted(code, &link)?;
    Ok(link)
}

/// Deleted links answer 410 Gone, for ever.
fn not_deleted(code: &str, link: &Link) -> Result<(), LinkError> {
    match link.deleted_at {
        Some(_) => Err(LinkError::Gone {
            code: code.to_owned(),
            reason: "was deleted",
        }),
        None => Ok(()),
    }
}

impl LinkChanges {
    /// `current` with these changes, and the event that tells analytics the
    /// ones it keeps a copy of (a field stays `None` when it did not change).
    fn applied_to(
        &self,
        current: &Link,
        password_hash: Option<&Option<String>>,
    ) -> (Link, UrlUpdated) {
        let mut next = current.clone();
        let mut event = UrlUpdated {
            url_id: current.id,
            short_code: current.code.to_string(),
            original_url: None,
            expires_at: None,
            redirect_type: None,
            updated_at: current.updated_at,
        };
        if let Some(url) = self.url.as_ref().filter(|u| *u != &current.url) {
            next.url = url.clone();
            event.original_url = Some(url.to_string());
        }
        if let Some(expiry) = self.expires_at {
            let expiry = expiry.map(ExpiresAt::get);
            if expiry != current.expires_at {
                next.expires_at = expiry;
                event.expires_at = Some(expiry);
            }
        }
        if let Some(redirect_type) = self.redirect_type.filter(|t| *t != current.redirect_type) {
            next.redirect_type = redirect_type;
            event.redirect_type = Some(redirect_type);
        }
        // The shortener's own settings and labels: analytics does not
        // need them, so they change the link without an event field.
        if let Some(forward) = self.forward_query {
            next.forward_query = forward;
        }
        if let Some(title) = &self.title {
            next.title = title.clone().map(Title::into_string);
        }
        if let Some(tags) = &self.tags {
            next.tags = tags.clone().into_vec();
        }
        if let Some(hash) = password_hash {
            next.password_hash = hash.clone();
        }
        (next, event)
    }
}

/// An alias given twice in one bulk create is refused for its later items.
fn refuse_repeated_aliases(news: &[NewLink], results: &mut [Option<Result<Link, LinkError>>]) {
    let mut aliases = std::collections::HashSet::new();
    for (i, new) in news.iter().enumerate() {
        if let Some(alias) = &new.alias {
            let code = alias.clone().into_code().to_string();
            if !aliases.insert(code.clone()) {
                results[i] = Some(Err(LinkError::AliasTaken(code)));
            }
        }
    }
}

/// Each item's password hash (`None` without a password); an item whose
/// hashing failed gets its error.
async fn hash_passwords(
    news: &[NewLink],
    results: &mut [Option<Result<Link, LinkError>>],
) -> Vec<Option<String>> {
    let mut hashes = Vec::with_capacity(news.len());
    for (i, new) in news.iter().enumerate() {
        match hash_password(new.password.clone()).await {
            Ok(hash) => hashes.push(hash),
            Err(error) => {
                hashes.push(None);
                results[i] = Some(Err(error));
            }
        }
    }
    hashes
}
