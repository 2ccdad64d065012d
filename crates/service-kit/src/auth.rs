//! API keys: who is calling, and throttling those who guess.
//!
//! A key is 32 random bytes shown once as 64 hex digits; a store keeps only
//! its SHA-256 ([`KeyDigest`]). A presented key is hashed and looked up by
//! its digest through the service's [`KeyStore`]; the answer is cached for
//! [`KEY_CACHE_TTL`], so a new key works and a revoked key stops working
//! within it on every instance, without a store read per request. A
//! configured bootstrap key is compared by digest in constant time. A
//! client whose keys keep failing is refused (429 with `Retry-After`) until
//! its quota of failures refills, even with a right key, so guessing gains
//! nothing. Failures count per address, an IPv6 client per /64.

use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use moka::sync::Cache;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

/// How long a key lookup is trusted: a revoked key stops working within it.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(5);
/// A key's last use is written at most this often.
pub const TOUCH_EVERY: Duration = Duration::from_secs(60);
/// The key id callers with the bootstrap key act as.
pub const BOOTSTRAP_KEY_ID: Uuid = Uuid::nil();

/// SHA-256 of a key: all a service ever stores.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyDigest(pub [u8; 32]);

impl KeyDigest {
    pub fn of(key: &str) -> Self {
        Self(Sha256::digest(key.as_bytes()).into())
    }

    /// Equality in constant time.
    pub fn matches(&self, other: &KeyDigest) -> bool {
        self.0.ct_eq(&other.0).into()
    }

    pub fn to_hex(self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(text: &str) -> Option<Self> {
        let bytes = hex::decode(text).ok()?;
        Some(Self(bytes.try_into().ok()?))
    }
}

impl fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyDigest(***)")
    }
}

/// A new key: 32 random bytes as 64 hex digits, to be shown once.
pub fn generate_key() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// The key a request presents: `X-Api-Key`, or `Authorization: Bearer`.
pub fn presented_key(headers: &actix_web::http::header::HeaderMap) -> Option<&str> {
    if let Some(key) = headers.get("x-api-key") {
        return key.to_str().ok();
    }
    let authorization = headers
        .get(actix_web::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = authorization.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Key names: what people type, kept printable and short.
pub fn valid_key_name(name: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'@'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a key name (1-64 of letters, digits, _ - . @)"
        ))
    }
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

/// A stored key as the authenticator needs it.
#[derive(Debug, Clone)]
pub struct StoredKey<P> {
    pub id: Uuid,
    pub revoked: bool,
    /// What the key may do, in the service's terms (a role, or nothing).
    pub grants: P,
}

/// Where a service keeps its keys, as the authenticator reads them.
#[async_trait::async_trait]
pub trait KeyStore: Send + Sync + 'static {
    /// What a key may do, in the service's terms.
    type Grants: Clone + Send + Sync + 'static;

    /// The key with this digest, revoked ones included.
    async fn key_by_digest(
        &self,
        digest: &KeyDigest,
    ) -> anyhow::Result<Option<StoredKey<Self::Grants>>>;

    /// Notes that the key was used now.
    async fn key_used(&self, id: Uuid) -> anyhow::Result<()>;
}

/// Who is calling, once their key was checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller<P> {
    pub key_id: Uuid,
    pub grants: P,
}

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
    Unavailable(#[source] anyhow::Error),
}

/// Checks keys; one per service instance.
pub struct Authenticator<S: KeyStore> {
    store: Arc<S>,
    bootstrap: Option<(KeyDigest, S::Grants)>,
    known: Cache<KeyDigest, Option<StoredKey<S::Grants>>>,
    touched: Cache<Uuid, ()>,
    failures: DefaultKeyedRateLimiter<IpAddr>,
    blocked: Cache<IpAddr, Instant>,
}

impl<S: KeyStore> Authenticator<S> {
    /// `bootstrap`: a configured key and what it grants;
    /// `failures_per_minute` failed attempts per client before it is refused.
    pub fn new(
        store: Arc<S>,
        bootstrap: Option<(&str, S::Grants)>,
        failures_per_minute: NonZeroU32,
    ) -> Self {
        Self {
            store,
            bootstrap: bootstrap.map(|(key, grants)| (KeyDigest::of(key), grants)),
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
    ) -> Result<Caller<S::Grants>, AuthError> {
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

    async fn check(&self, digest: KeyDigest) -> Result<Caller<S::Grants>, AuthError> {
        if let Some((bootstrap, grants)) = &self.bootstrap {
            if bootstrap.matches(&digest) {
                return Ok(Caller {
                    key_id: BOOTSTRAP_KEY_ID,
                    grants: grants.clone(),
                });
            }
        }
        let stored = match self.known.get(&digest) {
            Some(known) => known,
            None => {
                let found = self
                    .store
                    .key_by_digest(&digest)
                    .await
                    .map_err(AuthError::Unavailable)?;
                self.known.insert(digest, found.clone());
                found
            }
        };
        match stored {
            Some(key) if !key.revoked => {
                self.touch(key.id);
                Ok(Caller {
                    key_id: key.id,
                    grants: key.grants,
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
            if let Err(error) = store.key_used(id).await {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "could not record a key's last use"
                );
            }
        });
    }

    /// Forgets cached lookups (after a key was made or revoked here).
    pub fn forget(&self) {
        self.known.invalidate_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_sha256_and_read_back_from_hex() {
        let digest = KeyDigest::of("abc");
        assert_eq!(
            digest.to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(KeyDigest::from_hex(&digest.to_hex()), Some(digest));
        assert_eq!(KeyDigest::from_hex("abc"), None);
        assert!(!format!("{digest:?}").contains("ba78"));
    }

    #[test]
    fn ipv6_failures_count_per_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        assert_eq!(client_bucket(a), client_bucket(b));
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(client_bucket(v4), v4);
    }

    #[test]
    fn a_new_key_is_64_hex_digits() {
        let key = generate_key();
        assert_eq!(key.len(), 64);
        assert!(key.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(key, generate_key());
    }
}
