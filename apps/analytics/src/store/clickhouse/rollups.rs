//! ClickHouse's rollups: each link's clicks per hour and per day (clicks,
//! bot clicks, unique visitors) and per day and dimension value, as on
//! SQLite, kept by recomputation instead of in a transaction (ClickHouse
//! has none):
//!
//! 1. a consumer inserts its batch's raw clicks and, in parallel, marks each
//!    (link, day) the batch touched as dirty (`rollup_dirty`, with the time
//!    taken before both started), then acks. A write not done within half
//!    the settle window counts as failed. A crash or failure in between
//!    means a redelivery or retry, which writes the raw rows again
//!    (absorbed by `FINAL`) and marks again, later;
//! 2. the compactor takes the days marked since its watermark and settled
//!    for `SETTLE_US` (so a write still in flight is not passed over),
//!    recomputes their hours, day and values from the deduplicated raw rows
//!    (`FINAL`), writes them with a newer version (`ReplacingMergeTree`), and
//!    only then moves its watermark. A redelivered or republished event,
//!    however late, marks its day dirty and the recomputation counts it once;
//! 3. a stats query reads the rollups for whole, settled buckets and the raw
//!    rows for the edges of its range and for its link's days still dirty.
//!
//! Several instances may compact at once: each recomputation is complete,
//! and the later one (higher version) wins.

use std::collections::BTreeSet;

use super::*;
use crate::store::rollup;

pub(super) const MIGRATIONS: &[(u32, &str)] = &[
    (
        8,
        "CREATE TABLE IF NOT EXISTS click_hours (
            shortener_url_id UUID, hour UInt32,
            clicks UInt64, bots UInt64, uniques UInt64, first_at UInt32,
            version UInt64
        ) ENGINE = ReplacingMergeTree(version) ORDER BY (shortener_url_id, hour)",
    ),
    (
        9,
        "CREATE TABLE IF NOT EXISTS click_days (
            shortener_url_id UUID, day UInt32,
            clicks UInt64, bots UInt64, uniques UInt64,
            version UInt64
        ) ENGINE = ReplacingMergeTree(version) ORDER BY (shortener_url_id, day)",
    ),
    (
        10,
        "CREATE TABLE IF NOT EXISTS click_day_values (
            shortener_url_id UUID, day UInt32, dimension UInt8, value String,
            clicks UInt64, version UInt64
        ) ENGINE = ReplacingMergeTree(version)
        ORDER BY (shortener_url_id, day, dimension, value)",
    ),
    (
        11,
        "CREATE TABLE IF NOT EXISTS rollup_dirty (
            shortener_url_id UUID, day UInt32, marked_us UInt64
        ) ENGINE = MergeTree() PARTITION BY intDiv(marked_us, 86400000000)
        ORDER BY (shortener_url_id, day)",
    ),
    (
        12,
        "CREATE TABLE IF NOT EXISTS rollup_watermark (id UInt8, compacted_us UInt64)
        ENGINE = ReplacingMergeTree(compacted_us) ORDER BY id",
    ),
    (
        // Every day already stored is dirty: the first compaction builds it.
        13,
        "INSERT INTO rollup_dirty SELECT DISTINCT shortener_url_id,
            toUInt32(intDiv(toUInt32(clicked_at), 86400) * 86400), toUInt64(1) FROM clicks",
    ),
    (
        // Links whose copy the compactor folds again once its replica has
        // caught up (replicated stores only; see `links.rs`).
        14,
        "CREATE TABLE IF NOT EXISTS link_dirty (shortener_url_id UUID, marked_us UInt64)
        ENGINE = MergeTree() PARTITION BY intDiv(marked_us, 86400000000)
        ORDER BY shortener_url_id",
    ),
];

#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub(super) struct DirtyRow {
    #[serde(with = "clickhouse::serde::uuid")]
    shortener_url_id: Uuid,
    day: u32,
    marked_us: u64,
}

#[derive(Debug, Clone, Row, Serialize, Deserialize)]
struct LinkDirtyRow {
    #[serde(with = "clickhouse::serde::uuid")]
    shortener_url_id: Uuid,
    marked_us: u64,
}

#[derive(Debug, Row, Deserialize)]
struct UuidRow {
    #[serde(with = "clickhouse::serde::uuid")]
    shortener_url_id: Uuid,
}

/// How long the compactor waits for its replica to catch up (seconds).
const SYNC_TIMEOUT_S: &str = "30";

/// The (link, day) pairs marked since the last compaction.
const DIRTY_PAIRS: &str = "SELECT shortener_url_id, day FROM rollup_dirty \
    WHERE marked_us > (SELECT max(compacted_us) FROM rollup_watermark)";

/// Each link's clicks: compacted days from `click_days`, dirty ones raw.
fn link_totals() -> String {
    format!(
        "SELECT shortener_url_id, toUInt64(sum(c)) AS clicks FROM ( \
         SELECT shortener_url_id, clicks AS c FROM click_days FINAL \
         WHERE (shortener_url_id, day) NOT IN ({DIRTY_PAIRS}) \
         UNION ALL \
         SELECT shortener_url_id, count() AS c FROM clicks FINAL \
         WHERE (shortener_url_id, toUInt32(intDiv(toUInt32(clicked_at), 86400) * 86400)) \
         IN ({DIRTY_PAIRS}) GROUP BY shortener_url_id) GROUP BY shortener_url_id"
    )
}

pub(super) fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

fn day_of(t: i64) -> u32 {
    datetime(rollup::floor(t, 86_400))
}

/// The first second after month `YYYYMM` (UTC).
fn month_end(partition: &str) -> Option<i64> {
    let month: u32 = partition.trim_matches('\'').parse().ok()?;
    let (year, month) = (i32::try_from(month / 100).ok()?, month % 100);
    let (year, month) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    chrono::NaiveDate::from_ymd_opt(year, month, 1)?
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc().timestamp())
}

/// Each click unrolled into (dimension index, value) pairs, for `ARRAY JOIN`.
pub(super) fn dimension_pairs() -> String {
    Dimension::ALL
        .iter()
        .enumerate()
        .map(|(n, d)| format!("(toUInt8({n}), {})", d.column()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// How long a dirty mark also covers later writes of its (link, day): a
/// write that starts within this of the mark is visible (it is bounded by
/// `WRITE_BOUND`) before the compactor may take the mark (`SETTLE_US`),
/// with a second to spare. During a backfill the same (link, day) comes
/// back in batch after batch; its mark is written once every few seconds
/// instead of with every batch.
const MARK_COVERS_US: u64 =
    rollup::SETTLE_US.unsigned_abs() - WRITE_BOUND.as_micros() as u64 - 1_000_000;

/// Beyond this many remembered marks, those too old to cover are dropped.
const RECENT_MARKS_MAX: usize = 200_000;

/// The marks this store wrote lately, by (link, day), on the server they
/// went to. Only marks whose insert succeeded are kept, so a covered write
/// relies on a mark already stored; after a failover they are forgotten,
/// since the new server may not hold them yet.
#[derive(Default)]
pub(crate) struct RecentMarks {
    server: usize,
    at: std::collections::HashMap<(Uuid, u32), u64>,
}

impl RecentMarks {
    /// The pairs of a write starting at `marked_us` on `server` that no
    /// stored mark covers.
    fn uncovered(
        &mut self,
        server: usize,
        pairs: BTreeSet<(Uuid, u32)>,
        marked_us: u64,
    ) -> Vec<(Uuid, u32)> {
        if self.server != server {
            self.at.clear();
            self.server = server;
        }
        pairs
            .into_iter()
            .filter(|pair| {
                !self
                    .at
                    .get(pair)
                    .is_some_and(|&mark| mark <= marked_us && marked_us - mark <= MARK_COVERS_US)
            })
            .collect()
    }

    /// Forgets the marks a compaction up to `upto_us` may take.
    fn forget_through(&mut self, upto_us: u64) {
        self.at.retain(|_, &mut mark| mark > upto_us);
    }

    /// Remembers marks stored on `server` at `marked_us`.
    fn written(&mut self, server: usize, pairs: Vec<(Uuid, u32)>, marked_us: u64) {
        if self.server != server {
            return;
        }
        if self.at.len() + pairs.len() > RECENT_MARKS_MAX {
            self.at
                .retain(|_, &mut mark| marked_us.saturating_sub(mark) <= MARK_COVERS_US);
        }
        if self.at.len() + pairs.len() <= RECENT_MARKS_MAX {
            self.at
                .extend(pairs.into_iter().map(|pair| (pair, marked_us)));
        }
    }
}

impl ClickHouseStore {
    /// Marks the days these clicks fall in dirty, as of `marked_us`.
    pub(super) async fn mark_dirty(
        &self,
        clicks: &[ClickRow],
        marked_us: u64,
    ) -> Result<(), StoreError> {
        let server = self.replicas.active();
        let pairs: BTreeSet<(Uuid, u32)> = clicks
            .iter()
            .map(|c| (c.shortener_url_id, day_of(c.clicked_at)))
            .collect();
        let needed = self.recent_marks().uncovered(server, pairs, marked_us);
        if needed.is_empty() {
            return Ok(());
        }
        let mut insert = self
            .client()
            .insert::<DirtyRow>("rollup_dirty")
            .await
            .map_err(failed)?;
        for &(shortener_url_id, day) in &needed {
            insert
                .write(&DirtyRow {
                    shortener_url_id,
                    day,
                    marked_us,
                })
                .await
                .map_err(failed)?;
        }
        insert.end().await.map_err(failed)?;
        self.recent_marks().written(server, needed, marked_us);
        Ok(())
    }

    fn recent_marks(&self) -> std::sync::MutexGuard<'_, RecentMarks> {
        self.replicas
            .recent_marks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits until the server in use holds every click, mark and watermark
    /// another replica had taken when this started. Marks settled before
    /// `settled_before_us` were taken by then (a write is done within half
    /// the settle window), so the compactor cannot pass over one that is
    /// still on the way from another replica. While a replica with parts
    /// not yet fetched is down, this fails (after `SYNC_TIMEOUT_S`) and
    /// compaction waits; stats read those days raw meanwhile.
    async fn sync_replica(&self) -> Result<(), StoreError> {
        for table in [
            "clicks",
            "rollup_dirty",
            "rollup_watermark",
            "link_changes",
            "link_dirty",
        ] {
            self.client()
                .query(&format!("SYSTEM SYNC REPLICA {table}"))
                .with_setting("receive_timeout", SYNC_TIMEOUT_S)
                .execute()
                .await
                .map_err(failed)?;
        }
        Ok(())
    }

    /// Marks the links of these stored changes for the compactor's fold,
    /// as of now (after the changes are stored), within `WRITE_BOUND` or
    /// failed (the batch is then retried and marks again).
    pub(super) async fn mark_links_dirty(
        &self,
        changes: &[ChangeRecord],
    ) -> Result<(), StoreError> {
        let ids: BTreeSet<Uuid> = changes.iter().map(|c| c.url_id).collect();
        let marked_us = u64::try_from(now_us()).unwrap_or_default();
        let mark = async {
            let mut insert = self
                .client()
                .insert::<LinkDirtyRow>("link_dirty")
                .await
                .map_err(failed)?;
            for shortener_url_id in ids {
                insert
                    .write(&LinkDirtyRow {
                        shortener_url_id,
                        marked_us,
                    })
                    .await
                    .map_err(failed)?;
            }
            insert.end().await.map_err(failed)
        };
        tokio::time::timeout(WRITE_BOUND, mark)
            .await
            .unwrap_or_else(|_| Err(failed(anyhow::anyhow!("link marks not written in time"))))
    }

    /// Folds again every link marked between `from` and `upto`; how many.
    async fn refold_marked_links(&self, from: u64, upto: u64) -> Result<usize, StoreError> {
        let ids: Vec<Uuid> = self
            .client()
            .query(&format!(
                "SELECT DISTINCT shortener_url_id FROM link_dirty \
                 WHERE marked_us > {from} AND marked_us <= {upto}"
            ))
            .fetch_all::<UuidRow>()
            .await
            .map_err(failed)?
            .into_iter()
            .map(|r| r.shortener_url_id)
            .collect();
        for chunk in ids.chunks(10_000) {
            self.refold_links(chunk).await?;
        }
        Ok(ids.len())
    }

    async fn watermark(&self) -> Result<u64, StoreError> {
        self.client()
            .query("SELECT max(compacted_us) FROM rollup_watermark")
            .fetch_one::<u64>()
            .await
            .map_err(failed)
    }

    /// Recomputes every day marked dirty up to `settled_before_us` from the
    /// deduplicated raw rows; returns how many (link, day) pairs.
    pub(super) async fn compact_days(&self, settled_before_us: i64) -> Result<u64, StoreError> {
        // Marks this compaction may take no longer cover later writes. (The
        // compactor's own cutoff is older than any cover; a caller that
        // compacts up to now, with nothing in flight, relies on this.)
        self.recent_marks()
            .forget_through(u64::try_from(settled_before_us).unwrap_or_default());
        if self.settings.replicated {
            self.sync_replica().await?;
        }
        let from = self.watermark().await?;
        let upto = u64::try_from(settled_before_us).unwrap_or_default();
        if upto <= from {
            return Ok(0);
        }
        // The pairs stay on the server: every statement reads them as a set
        // (the clicks' primary key narrows the read to their links), so a
        // backfill that dirtied a million pairs costs three scans, not a
        // statement per batch of pairs.
        let dirty = format!(
            "SELECT shortener_url_id, day FROM rollup_dirty \
             WHERE marked_us > {from} AND marked_us <= {upto}"
        );
        if self.settings.replicated {
            let links = self.refold_marked_links(from, upto).await?;
            if links > 0 {
                tracing::debug!(links, "link copies folded again after replication");
            }
        }
        let pairs: u64 = self
            .client()
            .query(&format!(
                "SELECT count() FROM (SELECT DISTINCT * FROM ({dirty}))"
            ))
            .fetch_one()
            .await
            .map_err(failed)?;
        self.recompute_rollups(&dirty).await?;
        // Only now: a reader that sees the new watermark finds the rollups.
        self.client()
            .query(&format!("INSERT INTO rollup_watermark VALUES (1, {upto})"))
            .execute()
            .await
            .map_err(failed)?;
        // Markings two days behind the watermark are no longer read.
        self.drop_old_markings(from).await;
        Ok(pairs)
    }

    /// Recomputes the hours, days and values of the (link, day) pairs
    /// `dirty` selects from the deduplicated raw clicks, each written with
    /// a newer version than any before it.
    async fn recompute_rollups(&self, dirty: &str) -> Result<(), StoreError> {
        // Versions by the start of the recomputation: a later one, which
        // read more raw rows, always wins.
        let version = now_us();
        let condition = format!(
            "(shortener_url_id, toUInt32(intDiv(toUInt32(clicked_at), 86400) * 86400)) \
             IN ({dirty})"
        );
        let pairs_sql = dimension_pairs();
        for sql in [
            format!(
                "INSERT INTO click_hours SELECT shortener_url_id, \
                 toUInt32(intDiv(toUInt32(clicked_at), 3600) * 3600) AS hour, count(), \
                 toUInt64(sum(is_bot)), {UNIQUES}, toUInt32(min(clicked_at)), \
                 toUInt64({version}) FROM clicks FINAL WHERE {condition} \
                 GROUP BY shortener_url_id, hour"
            ),
            format!(
                "INSERT INTO click_days SELECT shortener_url_id, \
                 toUInt32(intDiv(toUInt32(clicked_at), 86400) * 86400) AS day, count(), \
                 toUInt64(sum(is_bot)), {UNIQUES}, toUInt64({version}) \
                 FROM clicks FINAL WHERE {condition} GROUP BY shortener_url_id, day"
            ),
            format!(
                "INSERT INTO click_day_values SELECT shortener_url_id, \
                 toUInt32(intDiv(toUInt32(clicked_at), 86400) * 86400) AS day, \
                 tupleElement(pair, 1) AS dimension, tupleElement(pair, 2) AS value, \
                 count(), toUInt64({version}) FROM clicks FINAL \
                 ARRAY JOIN [{pairs_sql}] AS pair \
                 WHERE {condition} AND tupleElement(pair, 2) != '' \
                 GROUP BY shortener_url_id, day, dimension, value"
            ),
        ] {
            // One thread: the other core stays with ingest.
            self.client()
                .query(&sql)
                .with_setting("max_threads", "1")
                .execute()
                .await
                .map_err(failed)?;
        }
        Ok(())
    }

    async fn drop_old_markings(&self, watermark: u64) {
        const DAY_US: u64 = 86_400_000_000;
        let keep_from = watermark / DAY_US;
        for table in ["rollup_dirty", "link_dirty"] {
            let partitions: Vec<String> = match self
                .client()
                .query(&format!(
                    "SELECT DISTINCT partition FROM system.parts \
                     WHERE database = currentDatabase() AND table = '{table}' AND active"
                ))
                .fetch_all::<String>()
                .await
            {
                Ok(partitions) => partitions,
                Err(error) => {
                    tracing::debug!(%error, table, "markings not listed");
                    continue;
                }
            };
            for partition in partitions {
                if partition.parse::<u64>().is_ok_and(|p| p + 2 <= keep_from) {
                    let _ = self
                        .client()
                        .query(&format!("ALTER TABLE {table} DROP PARTITION {partition}"))
                        .execute()
                        .await;
                }
            }
        }
    }

    /// The raw retention: drops every monthly partition of `clicks` that
    /// ends at or before `cutoff`, once none of its days awaits compaction
    /// (their rollups must hold them first). Returns the rows dropped.
    pub(super) async fn drop_raw_partitions_before(&self, cutoff: i64) -> Result<u64, StoreError> {
        let cutoff = datetime(cutoff);
        let waiting: u64 = self
            .client()
            .query(&format!(
                "SELECT count() FROM rollup_dirty WHERE day < {cutoff} \
                 AND marked_us > (SELECT max(compacted_us) FROM rollup_watermark)"
            ))
            .fetch_one()
            .await
            .map_err(failed)?;
        if waiting > 0 {
            // The next round (an hour later) finds them compacted.
            return Ok(0);
        }
        // Partitions are months (`toYYYYMM`, in the server's time zone:
        // a day of margin covers any zone). A month goes once all of it is
        // before the cutoff.
        let partitions: Vec<(String, u64)> = self
            .client()
            .query(
                "SELECT partition, sum(rows) FROM system.parts \
                 WHERE database = currentDatabase() AND table = 'clicks' AND active \
                 GROUP BY partition",
            )
            .fetch_all()
            .await
            .map_err(failed)?;
        let mut dropped = 0;
        for (partition, rows) in partitions {
            let Some(ends) = month_end(&partition) else {
                continue;
            };
            if ends + 86_400 <= i64::from(cutoff) {
                self.client()
                    .query(&format!("ALTER TABLE clicks DROP PARTITION {partition}"))
                    .execute()
                    .await
                    .map_err(failed)?;
                dropped += rows;
            }
        }
        Ok(dropped)
    }

    /// Every link's all-time total: its compacted days from the rollups
    /// (so clicks past the raw retention still count), and its days still
    /// dirty from the raw clicks.
    pub(super) async fn rollup_link_totals(&self) -> Result<Vec<(Uuid, u64)>, StoreError> {
        self.link_totals_by(&link_totals()).await
    }

    /// `(shortener_url_id, clicks)` rows of `sql`.
    pub(super) async fn link_totals_by(&self, sql: &str) -> Result<Vec<(Uuid, u64)>, StoreError> {
        let rows: Vec<LinkTotalRecord> =
            self.client().query(sql).fetch_all().await.map_err(failed)?;
        Ok(rows
            .into_iter()
            .map(|r| (r.shortener_url_id, r.clicks))
            .collect())
    }

    /// The sum of the totals above.
    pub(super) async fn rollup_click_count(&self) -> Result<u64, StoreError> {
        self.client()
            .query(&format!(
                "SELECT toUInt64(sum(clicks)) FROM ({})",
                link_totals()
            ))
            .fetch_one()
            .await
            .map_err(failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_ends_where_the_next_month_starts() {
        // 2027-01-01 and 2026-03-01, UTC.
        assert_eq!(month_end("202612"), Some(1_798_761_600));
        assert_eq!(month_end("'202602'"), Some(1_772_323_200));
        assert_eq!(month_end("tuple()"), None);
    }

    #[test]
    fn a_stored_mark_covers_later_writes_only_while_it_cannot_have_settled() {
        let link = Uuid::new_v4();
        let pair = (link, 1_798_761_600);
        let other = (Uuid::new_v4(), 1_798_761_600);
        let mut marks = RecentMarks::default();
        let at = 1_000_000_000_000;
        let both = || BTreeSet::from([pair, other]);
        assert_eq!(marks.uncovered(0, both(), at).len(), 2);
        marks.written(0, vec![pair], at);
        // Within the cover, only the unmarked pair needs a mark.
        assert_eq!(marks.uncovered(0, both(), at + MARK_COVERS_US), vec![other]);
        // Past it, or before the mark (a clock stepped back), both do.
        assert_eq!(marks.uncovered(0, both(), at + MARK_COVERS_US + 1).len(), 2);
        assert_eq!(marks.uncovered(0, both(), at - 1).len(), 2);
        // On another server (a failover) nothing is covered, and a mark
        // written before the switch is not remembered after it.
        assert_eq!(marks.uncovered(1, both(), at + 1).len(), 2);
        marks.written(0, vec![pair], at);
        assert_eq!(marks.uncovered(1, both(), at + 1).len(), 2);
        // A compaction that may take the mark ends its cover.
        marks.written(1, vec![pair], at);
        assert_eq!(marks.uncovered(1, both(), at + 1), vec![other]);
        marks.forget_through(at);
        assert_eq!(marks.uncovered(1, both(), at + 1).len(), 2);
        // The cover ends a second before the write bound meets the settle
        // window.
        assert_eq!(
            MARK_COVERS_US + WRITE_BOUND.as_micros() as u64 + 1_000_000,
            rollup::SETTLE_US as u64
        );
    }
}
