//! Analytics' API keys in SQLite: digests, never keys.

use super::*;

const KEY_COLUMNS: &str = "id, name, digest, created_at, last_used_at, revoked_at";

fn to_key(row: &QueryResult) -> Result<KeyRecord, StoreError> {
    Ok(KeyRecord {
        id: row.try_get("", "id").map_err(failed)?,
        name: row.try_get("", "name").map_err(failed)?,
        digest: row.try_get("", "digest").map_err(failed)?,
        created_at: row.try_get("", "created_at").map_err(failed)?,
        last_used_at: row.try_get("", "last_used_at").map_err(failed)?,
        revoked_at: row.try_get("", "revoked_at").map_err(failed)?,
    })
}

#[async_trait]
impl Keys for SqliteStore {
    async fn insert_key(&self, key: &KeyRecord) -> Result<bool, StoreError> {
        let inserted = self
            .db
            .execute_raw(statement(
                &format!(
                    "INSERT OR IGNORE INTO api_keys ({KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
                ),
                vec![
                    key.id.into(),
                    key.name.clone().into(),
                    key.digest.clone().into(),
                    key.created_at.into(),
                    key.last_used_at.into(),
                    key.revoked_at.into(),
                ],
            ))
            .await
            .map_err(failed)?;
        Ok(inserted.rows_affected() == 1)
    }

    async fn find_key(&self, digest: &str) -> Result<Option<KeyRecord>, StoreError> {
        let rows = self
            .query(
                &format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE digest = ?"),
                vec![digest.into()],
            )
            .await?;
        rows.first().map(to_key).transpose()
    }

    async fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let rows = self
            .query(
                &format!("SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at, id"),
                Vec::new(),
            )
            .await?;
        rows.iter().map(to_key).collect()
    }

    async fn revoke_key(&self, name: &str, at: i64) -> Result<bool, StoreError> {
        let revoked = self
            .db
            .execute_raw(statement(
                "UPDATE api_keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
                vec![at.into(), name.into()],
            ))
            .await
            .map_err(failed)?;
        Ok(revoked.rows_affected() > 0)
    }

    async fn touch_key(&self, id: Uuid, at: i64) -> Result<(), StoreError> {
        self.db
            .execute_raw(statement(
                "UPDATE api_keys SET last_used_at = ? WHERE id = ?",
                vec![at.into(), id.into()],
            ))
            .await
            .map_err(failed)?;
        Ok(())
    }
}
