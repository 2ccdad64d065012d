//! Scenarios 7–11: the redirect path through broker and store outages
//! longer than every queue, timeout and window on it (issue 12).
//!
//! Each row says what the load generator saw served, what the stream holds
//! (distinct click events), what is lost and what is on the stream twice,
//! then checks analytics' count and the links' `click_count` against what
//! was served, exactly.

#![allow(unsafe_code)] // SIGSTOP and SIGCONT, on processes this suite started

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use async_nats::jetstream::{self, consumer};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use system_tests::MongoServer;
use system_tests::process::metric_value;

use crate::load::{Load, Rate, Seen};
use crate::scenarios::{lock_sqlite, runtime, settle};
use crate::system::System;
use crate::{Mode, Row};

/// How long the stream may take to hold every click after the broker is back.
const ON_STREAM_WITHIN: Duration = Duration::from_secs(60);

fn rate() -> Rate {
    Rate {
        creations_per_s: 5,
        redirects_per_s: 2_000,
        workers: 32,
    }
}

/// One click event on the stream.
struct OnStream {
    event_id: String,
    code: String,
    clicked_at: DateTime<Utc>,
}

/// Every `shortener.url.clicked` on the stream.
async fn clicks_on_stream(nats_url: &str) -> Vec<OnStream> {
    let Ok(client) = async_nats::connect(nats_url).await else {
        return Vec::new();
    };
    let js = jetstream::new(client);
    let Ok(stream) = js.get_stream("SHORTENER").await else {
        return Vec::new();
    };
    let Ok(mut consumer) = stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: contracts::subjects::URL_CLICKED.to_owned(),
            ..Default::default()
        })
        .await
    else {
        return Vec::new();
    };
    let Ok(info) = consumer.info().await else {
        return Vec::new();
    };
    let total = info.num_pending;
    let mut found = Vec::with_capacity(total as usize);
    let Ok(mut messages) = consumer.messages().await else {
        return found;
    };
    while (found.len() as u64) < total {
        let next = tokio::time::timeout(Duration::from_secs(10), messages.next()).await;
        let Ok(Some(Ok(message))) = next else { break };
        let Ok(event) = serde_json::from_slice::<serde_json::Value>(&message.payload) else {
            continue;
        };
        found.push(OnStream {
            event_id: event["event_id"].as_str().unwrap_or_default().to_owned(),
            code: event["data"]["short_code"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            clicked_at: event["data"]["clicked_at"]
                .as_str()
                .and_then(|t| t.parse().ok())
                .unwrap_or_default(),
        });
    }
    found
}

/// What the stream holds against what was served (clicks since `since`
/// when given: a broker restarted empty lost what it held before).
struct StreamTally {
    served: u64,
    distinct: u64,
    lost: u64,
    twice: u64,
}

fn stream_tally(seen: &Seen, events: &[OnStream], since: Option<SystemTime>) -> StreamTally {
    let since_utc = since.map(DateTime::<Utc>::from);
    let mut ids = HashSet::new();
    let mut per_code: HashMap<&str, u64> = HashMap::new();
    let mut twice = 0;
    for event in events {
        if since_utc.is_some_and(|at| event.clicked_at < at) {
            continue;
        }
        if ids.insert(event.event_id.as_str()) {
            *per_code.entry(event.code.as_str()).or_default() += 1;
        } else {
            twice += 1;
        }
    }
    let (served, lost) = match since {
        // Served after the broker lost its data: all of them on the new stream.
        Some(at) => {
            let served = seen.served_since(at);
            (served, served.saturating_sub(ids.len() as u64))
        }
        None => {
            let lost = seen
                .served
                .iter()
                .map(|(code, n)| {
                    n.saturating_sub(per_code.get(code.as_str()).copied().unwrap_or(0))
                })
                .sum();
            (seen.total_served(), lost)
        }
    };
    StreamTally {
        served,
        distinct: ids.len() as u64,
        lost,
        twice,
    }
}

/// Waits (up to [`ON_STREAM_WITHIN`]) until the stream holds every served
/// click; the tally and how long it took.
fn wait_on_stream(
    system: &System,
    seen: &Seen,
    since: Option<SystemTime>,
) -> (StreamTally, Duration) {
    let rt = runtime();
    let started = Instant::now();
    loop {
        let events = rt.block_on(clicks_on_stream(&system.nats.url()));
        let tally = stream_tally(seen, &events, since);
        if tally.lost == 0 || started.elapsed() > ON_STREAM_WITHIN {
            return (tally, started.elapsed());
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Links whose `click_count` differs from what was served.
fn click_counts_off(system: &System, seen: &Seen) -> usize {
    let started = Instant::now();
    loop {
        let off = seen
            .created
            .iter()
            .filter(|link| {
                let served = seen.served.get(&link.code).copied().unwrap_or(0);
                system.link(&link.code)["click_count"].as_u64() != Some(served)
            })
            .count();
        if off == 0 || started.elapsed() > Duration::from_secs(30) {
            return off;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The row of a scenario after the load stopped: the stream, analytics and
/// the counters, each against what was served.
fn judge(
    name: &str,
    system: &System,
    seen: &Seen,
    mut note: String,
    outage_p99: Option<f64>,
) -> Row {
    let (stream, took) = wait_on_stream(system, seen, None);
    let (analytics, _) = settle(system, seen, true);
    let counts_off = click_counts_off(system, seen);
    // Every reason's series, summed.
    let dropped = Some(
        system
            .shortener_get("/metrics")
            .body
            .lines()
            .filter(|l| l.starts_with("shortener_clicks_dropped_total"))
            .filter_map(|l| metric_value(l, "shortener_clicks_dropped_total"))
            .sum::<f64>(),
    );
    note = format!(
        "{note}; on stream {:.1} s after the load; analytics counted {} (lost {}, double {}); click_count off on {counts_off} links; {} failed redirects{}",
        took.as_secs_f64(),
        analytics.counted,
        analytics.lost,
        analytics.double,
        seen.failed_redirects,
        why_failed(seen),
    );
    if let Some(p99) = outage_p99 {
        note.push_str(&format!("; p99 during the outage {p99:.1} ms"));
    }
    if let Some(dropped) = dropped.filter(|d| *d > 0.0) {
        note.push_str(&format!("; {dropped} clicks dropped"));
    }
    Row {
        scenario: name.to_owned(),
        expected: stream.served,
        counted: stream.distinct,
        lost: stream.lost,
        double: stream.twice,
        ok: stream.lost == 0
            && analytics.lost == 0
            && analytics.double == 0
            && analytics.links_missing == 0
            && counts_off == 0
            && seen.failed_redirects == 0
            && outage_p99.is_none_or(|p| p < 50.0),
        note,
    }
}

/// nats-server SIGKILLed for the outage under load, then restarted (on an
/// empty data directory when `empty`); the system, what the load saw, when
/// the broker went down, and the redirect p99 during the outage.
fn broker_outage(mode: Mode, empty: bool) -> (System, Seen, SystemTime, f64) {
    let mut system = System::start().expect("nats-server is installed");
    let outage = mode.secs(20, 120);
    let load = Load::start(system.shortener.url(), &system.key, rate());
    std::thread::sleep(Duration::from_secs(5));
    println!(
        "   SIGKILL nats-server for {outage:?}{}",
        if empty { "; it comes back empty" } else { "" }
    );
    let down = SystemTime::now();
    system.nats.kill();
    if empty {
        let store = system.nats.data_dir().join("jetstream");
        std::fs::remove_dir_all(&store).expect("the JetStream data is removed");
    }
    std::thread::sleep(outage);
    let up = SystemTime::now();
    system.nats.restart().expect("nats-server restarts");
    std::thread::sleep(Duration::from_secs(5));
    let seen = load.finish();
    let p99 = seen.percentile_ms(99.0, down, up);
    (system, seen, down, p99)
}

/// 7. nats-server SIGKILLed for the outage under load, then restarted on
///    its data directory.
pub fn broker_killed(mode: Mode) -> Vec<Row> {
    let (system, seen, _, p99) = broker_outage(mode, false);
    let name = format!("7 nats SIGKILL {} s, same data", mode.pick(20, 120));
    vec![judge(
        &name,
        &system,
        &seen,
        format!("{} links", seen.created.len()),
        Some(p99),
    )]
}

/// 8. The same, but the broker comes back on a new, empty data directory:
///    the stream is created again and every click served since the kill
///    arrives on it, and analytics recreates its consumers.
pub fn broker_lost_its_data(mode: Mode) -> Vec<Row> {
    let (system, seen, down, p99) = broker_outage(mode, true);
    let (stream, took) = wait_on_stream(&system, &seen, Some(down));
    // Analytics counted what the old stream delivered before the kill; it
    // must take up the new stream too and never count a click twice.
    let (analytics, _) = settle(&system, &seen, false);
    let recovered = consumer_caught_up(&system);
    vec![Row {
        scenario: format!("8 nats SIGKILL {} s, empty data", mode.pick(20, 120)),
        expected: stream.served,
        counted: stream.distinct,
        lost: stream.lost,
        double: stream.twice,
        ok: stream.lost == 0
            && recovered
            && analytics.double == 0
            && seen.failed_redirects == 0
            && p99 < 50.0,
        note: format!(
            "served since the kill; on the new stream {:.1} s after the load; analytics took up the new stream: {recovered} (counted {}, double {}); {} failed redirects{}; p99 during the outage {p99:.1} ms",
            took.as_secs_f64(),
            analytics.counted,
            analytics.double,
            seen.failed_redirects,
            why_failed(&seen)
        ),
    }]
}

/// Whether analytics' click consumer exists on the new stream and has
/// taken everything on it (waits up to a minute).
fn consumer_caught_up(system: &System) -> bool {
    let rt = runtime();
    let started = Instant::now();
    while started.elapsed() < ON_STREAM_WITHIN {
        let caught_up = rt.block_on(async {
            let client = async_nats::connect(system.nats.url()).await.ok()?;
            let stream = jetstream::new(client).get_stream("SHORTENER").await.ok()?;
            let mut consumer: jetstream::consumer::PullConsumer = stream
                .get_consumer("analytics-shortener-url-clicked")
                .await
                .ok()?;
            let info = consumer.info().await.ok()?;
            Some(
                info.num_pending == 0
                    && info.num_ack_pending == 0
                    && info.delivered.stream_sequence > 0,
            )
        });
        if caught_up == Some(true) {
            return true;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    false
}

/// 9. Five broker restarts in a row under load.
pub fn broker_restarts(mode: Mode) -> Vec<Row> {
    let mut system = System::start().expect("nats-server is installed");
    let outage = mode.secs(4, 15);
    let load = Load::start(system.shortener.url(), &system.key, rate());
    for round in 1..=5 {
        std::thread::sleep(Duration::from_secs(3));
        println!("   restart {round} of 5 ({outage:?} down)");
        system.nats.kill();
        std::thread::sleep(outage);
        system.nats.restart().expect("nats-server restarts");
    }
    std::thread::sleep(Duration::from_secs(3));
    let seen = load.finish();
    let name = format!("9 five nats restarts ({} s down)", outage.as_secs());
    vec![judge(
        &name,
        &system,
        &seen,
        format!("{} links", seen.created.len()),
        None,
    )]
}

/// A creation while the store is away: 503 problem+json.
fn creation_is_refused(system: &System) -> bool {
    let answer = system.try_create("https://example.com/during-outage");
    answer.status == 503
        && answer
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/problem+json"))
}

/// 10. The shortener's store unavailable for 10 s under load: cached
///     redirects go on, creations get 503, and afterwards every 201 link
///     and every served click is there. SQLite is locked; the MongoDB-wire
///     server is SIGSTOPped.
pub fn store_unavailable(_mode: Mode) -> Vec<Row> {
    let outage = Duration::from_secs(10);
    let mut rows = Vec::new();

    let system = System::start().expect("nats-server is installed");
    let db = system.dir.path().join("links.db");
    rows.push(store_outage("10a sqlite locked 10 s", &system, || {
        let lock = lock_sqlite(&db, outage.as_secs());
        std::thread::sleep(Duration::from_secs(2));
        let refused = creation_is_refused(&system);
        let mut lock = lock;
        lock.wait().expect("the lock is released");
        refused
    }));

    let mongo = system_tests::started(MongoServer::start()).expect("the MongoDB-wire server");
    let system = System::start_on_mongo(&mongo.uri()).expect("nats-server is installed");
    let pid = mongo.pid().expect("the MongoDB-wire server runs") as libc::pid_t;
    rows.push(store_outage("10b mongodb SIGSTOP 10 s", &system, || {
        // SAFETY: kill(2) on the PID of a child this process started.
        unsafe { libc::kill(pid, libc::SIGSTOP) };
        let stopped = Instant::now();
        std::thread::sleep(Duration::from_secs(1));
        let refused = creation_is_refused(&system);
        std::thread::sleep(outage.saturating_sub(stopped.elapsed()));
        unsafe { libc::kill(pid, libc::SIGCONT) };
        refused
    }));
    rows
}

fn store_outage(name: &str, system: &System, outage: impl FnOnce() -> bool) -> Row {
    // No creations under load: every redirect goes to a link the cache holds.
    let load = Load::start(
        system.shortener.url(),
        &system.key,
        Rate {
            creations_per_s: 0,
            ..rate()
        },
    );
    std::thread::sleep(Duration::from_secs(5));
    println!("   {name}");
    let down = SystemTime::now();
    let refused = outage();
    let up = SystemTime::now();
    std::thread::sleep(Duration::from_secs(5));
    let seen = load.finish();
    let p99 = seen.percentile_ms(99.0, down, up);
    let mut row = judge(
        name,
        system,
        &seen,
        format!("creation during the outage answered 503 problem+json: {refused}"),
        Some(p99),
    );
    row.ok &= refused;
    row
}

/// 11. The shortener stopped (SIGTERM) while NATS is down: it spools what
///     it holds; after the next start, with NATS back, all of it is published.
pub fn shortener_stopped_during_outage(mode: Mode) -> Vec<Row> {
    let mut system = System::start().expect("nats-server is installed");
    let load = Load::start(system.shortener.url(), &system.key, rate());
    std::thread::sleep(Duration::from_secs(5));
    println!("   SIGKILL nats-server, then SIGTERM the shortener");
    system.nats.kill();
    std::thread::sleep(mode.secs(5, 20));
    let seen = load.finish();
    system.shortener.stop(Duration::from_secs(30));
    let spooled = spool_rows(&system.dir.path().join("links.db"));
    system.nats.restart().expect("nats-server restarts");
    system.shortener.restart().expect("the shortener restarts");
    vec![judge(
        "11 shortener SIGTERM, nats down",
        &system,
        &seen,
        format!("{spooled} clicks in the spool after the stop"),
        None,
    )]
}

/// Rows of the SQLite click spool (python3's sqlite3, read-only).
fn spool_rows(db: &Path) -> u64 {
    let output = std::process::Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys\n\
             c = sqlite3.connect('file:' + sys.argv[1] + '?mode=ro', uri=True)\n\
             print(c.execute('SELECT count(*) FROM click_spool').fetchone()[0])",
        ])
        .arg(db)
        .output()
        .expect("python3 runs");
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// ` (status 503: 1, timeout: 2)` when redirects failed, else nothing.
fn why_failed(seen: &Seen) -> String {
    if seen.failure_reasons.is_empty() {
        return String::new();
    }
    let reasons: Vec<String> = seen
        .failure_reasons
        .iter()
        .map(|(reason, n)| format!("{reason}: {n}"))
        .collect();
    format!(" ({})", reasons.join(", "))
}
