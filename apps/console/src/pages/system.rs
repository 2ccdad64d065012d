//! System: is each service ready, which version runs, and how the click
//! pipeline is doing, read from their `/health`, `/ready` and `/metrics`
//! (which answer without a key).

use actix_web::HttpResponse;
use maud::{Markup, html};

use super::{Nav, PageError, SignedIn, State, render};
use crate::charts::count;
use crate::consistency::{MonitorError, Report};
use crate::session::Role;
use crate::upstream::{Probe, metric, metric_family, segment};

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

/// The codes of one kind of finding; live links link to their page.
fn codes(id: &str, codes: &[String], linked: bool, total: u64) -> Markup {
    html! {
        @if !codes.is_empty() {
            ul.codes id=(id) {
                @for code in codes {
                    li {
                        @if linked { a href={ "/links/" (segment(code)) } { code { (code) } } }
                        @else { code { (code) } }
                    }
                }
            }
            @if total > codes.len() as u64 {
                p.muted { "and " (count(total - codes.len() as u64)) " more" }
            }
        }
    }
}

fn consistency_card(report: &Result<std::sync::Arc<Report>, MonitorError>) -> Markup {
    html! {
        section.card #consistency {
            h2 {
                "Consistency of analytics' copies "
                @match report {
                    Ok(r) if r.missing + r.stale + r.orphaned == 0 => span.status.ready { "in step" },
                    Ok(_) => span.status.down { "behind" },
                    Err(_) => span.status.down { "unknown" },
                }
            }
            @match report {
                Ok(r) => {
                    p.muted {
                        "Every link at the shortener compared with its copy in analytics at "
                        (r.checked_at) ", in " (r.duration_ms) " ms."
                        @if !r.analytics_reachable {
                            " Analytics did not answer: compared with its copies as of " (r.copies_as_of) "."
                        }
                    }
                    table { tbody {
                        (row("Links compared", "consistency-checked", Some(r.links_checked as f64)))
                        (row("Copies missing", "consistency-missing", Some(r.missing as f64)))
                        (row("Copies stale (target, expiry or deletion differs)", "consistency-stale", Some(r.stale as f64)))
                        (row("Copies left after a deletion", "consistency-orphaned", Some(r.orphaned as f64)))
                        tr {
                            th scope="row" { "Oldest change not yet in analytics, seconds" }
                            td.num #consistency-lag { (format!("{:.1}", r.lag_seconds)) }
                        }
                    } }
                    @if r.missing > 0 { h3 { "Missing" } (codes("missing-codes", &r.missing_codes, true, r.missing)) }
                    @if r.stale > 0 { h3 { "Stale" } (codes("stale-codes", &r.stale_codes, true, r.stale)) }
                    @if r.orphaned > 0 { h3 { "Left after a deletion" } (codes("orphaned-codes", &r.orphaned_codes, false, r.orphaned)) }
                    p.muted { "Also as JSON: GET /api/v1/consistency with an admin key in X-Api-Key." }
                }
                Err(error) => p.error role="alert" { "The comparison could not run: " (error) }
            }
        }
    }
}

pub async fn show(
    state: State,
    SignedIn { session, client }: SignedIn,
) -> Result<HttpResponse, PageError> {
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
    let consistency = match session.data.role {
        Role::Admin => Some(
            state
                .monitor
                .report(&state.upstream, &session.data.key, &client)
                .await,
        ),
        Role::Author => None,
    };
    let body = html! {
        h1 { "System" }
        p.muted { "Read from each service's /health, /ready and /metrics just now." }
        div.grid {
            (service_card("Shortener", "shortener", &shortener, shortener_rows))
            (service_card("Analytics", "analytics", &analytics, analytics_rows))
        }
        @match &consistency {
            Some(report) => (consistency_card(report)),
            None => p.muted { "Admins see here how far analytics' copies of the links are behind the shortener." },
        }
        p.muted { "Console version " (env!("CARGO_PKG_VERSION")) "." }
    };
    Ok(render(Some(&session), "System", Nav::System, body))
}
