//! A link's stats in SQLite: whole buckets from the rollups, the window's
//! ragged edges from the raw clicks.

use super::*;

/// The stats reads over one connection: the pool, or a transaction, whose
/// reads all see one snapshot.
struct Reading<'a, C>(&'a C);

impl<C: ConnectionTrait> Reading<'_, C> {
    async fn query(&self, sql: &str, values: Vec<Value>) -> Result<Vec<QueryResult>, StoreError> {
        self.0
            .query_all_raw(statement(sql, values))
            .await
            .map_err(failed)
    }

    /// The most frequent non-empty values of one dimension (the `n`th of
    /// [`Dimension::ALL`]), most clicks first, ties by value: whole days
    /// from the daily rollups, the edges of the range from raw rows.
    async fn top(
        &self,
        id: Uuid,
        plan: &Plan,
        n: usize,
        dimension: Dimension,
        limit: u32,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let column = dimension.column();
        let mut parts = Vec::new();
        let mut values: Vec<Value> = Vec::new();
        if let Some((from, to)) = plan.core {
            parts.push(
                "SELECT value, clicks FROM click_day_values \
                 WHERE shortener_url_id = ? AND dimension = ? AND day >= ? AND day < ?"
                    .to_owned(),
            );
            values.extend([id.into(), (n as i64).into(), from.into(), to.into()]);
        }
        for (from, to) in &plan.raw {
            parts.push(format!(
                "SELECT {column} AS value, COUNT(*) AS clicks FROM clicks \
                 WHERE {IN_WINDOW} AND {column} != '' GROUP BY value"
            ));
            values.extend([id.into(), (*from).into(), (*to).into()]);
        }
        if parts.is_empty() {
            return Ok(Vec::new());
        }
        values.push(i64::from(limit).into());
        self.query(
            &format!(
                "SELECT value, SUM(clicks) AS clicks FROM ({}) \
                 GROUP BY value ORDER BY clicks DESC, value ASC LIMIT ?",
                parts.join(" UNION ALL ")
            ),
            values,
        )
        .await?
        .iter()
        .map(|row| {
            Ok((
                row.try_get("", "value").map_err(failed)?,
                count(row.try_get("", "clicks").map_err(failed)?),
            ))
        })
        .collect()
    }

    /// Whether the link has a click in `[from, to)`.
    async fn any_click(&self, id: Uuid, from: i64, to: i64) -> Result<bool, StoreError> {
        if from >= to {
            return Ok(false);
        }
        let rows = self
            .query(
                &format!("SELECT EXISTS (SELECT 1 FROM clicks WHERE {IN_WINDOW}) AS found"),
                vec![id.into(), from.into(), to.into()],
            )
            .await?;
        Ok(rows
            .first()
            .map(|r| r.try_get::<i64>("", "found"))
            .transpose()
            .map_err(failed)?
            == Some(1))
    }

    /// How `window` is read at `size`: whole buckets from rollups, ragged
    /// edges from raw rows (see [`rollup::plan`]).
    async fn plan(&self, window: Window, size: i64) -> Result<Plan, StoreError> {
        let Window { url_id, from, to } = window;
        if from >= to {
            return Ok(rollup::plan(from, to, size, true, true));
        }
        let before = !self
            .any_click(url_id, rollup::floor(from, size), from)
            .await?;
        let after = !self.any_click(url_id, to, rollup::ceil(to, size)).await?;
        Ok(rollup::plan(from, to, size, before, after))
    }
    async fn totals(&self, window: Window) -> Result<Totals, StoreError> {
        let plan = self.plan(window, DAY).await?;
        let mut totals = Totals::default();
        let mut parts = Vec::new();
        if let Some((from, to)) = plan.core {
            parts.push((
                "SELECT COALESCE(SUM(clicks), 0) AS clicks, COALESCE(SUM(bots), 0) AS bots, \
                 COALESCE(SUM(uniques), 0) AS uniques FROM click_days \
                 WHERE shortener_url_id = ? AND day >= ? AND day < ?"
                    .to_owned(),
                (from, to),
            ));
        }
        for range in plan.raw {
            // Visitors are distinct per day: a raw range may span two.
            parts.push((
                format!(
                    "SELECT COALESCE(SUM(clicks), 0) AS clicks, COALESCE(SUM(bots), 0) AS bots, \
                     COALESCE(SUM(uniques), 0) AS uniques FROM (SELECT COUNT(*) AS clicks, \
                     SUM(is_bot) AS bots, COUNT(DISTINCT NULLIF(visitor_key, '')) AS uniques \
                     FROM clicks WHERE {IN_WINDOW} GROUP BY {})",
                    bucket_of("clicked_at", DAY)
                ),
                range,
            ));
        }
        for (sql, (from, to)) in parts {
            let rows = self
                .query(&sql, vec![window.url_id.into(), from.into(), to.into()])
                .await?;
            if let Some(row) = rows.first() {
                totals.clicks += count(row.try_get("", "clicks").map_err(failed)?);
                totals.bot_clicks += count(row.try_get("", "bots").map_err(failed)?);
                totals.unique_visitors += count(row.try_get("", "uniques").map_err(failed)?);
            }
        }
        Ok(totals)
    }

    async fn series(&self, window: Window, bucket: Bucket) -> Result<Vec<BucketCount>, StoreError> {
        let size = bucket.seconds();
        let plan = self.plan(window, size).await?;
        let mut parts = Vec::new();
        if let Some(core) = plan.core {
            let (table, column) = match bucket {
                Bucket::Hour => ("click_hours", "hour"),
                Bucket::Day => ("click_days", "day"),
            };
            parts.push((
                format!(
                    "SELECT {column} AS start, clicks, uniques FROM {table} \
                     WHERE shortener_url_id = ? AND {column} >= ? AND {column} < ?"
                ),
                core,
            ));
        }
        for range in plan.raw {
            parts.push((
                format!(
                    "SELECT {} AS start, COUNT(*) AS clicks, \
                     COUNT(DISTINCT NULLIF(visitor_key, '')) AS uniques \
                     FROM clicks WHERE {IN_WINDOW} GROUP BY start",
                    bucket_of("clicked_at", size)
                ),
                range,
            ));
        }
        let mut counts = Vec::new();
        for (sql, (from, to)) in parts {
            for row in self
                .query(&sql, vec![window.url_id.into(), from.into(), to.into()])
                .await?
            {
                counts.push(BucketCount {
                    start: row.try_get("", "start").map_err(failed)?,
                    clicks: count(row.try_get("", "clicks").map_err(failed)?),
                    unique_visitors: count(row.try_get("", "uniques").map_err(failed)?),
                });
            }
        }
        counts.retain(|c| c.clicks > 0);
        counts.sort_by_key(|c| c.start);
        Ok(counts)
    }

    async fn tops(
        &self,
        window: Window,
        limit: u32,
    ) -> Result<Vec<Vec<(String, u64)>>, StoreError> {
        let plan = self.plan(window, DAY).await?;
        let mut lists = Vec::with_capacity(Dimension::ALL.len());
        for (n, dimension) in Dimension::ALL.into_iter().enumerate() {
            lists.push(self.top(window.url_id, &plan, n, dimension, limit).await?);
        }
        Ok(lists)
    }
}

#[async_trait]
impl StatsReader for SqliteStore {
    async fn totals(&self, window: Window) -> Result<Totals, StoreError> {
        Reading(&self.db).totals(window).await
    }

    async fn series(&self, window: Window, bucket: Bucket) -> Result<Vec<BucketCount>, StoreError> {
        Reading(&self.db).series(window, bucket).await
    }

    async fn tops(
        &self,
        window: Window,
        limit: u32,
    ) -> Result<Vec<Vec<(String, u64)>>, StoreError> {
        Reading(&self.db).tops(window, limit).await
    }

    /// In one read transaction: a batch of clicks committed meanwhile is in
    /// all three parts or in none, so the series always adds up to the total.
    async fn window_stats(
        &self,
        window: Window,
        bucket: Bucket,
        limit: u32,
    ) -> Result<WindowStats, StoreError> {
        let txn = self.db.begin().await.map_err(failed)?;
        let reading = Reading(&txn);
        let stats = WindowStats {
            totals: reading.totals(window).await?,
            series: reading.series(window, bucket).await?,
            tops: reading.tops(window, limit).await?,
        };
        txn.commit().await.map_err(failed)?;
        Ok(stats)
    }

    async fn first_click(&self, id: Uuid) -> Result<Option<i64>, StoreError> {
        // The hourly rollups keep each hour's first second, raw rows or not.
        let rows = self
            .query(
                "SELECT MIN(first_at) AS first FROM click_hours WHERE shortener_url_id = ?",
                vec![id.into()],
            )
            .await?;
        rows.first()
            .map(|r| r.try_get::<Option<i64>>("", "first"))
            .transpose()
            .map(Option::flatten)
            .map_err(failed)
    }

    async fn click_totals(&self, ids: &[Uuid]) -> Result<Vec<(Uuid, u64)>, StoreError> {
        let mut found = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(ROWS_PER_STATEMENT) {
            // From the daily rollups: a few hundred rows for a link of any
            // size.
            let rows = self
                .query(
                    &format!(
                        "SELECT shortener_url_id, SUM(clicks) AS clicks FROM click_days \
                         WHERE shortener_url_id IN ({}) GROUP BY shortener_url_id",
                        placeholders(chunk.len())
                    ),
                    chunk.iter().map(|id| (*id).into()).collect(),
                )
                .await?;
            for row in &rows {
                let id: Uuid = row.try_get("", "shortener_url_id").map_err(failed)?;
                let clicks: i64 = row.try_get("", "clicks").map_err(failed)?;
                if clicks > 0 {
                    found.push((id, count(clicks)));
                }
            }
        }
        Ok(found)
    }
}
