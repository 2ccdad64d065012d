//! The dashboard: server-rendered HTML with inline SVG, nothing fetched at
//! run time (no scripts, fonts or stylesheets from elsewhere).
//!
//! - `GET /`: the links analytics knows, newest first, a page at a time, each
//!   with its click total.
//! - `GET /links/{code}`: one link: totals, clicks over time (an SVG chart),
//!   top referrers, browsers, OS, devices and countries.
//!
//! Pages read the same store queries as the stats API ([`api::stats`]);
//! `from`, `to` and `bucket` work as there. Bad parameters and unknown links
//! get the same problem+json as the API.

use std::collections::HashMap;

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use maud::{html, Markup, PreEscaped, DOCTYPE};

use crate::api::{self, SeriesPoint, Stats, StatsQuery, Store, TopItem};
use crate::model::Bucket;
use crate::problem::ApiError;
use crate::store::LinkCursor;

/// Links on one page of the index.
const INDEX_LINKS: u32 = 100;
/// Up to this many buckets the chart draws bars; beyond, a line.
const MAX_BARS: usize = 200;
/// Default ranges: links younger than this get hourly buckets.
const HOURLY_UP_TO_AGE: i64 = 2 * 86_400;
const DEFAULT_HOURS: i64 = 48;
const DEFAULT_DAYS: i64 = 30;

const STYLE: &str = r#"
:root { --fg:#1d2433; --muted:#5b6478; --line:#e3e6ee; --accent:#3056d3; --bg:#f7f8fb; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; color:var(--fg); background:var(--bg); }
header { background:#fff; border-bottom:1px solid var(--line); padding:14px 28px; display:flex; gap:18px; align-items:baseline; }
header a.brand { font-weight:700; color:var(--fg); text-decoration:none; }
main { max-width:1080px; margin:0 auto; padding:24px 28px 48px; }
h1 { font-size:22px; margin:0 0 4px; } h2 { font-size:16px; margin:0 0 10px; }
a { color:var(--accent); }
.muted { color:var(--muted); }
.card { background:#fff; border:1px solid var(--line); border-radius:8px; padding:16px 18px; margin:16px 0; }
.kpis { display:grid; grid-template-columns:repeat(4,1fr); gap:12px; }
.kpi { background:#fff; border:1px solid var(--line); border-radius:8px; padding:12px 16px; }
.kpi b { display:block; font-size:26px; }
table { width:100%; border-collapse:collapse; }
th, td { text-align:left; padding:7px 8px; border-bottom:1px solid var(--line); vertical-align:top; }
th { font-size:12px; text-transform:uppercase; letter-spacing:.04em; color:var(--muted); }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
td.target { max-width:480px; overflow-wrap:anywhere; }
.status { font-size:12px; padding:1px 8px; border-radius:10px; background:#e8f5ec; color:#1e6b3a; }
.status.deleted { background:#fdecec; color:#9b1c1c; } .status.expired { background:#fff4e0; color:#8a5300; }
.status.unknown { background:#eef0f5; color:var(--muted); }
.grid { display:grid; grid-template-columns:repeat(auto-fit,minmax(300px,1fr)); gap:16px; }
.top li { list-style:none; margin:0 0 6px; } .top ul { margin:0; padding:0; }
.top .row { display:flex; justify-content:space-between; gap:8px; }
.top .bar { height:6px; background:var(--accent); border-radius:3px; opacity:.75; }
.ranges a { margin-right:12px; }
svg text { font:11px system-ui,sans-serif; fill:var(--muted); }
svg .bar { fill:var(--accent); } svg .line { stroke:var(--accent); stroke-width:1.5; fill:none; }
svg .grid { stroke:var(--line); }
"#;

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .service(crate::problem::resource("/", "GET").route(web::get().to(index)))
        .service(crate::problem::resource("/links/{code}", "GET").route(web::get().to(link_page)));
}

fn page(title: &str, body: Markup) -> HttpResponse {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · link analytics" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    a.brand href="/" { "Link analytics" }
                    span.muted { "built from the shortener's events" }
                }
                main { (body) }
            }
        }
    };
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .body(markup.into_string())
}

fn date_time(t: Option<i64>) -> String {
    t.and_then(|t| DateTime::<Utc>::from_timestamp(t, 0))
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| "—".to_owned())
}

/// Thousands separated by thin spaces: 1 234 567.
fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push('\u{2009}');
        }
        out.push(c);
    }
    out
}

/// The links analytics knows, newest first, one page at a time
/// (`?cursor=` from the page before), each with its click total.
async fn index(store: Store, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    let cursor = api::cursor_param(request.query_string(), LinkCursor::parse)?;
    let links = store.link_page(cursor, INDEX_LINKS).await?;
    let ids: Vec<_> = links.iter().map(|l| l.shortener_url_id).collect();
    let totals: HashMap<_, _> = store.click_totals(&ids).await?.into_iter().collect();
    let links: Vec<_> = links
        .into_iter()
        .map(|l| {
            let clicks = totals.get(&l.shortener_url_id).copied().unwrap_or(0);
            (l, clicks)
        })
        .collect();
    let next = (links.len() as u32 == INDEX_LINKS)
        .then(|| links.last().map(|(l, _)| LinkCursor::after(l)))
        .flatten();
    let now = Utc::now().timestamp();
    let body = html! {
        h1 { "Links" }
        p.muted {
            "Newest first, " (INDEX_LINKS) " to a page. A link appears here once its first event reaches analytics."
        }
        div.card {
            @if links.is_empty() {
                p #no-links { "No links yet. Create one at the shortener and follow it; it shows up here within a second or two." }
            } @else {
                table #links {
                    thead { tr { th { "Code" } th { "Target" } th { "Status" } th { "Created" } th.num { "Clicks" } } }
                    tbody {
                        @for (link, clicks) in &links {
                            tr {
                                td { a href={ "/links/" (link.short_code) } { (link.short_code) } }
                                td.target { (link.target.as_deref().unwrap_or("(creation not seen yet)")) }
                                td { span class={ "status " (link.status(now)) } { (link.status(now)) } }
                                td { (date_time(link.created_at)) }
                                td.num { (count(*clicks)) }
                            }
                        }
                    }
                }
                p.pages {
                    @if cursor.is_some() { a #first-page href="/" { "← Newest" } " " }
                    @if let Some(next) = next { a #next-page href={ "/?cursor=" (next) } { "Older →" } }
                }
            }
        }
    };
    Ok(page("Links", body))
}

/// The page's query: the API's parameters, with defaults that suit a chart.
fn page_query(
    request: &HttpRequest,
    created_at: Option<i64>,
    now: i64,
) -> Result<StatsQuery, ApiError> {
    let mut query = StatsQuery::parse(request.query_string())?;
    let given = |name: &str| {
        url::form_urlencoded::parse(request.query_string().as_bytes()).any(|(k, _)| k == name)
    };
    if !given("bucket") {
        let young = created_at.is_none_or(|c| now - c <= HOURLY_UP_TO_AGE);
        query.bucket = if young { Bucket::Hour } else { Bucket::Day };
    }
    if query.from.is_none() {
        let end = query.to.unwrap_or(now + 1);
        let span = match query.bucket {
            Bucket::Hour => DEFAULT_HOURS * 3_600,
            Bucket::Day => DEFAULT_DAYS * 86_400,
        };
        // The last `span`, ending with the bucket that holds `end`.
        query.from = Some(query.bucket.floor(end - 1) + query.bucket.seconds() - span);
    }
    Ok(query)
}

/// One link's statistics.
async fn link_page(
    store: Store,
    request: HttpRequest,
    code: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let link = api::known_by_code(store.as_ref().as_ref(), &code).await?;
    let now = Utc::now().timestamp();
    let query = page_query(&request, link.created_at, now)?;
    let stats = api::stats(store.as_ref().as_ref(), &link, query, now).await?;
    Ok(page(&format!("/{}", link.short_code), link_body(&stats)))
}

fn link_body(stats: &Stats) -> Markup {
    let link = &stats.link;
    let here = format!("/links/{}", link.short_code);
    let unit = if stats.bucket == "hour" {
        "hour"
    } else {
        "day"
    };
    html! {
        h1 { "/" (link.short_code) " " span class={ "status " (link.status) } { (link.status) } }
        p.muted.target {
            @if let Some(target) = &link.target { "→ " (target) } @else { "The link's creation has not reached analytics yet." }
        }
        p.muted {
            "Created " (link.created_at.as_deref().unwrap_or("—"))
            @if let Some(expires) = &link.expires_at { " · expires " (expires) }
            @if let Some(deleted) = &link.deleted_at { " · deleted " (deleted) }
            " · id " code { (link.shortener_url_id) }
        }
        div.kpis {
            div.kpi #total-clicks { span.muted { "Clicks" } b { (count(stats.total_clicks)) } }
            div.kpi { span.muted { "Unique visitors" } b { (count(stats.unique_visitors)) } }
            div.kpi { span.muted { "Human" } b { (count(stats.human_clicks)) } }
            div.kpi { span.muted { "Bots" } b { (count(stats.bot_clicks)) } }
        }
        div.card {
            h2 { "Clicks per " (unit) }
            p.muted.ranges {
                (stats.from) " to " (stats.to) " · "
                a href={ (here) "?bucket=hour" } { "last 48 hours" }
                a href={ (here) "?bucket=day" } { "last 30 days" }
            }
            (chart(&stats.series))
        }
        div.grid {
            (top_list("Top referrers", "top-referrers", &stats.top_referrers))
            (top_list("Browsers", "browsers", &stats.browsers))
            (top_list("Devices", "devices", &stats.devices))
            (top_list("Operating systems", "os", &stats.os))
            (top_list("Countries", "countries", &stats.countries))
        }
        p.muted { "The same numbers as JSON: " a href={ "/api/v1/links/" (link.short_code) "/stats" } { "/api/v1/links/" (link.short_code) "/stats" } }
    }
}

fn top_list(title: &str, id: &str, items: &[TopItem]) -> Markup {
    let most = items.iter().map(|i| i.clicks).max().unwrap_or(1).max(1);
    html! {
        div.card.top id=(id) {
            h2 { (title) }
            @if items.is_empty() {
                p.muted { "None in this range." }
            } @else {
                ul {
                    @for item in items {
                        li {
                            div.row { span { (item.value) } span.muted { (count(item.clicks)) } }
                            div.bar style={ "width:" (item.clicks * 100 / most) "%" } {}
                        }
                    }
                }
            }
        }
    }
}

/// The smallest "round" number (1, 2 or 5 × 10ⁿ) at or above `n`.
fn nice_ceiling(n: u64) -> u64 {
    let mut step = 1u64;
    loop {
        for m in [1, 2, 5] {
            if step.saturating_mul(m) >= n {
                return step.saturating_mul(m);
            }
        }
        step = step.saturating_mul(10);
    }
}

/// Clicks over time as an SVG: bars up to [`MAX_BARS`] buckets, a line beyond.
fn chart(series: &[SeriesPoint]) -> Markup {
    const W: f64 = 980.0;
    const H: f64 = 260.0;
    const LEFT: f64 = 48.0;
    const BOTTOM: f64 = 24.0;
    const TOP: f64 = 10.0;
    let total: u64 = series.iter().map(|p| p.clicks).sum();
    let max = nice_ceiling(series.iter().map(|p| p.clicks).max().unwrap_or(0).max(1));
    let plot_w = W - LEFT - 8.0;
    let plot_h = H - BOTTOM - TOP;
    let slot = plot_w / series.len().max(1) as f64;
    let y = |clicks: u64| TOP + plot_h - clicks as f64 / max as f64 * plot_h;
    let label = |point: &SeriesPoint| point.t.replace('T', " ").replace(":00:00Z", ":00");
    let ticks = [0, max / 2, max];
    let x_labels: Vec<usize> = match series.len() {
        0 => vec![],
        1 => vec![0],
        n => vec![0, n / 2, n - 1],
    };
    html! {
        svg #clicks-chart xmlns="http://www.w3.org/2000/svg" role="img"
            viewBox={ "0 0 " (W) " " (H) } width="100%"
            data-total-clicks=(total) data-buckets=(series.len())
            aria-label={ "Clicks over time: " (total) " in " (series.len()) " buckets" } {
            @for tick in ticks {
                line.grid x1=(LEFT) x2=(W - 8.0) y1=(y(tick)) y2=(y(tick)) {}
                text x=(LEFT - 6.0) y=(y(tick) + 4.0) text-anchor="end" { (tick) }
            }
            @if series.len() <= MAX_BARS {
                @for (i, point) in series.iter().enumerate() {
                    @if point.clicks > 0 {
                        rect.bar x=(LEFT + i as f64 * slot + slot * 0.1) y=(y(point.clicks))
                            width=(slot * 0.8) height=(y(0) - y(point.clicks))
                            data-t=(point.t) data-clicks=(point.clicks) {
                            title { (label(point)) ": " (point.clicks) " clicks" }
                        }
                    }
                }
            } @else {
                polyline.line points={
                    @for (i, point) in series.iter().enumerate() {
                        (LEFT + (i as f64 + 0.5) * slot) "," (y(point.clicks)) " "
                    }
                } {}
            }
            @for i in x_labels {
                text x=(LEFT + (i as f64 + 0.5) * slot) y=(H - 6.0)
                    text-anchor=(if i == 0 { "start" } else if i + 1 == series.len() { "end" } else { "middle" }) {
                    (label(&series[i]))
                }
            }
            @if total == 0 {
                text x=(LEFT + plot_w / 2.0) y=(TOP + plot_h / 2.0) text-anchor="middle" { "No clicks in this range" }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(t: &str, clicks: u64) -> SeriesPoint {
        SeriesPoint {
            t: t.to_owned(),
            clicks,
            unique_visitors: clicks,
        }
    }

    #[test]
    fn the_chart_draws_one_bar_per_bucket_with_clicks() {
        let series = [
            point("2026-11-20T00:00:00Z", 3),
            point("2026-11-21T00:00:00Z", 0),
            point("2026-11-22T00:00:00Z", 7),
        ];
        let svg = chart(&series).into_string();
        assert!(svg.contains(r#"id="clicks-chart""#));
        assert!(svg.contains(r#"data-total-clicks="10""#));
        assert_eq!(svg.matches(r#"class="bar""#).count(), 2);
        assert!(svg.contains("2026-11-22 00:00: 7 clicks"));
    }

    #[test]
    fn long_series_become_a_line_and_empty_ones_say_so() {
        let many: Vec<SeriesPoint> = (0..500).map(|i| point(&format!("t{i}"), i % 3)).collect();
        let svg = chart(&many).into_string();
        assert!(svg.contains("<polyline"));
        assert!(!svg.contains(r#"class="bar""#));
        assert!(chart(&[point("t", 0)])
            .into_string()
            .contains("No clicks in this range"));
    }

    #[test]
    fn values_are_escaped() {
        let items = [TopItem {
            value: "<script>alert(1)</script>".into(),
            clicks: 1,
        }];
        let html = top_list("Top", "top", &items).into_string();
        assert!(!html.contains("<script>"));
        assert!(html.contains("&lt;script&gt;"));
    }

    #[test]
    fn counts_and_axis_maxima_read_well() {
        assert_eq!(count(1_234_567), "1\u{2009}234\u{2009}567");
        assert_eq!(count(999), "999");
        assert_eq!(
            [1, 2, 3, 7, 10, 11, 40, 99, 101].map(nice_ceiling),
            [1, 2, 5, 10, 10, 20, 50, 100, 200]
        );
    }
}
