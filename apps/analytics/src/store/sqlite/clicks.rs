//! The click log in SQLite: each click once (`INSERT OR IGNORE` on its
//! `event_id`), its rollups kept in the same transaction, retention link
//! by link.

use super::*;

#[async_trait]
impl ClickLog for SqliteStore {
    async fn insert_clicks(&self, clicks: &[ClickRow]) -> Result<(), StoreError> {
        // One transaction: the raw rows and the rollups they add to commit
        // together. Events already stored (a redelivery, a republish) are
        // dropped first, so nothing is counted twice. IMMEDIATE: the write
        // lock is taken first, so the reads the rollups depend on see the
        // last committed batch of any other writer (instance).
        let txn = self
            .db
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..TransactionOptions::default()
            })
            .await
            .map_err(failed)?;
        txn.execute_unprepared(
            "CREATE TEMP TABLE IF NOT EXISTS incoming (
                event_id BLOB PRIMARY KEY NOT NULL, shortener_url_id BLOB NOT NULL,
                short_code TEXT NOT NULL, clicked_at INTEGER NOT NULL,
                referrer_host TEXT NOT NULL, browser TEXT NOT NULL, os TEXT NOT NULL,
                device TEXT NOT NULL, is_bot INTEGER NOT NULL, visitor_key TEXT NOT NULL,
                country TEXT NOT NULL
            ) WITHOUT ROWID; DELETE FROM temp.incoming;",
        )
        .await
        .map_err(failed)?;
        for chunk in clicks.chunks(ROWS_PER_STATEMENT) {
            let rows = vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ");
            let mut values = Vec::with_capacity(chunk.len() * 11);
            for c in chunk {
                values.extend([
                    c.event_id.into(),
                    c.shortener_url_id.into(),
                    c.short_code.clone().into(),
                    c.clicked_at.into(),
                    c.referrer_host.clone().into(),
                    c.browser.clone().into(),
                    c.os.clone().into(),
                    c.device.clone().into(),
                    i64::from(c.is_bot).into(),
                    c.visitor_key.clone().into(),
                    c.country.clone().into(),
                ]);
            }
            txn.execute_raw(statement(
                &format!("INSERT OR IGNORE INTO temp.incoming ({CLICK_COLUMNS}) VALUES {rows}"),
                values,
            ))
            .await
            .map_err(failed)?;
        }
        txn.execute_unprepared(&rollup_sql::ADD_INCOMING)
            .await
            .map_err(failed)?;
        txn.commit().await.map_err(failed)
    }

    async fn drop_raw_clicks_before(&self, cutoff: i64) -> Result<u64, StoreError> {
        // Link by link through (link, time), the index every stats read
        // uses: a time-only index would cost every insert 10% for an
        // hourly task. The links come from the daily rollups.
        let links: Vec<Uuid> = self
            .query(
                "SELECT shortener_url_id FROM click_days GROUP BY shortener_url_id \
                 HAVING MIN(day) < ?",
                vec![cutoff.into()],
            )
            .await?
            .iter()
            .map(|row| row.try_get("", "shortener_url_id").map_err(failed))
            .collect::<Result<_, _>>()?;
        let mut dropped = 0;
        for chunk in links.chunks(LINKS_PER_RETENTION_STEP) {
            let txn = self.db.begin().await.map_err(failed)?;
            for id in chunk {
                dropped += txn
                    .execute_raw(statement(
                        "DELETE FROM clicks WHERE shortener_url_id = ? AND clicked_at < ?",
                        vec![(*id).into(), cutoff.into()],
                    ))
                    .await
                    .map_err(failed)?
                    .rows_affected();
            }
            txn.commit().await.map_err(failed)?;
            // Short write transactions: the consumers' batches go in between.
            tokio::task::yield_now().await;
        }
        Ok(dropped)
    }

    async fn click_count(&self) -> Result<u64, StoreError> {
        let rows = self
            // The rollups count every click, those the retention dropped too.
            .query(
                "SELECT COALESCE(SUM(clicks), 0) AS n FROM click_days",
                Vec::new(),
            )
            .await?;
        Ok(rows
            .first()
            .map(|r| r.try_get::<i64>("", "n"))
            .transpose()
            .map_err(failed)?
            .map(count)
            .unwrap_or_default())
    }

    async fn all_click_totals(&self) -> Result<Vec<(Uuid, u64)>, StoreError> {
        self.link_totals(
            "SELECT shortener_url_id, SUM(clicks) AS clicks FROM click_days \
             GROUP BY shortener_url_id",
        )
        .await
    }

    async fn raw_click_totals(&self) -> Result<Vec<(Uuid, u64)>, StoreError> {
        self.link_totals(
            "SELECT shortener_url_id, COUNT(*) AS clicks FROM clicks GROUP BY shortener_url_id",
        )
        .await
    }

    async fn oldest_click(&self) -> Result<Option<i64>, StoreError> {
        let rows = self
            // The rollups date it, whether the retention dropped the raw
            // rows or not.
            .query(
                "SELECT MIN(first_at) AS oldest FROM click_hours",
                Vec::new(),
            )
            .await?;
        rows.first()
            .map(|r| r.try_get::<Option<i64>>("", "oldest"))
            .transpose()
            .map(Option::flatten)
            .map_err(failed)
    }
}
