//! Embedded default store: a SQLite file through sea-orm.
//!
//! WAL journal (readers never block the writer) with `synchronous=FULL`: a
//! link answered with 201 survives a power cut, not only a crash. SQLite has
//! one writer at a time; every transaction here writes first, so a writer
//! waits on the busy timeout instead of failing an upgrade from a read lock.

mod entities;
mod keys;
mod links;
mod outbox;
mod spool;

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};
use sea_orm_migration::MigratorTrait;

use super::{Store, StoreError};

/// The SQLite adapter of every store port ([`Store`]).
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

pub(super) fn unavailable(error: DbErr) -> StoreError {
    StoreError::Unavailable(error.into())
}

pub(super) fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.db.ping().await.map_err(unavailable)
    }
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
