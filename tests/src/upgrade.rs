//! Stores written by an earlier release, for the upgrade tests: the
//! services' SQLite files in `tests/fixtures/upgrade/`, made by
//! `make-fixtures.sh` there with that release's binaries.

use std::path::{Path, PathBuf};

use sea_orm::{ConnectionTrait, Database, Statement};

/// The path of a fixture store (`shortener.db`, `analytics.db`); tests copy
/// it to a temporary directory before opening it.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join("upgrade")
        .join(name)
}

/// The migrations a SQLite store records as applied, one row each, sorted.
pub async fn sqlite_migrations(path: &Path) -> Vec<String> {
    let db = Database::connect(format!("sqlite://{}?mode=ro", path.display()))
        .await
        .expect("the store opens read-only");
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT version FROM seaql_migrations ORDER BY version",
        ))
        .await
        .expect("the store has a migrations table");
    rows.iter()
        .map(|row| row.try_get::<String>("", "version").expect("a version"))
        .collect()
}
