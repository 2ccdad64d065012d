//! Production store: ClickHouse, through the `clickhouse` crate over HTTP.
//!
//! - `clicks` is a `ReplacingMergeTree` ordered by
//!   `(shortener_url_id, clicked_at, event_id)`: a duplicate of an event has
//!   the same key, background merges fold it away, and every query reads
//!   `FINAL`, so an answer never counts it twice even before a merge.
//!   Queries name one link, so they read only that link's key range; a
//!   small index granularity keeps that read close to the link's own rows.
//! - `url_creations` is a `ReplacingMergeTree(version)` ordered by
//!   `shortener_url_id`: the row with the newest version is the copy.
//! - `link_changes` is a `ReplacingMergeTree` ordered by
//!   `(shortener_url_id, change_id)`: each change once, read `FINAL`.
//! - `link_codes` maps a code to its link's id, ordered by `short_code`, so
//!   a stats request by code reads a few rows, never every copy.
//!
//! The SQL runs on ClickHouse 18.16 (what Debian ships, used in CI) and on
//! current releases (docker compose): no `DateTime64`, `LowCardinality`,
//! `Bool` or server-side parameters; values are bound on the client.

use std::sync::Arc;

use async_trait::async_trait;
use clickhouse::{Client, Row};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    AnalyticsStore, Backend, ChangeRecord, ClickLog, ClickSummary, Keys, LinkCopies, LinkCursor,
    LinkList, Reconciliation, StatsReader, StoreError,
};

mod clicks;
mod keys;
mod links;
mod reconciliation;
mod replicas;
mod rollups;
mod stats;
use crate::domain::{
    Bucket, BucketCount, ClickRow, Dimension, LinkChange, LinkCopy, Totals, Window,
};
use crate::keys::KeyRecord;
use links::LinkRecord;
use replicas::Replicas;

/// The longest a batch's write may take before it is retried: half the
/// compactor's settle window (see `insert_clicks`).
const WRITE_BOUND: std::time::Duration =
    std::time::Duration::from_micros(crate::store::rollup::SETTLE_US.unsigned_abs() / 2);

/// Where ClickHouse is and who to be there.
#[derive(Clone)]
pub struct ClickHouseSettings {
    /// One server's HTTP interface, or several, comma-separated: replicas
    /// of one another, used in this order of preference.
    pub url: String,
    pub database: String,
    pub user: Option<String>,
    pub password: Option<String>,
    /// The tables are `Replicated*MergeTree` (see `replicas.rs`).
    pub replicated: bool,
}

impl std::fmt::Debug for ClickHouseSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClickHouseSettings")
            .field("url", &self.url)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .field("replicated", &self.replicated)
            .finish()
    }
}

/// Schema changes, applied in order once each; the applied ones are recorded
/// in `schema_migrations`.
const MIGRATIONS: &[(u32, &str)] = &[
    (
        1,
        "CREATE TABLE IF NOT EXISTS clicks (
            event_id UUID,
            shortener_url_id UUID,
            short_code String,
            clicked_at DateTime,
            referrer_host String,
            browser String,
            os String,
            device String,
            is_bot UInt8,
            visitor_key String,
            country String
        ) ENGINE = ReplacingMergeTree()
        PARTITION BY toYYYYMM(clicked_at)
        ORDER BY (shortener_url_id, clicked_at, event_id)
        SETTINGS index_granularity = 1024",
    ),
    (
        2,
        "CREATE TABLE IF NOT EXISTS url_creations (
            shortener_url_id UUID,
            short_code String,
            target Nullable(String),
            target_host Nullable(String),
            created_at Nullable(DateTime),
            expires_at Nullable(DateTime),
            deleted_at Nullable(DateTime),
            last_update_us Int64,
            expires_from_update UInt8,
            version UInt64
        ) ENGINE = ReplacingMergeTree(version)
        ORDER BY shortener_url_id",
    ),
    (
        3,
        // Analytics' own API keys (digests). A revocation is a newer
        // version of the row; uses are kept apart (`api_key_uses`), so
        // recording one can never write over a revocation.
        "CREATE TABLE IF NOT EXISTS api_keys (
            id UUID,
            name String,
            digest String,
            created_at DateTime,
            revoked_at DateTime,
            version UInt64
        ) ENGINE = ReplacingMergeTree(version)
        ORDER BY name",
    ),
    (
        4,
        "CREATE TABLE IF NOT EXISTS api_key_uses (
            id UUID,
            used_at DateTime
        ) ENGINE = ReplacingMergeTree(used_at)
        ORDER BY id",
    ),
    (
        LINK_CHANGES_MIGRATION,
        "CREATE TABLE IF NOT EXISTS link_changes (
            shortener_url_id UUID,
            change_id UUID,
            body String
        ) ENGINE = ReplacingMergeTree()
        ORDER BY (shortener_url_id, change_id)",
    ),
    (
        6,
        "CREATE TABLE IF NOT EXISTS link_codes (
            short_code String,
            shortener_url_id UUID
        ) ENGINE = ReplacingMergeTree()
        ORDER BY (short_code, shortener_url_id)",
    ),
    (
        7,
        "INSERT INTO link_codes SELECT short_code, shortener_url_id FROM url_creations FINAL",
    ),
];

/// The migration that starts keeping link changes. Copies written before it
/// get a snapshot change each, in the same step, so folding carries them on.
const LINK_CHANGES_MIGRATION: u32 = 5;

/// `DateTime` holds seconds since 1970 in 32 bits.
fn datetime(t: i64) -> u32 {
    u32::try_from(t.max(0)).unwrap_or(u32::MAX)
}

#[derive(Debug, Row, Deserialize)]
struct TotalsRecord {
    clicks: u64,
    uniques: u64,
    bots: u64,
}

#[derive(Debug, Row, Deserialize)]
struct BucketRecord {
    start: i64,
    clicks: u64,
    uniques: u64,
}

#[derive(Debug, Row, Deserialize)]
struct LinkTotalRecord {
    #[serde(with = "clickhouse::serde::uuid")]
    shortener_url_id: Uuid,
    clicks: u64,
}

#[derive(Clone)]
pub struct ClickHouseStore {
    replicas: Arc<Replicas>,
    settings: ClickHouseSettings,
}

fn failed(error: impl Into<anyhow::Error>) -> StoreError {
    StoreError::new(error)
}

/// `toUUID('…')` literals; a UUID's text form needs no escaping.
fn uuid_list(ids: &[Uuid]) -> String {
    ids.iter()
        .map(|id| format!("toUUID('{id}')"))
        .collect::<Vec<_>>()
        .join(", ")
}

const IN_WINDOW: &str = "shortener_url_id = toUUID(?) AND clicked_at >= toDateTime(?) \
     AND clicked_at < toDateTime(?)";

/// Unique visitors: distinct non-empty visitor keys, exactly.
const UNIQUES: &str = "uniqExactIf(visitor_key, visitor_key != '')";

impl ClickHouseStore {
    /// Connects, creates the database if needed and applies migrations, on
    /// every server of the list that answers; at least one must.
    pub async fn open(settings: ClickHouseSettings) -> anyhow::Result<Self> {
        let store = Self {
            replicas: replicas::shared(Replicas::new(&settings)),
            settings,
        };
        let mut usable = None;
        let mut errors = Vec::new();
        for index in 0..store.replicas.list.len() {
            match store.pinned(index).prepare().await {
                Ok(()) => {
                    store.replicas.set_prepared(index);
                    usable.get_or_insert(index);
                }
                Err(error) => errors.push(error),
            }
        }
        let Some(index) = usable else {
            let reasons: Vec<String> = errors.iter().map(|e| format!("{e:#}")).collect();
            return Err(anyhow::anyhow!("{}", reasons.join("; ")));
        };
        for error in errors {
            tracing::warn!(
                error = format!("{error:#}"),
                "a ClickHouse server is not usable yet"
            );
        }
        store.replicas.set_active(index);
        if store.replicas.list.len() > 1 {
            replicas::monitor(Arc::downgrade(&store.replicas), store.settings.clone());
        }
        Ok(store)
    }

    /// The server in use.
    fn client(&self) -> &Client {
        &self.replicas.list[self.replicas.active()].client
    }

    /// This store on server `index` of the list only.
    fn pinned(&self, index: usize) -> Self {
        Self {
            replicas: replicas::shared(Replicas::of(vec![self.replicas.list[index].clone()])),
            settings: self.settings.clone(),
        }
    }

    /// The database and the schema on the (single) server of a pinned store.
    async fn prepare(&self) -> anyhow::Result<()> {
        let replica = &self.replicas.list[0];
        replica
            .server
            .query(&format!(
                "CREATE DATABASE IF NOT EXISTS `{}`",
                self.settings.database.replace('`', "")
            ))
            .execute()
            .await
            .map_err(|e| anyhow::anyhow!("ClickHouse at {} is not usable: {e}", replica.url))?;
        self.migrate().await
    }

    /// Moves to the first server of the list that answers, when the one in
    /// use does not; true when one answers.
    pub(super) async fn fail_over(&self) -> bool {
        let _one_at_a_time = self.replicas.switching.lock().await;
        let list = &self.replicas.list;
        let current = self.replicas.active();
        if replicas::answers(&list[current].client).await {
            return true;
        }
        for index in (0..list.len()).filter(|&i| i != current) {
            if !replicas::answers(&list[index].server).await {
                continue;
            }
            if !self.replicas.is_prepared(index) {
                if let Err(error) = self.pinned(index).prepare().await {
                    tracing::warn!(url = %list[index].url, error = format!("{error:#}"), "ClickHouse server answers but its schema could not be applied");
                    continue;
                }
                self.replicas.set_prepared(index);
            }
            tracing::warn!(from = %list[current].url, to = %list[index].url, "ClickHouse server not answering; failed over");
            self.replicas.set_active(index);
            return true;
        }
        false
    }

    async fn migrate(&self) -> anyhow::Result<()> {
        self.client()
            .query(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version UInt32, applied_at DateTime) \
                 ENGINE = MergeTree() ORDER BY version",
            )
            .execute()
            .await?;
        let applied: Vec<u32> = self
            .client()
            .query("SELECT version FROM schema_migrations")
            .fetch_all()
            .await?;
        for (version, sql) in MIGRATIONS.iter().chain(rollups::MIGRATIONS) {
            if applied.contains(version) {
                continue;
            }
            let sql = if self.settings.replicated {
                replicas::replicated(sql, &self.settings.database)
            } else {
                (*sql).to_owned()
            };
            self.client()
                .query(&sql)
                .execute()
                .await
                .map_err(|e| anyhow::anyhow!("ClickHouse migration {version} failed: {e}"))?;
            if *version == LINK_CHANGES_MIGRATION {
                self.snapshot_copies().await?;
            }
            self.client()
                .query("INSERT INTO schema_migrations VALUES (?, now())")
                .bind(version)
                .execute()
                .await?;
            tracing::info!(version, "ClickHouse migration applied");
        }
        Ok(())
    }

    /// One snapshot change per stored copy (see [`LINK_CHANGES_MIGRATION`]);
    /// running it twice stores each once.
    async fn snapshot_copies(&self) -> anyhow::Result<()> {
        let mut copies = self
            .client()
            .query("SELECT ?fields FROM url_creations FINAL")
            .fetch::<LinkRecord>()?;
        let mut batch = Vec::new();
        let mut total = 0;
        while let Some(row) = copies.next().await? {
            batch.push(ChangeRecord::of(&LinkChange::Snapshot(row.into())));
            if batch.len() == 10_000 {
                total += batch.len();
                self.record_link_changes(&batch).await?;
                batch.clear();
            }
        }
        total += batch.len();
        self.record_link_changes(&batch).await?;
        tracing::info!(
            copies = total,
            "link copies snapshotted as their first change"
        );
        Ok(())
    }

    fn windowed(&self, sql: &str, window: Window) -> clickhouse::query::Query {
        self.client()
            .query(sql)
            .bind(window.url_id.to_string())
            .bind(window.from)
            .bind(window.to)
    }
}

/// The tables a replay rebuilds; keys and their uses stay where they are.
const DATA_TABLES: [&str; 10] = [
    "clicks",
    "url_creations",
    "link_changes",
    "link_codes",
    // The rollups and their bookkeeping: a rebuilt store's days are all
    // dirty (never compacted), so the live compactor builds them.
    "click_hours",
    "click_days",
    "click_day_values",
    "rollup_dirty",
    "rollup_watermark",
    "link_dirty",
];

fn quoted(name: &str) -> String {
    format!("`{}`", name.replace('`', ""))
}

impl ClickHouseStore {
    pub fn settings(&self) -> &ClickHouseSettings {
        &self.settings
    }

    /// Drops database `name` if it exists (an unfinished replay's build).
    pub async fn drop_database(&self, name: &str) -> anyhow::Result<()> {
        self.client()
            .query(&format!("DROP DATABASE IF EXISTS {}", quoted(name)))
            .execute()
            .await?;
        Ok(())
    }

    /// Puts the data tables of database `built` in place of this store's,
    /// in one `RENAME TABLE` statement; the tables they replace move to
    /// database `keep`, and `built` is dropped.
    pub async fn swap_in(&self, built: &str, keep: &str) -> anyhow::Result<()> {
        self.client()
            .query(&format!("CREATE DATABASE IF NOT EXISTS {}", quoted(keep)))
            .execute()
            .await?;
        let live = &self.settings.database;
        let renames = DATA_TABLES
            .iter()
            .map(|table| {
                format!(
                    "{live}.{t} TO {keep}.{t}, {built}.{t} TO {live}.{t}",
                    live = quoted(live),
                    keep = quoted(keep),
                    built = quoted(built),
                    t = table
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        self.client()
            .query(&format!("RENAME TABLE {renames}"))
            .execute()
            .await?;
        self.drop_database(built).await
    }
}

impl Backend for ClickHouseStore {
    fn kind(&self) -> &'static str {
        "clickhouse"
    }
}

#[async_trait]
impl AnalyticsStore for ClickHouseStore {
    async fn ping(&self) -> Result<(), StoreError> {
        if self.fail_over().await {
            Ok(())
        } else {
            Err(failed(anyhow::anyhow!(
                "no ClickHouse server answers ({})",
                self.settings.url
            )))
        }
    }
}
