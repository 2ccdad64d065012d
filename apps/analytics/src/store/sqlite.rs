//! Embedded default store: a SQLite file through sea-orm, in WAL mode with
//! `synchronous=FULL`, so an acknowledged event survives a power cut.
//!
//! `clicks` is keyed by `event_id` and written with `INSERT OR IGNORE`: a
//! duplicate never becomes a second row. Times are Unix seconds (UTC), so
//! buckets are integer arithmetic.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, QueryResult,
    SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait, Value,
};
use uuid::Uuid;

use super::rollup::{self, Plan};
use super::{AnalyticsStore, ChangeRecord, ClickSummary, LinkCursor, LinkList, StoreError};
use crate::keys::KeyRecord;
use crate::model::{Bucket, BucketCount, ClickRow, Dimension, LinkCopy, Totals, Window};

/// Rows per multi-row `INSERT` (11 parameters each, far below SQLite's limit).
const ROWS_PER_STATEMENT: usize = 500;

#[derive(Debug, Clone)]
pub struct SqliteStore {
    db: DatabaseConnection,
    path: std::path::PathBuf,
}

/// The tables a replay rebuilds; keys stay where they are.
const DATA_TABLES: [&str; 6] = [
    "clicks",
    "url_creations",
    "link_changes",
    "click_hours",
    "click_days",
    "click_day_values",
];

/// `'…'` for a path in SQL.
fn sql_text(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', "''"))
}

fn failed(error: impl Into<anyhow::Error>) -> StoreError {
    StoreError::new(error)
}

fn statement(sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Sqlite, sql, values)
}

fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or_default()
}

const LINK_COLUMNS: &str = "shortener_url_id, short_code, target, target_host, created_at, \
     expires_at, deleted_at, last_update_us, expires_from_update, version";

fn to_link(row: &QueryResult) -> Result<LinkCopy, StoreError> {
    Ok(LinkCopy {
        shortener_url_id: row.try_get("", "shortener_url_id").map_err(failed)?,
        short_code: row.try_get("", "short_code").map_err(failed)?,
        target: row.try_get("", "target").map_err(failed)?,
        target_host: row.try_get("", "target_host").map_err(failed)?,
        created_at: row.try_get("", "created_at").map_err(failed)?,
        expires_at: row.try_get("", "expires_at").map_err(failed)?,
        deleted_at: row.try_get("", "deleted_at").map_err(failed)?,
        last_update_us: row.try_get("", "last_update_us").map_err(failed)?,
        expires_from_update: row
            .try_get::<i64>("", "expires_from_update")
            .map_err(failed)?
            != 0,
        version: count(row.try_get("", "version").map_err(failed)?),
    })
}

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies migrations
    /// (see `service_kit::sqlite`).
    pub async fn open(path: &Path) -> anyhow::Result<Self> {
        let db = service_kit::sqlite::open::<migration::Migrator>(path).await?;
        Ok(Self {
            db,
            path: path.to_owned(),
        })
    }

    /// Closes the connections (before the file is removed).
    pub async fn close(self) -> anyhow::Result<()> {
        self.db.close().await?;
        Ok(())
    }

    /// Copies the live file to `keep` (`VACUUM INTO`), then replaces the
    /// rows of the data tables with those of the SQLite file at `built`,
    /// in one transaction: a reader sees the old rows or the new, never a
    /// mix, and the service may keep running.
    pub async fn swap_in(&self, built: &Path, keep: &Path) -> anyhow::Result<()> {
        let mut options = ConnectOptions::new(format!("sqlite://{}", self.path.display()));
        options
            .max_connections(1)
            .min_connections(1)
            .sqlx_logging(false)
            .map_sqlx_sqlite_opts(|o| o.busy_timeout(Duration::from_secs(60)));
        let db = Database::connect(options).await?;
        let copy: String = DATA_TABLES
            .iter()
            .map(|t| format!("DELETE FROM main.{t}; INSERT INTO main.{t} SELECT * FROM built.{t};"))
            .collect();
        let swapped = db
            .execute_unprepared(&format!(
                "VACUUM INTO {keep}; ATTACH DATABASE {built} AS built; \
                 BEGIN IMMEDIATE; {copy} COMMIT; DETACH DATABASE built;",
                keep = sql_text(keep),
                built = sql_text(built),
            ))
            .await;
        db.close().await?;
        swapped
            .map(drop)
            .with_context(|| format!("failed to swap in {}", built.display()))
    }

    async fn query(&self, sql: &str, values: Vec<Value>) -> Result<Vec<QueryResult>, StoreError> {
        self.db
            .query_all_raw(statement(sql, values))
            .await
            .map_err(failed)
    }

    /// Copies meeting `condition`, in id order after `after`, at most `limit`.
    async fn links_page_where(
        &self,
        condition: &str,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<LinkCopy>, StoreError> {
        let (after, mut values): (&str, Vec<Value>) = match after {
            None => ("1", Vec::new()),
            Some(id) => ("shortener_url_id > ?", vec![id.into()]),
        };
        values.push(i64::from(limit).into());
        self.query(
            &format!(
                "SELECT {LINK_COLUMNS} FROM url_creations WHERE {condition} AND {after} \
                 ORDER BY shortener_url_id LIMIT ?"
            ),
            values,
        )
        .await?
        .iter()
        .map(to_link)
        .collect()
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

    /// The (`shortener_url_id`, `clicks`) rows of `sql`.
    async fn link_totals(&self, sql: &str) -> Result<Vec<(Uuid, u64)>, StoreError> {
        self.query(sql, Vec::new())
            .await?
            .iter()
            .map(|row| {
                Ok((
                    row.try_get("", "shortener_url_id").map_err(failed)?,
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
}

const DAY: i64 = 86_400;

/// Links whose old raw clicks one retention transaction deletes.
const LINKS_PER_RETENTION_STEP: usize = 100;

const CLICK_COLUMNS: &str = "event_id, shortener_url_id, short_code, clicked_at, referrer_host, \
     browser, os, device, is_bot, visitor_key, country";

/// The start of the `size`-second bucket holding `column`, rounding down
/// for times before 1970 too (as [`rollup::floor`]).
fn bucket_of(column: &str, size: i64) -> String {
    format!("({column} - ((({column} % {size}) + {size}) % {size}))")
}

/// The SQL that keeps the rollups.
mod rollup_sql {
    use std::sync::LazyLock;

    use super::{bucket_of, CLICK_COLUMNS};
    use crate::model::Dimension;

    /// Adds the clicks in `temp.incoming` to the rollups and the raw rows,
    /// after dropping those already stored. A visitor counts towards an
    /// hour's (or a day's) unique visitors when no stored click of the link
    /// in that hour (day) has their key.
    pub static ADD_INCOMING: LazyLock<String> = LazyLock::new(|| {
        let new_visitors = |size: i64| {
            let bucket = bucket_of("i.clicked_at", size);
            format!(
                "SELECT i.shortener_url_id, {bucket} AS bucket, i.is_bot, i.clicked_at, \
                 CASE WHEN i.visitor_key != '' AND NOT EXISTS (SELECT 1 FROM clicks c \
                 WHERE c.shortener_url_id = i.shortener_url_id AND c.visitor_key = i.visitor_key \
                 AND c.clicked_at >= {bucket} AND c.clicked_at < {bucket} + {size}) \
                 THEN i.visitor_key END AS new_visitor FROM temp.incoming i"
            )
        };
        // Hours also keep their first click's second, so the start of a
        // link's all-time range survives the raw retention.
        let add = |table: &str, column: &str, size: i64, first: bool| {
            let (first_column, first_value, first_update) = if first {
                (
                    ", first_at",
                    ", MIN(clicked_at)",
                    ", first_at = MIN(first_at, excluded.first_at)",
                )
            } else {
                ("", "", "")
            };
            format!(
                "INSERT INTO {table} (shortener_url_id, {column}, clicks, bots, uniques{first_column}) \
                 SELECT shortener_url_id, bucket, COUNT(*), SUM(is_bot), \
                 COUNT(DISTINCT new_visitor){first_value} FROM ({}) WHERE true \
                 GROUP BY shortener_url_id, bucket \
                 ON CONFLICT (shortener_url_id, {column}) DO UPDATE SET \
                 clicks = clicks + excluded.clicks, bots = bots + excluded.bots, \
                 uniques = uniques + excluded.uniques{first_update};",
                new_visitors(size)
            )
        };
        let day = bucket_of("clicked_at", super::DAY);
        let values: Vec<String> = Dimension::ALL
            .iter()
            .enumerate()
            .map(|(n, d)| {
                let column = d.column();
                format!(
                    "SELECT shortener_url_id, {day} AS day, {n} AS dimension, {column} AS value, \
                     COUNT(*) AS clicks FROM temp.incoming WHERE {column} != '' \
                     GROUP BY shortener_url_id, day, value"
                )
            })
            .collect();
        format!(
            "DELETE FROM temp.incoming WHERE EXISTS \
             (SELECT 1 FROM clicks c WHERE c.event_id = temp.incoming.event_id); \
             {hours} {days} \
             INSERT INTO click_day_values (shortener_url_id, day, dimension, value, clicks) \
             SELECT * FROM ({values}) WHERE true \
             ON CONFLICT (shortener_url_id, dimension, day, value) DO UPDATE SET \
             clicks = clicks + excluded.clicks; \
             INSERT INTO clicks ({CLICK_COLUMNS}) SELECT {CLICK_COLUMNS} FROM temp.incoming; \
             DELETE FROM temp.incoming;",
            hours = add("click_hours", "hour", 3_600, true),
            days = add("click_days", "day", super::DAY, false),
            values = values.join(" UNION ALL "),
        )
    });
}

const IN_WINDOW: &str = "shortener_url_id = ? AND clicked_at >= ? AND clicked_at < ?";

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
impl AnalyticsStore for SqliteStore {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.query("SELECT 1", Vec::new()).await.map(drop)
    }

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

/// Schema migrations, applied at start-up and recorded by name; the SQL
/// lives in `migrations/`, and one migration that reads rows is code.
mod migration {
    use sea_orm_migration::prelude::*;
    use service_kit::sql_migration;

    pub struct Migrator;

    impl MigratorTrait for Migrator {
        fn migrations() -> Vec<Box<dyn MigrationTrait>> {
            vec![
                sql_migration!("sqlite").boxed(),
                sql_migration!("m0002_create_api_keys").boxed(),
                Box::new(KeepLinkChanges),
                sql_migration!("m0004_bounded_link_reads").boxed(),
                sql_migration!("m0005_click_rollups").boxed(),
            ]
        }
    }

    /// Starts keeping every link change as its own row; each copy already
    /// stored becomes its link's first change (a snapshot), so folding
    /// carries it on.
    struct KeepLinkChanges;

    impl MigrationName for KeepLinkChanges {
        fn name(&self) -> &str {
            "m0003_keep_link_changes"
        }
    }

    #[async_trait::async_trait]
    impl MigrationTrait for KeepLinkChanges {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            let db = manager.get_connection();
            db.execute_unprepared(
                "CREATE TABLE link_changes (
                    shortener_url_id BLOB NOT NULL,
                    change_id BLOB NOT NULL,
                    body TEXT NOT NULL,
                    PRIMARY KEY (shortener_url_id, change_id)
                ) WITHOUT ROWID;",
            )
            .await?;
            let copies = db
                .query_all_raw(super::statement(
                    &format!("SELECT {} FROM url_creations", super::LINK_COLUMNS),
                    Vec::new(),
                ))
                .await?;
            for row in &copies {
                let copy = super::to_link(row).map_err(|e| DbErr::Custom(e.to_string()))?;
                let record = super::ChangeRecord::of(&crate::model::LinkChange::Snapshot(copy));
                db.execute_raw(super::statement(
                    "INSERT INTO link_changes (shortener_url_id, change_id, body) VALUES (?, ?, ?)",
                    vec![
                        record.url_id.into(),
                        record.change_id.into(),
                        record.body.into(),
                    ],
                ))
                .await?;
            }
            Ok(())
        }

        async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .get_connection()
                .execute_unprepared("DROP TABLE link_changes;")
                .await?;
            Ok(())
        }
    }
}
