//! The click spool in SQLite: click events JetStream could not take, kept
//! until the relay publishes them and counts them in the same transaction.

use async_trait::async_trait;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
};
use uuid::Uuid;

use super::entities::click_spool;
use super::links::add_counts;
use super::{SqliteStore, unavailable};
use crate::store::{ClickSpool, SpoolState, SpooledClick, StoreError};

#[async_trait]
impl ClickSpool for SqliteStore {
    async fn spool_clicks(&self, clicks: &[SpooledClick]) -> Result<(), StoreError> {
        if clicks.is_empty() {
            return Ok(());
        }
        let txn = self.db.begin().await.map_err(unavailable)?;
        // Bounded statements: SQLite caps the variables of one statement.
        for chunk in clicks.chunks(1_000) {
            click_spool::Entity::insert_many(chunk.iter().map(|click| click_spool::ActiveModel {
                seq: NotSet,
                event_id: Set(click.event_id),
                url_id: Set(click.url_id),
                clicked_at: Set(click.clicked_at),
                payload: Set(click.payload.to_vec()),
            }))
            .on_conflict(
                OnConflict::column(click_spool::Column::EventId)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await
            .map_err(unavailable)?;
        }
        txn.commit().await.map_err(unavailable)
    }

    async fn spooled_clicks(&self, limit: u32) -> Result<Vec<SpooledClick>, StoreError> {
        Ok(click_spool::Entity::find()
            .order_by_asc(click_spool::Column::Seq)
            .limit(u64::from(limit))
            .all(&self.db)
            .await
            .map_err(unavailable)?
            .into_iter()
            .map(|row| SpooledClick {
                event_id: row.event_id,
                url_id: row.url_id,
                clicked_at: row.clicked_at,
                payload: row.payload.into(),
            })
            .collect())
    }

    async fn unspool_clicks(
        &self,
        event_ids: &[Uuid],
        counts: &[(Uuid, u64)],
    ) -> Result<(), StoreError> {
        let txn = self.db.begin().await.map_err(unavailable)?;
        for chunk in event_ids.chunks(1_000) {
            click_spool::Entity::delete_many()
                .filter(click_spool::Column::EventId.is_in(chunk.iter().copied()))
                .exec(&txn)
                .await
                .map_err(unavailable)?;
        }
        add_counts(&txn, counts).await?;
        txn.commit().await.map_err(unavailable)
    }

    async fn spool_state(&self) -> Result<SpoolState, StoreError> {
        let depth = click_spool::Entity::find()
            .count(&self.db)
            .await
            .map_err(unavailable)?;
        let oldest = click_spool::Entity::find()
            .order_by_asc(click_spool::Column::Seq)
            .one(&self.db)
            .await
            .map_err(unavailable)?
            .map(|row| row.clicked_at);
        Ok(SpoolState { depth, oldest })
    }
}
