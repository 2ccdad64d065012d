//! `make bench-redirect`: redirect throughput and latency of the real
//! shortener on loopback, with every click flowing to JetStream, next to a
//! bare actix-web handler that answers a fixed 302 from an in-memory map,
//! measured in the same run with the same load generator (`wrk`).
//!
//! The shortener runs as its own process (the release binary), so the RSS
//! reported is its own; the baseline is this binary re-executed with
//! `--baseline-server PORT`. The last line printed is one JSON object.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use system_tests::process::{free_port, http_get, http_request, memory_mb, scrape_metric};
use system_tests::NatsServer;

const CONNECTIONS: u32 = 64;
const THREADS: u32 = 2;
const WARM_UP: Duration = Duration::from_secs(3);
const MEASURE: Duration = Duration::from_secs(10);
const CODE: &str = "bench";

/// Kills the child it guards when dropped (by PID, never by name).
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(port: u16, path: &str, status: u16) {
    let started = Instant::now();
    while http_get(port, path).map(|(s, _)| s) != Some(status) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{path} on {port} never answered {status}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Result of one wrk run.
#[derive(Debug)]
struct Load {
    requests: u64,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    non_2xx_3xx: u64,
}

fn duration_ms(text: &str) -> f64 {
    let (number, factor) = if let Some(n) = text.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (text, 1.0)
    };
    number.parse::<f64>().unwrap_or(f64::NAN) * factor
}

fn wrk(port: u16, duration: Duration) -> Load {
    let output = Command::new("wrk")
        .args([
            format!("-t{THREADS}"),
            format!("-c{CONNECTIONS}"),
            format!("-d{}s", duration.as_secs()),
            "--latency".into(),
            format!("http://127.0.0.1:{port}/{CODE}"),
        ])
        .output()
        .expect("wrk runs (apt-get install wrk)");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let field = |prefix: &str| -> Option<String> {
        text.lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .and_then(|l| {
                l[prefix.len()..]
                    .split_whitespace()
                    .next()
                    .map(str::to_owned)
            })
    };
    Load {
        requests: text
            .lines()
            .find(|l| l.contains("requests in"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
        rps: field("Requests/sec:")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0),
        p50_ms: field("50%").map(|v| duration_ms(&v)).unwrap_or(f64::NAN),
        p99_ms: field("99%").map(|v| duration_ms(&v)).unwrap_or(f64::NAN),
        non_2xx_3xx: field("Non-2xx or 3xx responses:")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    }
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let ticks_per_second = 100.0; // USER_HZ on Linux
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // Fields after the parenthesised command name; utime and stime
            // are the 14th and 15th fields of the whole line.
            let rest = stat.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            Some((utime + stime) / ticks_per_second)
        })
        .unwrap_or(f64::NAN)
}

/// The baseline: a bare actix-web handler answering a fixed 302 from an
/// in-memory map; what a redirect costs with nothing else to do.
fn baseline_server(port: u16) -> std::io::Result<()> {
    use actix_web::{web, App, HttpResponse, HttpServer};
    let targets: web::Data<HashMap<String, String>> = web::Data::new(HashMap::from([(
        CODE.to_owned(),
        "https://example.com/landing".to_owned(),
    )]));
    actix_web::rt::System::new().block_on(
        HttpServer::new(move || {
            App::new().app_data(targets.clone()).route(
                "/{code}",
                web::get().to(|targets: web::Data<HashMap<String, String>>, code: web::Path<String>| async move {
                    match targets.get(code.as_str()) {
                        Some(url) => HttpResponse::Found().insert_header(("location", url.as_str())).finish(),
                        None => HttpResponse::NotFound().finish(),
                    }
                }),
            )
        })
        .bind(("127.0.0.1", port))?
        .run(),
    )
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--baseline-server") {
        let port = args[at + 1].parse().expect("a port");
        baseline_server(port).expect("the baseline server runs");
        return;
    }

    let nats = NatsServer::start().expect("nats-server starts (make backends)");
    let dir = tempfile::tempdir().unwrap();

    // The shortener, as deployed: release binary, SQLite, clicks to JetStream.
    let port = free_port();
    let shortener = Guard(
        Command::new(env!("CARGO_BIN_EXE_shortener"))
            .env("SHORTENER_HTTP_ADDR", format!("127.0.0.1:{port}"))
            .env("SHORTENER_NATS_URL", nats.url())
            .env("SHORTENER_SQLITE_PATH", dir.path().join("links.db"))
            .env("SHORTENER_CREATE_RATE_PER_MINUTE", "0")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("the shortener binary starts"),
    );
    let pid = shortener.0.id();
    wait_for(port, "/ready", 200);
    let body = format!(r#"{{"url": "https://example.com/landing", "alias": "{CODE}"}}"#);
    let created = http_request(
        port,
        &format!(
            "POST /api/v1/links HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    );
    assert_eq!(
        created.map(|(s, _)| s),
        Some(201),
        "creating the benchmark link"
    );
    let rss_idle = memory_mb(pid, "VmRSS:");

    wrk(port, WARM_UP);
    let nats_pid = nats.pid().expect("nats-server runs");
    let cpu_before = (cpu_seconds(pid), cpu_seconds(nats_pid));
    let load = wrk(port, MEASURE);
    let cpu_used = (
        cpu_seconds(pid) - cpu_before.0,
        cpu_seconds(nats_pid) - cpu_before.1,
    );
    // Every redirect served (warm-up included) must have its click event
    // acknowledged by JetStream: one each, none missing, none extra.
    let served_metric =
        r#"shortener_http_requests_total{method="GET",route="/{code}",status="302"}"#;
    let started = Instant::now();
    let (mut served, mut published) = (0.0, 0.0);
    while started.elapsed() < Duration::from_secs(60) {
        served = scrape_metric(port, served_metric).unwrap_or(f64::NAN);
        published = scrape_metric(port, "shortener_clicks_published_total").unwrap_or(0.0);
        if published >= served {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let click_catch_up = started.elapsed();
    let rss_peak = memory_mb(pid, "VmHWM:");
    drop(shortener);

    let baseline_port = free_port();
    let _baseline = Guard(
        Command::new(std::env::current_exe().unwrap())
            .args(["--baseline-server", &baseline_port.to_string()])
            .stdout(Stdio::null())
            .spawn()
            .expect("the baseline server starts"),
    );
    wait_for(baseline_port, &format!("/{CODE}"), 302);
    wrk(baseline_port, WARM_UP);
    let baseline = wrk(baseline_port, MEASURE);

    let ratio = load.rps / baseline.rps;
    println!();
    println!(
        "redirect benchmark: wrk -t{THREADS} -c{CONNECTIONS} -d{}s on 127.0.0.1, {} cores",
        MEASURE.as_secs(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    println!(
        "{:<24} {:>12} {:>10} {:>10} {:>12}",
        "", "requests/s", "p50 ms", "p99 ms", "errors"
    );
    println!(
        "{:<24} {:>12.0} {:>10.3} {:>10.3} {:>12}",
        "shortener (SQLite, NATS)", load.rps, load.p50_ms, load.p99_ms, load.non_2xx_3xx
    );
    println!(
        "{:<24} {:>12.0} {:>10.3} {:>10.3} {:>12}",
        "bare actix-web 302", baseline.rps, baseline.p50_ms, baseline.p99_ms, baseline.non_2xx_3xx
    );
    println!(
        "measured window: {} redirects by the shortener, {} by the baseline",
        load.requests, baseline.requests
    );
    println!(
        "cores busy while measured: shortener {:.2}, nats-server {:.2} (wrk and the rest share the remainder of {})",
        cpu_used.0 / MEASURE.as_secs_f64(),
        cpu_used.1 / MEASURE.as_secs_f64(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    println!("ratio {ratio:.3}; shortener RSS {rss_idle:.1} MB idle, {rss_peak:.1} MB peak");
    println!(
        "clicks: {} redirects served in all, {} click events acknowledged by JetStream ({:.1} s after the load stopped)",
        served as u64,
        published as u64,
        click_catch_up.as_secs_f64()
    );
    assert_eq!(
        served, published,
        "every served redirect must yield exactly one click event"
    );
    println!(
        "{{\"bench\":\"redirect\",\"rps\":{:.0},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"baseline_rps\":{:.0},\"ratio\":{:.3},\"rss_mb\":{:.1}}}",
        load.rps, load.p50_ms, load.p99_ms, baseline.rps, ratio, rss_peak
    );
}
