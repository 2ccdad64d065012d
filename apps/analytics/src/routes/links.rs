//! `GET /api/v1/links`: the links analytics knows, a page at a time, with
//! their click totals.

use std::collections::HashMap;

use actix_web::HttpResponse;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{PageSize, Store, cursor, json};
use crate::problem::{ApiError, ProblemBody};
use crate::stats::LinkInfo;
use crate::store::LinkCursor;
use service_kit::extract::Query;

/// Most ids one `GET /api/v1/links?ids=` names.
const MAX_IDS: usize = 100;
/// Links per page, unless `limit` says otherwise.
const DEFAULT_LINKS_PAGE: u32 = 100;

/// The query of the list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct LinksParams {
    /// Links per page (default 100)
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<PageSize>,
    /// Only these links (1 to 100 shortener ids, comma-separated), whatever their age: the copies analytics holds of them; limit and cursor do not apply
    #[param(value_type = Option<String>, pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(,[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}){0,99}$")]
    ids: Option<LinkIds>,
    /// next_cursor of the page before, as it is
    #[param(
        pattern = r"^-?[0-9]{1,18}\.[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    cursor: Option<String>,
}

/// 1 to [`MAX_IDS`] shortener ids, comma-separated.
#[derive(Deserialize)]
#[serde(try_from = "String")]
struct LinkIds(Vec<Uuid>);

impl TryFrom<String> for LinkIds {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let ids: Result<Vec<Uuid>, _> = text
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| Uuid::parse_str(s.trim()))
            .collect();
        match ids {
            Ok(ids) if (1..=MAX_IDS).contains(&ids.len()) => Ok(Self(ids)),
            _ => Err(format!(
                "must be 1 to {MAX_IDS} comma-separated link ids (UUIDs)"
            )),
        }
    }
}

/// A link analytics knows, with its click total.
#[derive(Debug, Serialize, ToSchema)]
pub struct CopyItem {
    #[serde(flatten)]
    pub link: LinkInfo,
    /// Every click stored for the link, all time.
    pub clicks: u64,
    /// How many changes of the link analytics has applied to its copy.
    pub version: u64,
}

/// One page of the links analytics knows.
#[derive(Debug, Serialize, ToSchema)]
pub struct CopyPage {
    pub items: Vec<CopyItem>,
    /// The `cursor` of the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// The links analytics knows (its copies of the shortener's links, and
/// links known only by their clicks so far), newest first.
#[utoipa::path(
    get,
    path = "/api/v1/links",
    tag = "stats",
    params(LinksParams),
    responses(
        (status = 200, description = "A page of links, newest first, with their click totals", body = CopyPage),
        (status = 400, description = "A parameter is invalid; `field` names it", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed attempts from this address", body = ProblemBody, content_type = "application/problem+json", headers(("retry-after" = u64))),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(super) async fn list_links(
    store: Store,
    Query(params): Query<LinksParams>,
) -> Result<HttpResponse, ApiError> {
    let limit = params.limit.map_or(DEFAULT_LINKS_PAGE, |size| size.0);
    let cursor = cursor(params.cursor.as_deref(), LinkCursor::parse)?;
    let wanted = params.ids.map(|ids| ids.0);
    let links = match &wanted {
        Some(ids) => store.links(ids).await?,
        None => store.link_page(cursor, limit).await?,
    };
    let ids: Vec<_> = links.iter().map(|l| l.shortener_url_id).collect();
    let totals: HashMap<_, _> = store.click_totals(&ids).await?.into_iter().collect();
    let next_cursor = (wanted.is_none() && links.len() as u32 == limit)
        .then(|| links.last().map(|l| LinkCursor::after(l).to_string()))
        .flatten();
    let now = Utc::now().timestamp();
    let items = links
        .iter()
        .map(|l| CopyItem {
            link: LinkInfo::of(l, now),
            clicks: totals.get(&l.shortener_url_id).copied().unwrap_or(0),
            version: l.version,
        })
        .collect();
    Ok(json(&CopyPage { items, next_cursor }))
}
