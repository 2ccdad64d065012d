//! API keys in SQLite: digests, never keys.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, SqlErr};
use uuid::Uuid;

use super::entities::api_keys;
use super::{SqliteStore, unavailable};
use crate::keys::{KeyDigest, KeyRecord};
use crate::store::{Keys, StoreError, stored_digest, stored_role};

fn to_key(model: api_keys::Model) -> Result<KeyRecord, StoreError> {
    Ok(KeyRecord {
        role: stored_role(&model.name, &model.role)?,
        digest: stored_digest(&model.name, &model.digest)?,
        id: model.id,
        name: model.name,
        created_at: model.created_at,
        last_used_at: model.last_used_at,
        revoked_at: model.revoked_at,
    })
}

#[async_trait]
impl Keys for SqliteStore {
    async fn insert_key(&self, key: &KeyRecord) -> Result<(), StoreError> {
        let row = api_keys::ActiveModel {
            id: Set(key.id),
            name: Set(key.name.clone()),
            role: Set(key.role.as_str().to_owned()),
            digest: Set(key.digest.to_hex()),
            created_at: Set(key.created_at),
            last_used_at: Set(key.last_used_at),
            revoked_at: Set(key.revoked_at),
        };
        match api_keys::Entity::insert(row)
            .exec_without_returning(&self.db)
            .await
        {
            Ok(_) => Ok(()),
            Err(error) => Err(match error.sql_err() {
                Some(SqlErr::UniqueConstraintViolation(_)) => {
                    StoreError::KeyNameTaken(key.name.clone())
                }
                _ => unavailable(error),
            }),
        }
    }

    async fn find_key(&self, digest: &KeyDigest) -> Result<Option<KeyRecord>, StoreError> {
        api_keys::Entity::find()
            .filter(api_keys::Column::Digest.eq(digest.to_hex()))
            .one(&self.db)
            .await
            .map_err(unavailable)?
            .map(to_key)
            .transpose()
    }

    async fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        api_keys::Entity::find()
            .order_by_asc(api_keys::Column::Id)
            .all(&self.db)
            .await
            .map_err(unavailable)?
            .into_iter()
            .map(to_key)
            .collect()
    }

    async fn revoke_key(&self, name: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let revoked = api_keys::Entity::update_many()
            .col_expr(api_keys::Column::RevokedAt, Expr::value(at))
            .filter(api_keys::Column::Name.eq(name))
            .filter(api_keys::Column::RevokedAt.is_null())
            .exec(&self.db)
            .await
            .map_err(unavailable)?;
        Ok(revoked.rows_affected > 0)
    }

    async fn touch_key(&self, id: Uuid, at: DateTime<Utc>) -> Result<(), StoreError> {
        api_keys::Entity::update_many()
            .col_expr(api_keys::Column::LastUsedAt, Expr::value(at))
            .filter(api_keys::Column::Id.eq(id))
            .exec(&self.db)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
