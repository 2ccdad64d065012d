//! Keeps the link copies (`url_creations`) current.
//!
//! Every change is a read-merge-write of whole rows ([`LinkCopy::apply`]),
//! serialised by one lock so that the consumers of different subjects never
//! overwrite each other's merge. Link events are few next to clicks, so one
//! lock costs nothing measurable. Ids already known to have a row are
//! remembered, so the click path touches the store only for new links.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tokio::sync::Mutex;
use uuid::Uuid;

use crate::model::{LinkChange, LinkCopy};
use crate::store::{AnalyticsStore, StoreError};

/// Known ids are remembered up to this many; beyond it the set starts over,
/// which only costs a store read per link.
const MAX_KNOWN: usize = 1_000_000;

pub struct LinkCopies {
    store: Arc<dyn AnalyticsStore>,
    known: Mutex<HashSet<Uuid>>,
}

impl LinkCopies {
    pub fn new(store: Arc<dyn AnalyticsStore>) -> Self {
        Self {
            store,
            known: Mutex::new(HashSet::new()),
        }
    }

    /// Forgets which ids have rows (after the store was reset).
    pub async fn forget(&self) {
        self.known.lock().await.clear();
    }

    /// Applies changes in the order given; returns when the rows are stored.
    pub async fn apply(&self, changes: &[LinkChange]) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut known = self.known.lock().await;
        let mut ids: Vec<Uuid> = changes.iter().map(LinkChange::url_id).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut rows: HashMap<Uuid, LinkCopy> = self
            .store
            .links(&ids)
            .await?
            .into_iter()
            .map(|l| (l.shortener_url_id, l))
            .collect();
        let mut changed = HashSet::new();
        for change in changes {
            let id = change.url_id();
            // A new row always changes: every change sets its code.
            let row = rows
                .entry(id)
                .or_insert_with(|| LinkCopy::placeholder(id, ""));
            if row.apply(change) {
                changed.insert(id);
            }
        }
        let to_save: Vec<LinkCopy> = changed.iter().map(|id| rows[id].clone()).collect();
        self.store.save_links(&to_save).await?;
        if known.len() + ids.len() > MAX_KNOWN {
            known.clear();
        }
        known.extend(ids);
        Ok(())
    }

    /// Makes sure every link these clicks name has a row (a placeholder
    /// when its creation has not arrived yet).
    pub async fn ensure(&self, links: &[(Uuid, &str)]) -> Result<(), StoreError> {
        let unknown: Vec<LinkChange> = {
            let known = self.known.lock().await;
            let mut seen = HashSet::new();
            links
                .iter()
                .filter(|(id, _)| !known.contains(id) && seen.insert(*id))
                .map(|(id, code)| LinkChange::Clicked {
                    url_id: *id,
                    short_code: (*code).to_owned(),
                })
                .collect()
        };
        self.apply(&unknown).await
    }
}
