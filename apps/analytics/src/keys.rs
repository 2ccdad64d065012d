//! Analytics' own API keys: database per service, so these are not the
//! shortener's keys and live in analytics' store.
//!
//! A key is 32 random bytes shown once as 64 hex digits; the store keeps its
//! SHA-256 digest. Every key reads everything (no roles). Lookups are cached
//! for [`KEY_CACHE_TTL`], so a new key works and a revoked one stops working
//! within it. A client whose keys keep failing is refused with 429 until its
//! quota refills, the right key included. Keys never appear in logs,
//! errors, metrics or events.

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

pub use crate::store::KeyRecord;
use crate::store::{Keys, StoreError};

/// How long a key lookup is trusted.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(5);
/// `last_used_at` is written at most this often per key.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// SHA-256 of a key, as hex.
pub fn digest(key: &str) -> String {
    let hash: [u8; 32] = Sha256::digest(key.as_bytes()).into();
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Why a key could not be made or revoked.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{0:?} is not a key name (1-64 of letters, digits, _ - . @)")]
    InvalidName(String),
    #[error("a key named {0:?} exists")]
    NameTaken(String),
    #[error("no live key is named {0:?}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Makes and stores a key; returns its record and the key, to show once.
pub async fn create_key(store: &dyn Keys, name: &str) -> Result<(KeyRecord, String), KeyError> {
    let valid = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'@'));
    if !valid {
        return Err(KeyError::InvalidName(name.to_owned()));
    }
    let key: String = rand::random::<[u8; 32]>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let record = KeyRecord {
        id: Uuid::now_v7(),
        name: name.to_owned(),
        digest: digest(&key),
        created_at: now(),
        last_used_at: None,
        revoked_at: None,
    };
    if !store.insert_key(&record).await? {
        return Err(KeyError::NameTaken(name.to_owned()));
    }
    Ok((record, key))
}

/// Revokes the live key of this name.
pub async fn revoke_key(store: &dyn Keys, name: &str) -> Result<(), KeyError> {
    match store.revoke_key(name, now()).await? {
        true => Ok(()),
        false => Err(KeyError::NotFound(name.to_owned())),
    }
}

/// Why a caller was not let in.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("a valid API key is required (X-Api-Key or Authorization: Bearer)")]
    Refused,
    #[error("too many failed attempts; retry in {retry_after_secs} s")]
    Throttled { retry_after_secs: u64 },
    #[error("the key store is unavailable")]
    Unavailable(#[source] StoreError),
}

/// Checks keys; one per service instance.
pub struct Authenticator {
    store: Arc<dyn Keys>,
    bootstrap: Option<String>,
    known: Cache<String, Option<KeyRecord>>,
    touched: Cache<Uuid, ()>,
    failures: DefaultKeyedRateLimiter<IpAddr>,
    blocked: Cache<IpAddr, Instant>,
}

/// Failures are counted per address; IPv6 clients per /64.
fn bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let mut octets = v6.octets();
            octets[8..].fill(0);
            IpAddr::from(octets)
        }
    }
}

impl Authenticator {
    pub fn new(
        store: Arc<dyn Keys>,
        bootstrap: Option<&str>,
        failures_per_minute: NonZeroU32,
    ) -> Self {
        Self {
            store,
            bootstrap: bootstrap.map(digest),
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

    /// Lets the caller presenting `key` from `client` in, or says why not.
    pub async fn authenticate(&self, key: Option<&str>, client: IpAddr) -> Result<(), AuthError> {
        let client = bucket(client);
        if let Some(until) = self.blocked.get(&client) {
            let now = Instant::now();
            if until > now {
                return Err(AuthError::Throttled {
                    retry_after_secs: (until - now).as_secs().max(1),
                });
            }
        }
        let known = match key.filter(|k| !k.is_empty()) {
            Some(key) => self.known_key(&digest(key)).await?,
            None => false,
        };
        if known {
            return Ok(());
        }
        if self.failures.len() > 100_000 {
            self.failures.retain_recent();
        }
        match self.failures.check_key(&client) {
            Ok(()) => Err(AuthError::Refused),
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                self.blocked.insert(client, Instant::now() + wait);
                Err(AuthError::Throttled {
                    retry_after_secs: wait.as_secs().max(1),
                })
            }
        }
    }

    async fn known_key(&self, digest: &str) -> Result<bool, AuthError> {
        if let Some(bootstrap) = &self.bootstrap {
            if bool::from(bootstrap.as_bytes().ct_eq(digest.as_bytes())) {
                return Ok(true);
            }
        }
        let record = match self.known.get(digest) {
            Some(record) => record,
            None => {
                let found = self
                    .store
                    .find_key(digest)
                    .await
                    .map_err(AuthError::Unavailable)?;
                self.known.insert(digest.to_owned(), found.clone());
                found
            }
        };
        match record {
            Some(key) if key.revoked_at.is_none() => {
                if !self.touched.contains_key(&key.id) {
                    self.touched.insert(key.id, ());
                    let store = self.store.clone();
                    tokio::spawn(async move {
                        if let Err(error) = store.touch_key(key.id, now()).await {
                            tracing::warn!(%error, "could not record a key's last use");
                        }
                    });
                }
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

/// With no key at all nobody could read analytics: make one and show it
/// this once.
pub async fn bootstrap_key(store: &dyn Keys) -> anyhow::Result<()> {
    let keys = store.list_keys().await?;
    if keys.iter().any(|k| k.revoked_at.is_none()) {
        return Ok(());
    }
    let name = format!("admin-{}", chrono::Utc::now().format("%Y%m%d%H%M%S"));
    let (_, key) = create_key(store, &name).await?;
    // Printed, not logged: this is the one time the key exists in clear.
    println!(
        "No API key existed, so a key named {name:?} was created:\n\n    {key}\n\nIt is stored only as a hash and will not be shown again."
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_sha256_hex() {
        assert_eq!(
            digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn ipv6_failures_count_per_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        assert_eq!(bucket(a), bucket(b));
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(bucket(v4), v4);
    }
}
