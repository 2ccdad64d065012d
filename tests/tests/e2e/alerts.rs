//! The alert rules (`infra/prometheus/alerts.yml`) and the Grafana
//! dashboards (`infra/grafana/dashboards`) read only metrics the services
//! really expose: every `shortener_*`, `analytics_*` and `console_*` name in
//! a rule or a panel's query is in the running services' `/metrics`, before anything
//! has happened to them (so a renamed metric, or a series that only appears
//! after its first event, breaks the build, not the alert or the chart).

use std::collections::BTreeSet;
use std::path::Path;

use crate::system::System;

/// The metric families a `/metrics` text declares (`# TYPE name kind`).
fn families(metrics: &str) -> BTreeSet<String> {
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// The family a name in a query belongs to (`x_total` of counter `x`,
/// `x_bucket` of histogram `x`, ...).
fn family_of(name: &str) -> &str {
    ["_total", "_bucket", "_count", "_sum"]
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix))
        .unwrap_or(name)
}

fn infra() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra")
}

/// Every `shortener_*` / `analytics_*` / `console_*` identifier in a query.
fn names_in(expr: &str, names: &mut BTreeSet<String>) {
    for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if ["shortener_", "analytics_", "console_"]
            .iter()
            .any(|prefix| word.starts_with(prefix))
        {
            names.insert(word.to_owned());
        }
    }
}

/// The metric names the alert rules' expressions read.
fn names_in_rules() -> BTreeSet<String> {
    let text = std::fs::read_to_string(infra().join("prometheus/alerts.yml"))
        .expect("infra/prometheus/alerts.yml");
    let rules: serde_norway::Value = serde_norway::from_str(&text).expect("YAML");
    let mut names = BTreeSet::new();
    for group in rules["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            names_in(rule["expr"].as_str().expect("an expression"), &mut names);
        }
    }
    names
}

/// The metric names each dashboard's panels query, by dashboard file.
fn names_in_dashboards() -> Vec<(String, BTreeSet<String>)> {
    let dir = infra().join("grafana/dashboards");
    let mut found = Vec::new();
    let mut uids = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).expect("infra/grafana/dashboards") {
        let path = entry.expect("an entry").path();
        let text = std::fs::read_to_string(&path).expect("a dashboard");
        let board: serde_json::Value = serde_json::from_str(&text).expect("dashboard JSON");
        let file = path.file_name().unwrap().to_string_lossy().to_string();
        assert!(
            uids.insert(board["uid"].as_str().expect("a uid").to_owned()),
            "{file}: a uid another dashboard has"
        );
        let mut names = BTreeSet::new();
        for panel in board["panels"].as_array().expect("panels") {
            assert_eq!(
                panel["datasource"]["uid"], "prometheus",
                "{file}: panel {} reads another data source",
                panel["title"]
            );
            for target in panel["targets"].as_array().expect("targets") {
                names_in(target["expr"].as_str().expect("a query"), &mut names);
            }
        }
        assert!(!names.is_empty(), "{file} queries no metric");
        found.push((file, names));
    }
    assert!(found.len() >= 4, "redirects, pipeline, analytics, stores");
    found
}

#[test]
fn every_metric_an_alert_or_a_dashboard_reads_is_exposed_from_the_start() {
    let Some(system) = System::start() else {
        return;
    };
    let names = names_in_rules();
    assert!(names.len() >= 8, "the rules name {names:?}");
    let dashboards = names_in_dashboards();
    // Stream sizes are reported once analytics has looked (every 2 s).
    let exposed = system.eventually("analytics reports its streams' sizes", || {
        let analytics = system.analytics_get("/metrics").body;
        analytics
            .contains("analytics_stream_max_bytes{stream=\"SHORTENER\"}")
            .then_some(analytics)
    });
    let mut exposed = families(&exposed);
    exposed.extend(families(&system.shortener_get("/metrics").body));
    let console = system.console();
    let (status, console_metrics) =
        system_tests::process::http_get(console.port(), "/metrics").expect("the console answers");
    assert_eq!(status, 200, "{console_metrics}");
    exposed.extend(families(&console_metrics));
    let readers = std::iter::once(("the alert rules".to_owned(), names)).chain(
        dashboards
            .into_iter()
            .map(|(file, names)| (format!("dashboard {file}"), names)),
    );
    for (reader, names) in readers {
        let missing: Vec<&String> = names
            .iter()
            .filter(|name| !exposed.contains(family_of(name)))
            .collect();
        assert!(
            missing.is_empty(),
            "{reader} read metrics the services do not expose: {missing:?}"
        );
    }
}

/// `*_ready` is what `/ready` would answer, at each scrape: the
/// `ServiceNotReady` alert reads it. Without NATS, analytics is not ready
/// (it can consume nothing) while the shortener still is (redirects and
/// links go on; clicks and events wait); with NATS back, both are.
#[test]
fn the_ready_gauges_follow_what_ready_answers() {
    let Some(mut system) = System::start() else {
        return;
    };
    let ready = |system: &System, series: &str| {
        let body = if series.starts_with("shortener") {
            system.shortener_get("/metrics").body
        } else {
            system.analytics_get("/metrics").body
        };
        body.lines()
            .find_map(|line| line.strip_prefix(&format!("{series} ")))
            .and_then(|value| value.trim().parse::<f64>().ok())
    };
    assert_eq!(ready(&system, "shortener_ready"), Some(1.0));
    assert_eq!(ready(&system, "analytics_ready"), Some(1.0));
    assert_eq!(system.analytics_get("/ready").status, 200);

    system.nats.stop();
    system.eventually("analytics not ready without NATS", || {
        (ready(&system, "analytics_ready") == Some(0.0)).then_some(())
    });
    assert_eq!(system.analytics_get("/ready").status, 503);
    assert_eq!(ready(&system, "shortener_ready"), Some(1.0));

    system.nats.restart().expect("nats-server restarts");
    system.eventually("analytics ready again", || {
        (ready(&system, "analytics_ready") == Some(1.0)).then_some(())
    });
}
