//! The click spool in MongoDB: click events JetStream could not take, kept
//! until the relay publishes them and counts them in the same transaction.

use async_trait::async_trait;
use mongodb::bson::{self, Binary, doc, spec::BinarySubtype};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::links::{add_counts, bson_counts};
use super::{
    MongoStore, TxnError, is_duplicate_key, time_from_bson, time_to_bson, unavailable, uuid_to_bson,
};
use crate::store::{ClickSpool, SpoolState, SpooledClick, StoreError};

/// A spooled click. `_id` is the event id: a UUID v7, so sorting by it is
/// click order, and spooling the same click twice keeps one document.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct SpoolDocument {
    #[serde(rename = "_id")]
    id: bson::Uuid,
    url_id: bson::Uuid,
    clicked_at: bson::DateTime,
    payload: Binary,
}

impl SpoolDocument {
    fn from_click(click: &SpooledClick) -> Self {
        Self {
            id: uuid_to_bson(click.event_id),
            url_id: uuid_to_bson(click.url_id),
            clicked_at: time_to_bson(click.clicked_at),
            payload: Binary {
                subtype: BinarySubtype::Generic,
                bytes: click.payload.to_vec(),
            },
        }
    }

    fn into_click(self) -> SpooledClick {
        SpooledClick {
            event_id: Uuid::from_bytes(self.id.bytes()),
            url_id: Uuid::from_bytes(self.url_id.bytes()),
            clicked_at: time_from_bson(self.clicked_at),
            payload: self.payload.bytes.into(),
        }
    }
}

#[async_trait]
impl ClickSpool for MongoStore {
    async fn spool_clicks(&self, clicks: &[SpooledClick]) -> Result<(), StoreError> {
        if clicks.is_empty() {
            return Ok(());
        }
        let documents: Vec<SpoolDocument> = clicks.iter().map(SpoolDocument::from_click).collect();
        let inserted = self
            .transaction(|session| {
                let (spool, documents) = (self.spool.clone(), documents.clone());
                Box::pin(async move {
                    match spool.insert_many(&documents).session(&mut *session).await {
                        Ok(_) => Ok(()),
                        Err(e) if is_duplicate_key(&e) => {
                            Err(TxnError::Store(StoreError::CodeTaken(String::new())))
                        }
                        Err(e) => Err(e.into()),
                    }
                })
            })
            .await;
        match inserted {
            // Some were spooled before (a commit whose result was unknown):
            // the slow path, one upsert each, keeps every click once.
            Err(StoreError::CodeTaken(_)) => {
                self.transaction(|session| {
                    let (spool, documents) = (self.spool.clone(), documents.clone());
                    Box::pin(async move {
                        for document in &documents {
                            spool
                                .replace_one(doc! { "_id": document.id }, document)
                                .upsert(true)
                                .session(&mut *session)
                                .await?;
                        }
                        Ok(())
                    })
                })
                .await
            }
            other => other,
        }
    }

    async fn spooled_clicks(&self, limit: u32) -> Result<Vec<SpooledClick>, StoreError> {
        let mut cursor = self
            .spool
            .find(doc! {})
            .sort(doc! { "_id": 1 })
            .limit(i64::from(limit))
            .await
            .map_err(unavailable)?;
        let mut clicks = Vec::new();
        while cursor.advance().await.map_err(unavailable)? {
            let document = cursor
                .deserialize_current()
                .map_err(|e| StoreError::Unavailable(e.into()))?;
            clicks.push(document.into_click());
        }
        Ok(clicks)
    }

    async fn unspool_clicks(
        &self,
        event_ids: &[Uuid],
        counts: &[(Uuid, u64)],
    ) -> Result<(), StoreError> {
        let ids: Vec<bson::Uuid> = event_ids.iter().copied().map(uuid_to_bson).collect();
        let counts = bson_counts(counts);
        self.transaction(|session| {
            let (spool, links) = (self.spool.clone(), self.links.clone());
            let (ids, counts) = (ids.clone(), counts.clone());
            Box::pin(async move {
                spool
                    .delete_many(doc! { "_id": { "$in": ids } })
                    .session(&mut *session)
                    .await?;
                add_counts(&links, session, &counts).await
            })
        })
        .await
    }

    async fn spool_state(&self) -> Result<SpoolState, StoreError> {
        let depth = self
            .spool
            .count_documents(doc! {})
            .await
            .map_err(unavailable)?;
        let oldest = self
            .spool
            .find_one(doc! {})
            .sort(doc! { "_id": 1 })
            .await
            .map_err(unavailable)?
            .map(|d| time_from_bson(d.clicked_at));
        Ok(SpoolState { depth, oldest })
    }
}
