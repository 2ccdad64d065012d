//! What analytics keeps: its own rows, built from the shortener's events.
//!
//! The link copy ([`LinkCopy`]) is controlled duplication: only what stats
//! need, keyed by the shortener's id (`shortener_url_id`), a soft reference
//! with no constraint behind it. The consumers of different subjects run
//! independently, so a click, an update or a deletion may arrive before the
//! link's creation; [`LinkCopy::apply`] merges in any order and any number of
//! times to the same row.
//!
//! Every change is also kept as its own row (`link_changes`, one per event),
//! and the copy is [`LinkCopy::fold`]ed from all of them, with the number of
//! changes as its version. Several analytics instances may then write one
//! link at once and never lose a change: see [`crate::links`].

use chrono::{DateTime, Utc};
use contracts::{Envelope, UrlClicked, UrlCreated, UrlDeleted, UrlUpdated};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::enrich;

/// One stored click: the event, enriched. Times are whole seconds (UTC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClickRow {
    pub event_id: Uuid,
    pub shortener_url_id: Uuid,
    pub short_code: String,
    pub clicked_at: i64,
    /// Empty when there was none.
    pub referrer_host: String,
    pub browser: String,
    pub os: String,
    pub device: String,
    pub is_bot: bool,
    /// Empty when the shortener saw no client address.
    pub visitor_key: String,
    /// ISO 3166-1 alpha-2, or empty.
    pub country: String,
}

impl ClickRow {
    /// The row of a click event; its strings move into the row.
    pub fn from_event(event: Envelope<UrlClicked>) -> Self {
        let data = event.data;
        let agent = enrich::agent(data.user_agent.as_deref());
        Self {
            event_id: event.event_id,
            shortener_url_id: data.url_id,
            short_code: data.short_code,
            clicked_at: data.clicked_at.timestamp(),
            referrer_host: enrich::referrer_host(data.referrer.as_deref()),
            browser: agent.browser,
            os: agent.os,
            device: agent.device,
            is_bot: agent.is_bot,
            visitor_key: data.visitor_key.unwrap_or_default(),
            country: enrich::country(data.country.as_deref()),
        }
    }
}

/// Analytics' copy of a link (`url_creations`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkCopy {
    pub shortener_url_id: Uuid,
    pub short_code: String,
    /// `None` until the created event arrived (the link is then an orphan).
    pub target: Option<String>,
    pub target_host: Option<String>,
    /// Unix seconds; `None` until the created event arrived.
    pub created_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub deleted_at: Option<i64>,
    /// `updated_at` of the newest update applied, in microseconds; 0 for none.
    /// Older updates (redelivered late) are ignored.
    pub last_update_us: i64,
    /// Whether an update set the expiry: then a late created event does not
    /// put its original expiry back.
    pub expires_from_update: bool,
    /// Bumped on every change; the newest version is the row.
    pub version: u64,
}

/// A change to a link copy, from any of the link subjects. Stored as JSON
/// (`link_changes.body`), so its serde form is a storage format: add
/// variants, never rename one.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", content = "change", rename_all = "snake_case")]
pub enum LinkChange {
    Created(Envelope<UrlCreated>),
    Updated(Envelope<UrlUpdated>),
    Deleted(Envelope<UrlDeleted>),
    /// A click for a link not seen yet: keep a row so the code resolves and
    /// the reconciliation report can list it until the creation arrives.
    Clicked {
        url_id: Uuid,
        short_code: String,
    },
    /// The whole copy as it stood when changes began to be stored one by
    /// one (written once per link by the store's migration).
    Snapshot(LinkCopy),
}

impl LinkChange {
    pub fn url_id(&self) -> Uuid {
        match self {
            LinkChange::Created(e) => e.data.url_id,
            LinkChange::Updated(e) => e.data.url_id,
            LinkChange::Deleted(e) => e.data.url_id,
            LinkChange::Clicked { url_id, .. } => *url_id,
            LinkChange::Snapshot(copy) => copy.shortener_url_id,
        }
    }

    /// What makes a stored change unique within its link: the event's id,
    /// and one fixed id each for "a click was seen" and the snapshot.
    pub fn change_id(&self) -> Uuid {
        match self {
            LinkChange::Created(e) => e.event_id,
            LinkChange::Updated(e) => e.event_id,
            LinkChange::Deleted(e) => e.event_id,
            LinkChange::Clicked { .. } => Uuid::nil(),
            LinkChange::Snapshot(_) => Uuid::max(),
        }
    }

    /// The fixed order of [`LinkCopy::fold`]: the snapshot, then what
    /// creates the row, then updates by time, then deletions.
    fn fold_key(&self) -> (u8, i64, Uuid) {
        let rank_and_time = match self {
            LinkChange::Snapshot(_) => (0, 0),
            LinkChange::Clicked { .. } => (1, 0),
            LinkChange::Created(_) => (2, 0),
            LinkChange::Updated(e) => (3, micros(e.data.updated_at)),
            LinkChange::Deleted(_) => (4, 0),
        };
        (rank_and_time.0, rank_and_time.1, self.change_id())
    }

    fn short_code(&self) -> &str {
        match self {
            LinkChange::Created(e) => &e.data.short_code,
            LinkChange::Updated(e) => &e.data.short_code,
            LinkChange::Deleted(e) => &e.data.short_code,
            LinkChange::Clicked { short_code, .. } => short_code,
            LinkChange::Snapshot(copy) => &copy.short_code,
        }
    }
}

fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

impl LinkCopy {
    /// An empty row for a link known only by its id and code.
    pub fn placeholder(shortener_url_id: Uuid, short_code: &str) -> Self {
        Self {
            shortener_url_id,
            short_code: short_code.to_owned(),
            target: None,
            target_host: None,
            created_at: None,
            expires_at: None,
            deleted_at: None,
            last_update_us: 0,
            expires_from_update: false,
            version: 0,
        }
    }

    /// Merges a change in. Commutative where order cannot be known and
    /// idempotent: returns whether the row changed (so unchanged rows are
    /// not rewritten).
    pub fn apply(&mut self, change: &LinkChange) -> bool {
        let before = self.clone();
        match change {
            LinkChange::Created(event) => {
                let data = &event.data;
                self.created_at = Some(data.created_at.timestamp());
                if self.target.is_none() {
                    self.target = Some(data.original_url.clone());
                    self.target_host = Some(data.target_host.clone());
                }
                if !self.expires_from_update {
                    self.expires_at = data.expires_at.map(|t| t.timestamp());
                }
            }
            LinkChange::Updated(event) => {
                let data = &event.data;
                let at = micros(data.updated_at);
                if at >= self.last_update_us {
                    self.last_update_us = at;
                    if let Some(url) = &data.original_url {
                        self.target_host = contracts::UrlCreated::host_of(url);
                        self.target = Some(url.clone());
                    }
                    if let Some(expiry) = data.expires_at {
                        self.expires_at = expiry.map(|t| t.timestamp());
                        self.expires_from_update = true;
                    }
                }
            }
            LinkChange::Deleted(event) => {
                let at = event.data.deleted_at.timestamp();
                // The first deletion counts; a redelivery does not move it.
                self.deleted_at = Some(self.deleted_at.map_or(at, |d| d.min(at)));
            }
            LinkChange::Clicked { .. } => {}
            LinkChange::Snapshot(copy) => *self = copy.clone(),
        }
        if self.short_code.is_empty() {
            self.short_code = change.short_code().to_owned();
        }
        let changed = *self != before;
        if changed {
            self.version += 1;
        }
        changed
    }

    /// The copy that these stored changes of one link make. The same set
    /// gives the same row whatever order its members arrived in, and its
    /// version is the number of changes (on top of a snapshot's): a copy
    /// folded from more changes always has the higher version.
    pub fn fold(url_id: Uuid, mut changes: Vec<LinkChange>) -> LinkCopy {
        changes.sort_by_key(LinkChange::fold_key);
        changes.dedup_by_key(|c| c.change_id());
        let mut copy = LinkCopy::placeholder(url_id, "");
        let mut version = 0;
        for change in &changes {
            copy.apply(change);
            version += match change {
                LinkChange::Snapshot(snapshot) => snapshot.version,
                _ => 1,
            };
        }
        copy.version = version;
        copy
    }

    /// `active`, `expired`, `deleted`, or `unknown` (no creation seen yet).
    pub fn status(&self, now: i64) -> &'static str {
        if self.deleted_at.is_some() {
            "deleted"
        } else if self.created_at.is_none() {
            "unknown"
        } else if self.expires_at.is_some_and(|e| e <= now) {
            "expired"
        } else {
            "active"
        }
    }
}

/// Time bucket of a series.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
#[serde(try_from = "String")]
#[schema(rename_all = "lowercase")]
pub enum Bucket {
    Hour,
    #[default]
    Day,
}

impl TryFrom<String> for Bucket {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        match text.trim() {
            "hour" => Ok(Bucket::Hour),
            "day" => Ok(Bucket::Day),
            other => Err(format!("{other:?} is not a bucket; use hour or day")),
        }
    }
}

impl Bucket {
    pub fn seconds(self) -> i64 {
        match self {
            Bucket::Hour => 3_600,
            Bucket::Day => 86_400,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Bucket::Hour => "hour",
            Bucket::Day => "day",
        }
    }

    /// Start of the bucket holding `t` (UTC).
    pub fn floor(self, t: i64) -> i64 {
        t.div_euclid(self.seconds()) * self.seconds()
    }
}

/// What a stats query covers: one link, clicks in `[from, to)` (seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub url_id: Uuid,
    pub from: i64,
    pub to: i64,
}

/// A dimension clicks are ranked by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    Referrer,
    Browser,
    Os,
    Device,
    Country,
}

impl Dimension {
    /// Every dimension. A dimension's index here is stored (SQLite's
    /// `click_day_values.dimension`): add at the end, never reorder.
    pub const ALL: [Dimension; 5] = [
        Dimension::Referrer,
        Dimension::Browser,
        Dimension::Os,
        Dimension::Device,
        Dimension::Country,
    ];

    /// The column holding it, in both stores.
    pub fn column(self) -> &'static str {
        match self {
            Dimension::Referrer => "referrer_host",
            Dimension::Browser => "browser",
            Dimension::Os => "os",
            Dimension::Device => "device",
            Dimension::Country => "country",
        }
    }
}

/// Totals of a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub clicks: u64,
    pub unique_visitors: u64,
    pub bot_clicks: u64,
}

/// One non-empty bucket as a store returns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketCount {
    pub start: i64,
    pub clicks: u64,
    pub unique_visitors: u64,
}

/// A link whose clicks arrived but whose creation did not, within the grace period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orphan {
    pub shortener_url_id: Uuid,
    pub short_code: String,
    pub clicks: u64,
    pub first_click_at: i64,
    pub last_click_at: i64,
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(secs, 0).unwrap()
    }

    fn created(id: Uuid, expires: Option<i64>) -> LinkChange {
        LinkChange::Created(Envelope::new(
            "shortener",
            at(100),
            UrlCreated {
                url_id: id,
                short_code: "abc".into(),
                original_url: "https://example.com/a".into(),
                target_host: "example.com".into(),
                created_at: at(100),
                expires_at: expires.map(at),
            },
        ))
    }

    fn updated(id: Uuid, when: i64, url: Option<&str>, expires: Option<Option<i64>>) -> LinkChange {
        LinkChange::Updated(Envelope::new(
            "shortener",
            at(when),
            UrlUpdated {
                url_id: id,
                short_code: "abc".into(),
                original_url: url.map(str::to_owned),
                expires_at: expires.map(|e| e.map(at)),
                redirect_type: None,
                updated_at: at(when),
            },
        ))
    }

    fn deleted(id: Uuid, when: i64) -> LinkChange {
        LinkChange::Deleted(Envelope::new(
            "shortener",
            at(when),
            UrlDeleted {
                url_id: id,
                short_code: "abc".into(),
                deleted_at: at(when),
            },
        ))
    }

    /// Every order of the same changes, each applied twice, ends in the same row.
    #[test]
    fn any_order_and_any_repetition_gives_the_same_copy() {
        let id = Uuid::now_v7();
        let changes = [
            LinkChange::Clicked {
                url_id: id,
                short_code: "abc".into(),
            },
            created(id, Some(10_000)),
            updated(id, 200, Some("https://other.example/b"), Some(None)),
            updated(id, 150, Some("https://older.example/"), None),
            deleted(id, 300),
        ];
        let mut results = Vec::new();
        let mut order: Vec<usize> = (0..changes.len()).collect();
        for rotation in 0..changes.len() {
            order.rotate_left(1);
            for reversed in [false, true] {
                let mut sequence = order.clone();
                if reversed {
                    sequence.reverse();
                }
                let mut copy = LinkCopy::placeholder(id, "");
                for &i in sequence.iter().chain(sequence.iter()) {
                    copy.apply(&changes[i]);
                }
                copy.version = 0;
                results.push((rotation, copy));
            }
        }
        let expected = LinkCopy {
            shortener_url_id: id,
            short_code: "abc".into(),
            target: Some("https://other.example/b".into()),
            target_host: Some("other.example".into()),
            created_at: Some(100),
            expires_at: None,
            deleted_at: Some(300),
            last_update_us: 200_000_000,
            expires_from_update: true,
            version: 0,
        };
        for (rotation, copy) in results {
            assert_eq!(copy, expected, "rotation {rotation}");
        }
    }

    /// What two instances folding the same stored changes write: the same
    /// row, whatever order each read them in; more changes, higher version.
    #[test]
    fn folding_stored_changes_is_order_free_and_versions_grow() {
        let id = Uuid::now_v7();
        let changes = [
            created(id, Some(10_000)),
            updated(id, 200, Some("https://other.example/b"), Some(None)),
            updated(id, 200, Some("https://same-time.example/"), None),
            deleted(id, 300),
            LinkChange::Clicked {
                url_id: id,
                short_code: "abc".into(),
            },
        ];
        let stored: Vec<LinkChange> = changes
            .iter()
            .map(|c| serde_json::from_str(&serde_json::to_string(c).unwrap()).unwrap())
            .collect();
        let forwards = LinkCopy::fold(id, stored.clone());
        let mut backwards = stored.clone();
        backwards.reverse();
        backwards.extend(stored.iter().cloned());
        assert_eq!(LinkCopy::fold(id, backwards), forwards);
        assert_eq!(forwards.version, 5);
        assert_eq!(forwards.deleted_at, Some(300));
        assert!(LinkCopy::fold(id, stored[..3].to_vec()).version < forwards.version);

        // A snapshot (a copy from before changes were kept) carries on.
        let snapshot = LinkChange::Snapshot(LinkCopy::fold(id, stored[..1].to_vec()));
        let after = LinkCopy::fold(id, vec![snapshot, stored[3].clone()]);
        assert_eq!(after.created_at, Some(100));
        assert_eq!(after.deleted_at, Some(300));
        assert_eq!(after.version, 2);
    }

    #[test]
    fn reapplying_changes_nothing() {
        let id = Uuid::now_v7();
        let mut copy = LinkCopy::placeholder(id, "abc");
        assert!(copy.apply(&created(id, None)));
        assert_eq!(copy.version, 1);
        assert!(!copy.apply(&created(id, None)));
        assert_eq!(copy.version, 1);
        assert_eq!(copy.status(1_000), "active");
        copy.apply(&deleted(id, 500));
        assert_eq!(copy.status(1_000), "deleted");
    }

    #[test]
    fn buckets_floor_in_utc() {
        assert_eq!(Bucket::Hour.floor(7_199), 3_600);
        assert_eq!(Bucket::Day.floor(86_399), 0);
        assert_eq!(Bucket::Day.floor(-1), -86_400);
    }
}
