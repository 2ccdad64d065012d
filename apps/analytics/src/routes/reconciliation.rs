//! `GET /api/v1/reconciliation`: what does not line up between analytics'
//! copies and the owner's links, a page at a time.

use std::collections::HashMap;

use actix_web::HttpResponse;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{PageSize, Store, cursor, json};
use crate::domain::LinkCopy;
use crate::problem::{ApiError, ProblemBody};
use crate::stats::{optional_rfc3339, rfc3339};
use crate::store::{self, LinkList};
use service_kit::extract::Query;

/// Clicks with no created event for longer than this are orphans.
const DEFAULT_GRACE_SECONDS: i64 = 300;
/// Rows per list of one page, unless `limit` says otherwise.
const DEFAULT_PAGE: u32 = 100;

/// The query of the report.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ReconciliationParams {
    /// How long a click may wait for its link's creation before it is an orphan (default 300)
    #[param(value_type = Option<i64>, minimum = 0)]
    grace_seconds: Option<GraceSeconds>,
    /// Rows read per list for this page (default 100)
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<PageSize>,
    /// next_cursor of the page before, as it is; absent for the first page
    #[param(
        pattern = r"^(start|end|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})~(start|end|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"
    )]
    cursor: Option<String>,
}

/// Seconds, not negative.
#[derive(Deserialize)]
#[serde(try_from = "i64")]
struct GraceSeconds(i64);

impl TryFrom<i64> for GraceSeconds {
    type Error = String;

    fn try_from(seconds: i64) -> Result<Self, String> {
        match seconds >= 0 {
            true => Ok(Self(seconds)),
            false => Err(format!("{seconds} is not a non-negative integer")),
        }
    }
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
    params(ReconciliationParams),
    responses(
        (status = 200, description = "One page of orphans and deleted links, each list in link id order", body = Reconciliation),
        (status = 400, description = "grace_seconds, limit or cursor is not valid", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed attempts from this address", body = ProblemBody, content_type = "application/problem+json", headers(("retry-after" = u64))),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(super) async fn reconciliation(
    store: Store,
    Query(params): Query<ReconciliationParams>,
) -> Result<HttpResponse, ApiError> {
    let grace = params.grace_seconds.map_or(DEFAULT_GRACE_SECONDS, |g| g.0);
    let limit = params.limit.map_or(DEFAULT_PAGE, |size| size.0);
    let (orphans_at, deleted_at) = cursor(params.cursor.as_deref(), |text| {
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
