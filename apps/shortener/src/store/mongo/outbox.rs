//! The outbox in MongoDB: events written in their link's transaction,
//! read by the relay in write order and marked once JetStream has them.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mongodb::bson::{self, Binary, doc, oid::ObjectId, spec::BinarySubtype};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{MongoStore, time_from_bson, time_to_bson, unavailable, uuid_to_bson};
use crate::store::{Outbox, OutboxEvent, StoreError};

/// An outbox entry. `_id` is an ObjectId made by this process at write time:
/// increasing within a process, so sorting by it is write order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct OutboxDocument {
    #[serde(rename = "_id")]
    id: ObjectId,
    event_id: bson::Uuid,
    subject: String,
    event_version: i32,
    payload: Binary,
    created_at: bson::DateTime,
    sent_at: Option<bson::DateTime>,
    /// The W3C `traceparent` of the request that wrote the event; absent on
    /// untraced writes and on entries older than tracing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    traceparent: Option<String>,
}

impl OutboxDocument {
    pub(super) fn from_event(event: &OutboxEvent) -> Self {
        Self {
            id: ObjectId::new(),
            event_id: uuid_to_bson(event.event_id),
            subject: event.subject.clone(),
            event_version: i32::try_from(event.event_version).unwrap_or(i32::MAX),
            payload: Binary {
                subtype: BinarySubtype::Generic,
                bytes: event.payload.clone(),
            },
            created_at: time_to_bson(event.created_at),
            sent_at: None,
            traceparent: event.traceparent.clone(),
        }
    }
}

#[async_trait]
impl Outbox for MongoStore {
    async fn outbox_pending(&self, limit: u32) -> Result<Vec<OutboxEvent>, StoreError> {
        let mut cursor = self
            .outbox
            .find(doc! { "sent_at": null })
            .sort(doc! { "_id": 1 })
            .limit(i64::from(limit))
            .await
            .map_err(unavailable)?;
        let mut events = Vec::new();
        while cursor.advance().await.map_err(unavailable)? {
            let row = cursor
                .deserialize_current()
                .map_err(|e| StoreError::Unavailable(e.into()))?;
            events.push(OutboxEvent {
                event_id: Uuid::from_bytes(row.event_id.bytes()),
                subject: row.subject,
                event_version: u32::try_from(row.event_version).unwrap_or_default(),
                payload: row.payload.bytes,
                created_at: time_from_bson(row.created_at),
                traceparent: row.traceparent,
            });
        }
        Ok(events)
    }

    async fn outbox_mark_sent(
        &self,
        event_ids: &[Uuid],
        sent_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if event_ids.is_empty() {
            return Ok(());
        }
        let ids: Vec<bson::Uuid> = event_ids.iter().copied().map(uuid_to_bson).collect();
        self.outbox
            .update_many(
                doc! { "event_id": { "$in": ids } },
                doc! { "$set": { "sent_at": time_to_bson(sent_at) } },
            )
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn outbox_depth(&self) -> Result<u64, StoreError> {
        self.outbox
            .count_documents(doc! { "sent_at": null })
            .await
            .map_err(unavailable)
    }
}
