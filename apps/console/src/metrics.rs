//! The console's `/metrics`: what the consistency monitor found on its own
//! runs (`CONSOLE_MONITOR_API_KEY`), for the `ConsistencyCopiesMissing`
//! alert and the analytics dashboard. Every series exists from the start.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::consistency::{Monitor, Report};
use crate::upstream::Upstream;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: &'static str,
}

/// The monitor's findings as gauges.
pub struct MonitorMetrics {
    registry: Registry,
    enabled: Gauge,
    links_checked: Gauge,
    missing: Gauge,
    stale: Gauge,
    orphaned: Gauge,
    lag_seconds: Gauge<f64, AtomicU64>,
    analytics_reachable: Gauge,
    last_success: Gauge<f64, AtomicU64>,
    runs: Family<Outcome, Counter>,
}

impl MonitorMetrics {
    pub fn new(enabled: bool) -> Self {
        let mut registry = Registry::with_prefix("console_consistency");
        let metrics = Self {
            registry: Registry::default(),
            enabled: Gauge::default(),
            links_checked: Gauge::default(),
            missing: Gauge::default(),
            stale: Gauge::default(),
            orphaned: Gauge::default(),
            lag_seconds: Gauge::default(),
            analytics_reachable: Gauge::default(),
            last_success: Gauge::default(),
            runs: Family::default(),
        };
        metrics.enabled.set(i64::from(enabled));
        for outcome in ["ok", "failed"] {
            let _ = metrics.runs.get_or_create(&Outcome { outcome });
        }
        registry.register(
            "monitor_enabled",
            "1 when the monitor runs on its own (CONSOLE_MONITOR_API_KEY is set)",
            metrics.enabled.clone(),
        );
        registry.register(
            "links_checked",
            "The shortener's live links compared at the last run",
            metrics.links_checked.clone(),
        );
        registry.register(
            "missing_copies",
            "Live links analytics has no copy of, at the last run",
            metrics.missing.clone(),
        );
        registry.register(
            "stale_copies",
            "Copies whose target, expiry or deletion differs from the shortener's, at the last run",
            metrics.stale.clone(),
        );
        registry.register(
            "orphaned_copies",
            "Copies of deleted links still live in analytics, at the last run",
            metrics.orphaned.clone(),
        );
        registry.register(
            "lag_seconds",
            "Age of the oldest change analytics had not seen, at the last run",
            metrics.lag_seconds.clone(),
        );
        registry.register(
            "analytics_reachable",
            "1 when analytics answered the last run",
            metrics.analytics_reachable.clone(),
        );
        registry.register(
            "last_success_timestamp_seconds",
            "When the last run that finished started (Unix time)",
            metrics.last_success.clone(),
        );
        registry.register(
            "runs",
            "Runs of the monitor on its own, by outcome",
            metrics.runs.clone(),
        );
        Self {
            registry,
            ..metrics
        }
    }

    fn observe(&self, report: &Report) {
        let gauge = |count: u64| i64::try_from(count).unwrap_or(i64::MAX);
        self.links_checked.set(gauge(report.links_checked));
        self.missing.set(gauge(report.missing));
        self.stale.set(gauge(report.stale));
        self.orphaned.set(gauge(report.orphaned));
        self.lag_seconds.set(report.lag_seconds);
        self.analytics_reachable
            .set(i64::from(report.analytics_reachable));
        let started = chrono::DateTime::parse_from_rfc3339(&report.checked_at)
            .map_or(0.0, |at| at.timestamp_millis() as f64 / 1000.0);
        self.last_success.set(started);
        self.runs.get_or_create(&Outcome { outcome: "ok" }).inc();
    }

    fn failed(&self) {
        self.runs
            .get_or_create(&Outcome { outcome: "failed" })
            .inc();
    }

    /// The Prometheus text format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}

/// Runs the monitor every `interval` with `key` (a shortener admin key),
/// forever, keeping the findings in `metrics`. A failed run is logged and
/// counted, and the next one comes at the next interval.
pub async fn run_monitor(
    monitor: &Monitor,
    upstream: &Upstream,
    metrics: &MonitorMetrics,
    key: &str,
    interval: Duration,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        // The console itself is the client the shortener sees.
        match monitor.report(upstream, key, "127.0.0.1").await {
            Ok(report) => {
                metrics.observe(&report);
                if report.missing + report.stale + report.orphaned > 0 {
                    tracing::warn!(
                        missing = report.missing,
                        stale = report.stale,
                        orphaned = report.orphaned,
                        lag_seconds = report.lag_seconds,
                        "analytics' copies of links are behind the shortener"
                    );
                }
            }
            Err(error) => {
                metrics.failed();
                tracing::warn!(%error, "the consistency monitor's run failed");
            }
        }
    }
}
