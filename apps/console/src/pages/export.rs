//! CSV exports: the signed-in key's links (streamed a page at a time, so
//! a large export never sits in memory), and a link's clicks per day.
//!
//! Cells that a spreadsheet would run as a formula (starting with `=`,
//! `+`, `-`, `@`, a tab or a carriage return) are prefixed with `'`; the
//! importer takes the `'` off again.

use std::collections::HashMap;

use actix_web::HttpResponse;
use actix_web::http::header;
use actix_web::web::{self, Bytes};
use chrono::{SecondsFormat, Utc};
use futures::StreamExt;

use super::links::readable_link;
use super::{PageError, SignedIn, State, query_string};
use crate::upstream::Link;

/// The links export's columns, in order.
pub const LINK_COLUMNS: [&str; 8] = [
    "code",
    "short_url",
    "url",
    "title",
    "tags",
    "created_at",
    "expires_at",
    "clicks",
];
/// Links fetched per page of the export.
const EXPORT_PAGE: &str = "100";

/// A cell as a spreadsheet may open it safely.
pub fn safe_cell(value: &str) -> String {
    match value.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{value}"),
        _ => value.to_owned(),
    }
}

fn csv_bytes(rows: &[Vec<String>]) -> Result<Bytes, PageError> {
    let mut writer = csv::WriterBuilder::new().from_writer(Vec::new());
    for row in rows {
        writer
            .write_record(row.iter().map(|c| safe_cell(c)))
            .map_err(|e| PageError::Upstream(format!("the CSV could not be written: {e}")))?;
    }
    writer
        .into_inner()
        .map(Bytes::from)
        .map_err(|e| PageError::Upstream(format!("the CSV could not be written: {e}")))
}

fn link_row(link: &Link) -> Vec<String> {
    vec![
        link.code.clone(),
        link.short_url.clone(),
        link.url.clone(),
        link.title.clone().unwrap_or_default(),
        link.tags.join(" "),
        link.created_at.clone(),
        link.expires_at.clone().unwrap_or_default(),
        link.click_count.to_string(),
    ]
}

fn attachment(name: &str) -> (header::HeaderName, String) {
    (
        header::CONTENT_DISPOSITION,
        format!("attachment; filename=\"{name}\""),
    )
}

/// Where the export's walk through the pages is.
enum Walk {
    Start,
    After(String),
    Done,
}

/// `GET /links/export.csv`: every link the key can read (with the list's
/// q, tag and sort), one page of the shortener's API at a time.
pub async fn links_csv(
    state: State,
    SignedIn { session, client }: SignedIn,
    web::Query(params): web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, PageError> {
    let param = |name: &str| params.get(name).cloned().unwrap_or_default();
    let filters = [
        ("q", param("q")),
        ("tag", param("tag")),
        ("sort", param("sort")),
    ];
    let header = csv_bytes(&[LINK_COLUMNS.iter().map(|c| c.to_string()).collect()])?;
    let pages = futures::stream::unfold(Walk::Start, move |walk| {
        let (state, key, client, filters) = (
            state.clone(),
            session.data.key.clone(),
            client.clone(),
            filters.clone(),
        );
        async move {
            let cursor = match walk {
                Walk::Done => return None,
                Walk::Start => String::new(),
                Walk::After(cursor) => cursor,
            };
            let mut pairs: Vec<(&str, &str)> =
                filters.iter().map(|(n, v)| (*n, v.as_str())).collect();
            pairs.push(("limit", EXPORT_PAGE));
            pairs.push(("cursor", cursor.as_str()));
            let page = match state
                .upstream
                .list_links(&key, &client, &query_string(pairs))
                .await
            {
                Ok(page) => page,
                Err(error) => {
                    // The status is sent; a cut-off download is the signal.
                    tracing::warn!(%error, "the links export stopped");
                    return Some((Err(PageError::from_call(error)), Walk::Done));
                }
            };
            let rows: Vec<Vec<String>> = page.items.iter().map(link_row).collect();
            let next = match page.next_cursor {
                Some(cursor) => Walk::After(cursor),
                None => Walk::Done,
            };
            Some((csv_bytes(&rows), next))
        }
    });
    let body = futures::stream::once(async move { Ok(header) }).chain(pages);
    let name = format!("links-{}.csv", Utc::now().format("%Y-%m-%d"));
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header(attachment(&name))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .streaming(body))
}

/// `GET /links/{code}/clicks.csv`: the link's clicks and unique visitors
/// per day, from its creation to today.
pub async fn clicks_csv(
    state: State,
    SignedIn { session, client }: SignedIn,
    code: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let link = readable_link(&state, &session, &client, &code).await?;
    let now = Utc::now();
    let query = query_string([
        ("from", link.created_at.as_str()),
        (
            "to",
            now.to_rfc3339_opts(SecondsFormat::Secs, true).as_str(),
        ),
        ("bucket", "day"),
    ]);
    let mut rows = vec![vec![
        "date".to_owned(),
        "clicks".into(),
        "unique_visitors".into(),
    ]];
    match state.upstream.stats(&link.id, &query).await {
        Ok(stats) => rows.extend(stats.series.iter().map(|p| {
            vec![
                p.t.get(..10).unwrap_or(&p.t).to_owned(),
                p.clicks.to_string(),
                p.unique_visitors.to_string(),
            ]
        })),
        // Not seen by analytics yet: no clicks to list.
        Err(crate::upstream::CallError::Problem(p)) if p.status == 404 => {}
        Err(error) => return Err(PageError::from_call(error)),
    }
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header(attachment(&format!("{}-clicks-per-day.csv", link.code)))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(csv_bytes(&rows)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_defused_and_quoting_is_csv() {
        assert_eq!(safe_cell("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(safe_cell("-abc"), "'-abc");
        assert_eq!(safe_cell("plain"), "plain");
        let bytes = csv_bytes(&[vec!["a,b".into(), "say \"hi\"".into(), "@x".into()]]).unwrap();
        assert_eq!(&bytes[..], b"\"a,b\",\"say \"\"hi\"\"\",'@x\n");
    }
}
