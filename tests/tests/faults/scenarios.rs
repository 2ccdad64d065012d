//! Scenarios 1–4, 6, 12 and 13; see `main.rs`.

#![allow(unsafe_code)] // SIGSTOP and SIGCONT, on processes this suite started

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream;
use chrono::Utc;
use contracts::{Envelope, UrlClicked, encode};
use system_tests::process::{memory_mb, metric_value};
use uuid::Uuid;

use crate::load::{Load, Rate, Seen};
use crate::system::System;
use crate::{Mode, Row};

/// How long analytics may take to catch up after the faults stopped.
const SETTLE: Duration = Duration::from_secs(120);

fn system(analytics_env: &[(&str, String)]) -> System {
    System::start_with(analytics_env).expect("nats-server is installed (checked by main)")
}

async fn connect(system: &System) -> jetstream::Context {
    jetstream::new(async_nats::connect(system.nats.url()).await.expect("NATS"))
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// What analytics shows against what the load generator saw.
pub struct Tally {
    pub served: u64,
    pub counted: u64,
    pub lost: u64,
    pub double: u64,
    pub links_missing: usize,
}

fn compare(system: &System, seen: &Seen) -> Tally {
    let mut tally = Tally {
        served: seen.total_served(),
        counted: 0,
        lost: 0,
        double: 0,
        links_missing: 0,
    };
    for link in &seen.created {
        let served = seen.served.get(&link.code).copied().unwrap_or(0);
        let stats = system.stats(&link.code);
        // Known to analytics means its created event arrived, not only clicks.
        if stats
            .as_ref()
            .is_none_or(|s| s["link"]["status"] == "unknown")
        {
            tally.links_missing += 1;
        }
        let counted = stats.map_or(0, |s| s["total_clicks"].as_u64().unwrap_or(0));
        tally.counted += counted;
        tally.lost += served.saturating_sub(counted);
        tally.double += counted.saturating_sub(served);
    }
    tally
}

/// Polls until analytics shows exactly what was seen (or `SETTLE` passed);
/// the final comparison and how long it took.
pub fn settle(system: &System, seen: &Seen, exact: bool) -> (Tally, Duration) {
    let started = Instant::now();
    loop {
        let tally = compare(system, seen);
        let done = tally.links_missing == 0
            && (if exact {
                tally.lost == 0 && tally.double == 0
            } else {
                // Some clicks may be gone for good; wait until nothing moves.
                tally.double == 0 && stable(system, seen, tally.counted)
            });
        if done || started.elapsed() > SETTLE {
            return (tally, started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn stable(system: &System, seen: &Seen, counted: u64) -> bool {
    std::thread::sleep(Duration::from_secs(3));
    compare(system, seen).counted == counted
}

fn row(scenario: &str, tally: &Tally, note: String, lost_allowed: bool) -> Row {
    Row {
        scenario: scenario.to_owned(),
        expected: tally.served,
        counted: tally.counted,
        lost: tally.lost,
        double: tally.double,
        ok: tally.double == 0 && tally.links_missing == 0 && (lost_allowed || tally.lost == 0),
        note: if tally.links_missing > 0 {
            format!(
                "{note}; {} created links missing in analytics",
                tally.links_missing
            )
        } else {
            note
        },
    }
}

fn rate(mode: Mode) -> Rate {
    Rate {
        creations_per_s: 5,
        redirects_per_s: mode.pick(400, 1_000) as u32,
        workers: 8,
    }
}

/// Holds an exclusive lock on a SQLite database (python3's sqlite3) for
/// `seconds`: writers wait, then fail, as with any locked store.
pub fn lock_sqlite(path: &std::path::Path, seconds: u64) -> Child {
    let mut child = Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys, time\n\
             c = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)\n\
             c.execute('BEGIN EXCLUSIVE')\n\
             print('locked', flush=True)\n\
             time.sleep(float(sys.argv[2]))\n\
             c.execute('COMMIT')",
        ])
        .arg(path)
        .arg(seconds.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().expect("stdout"))
        .read_line(&mut line)
        .expect("the lock is taken");
    assert_eq!(line.trim(), "locked");
    child
}

/// 1. Sustained load while analytics is SIGKILLed, nats-server is SIGKILLed,
///    and analytics' store is locked, in turn.
pub fn faults_under_load(mode: Mode) -> Vec<Row> {
    let mut system = system(&[]);
    let phase = mode.secs(3, 15);
    let outage = mode.secs(3, 10);
    let load = Load::start(system.shortener.url(), &system.key, rate(mode));
    let started = Instant::now();

    std::thread::sleep(phase);
    println!("   SIGKILL analytics");
    system.analytics.kill();
    std::thread::sleep(Duration::from_secs(1));
    system.analytics.restart().expect("analytics restarts");

    std::thread::sleep(phase);
    println!("   SIGKILL nats-server");
    system.nats.kill();
    std::thread::sleep(Duration::from_secs(2));
    system.nats.restart().expect("nats-server restarts");

    std::thread::sleep(phase);
    println!("   analytics' SQLite store locked for {outage:?}");
    let mut lock = lock_sqlite(&system.dir.path().join("analytics.db"), outage.as_secs());
    lock.wait().expect("the lock is released");

    std::thread::sleep(phase);
    let loaded = started.elapsed();
    let seen = load.finish();
    let (tally, took) = settle(&system, &seen, true);
    vec![row(
        "1 load + analytics/nats kill + lock",
        &tally,
        format!(
            "{:.0} s of load, {} links, settled in {:.1} s",
            loaded.as_secs_f64(),
            seen.created.len(),
            took.as_secs_f64()
        ),
        false,
    )]
}

/// 2. The shortener SIGKILLed under load: created links all arrive; the
///    clicks it had not yet handed to JetStream are measured.
pub fn shortener_killed(mode: Mode) -> Vec<Row> {
    let mut system = system(&[]);
    let load = Load::start(system.shortener.url(), &system.key, rate(mode));
    std::thread::sleep(mode.secs(3, 20));
    println!("   SIGKILL shortener");
    system.shortener.kill();
    system.shortener.restart().expect("the shortener restarts");
    std::thread::sleep(mode.secs(2, 10));
    let seen = load.finish();
    let (tally, _) = settle(&system, &seen, false);
    vec![row(
        "2 shortener SIGKILL (window)",
        &tally,
        format!(
            "{} links all present; clicks lost in the kill window: {} (bound: the 20 ms linger + batch in flight, at most 65,536)",
            seen.created.len(),
            tally.lost
        ),
        true,
    )]
}

/// Analytics' count of stored click deliveries (`/metrics`).
fn processed_clicks(system: &System) -> u64 {
    let metrics = system.analytics_get("/metrics").body;
    metric_value(
        &metrics,
        r#"analytics_events_processed_total{subject="shortener.url.clicked"}"#,
    )
    .map_or(0, |n| n as u64)
}

async fn consumer_state(js: &jetstream::Context, subject: &str) -> (u64, usize) {
    let stream = js.get_stream("SHORTENER").await.expect("the stream");
    let name = format!("analytics-{}", subject.replace('.', "-"));
    let mut consumer: jetstream::consumer::PullConsumer = stream
        .get_consumer(&name)
        .await
        .expect("analytics' consumer");
    let info = consumer.info().await.expect("consumer info");
    (info.num_pending, info.num_ack_pending)
}

/// Waits until analytics' consumers have nothing pending or unacknowledged.
async fn drained(js: &jetstream::Context) {
    let started = Instant::now();
    loop {
        let mut busy = 0;
        for subject in contracts::subjects::ALL {
            let (pending, ack_pending) = consumer_state(js, subject).await;
            busy += pending + ack_pending as u64;
        }
        if busy == 0 || started.elapsed() > SETTLE {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Publishes every message of the stream again with a new `Nats-Msg-Id`,
/// its payload as `payload` makes it (`None` skips the message); how many.
async fn republish(
    js: &jetstream::Context,
    payload: impl Fn(&str, &[u8]) -> Option<Vec<u8>>,
) -> u64 {
    let mut stream = js.get_stream("SHORTENER").await.expect("the stream");
    let last = stream
        .info()
        .await
        .expect("stream info")
        .state
        .last_sequence;
    let mut acks = Vec::with_capacity(1_000);
    let mut count = 0;
    for sequence in 1..=last {
        let Ok(message) = stream.get_raw_message(sequence).await else {
            continue;
        };
        let Some(body) = payload(message.subject.as_str(), &message.payload) else {
            continue;
        };
        let mut headers = message.headers.clone();
        headers.insert("Nats-Msg-Id", Uuid::new_v4().to_string().as_str());
        acks.push(
            js.publish_with_headers(message.subject.clone(), headers, body.into())
                .await
                .expect("republished"),
        );
        count += 1;
        // The client caps acks in flight: await them in chunks, never all at once.
        if acks.len() == 1_000 {
            for ack in acks.drain(..) {
                ack.await.expect("JetStream stored the copy");
            }
        }
    }
    for ack in acks {
        ack.await.expect("JetStream stored the copy");
    }
    count
}

/// Publishes every message of the stream again, unchanged.
async fn republish_everything(js: &jetstream::Context) -> u64 {
    republish(js, |_, payload| Some(payload.to_vec())).await
}

/// Publishes, for every click event of the stream, a new click of the same
/// link a day earlier (a new `event_id`), as clicks arriving late would;
/// the new clicks per code.
async fn publish_clicks_a_day_earlier(js: &jetstream::Context) -> HashMap<String, u64> {
    let codes = std::sync::Mutex::new(HashMap::new());
    republish(js, |subject, payload| {
        if subject != contracts::subjects::URL_CLICKED {
            return None;
        }
        let mut event = serde_json::from_slice::<Envelope<UrlClicked>>(payload).ok()?;
        if event.data.clicked_at < Utc::now() - chrono::Duration::hours(12) {
            return None; // one of these, already a day back
        }
        event.event_id = Uuid::now_v7();
        event.data.clicked_at -= chrono::Duration::days(1);
        event.occurred_at = event.data.clicked_at;
        *codes
            .lock()
            .unwrap()
            .entry(event.data.short_code.clone())
            .or_default() += 1;
        Some(encode(&event).expect("the earlier click is valid"))
    })
    .await;
    codes.into_inner().unwrap()
}

/// Publishes the clicks of a day before (see above) again, unchanged.
async fn republish_clicks_of_a_day_earlier(js: &jetstream::Context) -> u64 {
    republish(js, |subject, payload| {
        let event = serde_json::from_slice::<Envelope<UrlClicked>>(payload).ok()?;
        (subject == contracts::subjects::URL_CLICKED
            && event.data.clicked_at < Utc::now() - chrono::Duration::hours(12))
        .then(|| payload.to_vec())
    })
    .await
}

/// Where scenario 3 keeps analytics' data.
#[derive(Clone, Copy)]
enum Store<'a> {
    /// The embedded default: rollups kept in the clicks' transaction.
    Sqlite,
    /// Rollups kept by the compactor.
    ClickHouse(&'a system_tests::ClickHouseServer),
}

/// The database scenario 3 gives analytics on ClickHouse.
const FAULTS_DATABASE: &str = "faults";

impl Store<'_> {
    fn analytics_env(self) -> Vec<(&'static str, String)> {
        match self {
            Store::Sqlite => Vec::new(),
            Store::ClickHouse(server) => vec![
                ("ANALYTICS_CLICKHOUSE_URL", server.url()),
                ("ANALYTICS_CLICKHOUSE_DATABASE", FAULTS_DATABASE.into()),
            ],
        }
    }

    async fn open(self, system: &System) -> Box<dyn analytics::store::AnalyticsStore> {
        use analytics::store::{ClickHouseSettings, ClickHouseStore, SqliteStore};
        match self {
            Store::Sqlite => Box::new(
                SqliteStore::open(&system.dir.path().join("analytics.db"))
                    .await
                    .expect("analytics' SQLite file opens"),
            ),
            Store::ClickHouse(server) => Box::new(
                ClickHouseStore::open(ClickHouseSettings {
                    url: server.url(),
                    database: FAULTS_DATABASE.into(),
                    user: None,
                    password: None,
                    replicated: false,
                })
                .await
                .expect("analytics' ClickHouse database opens"),
            ),
        }
    }

    /// On ClickHouse, waits until the compactor has recomputed every day
    /// marked before now (so the rollups alone hold every click); on
    /// SQLite they always do.
    fn compacted(self, system: &System) {
        if let Store::ClickHouse(_) = self {
            let now = Utc::now().timestamp() as f64;
            system.eventually("the compactor passes now", || {
                let metrics = system.analytics_get("/metrics").body;
                metric_value(&metrics, "analytics_rollup_compacted_through_seconds")
                    .filter(|through| *through >= now)
                    .map(|_| ())
            });
        }
    }
}

/// Every link's total from analytics' rollups against a count of its raw
/// clicks, read from its store: the links that differ.
fn rollups_against_raw(system: &System, store: Store) -> (usize, usize) {
    runtime().block_on(async {
        let store = store.open(system).await;
        let rollups: HashMap<Uuid, u64> = store
            .all_click_totals()
            .await
            .expect("rollup totals")
            .into_iter()
            .collect();
        let raw: HashMap<Uuid, u64> = store
            .raw_click_totals()
            .await
            .expect("raw totals")
            .into_iter()
            .collect();
        let differ = raw
            .iter()
            .filter(|(id, n)| rollups.get(*id) != Some(*n))
            .count()
            + rollups.keys().filter(|id| !raw.contains_key(*id)).count();
        (raw.len(), differ)
    })
}

/// 3. The same events published again with new message ids, deliveries
///    forced to expire (analytics paused past its ack wait), and clicks of
///    a day before published again once their day was rolled up (a
///    republish a day later): counted once, and the rollups equal the raw
///    clicks. On SQLite.
pub fn duplicates(mode: Mode) -> Vec<Row> {
    duplicates_on(mode, Store::Sqlite, "3")
}

/// 13. Scenario 3 on ClickHouse, where a compactor keeps the rollups.
pub fn duplicates_on_clickhouse(mode: Mode) -> Vec<Row> {
    let Some(clickhouse) = system_tests::started(system_tests::ClickHouseServer::start()) else {
        return Vec::new(); // clickhouse-server missing outside CI: skipped.
    };
    duplicates_on(mode, Store::ClickHouse(&clickhouse), "13")
}

fn duplicates_on(mode: Mode, store: Store, n: &str) -> Vec<Row> {
    let mut env = store.analytics_env();
    env.push(("ANALYTICS_ACK_WAIT_SECONDS", "1".into()));
    let system = system(&env);
    let rt = runtime();
    let js = rt.block_on(connect(&system));

    // Republished copies.
    let load = Load::start(system.shortener.url(), &system.key, rate(mode));
    std::thread::sleep(mode.secs(3, 20));
    let seen = load.finish();
    let (before, _) = settle(&system, &seen, true);
    let copies = rt.block_on(republish_everything(&js));
    rt.block_on(drained(&js));
    let tally = compare(&system, &seen);
    let mut rows = vec![row(
        &format!("{n}a republished, new msg ids"),
        &tally,
        format!(
            "{copies} events published again (before: lost {}, double {})",
            before.lost, before.double
        ),
        false,
    )];

    // Forced redeliveries: SIGSTOP analytics past its 1 s ack wait. Messages
    // the server pushed into its open pull request expire unacknowledged and
    // are delivered again; analytics' `events_processed_total` counts every
    // stored delivery, so what it counts beyond the new clicks is redeliveries.
    let pid = system.analytics.pid().expect("analytics runs") as libc::pid_t;
    let processed_before = processed_clicks(&system);
    let load = Load::start(system.shortener.url(), &system.key, rate(mode));
    let pauses = mode.pick(2, 6);
    for _ in 0..pauses {
        std::thread::sleep(Duration::from_millis(700));
        // SAFETY: kill(2) on the PID of a child this process started and
        // still owns.
        unsafe { libc::kill(pid, libc::SIGSTOP) };
        std::thread::sleep(Duration::from_millis(2_500));
        unsafe { libc::kill(pid, libc::SIGCONT) };
    }
    let more = load.finish();
    rt.block_on(drained(&js));
    let new_clicks = more.total_served();
    let mut all = seen;
    all.created.extend(more.created);
    for (code, n) in more.served {
        *all.served.entry(code).or_default() += n;
    }
    let (tally, _) = settle(&system, &all, true);
    let redelivered = (processed_clicks(&system) - processed_before).saturating_sub(new_clicks);
    let mut forced = row(
        &format!("{n}b redeliveries (ack wait expired)"),
        &tally,
        format!(
            "{pauses} pauses of 2.5 s past a 1 s ack wait; {redelivered} click deliveries stored again"
        ),
        false,
    );
    if redelivered == 0 {
        forced.ok = false;
        forced
            .note
            .push_str(": no redelivery happened, the scenario did not test anything");
    }
    rows.push(forced);

    // Clicks of a day before arrive, their day is rolled up, and they are
    // published again, as a producer would a day later: the recomputed day
    // still counts each once.
    let earlier = rt.block_on(publish_clicks_a_day_earlier(&js));
    rt.block_on(drained(&js));
    store.compacted(&system);
    let shifted = rt.block_on(republish_clicks_of_a_day_earlier(&js));
    rt.block_on(drained(&js));
    for (code, clicks) in earlier {
        *all.served.entry(code).or_default() += clicks;
    }
    let (tally, _) = settle(&system, &all, true);
    rows.push(row(
        &format!("{n}c a day back, again"),
        &tally,
        format!("{shifted} clicks of a day before, published again once rolled up"),
        false,
    ));
    store.compacted(&system);
    let (links, differ) = rollups_against_raw(&system, store);
    let mut check = row(
        &format!("{n}d rollup totals = raw counts"),
        &tally,
        format!("{links} links: {differ} whose rollup total is not its raw count"),
        false,
    );
    check.ok &= differ == 0 && links > 0;
    rows.push(check);
    rows
}

fn click(url_id: Uuid, code: &str) -> Envelope<UrlClicked> {
    let at = Utc::now();
    Envelope::new(
        "fault-suite",
        at,
        UrlClicked {
            url_id,
            short_code: code.to_owned(),
            clicked_at: at,
            referrer: Some("https://example.org/".into()),
            user_agent: Some(
                "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0".into(),
            ),
            visitor_key: Some(format!("{:032x}", Uuid::new_v4().as_u128())),
            country: None,
        },
    )
}

/// Publishes `n` click events of the link, every `poison_every`-th one
/// poisoned (alternately not JSON and breaking the schema); the number of
/// poisoned ones.
async fn publish_clicks(
    js: &jetstream::Context,
    url_id: Uuid,
    code: &str,
    n: u64,
    poison_every: u64,
) -> u64 {
    let mut poisoned = 0;
    let mut acks = Vec::with_capacity(1_000);
    for i in 0..n {
        let event = click(url_id, code);
        let mut headers = HeaderMap::new();
        for (name, value) in event.headers() {
            headers.insert(name, value.as_str());
        }
        let payload = if poison_every > 0 && i % poison_every == poison_every - 1 {
            poisoned += 1;
            if poisoned % 2 == 1 {
                b"{\"event_id\": not json".to_vec()
            } else {
                let mut json: serde_json::Value =
                    serde_json::from_slice(&encode(&event).unwrap()).unwrap();
                json["data"]["clicked_at"] = "yesterday".into();
                serde_json::to_vec(&json).unwrap()
            }
        } else {
            encode(&event).expect("a valid event")
        };
        acks.push(
            js.publish_with_headers(event.subject(), headers, payload.into())
                .await
                .expect("published"),
        );
        if acks.len() == 1_000 {
            for ack in acks.drain(..) {
                ack.await.expect("stored");
            }
        }
    }
    for ack in acks {
        ack.await.expect("stored");
    }
    poisoned
}

/// Time from analytics' start until the link shows `expected` clicks.
fn ingest(system: &mut System, code: &str, expected: u64) -> Duration {
    system.analytics.restart().expect("analytics starts");
    let started = Instant::now();
    system.eventually("analytics ingests the clicks", || {
        system
            .stats(code)
            .filter(|s| s["total_clicks"].as_u64() >= Some(expected))
            .map(|_| ())
    });
    started.elapsed()
}

/// 4. 1% poison mixed into the clicks: all dead-lettered with reasons, none
///    counted, throughput close to a clean run.
pub fn poison(mode: Mode) -> Vec<Row> {
    let mut system = system(&[]);
    let rt = runtime();
    let js = rt.block_on(connect(&system));
    let clean = system.create("https://example.com/clean");
    let dirty = system.create("https://example.com/dirty");
    let id = |link: &serde_json::Value| Uuid::parse_str(link["id"].as_str().unwrap()).unwrap();
    let code = |link: &serde_json::Value| link["code"].as_str().unwrap().to_owned();
    system.eventually("analytics knows both links", || {
        (system.stats(&code(&clean)).is_some() && system.stats(&code(&dirty)).is_some())
            .then_some(())
    });
    let n = mode.pick(20_000, 200_000);

    system.analytics.stop(Duration::from_secs(10));
    rt.block_on(publish_clicks(&js, id(&clean), &code(&clean), n, 0));
    let clean_time = ingest(&mut system, &code(&clean), n);

    system.analytics.stop(Duration::from_secs(10));
    let poisoned = rt.block_on(publish_clicks(&js, id(&dirty), &code(&dirty), n, 100));
    let valid = n - poisoned;
    let dirty_time = ingest(&mut system, &code(&dirty), valid);
    std::thread::sleep(Duration::from_secs(1));
    let counted = system.stats(&code(&dirty)).unwrap()["total_clicks"]
        .as_u64()
        .unwrap();

    let (dead, reasons) = rt.block_on(async {
        let mut stream = js
            .get_stream("ANALYTICS_DLQ")
            .await
            .expect("the DLQ stream");
        let last = stream.info().await.unwrap().state.last_sequence;
        let mut reasons: HashMap<String, u64> = HashMap::new();
        for seq in 1..=last {
            if let Ok(m) = stream.get_raw_message(seq).await {
                let reason = m
                    .headers
                    .get("Dlq-Reason")
                    .map(|v| v.as_str().to_owned())
                    .unwrap_or_else(|| "(none)".into());
                *reasons.entry(reason).or_default() += 1;
            }
        }
        (reasons.values().sum::<u64>(), reasons)
    });
    let clean_rate = n as f64 / clean_time.as_secs_f64();
    let dirty_rate = valid as f64 / dirty_time.as_secs_f64();
    let ratio = dirty_rate / clean_rate;
    let with_reasons = !reasons.contains_key("(none)");
    let mut reasons: Vec<_> = reasons.into_iter().collect();
    reasons.sort();
    let throughput_ok = !mode.full || ratio >= 0.9;
    vec![Row {
        scenario: "4 poison 1%".into(),
        expected: valid,
        counted,
        lost: valid.saturating_sub(counted),
        double: counted.saturating_sub(valid),
        ok: counted == valid && dead == poisoned && with_reasons && throughput_ok,
        note: format!(
            "{poisoned} poisoned, {dead} in the DLQ {reasons:?}; {dirty_rate:.0}/s vs clean {clean_rate:.0}/s ({:.0}%{})",
            ratio * 100.0,
            if mode.full {
                ""
            } else {
                ", checked in the full form"
            }
        ),
    }]
}

/// 6. RSS of both services sampled under steady load.
pub fn memory(mode: Mode) -> Vec<Row> {
    let system = system(&[]);
    let duration = mode.secs(8, 300);
    let pids = [
        ("shortener", system.shortener.pid().unwrap()),
        ("analytics", system.analytics.pid().unwrap()),
    ];
    let load = Load::start(system.shortener.url(), &system.key, rate(mode));
    let started = Instant::now();
    let mut samples: Vec<[f64; 2]> = Vec::new();
    while started.elapsed() < duration {
        std::thread::sleep(Duration::from_secs(1));
        samples.push(pids.map(|(_, pid)| memory_mb(pid, "VmRSS:")));
    }
    let seen = load.finish();
    let (tally, _) = settle(&system, &seen, true);
    // After a warm-up (the first fifth): caches and pools fill, then stay.
    let warm = samples.len() / 5;
    pids.iter()
        .enumerate()
        .map(|(i, (name, _))| {
            let start = samples[warm][i];
            let peak = samples.iter().map(|s| s[i]).fold(0.0, f64::max);
            let end = samples.last().unwrap()[i];
            let flat = end <= start * 1.25 + 16.0;
            Row {
                scenario: format!("6 memory: {name}"),
                expected: tally.served,
                counted: tally.counted,
                lost: tally.lost,
                double: tally.double,
                ok: flat && tally.lost == 0 && tally.double == 0,
                note: format!(
                    "RSS MB after warm-up {start:.1}, peak {peak:.1}, end {end:.1} over {} s of load{}",
                    duration.as_secs(),
                    if flat { "" } else { ": growing" }
                ),
            }
        })
        .collect()
}

/// 12. Two analytics instances on one store under load: their durable
///     consumers deleted with the JetStream API (both create them again),
///     then the second instance SIGKILLed and restarted. Every click is
///     counted once and every link arrives.
pub fn two_analytics_instances(mode: Mode) -> Vec<Row> {
    let system = system(&[]);
    let second_logs = system.dir.path().join("second");
    std::fs::create_dir_all(&second_logs).expect("a log directory");
    let env = [
        ("ANALYTICS_API_KEY", system.key.clone()),
        ("ANALYTICS_NATS_URL", system.nats.url()),
        (
            "ANALYTICS_SQLITE_PATH",
            system.dir.path().join("analytics.db").display().to_string(),
        ),
    ];
    let mut second =
        system_tests::Service::start("analytics", &env, &second_logs).expect("a second analytics");
    let phase = mode.secs(3, 20);
    let load = Load::start(system.shortener.url(), &system.key, rate(mode));
    let started = Instant::now();

    std::thread::sleep(phase);
    println!("   the durable consumers deleted");
    runtime().block_on(async {
        let js = connect(&system).await;
        let stream = js.get_stream("SHORTENER").await.expect("the stream");
        for subject in analytics::consumer::SUBJECTS {
            let name = analytics::consumer::consumer_name("analytics", subject);
            // nats-server 2.9 may refuse a deletion racing the consumer's
            // own writes ("directory not empty"): try again, as an operator.
            let mut attempts = 0;
            while let Err(error) = stream.delete_consumer(&name).await {
                attempts += 1;
                assert!(attempts < 50, "{name} cannot be deleted: {error}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });

    std::thread::sleep(phase);
    println!("   SIGKILL the second analytics");
    second.kill();
    std::thread::sleep(mode.secs(2, 10));
    second.restart().expect("the second analytics restarts");

    std::thread::sleep(phase);
    let loaded = started.elapsed();
    let seen = load.finish();
    let (tally, took) = settle(&system, &seen, true);
    let restarts = |port: u16| {
        let metrics =
            system_tests::process::http_get(port, "/metrics").map_or(String::new(), |(_, b)| b);
        metrics
            .lines()
            .filter(|l| l.starts_with("analytics_consumer_restarts_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    };
    vec![row(
        "12 two analytics, consumers deleted",
        &tally,
        format!(
            "{:.0} s of load, {} links, consumer tasks restarted {} + {} times, settled in {:.1} s",
            loaded.as_secs_f64(),
            seen.created.len(),
            restarts(system.analytics.port()),
            restarts(second.port()),
            took.as_secs_f64()
        ),
        false,
    )]
}
