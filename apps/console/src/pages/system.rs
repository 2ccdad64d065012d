//! System: is each service ready, which version runs, and how the click
//! pipeline is doing, read from each service's `GET /api/v1/status` (the
//! shortener's with the person's key, analytics' with the console's), and
//! how far analytics' copies are behind (admins only).

use actix_web::HttpResponse;
use maud::{Markup, html};

use super::{Nav, PageError, SignedIn, State, render};
use crate::charts::count;
use crate::consistency::{MonitorError, Report};
use crate::session::Role;
use crate::session::Session;
use crate::upstream::{AnalyticsStatus, CallError, ShortenerStatus, segment};

/// What the System page shows: each service's status (or why it could not
/// be read), and the consistency report when an admin looks.
pub struct SystemView {
    pub shortener: Result<ShortenerStatus, String>,
    pub analytics: Result<AnalyticsStatus, String>,
    pub consistency: Option<Result<std::sync::Arc<Report>, MonitorError>>,
}

/// A service's card: its readiness, its version, and `rows` of figures.
fn service_card(
    name: &str,
    id: &str,
    status: Result<(bool, &str, &[String]), &str>,
    rows: Markup,
) -> Markup {
    html! {
        section.card id=(id) {
            @match status {
                Ok((ready, version, not_ready)) => {
                    h2 {
                        (name) " "
                        @if ready { span.status.ready { "ready" } } @else { span.status.down { "not ready" } }
                    }
                    p.muted { "Version " (version) }
                    @if !not_ready.is_empty() {
                        p.error role="alert" { "Not ready: " (not_ready.join("; ")) }
                    }
                }
                Err(error) => {
                    h2 { (name) " " span.status.down { "unreachable" } }
                    p.error role="alert" { (error) }
                }
            }
            table { tbody { (rows) } }
        }
    }
}

fn row(label: &str, id: &str, value: Option<u64>) -> Markup {
    html! {
        tr {
            th scope="row" { (label) }
            td.num id=(id) {
                @match value {
                    Some(v) => (count(v)),
                    None => "—",
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
                        (row("Links compared", "consistency-checked", Some(r.links_checked)))
                        (row("Copies missing", "consistency-missing", Some(r.missing)))
                        (row("Copies stale (target, expiry or deletion differs)", "consistency-stale", Some(r.stale)))
                        (row("Copies left after a deletion", "consistency-orphaned", Some(r.orphaned)))
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

fn shortener_card(status: &Result<ShortenerStatus, String>) -> Markup {
    let s = status.as_ref().ok();
    let rows = html! {
        (row("Click spool depth", "spool-depth", s.and_then(|s| s.click_spool_depth)))
        (row("Oldest spooled click, seconds", "spool-age", s.and_then(|s| s.click_spool_oldest_age_seconds).map(|age| age as u64)))
        (row("Outbox depth (link events to publish)", "outbox-depth", s.and_then(|s| s.outbox_depth)))
        (row("Clicks dropped since start", "clicks-dropped", s.map(|s| s.clicks_dropped.values().sum())))
        (row("NATS connected (1 = yes)", "shortener-nats", s.map(|s| u64::from(s.nats_connected))))
    };
    let summary = status
        .as_ref()
        .map(|s| (s.ready, s.version.as_str(), s.not_ready.as_slice()))
        .map_err(String::as_str);
    service_card("Shortener", "shortener", summary, rows)
}

fn analytics_card(status: &Result<AnalyticsStatus, String>) -> Markup {
    let consumers = status
        .as_ref()
        .map(|s| s.consumers.as_slice())
        .unwrap_or_default();
    let rows = html! {
        @for consumer in consumers {
            (row(&format!("Consumer lag, {}", consumer.subject), "consumer-lag", Some(consumer.lag)))
        }
        @if consumers.is_empty() { (row("Consumer lag", "consumer-lag", None)) }
        (row("Dead letters since start", "dead-letters", status.as_ref().ok().map(|s| s.dead_letters)))
    };
    let summary = status
        .as_ref()
        .map(|s| (s.ready, s.version.as_str(), s.not_ready.as_slice()))
        .map_err(String::as_str);
    service_card("Analytics", "analytics", summary, rows)
}

/// The page, from what was read.
pub fn system_page(session: &Session, view: &SystemView) -> HttpResponse {
    let body = html! {
        h1 { "System" }
        p.muted { "Read from each service's /api/v1/status just now." }
        div.grid {
            (shortener_card(&view.shortener))
            (analytics_card(&view.analytics))
        }
        @match &view.consistency {
            Some(report) => (consistency_card(report)),
            None => p.muted { "Admins see here how far analytics' copies of the links are behind the shortener." },
        }
        p.muted { "Console version " (env!("CARGO_PKG_VERSION")) "." }
    };
    render(Some(session), "System", Nav::System, body)
}

pub async fn show(
    state: State,
    SignedIn { session, client }: SignedIn,
) -> Result<HttpResponse, PageError> {
    let (shortener, analytics) = tokio::join!(
        state.upstream.shortener_status(&session.data.key, &client),
        state.upstream.analytics_status()
    );
    let consistency = match session.data.role {
        Role::Admin => Some(
            state
                .monitor
                .report(&state.upstream, &session.data.key, &client)
                .await,
        ),
        Role::Author => None,
    };
    // The person's key stopped working: to the login page, as elsewhere.
    if let Err(CallError::Problem(problem)) = &shortener {
        if problem.status == 401 {
            return Err(PageError::SignIn);
        }
    }
    let view = SystemView {
        shortener: shortener.map_err(|e| e.to_string()),
        analytics: analytics.map_err(|e| e.to_string()),
        consistency,
    };
    Ok(system_page(&session, &view))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::SessionData;
    use crate::upstream::ConsumerStatus;

    fn page(view: &SystemView) -> String {
        let session = Session {
            id: "s".into(),
            data: std::sync::Arc::new(SessionData {
                key: "k".into(),
                role: Role::Author,
            }),
            csrf: "c".into(),
        };
        let response = system_page(&session, view);
        let body = actix_web::body::to_bytes(response.into_body());
        let bytes = futures::executor::block_on(body).unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[test]
    fn the_page_shows_each_services_figures_or_why_it_has_none() {
        let shortener = ShortenerStatus {
            version: "9.9.9".into(),
            ready: true,
            not_ready: Vec::new(),
            nats_connected: false,
            outbox_depth: Some(3),
            click_spool_depth: Some(12),
            click_spool_oldest_age_seconds: Some(4.5),
            clicks_queued: 0,
            clicks_dropped: [("queue_full".to_owned(), 2), ("invalid".to_owned(), 1)].into(),
        };
        let html = page(&SystemView {
            shortener: Ok(shortener),
            analytics: Err("analytics is unreachable".into()),
            consistency: None,
        });
        assert!(html.contains("Version 9.9.9"), "{html}");
        assert!(html.contains(r#"id="spool-depth">12<"#), "{html}");
        assert!(html.contains(r#"id="clicks-dropped">3<"#), "{html}");
        assert!(html.contains(r#"id="shortener-nats">0<"#), "{html}");
        assert!(html.contains("unreachable"), "{html}");
        assert!(html.contains(r#"id="dead-letters">—<"#), "{html}");

        let analytics = AnalyticsStatus {
            version: "9.9.9".into(),
            ready: false,
            not_ready: vec!["nats: disconnected".into()],
            store: "sqlite".into(),
            consumers: vec![ConsumerStatus {
                subject: "shortener.url.clicked".into(),
                up: true,
                lag: 42,
                answered_seconds_ago: 0.3,
            }],
            dead_letters: 7,
        };
        let html = page(&SystemView {
            shortener: Err("down".into()),
            analytics: Ok(analytics),
            consistency: None,
        });
        assert!(html.contains("Not ready: nats: disconnected"), "{html}");
        assert!(
            html.contains("Consumer lag, shortener.url.clicked"),
            "{html}"
        );
        assert!(html.contains(r#"id="consumer-lag">42<"#), "{html}");
        assert!(html.contains(r#"id="dead-letters">7<"#), "{html}");
    }
}
