//! Schema migrations, applied at start-up and recorded by name; the SQL
//! lives in `migrations/`, and one migration that reads rows is code.

use sea_orm_migration::prelude::*;
use service_kit::sql_migration;

pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            sql_migration!("sqlite").boxed(),
            sql_migration!("m0002_create_api_keys").boxed(),
            Box::new(KeepLinkChanges),
            sql_migration!("m0004_bounded_link_reads").boxed(),
            sql_migration!("m0005_click_rollups").boxed(),
        ]
    }
}

/// Starts keeping every link change as its own row; each copy already
/// stored becomes its link's first change (a snapshot), so folding
/// carries it on.
struct KeepLinkChanges;

impl MigrationName for KeepLinkChanges {
    fn name(&self) -> &str {
        "m0003_keep_link_changes"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for KeepLinkChanges {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(
            "CREATE TABLE link_changes (
                shortener_url_id BLOB NOT NULL,
                change_id BLOB NOT NULL,
                body TEXT NOT NULL,
                PRIMARY KEY (shortener_url_id, change_id)
            ) WITHOUT ROWID;",
        )
        .await?;
        let copies = db
            .query_all_raw(super::statement(
                &format!("SELECT {} FROM url_creations", super::LINK_COLUMNS),
                Vec::new(),
            ))
            .await?;
        for row in &copies {
            let copy = super::to_link(row).map_err(|e| DbErr::Custom(e.to_string()))?;
            let record = super::ChangeRecord::of(&crate::domain::LinkChange::Snapshot(copy));
            db.execute_raw(super::statement(
                "INSERT INTO link_changes (shortener_url_id, change_id, body) VALUES (?, ?, ?)",
                vec![
                    record.url_id.into(),
                    record.change_id.into(),
                    record.body.into(),
                ],
            ))
            .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DROP TABLE link_changes;")
            .await?;
        Ok(())
    }
}
