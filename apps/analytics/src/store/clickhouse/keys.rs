//! Analytics' API keys on ClickHouse: digests, never keys; a key's uses
//! are rows of their own, so checking a key never rewrites it.

use super::*;

/// A key's row; `revoked_at` 0 means live.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
struct KeyRow {
    #[serde(with = "clickhouse::serde::uuid")]
    id: Uuid,
    name: String,
    digest: String,
    created_at: u32,
    revoked_at: u32,
    version: u64,
}

#[derive(Debug, Row, Serialize, Deserialize)]
struct KeyUseRow {
    #[serde(with = "clickhouse::serde::uuid")]
    id: Uuid,
    used_at: u32,
}

impl KeyRow {
    fn into_record(self, last_used_at: Option<i64>) -> KeyRecord {
        KeyRecord {
            id: self.id,
            name: self.name,
            digest: self.digest,
            created_at: i64::from(self.created_at),
            last_used_at,
            revoked_at: (self.revoked_at > 0).then_some(i64::from(self.revoked_at)),
        }
    }
}

impl ClickHouseStore {
    /// Keys (their latest rows), all or those whose `column` is `value`.
    async fn keys_where(&self, filter: Option<(&str, &str)>) -> Result<Vec<KeyRow>, StoreError> {
        let query = match filter {
            Some((column, value)) => self
                .client()
                .query(&format!(
                    "SELECT ?fields FROM api_keys FINAL WHERE {column} = ?"
                ))
                .bind(value),
            None => self.client().query("SELECT ?fields FROM api_keys FINAL"),
        };
        query.fetch_all().await.map_err(failed)
    }

    async fn write_key(&self, row: KeyRow) -> Result<(), StoreError> {
        let mut insert = self
            .client()
            .insert::<KeyRow>("api_keys")
            .await
            .map_err(failed)?;
        insert.write(&row).await.map_err(failed)?;
        insert.end().await.map_err(failed)
    }
}

#[async_trait]
impl Keys for ClickHouseStore {
    async fn insert_key(&self, key: &KeyRecord) -> Result<bool, StoreError> {
        // No unique constraints in ClickHouse: two creations of one name at
        // the same moment would both be kept (the later one wins by name).
        if !self.keys_where(Some(("name", &key.name))).await?.is_empty() {
            return Ok(false);
        }
        self.write_key(KeyRow {
            id: key.id,
            name: key.name.clone(),
            digest: key.digest.clone(),
            created_at: datetime(key.created_at),
            revoked_at: key.revoked_at.map_or(0, datetime),
            version: 1,
        })
        .await?;
        Ok(true)
    }

    async fn find_key(&self, digest: &str) -> Result<Option<KeyRecord>, StoreError> {
        // Last use is not needed to check a key, and costs a query.
        Ok(self
            .keys_where(Some(("digest", digest)))
            .await?
            .into_iter()
            .next()
            .map(|row| row.into_record(None)))
    }

    async fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let mut rows = self.keys_where(None).await?;
        rows.sort_by_key(|row| (row.created_at, row.id));
        let uses: Vec<KeyUseRow> = self
            .client()
            .query("SELECT id, max(used_at) AS used_at FROM api_key_uses GROUP BY id")
            .fetch_all()
            .await
            .map_err(failed)?;
        let used: std::collections::HashMap<Uuid, i64> = uses
            .into_iter()
            .map(|u| (u.id, i64::from(u.used_at)))
            .collect();
        Ok(rows
            .into_iter()
            .map(|row| {
                let last = used.get(&row.id).copied();
                row.into_record(last)
            })
            .collect())
    }

    async fn revoke_key(&self, name: &str, at: i64) -> Result<bool, StoreError> {
        let live = self
            .keys_where(Some(("name", name)))
            .await?
            .into_iter()
            .find(|row| row.revoked_at == 0);
        let Some(mut row) = live else {
            return Ok(false);
        };
        row.revoked_at = datetime(at).max(1);
        row.version += 1;
        self.write_key(row).await?;
        Ok(true)
    }

    async fn touch_key(&self, id: Uuid, at: i64) -> Result<(), StoreError> {
        let mut insert = self
            .client()
            .insert::<KeyUseRow>("api_key_uses")
            .await
            .map_err(failed)?;
        insert
            .write(&KeyUseRow {
                id,
                used_at: datetime(at),
            })
            .await
            .map_err(failed)?;
        insert.end().await.map_err(failed)
    }
}
