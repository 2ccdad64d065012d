//! Link copies on ClickHouse: every change in `link_changes`, the folded
//! copy in `url_creations` (newest version wins), codes in `link_codes`.

use super::*;

/// A link id as the API orders ids: by their bytes, as their text sorts.
/// ClickHouse compares a `UUID` by its second half first, so ids made in
/// one order (UUIDv7) would otherwise come back in another, and would
/// differ from the SQLite store's order.
const BY_ID: &str = "toString(shortener_url_id)";

#[derive(Debug, Clone, Row, Serialize, Deserialize)]
struct CodeRow {
    short_code: String,
    #[serde(with = "clickhouse::serde::uuid")]
    shortener_url_id: Uuid,
}

#[derive(Debug, Clone, Row, Serialize, Deserialize)]
struct ChangeRow {
    #[serde(with = "clickhouse::serde::uuid")]
    shortener_url_id: Uuid,
    #[serde(with = "clickhouse::serde::uuid")]
    change_id: Uuid,
    body: String,
}

#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub(super) struct LinkRecord {
    #[serde(with = "clickhouse::serde::uuid")]
    shortener_url_id: Uuid,
    short_code: String,
    target: Option<String>,
    target_host: Option<String>,
    created_at: Option<u32>,
    expires_at: Option<u32>,
    deleted_at: Option<u32>,
    last_update_us: i64,
    expires_from_update: u8,
    version: u64,
}

impl From<&LinkCopy> for LinkRecord {
    fn from(l: &LinkCopy) -> Self {
        Self {
            shortener_url_id: l.shortener_url_id,
            short_code: l.short_code.clone(),
            target: l.target.clone(),
            target_host: l.target_host.clone(),
            created_at: l.created_at.map(datetime),
            expires_at: l.expires_at.map(datetime),
            deleted_at: l.deleted_at.map(datetime),
            last_update_us: l.last_update_us,
            expires_from_update: u8::from(l.expires_from_update),
            version: l.version,
        }
    }
}

impl From<LinkRecord> for LinkCopy {
    fn from(r: LinkRecord) -> Self {
        Self {
            shortener_url_id: r.shortener_url_id,
            short_code: r.short_code,
            target: r.target,
            target_host: r.target_host,
            created_at: r.created_at.map(i64::from),
            expires_at: r.expires_at.map(i64::from),
            deleted_at: r.deleted_at.map(i64::from),
            last_update_us: r.last_update_us,
            expires_from_update: r.expires_from_update != 0,
            version: r.version,
        }
    }
}

impl ClickHouseStore {
    async fn links_where(&self, condition: &str) -> Result<Vec<LinkCopy>, StoreError> {
        let rows: Vec<LinkRecord> = self
            .client()
            .query(&format!(
                "SELECT ?fields FROM url_creations FINAL WHERE {condition}"
            ))
            .fetch_all()
            .await
            .map_err(failed)?;
        Ok(rows.into_iter().map(LinkCopy::from).collect())
    }

    /// Copies meeting `condition`, in id order after `after`, at most `limit`.
    pub(super) async fn links_page_where(
        &self,
        condition: &str,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<LinkCopy>, StoreError> {
        let after = after.map_or_else(|| "1".to_owned(), |id| format!("{BY_ID} > '{id}'"));
        self.links_where(&format!(
            "{condition} AND {after} ORDER BY {BY_ID} LIMIT {limit}"
        ))
        .await
    }
}

#[async_trait]
impl LinkCopies for ClickHouseStore {
    async fn links(&self, ids: &[Uuid]) -> Result<Vec<LinkCopy>, StoreError> {
        let mut found = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(1_000) {
            found.extend(
                self.links_where(&format!("shortener_url_id IN ({})", uuid_list(chunk)))
                    .await?,
            );
        }
        Ok(found)
    }

    async fn record_link_changes(&self, changes: &[ChangeRecord]) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut insert = self
            .client()
            .insert::<ChangeRow>("link_changes")
            .await
            .map_err(failed)?;
        for change in changes {
            insert
                .write(&ChangeRow {
                    shortener_url_id: change.url_id,
                    change_id: change.change_id,
                    body: change.body.clone(),
                })
                .await
                .map_err(failed)?;
        }
        insert.end().await.map_err(failed)?;
        if self.settings.replicated {
            self.mark_links_dirty(changes).await?;
        }
        Ok(())
    }

    async fn link_changes(&self, ids: &[Uuid]) -> Result<Vec<ChangeRecord>, StoreError> {
        let mut found = Vec::new();
        for chunk in ids.chunks(1_000) {
            let rows: Vec<ChangeRow> = self
                .client()
                .query(&format!(
                    "SELECT ?fields FROM link_changes FINAL WHERE shortener_url_id IN ({})",
                    uuid_list(chunk)
                ))
                .fetch_all()
                .await
                .map_err(failed)?;
            found.extend(rows.into_iter().map(|r| ChangeRecord {
                url_id: r.shortener_url_id,
                change_id: r.change_id,
                body: r.body,
            }));
        }
        Ok(found)
    }

    async fn save_links(&self, links: &[LinkCopy]) -> Result<(), StoreError> {
        if links.is_empty() {
            return Ok(());
        }
        let mut insert = self
            .client()
            .insert::<LinkRecord>("url_creations")
            .await
            .map_err(failed)?;
        for link in links {
            insert
                .write(&LinkRecord::from(link))
                .await
                .map_err(failed)?;
        }
        insert.end().await.map_err(failed)?;
        let mut codes = self
            .client()
            .insert::<CodeRow>("link_codes")
            .await
            .map_err(failed)?;
        for link in links.iter().filter(|l| !l.short_code.is_empty()) {
            codes
                .write(&CodeRow {
                    short_code: link.short_code.clone(),
                    shortener_url_id: link.shortener_url_id,
                })
                .await
                .map_err(failed)?;
        }
        codes.end().await.map_err(failed)
    }

    async fn link_by_code(&self, code: &str) -> Result<Option<LinkCopy>, StoreError> {
        let mut ids: Vec<Uuid> = self
            .client()
            .query("SELECT ?fields FROM link_codes WHERE short_code = ?")
            .bind(code)
            .fetch_all::<CodeRow>()
            .await
            .map_err(failed)?
            .into_iter()
            .map(|row| row.shortener_url_id)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let copies = self.links(&ids).await?;
        Ok(copies
            .into_iter()
            .filter(|l| l.short_code == code)
            .max_by_key(|l| (l.created_at.is_some(), l.version)))
    }

    async fn link_page(
        &self,
        after: Option<LinkCursor>,
        limit: u32,
    ) -> Result<Vec<LinkCopy>, StoreError> {
        const CREATED: &str = "coalesce(toUInt32(created_at), 0)";
        let after = after.map_or_else(
            || "1".to_owned(),
            |c| {
                format!(
                    "({CREATED} < {t} OR ({CREATED} = {t} AND {BY_ID} < '{id}'))",
                    t = c.created_at.max(0),
                    id = c.id
                )
            },
        );
        let rows: Vec<LinkRecord> = self
            .client()
            .query(&format!(
                "SELECT ?fields FROM url_creations FINAL WHERE {after} \
                 ORDER BY {CREATED} DESC, {BY_ID} DESC LIMIT {limit}"
            ))
            .fetch_all()
            .await
            .map_err(failed)?;
        Ok(rows.into_iter().map(LinkCopy::from).collect())
    }
}
