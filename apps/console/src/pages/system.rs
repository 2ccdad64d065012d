//! System: is each service ready, which version runs, and how the click
//! pipeline is doing, read from their `/health`, `/ready` and `/metrics`
//! (which answer without a key).

use actix_web::{HttpRequest, HttpResponse};
use maud::{html, Markup};

use super::{render, signed_in, Nav, PageError, State};
use crate::charts::count;
use crate::upstream::{metric, metric_family, Probe};

fn service_card(name: &str, id: &str, probe: &Probe, rows: Markup) -> Markup {
    html! {
        section.card id=(id) {
            h2 {
                (name) " "
                @if probe.ready { span.status.ready { "ready" } } @else { span.status.down { "not ready" } }
            }
            p.muted { "Version " (probe.version.as_deref().unwrap_or("unknown")) }
            details {
                summary { "Readiness answer" }
                pre { (probe.readiness) }
            }
            table { tbody { (rows) } }
        }
    }
}

fn row(label: &str, id: &str, value: Option<f64>) -> Markup {
    html! {
        tr {
            th scope="row" { (label) }
            td.num id=(id) {
                @match value {
                    Some(v) if v >= 0.0 => (count(v as u64)),
                    _ => "—",
                }
            }
        }
    }
}

pub async fn show(state: State, request: HttpRequest) -> Result<HttpResponse, PageError> {
    let session = signed_in(&state, &request)?;
    let (shortener, analytics) = tokio::join!(
        state.upstream.probe("shortener"),
        state.upstream.probe("analytics")
    );
    let m = &shortener.metrics;
    let dropped: f64 = metric_family(m, "shortener_clicks_dropped_total")
        .iter()
        .map(|(_, v)| v)
        .sum();
    let shortener_rows = html! {
        (row("Click spool depth", "spool-depth", metric(m, "shortener_click_spool_depth")))
        (row("Oldest spooled click, seconds", "spool-age", metric(m, "shortener_click_spool_oldest_age_seconds")))
        (row("Outbox depth (link events to publish)", "outbox-depth", metric(m, "shortener_outbox_depth")))
        (row("Clicks dropped since start", "clicks-dropped", (!m.is_empty()).then_some(dropped)))
        (row("NATS connected (1 = yes)", "shortener-nats", metric(m, "shortener_nats_connected")))
    };
    let lags = metric_family(&analytics.metrics, "analytics_consumer_lag_messages");
    let dead: f64 = metric_family(&analytics.metrics, "analytics_dead_letters_total")
        .iter()
        .map(|(_, v)| v)
        .sum();
    let analytics_rows = html! {
        @for (labels, lag) in &lags {
            (row(&format!("Consumer lag, {}", labels.trim_start_matches("subject=").trim_matches('"')), "consumer-lag", Some(*lag)))
        }
        @if lags.is_empty() { (row("Consumer lag", "consumer-lag", None)) }
        (row("Dead letters since start", "dead-letters", (!analytics.metrics.is_empty()).then_some(dead)))
    };
    let body = html! {
        h1 { "System" }
        p.muted { "Read from each service's /health, /ready and /metrics just now." }
        div.grid {
            (service_card("Shortener", "shortener", &shortener, shortener_rows))
            (service_card("Analytics", "analytics", &analytics, analytics_rows))
        }
        p.muted { "Console version " (env!("CARGO_PKG_VERSION")) "." }
    };
    Ok(render(Some(&session), "System", Nav::System, body))
}
