//! The reconciliation report's reads on ClickHouse.

use super::*;

#[derive(Debug, Row, Deserialize)]
struct SummaryRecord {
    #[serde(with = "clickhouse::serde::uuid")]
    shortener_url_id: Uuid,
    clicks: u64,
    first: u32,
    last: u32,
}

#[async_trait]
impl Reconciliation for ClickHouseStore {
    async fn links_on(
        &self,
        list: LinkList,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<LinkCopy>, StoreError> {
        let condition = match list {
            LinkList::Uncreated => "isNull(created_at)",
            LinkList::Deleted => "isNotNull(deleted_at)",
        };
        self.links_page_where(condition, after, limit).await
    }

    async fn click_summaries(&self, ids: &[Uuid]) -> Result<Vec<ClickSummary>, StoreError> {
        let mut found = Vec::new();
        for chunk in ids.chunks(1_000) {
            let rows: Vec<SummaryRecord> = self
                .client()
                .query(&format!(
                    // Exact without FINAL: duplicates change neither the
                    // distinct ids nor the first and last times.
                    "SELECT shortener_url_id, uniqExact(event_id) AS clicks, \
                     toUInt32(min(clicked_at)) AS first, toUInt32(max(clicked_at)) AS last \
                     FROM clicks WHERE shortener_url_id IN ({}) GROUP BY shortener_url_id",
                    uuid_list(chunk)
                ))
                .fetch_all()
                .await
                .map_err(failed)?;
            found.extend(rows.into_iter().map(|r| ClickSummary {
                shortener_url_id: r.shortener_url_id,
                clicks: r.clicks,
                first_click_at: i64::from(r.first),
                last_click_at: i64::from(r.last),
            }));
        }
        Ok(found)
    }
}
