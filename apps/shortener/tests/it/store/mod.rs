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
    use shortener::store::LinkStore;

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
