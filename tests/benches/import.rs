//! `make bench-import`: a 10,000-row CSV through the console's import, as
//! a person does it (upload and preview, then import), against the real
//! services on their embedded stores. Prints the time of each step and the
//! console's peak memory; the last line is JSON.
//!
//! The import's target: 10,000 rows in under 30 s on this machine, with
//! the console's memory bounded (the file is never held whole).
//!
//! Then the consistency monitor over those links: how soon analytics holds
//! a copy of every one, how long one comparison of all of them takes, and
//! the console's peak memory after it. `BENCH_IMPORT_ROWS` sets another
//! row count (for example 100000).

#![allow(dead_code)] // the shared test modules have more than this needs

#[path = "../tests/e2e/console_http.rs"]
mod console_http;
#[path = "../tests/e2e/system.rs"]
mod system;

use std::time::{Duration, Instant};

use serde_json::Value;
use system_tests::Service;
use system_tests::process::{http_get_with_key, memory_mb};

/// The consistency monitor's report.
fn consistency(port: u16, key: &str) -> Value {
    let (status, body) =
        http_get_with_key(port, "/api/v1/consistency", key).expect("the console answers");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("JSON")
}

fn main() {
    let rows: usize = std::env::var("BENCH_IMPORT_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let system = system::System::start().expect("nats-server is installed (make backends)");
    let console = Service::start(
        "console",
        &[
            ("CONSOLE_SHORTENER_URL", system.shortener.url()),
            ("CONSOLE_ANALYTICS_URL", system.analytics.url()),
            ("CONSOLE_ANALYTICS_API_KEY", system.key.clone()),
        ],
        system.dir.path(),
    )
    .expect("the console starts");
    let port = console.port();
    let pid = console.pid().expect("the console runs");
    let session = console_http::sign_in(port, &system.key);
    // Every row with an alias, a title and tags: the preview checks each
    // alias at the shortener, the worst case.
    let mut csv = String::from("url,alias,title,tags\n");
    for n in 0..rows {
        csv.push_str(&format!(
            "https://example.com/articles/{n}?ref=import,imported-{n},Article number {n},import bench\n"
        ));
    }
    let before = memory_mb(pid, "VmRSS");
    let started = Instant::now();
    let (preview, result) = console_http::import_csv(port, &session, &csv);
    let total = started.elapsed().as_secs_f64();
    assert_eq!(
        console_http::text_by_id(&preview.body, "rows-valid"),
        rows.to_string()
    );
    assert_eq!(
        console_http::text_by_id(&result.body, "created"),
        rows.to_string()
    );
    let peak = memory_mb(pid, "VmHWM");
    assert_eq!(
        system.follow(&format!("imported-{}", rows - 1), "").status,
        302
    );

    // The consistency monitor over every imported link.
    let imported = Instant::now();
    let settled = loop {
        let report = consistency(port, &system.key);
        if report["missing"] == 0 && report["stale"] == 0 && report["orphaned"] == 0 {
            break report;
        }
        assert!(
            imported.elapsed() < Duration::from_secs(120),
            "analytics did not catch up: {report}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let converged = imported.elapsed().as_secs_f64();
    assert_eq!(settled["links_checked"], rows);
    let mut durations: Vec<u64> = (0..5)
        .map(|_| {
            consistency(port, &system.key)["duration_ms"]
                .as_u64()
                .unwrap()
        })
        .collect();
    durations.sort_unstable();
    let check_ms = durations[durations.len() / 2];
    let monitor_peak = memory_mb(pid, "VmHWM");
    println!(
        "import of {rows} rows ({:.1} MB of CSV): upload, preview and import {total:.1} s; \
         console memory {before:.0} MB before, peak {peak:.0} MB",
        csv.len() as f64 / 1e6
    );
    println!(
        "consistency monitor over {rows} links: every copy in analytics {converged:.1} s after \
         the import; one comparison {check_ms} ms (median of 5); console peak {monitor_peak:.0} MB"
    );
    println!(
        "{{\"bench\":\"import\",\"rows\":{rows},\"seconds\":{total:.2},\"console_peak_mb\":{peak:.0},\
         \"consistency_converged_s\":{converged:.2},\"consistency_check_ms\":{check_ms},\
         \"console_peak_after_monitor_mb\":{monitor_peak:.0}}}"
    );
}
