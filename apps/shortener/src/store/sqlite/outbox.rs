//! The outbox in SQLite: events written with their link, read by the relay
//! in write order and marked once JetStream has them.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use uuid::Uuid;

use super::entities::outbox;
use super::{SqliteStore, unavailable};
use crate::store::{Outbox, OutboxEvent, StoreError};

pub(super) fn outbox_row(event: &OutboxEvent) -> outbox::ActiveModel {
    outbox::ActiveModel {
        event_id: Set(event.event_id),
        subject: Set(event.subject.clone()),
        event_version: Set(i32::try_from(event.event_version).unwrap_or(i32::MAX)),
        payload: Set(event.payload.clone()),
        created_at: Set(event.created_at),
        sent_at: Set(None),
        traceparent: Set(event.traceparent.clone()),
        ..Default::default()
    }
}

#[async_trait]
impl Outbox for SqliteStore {
    async fn outbox_pending(&self, limit: u32) -> Result<Vec<OutboxEvent>, StoreError> {
        Ok(outbox::Entity::find()
            .filter(outbox::Column::SentAt.is_null())
            .order_by_asc(outbox::Column::Seq)
            .limit(u64::from(limit))
            .all(&self.db)
            .await
            .map_err(unavailable)?
            .into_iter()
            .map(|row| OutboxEvent {
                event_id: row.event_id,
                subject: row.subject,
                event_version: u32::try_from(row.event_version).unwrap_or_default(),
                payload: row.payload,
                created_at: row.created_at,
                traceparent: row.traceparent,
            })
            .collect())
    }

    async fn outbox_mark_sent(
        &self,
        event_ids: &[Uuid],
        sent_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if event_ids.is_empty() {
            return Ok(());
        }
        outbox::Entity::update_many()
            .col_expr(outbox::Column::SentAt, Expr::value(sent_at))
            .filter(outbox::Column::EventId.is_in(event_ids.iter().copied()))
            .exec(&self.db)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn outbox_depth(&self) -> Result<u64, StoreError> {
        outbox::Entity::find()
            .filter(outbox::Column::SentAt.is_null())
            .count(&self.db)
            .await
            .map_err(unavailable)
    }
}
