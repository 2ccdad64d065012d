//! The click log on ClickHouse: raw clicks written with their (link, day)
//! marked dirty for the compactor (see `rollups.rs`), retention by whole
//! monthly partitions, and the counts replay checks.

use super::*;

/// A click as written: borrowed from its row, so the insert copies each
/// string once, into the request body.
#[derive(Debug, Row, Serialize)]
struct ClickRecord<'a> {
    #[serde(with = "clickhouse::serde::uuid")]
    event_id: Uuid,
    #[serde(with = "clickhouse::serde::uuid")]
    shortener_url_id: Uuid,
    short_code: &'a str,
    clicked_at: u32,
    referrer_host: &'a str,
    browser: &'a str,
    os: &'a str,
    device: &'a str,
    is_bot: u8,
    visitor_key: &'a str,
    country: &'a str,
}

impl<'a> From<&'a ClickRow> for ClickRecord<'a> {
    fn from(c: &'a ClickRow) -> Self {
        Self {
            event_id: c.event_id,
            shortener_url_id: c.shortener_url_id,
            short_code: &c.short_code,
            clicked_at: datetime(c.clicked_at),
            referrer_host: &c.referrer_host,
            browser: &c.browser,
            os: &c.os,
            device: &c.device,
            is_bot: u8::from(c.is_bot),
            visitor_key: &c.visitor_key,
            country: &c.country,
        }
    }
}

#[async_trait]
impl ClickLog for ClickHouseStore {
    async fn insert_clicks(&self, clicks: &[ClickRow]) -> Result<(), StoreError> {
        // The raw rows and the marks of the days they touch are written at
        // once (two round trips in parallel, not in a row). The marks carry
        // the time taken before either started, and the compactor only
        // takes marks older than `SETTLE_US`; so the whole write must be
        // visible within that. A write that is not done by `WRITE_BOUND`
        // counts as failed and is retried with a new mark, which the
        // compactor then reads after the raw rows are there.
        let marked_us = u64::try_from(rollups::now_us()).unwrap_or_default();
        let raw = async {
            let mut insert = self
                .client()
                .insert::<ClickRecord<'_>>("clicks")
                .await
                .map_err(failed)?;
            for click in clicks {
                insert
                    .write(&ClickRecord::from(click))
                    .await
                    .map_err(failed)?;
            }
            insert.end().await.map_err(failed)
        };
        let write = futures::future::try_join(raw, self.mark_dirty(clicks, marked_us));
        let outcome = match tokio::time::timeout(WRITE_BOUND, write).await {
            Ok(written) => written.map(drop),
            Err(_) => Err(failed(anyhow::anyhow!(
                "the clicks were not written within {} s",
                WRITE_BOUND.as_secs()
            ))),
        };
        if outcome.is_err() {
            // The retry goes to a server that answers.
            self.fail_over().await;
        }
        outcome
    }

    async fn compact(&self, settled_before_us: i64) -> Result<u64, StoreError> {
        self.compact_days(settled_before_us).await
    }

    async fn drop_raw_clicks_before(&self, cutoff: i64) -> Result<u64, StoreError> {
        self.drop_raw_partitions_before(cutoff).await
    }

    async fn click_count(&self) -> Result<u64, StoreError> {
        self.rollup_click_count().await
    }

    async fn all_click_totals(&self) -> Result<Vec<(Uuid, u64)>, StoreError> {
        self.rollup_link_totals().await
    }

    async fn raw_click_totals(&self) -> Result<Vec<(Uuid, u64)>, StoreError> {
        self.link_totals_by(
            "SELECT shortener_url_id, uniqExact(event_id) AS clicks FROM clicks \
             GROUP BY shortener_url_id",
        )
        .await
    }

    async fn oldest_click(&self) -> Result<Option<i64>, StoreError> {
        // Raw clicks, and the rollups where the retention dropped them.
        let (clicks, oldest, hours, first) = self
            .client()
            .query(
                "SELECT r.n, r.t, h.n, h.t FROM \
                 (SELECT count() AS n, toUInt32(min(clicked_at)) AS t FROM clicks) AS r \
                 CROSS JOIN (SELECT count() AS n, toUInt32(min(first_at)) AS t \
                 FROM click_hours) AS h",
            )
            .fetch_one::<(u64, u32, u64, u32)>()
            .await
            .map_err(failed)?;
        Ok(
            [(clicks > 0).then_some(oldest), (hours > 0).then_some(first)]
                .into_iter()
                .flatten()
                .min()
                .map(i64::from),
        )
    }
}
