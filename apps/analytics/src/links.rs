//! Keeps the link copies (`url_creations`) current, correctly even when
//! several analytics instances (or the consumers of several subjects) write
//! one link at the same moment.
//!
//! A change is never merged into a row that was read earlier. Instead:
//!
//! 1. the change is stored as its own row (`link_changes`, unique by event);
//! 2. then every stored change of the link is read back;
//! 3. the copy is folded from them ([`LinkCopy::fold`]), its version being
//!    the number of changes, and written; the store keeps the highest version.
//!
//! Two writers A and B each store before they read, so whichever reads last
//! sees both changes and writes the highest version: no change is ever lost,
//! and equal versions are equal rows. Ids already known to have a row are
//! remembered, so the click path touches the store only for new links.
//!
//! That needs each reader to see what the other stored. On replicated
//! ClickHouse two instances may be on different replicas, and a change may
//! still be on its way when the other reads; so there every change also
//! marks its link, and the compactor, once its replica has caught up, folds
//! the marked links again (`store/clickhouse/rollups.rs`).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use uuid::Uuid;

use crate::domain::LinkChange;
use crate::store::{ChangeRecord, LinkCopies, StoreError};

/// Known ids are remembered up to this many; beyond it the set starts over,
/// which only costs a store read per link.
const MAX_KNOWN: usize = 1_000_000;

pub struct CopyKeeper {
    store: Arc<dyn LinkCopies>,
    known: Mutex<HashSet<Uuid>>,
}

impl CopyKeeper {
    pub fn new(store: Arc<dyn LinkCopies>) -> Self {
        Self {
            store,
            known: Mutex::new(HashSet::new()),
        }
    }

    fn remember(&self, ids: impl ExactSizeIterator<Item = Uuid>) {
        let mut known = self.known.lock().expect("not poisoned");
        if known.len() + ids.len() > MAX_KNOWN {
            known.clear();
        }
        known.extend(ids);
    }

    /// Stores the changes and rewrites the copies they touch; returns when
    /// both are durable.
    pub async fn apply(&self, changes: &[LinkChange]) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let records: Vec<ChangeRecord> = changes.iter().map(ChangeRecord::of).collect();
        self.store.record_link_changes(&records).await?;
        let mut ids: Vec<Uuid> = records.iter().map(|r| r.url_id).collect();
        ids.sort_unstable();
        ids.dedup();
        self.store.refold_links(&ids).await?;
        self.remember(ids.into_iter());
        Ok(())
    }

    /// Makes sure every link these clicks name has a row (a placeholder
    /// when its creation has not arrived yet).
    pub async fn ensure(&self, links: &[(Uuid, &str)]) -> Result<(), StoreError> {
        let unknown: Vec<(Uuid, &str)> = {
            let known = self.known.lock().expect("not poisoned");
            let mut seen = HashSet::new();
            links
                .iter()
                .filter(|(id, _)| !known.contains(id) && seen.insert(*id))
                .copied()
                .collect()
        };
        if unknown.is_empty() {
            return Ok(());
        }
        let ids: Vec<Uuid> = unknown.iter().map(|(id, _)| *id).collect();
        let present: HashSet<Uuid> = self
            .store
            .links(&ids)
            .await?
            .into_iter()
            .map(|l| l.shortener_url_id)
            .collect();
        let missing: Vec<LinkChange> = unknown
            .iter()
            .filter(|(id, _)| !present.contains(id))
            .map(|(id, code)| LinkChange::Clicked {
                url_id: *id,
                short_code: (*code).to_owned(),
            })
            .collect();
        self.remember(present.into_iter());
        self.apply(&missing).await
    }
}
