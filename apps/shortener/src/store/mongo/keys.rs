//! API keys in MongoDB: digests, never keys.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mongodb::bson::{self, doc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    MongoStore, is_duplicate_key, time_from_bson, time_to_bson, unavailable, uuid_to_bson,
};
use crate::keys::{KeyDigest, KeyRecord};
use crate::store::{Keys, StoreError, stored_digest, stored_role};

/// An API key's record: its digest, never the key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct KeyDocument {
    #[serde(rename = "_id")]
    id: bson::Uuid,
    name: String,
    role: String,
    /// SHA-256 of the key, hex.
    digest: String,
    created_at: bson::DateTime,
    last_used_at: Option<bson::DateTime>,
    revoked_at: Option<bson::DateTime>,
}

impl KeyDocument {
    fn from_record(key: &KeyRecord) -> Self {
        Self {
            id: uuid_to_bson(key.id),
            name: key.name.clone(),
            role: key.role.as_str().to_owned(),
            digest: key.digest.to_hex(),
            created_at: time_to_bson(key.created_at),
            last_used_at: key.last_used_at.map(time_to_bson),
            revoked_at: key.revoked_at.map(time_to_bson),
        }
    }

    fn into_record(self) -> Result<KeyRecord, StoreError> {
        Ok(KeyRecord {
            role: stored_role(&self.name, &self.role)?,
            digest: stored_digest(&self.name, &self.digest)?,
            id: Uuid::from_bytes(self.id.bytes()),
            name: self.name,
            created_at: time_from_bson(self.created_at),
            last_used_at: self.last_used_at.map(time_from_bson),
            revoked_at: self.revoked_at.map(time_from_bson),
        })
    }
}

#[async_trait]
impl Keys for MongoStore {
    async fn insert_key(&self, key: &KeyRecord) -> Result<(), StoreError> {
        match self.keys.insert_one(KeyDocument::from_record(key)).await {
            Ok(_) => Ok(()),
            Err(error) if is_duplicate_key(&error) => {
                Err(StoreError::KeyNameTaken(key.name.clone()))
            }
            Err(error) => Err(unavailable(error)),
        }
    }

    async fn find_key(&self, digest: &KeyDigest) -> Result<Option<KeyRecord>, StoreError> {
        self.keys
            .find_one(doc! { "digest": digest.to_hex() })
            .await
            .map_err(unavailable)?
            .map(KeyDocument::into_record)
            .transpose()
    }

    async fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let mut cursor = self
            .keys
            .find(doc! {})
            .sort(doc! { "_id": 1 })
            .await
            .map_err(unavailable)?;
        let mut keys = Vec::new();
        while cursor.advance().await.map_err(unavailable)? {
            let document = cursor
                .deserialize_current()
                .map_err(|e| StoreError::Unavailable(e.into()))?;
            keys.push(document.into_record()?);
        }
        Ok(keys)
    }

    async fn revoke_key(&self, name: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let result = self
            .keys
            .update_one(
                doc! { "name": name, "revoked_at": null },
                doc! { "$set": { "revoked_at": time_to_bson(at) } },
            )
            .await
            .map_err(unavailable)?;
        Ok(result.modified_count > 0)
    }

    async fn touch_key(&self, id: Uuid, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.keys
            .update_one(
                doc! { "_id": uuid_to_bson(id) },
                doc! { "$set": { "last_used_at": time_to_bson(at) } },
            )
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
