//! The alert rules (`infra/prometheus/alerts.yml`) read only metrics the
//! services really expose: every `shortener_*` and `analytics_*` name in a
//! rule is in the running services' `/metrics`, before anything has
//! happened to them (so a renamed metric, or a series that only appears
//! after its first event, breaks the build, not the alert).

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

/// Every `shortener_*` / `analytics_*` identifier in the rules' expressions.
fn names_in_rules() -> BTreeSet<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/prometheus/alerts.yml");
    let text = std::fs::read_to_string(path).expect("infra/prometheus/alerts.yml");
    let rules: serde_norway::Value = serde_norway::from_str(&text).expect("YAML");
    let mut names = BTreeSet::new();
    for group in rules["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            let expr = rule["expr"].as_str().expect("an expression");
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if word.starts_with("shortener_") || word.starts_with("analytics_") {
                    names.insert(word.to_owned());
                }
            }
        }
    }
    names
}

#[test]
fn every_metric_an_alert_reads_is_exposed_from_the_start() {
    let Some(system) = System::start() else {
        return;
    };
    let names = names_in_rules();
    assert!(names.len() >= 8, "the rules name {names:?}");
    // Stream sizes are reported once analytics has looked (every 2 s).
    let exposed = system.eventually("analytics reports its streams' sizes", || {
        let analytics = system.analytics_get("/metrics").body;
        analytics
            .contains("analytics_stream_max_bytes{stream=\"SHORTENER\"}")
            .then_some(analytics)
    });
    let mut exposed = families(&exposed);
    exposed.extend(families(&system.shortener_get("/metrics").body));
    let missing: Vec<&String> = names
        .iter()
        .filter(|name| !exposed.contains(family_of(name)))
        .collect();
    assert!(
        missing.is_empty(),
        "alert rules read metrics the services do not expose: {missing:?}"
    );
}
