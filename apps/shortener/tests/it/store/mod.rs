//! Behaviour of the store port, written once and run against every adapter.

pub mod behaviour;

/// Runs every behaviour test against one adapter. `$open` evaluates to
/// `(store, guard)`; the guard keeps the backing database alive.
macro_rules! store_suite {
    ($adapter:ident, $open:expr) => {
        mod $adapter {
            use super::behaviour;

            store_suite!(@tests $open;
                inserted_links_are_found_by_code,
                a_taken_code_is_refused_and_nothing_of_it_is_written,
                concurrent_claims_of_one_code_give_exactly_one_winner,
                updates_are_compare_and_set_on_the_version,
                listing_is_newest_first_paged_and_skips_deleted_links,
                listing_filters_by_text_tag_and_owner_and_sorts_by_clicks,
                clicks_accumulate,
                the_outbox_hands_out_events_in_order_until_marked_sent,
                the_click_spool_keeps_each_click_once_until_it_is_relayed_and_counted,
            );
        }
    };
    (@tests $open:expr; $($test:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $test() {
                let (store, _guard) = $open;
                behaviour::$test(&store).await;
            }
        )*
    };
}

store_suite!(sqlite, {
    let dir = tempfile::tempdir().unwrap();
    let store = shortener::store::sqlite::SqliteStore::open(&dir.path().join("links.db"))
        .await
        .unwrap();
    (store, dir)
});

store_suite!(mongo, {
    let server = system_tests::require!(system_tests::MongoServer::start());
    let store = shortener::store::mongo::MongoStore::connect(&server.uri(), "shortener")
        .await
        .unwrap();
    (store, server)
});

#[tokio::test]
async fn sqlite_keeps_links_and_pending_events_across_a_reopen() {
    use shortener::store::sqlite::SqliteStore;
    use shortener::store::{Links, Outbox};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested").join("links.db");
    let link = behaviour::link("persist");
    {
        let store = SqliteStore::open(&path).await.unwrap();
        store
            .insert(&link, &behaviour::created(&link))
            .await
            .unwrap();
    }
    let store = SqliteStore::open(&path).await.unwrap();
    assert_eq!(store.find("persist").await.unwrap(), Some(link));
    assert_eq!(store.outbox_depth().await.unwrap(), 1);
}

/// A SQLite store written by the release before stores were split by
/// aggregate (`tests/fixtures/upgrade/make-fixtures.sh` says how) opens
/// with today's code, twice: no migration runs again, and every link, key,
/// pending event and spooled click is still there.
#[tokio::test]
async fn sqlite_store_of_the_previous_release_opens_with_nothing_lost() {
    use shortener::keys::Role;
    use shortener::store::sqlite::SqliteStore;
    use shortener::store::{ClickSpool, Keys, Links, Outbox};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("links.db");
    std::fs::copy(system_tests::upgrade::fixture("shortener.db"), &path).unwrap();
    for _ in 0..2 {
        let store = SqliteStore::open(&path).await.unwrap();
        let kept = store.find("kept").await.unwrap().expect("kept");
        assert_eq!(kept.url, "https://example.com/kept");
        assert_eq!(kept.title.as_deref(), Some("Kept"));
        assert_eq!(kept.tags, ["old", "docs"]);
        assert_eq!(kept.click_count, 3);
        let changed = store.find("changed").await.unwrap().expect("changed");
        assert_eq!(changed.url, "https://example.com/changed-again");
        assert_eq!(changed.redirect_type.status(), 301);
        assert_eq!((changed.version, changed.click_count), (2, 1));
        assert!(
            store
                .find("gone")
                .await
                .unwrap()
                .unwrap()
                .deleted_at
                .is_some()
        );
        assert!(
            store
                .find("locked")
                .await
                .unwrap()
                .unwrap()
                .password_hash
                .is_some()
        );
        assert!(store.find("pending").await.unwrap().is_some());
        let pending = store.outbox_pending(10).await.unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].subject, "shortener.url.created");
        assert_eq!(store.spool_state().await.unwrap().depth, 2);
        let keys = store.list_keys().await.unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(
            (keys[0].name.as_str(), keys[0].role),
            ("old-author", Role::Author)
        );
    }
    assert_eq!(
        system_tests::upgrade::sqlite_migrations(&path).await,
        [
            "m0002_create_click_spool",
            "m0003_keys_and_link_owners",
            "m0004_titles_tags_and_click_order",
            "m0005_link_passwords",
            "m0006_outbox_trace_context",
            "sqlite",
        ]
    );
}
