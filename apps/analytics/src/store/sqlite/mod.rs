//! Embedded default store: a SQLite file through sea-orm, in WAL mode with
//! `synchronous=FULL`, so an acknowledged event survives a power cut.
//!
//! `clicks` is keyed by `event_id` and written with `INSERT OR IGNORE`: a
//! duplicate never becomes a second row. Times are Unix seconds (UTC), so
//! buckets are integer arithmetic.

mod clicks;
mod keys;
mod links;
mod migration;
mod reconciliation;
mod stats;

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
use super::{
    AnalyticsStore, Backend, ChangeRecord, ClickLog, ClickSummary, Keys, LinkCopies, LinkCursor,
    LinkList, Reconciliation, StatsReader, StoreError, WindowStats,
};
use crate::domain::{Bucket, BucketCount, ClickRow, Dimension, LinkCopy, Totals, Window};
use crate::keys::KeyRecord;

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

    use super::{CLICK_COLUMNS, bucket_of};
    use crate::domain::Dimension;

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

impl Backend for SqliteStore {
    fn kind(&self) -> &'static str {
        "sqlite"
    }
}

#[async_trait]
impl AnalyticsStore for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.query("SELECT 1", Vec::new()).await.map(drop)
    }
}
