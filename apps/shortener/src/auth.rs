//! Checking API keys (`service_kit::auth`, over the shortener's [`Keys`]
//! store) and making and revoking them. The bootstrap key of
//! `SHORTENER_API_KEY` is an admin's.

use std::num::NonZeroU32;
use std::sync::Arc;

use chrono::Utc;
use uuid::Uuid;

pub use service_kit::auth::{AuthError, BOOTSTRAP_KEY_ID, KEY_CACHE_TTL, client_bucket};
use service_kit::auth::{KeyDigest, KeyStore, StoredKey};
use service_kit::settings::{ExposeSecret, SecretString};

use crate::keys::{Caller, Role};
use crate::store::{Keys, StoreError};

/// The shortener's keys as the authenticator reads them: a key grants a role.
pub struct KeyLookup(pub Arc<dyn Keys>);

#[async_trait::async_trait]
impl KeyStore for KeyLookup {
    type Grants = Role;

    async fn key_by_digest(&self, digest: &KeyDigest) -> anyhow::Result<Option<StoredKey<Role>>> {
        Ok(self.0.find_key(digest).await?.map(|key| StoredKey {
            id: key.id,
            revoked: key.revoked_at.is_some(),
            grants: key.role,
        }))
    }

    async fn key_used(&self, id: Uuid) -> anyhow::Result<()> {
        Ok(self.0.touch_key(id, Utc::now()).await?)
    }
}

/// Checks keys; one per service instance.
pub struct Authenticator(service_kit::auth::Authenticator<KeyLookup>);

impl Authenticator {
    /// `failures_per_minute` failed attempts per client before it is refused.
    pub fn new(
        store: Arc<dyn Keys>,
        bootstrap: Option<&SecretString>,
        failures_per_minute: NonZeroU32,
    ) -> Self {
        Self(service_kit::auth::Authenticator::new(
            Arc::new(KeyLookup(store)),
            bootstrap.map(|key| (key.expose_secret(), Role::Admin)),
            failures_per_minute,
        ))
    }

    /// The caller presenting `key` (None: no key sent) from `client`.
    pub async fn authenticate(
        &self,
        key: Option<&str>,
        client: std::net::IpAddr,
    ) -> Result<Caller, AuthError> {
        Ok(self.0.authenticate(key, client).await?.into())
    }

    /// Forgets cached lookups (after a key was made or revoked here).
    pub fn forget(&self) {
        self.0.forget();
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
