//! A link's stats on ClickHouse: the rollups for whole, settled buckets,
//! the raw rows (`FINAL`) for the window's edges and its days still dirty.

use super::rollups::dimension_pairs;
use super::*;

use crate::store::rollup::{self, Plan};

#[derive(Debug, Row, Deserialize)]
struct TopRecord {
    dimension: u8,
    value: String,
    clicks: u64,
}

/// `(a, b)` ranges of raw rows, or the dirty days within `core`, as SQL.
fn raw_condition(plan: &Plan, dirty: &[i64]) -> String {
    let mut parts: Vec<String> = plan
        .raw
        .iter()
        .map(|(from, to)| {
            format!(
                "(clicked_at >= toDateTime({}) AND clicked_at < toDateTime({}))",
                datetime(*from),
                datetime(*to)
            )
        })
        .collect();
    if let Some((from, to)) = plan.core {
        // Dirty days inside the whole buckets: their hours (days) from raw rows.
        let days: Vec<String> = dirty
            .iter()
            .filter(|d| **d + 86_400 > from && **d < to)
            .map(|d| d.to_string())
            .collect();
        if !days.is_empty() {
            parts.push(format!(
                "(clicked_at >= toDateTime({}) AND clicked_at < toDateTime({}) \
                 AND intDiv(toUInt32(clicked_at), 86400) * 86400 IN ({}))",
                datetime(from),
                datetime(to),
                days.join(", ")
            ));
        }
    }
    if parts.is_empty() {
        "0".to_owned()
    } else {
        format!("({})", parts.join(" OR "))
    }
}

/// The rollup rows of `core` at `column` (hour or day), minus dirty days.
fn rollup_condition(plan: &Plan, dirty: &[i64], column: &str) -> String {
    let Some((from, to)) = plan.core else {
        return "0".to_owned();
    };
    let mut condition = format!(
        "{column} >= {} AND {column} < {}",
        datetime(from),
        datetime(to)
    );
    if !dirty.is_empty() {
        let days: Vec<String> = dirty.iter().map(|d| d.to_string()).collect();
        condition.push_str(&format!(
            " AND intDiv({column}, 86400) * 86400 NOT IN ({})",
            days.join(", ")
        ));
    }
    condition
}

impl ClickHouseStore {
    /// The link's days not yet compacted.
    async fn dirty_days(&self, id: Uuid) -> Result<Vec<i64>, StoreError> {
        let days: Vec<u32> = self
            .client()
            .query(
                "SELECT DISTINCT day FROM rollup_dirty WHERE shortener_url_id = toUUID(?) \
                 AND marked_us > (SELECT max(compacted_us) FROM rollup_watermark)",
            )
            .bind(id.to_string())
            .fetch_all()
            .await
            .map_err(failed)?;
        Ok(days.into_iter().map(i64::from).collect())
    }

    async fn any_click(&self, id: Uuid, from: i64, to: i64) -> Result<bool, StoreError> {
        if from >= to {
            return Ok(false);
        }
        let found: Vec<u8> = self
            .windowed(
                &format!("SELECT toUInt8(1) FROM clicks WHERE {IN_WINDOW} LIMIT 1"),
                Window {
                    url_id: id,
                    from,
                    to,
                },
            )
            .fetch_all()
            .await
            .map_err(failed)?;
        Ok(!found.is_empty())
    }

    /// How `window` is read at `size`, and the link's dirty days.
    async fn plan(&self, window: Window, size: i64) -> Result<(Plan, Vec<i64>), StoreError> {
        let Window { url_id, from, to } = window;
        if from >= to {
            return Ok((rollup::plan(from, to, size, true, true), Vec::new()));
        }
        let before = !self
            .any_click(url_id, rollup::floor(from, size), from)
            .await?;
        let after = !self.any_click(url_id, to, rollup::ceil(to, size)).await?;
        let dirty = self.dirty_days(url_id).await?;
        Ok((rollup::plan(from, to, size, before, after), dirty))
    }

    pub(super) async fn rollup_first_click(&self, id: Uuid) -> Result<Option<i64>, StoreError> {
        let dirty = self.dirty_days(id).await?;
        let days: Vec<String> = dirty.iter().map(|d| d.to_string()).collect();
        let raw = if days.is_empty() {
            "SELECT toUInt32(0) AS t, toUInt64(0) AS n".to_owned()
        } else {
            format!(
                "SELECT toUInt32(min(clicked_at)) AS t, count() AS n FROM clicks \
                 WHERE shortener_url_id = toUUID('{id}') \
                 AND intDiv(toUInt32(clicked_at), 86400) * 86400 IN ({})",
                days.join(", ")
            )
        };
        let (rolled, rolled_n, raw_t, raw_n) = self
            .client()
            .query(&format!(
                "SELECT r.t, r.n, w.t, w.n FROM \
                 (SELECT toUInt32(min(first_at)) AS t, count() AS n FROM click_hours FINAL \
                  WHERE shortener_url_id = toUUID('{id}')) AS r CROSS JOIN ({raw}) AS w"
            ))
            .fetch_one::<(u32, u64, u32, u64)>()
            .await
            .map_err(failed)?;
        let first = [
            (rolled_n > 0).then_some(rolled),
            (raw_n > 0).then_some(raw_t),
        ]
        .into_iter()
        .flatten()
        .min();
        Ok(first.map(i64::from))
    }

    pub(super) async fn rollup_totals(&self, window: Window) -> Result<Totals, StoreError> {
        let (plan, dirty) = self.plan(window, 86_400).await?;
        let id = window.url_id;
        let row: TotalsRecord = self
            .client()
            .query(&format!(
                "SELECT toUInt64(sum(c)) AS clicks, toUInt64(sum(u)) AS uniques, \
                 toUInt64(sum(b)) AS bots FROM ( \
                 SELECT clicks AS c, uniques AS u, bots AS b FROM click_days FINAL \
                 WHERE shortener_url_id = toUUID('{id}') AND {} \
                 UNION ALL \
                 SELECT count() AS c, {UNIQUES} AS u, toUInt64(sum(is_bot)) AS b \
                 FROM clicks FINAL WHERE shortener_url_id = toUUID('{id}') AND {} \
                 GROUP BY intDiv(toUInt32(clicked_at), 86400))",
                rollup_condition(&plan, &dirty, "day"),
                raw_condition(&plan, &dirty),
            ))
            .fetch_one()
            .await
            .map_err(failed)?;
        Ok(Totals {
            clicks: row.clicks,
            unique_visitors: row.uniques,
            bot_clicks: row.bots,
        })
    }

    pub(super) async fn rollup_series(
        &self,
        window: Window,
        bucket: Bucket,
    ) -> Result<Vec<BucketCount>, StoreError> {
        let size = bucket.seconds();
        let (plan, dirty) = self.plan(window, size).await?;
        let (table, column) = match bucket {
            Bucket::Hour => ("click_hours", "hour"),
            Bucket::Day => ("click_days", "day"),
        };
        let id = window.url_id;
        let rows: Vec<BucketRecord> = self
            .client()
            .query(&format!(
                "SELECT start, toUInt64(sum(c)) AS clicks, toUInt64(sum(u)) AS uniques FROM ( \
                 SELECT toInt64({column}) AS start, clicks AS c, uniques AS u FROM {table} FINAL \
                 WHERE shortener_url_id = toUUID('{id}') AND {} \
                 UNION ALL \
                 SELECT toInt64(intDiv(toUInt32(clicked_at), {size}) * {size}) AS start, \
                 count() AS c, {UNIQUES} AS u FROM clicks FINAL \
                 WHERE shortener_url_id = toUUID('{id}') AND {} GROUP BY start) \
                 GROUP BY start HAVING clicks > 0 ORDER BY start",
                rollup_condition(&plan, &dirty, column),
                raw_condition(&plan, &dirty),
            ))
            .fetch_all()
            .await
            .map_err(failed)?;
        Ok(rows
            .into_iter()
            .map(|r| BucketCount {
                start: r.start,
                clicks: r.clicks,
                unique_visitors: r.uniques,
            })
            .collect())
    }

    pub(super) async fn rollup_tops(
        &self,
        window: Window,
        limit: u32,
    ) -> Result<Vec<Vec<(String, u64)>>, StoreError> {
        let (plan, dirty) = self.plan(window, 86_400).await?;
        let id = window.url_id;
        let pairs = dimension_pairs();
        let rows: Vec<TopRecord> = self
            .client()
            .query(&format!(
                "SELECT dimension, value, toUInt64(sum(c)) AS clicks FROM ( \
                 SELECT dimension, value, clicks AS c FROM click_day_values FINAL \
                 WHERE shortener_url_id = toUUID('{id}') AND {} \
                 UNION ALL \
                 SELECT tupleElement(pair, 1) AS dimension, tupleElement(pair, 2) AS value, \
                 count() AS c FROM clicks FINAL ARRAY JOIN [{pairs}] AS pair \
                 WHERE shortener_url_id = toUUID('{id}') AND {} AND tupleElement(pair, 2) != '' \
                 GROUP BY dimension, value) \
                 GROUP BY dimension, value ORDER BY dimension, clicks DESC, value ASC \
                 LIMIT {limit} BY dimension",
                rollup_condition(&plan, &dirty, "day"),
                raw_condition(&plan, &dirty),
            ))
            .fetch_all()
            .await
            .map_err(failed)?;
        let mut lists = vec![Vec::new(); Dimension::ALL.len()];
        for row in rows {
            if let Some(list) = lists.get_mut(usize::from(row.dimension)) {
                list.push((row.value, row.clicks));
            }
        }
        Ok(lists)
    }
}

#[async_trait]
impl StatsReader for ClickHouseStore {
    async fn totals(&self, window: Window) -> Result<Totals, StoreError> {
        self.rollup_totals(window).await
    }

    async fn series(&self, window: Window, bucket: Bucket) -> Result<Vec<BucketCount>, StoreError> {
        self.rollup_series(window, bucket).await
    }

    async fn tops(
        &self,
        window: Window,
        limit: u32,
    ) -> Result<Vec<Vec<(String, u64)>>, StoreError> {
        self.rollup_tops(window, limit).await
    }

    async fn first_click(&self, id: Uuid) -> Result<Option<i64>, StoreError> {
        self.rollup_first_click(id).await
    }

    /// Distinct event ids within each link's key range: exact without
    /// `FINAL`, and reading only the `event_id` column of those links.
    async fn click_totals(&self, ids: &[Uuid]) -> Result<Vec<(Uuid, u64)>, StoreError> {
        let mut found = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(1_000) {
            let rows: Vec<LinkTotalRecord> = self
                .client()
                .query(&format!(
                    "SELECT shortener_url_id, uniqExact(event_id) AS clicks FROM clicks \
                     WHERE shortener_url_id IN ({}) GROUP BY shortener_url_id",
                    uuid_list(chunk)
                ))
                .fetch_all()
                .await
                .map_err(failed)?;
            found.extend(rows.into_iter().map(|r| (r.shortener_url_id, r.clicks)));
        }
        Ok(found)
    }
}
