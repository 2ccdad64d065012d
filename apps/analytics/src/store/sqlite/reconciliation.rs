//! The reconciliation report's reads in SQLite.

use super::*;

#[async_trait]
impl Reconciliation for SqliteStore {
    async fn links_on(
        &self,
        list: LinkList,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<LinkCopy>, StoreError> {
        let condition = match list {
            LinkList::Uncreated => "created_at IS NULL",
            LinkList::Deleted => "deleted_at IS NOT NULL",
        };
        self.links_page_where(condition, after, limit).await
    }

    async fn click_summaries(&self, ids: &[Uuid]) -> Result<Vec<ClickSummary>, StoreError> {
        let mut found = Vec::new();
        for chunk in ids.chunks(ROWS_PER_STATEMENT) {
            let rows = self
                .query(
                    &format!(
                        "SELECT shortener_url_id, COUNT(*) AS clicks, MIN(clicked_at) AS first, \
                         MAX(clicked_at) AS last FROM clicks WHERE shortener_url_id IN ({}) \
                         GROUP BY shortener_url_id",
                        placeholders(chunk.len())
                    ),
                    chunk.iter().map(|id| (*id).into()).collect(),
                )
                .await?;
            for row in &rows {
                found.push(ClickSummary {
                    shortener_url_id: row.try_get("", "shortener_url_id").map_err(failed)?,
                    clicks: count(row.try_get("", "clicks").map_err(failed)?),
                    first_click_at: row.try_get("", "first").map_err(failed)?,
                    last_click_at: row.try_get("", "last").map_err(failed)?,
                });
            }
        }
        Ok(found)
    }
}
