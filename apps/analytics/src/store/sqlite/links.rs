//! Link copies in SQLite: every change as its own row in `link_changes`,
//! the copy folded from them in `url_creations`.

use super::*;

#[async_trait]
impl LinkCopies for SqliteStore {
    async fn links(&self, ids: &[Uuid]) -> Result<Vec<LinkCopy>, StoreError> {
        let mut found = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(ROWS_PER_STATEMENT) {
            let rows = self
                .query(
                    &format!(
                        "SELECT {LINK_COLUMNS} FROM url_creations WHERE shortener_url_id IN ({})",
                        placeholders(chunk.len())
                    ),
                    chunk.iter().map(|id| (*id).into()).collect(),
                )
                .await?;
            for row in &rows {
                found.push(to_link(row)?);
            }
        }
        Ok(found)
    }

    async fn record_link_changes(&self, changes: &[ChangeRecord]) -> Result<(), StoreError> {
        let txn = self.db.begin().await.map_err(failed)?;
        for chunk in changes.chunks(ROWS_PER_STATEMENT) {
            let mut values = Vec::with_capacity(chunk.len() * 3);
            for c in chunk {
                values.extend([c.url_id.into(), c.change_id.into(), c.body.clone().into()]);
            }
            txn.execute_raw(statement(
                &format!(
                    "INSERT OR IGNORE INTO link_changes (shortener_url_id, change_id, body) \
                     VALUES {}",
                    vec!["(?, ?, ?)"; chunk.len()].join(", ")
                ),
                values,
            ))
            .await
            .map_err(failed)?;
        }
        txn.commit().await.map_err(failed)
    }

    async fn link_changes(&self, ids: &[Uuid]) -> Result<Vec<ChangeRecord>, StoreError> {
        let mut found = Vec::new();
        for chunk in ids.chunks(ROWS_PER_STATEMENT) {
            let rows = self
                .query(
                    &format!(
                        "SELECT shortener_url_id, change_id, body FROM link_changes \
                         WHERE shortener_url_id IN ({})",
                        placeholders(chunk.len())
                    ),
                    chunk.iter().map(|id| (*id).into()).collect(),
                )
                .await?;
            for row in &rows {
                found.push(ChangeRecord {
                    url_id: row.try_get("", "shortener_url_id").map_err(failed)?,
                    change_id: row.try_get("", "change_id").map_err(failed)?,
                    body: row.try_get("", "body").map_err(failed)?,
                });
            }
        }
        Ok(found)
    }

    async fn save_links(&self, links: &[LinkCopy]) -> Result<(), StoreError> {
        let txn = self.db.begin().await.map_err(failed)?;
        for l in links {
            // The higher version wins, whoever writes last.
            txn.execute_raw(statement(
                &format!(
                    "INSERT INTO url_creations ({LINK_COLUMNS}) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
                     ON CONFLICT (shortener_url_id) DO UPDATE SET \
                     short_code = excluded.short_code, target = excluded.target, \
                     target_host = excluded.target_host, created_at = excluded.created_at, \
                     expires_at = excluded.expires_at, deleted_at = excluded.deleted_at, \
                     last_update_us = excluded.last_update_us, \
                     expires_from_update = excluded.expires_from_update, \
                     version = excluded.version \
                     WHERE excluded.version > url_creations.version"
                ),
                vec![
                    l.shortener_url_id.into(),
                    l.short_code.clone().into(),
                    l.target.clone().into(),
                    l.target_host.clone().into(),
                    l.created_at.into(),
                    l.expires_at.into(),
                    l.deleted_at.into(),
                    l.last_update_us.into(),
                    i64::from(l.expires_from_update).into(),
                    i64::try_from(l.version).unwrap_or(i64::MAX).into(),
                ],
            ))
            .await
            .map_err(failed)?;
        }
        txn.commit().await.map_err(failed)
    }

    async fn link_by_code(&self, code: &str) -> Result<Option<LinkCopy>, StoreError> {
        let rows = self
            .query(
                &format!(
                    "SELECT {LINK_COLUMNS} FROM url_creations WHERE short_code = ? \
                     ORDER BY created_at IS NULL, version DESC LIMIT 1"
                ),
                vec![code.into()],
            )
            .await?;
        rows.first().map(to_link).transpose()
    }

    async fn link_page(
        &self,
        after: Option<LinkCursor>,
        limit: u32,
    ) -> Result<Vec<LinkCopy>, StoreError> {
        // `url_creations_newest` holds this order.
        let (condition, mut values): (&str, Vec<Value>) = match after {
            None => ("1", Vec::new()),
            Some(c) => (
                "(COALESCE(created_at, 0), shortener_url_id) < (?, ?)",
                vec![c.created_at.into(), c.id.into()],
            ),
        };
        values.push(i64::from(limit).into());
        self.query(
            &format!(
                "SELECT {LINK_COLUMNS} FROM url_creations WHERE {condition} \
                 ORDER BY COALESCE(created_at, 0) DESC, shortener_url_id DESC LIMIT ?"
            ),
            values,
        )
        .await?
        .iter()
        .map(to_link)
        .collect()
    }
}
