//! Analytics' own store, behind one port per aggregate ([`ClickLog`],
//! [`StatsReader`], [`LinkCopies`], [`Reconciliation`], [`Keys`]), each part
//! of the service taking only what it uses: ClickHouse in production
//! (`clickhouse/`), an embedded SQLite file by default (`sqlite/`), a file
//! per port in each. Both hold the same tables with the same meaning:
//!
//! - `clicks`: one row per click event, unique by `event_id`. A redelivered
//!   or republished event is written again, and no answer ever counts it twice
//!   (SQLite ignores the second insert; ClickHouse queries read `FINAL`).
//! - `url_creations`: analytics' copy of each link ([`LinkCopy`]), keyed by
//!   the `shortener_url_id` soft reference.
//! - `link_changes`: every change of a link as its own row, unique by
//!   (`shortener_url_id`, change id); the copy is folded from them.

use std::collections::HashMap;

use async_trait::async_trait;
use uuid::Uuid;

use crate::domain::{BucketCount, ClickRow, LinkChange, LinkCopy, Totals, Window};

pub mod clickhouse;
pub mod rollup;
pub mod sqlite;

pub use self::clickhouse::{ClickHouseSettings, ClickHouseStore};
pub use self::sqlite::SqliteStore;

/// The store could not answer; callers retry (consumers) or answer 503 (HTTP).
#[derive(Debug, thiserror::Error)]
#[error("analytics store unavailable: {0:#}")]
pub struct StoreError(#[from] pub anyhow::Error);

impl StoreError {
    pub fn new(error: impl Into<anyhow::Error>) -> Self {
        Self(error.into())
    }
}

/// A key as stored: never the key. Times are seconds since 1970.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub id: Uuid,
    pub name: String,
    /// SHA-256 of the key, 64 hex digits.
    pub digest: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// One stored link change: a [`LinkChange`] as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRecord {
    pub url_id: Uuid,
    pub change_id: Uuid,
    pub body: String,
}

impl ChangeRecord {
    pub fn of(change: &LinkChange) -> Self {
        Self {
            url_id: change.url_id(),
            change_id: change.change_id(),
            body: serde_json::to_string(change).expect("a link change serialises"),
        }
    }

    pub fn change(&self) -> Result<LinkChange, StoreError> {
        serde_json::from_str(&self.body).map_err(|e| {
            StoreError(anyhow::anyhow!(
                "stored change {} of link {} is unreadable: {e}",
                self.change_id,
                self.url_id
            ))
        })
    }
}

/// Where a page of [`AnalyticsStore::link_page`] starts: just after this
/// copy. Its text form (`<created seconds>.<id>`) is the `cursor` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkCursor {
    /// The copy's creation time; 0 when its creation has not arrived.
    pub created_at: i64,
    pub id: Uuid,
}

impl LinkCursor {
    pub fn after(copy: &LinkCopy) -> Self {
        Self {
            created_at: copy.created_at.unwrap_or(0),
            id: copy.shortener_url_id,
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        let (created_at, id) = text.split_once('.')?;
        Some(Self {
            created_at: created_at.parse().ok()?,
            id: id.parse().ok()?,
        })
    }
}

impl std::fmt::Display for LinkCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.created_at, self.id)
    }
}

/// The reconciliation report's lists of copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkList {
    /// Copies still waiting for their created event.
    Uncreated,
    /// Copies of links deleted at the owner.
    Deleted,
}

/// Clicks of one link, for the reconciliation report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClickSummary {
    pub shortener_url_id: Uuid,
    pub clicks: u64,
    pub first_click_at: i64,
    pub last_click_at: i64,
}

/// What every port can say of the database behind it.
pub trait Backend: Send + Sync + 'static {
    /// `clickhouse` or `sqlite`, for logs and `/ready`.
    fn kind(&self) -> &'static str;
}

/// The clicks as they arrive: written once each, compacted into rollups,
/// dropped when older than the retention, counted for replay's checks.
#[async_trait]
pub trait ClickLog: Backend {
    /// Writes clicks; returns once they are durable. Rows whose `event_id` is
    /// already stored never count twice.
    async fn insert_clicks(&self, clicks: &[ClickRow]) -> Result<(), StoreError>;

    /// Brings the rollups up to date with the clicks stored before
    /// `settled_before_us` (microseconds since 1970), where a store keeps
    /// them apart from the clicks' own write (ClickHouse); the buckets
    /// recomputed.
    async fn compact(&self, _settled_before_us: i64) -> Result<u64, StoreError> {
        Ok(0)
    }

    /// Deletes the raw clicks older than `cutoff` (seconds), a few links
    /// per transaction; the rollups keep counting them. Returns how many went.
    async fn drop_raw_clicks_before(&self, cutoff: i64) -> Result<u64, StoreError>;

    /// Distinct clicks stored (each `event_id` once).
    async fn click_count(&self) -> Result<u64, StoreError>;

    /// Every link's click total (each `event_id` once), for replay's check.
    async fn all_click_totals(&self) -> Result<Vec<(Uuid, u64)>, StoreError>;

    /// Every link's click total counted from the raw clicks (each
    /// `event_id` once), to check the totals above against.
    async fn raw_click_totals(&self) -> Result<Vec<(Uuid, u64)>, StoreError>;

    /// When the oldest stored click happened; `None` without clicks.
    async fn oldest_click(&self) -> Result<Option<i64>, StoreError>;
}

/// The stats of one link over a window, from the rollups and the edges'
/// raw clicks.
#[async_trait]
pub trait StatsReader: Backend {
    async fn totals(&self, window: Window) -> Result<Totals, StoreError>;

    /// Non-empty buckets only, oldest first.
    async fn series(
        &self,
        window: Window,
        bucket: crate::domain::Bucket,
    ) -> Result<Vec<BucketCount>, StoreError>;

    /// The top lists of every dimension, in [`Dimension::ALL`](crate::domain::Dimension::ALL) order: the
    /// most frequent non-empty values, most clicks first, ties by value.
    async fn tops(&self, window: Window, limit: u32)
    -> Result<Vec<Vec<(String, u64)>>, StoreError>;

    /// The totals, series and top lists of one window, read together: from
    /// one snapshot where the store has them.
    async fn window_stats(
        &self,
        window: Window,
        bucket: crate::domain::Bucket,
        limit: u32,
    ) -> Result<WindowStats, StoreError> {
        let (totals, series, tops) = futures::join!(
            self.totals(window),
            self.series(window, bucket),
            self.tops(window, limit)
        );
        Ok(WindowStats {
            totals: totals?,
            series: series?,
            tops: tops?,
        })
    }

    /// When the link's first click happened (`None` without clicks).
    async fn first_click(&self, id: Uuid) -> Result<Option<i64>, StoreError>;

    /// All-time click totals of these links (each `event_id` once), read
    /// from each link's own rows only; links without clicks are absent.
    async fn click_totals(&self, ids: &[Uuid]) -> Result<Vec<(Uuid, u64)>, StoreError>;
}

/// What [`StatsReader::window_stats`] reads.
#[derive(Debug)]
pub struct WindowStats {
    pub totals: Totals,
    /// Non-empty buckets only, oldest first.
    pub series: Vec<BucketCount>,
    pub tops: Vec<Vec<(String, u64)>>,
}

/// Analytics' copy of each link, folded from every change it has heard of.
#[async_trait]
pub trait LinkCopies: Backend {
    /// Stored copies of these links (missing ones are simply absent).
    async fn links(&self, ids: &[Uuid]) -> Result<Vec<LinkCopy>, StoreError>;

    /// Stores link changes; one already stored (same link and change id) is
    /// kept once. Returns once they are durable.
    async fn record_link_changes(&self, changes: &[ChangeRecord]) -> Result<(), StoreError>;

    /// Every stored change of these links, each once.
    async fn link_changes(&self, ids: &[Uuid]) -> Result<Vec<ChangeRecord>, StoreError>;

    /// Writes these copies. Per link, the copy with the highest `version`
    /// is the one kept, whoever wrote last.
    async fn save_links(&self, links: &[LinkCopy]) -> Result<(), StoreError>;

    /// Reads every stored change of these links, folds each link's into its
    /// copy ([`LinkCopy::fold`]) and writes the copies (see `links.rs`).
    async fn refold_links(&self, ids: &[Uuid]) -> Result<(), StoreError> {
        let mut by_link: HashMap<Uuid, Vec<LinkChange>> = HashMap::with_capacity(ids.len());
        for record in self.link_changes(ids).await? {
            by_link
                .entry(record.url_id)
                .or_default()
                .push(record.change()?);
        }
        let copies: Vec<LinkCopy> = by_link
            .into_iter()
            .map(|(id, changes)| LinkCopy::fold(id, changes))
            .collect();
        self.save_links(&copies).await
    }

    /// The copy whose code this is. Codes are unique at the owner; should two
    /// copies claim one, the created one with the newest version wins.
    async fn link_by_code(&self, code: &str) -> Result<Option<LinkCopy>, StoreError>;

    /// One page of copies, newest first: by creation time (copies not yet
    /// created last), then by id; after `after` (the last of the page before).
    async fn link_page(
        &self,
        after: Option<LinkCursor>,
        limit: u32,
    ) -> Result<Vec<LinkCopy>, StoreError>;
}

/// What the reconciliation report reads: copies on its lists, and their
/// clicks.
#[async_trait]
pub trait Reconciliation: Backend {
    /// One page of the copies on `list`, in id order after `after`: at
    /// most `limit`.
    async fn links_on(
        &self,
        list: LinkList,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<LinkCopy>, StoreError>;

    /// Click count and first/last click of each of these links that has clicks.
    async fn click_summaries(&self, ids: &[Uuid]) -> Result<Vec<ClickSummary>, StoreError>;
}

/// Analytics' own API keys, stored as digests.
#[async_trait]
pub trait Keys: Backend {
    /// Stores a new key; false when a key of that name exists.
    async fn insert_key(&self, key: &KeyRecord) -> Result<bool, StoreError>;

    /// The key with this digest (hex), revoked ones included.
    async fn find_key(&self, digest: &str) -> Result<Option<KeyRecord>, StoreError>;

    /// Every key, oldest first.
    async fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError>;

    /// Revokes the live key of this name; false when there is none.
    async fn revoke_key(&self, name: &str, at: i64) -> Result<bool, StoreError>;

    /// Notes that the key was used at `at` (seconds since 1970).
    async fn touch_key(&self, id: Uuid, at: i64) -> Result<(), StoreError>;
}

/// One database holding every aggregate: what start-up opens. Each part of
/// the service is handed only the ports it uses (`Arc<dyn AnalyticsStore>`
/// coerces to `Arc<dyn ClickLog>`, `Arc<dyn StatsReader>`, ...).
#[async_trait]
pub trait AnalyticsStore: ClickLog + StatsReader + LinkCopies + Reconciliation + Keys {
    /// Cheap round trip, for `/ready`.
    async fn ping(&self) -> Result<(), StoreError>;
}
