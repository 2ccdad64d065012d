//! Embedded default store: a SQLite file through sea-orm.
//!
//! Opened as `service_kit::sqlite` opens every service's file (WAL,
//! `synchronous=FULL`: a link answered with 201 survives a power cut). SQLite
//! has one writer at a time; every transaction here writes first, so a
//! writer waits on the busy timeout instead of failing an upgrade from a
//! read lock.

mod entities;
mod keys;
mod links;
mod outbox;
mod spool;

use std::path::Path;

use async_trait::async_trait;
use sea_orm::{DatabaseConnection, DbErr};

use super::{Store, StoreError};

/// The SQLite adapter of every store port ([`Store`]).
#[derive(Debug, Clone)]
pub struct SqliteStore {
    db: DatabaseConnection,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies migrations
    /// (see `service_kit::sqlite`).
    pub async fn open(path: &Path) -> anyhow::Result<Self> {
        let db = service_kit::sqlite::open::<migration::Migrator>(path).await?;
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

/// Schema migrations, applied at start-up and recorded by name; the SQL
/// lives in `migrations/`.
mod migration {
    use sea_orm_migration::{MigrationTrait, MigratorTrait};
    use service_kit::sql_migration;

    pub struct Migrator;

    impl MigratorTrait for Migrator {
        fn migrations() -> Vec<Box<dyn MigrationTrait>> {
            vec![
                sql_migration!("sqlite").boxed(),
                sql_migration!("m0002_create_click_spool").boxed(),
                sql_migration!("m0003_keys_and_link_owners").boxed(),
                sql_migration!("m0004_titles_tags_and_click_order").boxed(),
                sql_migration!("m0005_link_passwords").boxed(),
                sql_migration!("m0006_outbox_trace_context").boxed(),
            ]
        }
    }
}
