//! Server-rendered SVG charts and top lists: no script draws anything, so
//! a page's numbers are there without JS. (Moved here from analytics'
//! former dashboard, which the console replaces.)

use maud::{Markup, html};

use crate::upstream::{SeriesPoint, TopItem};

/// Up to this many buckets the chart draws bars; beyond, a line.
const MAX_BARS: usize = 200;

/// Thousands separated by thin spaces: 1 234 567.
pub fn count(n: u64) -> String {
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

pub fn top_list(title: &str, id: &str, items: &[TopItem]) -> Markup {
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

/// Clicks over time as an SVG: bars up to [`MAX_BARS`] buckets, a line
/// beyond; unique visitors as a second line over them.
pub fn chart(series: &[SeriesPoint]) -> Markup {
    const W: f64 = 980.0;
    const H: f64 = 260.0;
    const LEFT: f64 = 48.0;
    const BOTTOM: f64 = 24.0;
    const TOP: f64 = 10.0;
    let total: u64 = series.iter().map(|p| p.clicks).sum();
    // Unique visitors never exceed clicks in a bucket; the axis fits clicks.
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
            polyline.uniques points={
                @for (i, point) in series.iter().enumerate() {
                    (LEFT + (i as f64 + 0.5) * slot) "," (y(point.unique_visitors)) " "
                }
            } {}
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
    fn unique_visitors_are_a_line_over_the_bars() {
        let svg = chart(&[point("2026-11-20T00:00:00Z", 4)]).into_string();
        assert!(svg.contains(r#"class="uniques""#));
    }

    #[test]
    fn long_series_become_a_line_and_empty_ones_say_so() {
        let many: Vec<SeriesPoint> = (0..500).map(|i| point(&format!("t{i}"), i % 3)).collect();
        let svg = chart(&many).into_string();
        assert!(svg.contains("<polyline"));
        assert!(!svg.contains(r#"class="bar""#));
        assert!(
            chart(&[point("t", 0)])
                .into_string()
                .contains("No clicks in this range")
        );
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
