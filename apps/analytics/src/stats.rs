//! Statistics of one link: the parameters, the store's queries, and the
//! answer with its empty buckets filled.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::domain::{Bucket, LinkCopy, Window};
use crate::problem::ApiError;
use crate::store::{LinkCopies, StatsReader};

/// Entries in each top list.
const TOP: u32 = 10;
/// A series never has more points than this (a year of hours is 8,760).
pub const MAX_BUCKETS: i64 = 10_000;

pub(crate) fn rfc3339(t: i64) -> String {
    DateTime::<Utc>::from_timestamp(t, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub(crate) fn optional_rfc3339(t: Option<i64>) -> Option<String> {
    t.map(rfc3339)
}

/// What analytics knows about the link.
#[derive(Debug, Serialize, ToSchema)]
pub struct LinkInfo {
    pub shortener_url_id: Uuid,
    pub short_code: String,
    /// `active`, `expired`, `deleted`, or `unknown` (clicks arrived, the creation not yet).
    pub status: String,
    pub target: Option<String>,
    pub created_at: Option<String>,
    pub expires_at: Option<String>,
    pub deleted_at: Option<String>,
}

impl LinkInfo {
    pub fn of(link: &LinkCopy, now: i64) -> Self {
        Self {
            shortener_url_id: link.shortener_url_id,
            short_code: link.short_code.clone(),
            status: link.status(now).to_owned(),
            target: link.target.clone(),
            created_at: optional_rfc3339(link.created_at),
            expires_at: optional_rfc3339(link.expires_at),
            deleted_at: optional_rfc3339(link.deleted_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema, PartialEq, Eq)]
pub struct SeriesPoint {
    /// Start of the bucket, RFC 3339 UTC.
    pub t: String,
    pub clicks: u64,
    pub unique_visitors: u64,
}

#[derive(Debug, Serialize, ToSchema, PartialEq, Eq)]
pub struct TopItem {
    pub value: String,
    pub clicks: u64,
}

/// Statistics of one link over `[from, to)`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Stats {
    pub link: LinkInfo,
    pub from: String,
    pub to: String,
    /// `hour` or `day`.
    pub bucket: String,
    pub total_clicks: u64,
    /// Distinct visitors, counted per UTC day and summed: the shortener's
    /// visitor key changes every UTC day, so a visitor of two days counts
    /// twice. Exact.
    pub unique_visitors: u64,
    pub bot_clicks: u64,
    pub human_clicks: u64,
    /// One point per bucket from `from` to `to`, empty buckets included; at
    /// most 10,000 points, the latest ones when the range holds more.
    pub series: Vec<SeriesPoint>,
    pub top_referrers: Vec<TopItem>,
    pub browsers: Vec<TopItem>,
    pub os: Vec<TopItem>,
    pub devices: Vec<TopItem>,
    pub countries: Vec<TopItem>,
}

/// The stats parameters as a request gives them.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsParams {
    /// Start (inclusive), RFC 3339. Default: the link's first click or
    /// creation. A `from` not before `to` is an empty range (no clicks).
    #[param(value_type = Option<String>, format = DateTime)]
    from: Option<Instant>,
    /// End (exclusive), RFC 3339. Default: now.
    #[param(value_type = Option<String>, format = DateTime)]
    to: Option<Instant>,
    /// `hour` or `day` (default `day`).
    #[param(inline)]
    bucket: Option<Bucket>,
}

/// An RFC 3339 date-time, in seconds. A `+` of an offset arrives as a
/// space when the client did not encode it, and is read as a `+`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "String")]
struct Instant(i64);

impl TryFrom<String> for Instant {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        let value = value.trim();
        DateTime::parse_from_rfc3339(value)
            .or_else(|_| DateTime::parse_from_rfc3339(&value.replace(' ', "+")))
            .map(|t| Self(t.timestamp()))
            .map_err(|e| format!("{value:?} is not an RFC 3339 date-time ({e})"))
    }
}

/// The stats parameters, read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatsQuery {
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub bucket: Bucket,
}

impl From<StatsParams> for StatsQuery {
    fn from(params: StatsParams) -> Self {
        Self {
            from: params.from.map(|t| t.0),
            to: params.to.map(|t| t.0),
            bucket: params.bucket.unwrap_or_default(),
        }
    }
}

impl StatsQuery {
    /// Reads `from`, `to` and `bucket` from a query string; every bad one
    /// is named.
    pub fn parse(query_string: &str) -> Result<Self, ApiError> {
        service_kit::extract::query::<StatsParams>(query_string)
            .map(Self::from)
            .map_err(ApiError::InvalidQuery)
    }
}

/// One point per bucket from `first_bucket` to `to`: the counts the store
/// has (non-empty buckets only, oldest first), zero for the others.
fn filled_series(
    counts: Vec<crate::domain::BucketCount>,
    first_bucket: i64,
    to: i64,
    bucket: Bucket,
    buckets: i64,
) -> Vec<SeriesPoint> {
    let mut counts = counts.into_iter().peekable();
    let mut series = Vec::with_capacity(usize::try_from(buckets).unwrap_or_default());
    let mut start = first_bucket;
    while start < to {
        // Buckets before a truncated series starts are not shown.
        while counts.next_if(|c| c.start < start).is_some() {}
        let point = match counts.peek() {
            Some(c) if c.start == start => {
                let c = counts.next().expect("peeked");
                (c.clicks, c.unique_visitors)
            }
            _ => (0, 0),
        };
        series.push(SeriesPoint {
            t: rfc3339(start),
            clicks: point.0,
            unique_visitors: point.1,
        });
        start += bucket.seconds();
    }
    series
}

/// Computes the stats of `link` (the store's queries, then empty buckets filled).
pub async fn stats(
    store: &dyn StatsReader,
    link: &LinkCopy,
    query: StatsQuery,
    now: i64,
) -> Result<Stats, ApiError> {
    let bucket = query.bucket;
    let to = query.to.unwrap_or(now + 1);
    let from = match query.from {
        Some(from) => from,
        None => {
            let first_click = store.first_click(link.shortener_url_id).await?;
            let start = [first_click, link.created_at].into_iter().flatten().min();
            // Never more buckets than a series may have.
            start
                .unwrap_or(to)
                .max(to - MAX_BUCKETS * bucket.seconds())
                .min(to)
        }
    };
    // A range whose start is not before its end is empty: no clicks, no
    // points. A series has at most MAX_BUCKETS points, the latest ones; the
    // totals and tops always cover the whole range.
    let first_bucket = match from < to {
        true => bucket
            .floor(from)
            .max(bucket.floor(to - 1) - (MAX_BUCKETS - 1) * bucket.seconds()),
        false => to,
    };
    let buckets = ((to - first_bucket).max(0) + bucket.seconds() - 1) / bucket.seconds();
    let window = Window {
        url_id: link.shortener_url_id,
        from,
        to,
    };
    let read = store.window_stats(window, bucket, TOP).await?;
    let totals = read.totals;
    let series = filled_series(read.series, first_bucket, to, bucket, buckets);
    let tops: Vec<Vec<TopItem>> = read
        .tops
        .into_iter()
        .map(|list| {
            list.into_iter()
                .map(|(value, clicks)| TopItem { value, clicks })
                .collect()
        })
        .collect();
    let [top_referrers, browsers, os, devices, countries]: [Vec<TopItem>; 5] =
        tops.try_into().expect("one list per dimension");
    Ok(Stats {
        link: LinkInfo::of(link, now),
        from: rfc3339(from),
        to: rfc3339(to),
        bucket: bucket.as_str().to_owned(),
        total_clicks: totals.clicks,
        unique_visitors: totals.unique_visitors,
        bot_clicks: totals.bot_clicks,
        human_clicks: totals.clicks - totals.bot_clicks,
        series,
        top_referrers,
        browsers,
        os,
        devices,
        countries,
    })
}

/// The copy with this code, or the 404 the API answers.
pub async fn known_by_code(store: &dyn LinkCopies, code: &str) -> Result<LinkCopy, ApiError> {
    store.link_by_code(code).await?.ok_or_else(|| {
        ApiError::NotFound(format!(
            "no link with the code {code:?} is known to analytics"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(error: ApiError) -> Vec<String> {
        match error {
            ApiError::InvalidQuery(params) => params.into_iter().map(|p| p.name).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parameters_parse_and_bad_ones_are_named() {
        let q = StatsQuery::parse(
            "from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00%2B00:00&bucket=hour",
        )
        .unwrap();
        assert_eq!(q.from, Some(1_767_225_600));
        assert_eq!(q.to, Some(1_767_312_000));
        assert_eq!(q.bucket, Bucket::Hour);
        // An unencoded `+` arrives as a space.
        assert_eq!(
            StatsQuery::parse("to=2026-01-02T01:00:00+01:00")
                .unwrap()
                .to,
            Some(1_767_312_000)
        );
        assert_eq!(StatsQuery::parse("").unwrap().bucket, Bucket::Day);
        assert_eq!(
            field(StatsQuery::parse("from=yesterday").unwrap_err()),
            ["from"]
        );
        assert_eq!(
            field(StatsQuery::parse("to=2026-13-01T00:00:00Z").unwrap_err()),
            ["to"]
        );
        assert_eq!(
            field(StatsQuery::parse("bucket=week").unwrap_err()),
            ["bucket"]
        );
        // A start after the end is an empty range, not an error.
        assert!(StatsQuery::parse("from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z").is_ok());
        assert_eq!(
            field(StatsQuery::parse("from=x&bucket=y").unwrap_err()),
            ["from", "bucket"]
        );
    }
}
