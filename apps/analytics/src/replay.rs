//! Replay: rebuilds the analytics store from the stream, which is the event
//! log, without ever putting what the store holds at risk.
//!
//! 1. **Build beside.** A new store is filled next to the live one (a
//!    `<file>.replay` SQLite file, or a `<database>_replay` ClickHouse
//!    database) by durable consumers of its own (`analytics-replay-…`),
//!    reading from the stream's first message. The service may keep running:
//!    its consumers and store are not touched.
//! 2. **Verify.** The stream must still hold the oldest stored click (its
//!    first message is not younger than that click), and every link must
//!    have at least as many clicks in the new store as in the live one.
//!    Otherwise replay refuses, unless `--allow-shorter-history` is given.
//! 3. **Swap atomically.** ClickHouse: one `RENAME TABLE` moves the live
//!    tables to `<database>_before_replay_<time>` and the new ones in.
//!    SQLite: the live file is copied to `<file>.before-replay-<time>`, then
//!    one transaction replaces the rows with the new store's. The old store
//!    is kept until the operator removes it.
//! 4. **Catch up.** The replay's consumers go on into the swapped-in store
//!    until nothing is left, so whatever the service stored meanwhile is
//!    there too, then they are deleted.
//!
//! Any failure, or a kill, before step 3 leaves the live store as it was;
//! the next replay removes the unfinished build first.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use tokio_util::sync::CancellationToken;

use crate::configuration::{Settings, StoreSettings};
use contracts::stream::{dead_letter_stream_config, ensure_stream, shortener_stream_config};

use crate::consumer::supervise::run_consumers;
use crate::consumer::{ConsumerSettings, Ingest, SUBJECTS, delete_consumers, lag};
use crate::metrics::Metrics;
use crate::startup::connect_nats;
use crate::store::{AnalyticsStore, ClickHouseSettings, ClickHouseStore, SqliteStore};

/// The replay's durable consumers' prefix.
pub const REPLAY_CONSUMERS: &str = "analytics-replay";
/// A killed replay's consumers are removed by the server after this long.
const REPLAY_CONSUMERS_LINGER: Duration = Duration::from_secs(300);
/// Verification drains and compares again this many times before it
/// concludes that the stream lacks clicks the live store has.
const VERIFY_ROUNDS: usize = 3;

/// How a replay may go.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReplayOptions {
    /// Swap even when the stream no longer holds every stored click.
    pub allow_shorter_history: bool,
}

/// What a replay did.
#[derive(Debug, Clone)]
pub struct ReplayReport {
    pub clicks: u64,
    pub elapsed: Duration,
    /// Where the store as it was before is kept.
    pub kept: String,
    /// What verification found missing, when `allow_shorter_history` let
    /// the replay go on regardless; empty otherwise.
    pub shortfall: Vec<String>,
}

/// Replay refused to swap: the new store would have lost clicks.
#[derive(Debug, thiserror::Error)]
#[error("replay refused, the live store is unchanged: {}; the stream no longer holds all of this store's history (rerun with --allow-shorter-history to accept losing it)", .reasons.join("; "))]
pub struct Refused {
    pub reasons: Vec<String>,
}

/// The store being built, and where the live one goes when it is replaced.
enum Build {
    Sqlite {
        live: SqliteStore,
        built: PathBuf,
        keep: PathBuf,
    },
    ClickHouse {
        live: Box<ClickHouseStore>,
        built: String,
        keep: String,
    },
}

fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Removes a SQLite file and its WAL companions, those that exist.
fn remove_sqlite_file(path: &Path) -> anyhow::Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        match std::fs::remove_file(beside(path, suffix)) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error.into()),
            _ => {}
        }
    }
    Ok(())
}

impl Build {
    /// Opens the live store, removes an unfinished build, opens a new one.
    async fn start(settings: &StoreSettings) -> anyhow::Result<(Self, Arc<dyn AnalyticsStore>)> {
        let stamp = chrono::Utc::now().format("%Y%m%d%H%M%S");
        Ok(match settings {
            StoreSettings::Sqlite { path } => {
                let live = SqliteStore::open(path).await?;
                let built = beside(path, ".replay");
                remove_sqlite_file(&built)?;
                let store = SqliteStore::open(&built).await?;
                let keep = beside(path, &format!(".before-replay-{stamp}"));
                (Build::Sqlite { live, built, keep }, Arc::new(store))
            }
            StoreSettings::ClickHouse(ch) if ch.replicated => {
                // The rebuilt tables are swapped in with RENAME, which acts
                // on one server; the other replicas would keep the old ones.
                anyhow::bail!(
                    "replay rebuilds one ClickHouse server's tables and cannot swap them in on \
                     every replica; with ANALYTICS_CLICKHOUSE_REPLICATED=true, rebuild as \
                     docs/scaling.md describes"
                )
            }
            StoreSettings::ClickHouse(ch) => {
                let live = Box::new(ClickHouseStore::open(ch.clone()).await?);
                let built = format!("{}_replay", ch.database);
                live.drop_database(&built).await?;
                let store = ClickHouseStore::open(ClickHouseSettings {
                    database: built.clone(),
                    ..ch.clone()
                })
                .await?;
                let keep = format!("{}_before_replay_{stamp}", ch.database);
                (Build::ClickHouse { live, built, keep }, Arc::new(store))
            }
        })
    }

    fn live(&self) -> Arc<dyn AnalyticsStore> {
        match self {
            Build::Sqlite { live, .. } => Arc::new(live.clone()),
            Build::ClickHouse { live, .. } => Arc::new(live.as_ref().clone()),
        }
    }

    /// Removes the build, leaving the live store as it is.
    async fn discard(self, built_store: Arc<dyn AnalyticsStore>) -> anyhow::Result<()> {
        drop(built_store);
        match self {
            Build::Sqlite { built, .. } => remove_sqlite_file(&built),
            Build::ClickHouse { live, built, .. } => live.drop_database(&built).await,
        }
    }

    /// Swaps the build in; returns where the old store is kept.
    async fn swap(self, built_store: Arc<dyn AnalyticsStore>) -> anyhow::Result<String> {
        drop(built_store);
        match self {
            Build::Sqlite { live, built, keep } => {
                live.swap_in(&built, &keep).await?;
                remove_sqlite_file(&built)?;
                Ok(keep.display().to_string())
            }
            Build::ClickHouse { live, built, keep } => {
                live.swap_in(&built, &keep).await?;
                Ok(format!("ClickHouse database {keep}"))
            }
        }
    }
}

/// Consumers of every subject writing into one store, until stopped.
struct Consuming {
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    consuming: Arc<AtomicBool>,
}

impl Consuming {
    fn start(
        store: Arc<dyn AnalyticsStore>,
        jetstream: jetstream::Context,
        settings: ConsumerSettings,
    ) -> Self {
        let shutdown = CancellationToken::new();
        let consuming = Arc::new(AtomicBool::new(false));
        let ingest = Arc::new(Ingest::new(
            store.clone(),
            store,
            jetstream,
            Arc::new(Metrics::default()),
            settings,
        ));
        let task = tokio::spawn(run_consumers(ingest, consuming.clone(), shutdown.clone()));
        Self {
            shutdown,
            task,
            consuming,
        }
    }

    /// Waits until the consumers have acknowledged every message.
    async fn drain(
        &self,
        stream: &jetstream::stream::Stream,
        settings: &ConsumerSettings,
    ) -> anyhow::Result<()> {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if !self.consuming.load(Ordering::Acquire) {
                continue;
            }
            let mut left = 0;
            for subject in SUBJECTS {
                let name = crate::consumer::consumer_name(settings.consumer_prefix, subject);
                let mut consumer = stream
                    .get_consumer(&name)
                    .await
                    .map_err(|e| anyhow::anyhow!("consumer {name}: {e}"))?;
                left += lag(&mut consumer).await?;
            }
            if left == 0 {
                return Ok(());
            }
        }
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.task.await?;
        Ok(())
    }
}

/// What the new store lacks that the live one has; empty when nothing.
async fn shortfall(
    live: &dyn AnalyticsStore,
    built: &dyn AnalyticsStore,
    stream: &mut jetstream::stream::Stream,
) -> anyhow::Result<Vec<String>> {
    let mut reasons = Vec::new();
    let state = stream.info().await?.state.clone();
    if let Some(oldest) = live.oldest_click().await? {
        let first = state.first_timestamp.unix_timestamp();
        if state.first_sequence > 1 && oldest < first {
            reasons.push(format!(
                "the oldest stored click is from {}, before the stream's first message \
                 (sequence {}, {})",
                crate::stats::rfc3339(oldest),
                state.first_sequence,
                crate::stats::rfc3339(first)
            ));
        }
    }
    let rebuilt: HashMap<_, _> = built.all_click_totals().await?.into_iter().collect();
    let mut short: Vec<(uuid::Uuid, u64, u64)> = live
        .all_click_totals()
        .await?
        .into_iter()
        .filter_map(|(id, clicks)| {
            let new = rebuilt.get(&id).copied().unwrap_or(0);
            (new < clicks).then_some((id, clicks, new))
        })
        .collect();
    if !short.is_empty() {
        short.sort_by_key(|(_, live, new)| std::cmp::Reverse(live - new));
        let lost: u64 = short.iter().map(|(_, live, new)| live - new).sum();
        let examples: Vec<String> = short
            .iter()
            .take(3)
            .map(|(id, live, new)| format!("{id}: {live} stored, {new} rebuilt"))
            .collect();
        reasons.push(format!(
            "{} links would lose {lost} clicks (e.g. {})",
            short.len(),
            examples.join(", ")
        ));
    }
    Ok(reasons)
}

pub async fn replay(settings: &Settings, options: ReplayOptions) -> anyhow::Result<ReplayReport> {
    let started = Instant::now();
    let (build, built) = Build::start(&settings.store).await?;
    let live = build.live();
    let jetstream = jetstream::new(connect_nats(&settings.nats_url).await?);
    let consumers = ConsumerSettings {
        consumer_prefix: REPLAY_CONSUMERS,
        inactive_threshold: Some(REPLAY_CONSUMERS_LINGER),
        ..settings.consumers.clone()
    };
    let replicas = consumers.stream_replicas;
    let mut stream = ensure_stream(&jetstream, shortener_stream_config(replicas)).await?;
    ensure_stream(&jetstream, dead_letter_stream_config(replicas)).await?;
    // An unfinished replay's consumers would start midway: start over.
    delete_consumers(&stream, REPLAY_CONSUMERS).await?;
    tracing::info!(
        store = live.kind(),
        "building a new store beside the live one from the stream's first message"
    );
    let into_build = Consuming::start(built.clone(), jetstream.clone(), consumers.clone());
    let mut missing = Vec::new();
    for round in 1..=VERIFY_ROUNDS {
        into_build.drain(&stream, &consumers).await?;
        missing = shortfall(live.as_ref(), built.as_ref(), &mut stream).await?;
        if missing.is_empty() {
            break;
        }
        tracing::info!(
            round,
            ?missing,
            "the new store lacks clicks the live one has; draining again"
        );
    }
    into_build.stop().await?;
    if !missing.is_empty() && !options.allow_shorter_history {
        delete_consumers(&stream, REPLAY_CONSUMERS).await?;
        build.discard(built).await?;
        return Err(Refused { reasons: missing }.into());
    }
    let kept = build.swap(built).await?;
    tracing::info!(kept, "new store swapped in; catching up with the stream");
    let catch_up = Consuming::start(live.clone(), jetstream, consumers.clone());
    catch_up.drain(&stream, &consumers).await?;
    catch_up.stop().await?;
    delete_consumers(&stream, REPLAY_CONSUMERS).await?;
    Ok(ReplayReport {
        clicks: live.click_count().await?,
        elapsed: started.elapsed(),
        kept,
        shortfall: missing,
    })
}
