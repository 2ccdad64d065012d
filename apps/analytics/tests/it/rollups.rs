//! The rollups never change an answer: for random batches of clicks, with
//! duplicates within and across batches (redeliveries, republishes of old
//! clicks) and compactions in between (ClickHouse), the stats read from
//! rollups equal the stats computed here from the deduplicated raw clicks,
//! for random ranges at both bucket sizes, on both stores.

use std::collections::{BTreeMap, HashMap, HashSet};

use analytics::domain::{Bucket, BucketCount, ClickRow, Dimension, Totals, Window};
use analytics::store::{AnalyticsStore, ClickHouseSettings, ClickHouseStore, SqliteStore};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use system_tests::{ClickHouseServer, started};
use uuid::Uuid;

const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;
/// The clicks fall in four days from here (a Monday, 2026-11-23).
const START: i64 = 1_795_392_000;
const SPAN: i64 = 4 * DAY;

/// One generated click: which link, when (seconds after START), which
/// visitor (0: none), referrer (0: none) and browser.
type Spec = (usize, i64, u8, u8, u8, bool);

fn row(n: usize, spec: Spec, links: &[Uuid]) -> ClickRow {
    let (link, at, visitor, referrer, browser, bot) = spec;
    let pick = |i: u8, none: &str, values: &[&str]| match i as usize {
        0 => none.to_owned(),
        i => values[(i - 1) % values.len()].to_owned(),
    };
    ClickRow {
        event_id: Uuid::from_u128(n as u128 + 1),
        shortener_url_id: links[link % links.len()],
        short_code: format!("l{}", link % links.len()),
        clicked_at: START + at,
        referrer_host: pick(referrer, "", &["news.example", "mail.example", "t.co"]),
        browser: pick(browser, "", &["Firefox", "Chrome", "Safari"]),
        os: pick(browser, "", &["Linux", "Windows", "iOS"]),
        device: if bot { "bot".into() } else { "desktop".into() },
        is_bot: bot,
        visitor_key: pick(visitor, "", &["v1", "v2", "v3", "v4", "v5"]),
        country: pick(referrer, "", &["DE", "FR"]),
    }
}

/// What the stats of `window` are, from the deduplicated raw clicks.
struct Expected<'a>(Vec<&'a ClickRow>);

impl<'a> Expected<'a> {
    fn of(rows: &'a HashMap<Uuid, ClickRow>, window: Window) -> Self {
        Self(
            rows.values()
                .filter(|r| {
                    r.shortener_url_id == window.url_id
                        && r.clicked_at >= window.from
                        && r.clicked_at < window.to
                })
                .collect(),
        )
    }

    /// Visitors are distinct per bucket (a day, or an hour).
    fn uniques(rows: &[&ClickRow], size: i64) -> u64 {
        rows.iter()
            .filter(|r| !r.visitor_key.is_empty())
            .map(|r| (r.clicked_at.div_euclid(size), r.visitor_key.as_str()))
            .collect::<HashSet<_>>()
            .len() as u64
    }

    fn totals(&self) -> Totals {
        Totals {
            clicks: self.0.len() as u64,
            unique_visitors: Self::uniques(&self.0, DAY),
            bot_clicks: self.0.iter().filter(|r| r.is_bot).count() as u64,
        }
    }

    fn series(&self, bucket: Bucket) -> Vec<BucketCount> {
        let size = bucket.seconds();
        let mut buckets: BTreeMap<i64, Vec<&ClickRow>> = BTreeMap::new();
        for r in &self.0 {
            buckets
                .entry(r.clicked_at.div_euclid(size) * size)
                .or_default()
                .push(r);
        }
        buckets
            .into_iter()
            .map(|(start, rows)| BucketCount {
                start,
                clicks: rows.len() as u64,
                unique_visitors: Self::uniques(&rows, size),
            })
            .collect()
    }

    fn tops(&self, limit: usize) -> Vec<Vec<(String, u64)>> {
        Dimension::ALL
            .iter()
            .map(|d| {
                let mut counts: HashMap<String, u64> = HashMap::new();
                for r in &self.0 {
                    let value = match d {
                        Dimension::Referrer => &r.referrer_host,
                        Dimension::Browser => &r.browser,
                        Dimension::Os => &r.os,
                        Dimension::Device => &r.device,
                        Dimension::Country => &r.country,
                    };
                    if !value.is_empty() {
                        *counts.entry(value.clone()).or_default() += 1;
                    }
                }
                let mut list: Vec<(String, u64)> = counts.into_iter().collect();
                list.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                list.truncate(limit);
                list
            })
            .collect()
    }
}

fn click() -> impl Strategy<Value = Spec> {
    (
        0usize..2,
        // Mostly spread over the span, sometimes on an hour or day boundary.
        prop_oneof![
            0..SPAN,
            (0i64..4).prop_map(|d| d * DAY),
            (0i64..96).prop_map(|h| h * HOUR - 1),
        ],
        0u8..6,
        0u8..4,
        0u8..4,
        any::<bool>(),
    )
}

fn edge() -> impl Strategy<Value = i64> {
    prop_oneof![
        -DAY..SPAN + DAY,
        (0i64..5).prop_map(|d| d * DAY),
        (0i64..97).prop_map(|h| h * HOUR),
    ]
}

/// Batches of new clicks, each followed by how many earlier events to
/// send again and whether a compaction follows; then ranges to ask for.
type Case = (Vec<(Vec<Spec>, usize, bool)>, Vec<(i64, i64)>);

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(
            (
                prop::collection::vec(click(), 0..40),
                0usize..30,
                any::<bool>(),
            ),
            1..6,
        ),
        prop::collection::vec((edge(), edge()), 1..6),
    )
}

async fn check(store: &dyn AnalyticsStore, case: Case) -> Result<(), TestCaseError> {
    let links = [Uuid::from_u128(7), Uuid::from_u128(8)];
    let (batches, ranges) = case;
    let mut sent: Vec<ClickRow> = Vec::new();
    let mut stored: HashMap<Uuid, ClickRow> = HashMap::new();
    for (n, (specs, resend, compact)) in batches.into_iter().enumerate() {
        let mut batch: Vec<ClickRow> = specs
            .into_iter()
            .enumerate()
            .map(|(i, spec)| row(n * 1_000 + i, spec, &links))
            .collect();
        // Earlier events again (and some of this batch twice).
        for i in 0..resend.min(sent.len() + batch.len()) {
            let again = if i % 3 == 0 && !batch.is_empty() {
                batch[i % batch.len()].clone()
            } else if !sent.is_empty() {
                sent[(i * 7) % sent.len()].clone()
            } else {
                continue;
            };
            batch.push(again);
        }
        store.insert_clicks(&batch).await.unwrap();
        for r in batch {
            stored.entry(r.event_id).or_insert_with(|| r.clone());
            sent.push(r);
        }
        if compact {
            // Everything stored so far has settled.
            store
                .compact(chrono::Utc::now().timestamp_micros())
                .await
                .unwrap();
        }
    }
    for (a, b) in ranges {
        for link in links {
            let window = Window {
                url_id: link,
                from: START + a,
                to: START + b,
            };
            let expected = Expected::of(&stored, window);
            prop_assert_eq!(
                store.totals(window).await.unwrap(),
                expected.totals(),
                "totals of {:?}",
                window
            );
            for bucket in [Bucket::Hour, Bucket::Day] {
                prop_assert_eq!(
                    store.series(window, bucket).await.unwrap(),
                    expected.series(bucket),
                    "{:?} series of {:?}",
                    bucket,
                    window
                );
            }
            prop_assert_eq!(
                store.tops(window, 2).await.unwrap(),
                expected.tops(2),
                "tops of {:?}",
                window
            );
        }
    }
    Ok(())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn rollup_stats_equal_stats_of_the_deduplicated_raw_clicks_on_sqlite(case in case()) {
        runtime().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let store = SqliteStore::open(&dir.path().join("rollups.db")).await.unwrap();
            check(&store, case).await
        })?;
    }
}

#[test]
fn rollup_stats_equal_stats_of_the_deduplicated_raw_clicks_on_clickhouse() {
    let Some(server) = started(ClickHouseServer::start()) else {
        return;
    };
    let rt = runtime();
    let databases = std::cell::Cell::new(0);
    let mut runner = TestRunner::new(Config::with_cases(24));
    let outcome = runner.run(&case(), |case| {
        databases.set(databases.get() + 1);
        rt.block_on(async {
            let store = clickhouse_store(&server, format!("rollups_{}", databases.get())).await;
            check(&store, case).await
        })
    });
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
}

/// All-time stats of both links, by day and by hour.
async fn all_time(store: &dyn AnalyticsStore, links: &[Uuid], now: i64) -> Vec<serde_json::Value> {
    use analytics::domain::LinkCopy;
    use analytics::stats::{StatsQuery, stats};
    let mut answers = Vec::new();
    for id in links {
        for bucket in [Bucket::Day, Bucket::Hour] {
            let query = StatsQuery {
                from: None,
                to: None,
                bucket,
            };
            let copy = LinkCopy::placeholder(*id, "l");
            let answer = stats(store, &copy, query, now).await.unwrap();
            answers.push(serde_json::to_value(answer).unwrap());
        }
    }
    answers
}

/// Stores 2,000 clicks spread over `span` seconds from `start`, drops the
/// raw clicks before `cutoff`, and checks that all-time stats did not
/// change; returns how many raw clicks went and how many are left.
async fn retention_keeps_all_time_stats(
    store: &dyn AnalyticsStore,
    start: i64,
    span: i64,
    cutoff: i64,
) -> (u64, u64) {
    let links = [Uuid::from_u128(7), Uuid::from_u128(8)];
    let rows: Vec<ClickRow> = (0..2_000)
        .map(|n: usize| {
            let spec = (
                n % 3 % 2,
                (n as i64 * 7_919) % span,
                (n % 6) as u8,
                (n % 4) as u8,
                (n / 4 % 4) as u8,
                n % 13 == 0,
            );
            let mut row = row(n, spec, &links);
            row.clicked_at += start - START;
            row
        })
        .collect();
    store.insert_clicks(&rows).await.unwrap();
    store
        .compact(chrono::Utc::now().timestamp_micros())
        .await
        .unwrap();
    let now = start + span + 3 * HOUR;
    let before = all_time(store, &links, now).await;
    let dropped = store.drop_raw_clicks_before(cutoff).await.unwrap();
    assert_eq!(all_time(store, &links, now).await, before);
    assert!(before[0]["total_clicks"].as_u64().unwrap() > 500);
    let left: u64 = store
        .raw_click_totals()
        .await
        .unwrap()
        .iter()
        .map(|(_, n)| n)
        .sum();
    assert_eq!(dropped + left, rows.len() as u64);
    (dropped, left)
}

/// A store in a database of its own on `server`.
async fn clickhouse_store(server: &ClickHouseServer, database: String) -> ClickHouseStore {
    ClickHouseStore::open(ClickHouseSettings {
        url: server.url(),
        database,
        user: None,
        password: None,
        replicated: false,
    })
    .await
    .unwrap()
}

/// With the raw clicks older than the retention dropped, a link's all-time
/// stats do not change: they come from the rollups.
#[tokio::test]
async fn all_time_stats_survive_the_raw_retention_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("retention.db"))
        .await
        .unwrap();
    // Keep the last two days of raw clicks only: SQLite drops to the second.
    let cutoff = START + 2 * DAY;
    let (dropped, left) = retention_keeps_all_time_stats(&store, START, SPAN, cutoff).await;
    assert!(
        dropped > 500 && left > 500,
        "{dropped} dropped, {left} left"
    );
}

/// The same on ClickHouse, which drops whole monthly partitions.
#[test]
fn all_time_stats_survive_the_raw_retention_on_clickhouse() {
    let Some(server) = started(ClickHouseServer::start()) else {
        return;
    };
    runtime().block_on(async {
        let store = clickhouse_store(&server, "retention".into()).await;
        // 2026-09-01 to 2026-11-30; keep from 2026-11-15: September and
        // October go, November stays.
        let (september, december) = (1_788_220_800, 1_796_083_200);
        let cutoff = 1_794_700_800;
        let (dropped, left) =
            retention_keeps_all_time_stats(&store, september, december - september, cutoff).await;
        assert!(
            dropped > 1_000 && left > 300,
            "{dropped} dropped, {left} left"
        );
    });
}

/// One stats answer is one moment: while batches of clicks commit, every
/// answer's series adds up to its own total (they are read from one
/// snapshot, not from three moments).
#[test]
fn a_stats_answer_read_while_clicks_arrive_adds_up_on_sqlite() {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let store: std::sync::Arc<dyn AnalyticsStore> = std::sync::Arc::new(
                SqliteStore::open(&dir.path().join("snapshot.db"))
                    .await
                    .unwrap(),
            );
            let links = [Uuid::from_u128(7)];
            let writer = {
                let store = store.clone();
                tokio::spawn(async move {
                    for batch in 0..200usize {
                        let rows: Vec<ClickRow> = (0..10)
                            .map(|i| {
                                let n = batch * 10 + i;
                                row(n, (0, (n as i64 * 37) % SPAN, 1, 1, 1, false), &links)
                            })
                            .collect();
                        store.insert_clicks(&rows).await.unwrap();
                    }
                })
            };
            let window = Window {
                url_id: links[0],
                from: START,
                to: START + SPAN,
            };
            let mut reads = 0;
            while !writer.is_finished() {
                let read = store.window_stats(window, Bucket::Hour, 3).await.unwrap();
                let series: u64 = read.series.iter().map(|b| b.clicks).sum();
                assert_eq!(series, read.totals.clicks, "read {reads}");
                reads += 1;
            }
            writer.await.unwrap();
            assert!(reads > 0);
        });
}
