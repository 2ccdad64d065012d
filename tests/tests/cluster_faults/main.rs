//! `make cluster-faults`: the cluster `make cluster` runs
//! (`infra/dev/cluster.sh`: 3 NATS nodes, ZooKeeper, 2 replicated
//! clickhouse-servers, 2 shorteners, 2 analytics instances, the console),
//! started on free ports in a temporary directory, then broken one process
//! at a time under load and counted: every redirect the load generator saw
//! served must be counted once by analytics.
//!
//! The load goes to both shorteners in turn and moves to the other when a
//! connection is refused, as a load balancer would. Each outage lasts
//! `CLUSTER_FAULTS_OUTAGE_S` (default 30 s): longer than the shortener's
//! publish deadline (2 s), JetStream's leader election, analytics' ack wait
//! (30 s) and store backoff, and the compactor's settle window (10 s).
//!
//! Not part of `make test` (`test = false`); `make test` runs the short
//! cluster test in `tests/e2e/cluster.rs`.

#![allow(unsafe_code)] // sysconf, for the clock tick

#[allow(dead_code)]
#[path = "../faults/load.rs"]
mod load;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use load::{Load, Rate, Seen};
use system_tests::process::{http_get, http_get_with_key};

/// The port of `http://127.0.0.1:PORT`.
fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .expect("a URL with a port")
}

/// How long each outage lasts.
fn outage() -> Duration {
    let seconds = std::env::var("CLUSTER_FAULTS_OUTAGE_S")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    Duration::from_secs(seconds)
}

/// Load before and after each fault.
const AROUND: Duration = Duration::from_secs(10);
/// The longest analytics may take to show every click after the load.
const SETTLE: Duration = Duration::from_secs(120);

const RATE: Rate = Rate {
    creations_per_s: 2,
    redirects_per_s: 200,
    workers: 8,
};

struct Cluster {
    dir: tempfile::TempDir,
    /// The first of its ports (the script's layout).
    base: u16,
    env: HashMap<String, String>,
    key: String,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the repository")
        .to_owned()
}

/// A base port with the 101 above it free (the script's layout).
fn free_base() -> u16 {
    let pid = u16::try_from(std::process::id() % 200).unwrap_or(0);
    (0..50u16)
        .map(|i| 20_000 + ((pid + i * 7) % 200) * 200)
        .find(|base| {
            (0..=101u16)
                .all(|offset| std::net::TcpListener::bind(("127.0.0.1", base + offset)).is_ok())
        })
        .expect("a free range of ports")
}

impl Cluster {
    fn up() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("cluster-faults-")
            .tempdir()
            .expect("a temporary directory");
        let mut cluster = Cluster {
            dir,
            base: free_base(),
            env: HashMap::new(),
            key: String::new(),
        };
        let status = cluster.script(&["up"]);
        if !status {
            cluster.show_logs();
            panic!("cluster.sh up failed");
        }
        let env =
            std::fs::read_to_string(cluster.dir.path().join("cluster.env")).expect("cluster.env");
        cluster.env = env
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        cluster.key = std::fs::read_to_string(&cluster.env["API_KEY_FILE"])
            .expect("the admin key")
            .trim()
            .to_owned();
        cluster
    }

    /// Runs `infra/dev/cluster.sh ARGS` on this cluster; whether it passed.
    fn script(&self, args: &[&str]) -> bool {
        // `make cluster-faults` gives the release binaries; by hand, the
        // debug ones `cargo build` made.
        let bin_dir = std::env::var("URL_SHORTENER_BIN_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| {
                std::env::var("CARGO_TARGET_DIR")
                    .map(PathBuf::from)
                    .unwrap_or_else(|_| repo().join("target"))
                    .join("debug")
            });
        Command::new("bash")
            .arg(repo().join("infra/dev/cluster.sh"))
            .args(args)
            .current_dir(repo())
            .env("URL_SHORTENER_CLUSTER_DIR", self.dir.path())
            .env("URL_SHORTENER_CLUSTER_PORT", self.base.to_string())
            .env("URL_SHORTENER_BIN_DIR", bin_dir)
            .status()
            .is_ok_and(|s| s.success())
    }

    fn show_logs(&self) {
        let logs = self.dir.path().join("logs");
        for entry in std::fs::read_dir(logs).into_iter().flatten().flatten() {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            eprintln!("== {}", entry.path().display());
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }

    fn list(&self, name: &str) -> Vec<String> {
        self.env[name].split(',').map(str::to_owned).collect()
    }

    fn kill(&self, name: &str) {
        println!("   SIGKILL {name}");
        assert!(self.script(&["kill", name]), "kill {name}");
    }

    fn stop(&self, name: &str) {
        println!("   SIGTERM {name}");
        assert!(self.script(&["stop", name]), "stop {name}");
    }

    /// Starts `name` again and waits until it serves.
    fn start(&self, name: &str) {
        println!("   start {name}");
        if !self.script(&["start", name]) {
            self.show_logs();
            panic!("{name} did not start again");
        }
    }

    /// A link's stats from the first analytics instance that answers.
    fn stats(&self, code: &str) -> Option<serde_json::Value> {
        self.list("ANALYTICS_URLS").iter().find_map(|base| {
            let path = format!("/api/v1/links/{code}/stats");
            match http_get_with_key(port_of(base), &path, &self.key)? {
                (200, body) => serde_json::from_str(&body).ok(),
                _ => None,
            }
        })
    }

    /// Clicks stored on one ClickHouse server, each event once.
    fn clicks_on(&self, clickhouse: &str) -> Option<u64> {
        let query = "/?query=SELECT%20count()%20FROM%20analytics.clicks%20FINAL";
        match http_get(port_of(clickhouse), query)? {
            (200, body) => body.trim().parse().ok(),
            _ => None,
        }
    }

    /// The node leading the stream (its `server_name`, `nats-N`), as most
    /// of the nodes that answer their monitoring port report it.
    fn stream_leader(&self) -> Option<String> {
        let mut votes: HashMap<String, usize> = HashMap::new();
        for monitor in self.list("NATS_MONITOR_URLS") {
            let path = "/jsz?accounts=true&streams=true";
            let Some((200, body)) = http_get(port_of(&monitor), path) else {
                continue;
            };
            let Ok(jsz) = serde_json::from_str::<serde_json::Value>(&body) else {
                continue;
            };
            let streams = jsz["account_details"].as_array().into_iter().flatten();
            for stream in streams.flat_map(|a| a["stream_detail"].as_array().into_iter().flatten())
            {
                if stream["name"] == contracts::stream::STREAM_NAME {
                    if let Some(leader) = stream["cluster"]["leader"].as_str() {
                        *votes.entry(leader.to_owned()).or_default() += 1;
                    }
                }
            }
        }
        votes
            .into_iter()
            .max_by_key(|(_, n)| *n)
            .map(|(leader, _)| leader)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::env::var("CLUSTER_FAULTS_KEEP").is_ok_and(|v| v == "1") {
            // Left running to look into: `URL_SHORTENER_CLUSTER_DIR=DIR
            // URL_SHORTENER_CLUSTER_PORT=BASE infra/dev/cluster.sh down`.
            let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("a dir"));
            println!(
                "   kept: URL_SHORTENER_CLUSTER_DIR={} URL_SHORTENER_CLUSTER_PORT={}",
                dir.keep().display(),
                self.base
            );
            return;
        }
        self.script(&["down"]);
    }
}

struct Row {
    scenario: &'static str,
    served: u64,
    counted: u64,
    lost: u64,
    twice: u64,
    note: String,
    ok: bool,
}

/// Polls analytics until every redirect seen is counted (or nothing moves
/// for a while after `SETTLE`); served / counted / lost / twice.
fn tally(cluster: &Cluster, seen: &Seen, exact: bool) -> (u64, u64, u64, u64, Vec<String>) {
    let started = Instant::now();
    let mut last = None;
    loop {
        let (mut counted, mut lost, mut twice, mut missing) = (0, 0, 0, Vec::new());
        for link in &seen.created {
            let served = seen.served.get(&link.code).copied().unwrap_or(0);
            let stats = cluster.stats(&link.code);
            if stats
                .as_ref()
                .is_none_or(|s| s["link"]["status"] == "unknown")
            {
                missing.push(link.code.clone());
            }
            let n = stats.map_or(0, |s| s["total_clicks"].as_u64().unwrap_or(0));
            counted += n;
            lost += served.saturating_sub(n);
            twice += n.saturating_sub(served);
        }
        let state = (seen.total_served(), counted, lost, twice, missing);
        let settled = state.4.is_empty()
            && twice == 0
            && (lost == 0 || (!exact && last.as_ref() == Some(&state)));
        if settled || started.elapsed() > SETTLE {
            return state;
        }
        last = Some(state);
        std::thread::sleep(Duration::from_secs(3));
    }
}

fn row(scenario: &'static str, cluster: &Cluster, seen: &Seen, exact: bool, note: String) -> Row {
    let (served, counted, lost, twice, missing) = tally(cluster, seen, exact);
    let links_known = missing.is_empty();
    let mut note = note;
    if !links_known {
        note.push_str(&format!(
            "; {} of {} created links unknown to analytics: {}",
            missing.len(),
            seen.created.len(),
            missing.join(" ")
        ));
    }
    if seen.failed_redirects > 0 {
        note.push_str(&format!(
            "; {} redirects failed at the client ({:?})",
            seen.failed_redirects, seen.failure_reasons
        ));
    }
    Row {
        scenario,
        served,
        counted,
        lost,
        twice,
        ok: twice == 0 && links_known && (!exact || lost == 0),
        note,
    }
}

/// `name` SIGKILLed for the outage and started again, under load.
fn killed_under_load(cluster: &Cluster, name: &str) -> Seen {
    under_load(cluster, || {
        cluster.kill(name);
        std::thread::sleep(outage());
        cluster.start(name);
    })
}

/// Load on both shorteners around `fault`.
fn under_load(cluster: &Cluster, fault: impl FnOnce()) -> Seen {
    let load = Load::start_on(cluster.list("SHORTENER_URLS"), &cluster.key, RATE);
    std::thread::sleep(AROUND);
    fault();
    std::thread::sleep(AROUND);
    load.finish()
}

fn nats_leader_killed(cluster: &Cluster) -> Row {
    let mut before = None;
    let mut after = None;
    let seen = under_load(cluster, || {
        before = cluster.stream_leader();
        let leader = before.clone().expect("the stream has a leader");
        let killed = Instant::now();
        cluster.kill(&leader);
        while after.is_none() && killed.elapsed() < outage() {
            after = cluster.stream_leader().filter(|now| *now != leader);
            std::thread::sleep(Duration::from_millis(500));
        }
        std::thread::sleep(outage().saturating_sub(killed.elapsed()));
        cluster.start(&leader);
    });
    let moved = before.is_some() && after.is_some() && before != after;
    let mut row = row(
        "stream leader nats-server SIGKILL",
        cluster,
        &seen,
        true,
        format!(
            "leader {} killed for {} s, {} elected",
            before.as_deref().unwrap_or("?"),
            outage().as_secs(),
            after.as_deref().unwrap_or("none")
        ),
    );
    row.ok &= moved;
    row
}

fn clickhouse_killed(cluster: &Cluster) -> Row {
    let seen = killed_under_load(cluster, "clickhouse-1");
    let mut row = row(
        "clickhouse-1 SIGKILL",
        cluster,
        &seen,
        true,
        format!(
            "down {} s; analytics wrote to clickhouse-2",
            outage().as_secs()
        ),
    );
    // The first replica fetches what it missed.
    let servers = cluster.list("CLICKHOUSE_URLS");
    let started = Instant::now();
    let counts = loop {
        let counts: Vec<Option<u64>> = servers.iter().map(|s| cluster.clicks_on(s)).collect();
        if counts[0].is_some() && counts.windows(2).all(|w| w[0] == w[1]) {
            break counts;
        }
        if started.elapsed() > SETTLE {
            break counts;
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    let same = counts[0].is_some() && counts.windows(2).all(|w| w[0] == w[1]);
    row.note.push_str(&format!(
        "; clicks on each replica afterwards: {}",
        counts
            .iter()
            .map(|c| c.map_or("?".to_owned(), |c| c.to_string()))
            .collect::<Vec<_>>()
            .join(" / ")
    ));
    row.ok &= same;
    row
}

fn analytics_killed(cluster: &Cluster) -> Row {
    let seen = killed_under_load(cluster, "analytics-1");
    row(
        "analytics-1 SIGKILL",
        cluster,
        &seen,
        true,
        format!(
            "down {} s; analytics-2 took the consumers",
            outage().as_secs()
        ),
    )
}

fn shortener_killed(cluster: &Cluster) -> Row {
    let seen = killed_under_load(cluster, "shortener-1");
    let mut row = row(
        "shortener-1 SIGKILL (window)",
        cluster,
        &seen,
        false,
        format!(
            "down {} s; the load moved to shortener-2",
            outage().as_secs()
        ),
    );
    row.note.push_str(
        "; lost = clicks in the kill window (the 20 ms linger + batch in flight, docs/faults.md)",
    );
    row
}

fn rolling_restart(cluster: &Cluster) -> Row {
    let instances = [
        "shortener-1",
        "shortener-2",
        "analytics-1",
        "analytics-2",
        "console",
    ];
    let seen = under_load(cluster, || {
        for name in instances {
            cluster.stop(name);
            // It drains, then exits; then it starts again and is ready
            // before the next one goes.
            let deadline = Instant::now() + Duration::from_secs(90);
            while running(cluster, name) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(200));
            }
            cluster.start(name);
        }
    });
    row(
        "rolling restart (SIGTERM, one at a time)",
        cluster,
        &seen,
        true,
        format!("{} restarted in turn", instances.join(", ")),
    )
}

/// Whether `name`'s process still runs (its PID file names a live process).
fn running(cluster: &Cluster, name: &str) -> bool {
    let file = Path::new(&cluster.env["RUN_DIR"]).join(format!("{name}.pid"));
    std::fs::read_to_string(file)
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists() && !zombie(&pid))
}

fn zombie(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(") ")
                .next()
                .is_some_and(|rest| rest.starts_with('Z'))
        })
        .unwrap_or(true)
}

/// CPU time a process has used so far (user + system), from /proc.
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(") ")?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(ticks / per_second)
}

/// Every process of the cluster and its CPU time so far.
fn cpu_by_process(cluster: &Cluster) -> HashMap<String, f64> {
    let mut cpu = HashMap::new();
    for entry in std::fs::read_dir(&cluster.env["RUN_DIR"])
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(name) = name.strip_suffix(".pid") else {
            continue;
        };
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        if let Some(seconds) = text.split_whitespace().next().and_then(cpu_seconds) {
            cpu.insert(name.to_owned(), seconds);
        }
    }
    cpu
}

/// Sizing: `wrk` (one per shortener) sends as many redirects as the
/// cluster takes for `SIZING_FOR` over `SIZING_LINKS` links; then the CPU
/// each kind of process used per click, until analytics had counted them
/// all. Saturated, so per-click costs are those of full batches.
const SIZING_FOR: Duration = Duration::from_secs(30);
const SIZING_LINKS: usize = 1_000;

/// Creates a link on the first shortener; its code.
fn create_link(cluster: &Cluster, n: usize) -> Option<String> {
    let body = format!(r#"{{"url":"https://example.com/sizing/{n}"}}"#);
    let request = format!(
        "POST /api/v1/links HTTP/1.0\r\nHost: 127.0.0.1\r\nX-Api-Key: {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        cluster.key,
        body.len()
    );
    let base = &cluster.list("SHORTENER_URLS")[0];
    match system_tests::process::http_request(port_of(base), &request)? {
        (201, answer) => serde_json::from_str::<serde_json::Value>(&answer).ok()?["code"]
            .as_str()
            .map(str::to_owned),
        _ => None,
    }
}

/// Redirects `wrk` saw answered (any 2xx/3xx) in its summary.
fn wrk_served(output: &str) -> u64 {
    let number = |prefix: &str| {
        output
            .lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(str::to_owned))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
    };
    let total = output
        .lines()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0);
    total.saturating_sub(number("Non-2xx or 3xx responses:").unwrap_or(0))
}

fn sizing(cluster: &Cluster) -> Vec<String> {
    let codes: Vec<String> = (0..SIZING_LINKS)
        .filter_map(|n| create_link(cluster, n))
        .collect();
    let script = cluster.dir.path().join("sizing.lua");
    let list = codes
        .iter()
        .map(|c| format!("\"/{c}\""))
        .collect::<Vec<_>>()
        .join(",");
    std::fs::write(
        &script,
        format!(
            "local paths = {{{list}}}\n\
             request = function() return wrk.format(\"GET\", paths[math.random(#paths)]) end\n"
        ),
    )
    .expect("the wrk script");
    let before = cpu_by_process(cluster);
    // Both at once, each in a thread of its own.
    let runs: Vec<_> = cluster
        .list("SHORTENER_URLS")
        .into_iter()
        .map(|base| {
            let script = script.clone();
            std::thread::spawn(move || {
                Command::new("wrk")
                    .args(["-t1", "-c32", &format!("-d{}s", SIZING_FOR.as_secs()), "-s"])
                    .arg(&script)
                    .arg(base)
                    .output()
            })
        })
        .collect();
    let mut served = 0;
    for run in runs {
        match run.join().expect("a wrk thread") {
            Ok(output) => served += wrk_served(&String::from_utf8_lossy(&output.stdout)),
            Err(error) => {
                return vec![format!(
                    "wrk did not run ({error}); make cluster-faults installs it"
                )];
            }
        }
    }
    // Until analytics has counted what was served (or stops moving).
    let started = Instant::now();
    let mut counted = 0;
    while started.elapsed() < SETTLE {
        let now: u64 = codes
            .iter()
            .filter_map(|code| cluster.stats(code))
            .map(|s| s["total_clicks"].as_u64().unwrap_or(0))
            .sum();
        if now >= served || (now == counted && now > 0) {
            counted = now;
            break;
        }
        counted = now;
        std::thread::sleep(Duration::from_secs(3));
    }
    let after = cpu_by_process(cluster);
    let mut by_kind: std::collections::BTreeMap<String, (f64, usize)> = Default::default();
    for (name, end) in &after {
        let used = end - before.get(name).copied().unwrap_or(0.0);
        let kind = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '-');
        let entry = by_kind.entry(kind.to_owned()).or_default();
        entry.0 += used;
        entry.1 += 1;
    }
    let dropped: f64 = cluster
        .list("SHORTENER_URLS")
        .iter()
        .filter_map(|base| http_get(port_of(base), "/metrics"))
        .filter_map(|(_, metrics)| {
            system_tests::process::metric_value(
                &metrics,
                r#"shortener_clicks_dropped_total{reason="queue_full"}"#,
            )
        })
        .sum();
    let mut lines = vec![format!(
        "{served} redirects served in {} s ({:.0}/s) over {} links; {counted} clicks counted, \
         {} dropped by the shorteners' full click queues",
        SIZING_FOR.as_secs(),
        served as f64 / SIZING_FOR.as_secs_f64(),
        codes.len(),
        dropped as u64
    )];
    for (kind, (seconds, processes)) in by_kind {
        // The shorteners did the work for every redirect; the rest of the
        // pipeline for the clicks that reached it.
        let clicks = if kind == "shortener" { served } else { counted };
        lines.push(format!(
            "{kind} ({processes}): {seconds:.1} CPU s, {:.1} µs per {}, {:.0} per second per core",
            seconds * 1e6 / clicks.max(1) as f64,
            if kind == "shortener" {
                "redirect"
            } else {
                "click"
            },
            clicks as f64 / seconds.max(1e-9)
        ));
    }
    lines
}

fn main() {
    println!(
        "cluster fault suite: outages of {} s, {} redirects/s over both shorteners",
        outage().as_secs(),
        RATE.redirects_per_s
    );
    let started = Instant::now();
    let cluster = Cluster::up();
    println!("   cluster up in {:.0} s", started.elapsed().as_secs_f64());
    let sizing = if std::env::var("CLUSTER_FAULTS_SIZING").is_ok_and(|v| v == "0") {
        Vec::new()
    } else {
        println!(
            "-- sizing: wrk on both shorteners, {} s",
            SIZING_FOR.as_secs()
        );
        sizing(&cluster)
    };
    type Scenario = fn(&Cluster) -> Row;
    let scenarios: [(&str, Scenario); 5] = [
        ("1 stream leader killed", nats_leader_killed),
        ("2 clickhouse-server killed", clickhouse_killed),
        ("3 analytics instance killed", analytics_killed),
        ("4 shortener instance killed", shortener_killed),
        ("5 rolling restart", rolling_restart),
    ];
    let only: Option<Vec<String>> = std::env::var("CLUSTER_FAULTS_ONLY")
        .ok()
        .map(|v| v.split(',').map(|n| n.trim().to_owned()).collect());
    let mut rows = Vec::new();
    for (index, (name, scenario)) in scenarios.into_iter().enumerate() {
        if only
            .as_ref()
            .is_some_and(|only| !only.contains(&(index + 1).to_string()))
        {
            continue;
        }
        println!("-- {name}");
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| scenario(&cluster)));
        rows.push(outcome.unwrap_or_else(|panic| Row {
            scenario: name,
            served: 0,
            counted: 0,
            lost: 0,
            twice: 0,
            note: format!(
                "panicked: {}",
                panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default()
            ),
            ok: false,
        }));
    }
    println!();
    println!(
        "| {:<40} | {:>7} | {:>7} | {:>5} | {:>5} | {:<3} | notes",
        "scenario", "served", "counted", "lost", "twice", "ok"
    );
    println!(
        "|{:-<42}|{:-<9}|{:-<9}|{:-<7}|{:-<7}|{:-<5}|{:-<40}",
        "", "", "", "", "", "", ""
    );
    for row in &rows {
        println!(
            "| {:<40} | {:>7} | {:>7} | {:>5} | {:>5} | {:<3} | {}",
            row.scenario,
            row.served,
            row.counted,
            row.lost,
            row.twice,
            if row.ok { "yes" } else { "NO" },
            row.note
        );
    }
    if !sizing.is_empty() {
        println!();
        println!(
            "sizing (CPU per click, from /proc, over the load and until analytics counted it all):"
        );
        for line in &sizing {
            println!("  {line}");
        }
    }
    println!("   total {:.0} s", started.elapsed().as_secs_f64());
    let failed = rows.iter().any(|r| !r.ok);
    if failed {
        cluster.show_logs();
    }
    drop(cluster);
    if failed {
        std::process::exit(1);
    }
}
