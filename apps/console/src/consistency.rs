//! The consistency monitor: how far analytics' copies of the links are
//! behind their owner, the shortener, measured.
//!
//! Analytics keeps a copy of every link (its target, expiry and deletion),
//! fed by the shortener's events. The monitor compares the two through
//! their HTTP APIs, like any client, a page at a time:
//!
//! 1. it reads analytics' copies, 1,000 per page, into a compact index
//!    (the id, the code and a fingerprint of what a copy holds: about 60
//!    bytes a link);
//! 2. it walks the shortener's links, 100 per page, and compares each with
//!    its copy: none is **missing**; a different target, expiry or
//!    deletion is **stale**. Copies of live links the walk never met are
//!    **orphaned** candidates (left after a deletion);
//! 3. it looks every finding up again by id on both sides (`?ids=`), so a
//!    change that landed while it walked is not reported.
//!
//! The **lag** is the age of the oldest change analytics has not seen: a
//! missing copy's link was created at `created_at`; a stale one changed at
//! the owner's `updated_at` at the latest (the shortener keeps no history,
//! so this is a lower bound); an orphan's deletion is dated by when the
//! monitor first saw it (the shortener no longer lists deleted links), also
//! a lower bound.
//!
//! When analytics does not answer, the monitor compares the owner's links
//! with the copies as analytics last showed them (`copies_as_of`): an
//! analytics that is down consumes nothing, so everything the owner changed
//! since is unseen. The report says so (`analytics_reachable: false`).

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::upstream::{CallError, Copy, Link, Upstream};

/// Links per page of the shortener's list (its maximum).
const OWNER_PAGE: usize = 100;
/// Copies per page of analytics' list (its maximum).
const COPY_PAGE: usize = 1_000;
/// Ids per lookup by id (`?ids=`), both services' maximum.
const IDS_PER_LOOKUP: usize = 100;
/// Codes listed per kind of finding.
pub const MAX_CODES: usize = 100;

/// What the monitor found, as `GET /api/v1/consistency` answers it.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// When the comparison started (RFC 3339, UTC).
    pub checked_at: String,
    /// The owner's live links compared.
    pub links_checked: u64,
    /// Analytics' copies read (deleted links and links known only by their
    /// clicks included).
    pub copies_checked: u64,
    /// Live links analytics has no copy of (or knows only by clicks).
    pub missing: u64,
    /// Copies whose target, expiry or deletion differs from the owner's.
    pub stale: u64,
    /// Copies of links the owner no longer has (deleted), still live in
    /// analytics.
    pub orphaned: u64,
    /// The codes of each finding, oldest change first, at most 100.
    pub missing_codes: Vec<String>,
    pub stale_codes: Vec<String>,
    pub orphaned_codes: Vec<String>,
    /// The age of the oldest change analytics has not seen; 0 when every
    /// copy is current.
    pub lag_seconds: f64,
    /// Whether analytics answered. When it did not, the copies compared are
    /// those it showed at `copies_as_of`.
    pub analytics_reachable: bool,
    pub copies_as_of: String,
    /// How long the comparison took.
    pub duration_ms: u64,
}

/// Why there is no report.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error(transparent)]
    Call(#[from] CallError),
    /// Analytics is down and it was never read before: nothing to compare.
    #[error("analytics is unreachable, and the monitor has not read its copies before")]
    NoCopies,
}

/// What analytics holds for a link, reduced to what the comparison needs.
#[derive(Debug, Clone)]
struct CopyState {
    code: Box<str>,
    /// A fingerprint of the target and expiry; `None` while analytics knows
    /// the link only by its clicks (the created event has not arrived).
    fingerprint: Option<u64>,
    deleted: bool,
}

impl CopyState {
    fn of(copy: &Copy) -> Self {
        Self {
            code: copy.short_code.as_str().into(),
            fingerprint: copy
                .target
                .as_deref()
                .filter(|_| copy.status != "unknown")
                .map(|target| fingerprint(target, copy.expires_at.as_deref())),
            deleted: copy.deleted_at.is_some() || copy.status == "deleted",
        }
    }
}

/// The part of a link analytics copies: its target and its expiry (to the
/// second, as analytics keeps it).
fn fingerprint(target: &str, expires_at: Option<&str>) -> u64 {
    let expires = expires_at.map(|t| parse_time(t).map_or(i64::MIN, |t| t.timestamp()));
    // SipHash with fixed keys: stable within the process, which is all an
    // in-memory comparison needs.
    let mut hasher = DefaultHasher::new();
    target.hash(&mut hasher);
    expires.hash(&mut hasher);
    hasher.finish()
}

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Missing,
    Stale,
    Orphaned,
}

/// One link that does not line up.
#[derive(Debug, Clone)]
struct Finding {
    id: Uuid,
    code: String,
    kind: Kind,
    /// When the change analytics has not seen was made (at the latest).
    since: DateTime<Utc>,
    /// The owner's fingerprint, to look the copy up again.
    owner: Option<u64>,
}

/// Compares a live link with its copy.
fn compare(link: &Link, copy: Option<&CopyState>, now: DateTime<Utc>) -> Option<Finding> {
    let owner = fingerprint(&link.url, link.expires_at.as_deref());
    let (kind, since) = match copy {
        Some(CopyState {
            fingerprint: Some(copied),
            deleted: false,
            ..
        }) if *copied == owner => return None,
        Some(CopyState {
            fingerprint: Some(_),
            ..
        }) => (Kind::Stale, &link.updated_at),
        // No copy, or only clicks so far.
        _ => (Kind::Missing, &link.created_at),
    };
    Some(Finding {
        id: link.id.parse().ok()?,
        code: link.code.clone(),
        kind,
        since: parse_time(since).unwrap_or(now).min(now),
        owner: Some(owner),
    })
}

/// The copies analytics answers for these ids (chunks of 100).
async fn copies_by_id(upstream: &Upstream, ids: &[Uuid]) -> Result<Vec<Copy>, CallError> {
    let mut found = Vec::new();
    for chunk in ids.chunks(IDS_PER_LOOKUP) {
        found.extend(upstream.copies(&ids_query(chunk, None)).await?.items);
    }
    Ok(found)
}

/// The owner's live links among these ids (chunks of 100).
async fn links_by_id(
    upstream: &Upstream,
    key: &str,
    client: &str,
    ids: &[Uuid],
) -> Result<Vec<Link>, CallError> {
    let mut found = Vec::new();
    for chunk in ids.chunks(IDS_PER_LOOKUP) {
        let query = ids_query(chunk, Some(IDS_PER_LOOKUP));
        found.extend(upstream.list_links(key, client, &query).await?.items);
    }
    Ok(found)
}

fn ids_query(ids: &[Uuid], limit: Option<usize>) -> String {
    let ids: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    let mut query = format!("ids={}", ids.join(","));
    if let Some(limit) = limit {
        query.push_str(&format!("&limit={limit}"));
    }
    query
}

fn page_query(limit: usize, cursor: Option<&str>) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.append_pair("limit", &limit.to_string());
    if let Some(cursor) = cursor {
        query.append_pair("cursor", cursor);
    }
    query.finish()
}

/// Every copy analytics holds, a page at a time.
async fn read_copies(upstream: &Upstream) -> Result<HashMap<Uuid, CopyState>, CallError> {
    let mut copies = HashMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = upstream
            .copies(&page_query(COPY_PAGE, cursor.as_deref()))
            .await?;
        for copy in &page.items {
            copies.insert(copy.shortener_url_id, CopyState::of(copy));
        }
        match page.next_cursor {
            Some(next) if cursor.as_deref() != Some(next.as_str()) => cursor = Some(next),
            _ => return Ok(copies),
        }
    }
}

/// The copies the monitor compared last, and when it read them.
struct Snapshot {
    at: DateTime<Utc>,
    copies: HashMap<Uuid, CopyState>,
}

#[derive(Default)]
struct Inner {
    /// The last report, and when its comparison started.
    last: Option<(Instant, Arc<Report>)>,
    snapshot: Option<Snapshot>,
    /// When each current orphan was first seen.
    first_seen: HashMap<Uuid, DateTime<Utc>>,
}

/// The monitor. One comparison runs at a time. Callers that arrive while
/// one runs wait, and then share the next one: a report always started
/// after the call came, so it sees every change made before it.
#[derive(Default)]
pub struct Monitor {
    inner: Mutex<Inner>,
}

impl Monitor {
    pub fn new() -> Self {
        Self::default()
    }

    /// A report of a comparison started after this call, walking both
    /// services with `key`, which must see every link (an admin's).
    pub async fn report(
        &self,
        upstream: &Upstream,
        key: &str,
        client: &str,
    ) -> Result<Arc<Report>, MonitorError> {
        let called = Instant::now();
        let mut inner = self.inner.lock().await;
        if let Some((started, report)) = &inner.last {
            if *started >= called {
                return Ok(report.clone());
            }
        }
        let started = Instant::now();
        let report = Arc::new(inner.compare(upstream, key, client).await?);
        inner.last = Some((started, report.clone()));
        Ok(report)
    }
}

/// Who to ask: the services, with the key that must see every link.
struct Asker<'a> {
    upstream: &'a Upstream,
    key: &'a str,
    client: &'a str,
}

/// What comparing found so far.
#[derive(Default)]
struct Walk {
    findings: Vec<Finding>,
    links_checked: u64,
}

impl Walk {
    fn check(&mut self, link: &Link, copies: &HashMap<Uuid, CopyState>, now: DateTime<Utc>) {
        self.links_checked += 1;
        if let Ok(id) = link.id.parse::<Uuid>() {
            self.findings.extend(compare(link, copies.get(&id), now));
        }
    }
}

impl Inner {
    async fn compare(
        &mut self,
        upstream: &Upstream,
        key: &str,
        client: &str,
    ) -> Result<Report, MonitorError> {
        let ask = Asker {
            upstream,
            key,
            client,
        };
        let started = Instant::now();
        let now = Utc::now();
        let fresh = match read_copies(upstream).await {
            Ok(copies) => Some(copies),
            Err(CallError::Unavailable {
                service: "analytics",
                reason,
            }) => {
                tracing::warn!(%reason, "the consistency monitor compares with the copies it read last");
                None
            }
            Err(error) => return Err(error.into()),
        };
        let reachable = fresh.is_some();
        let snapshot = match fresh {
            Some(copies) => self.snapshot.insert(Snapshot { at: now, copies }),
            None => self.snapshot.as_mut().ok_or(MonitorError::NoCopies)?,
        };
        let copies = &mut snapshot.copies;
        let (mut walk, orphans) = walk_the_owner(&ask, copies, now).await?;
        let mut alive = HashSet::new();
        for link in links_by_id(upstream, key, client, &orphans).await? {
            if let Ok(id) = link.id.parse::<Uuid>() {
                alive.insert(id);
            }
            walk.check(&link, copies, now);
        }
        walk.findings
            .extend(orphaned(&orphans, &alive, copies, &self.first_seen, now));
        if reachable && !walk.findings.is_empty() {
            look_again(upstream, copies, &mut walk.findings).await;
        }
        self.first_seen = walk
            .findings
            .iter()
            .filter(|f| f.kind == Kind::Orphaned)
            .map(|f| (f.id, f.since))
            .collect();
        Ok(report(
            walk,
            copies.len(),
            reachable,
            snapshot.at,
            now,
            started,
        ))
    }
}

/// Walks the owner's links a page at a time, comparing each with its copy;
/// returns what it found and the copies whose link it did not meet.
async fn walk_the_owner(
    ask: &Asker<'_>,
    copies: &HashMap<Uuid, CopyState>,
    now: DateTime<Utc>,
) -> Result<(Walk, Vec<Uuid>), MonitorError> {
    let mut walk = Walk::default();
    let mut seen = HashSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = page_query(OWNER_PAGE, cursor.as_deref());
        let page = ask.upstream.list_links(ask.key, ask.client, &query).await?;
        for link in &page.items {
            if let Ok(id) = link.id.parse::<Uuid>() {
                seen.insert(id);
            }
            walk.check(link, copies, now);
        }
        match page.next_cursor {
            Some(next) if cursor.as_deref() != Some(next.as_str()) => cursor = Some(next),
            _ => break,
        }
    }
    let unmet = copies
        .iter()
        .filter(|(id, c)| c.fingerprint.is_some() && !c.deleted && !seen.contains(*id))
        .map(|(id, _)| *id)
        .collect();
    Ok((walk, unmet))
}

/// The unmet copies whose link is not live either (links the walk missed,
/// created after their page was read, were compared as any other): orphans,
/// each since it was first seen so.
fn orphaned(
    unmet: &[Uuid],
    alive: &HashSet<Uuid>,
    copies: &HashMap<Uuid, CopyState>,
    first_seen: &HashMap<Uuid, DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Vec<Finding> {
    unmet
        .iter()
        .filter(|id| !alive.contains(id))
        .map(|&id| Finding {
            id,
            code: copies
                .get(&id)
                .map(|c| c.code.to_string())
                .unwrap_or_default(),
            kind: Kind::Orphaned,
            since: *first_seen.get(&id).unwrap_or(&now),
            owner: None,
        })
        .collect()
}

/// Analytics may have caught up while the walk went on: every finding is
/// looked up again, and those its copy now answers are dropped.
async fn look_again(
    upstream: &Upstream,
    copies: &mut HashMap<Uuid, CopyState>,
    findings: &mut Vec<Finding>,
) {
    let ids: Vec<Uuid> = findings.iter().map(|f| f.id).collect();
    match copies_by_id(upstream, &ids).await {
        Ok(latest) => {
            for copy in &latest {
                copies.insert(copy.shortener_url_id, CopyState::of(copy));
            }
            findings.retain(|f| {
                let copy = copies.get(&f.id);
                match f.kind {
                    Kind::Orphaned => copy.is_some_and(|c| !c.deleted),
                    _ => !copy.is_some_and(|c| {
                        !c.deleted && c.fingerprint.is_some() && c.fingerprint == f.owner
                    }),
                }
            });
        }
        Err(error) => tracing::warn!(%error, "findings not looked up again"),
    }
}

/// The report of a comparison, its findings oldest first.
fn report(
    mut walk: Walk,
    copies_checked: usize,
    reachable: bool,
    copies_as_of: DateTime<Utc>,
    now: DateTime<Utc>,
    started: Instant,
) -> Report {
    let findings = &mut walk.findings;
    findings.sort_by_key(|f| f.since);
    let lag = findings.first().map_or(0.0, |f| {
        (now - f.since).num_milliseconds().max(0) as f64 / 1000.0
    });
    let of_kind = |kind: Kind| findings.iter().filter(move |f| f.kind == kind);
    let codes = |kind: Kind| -> Vec<String> {
        of_kind(kind)
            .take(MAX_CODES)
            .map(|f| f.code.clone())
            .collect()
    };
    Report {
        checked_at: rfc3339(now),
        links_checked: walk.links_checked,
        copies_checked: copies_checked as u64,
        missing: of_kind(Kind::Missing).count() as u64,
        stale: of_kind(Kind::Stale).count() as u64,
        orphaned: of_kind(Kind::Orphaned).count() as u64,
        missing_codes: codes(Kind::Missing),
        stale_codes: codes(Kind::Stale),
        orphaned_codes: codes(Kind::Orphaned),
        lag_seconds: lag,
        analytics_reachable: reachable,
        copies_as_of: rfc3339(copies_as_of),
        duration_ms: started.elapsed().as_millis() as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(url: &str, expires_at: Option<&str>) -> Link {
        Link {
            id: Uuid::new_v4().to_string(),
            code: "abc".into(),
            short_url: "http://s/abc".into(),
            url: url.into(),
            created_at: "2026-01-01T00:00:00Z".into(),
            updated_at: "2026-01-02T00:00:00Z".into(),
            expires_at: expires_at.map(Into::into),
            redirect_type: 302,
            click_count: 0,
            forward_query: false,
            password_protected: false,
            title: None,
            tags: Vec::new(),
        }
    }

    fn copy(target: Option<&str>, expires_at: Option<&str>, status: &str) -> CopyState {
        CopyState::of(&Copy {
            shortener_url_id: Uuid::new_v4(),
            short_code: "abc".into(),
            status: status.into(),
            target: target.map(Into::into),
            expires_at: expires_at.map(Into::into),
            deleted_at: (status == "deleted").then(|| "2026-01-03T00:00:00Z".into()),
        })
    }

    #[test]
    fn a_copy_is_current_stale_or_missing() {
        let now = Utc::now();
        let owner = link("https://example.com/a", Some("2030-01-01T00:00:00.250Z"));
        // Analytics keeps expiries to the second.
        let same = copy(
            Some("https://example.com/a"),
            Some("2030-01-01T00:00:00Z"),
            "active",
        );
        assert!(compare(&owner, Some(&same), now).is_none());

        let moved = copy(
            Some("https://example.com/b"),
            Some("2030-01-01T00:00:00Z"),
            "active",
        );
        let finding = compare(&owner, Some(&moved), now).expect("stale");
        assert_eq!(finding.kind, Kind::Stale);
        assert_eq!(rfc3339(finding.since), "2026-01-02T00:00:00Z");

        let unexpiring = copy(Some("https://example.com/a"), None, "active");
        assert_eq!(
            compare(&owner, Some(&unexpiring), now).map(|f| f.kind),
            Some(Kind::Stale)
        );
        let deleted = copy(
            Some("https://example.com/a"),
            Some("2030-01-01T00:00:00Z"),
            "deleted",
        );
        assert_eq!(
            compare(&owner, Some(&deleted), now).map(|f| f.kind),
            Some(Kind::Stale)
        );

        let clicks_only = copy(None, None, "unknown");
        let finding = compare(&owner, Some(&clicks_only), now).expect("missing");
        assert_eq!(finding.kind, Kind::Missing);
        assert_eq!(rfc3339(finding.since), "2026-01-01T00:00:00Z");
        assert_eq!(
            compare(&owner, None, now).map(|f| f.kind),
            Some(Kind::Missing)
        );
    }

    #[test]
    fn lookups_name_their_ids_and_pages_their_cursor() {
        let id = Uuid::nil();
        assert_eq!(
            ids_query(&[id, id], Some(100)),
            format!("ids={id},{id}&limit=100")
        );
        assert_eq!(page_query(100, None), "limit=100");
        assert_eq!(
            page_query(1000, Some("17~a b")),
            "limit=1000&cursor=17%7Ea+b"
        );
    }
}
