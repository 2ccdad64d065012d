//! `make bench-redirect`: redirect throughput, latency and CPU per redirect
//! of the real shortener on loopback, with every click flowing to JetStream,
//! next to a bare actix-web handler that answers a 302 from an in-memory
//! map, measured in the same run with the same load generator (`wrk`).
//!
//! The main run spreads the load over 10,000 links, uniformly at random (a
//! wrk Lua script), for the shortener and the baseline alike (its map holds
//! the same 10,000). A second run clicks one link, as the first version of
//! this benchmark did. A third run starts the shortener again exporting
//! traces over OTLP/HTTP to a receiver in this process, at the default
//! sampling (1% of redirects), to show what tracing costs. The shortener runs as its own process (the release
//! binary), so the RSS and CPU reported are its own; the baseline is this
//! binary re-executed with `--baseline-server PORT CODES_FILE`. The last
//! line printed is one JSON object.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use system_tests::NatsServer;
use system_tests::otlp::OtlpReceiver;
use system_tests::process::{free_port, http_get, http_request, memory_mb, scrape_metric};

const CONNECTIONS: u32 = 64;
const THREADS: u32 = 1;
const WARM_UP: Duration = Duration::from_secs(3);
const MEASURE: Duration = Duration::from_secs(10);
const LINKS: usize = 10_000;
/// Every click must be acknowledged by JetStream this soon after the load.
const CATCH_UP: Duration = Duration::from_secs(10);

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

/// What wrk requests: one code, or a random one of a list each time.
#[derive(Clone, Copy)]
enum Target<'a> {
    One(&'a str),
    Random(&'a Path),
}

fn wrk(port: u16, duration: Duration, target: Target) -> Load {
    let mut command = Command::new("wrk");
    command.args([
        format!("-t{THREADS}"),
        format!("-c{CONNECTIONS}"),
        format!("-d{}s", duration.as_secs()),
        "--latency".into(),
    ]);
    match target {
        Target::One(code) => command.arg(format!("http://127.0.0.1:{port}/{code}")),
        Target::Random(script) => command
            .arg("-s")
            .arg(script)
            .arg(format!("http://127.0.0.1:{port}/")),
    };
    let output = command.output().expect("wrk runs (apt-get install wrk)");
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
fn baseline_server(port: u16, codes: &Path) -> std::io::Result<()> {
    use actix_web::{App, HttpResponse, HttpServer, web};
    let targets: HashMap<String, String> = std::fs::read_to_string(codes)?
        .lines()
        .map(|code| {
            (
                code.to_owned(),
                format!("https://example.com/landing/{code}"),
            )
        })
        .collect();
    let targets = web::Data::new(targets);
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

/// A wrk script that asks for a uniformly random code of the file each time.
fn random_code_script(dir: &Path, codes: &Path) -> PathBuf {
    let script = dir.join("random-codes.lua");
    std::fs::write(
        &script,
        format!(
            r#"local codes = {{}}
for line in io.lines("{}") do codes[#codes + 1] = line end
math.randomseed(os.time())
request = function()
  return wrk.format("GET", "/" .. codes[math.random(#codes)])
end
"#,
            codes.display()
        ),
    )
    .expect("the wrk script is written");
    script
}

/// Creates the benchmark's links through the API, from a few threads.
fn create_links(port: u16, key: &'static str, count: usize) -> Vec<String> {
    let per_thread = count.div_ceil(4);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                (0..per_thread)
                    .filter_map(|i| {
                        let body = format!(r#"{{"url": "https://example.com/landing/{t}/{i}"}}"#);
                        let answer = http_request(
                            port,
                            &format!(
                                "POST /api/v1/links HTTP/1.0\r\nHost: 127.0.0.1\r\nX-Api-Key: {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                                body.len()
                            ),
                        )?;
                        assert_eq!(answer.0, 201, "creating a benchmark link: {}", answer.1);
                        let link: serde_json::Value = serde_json::from_str(&answer.1).ok()?;
                        Some(link["code"].as_str()?.to_owned())
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut codes: Vec<String> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("a creating thread"))
        .collect();
    codes.truncate(count);
    assert_eq!(codes.len(), count, "every benchmark link was created");
    codes
}

/// CPU µs a process spent per request of `load`, from `/proc`.
fn cpu_us_per_request(cpu_seconds_used: f64, load: &Load) -> f64 {
    cpu_seconds_used * 1e6 / load.requests.max(1) as f64
}

/// Measures `pid` under wrk: its load and the CPU seconds it used.
fn measured(pid: u32, port: u16, target: Target) -> (Load, f64) {
    wrk(port, WARM_UP, target);
    let before = cpu_seconds(pid);
    let load = wrk(port, MEASURE, target);
    (load, cpu_seconds(pid) - before)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--baseline-server") {
        let port = args[at + 1].parse().expect("a port");
        baseline_server(port, Path::new(&args[at + 2])).expect("the baseline server runs");
        return;
    }

    let nats = NatsServer::start().expect("nats-server starts (make backends)");
    let dir = tempfile::tempdir().unwrap();

    // The shortener, as deployed: release binary, SQLite, clicks to JetStream.
    let port = free_port();
    let key: &'static str = Box::leak(hex::encode(rand::random::<[u8; 32]>()).into_boxed_str());
    let shortener = start_shortener(port, &nats, dir.path(), key, &[]);
    let pid = shortener.0.id();
    let started = Instant::now();
    let codes = create_links(port, key, LINKS);
    println!(
        "created {LINKS} links in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let codes_file = dir.path().join("codes.txt");
    std::fs::write(&codes_file, codes.join("\n") + "\n").unwrap();
    let script = random_code_script(dir.path(), &codes_file);
    let rss_idle = memory_mb(pid, "VmRSS:");

    let spool_depth = || scrape_metric(port, "shortener_click_spool_depth").unwrap_or(f64::NAN);
    let spool_before = spool_depth();
    let nats_pid = nats.pid().expect("nats-server runs");
    let nats_cpu_before = cpu_seconds(nats_pid);
    let (load, cpu) = measured(pid, port, Target::Random(&script));
    let nats_cpu = cpu_seconds(nats_pid) - nats_cpu_before;
    let spool_growth = spool_depth() - spool_before;
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
    let (single, _) = measured(pid, port, Target::One(&codes[0]));
    let rss_peak = memory_mb(pid, "VmHWM:");
    drop(shortener);

    // The same, exporting traces to a collector at the default sampling
    // (OTEL_TRACES_SAMPLER_ARG unset: 1% of redirects traced).
    let receiver = OtlpReceiver::start().expect("the OTLP receiver");
    let traced_port = free_port();
    let traced = start_shortener(
        traced_port,
        &nats,
        dir.path(),
        key,
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url())],
    );
    let (traced_load, traced_cpu) = measured(traced.0.id(), traced_port, Target::Random(&script));
    drop(traced);
    let traced_spans = receiver.spans();
    let traced_redirects = traced_spans
        .iter()
        .filter(|span| span.name == "GET /{code}")
        .count();

    let baseline_port = free_port();
    let baseline_process = Guard(
        Command::new(std::env::current_exe().unwrap())
            .args(["--baseline-server", &baseline_port.to_string()])
            .arg(&codes_file)
            .stdout(Stdio::null())
            .spawn()
            .expect("the baseline server starts"),
    );
    wait_for(baseline_port, &format!("/{}", codes[0]), 302);
    let (baseline, baseline_cpu) = measured(
        baseline_process.0.id(),
        baseline_port,
        Target::Random(&script),
    );

    let ratio = load.rps / baseline.rps;
    let cpu_us = cpu_us_per_request(cpu, &load);
    let traced_cpu_us = cpu_us_per_request(traced_cpu, &traced_load);
    let tracing_cost_pct = (1.0 - traced_load.rps / load.rps) * 100.0;
    let baseline_cpu_us = cpu_us_per_request(baseline_cpu, &baseline);
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    println!();
    println!(
        "redirect benchmark: wrk -t{THREADS} -c{CONNECTIONS} -d{}s on 127.0.0.1, {cores} cores, {LINKS} links picked at random",
        MEASURE.as_secs(),
    );
    println!(
        "{:<28} {:>12} {:>10} {:>10} {:>12} {:>10}",
        "", "requests/s", "p50 ms", "p99 ms", "CPU µs/req", "errors"
    );
    for (name, load, cpu_us) in [
        ("shortener (SQLite, NATS)", &load, cpu_us),
        ("bare actix-web 302", &baseline, baseline_cpu_us),
    ] {
        println!(
            "{name:<28} {:>12.0} {:>10.3} {:>10.3} {cpu_us:>12.1} {:>10}",
            load.rps, load.p50_ms, load.p99_ms, load.non_2xx_3xx
        );
    }
    println!(
        "{:<28} {:>12.0} {:>10.3} {:>10.3} {traced_cpu_us:>12.1} {:>10}",
        "shortener, tracing on",
        traced_load.rps,
        traced_load.p50_ms,
        traced_load.p99_ms,
        traced_load.non_2xx_3xx
    );
    println!(
        "{:<28} {:>12.0} {:>10.3} {:>10.3} {:>12} {:>10}",
        "shortener, one link", single.rps, single.p50_ms, single.p99_ms, "", single.non_2xx_3xx
    );
    println!(
        "measured window: {} redirects by the shortener, {} by the baseline; nats-server used {:.2} cores",
        load.requests,
        baseline.requests,
        nats_cpu / MEASURE.as_secs_f64()
    );
    println!(
        "ratio {ratio:.3}; CPU per redirect {:.2} x the baseline's; shortener RSS {rss_idle:.1} MB idle, {rss_peak:.1} MB peak",
        cpu_us / baseline_cpu_us
    );
    println!(
        "clicks: {} redirects served by then, {} acknowledged by JetStream ({:.1} s after the load stopped); the spool grew by {spool_growth} during the measured window",
        served as u64,
        published as u64,
        click_catch_up.as_secs_f64()
    );
    println!(
        "tracing on (OTLP/HTTP to a local receiver, default sampling): {:+.1}% redirects/s against off, CPU per redirect {:.2} x; {} redirects traced of {} served ({} spans exported)",
        -tracing_cost_pct,
        traced_cpu_us / cpu_us,
        traced_redirects,
        traced_load.requests,
        traced_spans.len()
    );
    assert_eq!(
        served, published,
        "every served redirect must yield exactly one click event"
    );
    assert!(
        click_catch_up <= CATCH_UP,
        "clicks must be acknowledged within {CATCH_UP:?} of the load"
    );
    println!(
        "{{\"bench\":\"redirect\",\"links\":{LINKS},\"rps\":{:.0},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"baseline_rps\":{:.0},\"baseline_p99_ms\":{:.3},\"ratio\":{:.3},\"cpu_us_per_redirect\":{cpu_us:.1},\"baseline_cpu_us_per_redirect\":{baseline_cpu_us:.1},\"single_link_rps\":{:.0},\"single_link_p99_ms\":{:.3},\"spool_growth\":{spool_growth},\"clicks_acked_after_s\":{:.1},\"rss_mb\":{rss_peak:.1},\"traced_rps\":{:.0},\"traced_p99_ms\":{:.3},\"traced_cpu_us_per_redirect\":{traced_cpu_us:.1},\"tracing_cost_pct\":{tracing_cost_pct:.1}}}",
        load.rps,
        load.p50_ms,
        load.p99_ms,
        baseline.rps,
        baseline.p99_ms,
        ratio,
        single.rps,
        single.p99_ms,
        click_catch_up.as_secs_f64(),
        traced_load.rps,
        traced_load.p99_ms
    );
}

/// The release shortener on `port` over the SQLite file in `dir`, with
/// `extra` variables, once it is ready.
fn start_shortener(
    port: u16,
    nats: &NatsServer,
    dir: &Path,
    key: &str,
    extra: &[(&str, String)],
) -> Guard {
    let shortener = Guard(
        Command::new(env!("CARGO_BIN_EXE_shortener"))
            .env("SHORTENER_HTTP_ADDR", format!("127.0.0.1:{port}"))
            .env("SHORTENER_NATS_URL", nats.url())
            .env("SHORTENER_SQLITE_PATH", dir.join("links.db"))
            .env("SHORTENER_CREATE_RATE_PER_MINUTE", "0")
            .env("SHORTENER_API_KEY", key)
            .env("RUST_LOG", "warn")
            .envs(extra.iter().map(|(name, value)| (name, value)))
            .stdout(Stdio::null())
            .spawn()
            .expect("the shortener binary starts"),
    );
    wait_for(port, "/ready", 200);
    shortener
}
