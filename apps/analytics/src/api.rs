//! The statistics API: the links analytics knows (a page at a time, with
//! their click totals), per-link stats (by code or by the shortener's id),
//! the reconciliation report, and the OpenAPI document. Analytics serves
//! no pages: the console (`apps/console`) shows these numbers to people.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use serde::Serialize;
use service_kit::openapi::KeySecurity;
use utoipa::{IntoParams, OpenApi, ToSchema};
use uuid::Uuid;

use crate::model::LinkCopy;
use crate::problem::{ApiError, InvalidParam, ProblemBody, resource};
pub use crate::stats::{
    LinkInfo, MAX_BUCKETS, SeriesPoint, Stats, StatsQuery, TopItem, known_by_code, stats,
};
use crate::stats::{optional_rfc3339, rfc3339};
use crate::store::{self, AnalyticsStore, LinkCursor, LinkList};

/// Clicks with no created event for longer than this are orphans.
const DEFAULT_GRACE_SECONDS: i64 = 300;
/// Rows per list of one reconciliation page, unless `limit` says otherwise.
const DEFAULT_PAGE: u32 = 100;
const MAX_PAGE: u32 = 1_000;

/// The value of query parameter `name`, when given.
fn query_value(query: &str, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Query parameter `name` as a number that `allowed` accepts, `default`
/// when absent; the text given when it is not.
fn number_param<T: std::str::FromStr>(
    query: &str,
    name: &str,
    default: T,
    allowed: impl Fn(&T) -> bool,
) -> Result<T, String> {
    match query_value(query, name) {
        None => Ok(default),
        Some(v) => v.trim().parse().ok().filter(|n| allowed(n)).ok_or(v),
    }
}

/// The `cursor` parameter, read by `parse`; a cursor that does not read is
/// a 400 naming it.
pub fn cursor_param<T>(
    query: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Option<T>, ApiError> {
    query_value(query, "cursor")
        .map(|v| {
            parse(&v).ok_or_else(|| {
                ApiError::invalid(
                    "cursor",
                    "not a cursor this API gave (use next_cursor as it is)",
                )
            })
        })
        .transpose()
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "URL shortener analytics",
        version = "1.0.0",
        description = "Click statistics built from the shortener's events. Errors are RFC 7807 application/problem+json."
    ),
    paths(list_links, stats_by_code, stats_by_id, reconciliation),
    components(schemas(CopyPage, CopyItem, Stats, SeriesPoint, TopItem, LinkInfo, Reconciliation, OrphanItem, DeletedItem, ProblemBody, InvalidParam)),
    modifiers(&KEY_SECURITY),
    tags((name = "stats", description = "Click statistics"), (name = "operations", description = "Consistency checks"))
)]
pub struct ApiDoc;

/// Every endpoint but `/health`, `/ready` and `/metrics` needs a key.
const KEY_SECURITY: KeySecurity = KeySecurity {
    description: "An analytics API key (analytics api-key create)",
};

/// The OpenAPI document, rendered once.
pub fn openapi_json() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        ApiDoc::openapi()
            .to_pretty_json()
            .expect("the OpenAPI document serialises")
    })
}

async fn openapi_document() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(openapi_json())
}

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .service(resource("/api/v1/openapi.json", "GET").route(web::get().to(openapi_document)))
        .service(resource("/api/v1/links", "GET").route(web::get().to(list_links)))
        .service(resource("/api/v1/links/{code}/stats", "GET").route(web::get().to(stats_by_code)))
        .service(
            resource("/api/v1/urls/{shortener_url_id}/stats", "GET")
                .route(web::get().to(stats_by_id)),
        )
        .service(resource("/api/v1/reconciliation", "GET").route(web::get().to(reconciliation)));
}

pub type Store = web::Data<Arc<dyn AnalyticsStore>>;

/// Most ids one `GET /api/v1/links?ids=` names.
const MAX_IDS: usize = 100;

/// The `ids` parameter: comma-separated shortener ids, at most [`MAX_IDS`].
fn ids_param(query: &str) -> Result<Option<Vec<Uuid>>, ApiError> {
    let Some(value) = query_value(query, "ids") else {
        return Ok(None);
    };
    let ids: Result<Vec<Uuid>, _> = value
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| Uuid::parse_str(s.trim()))
        .collect();
    match ids {
        Ok(ids) if (1..=MAX_IDS).contains(&ids.len()) => Ok(Some(ids)),
        _ => Err(ApiError::invalid(
            "ids",
            format!("must be 1 to {MAX_IDS} comma-separated link ids (UUIDs)"),
        )),
    }
}

/// Links per page of `GET /api/v1/links`, unless `limit` says otherwise.
const DEFAULT_LINKS_PAGE: u32 = 100;

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
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Links per page (default 100)"),
        ("ids" = Option<String>, Query, pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(,[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}){0,99}$", description = "Only these links (1 to 100 shortener ids, comma-separated), whatever their age: the copies analytics holds of them; limit and cursor do not apply"),
        ("cursor" = Option<String>, Query, pattern = r"^-?[0-9]{1,18}\.[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$", description = "next_cursor of the page before, as it is"),
    ),
    responses(
        (status = 200, description = "A page of links, newest first, with their click totals", body = CopyPage),
        (status = 400, description = "A parameter is invalid; `field` names it", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed attempts from this address", body = ProblemBody, content_type = "application/problem+json", headers(("retry-after" = u64))),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
async fn list_links(store: Store, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    let query = request.query_string();
    let limit = number_param(query, "limit", DEFAULT_LINKS_PAGE, |n| {
        (1..=MAX_PAGE).contains(n)
    })
    .map_err(|v| {
        ApiError::invalid(
            "limit",
            format!("{v:?} is not a number from 1 to {MAX_PAGE}"),
        )
    })?;
    let cursor = cursor_param(query, LinkCursor::parse)?;
    let wanted = ids_param(query)?;
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

/// Query parameters of the stats endpoints.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct StatsParams {
    /// Start (inclusive), RFC 3339. Default: the link's first click or
    /// creation. A `from` not before `to` is an empty range (no clicks).
    #[param(format = DateTime)]
    from: Option<String>,
    /// End (exclusive), RFC 3339. Default: now.
    #[param(format = DateTime)]
    to: Option<String>,
    /// `hour` or `day` (default `day`).
    #[param(inline)]
    bucket: Option<BucketParam>,
}

/// The width of a series bucket, as the query states it.
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "lowercase")]
enum BucketParam {
    Hour,
    Day,
}

fn json<T: Serialize>(body: &T) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(body)
}

async fn stats_response(
    store: &Store,
    link: &LinkCopy,
    query: StatsQuery,
) -> Result<HttpResponse, ApiError> {
    let now = Utc::now().timestamp();
    Ok(json(
        &stats(store.as_ref().as_ref(), link, query, now).await?,
    ))
}

/// Stats of the link with this short code.
#[utoipa::path(
    get,
    path = "/api/v1/links/{code}/stats",
    tag = "stats",
    params(("code" = String, Path, description = "The short code"), StatsParams),
    responses(
        (status = 200, description = "The link's statistics", body = Stats),
        (status = 400, description = "A parameter is invalid; `field` names it", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "Analytics knows no link with this code", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed attempts from this address", body = ProblemBody, content_type = "application/problem+json", headers(("retry-after" = u64))),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
async fn stats_by_code(
    store: Store,
    request: HttpRequest,
    code: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let query = StatsQuery::parse(request.query_string())?;
    let link = known_by_code(store.as_ref().as_ref(), &code).await?;
    stats_response(&store, &link, query).await
}

/// Stats of the link with this id (the shortener's `id`).
#[utoipa::path(
    get,
    path = "/api/v1/urls/{shortener_url_id}/stats",
    tag = "stats",
    params(("shortener_url_id" = Uuid, Path, description = "The link's id at the shortener"), StatsParams),
    responses(
        (status = 200, description = "The link's statistics", body = Stats),
        (status = 400, description = "A parameter is invalid; `field` names it", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "Analytics knows no link with this id", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed attempts from this address", body = ProblemBody, content_type = "application/problem+json", headers(("retry-after" = u64))),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
async fn stats_by_id(
    store: Store,
    request: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = Uuid::parse_str(id.trim()).map_err(|e| {
        ApiError::invalid(
            "shortener_url_id",
            format!("{:?} is not a UUID ({e})", id.as_str()),
        )
    })?;
    let query = StatsQuery::parse(request.query_string())?;
    let link = store
        .links(&[id])
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| {
            ApiError::NotFound(format!("no link with the id {id} is known to analytics"))
        })?;
    stats_response(&store, &link, query).await
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrphanItem {
    pub shortener_url_id: Uuid,
    pub short_code: String,
    pub clicks: u64,
    pub first_click_at: String,
    pub last_click_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedItem {
    pub shortener_url_id: Uuid,
    pub short_code: String,
    pub deleted_at: String,
    pub clicks: u64,
}

/// What does not line up between analytics' copies and the owner's links.
#[derive(Debug, Serialize, ToSchema)]
pub struct Reconciliation {
    pub generated_at: String,
    pub grace_seconds: i64,
    /// Links with clicks whose created event has not arrived within the grace period.
    pub orphans: Vec<OrphanItem>,
    /// Links deleted at the shortener; their clicks are kept.
    pub deleted: Vec<DeletedItem>,
    /// Rows each list of this page was read from, at most.
    pub limit: u32,
    /// The `cursor` of the next page; `null` on the last. A page may hold
    /// fewer items than `limit` (or none) and still have a next one.
    pub next_cursor: Option<String>,
}

/// Where the next reconciliation page starts in each of its two lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListPosition {
    Start,
    After(Uuid),
    End,
}

impl ListPosition {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "start" => Some(Self::Start),
            "end" => Some(Self::End),
            id => id.parse().ok().map(Self::After),
        }
    }

    fn text(self) -> String {
        match self {
            Self::Start => "start".to_owned(),
            Self::After(id) => id.to_string(),
            Self::End => "end".to_owned(),
        }
    }

    /// Where the list goes on after a page that read `read` rows.
    fn next(read: &[LinkCopy], limit: u32) -> Self {
        match read.last() {
            Some(last) if read.len() as u32 == limit => Self::After(last.shortener_url_id),
            _ => Self::End,
        }
    }
}

/// A page of one list: the rows after `position`, none once it ended.
async fn list_page(
    store: &dyn store::Reconciliation,
    list: LinkList,
    position: ListPosition,
    limit: u32,
) -> Result<Vec<LinkCopy>, ApiError> {
    let after = match position {
        ListPosition::End => return Ok(Vec::new()),
        ListPosition::Start => None,
        ListPosition::After(id) => Some(id),
    };
    Ok(store.links_on(list, after, limit).await?)
}

/// The reconciliation report.
#[utoipa::path(
    get,
    path = "/api/v1/reconciliation",
    tag = "operations",
    params(
        ("grace_seconds" = Option<i64>, Query, minimum = 0, description = "How long a click may wait for its link's creation before it is an orphan (default 300)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Rows read per list for this page (default 100)"),
        ("cursor" = Option<String>, Query, pattern = r"^(start|end|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})~(start|end|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$", description = "next_cursor of the page before, as it is; absent for the first page"),
    ),
    responses(
        (status = 200, description = "One page of orphans and deleted links, each list in link id order", body = Reconciliation),
        (status = 400, description = "grace_seconds, limit or cursor is not valid", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed attempts from this address", body = ProblemBody, content_type = "application/problem+json", headers(("retry-after" = u64))),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
async fn reconciliation(store: Store, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    let query = request.query_string();
    let grace = number_param(query, "grace_seconds", DEFAULT_GRACE_SECONDS, |g: &i64| {
        *g >= 0
    })
    .map_err(|v| {
        ApiError::invalid(
            "grace_seconds",
            format!("{v:?} is not a non-negative integer"),
        )
    })?;
    let limit = number_param(query, "limit", DEFAULT_PAGE, |l: &u32| {
        (1..=MAX_PAGE).contains(l)
    })
    .map_err(|v| {
        ApiError::invalid(
            "limit",
            format!("{v:?} is not an integer from 1 to {MAX_PAGE}"),
        )
    })?;
    let (orphans_at, deleted_at) = cursor_param(query, |text| {
        let (orphans, deleted) = text.split_once('~')?;
        Some((ListPosition::parse(orphans)?, ListPosition::parse(deleted)?))
    })?
    .unwrap_or((ListPosition::Start, ListPosition::Start));
    let now = Utc::now().timestamp();
    let uncreated = list_page(&***store, LinkList::Uncreated, orphans_at, limit).await?;
    let deleted = list_page(&***store, LinkList::Deleted, deleted_at, limit).await?;
    let next = (
        ListPosition::next(&uncreated, limit),
        ListPosition::next(&deleted, limit),
    );
    let next_cursor = (next != (ListPosition::End, ListPosition::End))
        .then(|| format!("{}~{}", next.0.text(), next.1.text()));
    let ids: Vec<Uuid> = uncreated
        .iter()
        .chain(&deleted)
        .map(|l| l.shortener_url_id)
        .collect();
    let summaries: HashMap<Uuid, _> = store
        .click_summaries(&ids)
        .await?
        .into_iter()
        .map(|s| (s.shortener_url_id, s))
        .collect();
    let orphans: Vec<OrphanItem> = uncreated
        .iter()
        .filter_map(|l| {
            let s = summaries.get(&l.shortener_url_id)?;
            (s.first_click_at <= now - grace).then(|| OrphanItem {
                shortener_url_id: l.shortener_url_id,
                short_code: l.short_code.clone(),
                clicks: s.clicks,
                first_click_at: rfc3339(s.first_click_at),
                last_click_at: rfc3339(s.last_click_at),
            })
        })
        .collect();
    let deleted: Vec<DeletedItem> = deleted
        .iter()
        .map(|l| DeletedItem {
            shortener_url_id: l.shortener_url_id,
            short_code: l.short_code.clone(),
            deleted_at: optional_rfc3339(l.deleted_at).unwrap_or_default(),
            clicks: summaries.get(&l.shortener_url_id).map_or(0, |s| s.clicks),
        })
        .collect();
    Ok(json(&Reconciliation {
        generated_at: rfc3339(now),
        grace_seconds: grace,
        orphans,
        deleted,
        limit,
        next_cursor,
    }))
}
