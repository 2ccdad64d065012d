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

use super::{AnalyticsStore, ChangeRecord, ClickSummary, LinkCursor, LinkList, StoreError};

#[path = "clickhouse_replicas.rs"]
mod replicas;
#[path = "clickhouse_rollups.rs"]
mod rollups;
use crate::keys::KeyRecord;
use crate::model::{
    Bucket, BucketCount, ClickRow, Dimension, LinkChange, LinkCopy, Totals, Window,
};
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
    /// The tables are `Replicated*MergeTree` (see `clickhouse_replicas.rs`).
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

#[derive(Debug, Clone, Row, Serialize, Deserialize)]
struct CodeRow {
    short_code: String,
    #[serde(with = "clickhouse::serde::uuid")]
    shortener_url_id: Uuid,
}

#[derive(Debug, Clone, Row, Serialize, Deserialize)]
struct ChangeRow {
    #[serde(with = "clickhouse::serde::uuid")]
    shortener_url_id: Uuid,
    #[serde(with = "clickhouse::serde::uuid")]
    change_id: Uuid,
    body: String,
}

/// A key's row; `revoked_at` 0 means live.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
struct KeyRow {
    #[serde(with = "clickhouse::serde::uuid")]
    id: Uuid,
    name: String,
    digest: String,
    created_at: u32,
    revoked_at: u32,
    version: u64,
}

#[derive(Debug, Row, Serialize, Deserialize)]
struct KeyUseRow {
    #[serde(with = "clickhouse::serde::uuid")]
    id: Uuid,
    used_at: u32,
}

impl KeyRow {
    fn into_record(self, last_used_at: Option<i64>) -> KeyRecord {
        KeyRecord {
            id: self.id,
            name: self.name,
            digest: self.digest,
            created_at: i64::from(self.created_at),
            last_used_at,
            revoked_at: (self.revoked_at > 0).then_some(i64::from(self.revoked_at)),
        }
    }
}

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

/// `DateTime` holds seconds since 1970 in 32 bits.
fn datetime(t: i64) -> u32 {
    u32::try_from(t.max(0)).unwrap_or(u32::MAX)
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

#[derive(Debug, Clone, Row, Serialize, Deserialize)]
struct LinkRecord {
    #[serde(with = "clickhouse::serde::uuid")]
    shortener_url_id: Uuid,
    short_code: String,
    target: Option<String>,
    target_host: Option<String>,
    created_at: Option<u32>,
    expires_at: Option<u32>,
    deleted_at: Option<u32>,
    last_update_us: i64,
    expires_from_update: u8,
    version: u64,
}

impl From<&LinkCopy> for LinkRecord {
    fn from(l: &LinkCopy) -> Self {
        Self {
            shortener_url_id: l.shortener_url_id,
            short_code: l.short_code.clone(),
            target: l.target.clone(),
            target_host: l.target_host.clone(),
            created_at: l.created_at.map(datetime),
            expires_at: l.expires_at.map(datetime),
            deleted_at: l.deleted_at.map(datetime),
            last_update_us: l.last_update_us,
            expires_from_update: u8::from(l.expires_from_update),
            version: l.version,
        }
    }
}

impl From<LinkRecord> for LinkCopy {
    fn from(r: LinkRecord) -> Self {
        Self {
            shortener_url_id: r.shortener_url_id,
            short_code: r.short_code,
            target: r.target,
            target_host: r.target_host,
            created_at: r.created_at.map(i64::from),
            expires_at: r.expires_at.map(i64::from),
            deleted_at: r.deleted_at.map(i64::from),
            last_update_us: r.last_update_us,
            expires_from_update: r.expires_from_update != 0,
            version: r.version,
        }
    }
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
struct SummaryRecord {
    #[serde(with = "clickhouse::serde::uuid")]
    shortener_url_id: Uuid,
    clicks: u64,
    first: u32,
    last: u32,
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

    async fn links_where(&self, condition: &str) -> Result<Vec<LinkCopy>, StoreError> {
        let rows: Vec<LinkRecord> = self
            .client()
            .query(&format!(
                "SELECT ?fields FROM url_creations FINAL WHERE {condition}"
            ))
            .fetch_all()
            .await
            .map_err(failed)?;
        Ok(rows.into_iter().map(LinkCopy::from).collect())
    }

    /// Copies meeting `condition`, in id order after `after`, at most `limit`.
    async fn links_page_where(
        &self,
        condition: &str,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<LinkCopy>, StoreError> {
        let after = after.map_or_else(
            || "1".to_owned(),
            |id| format!("shortener_url_id > toUUID('{id}')"),
        );
        self.links_where(&format!(
            "{condition} AND {after} ORDER BY shortener_url_id LIMIT {limit}"
        ))
        .await
    }

    fn windowed(&self, sql: &str, window: Window) -> clickhouse::query::Query {
        self.client()
            .query(sql)
            .bind(window.url_id.to_string())
            .bind(window.from)
            .bind(window.to)
    }
}

#[async_trait]
impl AnalyticsStore for ClickHouseStore {
    fn kind(&self) -> &'static str {
        "clickhouse"
    }

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

    async fn links(&self, ids: &[Uuid]) -> Result<Vec<LinkCopy>, StoreError> {
        let mut found = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(1_000) {
            found.extend(
                self.links_where(&format!("shortener_url_id IN ({})", uuid_list(chunk)))
                    .await?,
            );
        }
        Ok(found)
    }

    async fn record_link_changes(&self, changes: &[ChangeRecord]) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut insert = self
            .client()
            .insert::<ChangeRow>("link_changes")
            .await
            .map_err(failed)?;
        for change in changes {
            insert
                .write(&ChangeRow {
                    shortener_url_id: change.url_id,
                    change_id: change.change_id,
                    body: change.body.clone(),
                })
                .await
                .map_err(failed)?;
        }
        insert.end().await.map_err(failed)?;
        if self.settings.replicated {
            self.mark_links_dirty(changes).await?;
        }
        Ok(())
    }

    async fn link_changes(&self, ids: &[Uuid]) -> Result<Vec<ChangeRecord>, StoreError> {
        let mut found = Vec::new();
        for chunk in ids.chunks(1_000) {
            let rows: Vec<ChangeRow> = self
                .client()
                .query(&format!(
                    "SELECT ?fields FROM link_changes FINAL WHERE shortener_url_id IN ({})",
                    uuid_list(chunk)
                ))
                .fetch_all()
                .await
                .map_err(failed)?;
            found.extend(rows.into_iter().map(|r| ChangeRecord {
                url_id: r.shortener_url_id,
                change_id: r.change_id,
                body: r.body,
            }));
        }
        Ok(found)
    }

    async fn save_links(&self, links: &[LinkCopy]) -> Result<(), StoreError> {
        if links.is_empty() {
            return Ok(());
        }
        let mut insert = self
            .client()
            .insert::<LinkRecord>("url_creations")
            .await
            .map_err(failed)?;
        for link in links {
            insert
                .write(&LinkRecord::from(link))
                .await
                .map_err(failed)?;
        }
        insert.end().await.map_err(failed)?;
        let mut codes = self
            .client()
            .insert::<CodeRow>("link_codes")
            .await
            .map_err(failed)?;
        for link in links.iter().filter(|l| !l.short_code.is_empty()) {
            codes
                .write(&CodeRow {
                    short_code: link.short_code.clone(),
                    shortener_url_id: link.shortener_url_id,
                })
                .await
                .map_err(failed)?;
        }
        codes.end().await.map_err(failed)
    }

    async fn link_by_code(&self, code: &str) -> Result<Option<LinkCopy>, StoreError> {
        let mut ids: Vec<Uuid> = self
            .client()
            .query("SELECT ?fields FROM link_codes WHERE short_code = ?")
            .bind(code)
            .fetch_all::<CodeRow>()
            .await
            .map_err(failed)?
            .into_iter()
            .map(|row| row.shortener_url_id)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let copies = self.links(&ids).await?;
        Ok(copies
            .into_iter()
            .filter(|l| l.short_code == code)
            .max_by_key(|l| (l.created_at.is_some(), l.version)))
    }

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

    async fn link_page(
        &self,
        after: Option<LinkCursor>,
        limit: u32,
    ) -> Result<Vec<LinkCopy>, StoreError> {
        const CREATED: &str = "coalesce(toUInt32(created_at), 0)";
        let after = after.map_or_else(
            || "1".to_owned(),
            |c| {
                format!(
                    "({CREATED} < {t} OR ({CREATED} = {t} AND shortener_url_id < toUUID('{id}')))",
                    t = c.created_at.max(0),
                    id = c.id
                )
            },
        );
        let rows: Vec<LinkRecord> = self
            .client()
            .query(&format!(
                "SELECT ?fields FROM url_creations FINAL WHERE {after} \
                 ORDER BY {CREATED} DESC, shortener_url_id DESC LIMIT {limit}"
            ))
            .fetch_all()
            .await
            .map_err(failed)?;
        Ok(rows.into_iter().map(LinkCopy::from).collect())
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

    async fn drop_raw_clicks_before(&self, cutoff: i64) -> Result<u64, StoreError> {
        self.drop_raw_partitions_before(cutoff).await
    }

    async fn first_click(&self, id: Uuid) -> Result<Option<i64>, StoreError> {
        self.rollup_first_click(id).await
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

    async fn insert_key(&self, key: &KeyRecord) -> Result<bool, StoreError> {
        // No unique constraints in ClickHouse: two creations of one name at
        // the same moment would both be kept (the later one wins by name).
        if !self.keys_where(Some(("name", &key.name))).await?.is_empty() {
            return Ok(false);
        }
        self.write_key(KeyRow {
            id: key.id,
            name: key.name.clone(),
            digest: key.digest.clone(),
            created_at: datetime(key.created_at),
            revoked_at: key.revoked_at.map_or(0, datetime),
            version: 1,
        })
        .await?;
        Ok(true)
    }

    async fn find_key(&self, digest: &str) -> Result<Option<KeyRecord>, StoreError> {
        // Last use is not needed to check a key, and costs a query.
        Ok(self
            .keys_where(Some(("digest", digest)))
            .await?
            .into_iter()
            .next()
            .map(|row| row.into_record(None)))
    }

    async fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let mut rows = self.keys_where(None).await?;
        rows.sort_by_key(|row| (row.created_at, row.id));
        let uses: Vec<KeyUseRow> = self
            .client()
            .query("SELECT id, max(used_at) AS used_at FROM api_key_uses GROUP BY id")
            .fetch_all()
            .await
            .map_err(failed)?;
        let used: std::collections::HashMap<Uuid, i64> = uses
            .into_iter()
            .map(|u| (u.id, i64::from(u.used_at)))
            .collect();
        Ok(rows
            .into_iter()
            .map(|row| {
                let last = used.get(&row.id).copied();
                row.into_record(last)
            })
            .collect())
    }

    async fn revoke_key(&self, name: &str, at: i64) -> Result<bool, StoreError> {
        let live = self
            .keys_where(Some(("name", name)))
            .await?
            .into_iter()
            .find(|row| row.revoked_at == 0);
        let Some(mut row) = live else {
            return Ok(false);
        };
        row.revoked_at = datetime(at).max(1);
        row.version += 1;
        self.write_key(row).await?;
        Ok(true)
    }

    async fn touch_key(&self, id: Uuid, at: i64) -> Result<(), StoreError> {
        let mut insert = self
            .client()
            .insert::<KeyUseRow>("api_key_uses")
            .await
            .map_err(failed)?;
        insert
            .write(&KeyUseRow {
                id,
                used_at: datetime(at),
            })
            .await
            .map_err(failed)?;
        insert.end().await.map_err(failed)
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

    /// Keys (their latest rows), all or those whose `column` is `value`.
    async fn keys_where(&self, filter: Option<(&str, &str)>) -> Result<Vec<KeyRow>, StoreError> {
        let query = match filter {
            Some((column, value)) => self
                .client()
                .query(&format!(
                    "SELECT ?fields FROM api_keys FINAL WHERE {column} = ?"
                ))
                .bind(value),
            None => self.client().query("SELECT ?fields FROM api_keys FINAL"),
        };
        query.fetch_all().await.map_err(failed)
    }

    async fn write_key(&self, row: KeyRow) -> Result<(), StoreError> {
        let mut insert = self
            .client()
            .insert::<KeyRow>("api_keys")
            .await
            .map_err(failed)?;
        insert.write(&row).await.map_err(failed)?;
        insert.end().await.map_err(failed)
    }
}
