//! A SQLite store written by the release before stores were split by
//! aggregate (`tests/fixtures/upgrade/make-fixtures.sh` says how) opens with
//! today's code, twice: no migration runs again, and every click, rollup,
//! link copy and key is still there.

use analytics::store::{ClickLog, Keys, LinkCopies, SqliteStore};

#[tokio::test]
async fn sqlite_store_of_the_previous_release_opens_with_nothing_lost() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("analytics.db");
    std::fs::copy(system_tests::upgrade::fixture("analytics.db"), &path).unwrap();
    for _ in 0..2 {
        let store = SqliteStore::open(&path).await.unwrap();
        let kept = store.link_by_code("kept").await.unwrap().expect("kept");
        assert_eq!(kept.target.as_deref(), Some("https://example.com/kept"));
        let changed = store
            .link_by_code("changed")
            .await
            .unwrap()
            .expect("changed");
        assert_eq!(
            changed.target.as_deref(),
            Some("https://example.com/changed-again")
        );
        let gone = store.link_by_code("gone").await.unwrap().expect("gone");
        assert!(gone.deleted_at.is_some());
        assert_eq!(store.click_count().await.unwrap(), 4);
        let mut totals = store.all_click_totals().await.unwrap();
        totals.sort();
        let mut expected = vec![(kept.shortener_url_id, 3), (changed.shortener_url_id, 1)];
        expected.sort();
        assert_eq!(totals, expected);
        let mut raw = store.raw_click_totals().await.unwrap();
        raw.sort();
        assert_eq!(raw, expected);
        let keys = store.list_keys().await.unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].name, "old-reader");
    }
    assert_eq!(
        system_tests::upgrade::sqlite_migrations(&path).await,
        [
            "m0002_create_api_keys",
            "m0003_keep_link_changes",
            "m0004_bounded_link_reads",
            "m0005_click_rollups",
            "sqlite",
        ]
    );
}
