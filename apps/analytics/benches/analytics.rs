//! `make bench-analytics`: sustained ingest from the stream into each store,
//! and stats latency over 10 million clicks in ClickHouse.
//!
//! Ingest: a nats-server holding `INGEST_EVENTS` click events (published
//! beforehand, as the shortener would, and older than the stream's duplicate
//! window, see `wait_out_duplicate_window`), then the release analytics
//! binary on a fresh store; the rate is events over the time from the
//! consumer's creation until nothing is left unacknowledged. Both stores
//! consume the same stream (the consumers are deleted in between).
//!
//! Stats: 10 million clicks loaded straight into ClickHouse over 100,000
//! links with a Zipf (s = 1) popularity, so the busiest link has about
//! 800,000 clicks; 5% of the links are deleted and 1% never had their
//! creation arrive. Then, through the HTTP API: `STATS_QUERIES` requests for
//! uniformly chosen links (all-time range, daily buckets), `PAGES` pages of
//! the list of links (`GET /api/v1/links`) and every page of the reconciliation report, each
//! followed by its cursor.
//!
//! The hot link, on each store: one link's clicks (`HOT_CLICKHOUSE` on
//! ClickHouse, `HOT_SQLITE` on SQLite) over 30 days among a tenth as many of
//! 9,999 other links, published to JetStream, then (once the duplicate
//! window has passed) consumed by a running analytics (so its rollups are
//! built by the real path; the rate includes them); then `HOT_QUERIES` all-time stats requests of the hot link (daily
//! buckets, every top list): `hot_link_stats_p99_ms`. Then freshness: single
//! clicks published one at a time to a quiet link, each timed until its
//! stats include it (`freshness_p99_ms`), beside the service's own
//! `analytics_click_freshness_seconds`. `BENCH_HOT_LINK_ONLY=sqlite` (or
//! `clickhouse`, or `both`) runs only that part; `BENCH_INGEST_ONLY=1` only
//! the ingest.
//! The last line printed is one JSON object.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use analytics::domain::{ClickRow, LinkChange};
use analytics::links::CopyKeeper;
use analytics::store::{AnalyticsStore, ClickHouseSettings, ClickHouseStore};
use async_nats::jetstream;
use chrono::{TimeZone, Utc};
use contracts::{Envelope, UrlClicked, UrlCreated, UrlDeleted, encode};
use rand::{Rng, SeedableRng};
use system_tests::process::{free_port, http_get, http_get_with_key, scrape_metric};

/// The key the benchmark's analytics runs with.
const BENCH_KEY: &str = "analytics-bench-key-0123456789abcdef0123456789";
use system_tests::{ClickHouseServer, NatsServer};
use uuid::Uuid;

const INGEST_EVENTS: usize = 500_000;
const INGEST_LINKS: usize = 1_000;
const STATS_CLICKS: usize = 10_000_000;
const STATS_LINKS: usize = 100_000;
const STATS_QUERIES: usize = 300;
const PAGES: usize = 100;
const CLICKED_CONSUMER: &str = "analytics-shortener-url-clicked";
/// The hot link's clicks on SQLite, and on ClickHouse.
const HOT_SQLITE: usize = 1_000_000;
const HOT_CLICKHOUSE: usize = 10_000_000;
const HOT_LINKS: usize = 10_000;
const HOT_QUERIES: usize = 100;
const FRESHNESS_CLICKS: usize = 100;

const AGENTS: [&str; 5] = [
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
];
const REFERRERS: [Option<&str>; 4] = [
    None,
    Some("https://www.google.com/"),
    Some("https://news.ycombinator.com/item?id=1"),
    Some("https://t.co/x"),
];
const COUNTRIES: [Option<&str>; 4] = [Some("DE"), Some("US"), Some("FR"), None];

/// Kills the child it guards when dropped (by PID, never by name).
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn analytics(vars: &[(&str, String)]) -> (Guard, u16) {
    let port = free_port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_analytics"));
    command
        .env("ANALYTICS_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("ANALYTICS_API_KEY", BENCH_KEY)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null());
    for (name, value) in vars {
        command.env(name, value);
    }
    (
        Guard(command.spawn().expect("the analytics binary starts")),
        port,
    )
}

fn wait_ready(port: u16) {
    let started = Instant::now();
    while http_get(port, "/ready").map(|(s, _)| s) != Some(200) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "analytics never ready"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn click(rng: &mut impl Rng, url_id: Uuid, code: &str, at: i64) -> Envelope<UrlClicked> {
    let at = Utc.timestamp_opt(at, 0).unwrap();
    Envelope::new(
        "shortener",
        at,
        UrlClicked {
            url_id,
            short_code: code.to_owned(),
            clicked_at: at,
            referrer: REFERRERS[rng.random_range(0..REFERRERS.len())].map(str::to_owned),
            user_agent: Some(AGENTS[rng.random_range(0..AGENTS.len())].to_owned()),
            visitor_key: Some(format!("{:032x}", rng.random_range(0..50_000u32))),
            country: COUNTRIES[rng.random_range(0..COUNTRIES.len())].map(str::to_owned),
        },
    )
}

/// The created event of a benchmark link.
fn creation(url_id: Uuid, code: &str, at: i64) -> Envelope<UrlCreated> {
    let at = Utc.timestamp_opt(at, 0).unwrap();
    Envelope::new(
        "shortener",
        at,
        UrlCreated {
            url_id,
            short_code: code.to_owned(),
            original_url: format!("https://example.com/{code}"),
            target_host: "example.com".into(),
            created_at: at,
            expires_at: None,
        },
    )
}

/// The deleted event of a benchmark link.
fn deletion(url_id: Uuid, code: &str, at: i64) -> Envelope<UrlDeleted> {
    let at = Utc.timestamp_opt(at, 0).unwrap();
    Envelope::new(
        "shortener",
        at,
        UrlDeleted {
            url_id,
            short_code: code.to_owned(),
            deleted_at: at,
        },
    )
}

/// Publishes the ingest workload as the shortener would (`Nats-Msg-Id` =
/// `event_id`), awaiting acks in bounded batches.
async fn publish_workload(js: &jetstream::Context) {
    contracts::stream::ensure_stream(js, contracts::stream::shortener_stream_config(1))
        .await
        .unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let links: Vec<(Uuid, String)> = (0..INGEST_LINKS)
        .map(|i| (Uuid::now_v7(), format!("in{i}")))
        .collect();
    let now = Utc::now().timestamp();
    for (id, code) in &links {
        let event = creation(*id, code, now - 86_400);
        send(
            js,
            event.subject(),
            event.headers(),
            encode(&event).unwrap(),
        )
        .await
        .await
        .unwrap();
    }
    let mut acks = Vec::new();
    for i in 0..INGEST_EVENTS {
        let (id, code) = &links[rng.random_range(0..links.len())];
        let event = click(&mut rng, *id, code, now - 3_600 + (i % 3_600) as i64);
        acks.push(
            send(
                js,
                event.subject(),
                event.headers(),
                encode(&event).unwrap(),
            )
            .await,
        );
        if acks.len() == 2_000 {
            for ack in acks.drain(..) {
                ack.await.unwrap();
            }
        }
    }
    for ack in acks {
        ack.await.unwrap();
    }
}

async fn send(
    js: &jetstream::Context,
    subject: &'static str,
    headers: [(&'static str, String); 3],
    payload: Vec<u8>,
) -> jetstream::context::PublishAckFuture {
    let mut map = async_nats::HeaderMap::new();
    for (name, value) in headers {
        map.insert(name, value.as_str());
    }
    js.publish_with_headers(subject, map, payload.into())
        .await
        .unwrap()
}

/// Waits, after a backlog was published, until the stream's duplicate
/// window has passed.
///
/// A backlog measured here is published in a burst (11 million clicks in
/// under 3 minutes), which no real backlog is: one that size builds up over
/// hours of traffic while analytics is away. Until the window has passed,
/// nats-server still holds every burst message's id for deduplication
/// (millions of map entries its garbage collector scans), and measured here
/// it then spent a fifth more CPU per message delivered, which the
/// consumer's rate would wrongly carry. So consuming starts on a backlog
/// that is older than the window, as a real one is.
fn wait_out_duplicate_window() {
    let wait = contracts::stream::DUPLICATE_WINDOW + Duration::from_secs(5);
    println!(
        "waiting {} s for the stream's duplicate window to pass",
        wait.as_secs()
    );
    std::thread::sleep(wait);
}

/// Runs the binary on a store until the click consumer has nothing left;
/// returns clicks per second.
fn ingest(
    runtime: &tokio::runtime::Runtime,
    js: &jetstream::Context,
    vars: &[(&str, String)],
) -> f64 {
    let stream = runtime.block_on(js.get_stream("SHORTENER")).unwrap();
    runtime
        .block_on(analytics::consumer::delete_consumers(&stream, "analytics"))
        .unwrap();
    let (_guard, port) = analytics(vars);
    let created = Instant::now();
    let started = loop {
        if runtime
            .block_on(stream.consumer_info(CLICKED_CONSUMER))
            .is_ok()
        {
            break Instant::now();
        }
        assert!(
            created.elapsed() < Duration::from_secs(60),
            "the consumer never appeared"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    loop {
        let info = runtime
            .block_on(stream.consumer_info(CLICKED_CONSUMER))
            .unwrap();
        if info.num_pending == 0 && info.num_ack_pending == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "ingest did not finish"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let elapsed = started.elapsed();
    let processed = scrape_metric(
        port,
        r#"analytics_events_processed_total{subject="shortener.url.clicked"}"#,
    )
    .unwrap_or(0.0);
    assert_eq!(
        processed as usize, INGEST_EVENTS,
        "every click processed exactly once"
    );
    if vars
        .iter()
        .any(|(name, _)| *name == "ANALYTICS_CLICKHOUSE_URL")
    {
        // The rollups are part of ingest: say when they held every click.
        let ended = Utc::now().timestamp() as f64;
        let waiting = Instant::now();
        while scrape_metric(port, "analytics_rollup_compacted_through_seconds").unwrap_or(0.0)
            < ended
        {
            assert!(
                waiting.elapsed() < Duration::from_secs(600),
                "the compactor never caught up"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        println!(
            "ClickHouse rollups held every click {:.1} s after the ingest",
            waiting.elapsed().as_secs_f64()
        );
    }
    INGEST_EVENTS as f64 / elapsed.as_secs_f64()
}

/// Loads the stats workload straight into ClickHouse; returns the codes,
/// busiest first.
async fn load_stats_workload(store: Arc<dyn AnalyticsStore>) -> Vec<String> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let links: Vec<(Uuid, String)> = (0..STATS_LINKS)
        .map(|i| (Uuid::now_v7(), format!("st{i}")))
        .collect();
    // Zipf(1): link k has weight 1/(k+1).
    let mut cumulative = Vec::with_capacity(STATS_LINKS);
    let mut sum = 0.0;
    for k in 0..STATS_LINKS {
        sum += 1.0 / (k as f64 + 1.0);
        cumulative.push(sum);
    }
    let now = Utc::now().timestamp();
    // Every 20th link deleted, every 100th known only by its clicks.
    let changes: Vec<LinkChange> = links
        .iter()
        .enumerate()
        .flat_map(|(k, (id, code))| {
            let mut changes = Vec::new();
            if k % 100 == 99 {
                changes.push(LinkChange::Clicked {
                    url_id: *id,
                    short_code: code.clone(),
                });
            } else {
                changes.push(LinkChange::Created(creation(*id, code, now - 91 * 86_400)));
            }
            if k % 20 == 7 {
                changes.push(LinkChange::Deleted(deletion(*id, code, now - 86_400)));
            }
            changes
        })
        .collect();
    let copies = CopyKeeper::new(store.clone());
    for chunk in changes.chunks(10_000) {
        copies.apply(chunk).await.unwrap();
    }
    let chunk = 250_000;
    for start in (0..STATS_CLICKS).step_by(chunk) {
        let rows: Vec<ClickRow> = (start..(start + chunk).min(STATS_CLICKS))
            .map(|_| {
                let x = rng.random_range(0.0..sum);
                let k = cumulative.partition_point(|c| *c < x).min(STATS_LINKS - 1);
                let (id, code) = &links[k];
                let at = now - rng.random_range(0..90 * 86_400);
                ClickRow::from_event(click(&mut rng, *id, code, at))
            })
            .collect();
        store.insert_clicks(&rows).await.unwrap();
    }
    links.into_iter().map(|(_, code)| code).collect()
}

/// Publishes `events` (already encoded, with their subjects and headers),
/// awaiting acks in bounded batches.
async fn publish_all(
    js: &jetstream::Context,
    events: impl Iterator<Item = (&'static str, [(&'static str, String); 3], Vec<u8>)>,
) {
    let mut acks = Vec::new();
    for (subject, headers, payload) in events {
        acks.push(send(js, subject, headers, payload).await);
        if acks.len() == 2_000 {
            for ack in acks.drain(..) {
                ack.await.unwrap();
            }
        }
    }
    for ack in acks {
        ack.await.unwrap();
    }
}

fn encoded<T: contracts::Event>(
    event: &Envelope<T>,
) -> (&'static str, [(&'static str, String); 3], Vec<u8>) {
    (event.subject(), event.headers(), encode(event).unwrap())
}

/// The hot link on one store: `hot` clicks of one link over 30 days among
/// a tenth as many of 9,999 others, published to a fresh stream first, then
/// consumed by a release analytics on `store` (so its rollups are built by
/// the real path); then freshness. Returns (ingest clicks/s, hot link stats
/// p50 and p99 ms, freshness p50 and p99 ms, the service's freshness p99
/// bucket bound in ms).
fn hot_link(
    runtime: &tokio::runtime::Runtime,
    label: &str,
    hot: usize,
    store: &[(&'static str, String)],
) -> [f64; 6] {
    let nats = NatsServer::start().expect("nats-server starts");
    let js = jetstream::new(runtime.block_on(async_nats::connect(nats.url())).unwrap());
    let mut rng = rand::rngs::StdRng::seed_from_u64(17);
    let links: Vec<(Uuid, String)> = (0..HOT_LINKS)
        .map(|i| (Uuid::now_v7(), format!("hot{i}")))
        .collect();
    let now = Utc::now().timestamp();
    runtime
        .block_on(contracts::stream::ensure_stream(
            &js,
            contracts::stream::shortener_stream_config(1),
        ))
        .unwrap();
    runtime.block_on(publish_all(
        &js,
        links
            .iter()
            .map(|(id, code)| encoded(&creation(*id, code, now - 31 * 86_400))),
    ));
    let total = hot + hot / 10;
    let publishing = Instant::now();
    runtime.block_on(publish_all(
        &js,
        (0..total).map(|i| {
            let (id, code) = if i % 11 == 10 {
                &links[1 + rng.random_range(0..HOT_LINKS - 1)]
            } else {
                &links[0]
            };
            let at = now - rng.random_range(1..30 * 86_400);
            encoded(&click(&mut rng, *id, code, at))
        }),
    ));
    println!(
        "hot link on {label}: published {total} clicks in {:.0} s",
        publishing.elapsed().as_secs_f64()
    );
    wait_out_duplicate_window();
    let mut vars = vec![("ANALYTICS_NATS_URL", nats.url())];
    vars.extend(store.iter().cloned());
    let (_guard, port) = analytics(&vars);
    let started = Instant::now();
    let processed = || {
        scrape_metric(
            port,
            r#"analytics_events_processed_total{subject="shortener.url.clicked"}"#,
        )
        .unwrap_or(0.0) as usize
    };
    while processed() < total {
        assert!(
            started.elapsed() < Duration::from_secs(1_800),
            "ingest did not finish"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let rate = total as f64 / started.elapsed().as_secs_f64();
    println!(
        "hot link on {label}: consumed {total} clicks at {rate:.0} clicks/s (rollups included)"
    );
    // ClickHouse compacts the days the ingest touched once they settled
    // (10 s); until then stats read them from raw clicks. Wait until
    // everything stored is in the rollups.
    let ingested_at = Utc::now().timestamp();
    let compacted = Instant::now();
    while label == "ClickHouse"
        && scrape_metric(port, "analytics_rollup_compacted_through_seconds").unwrap_or(0.0)
            < ingested_at as f64
    {
        assert!(
            compacted.elapsed() < Duration::from_secs(1_800),
            "the compactor never caught up"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    if label == "ClickHouse" {
        println!(
            "hot link on ClickHouse: every day in the rollups {:.0} s after the ingest",
            compacted.elapsed().as_secs_f64()
        );
    }
    let stats = |code: &str| {
        let (status, body) =
            http_get_with_key(port, &format!("/api/v1/links/{code}/stats"), BENCH_KEY)
                .expect("stats answer");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<serde_json::Value>(&body).unwrap()
    };
    let hot = &links[0].1;
    let clicks = stats(hot)["total_clicks"].as_u64().unwrap();
    let mut latencies: Vec<f64> = (0..HOT_QUERIES)
        .map(|_| {
            let started = Instant::now();
            stats(hot);
            started.elapsed().as_secs_f64() * 1_000.0
        })
        .collect();
    latencies.sort_by(|a, b| a.total_cmp(b));
    println!(
        "hot link on {label}: {clicks} clicks of one link among {total}, consumed from JetStream at {rate:.0} clicks/s \
         (rollups included); all-time stats (daily buckets, every top list), {HOT_QUERIES} requests: \
         p50 {:.1} ms, p99 {:.1} ms",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99)
    );
    // Freshness: one click at a time to a quiet link, timed from its
    // publication until its stats count it.
    let (quiet_id, quiet) = &links[HOT_LINKS - 1];
    let metrics = || {
        http_get(port, "/metrics")
            .map(|(_, body)| body)
            .unwrap_or_default()
    };
    let backlog = histogram(&metrics(), "analytics_click_freshness_seconds");
    let mut seen = stats(quiet)["total_clicks"].as_u64().unwrap();
    let mut ages = Vec::with_capacity(FRESHNESS_CLICKS);
    for _ in 0..FRESHNESS_CLICKS {
        let event = click(&mut rng, *quiet_id, quiet, Utc::now().timestamp());
        let started = Instant::now();
        runtime.block_on(publish_all(&js, std::iter::once(encoded(&event))));
        loop {
            let now_seen = stats(quiet)["total_clicks"].as_u64().unwrap();
            if now_seen > seen {
                seen = now_seen;
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "a click never showed"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        ages.push(started.elapsed().as_secs_f64() * 1_000.0);
    }
    ages.sort_by(|a, b| a.total_cmp(b));
    // The service's own measure, over these clicks only (the bulk ingest
    // before them waited in the stream by design).
    let recent: Vec<(f64, f64)> = histogram(&metrics(), "analytics_click_freshness_seconds")
        .into_iter()
        .zip(backlog)
        .map(|((bound, after), (_, before))| (bound, after - before))
        .collect();
    let service_p99 = quantile_bound(&recent, 0.99) * 1_000.0;
    println!(
        "freshness: {FRESHNESS_CLICKS} clicks, publish to counted in stats: p50 {:.0} ms, p99 {:.0} ms; \
         the service's analytics_click_freshness_seconds puts its p99 at or under {service_p99:.0} ms",
        percentile(&ages, 0.5),
        percentile(&ages, 0.99)
    );
    [
        rate,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        percentile(&ages, 0.5),
        percentile(&ages, 0.99),
        service_p99,
    ]
}

fn hot_on_sqlite(runtime: &tokio::runtime::Runtime, dir: &std::path::Path) -> [f64; 6] {
    let path = dir.join("hot.db").display().to_string();
    hot_link(
        runtime,
        "SQLite",
        HOT_SQLITE,
        &[("ANALYTICS_SQLITE_PATH", path)],
    )
}

fn hot_on_clickhouse(runtime: &tokio::runtime::Runtime, clickhouse: &ClickHouseServer) -> [f64; 6] {
    hot_link(
        runtime,
        "ClickHouse",
        HOT_CLICKHOUSE,
        &[
            ("ANALYTICS_CLICKHOUSE_URL", clickhouse.url()),
            ("ANALYTICS_CLICKHOUSE_DATABASE", "bench_hot".into()),
        ],
    )
}

/// A histogram's cumulative buckets (upper bound, count) from the
/// Prometheus text, in order.
fn histogram(metrics: &str, name: &str) -> Vec<(f64, f64)> {
    let mut buckets: Vec<(f64, f64)> = metrics
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(&format!("{name}_bucket{{le=\""))?;
            let (bound, count) = rest.split_once("\"} ")?;
            let bound = if bound == "+Inf" {
                f64::INFINITY
            } else {
                bound.parse().ok()?
            };
            Some((bound, count.trim().parse().ok()?))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    buckets
}

/// The upper bound of the bucket holding quantile `q`.
fn quantile_bound(buckets: &[(f64, f64)], q: f64) -> f64 {
    let total = buckets.last().map_or(0.0, |b| b.1);
    buckets
        .iter()
        .find(|(_, count)| *count >= q * total)
        .map_or(f64::NAN, |(bound, _)| *bound)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _context = runtime.enter();
    if let Ok(which) = std::env::var("BENCH_HOT_LINK_ONLY") {
        // Only the hot link and freshness (a shorter run).
        let dir = tempfile::tempdir().unwrap();
        let mut json = Vec::new();
        if which != "clickhouse" {
            let [rate, _, p99, _, fresh, _] = hot_on_sqlite(&runtime, dir.path());
            json.push(format!("\"sqlite_hot_ingest_per_s\":{rate:.0},\"sqlite_hot_link_stats_p99_ms\":{p99:.1},\"sqlite_freshness_p99_ms\":{fresh:.0}"));
        }
        if which != "sqlite" {
            let clickhouse = ClickHouseServer::start().expect("clickhouse-server starts");
            let [rate, _, p99, _, fresh, _] = hot_on_clickhouse(&runtime, &clickhouse);
            json.push(format!("\"clickhouse_hot_ingest_per_s\":{rate:.0},\"hot_link_stats_p99_ms\":{p99:.1},\"freshness_p99_ms\":{fresh:.0}"));
        }
        println!("{{\"bench\":\"analytics-hot-link\",{}}}", json.join(","));
        return;
    }
    let nats = NatsServer::start().expect("nats-server starts (make backends)");
    let clickhouse = ClickHouseServer::start().expect("clickhouse-server starts (make backends)");
    let dir = tempfile::tempdir().unwrap();
    let js = jetstream::new(runtime.block_on(async_nats::connect(nats.url())).unwrap());

    let publishing = Instant::now();
    runtime.block_on(publish_workload(&js));
    println!(
        "published {INGEST_EVENTS} click events over {INGEST_LINKS} links in {:.1} s",
        publishing.elapsed().as_secs_f64()
    );
    wait_out_duplicate_window();
    let nats_vars = ("ANALYTICS_NATS_URL", nats.url());
    let clickhouse_rate = ingest(
        &runtime,
        &js,
        &[
            nats_vars.clone(),
            ("ANALYTICS_CLICKHOUSE_URL", clickhouse.url()),
            ("ANALYTICS_CLICKHOUSE_DATABASE", "bench_ingest".into()),
        ],
    );
    println!("ingest into ClickHouse: {clickhouse_rate:.0} clicks/s");
    let sqlite_rate = ingest(
        &runtime,
        &js,
        &[
            nats_vars,
            (
                "ANALYTICS_SQLITE_PATH",
                dir.path().join("analytics.db").display().to_string(),
            ),
        ],
    );
    println!("ingest into SQLite:     {sqlite_rate:.0} clicks/s");
    if std::env::var_os("BENCH_INGEST_ONLY").is_some() {
        println!(
            "{{\"bench\":\"analytics-ingest\",\"clickhouse_ingest_per_s\":{clickhouse_rate:.0},\"sqlite_ingest_per_s\":{sqlite_rate:.0}}}"
        );
        return;
    }

    let loading = Instant::now();
    let settings = ClickHouseSettings {
        url: clickhouse.url(),
        database: "bench_stats".into(),
        user: None,
        password: None,
        replicated: false,
    };
    let store: Arc<dyn AnalyticsStore> =
        Arc::new(runtime.block_on(ClickHouseStore::open(settings)).unwrap());
    let codes = runtime.block_on(load_stats_workload(store.clone()));
    let stored = runtime.block_on(store.click_count()).unwrap();
    assert_eq!(stored as usize, STATS_CLICKS);
    println!(
        "loaded {STATS_CLICKS} clicks over {STATS_LINKS} links into ClickHouse in {:.1} s",
        loading.elapsed().as_secs_f64()
    );
    // A second, empty nats-server: this instance only answers queries.
    let quiet_nats = NatsServer::start().unwrap();
    let (_guard, port) = analytics(&[
        ("ANALYTICS_NATS_URL", quiet_nats.url()),
        ("ANALYTICS_CLICKHOUSE_URL", clickhouse.url()),
        ("ANALYTICS_CLICKHOUSE_DATABASE", "bench_stats".into()),
    ]);
    wait_ready(port);
    let query = |code: &str| {
        let started = Instant::now();
        let (status, body) =
            http_get_with_key(port, &format!("/api/v1/links/{code}/stats"), BENCH_KEY)
                .expect("stats answer");
        assert_eq!(status, 200, "{body}");
        started.elapsed().as_secs_f64() * 1_000.0
    };
    for code in codes.iter().take(20) {
        query(code);
    }
    let busiest = query(&codes[0]);
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let mut latencies: Vec<f64> = (0..STATS_QUERIES)
        .map(|_| query(&codes[rng.random_range(0..codes.len())]))
        .collect();
    latencies.sort_by(|a, b| a.total_cmp(b));
    let (p50, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
    println!(
        "stats over {STATS_CLICKS} clicks: {STATS_QUERIES} requests for random links: p50 {p50:.1} ms, p99 {p99:.1} ms, max {:.1} ms; busiest link (~{:.0}k clicks): {busiest:.1} ms",
        latencies.last().copied().unwrap_or(f64::NAN),
        STATS_CLICKS as f64 / cumulative_sum(STATS_LINKS) / 1_000.0
    );
    let (index_p50, index_p99, index_pages) = walk_pages(port, "/api/v1/links", PAGES, |body| {
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        body["next_cursor"]
            .as_str()
            .map(|cursor| format!("/api/v1/links?cursor={cursor}"))
    });
    println!(
        "links list over {STATS_LINKS} links: {index_pages} pages: p50 {index_p50:.1} ms, p99 {index_p99:.1} ms"
    );
    let report = "/api/v1/reconciliation?grace_seconds=0&limit=100";
    let (reconciliation_p50, reconciliation_p99, reconciliation_pages) =
        walk_pages(port, report, usize::MAX, |body| {
            let body: serde_json::Value = serde_json::from_str(body).unwrap();
            body["next_cursor"]
                .as_str()
                .map(|cursor| format!("{report}&cursor={cursor}"))
        });
    println!(
        "reconciliation over {STATS_LINKS} links ({} deleted, {} orphans): {reconciliation_pages} pages: p50 {reconciliation_p50:.1} ms, p99 {reconciliation_p99:.1} ms",
        STATS_LINKS / 20,
        STATS_LINKS / 100
    );
    drop(_guard);
    let [ch_rate, _, hot_p99, _, fresh_p99, _] = hot_on_clickhouse(&runtime, &clickhouse);
    let [sqlite_hot_rate, _, sqlite_hot_p99, _, _, _] = hot_on_sqlite(&runtime, dir.path());
    println!(
        "{{\"bench\":\"analytics\",\"clickhouse_ingest_per_s\":{clickhouse_rate:.0},\"sqlite_ingest_per_s\":{sqlite_rate:.0},\"stats_p50_ms\":{p50:.1},\"stats_p99_ms\":{p99:.1},\"index_p99_ms\":{index_p99:.1},\"reconciliation_p99_ms\":{reconciliation_p99:.1},\
         \"clickhouse_hot_ingest_per_s\":{ch_rate:.0},\"hot_link_stats_p99_ms\":{hot_p99:.1},\"freshness_p99_ms\":{fresh_p99:.0},\
         \"sqlite_hot_ingest_per_s\":{sqlite_hot_rate:.0},\"sqlite_hot_link_stats_p99_ms\":{sqlite_hot_p99:.1}}}"
    );
}

/// Loads `first`, then each page `next` finds in the one before, up to
/// `limit` pages; returns p50 and p99 latency (ms) and the pages read.
fn walk_pages(
    port: u16,
    first: &str,
    limit: usize,
    next: impl Fn(&str) -> Option<String>,
) -> (f64, f64, usize) {
    let mut latencies = Vec::new();
    let mut path = Some(first.to_owned());
    while let Some(current) = path.take() {
        let started = Instant::now();
        let (status, body) = http_get_with_key(port, &current, BENCH_KEY).expect("page answers");
        latencies.push(started.elapsed().as_secs_f64() * 1_000.0);
        assert_eq!(status, 200, "{current}: {body}");
        if latencies.len() < limit {
            path = next(&body);
        }
    }
    let pages = latencies.len();
    latencies.sort_by(|a, b| a.total_cmp(b));
    (
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        pages,
    )
}

fn cumulative_sum(n: usize) -> f64 {
    (0..n).map(|k| 1.0 / (k as f64 + 1.0)).sum()
}
