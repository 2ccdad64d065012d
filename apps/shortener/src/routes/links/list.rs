//! `GET /api/v1/links`: a page of links, filtered and ordered as the query
//! says, with a cursor to the next.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::LinkResponse;
use crate::domain::Tag;
use crate::keys::Caller;
use crate::problem::{ApiError, ProblemBody};
use crate::routes::ApiState;
use crate::store::{Link, LinkCursor, LinkOrder, LinkQuery};
use service_kit::extract::Query;

const DEFAULT_PAGE_SIZE: u32 = 20;
const MAX_PAGE_SIZE: u32 = 100;
/// Longest search text, in characters.
const MAX_SEARCH_CHARS: usize = 200;

/// One page of links, newest first.
#[derive(Serialize, ToSchema)]
pub(in crate::routes) struct LinkPage {
    items: Vec<LinkResponse>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    next_cursor: Option<String>,
}

/// The query of a listing; every parameter is optional.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(in crate::routes) struct ListParams {
    /// Page size, 1-100 (default 20)
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    limit: Option<PageSize>,
    /// `next_cursor` of the previous page (same q, tag and sort)
    #[param(
        pattern = r"^(0|[1-9][0-9]{0,17})~[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    cursor: Option<String>,
    /// Only links whose code, target or title contains this text, ignoring case
    #[param(value_type = Option<String>, max_length = 200)]
    q: Option<SearchText>,
    /// Only links with this tag
    #[param(value_type = Option<String>, pattern = "^[a-z0-9-]{1,32}$")]
    tag: Option<Tag>,
    /// Only these links (1 to 100 ids, comma-separated): which of them are live and yours
    #[param(value_type = Option<String>, pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(,[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}){0,99}$")]
    ids: Option<LinkIds>,
    /// `created` (newest first, the default) or `clicks` (most redirects first)
    #[param(value_type = Option<String>, pattern = "^(created|clicks)$")]
    sort: Option<LinkOrder>,
}

/// A page size: 1 to 100.
#[derive(Deserialize)]
#[serde(try_from = "u32")]
struct PageSize(u32);

impl TryFrom<u32> for PageSize {
    type Error = String;

    fn try_from(n: u32) -> Result<Self, String> {
        match (1..=MAX_PAGE_SIZE).contains(&n) {
            true => Ok(Self(n)),
            false => Err(format!("must be an integer from 1 to {MAX_PAGE_SIZE}")),
        }
    }
}

/// Search text, in lower case; empty means no filter, as a search box
/// sends it.
#[derive(Deserialize)]
#[serde(try_from = "String")]
struct SearchText(String);

impl TryFrom<String> for SearchText {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        match text.chars().count() > MAX_SEARCH_CHARS {
            true => Err(format!("must be at most {MAX_SEARCH_CHARS} characters")),
            false => Ok(Self(text.to_ascii_lowercase())),
        }
    }
}

/// 1 to 100 link ids, comma-separated.
#[derive(Deserialize)]
#[serde(try_from = "String")]
struct LinkIds(Vec<Uuid>);

impl TryFrom<String> for LinkIds {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let ids: Result<Vec<Uuid>, _> = text
            .split(',')
            .map(|id| Uuid::parse_str(id.trim()))
            .collect();
        match ids {
            Ok(ids) if (1..=MAX_PAGE_SIZE as usize).contains(&ids.len()) => Ok(Self(ids)),
            _ => Err(format!(
                "must be 1 to {MAX_PAGE_SIZE} comma-separated link ids"
            )),
        }
    }
}

/// Where a page ended, as `next_cursor` shows it: `<clicks>~<id>`. Both
/// orders read the same form, so a cursor is never refused for the order
/// it is used with. (A bare id, the form before the order by clicks, is
/// still read in the order by creation.)
fn format_cursor(link: &Link) -> String {
    format!("{}~{}", link.click_count, link.id)
}

fn parse_cursor(raw: &str, order: LinkOrder) -> Result<LinkCursor, &'static str> {
    let (clicks, id) = match raw.split_once('~') {
        Some((clicks, id)) => (
            Some(clicks.parse::<u64>().ok().filter(|&n| n <= i64::MAX as u64)),
            id,
        ),
        None => (None, raw),
    };
    let id = Uuid::parse_str(id).map_err(|_| "is not a cursor this API returned")?;
    match (clicks, order) {
        (Some(None), _) => Err("is not a cursor this API returned"),
        (Some(Some(clicks)), _) => Ok(LinkCursor { id, clicks }),
        (None, LinkOrder::Newest) => Ok(LinkCursor { id, clicks: 0 }),
        (None, LinkOrder::MostClicked) => {
            Err("is a cursor of the order by creation; start the order by clicks without one")
        }
    }
}

impl ListParams {
    /// The store's query; the cursor is read in the order it continues.
    fn into_query(self) -> Result<LinkQuery, ApiError> {
        let order = self.sort.unwrap_or_default();
        let after = self
            .cursor
            .map(|raw| parse_cursor(&raw, order))
            .transpose()
            .map_err(|reason| {
                ApiError::InvalidQuery(vec![crate::problem::InvalidParam::new("cursor", reason)])
            })?;
        Ok(LinkQuery {
            limit: self.limit.map_or(DEFAULT_PAGE_SIZE, |size| size.0),
            text: self.q.map(|q| q.0).filter(|q| !q.is_empty()),
            tag: self.tag.map(|tag| tag.as_str().to_owned()),
            ids: self.ids.map(|ids| ids.0),
            order,
            after,
            owner: None,
        })
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/links",
    tag = "links",
    params(ListParams),
    responses(
        (status = 200, description = "A page of live links (an author's own only)", body = LinkPage),
        (status = 400, description = "Invalid parameter; `field` names it", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed attempts from this address", body = ProblemBody, content_type = "application/problem+json", headers(("retry-after" = u64))),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(in crate::routes) async fn list_links(
    state: web::Data<ApiState>,
    caller: Caller,
    Query(params): Query<ListParams>,
) -> Result<HttpResponse, ApiError> {
    let mut query = params.into_query()?;
    let limit = query.limit as usize;
    // One more than asked for tells whether another page follows.
    query.limit += 1;
    let mut links = state.service.list(query, caller.scope()).await?;
    let more = links.len() > limit;
    links.truncate(limit);
    let next_cursor = links.last().filter(|_| more).map(format_cursor);
    let items = links
        .into_iter()
        .map(|l| LinkResponse::new(l, &state.public_url))
        .collect();
    Ok(HttpResponse::Ok().json(LinkPage { items, next_cursor }))
}
