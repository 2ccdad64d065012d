//! The consistency monitor of the console, against the real services: it
//! finds exactly the links analytics has not caught up with, measures how
//! far behind it is, and sees it converge again.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::console::ProxiedConsole;
use crate::console_http::{console_call, sign_in, text_by_id};
use crate::system::{CONVERGE, System};

/// How soon after analytics returns the monitor must find it in step.
const IN_STEP_WITHIN: Duration = Duration::from_secs(10);

/// `GET /api/v1/consistency` on the console with `headers`.
fn consistency_with(port: u16, headers: &str) -> (u16, Option<String>, Value) {
    let answer = console_call(port, "GET", "/api/v1/consistency", "", headers, "");
    let content_type = answer.header("content-type").map(str::to_owned);
    let body = serde_json::from_str(&answer.body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", answer.body));
    (answer.status, content_type, body)
}

/// The monitor's report, with an admin key.
fn report(port: u16, key: &str) -> Value {
    let (status, _, body) = consistency_with(port, &format!("X-Api-Key: {key}\r\n"));
    assert_eq!(status, 200, "{body}");
    body
}

/// Polls the monitor until it finds nothing; the report and how long it took.
fn in_step(port: u16, key: &str, within: Duration) -> (Value, Duration) {
    let started = Instant::now();
    loop {
        let report = report(port, key);
        if report["missing"] == 0 && report["stale"] == 0 && report["orphaned"] == 0 {
            return (report, started.elapsed());
        }
        assert!(
            started.elapsed() < within,
            "not in step within {within:?}: {report}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn codes(report: &Value, field: &str) -> Vec<String> {
    let mut codes: Vec<String> = report[field]
        .as_array()
        .unwrap_or_else(|| panic!("{field} in {report}"))
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    codes.sort();
    codes
}

fn sorted(codes: &[&String]) -> Vec<String> {
    let mut codes: Vec<String> = codes.iter().map(|c| (*c).clone()).collect();
    codes.sort();
    codes
}

fn lag(report: &Value) -> f64 {
    report["lag_seconds"].as_f64().expect("lag_seconds")
}

/// Checks a report names exactly these links.
fn assert_reports(report: &Value, missing: &[&String], stale: &[&String], orphaned: &[&String]) {
    for (field, expected) in [
        ("missing", missing),
        ("stale", stale),
        ("orphaned", orphaned),
    ] {
        assert_eq!(
            codes(report, &format!("{field}_codes")),
            sorted(expected),
            "{field}: {report}"
        );
        assert_eq!(report[field], expected.len(), "{field}: {report}");
    }
}

#[test]
fn the_consistency_monitor_finds_what_analytics_has_not_seen() {
    let Some(mut system) = System::start() else {
        return;
    };
    let proxied = ProxiedConsole::start(&system);
    let port = proxied.console.port();

    // Only an admin key: the monitor compares every link.
    let (status, content_type, body) = consistency_with(port, "");
    assert_eq!(status, 401, "{body}");
    assert_eq!(content_type.as_deref(), Some("application/problem+json"));
    assert_eq!(body["status"], 401);
    let (status, _, _) = consistency_with(port, "X-Api-Key: not-a-key\r\n");
    assert_eq!(status, 401);
    let author = system.new_key("monitor-author", "author");
    let (status, _, body) = consistency_with(port, &format!("X-Api-Key: {author}\r\n"));
    assert_eq!(status, 403, "{body}");
    let (status, _, _) =
        consistency_with(port, &format!("Authorization: Bearer {}\r\n", system.key));
    assert_eq!(status, 200);

    let code = |link: Value| link["code"].as_str().unwrap().to_owned();
    let links: Vec<String> = (0..8)
        .map(|n| code(system.create(&format!("https://example.com/page-{n}"))))
        .collect();

    // Settled: nothing to report.
    let (settled, _) = in_step(port, &system.key, CONVERGE);
    assert_eq!(settled["links_checked"], 8, "{settled}");
    assert_eq!(settled["lag_seconds"], 0.0);
    assert_eq!(settled["analytics_reachable"], true);

    // Analytics stops; the shortener goes on.
    system.analytics.stop(Duration::from_secs(10));
    let created: Vec<String> = (0..3)
        .map(|n| code(system.create(&format!("https://example.com/new-{n}"))))
        .collect();
    assert_eq!(
        system.patch(&links[0], &json!({ "url": "https://example.com/moved" })),
        200
    );
    assert_eq!(
        system.patch(&links[1], &json!({ "expires_at": "2031-01-01T00:00:00Z" })),
        200
    );
    // A title is the shortener's own: analytics' copy has nothing to miss.
    assert_eq!(system.patch(&links[2], &json!({ "title": "Renamed" })), 200);
    assert_eq!(system.delete(&links[3]), 204);
    assert_eq!(system.delete(&links[4]), 204);

    let first = report(port, &system.key);
    assert_eq!(first["analytics_reachable"], false, "{first}");
    assert_eq!(first["links_checked"], 9, "{first}");
    assert_reports(
        &first,
        &[&created[0], &created[1], &created[2]],
        &[&links[0], &links[1]],
        &[&links[3], &links[4]],
    );
    assert!(lag(&first) > 0.0, "{first}");
    // The System page shows the same.
    let session = sign_in(port, &system.key);
    let page = console_call(port, "GET", "/system", &session, "", "");
    assert_eq!(page.status, 200);
    assert_eq!(text_by_id(&page.body, "consistency-missing"), "3");
    assert_eq!(text_by_id(&page.body, "consistency-stale"), "2");
    assert_eq!(text_by_id(&page.body, "consistency-orphaned"), "2");
    // The lag grows while analytics is away.
    std::thread::sleep(Duration::from_millis(2_500));
    let second = report(port, &system.key);
    assert!(lag(&second) >= lag(&first) + 2.0, "{first}\n{second}");
    assert_eq!(second["missing"], 3);

    // Analytics returns: in step within 10 s.
    system.analytics.restart().expect("analytics restarts");
    let (back, took) = in_step(port, &system.key, IN_STEP_WITHIN);
    assert_eq!(back["analytics_reachable"], true, "{back}");
    assert_eq!(back["links_checked"], 9, "{back}");
    assert_eq!(back["lag_seconds"], 0.0);
    eprintln!("in step {took:?} after analytics returned");

    // The broker stops: analytics answers, but hears nothing new. The
    // monitor reads its copies as they are.
    system.nats.stop();
    let unheard = code(system.create("https://example.com/unheard"));
    assert_eq!(
        system.patch(
            &links[5],
            &json!({ "url": "https://example.com/elsewhere" })
        ),
        200
    );
    assert_eq!(system.delete(&links[6]), 204);
    let behind = report(port, &system.key);
    assert_eq!(behind["analytics_reachable"], true, "{behind}");
    assert_reports(&behind, &[&unheard], &[&links[5]], &[&links[6]]);
    assert!(lag(&behind) > 0.0, "{behind}");
    system.nats.restart().expect("nats-server restarts");
    in_step(port, &system.key, CONVERGE);

    // Every answer the console read matched its service's document (the
    // analytics proxy had nothing to reach while analytics was stopped).
    for (name, proxy) in [
        ("shortener", &proxied.shortener),
        ("analytics", &proxied.analytics),
    ] {
        let findings = proxy.findings();
        let broken: Vec<&String> = findings
            .violations
            .iter()
            .filter(|v| !(name == "analytics" && v.starts_with("proxy failure")))
            .collect();
        assert!(broken.is_empty(), "{name}: {broken:?}");
    }
    let checked = proxied.analytics.findings().checked.join("\n");
    assert!(checked.contains("GET /api/v1/links -> 200"), "{checked}");
}

/// With `CONSOLE_MONITOR_API_KEY`, the monitor runs on its own and its
/// findings are on the console's `/metrics`, where the `CopiesMissing`
/// alert reads them: 0 in step, the links made while analytics is away
/// once it is, and 0 again when it is back.
#[test]
fn the_monitor_on_its_own_puts_missing_copies_on_metrics() {
    let Some(mut system) = System::start() else {
        return;
    };
    let console = system.console_with(&[
        ("CONSOLE_MONITOR_API_KEY", system.key.clone()),
        ("CONSOLE_MONITOR_INTERVAL_SECONDS", "5".into()),
    ]);
    let port = console.port();
    let metric = |series: &str| system_tests::process::scrape_metric(port, series);
    assert_eq!(metric("console_consistency_monitor_enabled"), Some(1.0));
    for n in 0..2 {
        system.create(&format!("https://example.com/watched-{n}"));
    }
    let runs = || metric("console_consistency_runs_total{outcome=\"ok\"}").unwrap_or(0.0);
    let wait = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + CONVERGE;
        while !done() {
            assert!(
                Instant::now() < deadline,
                "{what}; /metrics:\n{}",
                system_tests::process::http_get(port, "/metrics").unwrap().1
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    };
    // A run after both links were consumed: nothing missing.
    wait("in step", &|| {
        runs() >= 1.0
            && metric("console_consistency_links_checked") == Some(2.0)
            && metric("console_consistency_missing_copies") == Some(0.0)
            && metric("console_consistency_analytics_reachable") == Some(1.0)
    });

    system.analytics.stop(Duration::from_secs(10));
    for n in 0..3 {
        system.create(&format!("https://example.com/unseen-{n}"));
    }
    wait("three copies missing while analytics is away", &|| {
        metric("console_consistency_missing_copies") == Some(3.0)
            && metric("console_consistency_analytics_reachable") == Some(0.0)
            && metric("console_consistency_lag_seconds").is_some_and(|lag| lag > 0.0)
    });

    system.analytics.restart().expect("analytics restarts");
    wait("in step again", &|| {
        metric("console_consistency_missing_copies") == Some(0.0)
            && metric("console_consistency_lag_seconds") == Some(0.0)
    });
    assert!(
        metric("console_consistency_last_success_timestamp_seconds").unwrap() > 1.7e9,
        "a Unix time"
    );
}
