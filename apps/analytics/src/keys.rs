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

pub use service_kit::auth::{AuthError, KEY_CACHE_TTL};
use service_kit::auth::{KeyDigest, KeyStore, StoredKey, generate_key, valid_key_name};
use uuid::Uuid;

pub use crate::store::KeyRecord;
use crate::store::{Keys, StoreError};

/// SHA-256 of a key, as hex: what the store keeps.
pub fn digest(key: &str) -> String {
    KeyDigest::of(key).to_hex()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
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
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Makes and stores a key; returns its record and the key, to show once.
pub async fn create_key(store: &dyn Keys, name: &str) -> Result<(KeyRecord, String), KeyError> {
    valid_key_name(name).map_err(KeyError::InvalidName)?;
    let key = generate_key();
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

/// Analytics' keys as the authenticator reads them: every key reads
/// everything, so a key grants nothing beyond being let in.
pub struct KeyLookup(pub Arc<dyn Keys>);

#[async_trait::async_trait]
impl KeyStore for KeyLookup {
    type Grants = ();

    async fn key_by_digest(&self, digest: &KeyDigest) -> anyhow::Result<Option<StoredKey<()>>> {
        Ok(self
            .0
            .find_key(&digest.to_hex())
            .await?
            .map(|key| StoredKey {
                id: key.id,
                revoked: key.revoked_at.is_some(),
                grants: (),
            }))
    }

    async fn key_used(&self, id: Uuid) -> anyhow::Result<()> {
        Ok(self.0.touch_key(id, now()).await?)
    }
}

/// Checks keys; one per service instance (see `service_kit::auth`).
pub struct Authenticator(service_kit::auth::Authenticator<KeyLookup>);

impl Authenticator {
    pub fn new(
        store: Arc<dyn Keys>,
        bootstrap: Option<&str>,
        failures_per_minute: NonZeroU32,
    ) -> Self {
        Self(service_kit::auth::Authenticator::new(
            Arc::new(KeyLookup(store)),
            bootstrap.map(|key| (key, ())),
            failures_per_minute,
        ))
    }

    /// Lets the caller presenting `key` from `client` in, or says why not.
    pub async fn authenticate(&self, key: Option<&str>, client: IpAddr) -> Result<(), AuthError> {
        self.0.authenticate(key, client).await.map(drop)
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
}
