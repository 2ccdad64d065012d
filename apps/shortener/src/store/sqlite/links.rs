//! Links in SQLite: rows of `links`, their counters, and the created and
//! changed events written to the outbox in the same transaction.

use async_trait::async_trait;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, SqlErr,
    TransactionTrait,
};
use uuid::Uuid;

use super::entities::{links, outbox};
use super::outbox::outbox_row;
use super::{SqliteStore, to_i64, unavailable};
use crate::domain::{ShortCode, TargetUrl};
use crate::store::{
    Link, LinkOrder, LinkQuery, Links, OutboxEvent, StoreError, stored_redirect_type,
};

fn to_link(model: links::Model) -> Result<Link, StoreError> {
    let redirect_type = stored_redirect_type(&model.code, model.redirect_type)?;
    let tags = serde_json::from_str(&model.tags).map_err(|e| {
        StoreError::Unavailable(anyhow::anyhow!(
            "link {:?} has invalid stored tags: {e}",
            model.code
        ))
    })?;
    Ok(Link {
        id: model.id,
        code: ShortCode::from_store(model.code),
        url: TargetUrl::from_store(model.url, model.target_host),
        redirect_type,
        created_at: model.created_at,
        updated_at: model.updated_at,
        expires_at: model.expires_at,
        deleted_at: model.deleted_at,
        click_count: u64::try_from(model.click_count).unwrap_or_default(),
        version: u64::try_from(model.version).unwrap_or_default(),
        owner: model.owner,
        forward_query: model.forward_query,
        title: model.title,
        tags,
        password_hash: model.password_hash,
    })
}

fn link_row(link: &Link) -> links::ActiveModel {
    links::ActiveModel {
        id: Set(link.id),
        code: Set(link.code.to_string()),
        url: Set(link.url.to_string()),
        target_host: Set(link.url.host().to_owned()),
        redirect_type: Set(i32::from(link.redirect_type.status())),
        created_at: Set(link.created_at),
        updated_at: Set(link.updated_at),
        expires_at: Set(link.expires_at),
        deleted_at: Set(link.deleted_at),
        click_count: Set(to_i64(link.click_count)),
        version: Set(to_i64(link.version)),
        owner: Set(link.owner),
        forward_query: Set(link.forward_query),
        title: Set(link.title.clone()),
        tags: Set(serde_json::Value::from(link.tags.clone()).to_string()),
        password_hash: Set(link.password_hash.clone()),
    }
}

/// Adds served redirects to the links' counters inside `txn`: one
/// statement per few hundred links, not one per link, since a busy
/// shortener flushes thousands of links every second.
pub(super) async fn add_counts(
    txn: &sea_orm::DatabaseTransaction,
    counts: &[(Uuid, u64)],
) -> Result<(), StoreError> {
    const LINKS_PER_STATEMENT: usize = 400;
    for chunk in counts.chunks(LINKS_PER_STATEMENT) {
        let rows = vec!["(?, ?)"; chunk.len()].join(", ");
        // A join (UPDATE ... FROM): one primary-key lookup per link.
        let sql = format!(
            "WITH added(id, n) AS (VALUES {rows}) \
             UPDATE links SET click_count = links.click_count + added.n \
             FROM added WHERE links.id = added.id"
        );
        let values: Vec<sea_orm::Value> = chunk
            .iter()
            .flat_map(|&(id, clicks)| [id.into(), to_i64(clicks).into()])
            .collect();
        txn.execute_raw(sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Sqlite,
            sql,
            values,
        ))
        .await
        .map_err(unavailable)?;
    }
    Ok(())
}

#[async_trait]
impl Links for SqliteStore {
    async fn insert(&self, link: &Link, event: &OutboxEvent) -> Result<(), StoreError> {
        let txn = self.db.begin().await.map_err(unavailable)?;
        if let Err(error) = links::Entity::insert(link_row(link))
            .exec_without_returning(&txn)
            .await
        {
            return Err(match error.sql_err() {
                Some(SqlErr::UniqueConstraintViolation(_)) => {
                    StoreError::CodeTaken(link.code.to_string())
                }
                _ => unavailable(error),
            });
        }
        outbox::Entity::insert(outbox_row(event))
            .exec_without_returning(&txn)
            .await
            .map_err(unavailable)?;
        txn.commit().await.map_err(unavailable)
    }

    async fn insert_many(&self, links: &[(Link, OutboxEvent)]) -> Result<Vec<bool>, StoreError> {
        let txn = self.db.begin().await.map_err(unavailable)?;
        let mut inserted = Vec::with_capacity(links.len());
        for (link, event) in links {
            // A taken code writes nothing; the transaction goes on.
            let rows = links::Entity::insert(link_row(link))
                .on_conflict(
                    OnConflict::column(links::Column::Code)
                        .do_nothing()
                        .to_owned(),
                )
                .exec_without_returning(&txn)
                .await
                .map_err(unavailable)?;
            if rows == 1 {
                outbox::Entity::insert(outbox_row(event))
                    .exec_without_returning(&txn)
                    .await
                    .map_err(unavailable)?;
            }
            inserted.push(rows == 1);
        }
        txn.commit().await.map_err(unavailable)?;
        Ok(inserted)
    }

    async fn find(&self, code: &str) -> Result<Option<Link>, StoreError> {
        links::Entity::find()
            .filter(links::Column::Code.eq(code))
            .one(&self.db)
            .await
            .map_err(unavailable)?
            .map(to_link)
            .transpose()
    }

    async fn list(&self, query: &LinkQuery) -> Result<Vec<Link>, StoreError> {
        use sea_orm::Order::Desc;
        use sea_orm::sea_query::Condition;
        let mut select = links::Entity::find().filter(links::Column::DeletedAt.is_null());
        if let Some(owner) = query.owner {
            select = select.filter(links::Column::Owner.eq(owner));
        }
        if let Some(text) = &query.text {
            // instr, not LIKE: the text is matched as it is, with no
            // wildcards to escape. (SQLite's lower() folds ASCII only.)
            select = select.filter(Expr::cust_with_values(
                "(instr(lower(links.code), ?) > 0 OR instr(lower(links.url), ?) > 0 \
                 OR instr(lower(coalesce(links.title, '')), ?) > 0)",
                [text.as_str(); 3],
            ));
        }
        if let Some(ids) = &query.ids {
            select = select.filter(links::Column::Id.is_in(ids.iter().copied()));
        }
        if let Some(tag) = &query.tag {
            select = select.filter(Expr::cust_with_values(
                "EXISTS (SELECT 1 FROM json_each(links.tags) WHERE json_each.value = ?)",
                [tag.as_str()],
            ));
        }
        select = match query.order {
            LinkOrder::Newest => {
                if let Some(after) = query.after {
                    select = select.filter(links::Column::Id.lt(after.id));
                }
                select.order_by(links::Column::Id, Desc)
            }
            LinkOrder::MostClicked => {
                if let Some(after) = query.after {
                    let clicks = to_i64(after.clicks);
                    select = select.filter(
                        Condition::any()
                            .add(links::Column::ClickCount.lt(clicks))
                            .add(
                                Condition::all()
                                    .add(links::Column::ClickCount.eq(clicks))
                                    .add(links::Column::Id.lt(after.id)),
                            ),
                    );
                }
                select
                    .order_by(links::Column::ClickCount, Desc)
                    .order_by(links::Column::Id, Desc)
            }
        };
        select
            .limit(u64::from(query.limit))
            .all(&self.db)
            .await
            .map_err(unavailable)?
            .into_iter()
            .map(to_link)
            .collect()
    }

    async fn update(&self, link: &Link, event: Option<&OutboxEvent>) -> Result<(), StoreError> {
        let txn = self.db.begin().await.map_err(unavailable)?;
        let mut changes = link_row(link);
        // Identity, creation time and the click counter (owned by the click
        // flusher) are never rewritten by an update.
        changes.id = NotSet;
        changes.code = NotSet;
        changes.created_at = NotSet;
        changes.click_count = NotSet;
        changes.owner = NotSet;
        let updated = links::Entity::update_many()
            .set(changes)
            .filter(links::Column::Id.eq(link.id))
            .filter(links::Column::Version.eq(to_i64(link.version.saturating_sub(1))))
            .exec(&txn)
            .await
            .map_err(unavailable)?;
        if updated.rows_affected != 1 {
            return Err(StoreError::Conflict(link.code.to_string()));
        }
        if let Some(event) = event {
            outbox::Entity::insert(outbox_row(event))
                .exec_without_returning(&txn)
                .await
                .map_err(unavailable)?;
        }
        txn.commit().await.map_err(unavailable)
    }

    async fn add_clicks(&self, counts: &[(Uuid, u64)]) -> Result<(), StoreError> {
        let txn = self.db.begin().await.map_err(unavailable)?;
        add_counts(&txn, counts).await?;
        txn.commit().await.map_err(unavailable)
    }
}
