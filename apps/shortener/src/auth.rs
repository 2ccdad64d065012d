//! Checking API keys: who is calling, and throttling those who guess.
//!
//! A presented key is hashed (SHA-256) and looked up by its digest; the
//! answer is cached for a few seconds, so a new key works and a revoked key
//! stops working within [`KEY_CACHE_TTL`] on every instance, without a store
//! read per request. The bootstrap key of `SHORTENER_API_KEY` is compared by
//! digest in constant time. A client whose keys keep failing is refused
//! (429 with `Retry-After`) until its quota of failures refills, even with
//! a right key, so guessing gains nothing.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use moka::sync::Cache;
use uuid::Uuid;

use crate::keys::{Caller, KeyDigest, KeyRecord, Role};
use crate::store::{Keys, StoreError};
use service_kit::settings::{ExposeSecret, SecretString};

/// How long a key lookup is trusted: a revoked key stops working within it.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(5);
/// `last_used_at` is written at most this often per key.
const TOUCH_EVERY: Duration = Duration::from_secs(60);
/// The key id callers with the bootstrap key act as.
pub const BOOTSTRAP_KEY_ID: Uuid = Uuid::nil();

/// Why a caller was not let in.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("an API key is required (X-Api-Key or Authorization: Bearer)")]
    Missing,
    #[error("the API key is unknown or revoked")]
    Refused,
    #[error("too many failed attempts; retry in {retry_after_secs} s")]
    Throttled { retry_after_secs: u64 },
    #[error("the key store is unavailable")]
    Unavailable(#[source] StoreError),
}

/// The address failures are counted under: IPv6 clients per /64, the
/// block one subscriber usually has.
pub fn client_bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let mut octets = v6.octets();
            octets[8..].fill(0);
            IpAddr::from(octets)
        }
    }
}

/// Checks keys; one per service instance.
pub struct Authenticator {
    store: Arc<dyn Keys>,
    bootstrap: Option<KeyDigest>,
    known: Cache<KeyDigest, Option<KeyRecord>>,
    touched: Cache<Uuid, ()>,
    failures: DefaultKeyedRateLimiter<IpAddr>,
    blocked: Cache<IpAddr, Instant>,
}

impl Authenticator {
    /// `failures_per_minute` failed attempts per client before it is refused.
    pub fn new(
        store: Arc<dyn Keys>,
        bootstrap: Option<&SecretString>,
        failures_per_minute: NonZeroU32,
    ) -> Self {
        Self {
            store,
            bootstrap: bootstrap.map(|key| KeyDigest::of(key.expose_secret())),
            known: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(KEY_CACHE_TTL)
                .build(),
            touched: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(TOUCH_EVERY)
                .build(),
            failures: RateLimiter::keyed(Quota::per_minute(failures_per_minute)),
            blocked: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(3600))
                .build(),
        }
    }

    /// The caller presenting `key` (None: no key sent) from `client`.
    pub async fn authenticate(
        &self,
        key: Option<&str>,
        client: IpAddr,
    ) -> Result<Caller, AuthError> {
        let bucket = client_bucket(client);
        if let Some(until) = self.blocked.get(&bucket) {
            let now = Instant::now();
            if until > now {
                return Err(AuthError::Throttled {
                    retry_after_secs: (until - now).as_secs().max(1),
                });
            }
        }
        let outcome = match key.filter(|k| !k.is_empty()) {
            None => Err(AuthError::Missing),
            Some(key) => self.check(KeyDigest::of(key)).await,
        };
        if matches!(outcome, Err(AuthError::Missing | AuthError::Refused)) {
            self.failed(bucket)?;
        }
        outcome
    }

    /// Counts a failure; refuses the client once its quota is used up.
    fn failed(&self, bucket: IpAddr) -> Result<(), AuthError> {
        // Forget idle clients now and then, so memory stays bounded.
        if self.failures.len() > 100_000 {
            self.failures.retain_recent();
        }
        match self.failures.check_key(&bucket) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                self.blocked.insert(bucket, Instant::now() + wait);
                Err(AuthError::Throttled {
                    retry_after_secs: wait.as_secs().max(1),
                })
            }
        }
    }

    async fn check(&self, digest: KeyDigest) -> Result<Caller, AuthError> {
        if self.bootstrap.is_some_and(|b| b.matches(&digest)) {
            return Ok(Caller {
                key_id: BOOTSTRAP_KEY_ID,
                role: Role::Admin,
            });
        }
        let record = match self.known.get(&digest) {
            Some(known) => known,
            None => {
                let found = self
                    .store
                    .find_key(&digest)
                    .await
                    .map_err(AuthError::Unavailable)?;
                self.known.insert(digest, found.clone());
                found
            }
        };
        match record {
            Some(key) if key.revoked_at.is_none() => {
                self.touch(key.id);
                Ok(Caller {
                    key_id: key.id,
                    role: key.role,
                })
            }
            _ => Err(AuthError::Refused),
        }
    }

    /// Records the use in the background, at most once a minute per key.
    fn touch(&self, id: Uuid) {
        if self.touched.contains_key(&id) {
            return;
        }
        self.touched.insert(id, ());
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Err(error) = store.touch_key(id, Utc::now()).await {
                tracing::warn!(%error, "could not record a key's last use");
            }
        });
    }

    /// Forgets cached lookups (after a key was made or revoked here).
    pub fn forget(&self) {
        self.known.invalidate_all();
    }
}

/// Why a key could not be made or revoked.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{0}")]
    InvalidName(String),
    #[error("a key named {0:?} exists")]
    NameTaken(String),
    #[error("no live key is named {0:?}")]
    NotFound(String),
    #[error("the key store is unavailable")]
    Unavailable(#[source] StoreError),
}

impl From<StoreError> for KeyError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::KeyNameTaken(name) => KeyError::NameTaken(name),
            other => KeyError::Unavailable(other),
        }
    }
}

/// Makes and stores a key; the caller shows [`NewKey::key`] once.
pub async fn create_key(
    store: &dyn Keys,
    name: &str,
    role: Role,
) -> Result<crate::keys::NewKey, KeyError> {
    crate::keys::valid_name(name).map_err(KeyError::InvalidName)?;
    let new = crate::keys::NewKey::generate(name, role, crate::service::now());
    store.insert_key(&new.record).await?;
    Ok(new)
}

/// Revokes the live key of this name.
pub async fn revoke_key(store: &dyn Keys, name: &str) -> Result<(), KeyError> {
    match store.revoke_key(name, crate::service::now()).await? {
        true => Ok(()),
        false => Err(KeyError::NotFound(name.to_owned())),
    }
}
