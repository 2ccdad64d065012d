//! The redirect cache really serves hits without the store.

use std::sync::Arc;
use std::time::Duration;

use contracts::RedirectType;
use shortener::cache::LinkCache;
use shortener::domain::{CodeGenerator, TargetUrl};
use shortener::service::{LinkChanges, LinkService, NewLink};
use shortener::store::sqlite::SqliteStore;
use shortener::store::LinkStore;

use crate::store::behaviour::created;

#[tokio::test]
async fn a_cached_link_is_served_without_reading_the_store_until_a_write_invalidates_it() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn LinkStore> = Arc::new(
        SqliteStore::open(&dir.path().join("links.db"))
            .await
            .unwrap(),
    );
    let cache = Arc::new(LinkCache::new(1000, Duration::from_secs(600)));
    let service = LinkService::new(
        store.clone(),
        CodeGenerator::default(),
        Default::default(),
        cache.clone(),
    );
    let link = service
        .create(NewLink {
            url: TargetUrl::parse("https://example.com/first").unwrap(),
            alias: None,
            expires_at: None,
            redirect_type: RedirectType::Found,
        })
        .await
        .unwrap();
    assert_eq!(
        service.resolve(&link.code).await.unwrap().url,
        "https://example.com/first"
    );

    // Change the row behind the service's back: a hit must not see it.
    let mut behind = link.clone();
    behind.url = "https://example.com/behind".into();
    behind.version = 2;
    store.update(&behind, &created(&behind)).await.unwrap();
    assert_eq!(
        service.resolve(&link.code).await.unwrap().url,
        "https://example.com/first"
    );
    let (hits, misses) = cache.stats();
    assert_eq!((hits, misses), (1, 1));

    // A write through the service invalidates the entry.
    let changes = LinkChanges {
        redirect_type: Some(RedirectType::TemporaryRedirect),
        ..LinkChanges::default()
    };
    service.update(&link.code, &changes).await.unwrap();
    let resolved = service.resolve(&link.code).await.unwrap();
    assert_eq!(resolved.url, "https://example.com/behind");
    assert_eq!(resolved.redirect_type, RedirectType::TemporaryRedirect);
}
