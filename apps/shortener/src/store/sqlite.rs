//! Embedded default store: a SQLite file through sea-orm.
//!
//! WAL journal (readers never block the writer) with `synchronous=FULL`: a
//! link answered with 201 survives a power cut, not only a crash. SQLite has
//! one writer at a time; every transaction here writes first, so a writer
//! waits on the busy timeout instead of failing an upgrade from a read lock.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, SqlErr, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;
use uuid::Uuid;

use super::{
    stored_digest, stored_redirect_type, stored_role, Link, LinkOrder, LinkQuery, LinkStore,
    OutboxEvent, SpoolState, SpooledClick, StoreError,
};
use crate::keys::{KeyDigest, KeyRecord};

/// The SQLite adapter of [`LinkStore`].
#[derive(Debug, Clone)]
pub struct SqliteStore {
    db: DatabaseConnection,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies migrations.
    pub async fn open(path: &Path) -> anyhow::Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("failed to create {}", parent.display()))?;
        }
        let mut options = ConnectOptions::new(format!("sqlite://{}?mode=rwc", path.display()));
        options
            .max_connections(8)
            .min_connections(1)
            .sqlx_logging(false)
            .map_sqlx_sqlite_opts(|o| {
                o.journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full)
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(true)
            });
        let db = Database::connect(options)
            .await
            .with_context(|| format!("failed to open SQLite database {}", path.display()))?;
        migration::Migrator::up(&db, None)
            .await
            .context("failed to migrate the SQLite database")?;
        Ok(Self { db })
    }
}

fn unavailable(error: DbErr) -> StoreError {
    StoreError::Unavailable(error.into())
}

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
        code: model.code,
        url: model.url,
        target_host: model.target_host,
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

fn to_key(model: api_keys::Model) -> Result<KeyRecord, StoreError> {
    Ok(KeyRecord {
        role: stored_role(&model.name, &model.role)?,
        digest: stored_digest(&model.name, &model.digest)?,
        id: model.id,
        name: model.name,
        created_at: model.created_at,
        last_used_at: model.last_used_at,
        revoked_at: model.revoked_at,
    })
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn link_row(link: &Link) -> links::ActiveModel {
    links::ActiveModel {
        id: Set(link.id),
        code: Set(link.code.clone()),
        url: Set(link.url.clone()),
        target_host: Set(link.target_host.clone()),
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

fn outbox_row(event: &OutboxEvent) -> outbox::ActiveModel {
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

/// Adds served redirects to the links' counters inside `txn`: one
/// statement per few hundred links, not one per link, since a busy
/// shortener flushes thousands of links every second.
async fn add_counts(
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
impl LinkStore for SqliteStore {
    async fn insert(&self, link: &Link, event: &OutboxEvent) -> Result<(), StoreError> {
        let txn = self.db.begin().await.map_err(unavailable)?;
        if let Err(error) = links::Entity::insert(link_row(link))
            .exec_without_returning(&txn)
            .await
        {
            return Err(match error.sql_err() {
                Some(SqlErr::UniqueConstraintViolation(_)) => {
                    StoreError::CodeTaken(link.code.clone())
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
        use sea_orm::sea_query::Condition;
        use sea_orm::Order::Desc;
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
            return Err(StoreError::Conflict(link.code.clone()));
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

    async fn insert_key(&self, key: &KeyRecord) -> Result<(), StoreError> {
        let row = api_keys::ActiveModel {
            id: Set(key.id),
            name: Set(key.name.clone()),
            role: Set(key.role.as_str().to_owned()),
            digest: Set(key.digest.to_hex()),
            created_at: Set(key.created_at),
            last_used_at: Set(key.last_used_at),
            revoked_at: Set(key.revoked_at),
        };
        match api_keys::Entity::insert(row)
            .exec_without_returning(&self.db)
            .await
        {
            Ok(_) => Ok(()),
            Err(error) => Err(match error.sql_err() {
                Some(SqlErr::UniqueConstraintViolation(_)) => {
                    StoreError::KeyNameTaken(key.name.clone())
                }
                _ => unavailable(error),
            }),
        }
    }

    async fn find_key(&self, digest: &KeyDigest) -> Result<Option<KeyRecord>, StoreError> {
        api_keys::Entity::find()
            .filter(api_keys::Column::Digest.eq(digest.to_hex()))
            .one(&self.db)
            .await
            .map_err(unavailable)?
            .map(to_key)
            .transpose()
    }

    async fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        api_keys::Entity::find()
            .order_by_asc(api_keys::Column::Id)
            .all(&self.db)
            .await
            .map_err(unavailable)?
            .into_iter()
            .map(to_key)
            .collect()
    }

    async fn revoke_key(&self, name: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let revoked = api_keys::Entity::update_many()
            .col_expr(api_keys::Column::RevokedAt, Expr::value(at))
            .filter(api_keys::Column::Name.eq(name))
            .filter(api_keys::Column::RevokedAt.is_null())
            .exec(&self.db)
            .await
            .map_err(unavailable)?;
        Ok(revoked.rows_affected > 0)
    }

    async fn touch_key(&self, id: Uuid, at: DateTime<Utc>) -> Result<(), StoreError> {
        api_keys::Entity::update_many()
            .col_expr(api_keys::Column::LastUsedAt, Expr::value(at))
            .filter(api_keys::Column::Id.eq(id))
            .exec(&self.db)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.db.ping().await.map_err(unavailable)
    }
}

/// The `links` table: one row per link, deleted ones kept.
mod links {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "links")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        #[sea_orm(unique)]
        pub code: String,
        pub url: String,
        pub target_host: String,
        pub redirect_type: i32,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
        pub expires_at: Option<DateTimeUtc>,
        pub deleted_at: Option<DateTimeUtc>,
        pub click_count: i64,
        pub version: i64,
        pub owner: Option<Uuid>,
        pub forward_query: bool,
        pub title: Option<String>,
        /// A JSON array of strings.
        pub tags: String,
        /// argon2id, PHC string.
        pub password_hash: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The `outbox` table: encoded events waiting for (or done with) publishing.
mod outbox {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "outbox")]
    pub struct Model {
        /// Write order; the relay publishes in this order.
        #[sea_orm(primary_key)]
        pub seq: i64,
        #[sea_orm(unique)]
        pub event_id: Uuid,
        pub subject: String,
        pub event_version: i32,
        pub payload: Vec<u8>,
        pub created_at: DateTimeUtc,
        pub sent_at: Option<DateTimeUtc>,
        /// The W3C `traceparent` of the request that wrote the event.
        pub traceparent: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The `click_spool` table: click events waiting for JetStream to be back.
mod click_spool {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "click_spool")]
    pub struct Model {
        /// Spool order; the relay publishes the oldest first.
        #[sea_orm(primary_key)]
        pub seq: i64,
        #[sea_orm(unique)]
        pub event_id: Uuid,
        pub url_id: Uuid,
        pub clicked_at: DateTimeUtc,
        pub payload: Vec<u8>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The `api_keys` table: digests of keys, never keys.
mod api_keys {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "api_keys")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        #[sea_orm(unique)]
        pub name: String,
        pub role: String,
        /// SHA-256 of the key, hex.
        #[sea_orm(unique)]
        pub digest: String,
        pub created_at: DateTimeUtc,
        pub last_used_at: Option<DateTimeUtc>,
        pub revoked_at: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Schema migrations, applied at start-up and recorded by sea-orm-migration.
mod migration {
    use sea_orm_migration::prelude::*;

    pub struct Migrator;

    impl MigratorTrait for Migrator {
        fn migrations() -> Vec<Box<dyn MigrationTrait>> {
            // Links and their outbox (named after this file, as sea-orm's derive
            // did); clicks JetStream could not take (see `clicks`); API keys,
            // the key that made each link, and per-link query forwarding.
            [
                SqlMigration {
                    name: "sqlite",
                    up: "CREATE TABLE links (
                        id BLOB PRIMARY KEY NOT NULL,
                        code TEXT NOT NULL UNIQUE,
                        url TEXT NOT NULL,
                        target_host TEXT NOT NULL,
                        redirect_type INTEGER NOT NULL,
                        created_at TEXT NOT NULL,
                        updated_at TEXT NOT NULL,
                        expires_at TEXT,
                        deleted_at TEXT,
                        click_count INTEGER NOT NULL DEFAULT 0,
                        version INTEGER NOT NULL DEFAULT 1
                    );
                    CREATE TABLE outbox (
                        seq INTEGER PRIMARY KEY AUTOINCREMENT,
                        event_id BLOB NOT NULL UNIQUE,
                        subject TEXT NOT NULL,
                        event_version INTEGER NOT NULL,
                        payload BLOB NOT NULL,
                        created_at TEXT NOT NULL,
                        sent_at TEXT
                    );
                    -- The relay only ever scans unsent rows.
                    CREATE INDEX outbox_unsent ON outbox (seq) WHERE sent_at IS NULL;",
                    down: "DROP TABLE outbox; DROP TABLE links;",
                },
                SqlMigration {
                    name: "m0002_create_click_spool",
                    up: "CREATE TABLE click_spool (
                        seq INTEGER PRIMARY KEY AUTOINCREMENT,
                        event_id BLOB NOT NULL UNIQUE,
                        url_id BLOB NOT NULL,
                        clicked_at TEXT NOT NULL,
                        payload BLOB NOT NULL
                    );",
                    down: "DROP TABLE click_spool;",
                },
                SqlMigration {
                    name: "m0003_keys_and_link_owners",
                    up: "ALTER TABLE links ADD COLUMN owner BLOB;
                    ALTER TABLE links ADD COLUMN forward_query INTEGER NOT NULL DEFAULT 1;
                    CREATE INDEX links_owner ON links (owner, id) WHERE deleted_at IS NULL;
                    CREATE TABLE api_keys (
                        id BLOB PRIMARY KEY NOT NULL,
                        name TEXT NOT NULL UNIQUE,
                        role TEXT NOT NULL,
                        digest TEXT NOT NULL UNIQUE,
                        created_at TEXT NOT NULL,
                        last_used_at TEXT,
                        revoked_at TEXT
                    );",
                    down: "DROP TABLE api_keys; DROP INDEX links_owner;
                    ALTER TABLE links DROP COLUMN forward_query;
                    ALTER TABLE links DROP COLUMN owner;",
                },
                // Titles and tags, and the indexes of a listing by clicks
                // (a tag or text filter scans the owner's links).
                SqlMigration {
                    name: "m0004_titles_tags_and_click_order",
                    up: "ALTER TABLE links ADD COLUMN title TEXT;
                    ALTER TABLE links ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';
                    CREATE INDEX links_by_clicks ON links (click_count DESC, id DESC)
                        WHERE deleted_at IS NULL;
                    CREATE INDEX links_owner_by_clicks ON links (owner, click_count DESC, id DESC)
                        WHERE deleted_at IS NULL;",
                    down: "DROP INDEX links_owner_by_clicks; DROP INDEX links_by_clicks;
                    ALTER TABLE links DROP COLUMN tags;
                    ALTER TABLE links DROP COLUMN title;",
                },
                SqlMigration {
                    name: "m0005_link_passwords",
                    up: "ALTER TABLE links ADD COLUMN password_hash TEXT;",
                    down: "ALTER TABLE links DROP COLUMN password_hash;",
                },
                // The trace of the request that wrote an event (issue 19).
                SqlMigration {
                    name: "m0006_outbox_trace_context",
                    up: "ALTER TABLE outbox ADD COLUMN traceparent TEXT;",
                    down: "ALTER TABLE outbox DROP COLUMN traceparent;",
                },
            ]
            .into_iter()
            .map(|m| Box::new(m) as Box<dyn MigrationTrait>)
            .collect()
        }
    }

    /// A migration that runs one SQL script up and another down. The names
    /// are the ones recorded in `seaql_migrations`: never change them.
    struct SqlMigration {
        name: &'static str,
        up: &'static str,
        down: &'static str,
    }

    impl MigrationName for SqlMigration {
        fn name(&self) -> &str {
            self.name
        }
    }

    #[async_trait::async_trait]
    impl MigrationTrait for SqlMigration {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager.get_connection().execute_unprepared(self.up).await?;
            Ok(())
        }

        async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .get_connection()
                .execute_unprepared(self.down)
                .await?;
            Ok(())
        }
    }
}
