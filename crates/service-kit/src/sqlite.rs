//! The embedded SQLite stores, opened and migrated the same way in every
//! service.
//!
//! WAL journal (readers never block the writer) with `synchronous=FULL`: a
//! write answered as done survives a power cut, not only a crash. One
//! writer at a time; a writer waits on the busy timeout rather than failing.
//! Migrations are SQL files in the service ([`SqlMigration`]), recorded by
//! name in `seaql_migrations`, so each runs once in the life of a store.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr};
use sea_orm_migration::prelude::{MigrationName, MigrationTrait, MigratorTrait, SchemaManager};

/// Connections of a store's pool.
const MAX_CONNECTIONS: u32 = 8;
/// How often a set-up that lost a race is looked at again.
const OPEN_ATTEMPTS: u64 = 5;

/// Opens (creating it and its directory if needed) the SQLite file at
/// `path` and applies `M`'s migrations. Processes started together on one
/// new file race to set it up (WAL mode, migrations); the loser fails, and
/// on a second look finds it done.
pub async fn open<M: MigratorTrait>(path: &Path) -> anyhow::Result<DatabaseConnection> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("failed to create {}", parent.display()))?;
    }
    let mut attempt = 1;
    loop {
        match connect_and_migrate::<M>(path).await {
            Ok(db) => return Ok(db),
            Err(error) if attempt < OPEN_ATTEMPTS => {
                tracing::warn!(
                    error = format!("{error:#}"),
                    attempt,
                    "SQLite set-up failed; looking again"
                );
                tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                attempt += 1;
            }
            Err(error) => return Err(error),
        }
    }
}

async fn connect_and_migrate<M: MigratorTrait>(path: &Path) -> anyhow::Result<DatabaseConnection> {
    let mut options = ConnectOptions::new(format!("sqlite://{}?mode=rwc", path.display()));
    options
        .max_connections(MAX_CONNECTIONS)
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
    M::up(&db, None)
        .await
        .context("failed to migrate the SQLite database")?;
    Ok(db)
}

/// A migration that runs one SQL script up and another down, usually
/// `include_str!`ed from the service's `migrations/` folder. The name is
/// the one recorded in `seaql_migrations`: never change it.
pub struct SqlMigration {
    pub name: &'static str,
    pub up: &'static str,
    pub down: &'static str,
}

impl SqlMigration {
    /// Boxed, for `MigratorTrait::migrations`.
    pub fn boxed(self) -> Box<dyn MigrationTrait> {
        Box::new(self)
    }
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

/// A [`SqlMigration`] read from `migrations/<name>.up.sql` and
/// `migrations/<name>.down.sql` beside the calling file.
#[macro_export]
macro_rules! sql_migration {
    ($name:literal) => {
        $crate::sqlite::SqlMigration {
            name: $name,
            up: include_str!(concat!("migrations/", $name, ".up.sql")),
            down: include_str!(concat!("migrations/", $name, ".down.sql")),
        }
    };
}
