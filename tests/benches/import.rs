//! `make bench-import`: a 10,000-row CSV through the console's import, as
//! a person does it (upload and preview, then import), against the real
//! services on their embedded stores. Prints the time of each step and the
//! console's peak memory; the last line is JSON.
//!
//! The import's target: 10,000 rows in under 30 s on this machine, with
//! the console's memory bounded (the file is never held whole).

#![allow(dead_code)] // the shared test modules have more than this needs

#[path = "../tests/e2e/console_http.rs"]
mod console_http;
#[path = "../tests/e2e/system.rs"]
mod system;

use std::time::Instant;

use system_tests::process::memory_mb;
use system_tests::Service;

const ROWS: usize = 10_000;

fn main() {
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
    for n in 0..ROWS {
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
        ROWS.to_string()
    );
    assert_eq!(
        console_http::text_by_id(&result.body, "created"),
        ROWS.to_string()
    );
    let peak = memory_mb(pid, "VmHWM");
    assert_eq!(
        system.follow(&format!("imported-{}", ROWS - 1), "").status,
        302
    );
    println!(
        "import of {ROWS} rows ({:.1} MB of CSV): upload, preview and import {total:.1} s; \
         console memory {before:.0} MB before, peak {peak:.0} MB",
        csv.len() as f64 / 1e6
    );
    println!(
        "{{\"bench\":\"import\",\"rows\":{ROWS},\"seconds\":{total:.2},\"console_peak_mb\":{peak:.0}}}"
    );
}
