//! A link's stats card: the range asked for, and the stats of that range.

use super::*;

/// The stats range a link page shows.
pub(super) struct Range {
    pub(super) name: &'static str,
    pub(super) bucket: &'static str,
    pub(super) from: DateTime<Utc>,
    pub(super) to: DateTime<Utc>,
    /// The custom dates as given, for the form.
    pub(super) custom: (String, String),
}

pub(super) const RANGES: [(&str, &str); 4] = [
    ("24h", "Last 24 hours"),
    ("7d", "Last 7 days"),
    ("30d", "Last 30 days"),
    ("custom", "Custom dates"),
];

pub(super) fn date(value: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(value.trim(), "%Y-%m-%d").ok()
}

/// The range from the page's query: 24 h, 7 d (the default), 30 d, or
/// custom whole days (UTC); hour or day buckets, a sensible default each.
pub(super) fn range_of(
    params: &HashMap<String, String>,
    now: DateTime<Utc>,
) -> Result<Range, String> {
    let name = match params.get("range").map(String::as_str) {
        None | Some("") | Some("7d") => "7d",
        Some("24h") => "24h",
        Some("30d") => "30d",
        Some("custom") => "custom",
        Some(other) => return Err(format!("{other:?} is not a range (24h, 7d, 30d or custom)")),
    };
    let custom = (
        params.get("from").cloned().unwrap_or_default(),
        params.get("to").cloned().unwrap_or_default(),
    );
    let (from, to) = match name {
        "24h" => (now - Duration::hours(24), now),
        "7d" => (now - Duration::days(7), now),
        "30d" => (now - Duration::days(30), now),
        _ => {
            let (Some(first), Some(last)) = (date(&custom.0), date(&custom.1)) else {
                return Err("Give both dates of a custom range (YYYY-MM-DD).".into());
            };
            if last < first {
                return Err("The custom range ends before it starts.".into());
            }
            if (last - first).num_days() > 366 {
                return Err("A custom range spans at most 366 days.".into());
            }
            let start = first.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
            let end = last.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc() + Duration::days(1);
            (start, end)
        }
    };
    let bucket = match params.get("bucket").map(String::as_str) {
        Some("hour") => "hour",
        Some("day") => "day",
        _ if name == "24h" || name == "7d" => "hour",
        _ => "day",
    };
    Ok(Range {
        name,
        bucket,
        from,
        to,
        custom,
    })
}

/// What the stats card shows: the numbers, or why there are none.
pub(super) enum StatsView {
    Shown(Box<Stats>),
    Missing(String),
}

pub(super) fn range_form(code: &str, range: &Range) -> Markup {
    html! {
        form.inline method="get" action={ "/links/" (segment(code)) } {
            div {
                label for="range" { "Range" }
                select #range name="range" {
                    @for (value, text) in RANGES {
                        option value=(value) selected[range.name == value] { (text) }
                    }
                }
            }
            div.custom-range {
                label for="from" { "From " span.hint { "(custom)" } }
                input #from type="date" name="from" value=(range.custom.0);
            }
            div.custom-range {
                label for="to" { "To " span.hint { "(custom, inclusive)" } }
                input #to type="date" name="to" value=(range.custom.1);
            }
            div {
                label for="bucket" { "Per" }
                select #bucket name="bucket" {
                    option value="hour" selected[range.bucket == "hour"] { "hour" }
                    option value="day" selected[range.bucket == "day"] { "day" }
                }
            }
            div { button type="submit" { "Show" } }
        }
    }
}

pub(super) fn stats_card(code: &str, range: Result<&Range, &str>, stats: &StatsView) -> Markup {
    html! {
        section.card #stats aria-labelledby="stats-title" {
            h2 #stats-title { "Stats" }
            @match range {
                Ok(range) => (range_form(code, range)),
                Err(reason) => p.error role="alert" { (reason) },
            }
            @match stats {
                StatsView::Missing(reason) => p.muted #no-stats { (reason) },
                StatsView::Shown(stats) => {
                    div.kpis {
                        div.kpi #total-clicks { span.muted { "Clicks" } b { (count(stats.total_clicks)) } }
                        div.kpi #unique-visitors { span.muted { "Unique visitors" } b { (count(stats.unique_visitors)) } }
                        div.kpi #human-clicks { span.muted { "Humans" } b { (count(stats.human_clicks)) } }
                        div.kpi #bot-clicks { span.muted { "Bots" } b { (count(stats.bot_clicks)) } }
                    }
                    @let total = (stats.human_clicks + stats.bot_clicks).max(1);
                    div.split role="img" aria-label={ (stats.human_clicks) " human and " (stats.bot_clicks) " bot clicks" } {
                        div.humans style={ "width:" (stats.human_clicks * 100 / total) "%" } {}
                        div.bots style={ "width:" (stats.bot_clicks * 100 / total) "%" } {}
                    }
                    h2 { "Clicks and unique visitors per " (stats.bucket) }
                    p.muted.legend {
                        span.clicks { "clicks" } span.uniques { "unique visitors" }
                        (when(&stats.from)) " to " (when(&stats.to))
                    }
                    (chart(&stats.series))
                    p { a #clicks-csv href={ "/links/" (segment(code)) "/clicks.csv" } { "Clicks per day, all time (CSV)" } }
                    div.grid {
                        (top_list("Top referrers", "top-referrers", &stats.top_referrers))
                        (top_list("Browsers", "browsers", &stats.browsers))
                        (top_list("Operating systems", "os", &stats.os))
                        (top_list("Devices", "devices", &stats.devices))
                        (top_list("Countries", "countries", &stats.countries))
                    }
                }
            }
        }
    }
}

pub(super) async fn stats_of(state: &State, link: &Link, range: &Range) -> StatsView {
    let query = query_string([
        (
            "from",
            range
                .from
                .to_rfc3339_opts(SecondsFormat::Secs, true)
                .as_str(),
        ),
        (
            "to",
            range.to.to_rfc3339_opts(SecondsFormat::Secs, true).as_str(),
        ),
        ("bucket", range.bucket),
    ]);
    match state.upstream.stats(&link.id, &query).await {
        Ok(stats) => StatsView::Shown(Box::new(stats)),
        Err(CallError::Problem(p)) if p.status == 404 => StatsView::Missing(
            "Analytics has not heard of this link yet; its stats appear within seconds of its creation."
                .into(),
        ),
        Err(error) => {
            tracing::warn!(%error, "stats unavailable");
            StatsView::Missing(
                "Stats are unavailable right now. The link itself works as always.".into(),
            )
        }
    }
}
