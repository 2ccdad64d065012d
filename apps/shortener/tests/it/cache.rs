//! The redirect cache really serves hits without the store.

use std::sync::Arc;
use std::time::Duration;

use contracts::RedirectType;
use shortener::cache::{Cached, LinkCache};
use shortener::domain::{CodeGenerator, TargetUrl};
use shortener::service::{LinkChanges, LinkError, LinkService, NewLink};
use shortener::store::Store;
use shortener::store::sqlite::SqliteStore;

use crate::store::behaviour::created;

/// A service over a fresh SQLite store, with a cache that keeps links for
/// ten minutes and unknown codes for `missing_ttl`.
async fn service(
    missing_ttl: Duration,
) -> (
    LinkService,
    Arc<dyn Store>,
    Arc<LinkCache>,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&dir.path().join("links.db"))
            .await
            .unwrap(),
    );
    let cache = Arc::new(LinkCache::new(1000, Duration::from_secs(600), missing_ttl));
    let service = LinkService::new(
        store.clone(),
        CodeGenerator::default(),
        Default::default(),
        cache.clone(),
    );
    (service, store, cache, dir)
}

#[tokio::test]
async fn a_cached_link_is_served_without_reading_the_store_until_a_write_invalidates_it() {
    let (service, store, cache, _dir) = service(Duration::from_secs(600)).await;
    let link = service
        .create(
            NewLink {
                url: TargetUrl::parse("https://example.com/first").unwrap(),
                alias: None,
                expires_at: None,
                redirect_type: RedirectType::Found,
                forward_query: true,
                title: None,
                tags: Default::default(),
                password: None,
            },
            uuid::Uuid::nil(),
        )
        .await
        .unwrap();
    assert_eq!(
        service.resolve(link.code.as_str()).await.unwrap().url,
        "https://example.com/first"
    );

    // Change the row behind the service's back: a hit must not see it.
    let mut behind = link.clone();
    behind.url = super::store::behaviour::target("https://example.com/behind");
    behind.version = 2;
    store
        .update(&behind, Some(&created(&behind)))
        .await
        .unwrap();
    assert_eq!(
        service.resolve(link.code.as_str()).await.unwrap().url,
        "https://example.com/first"
    );
    let (hits, misses) = cache.stats();
    assert_eq!((hits, misses), (1, 1));

    // A write through the service invalidates the entry.
    let changes = LinkChanges {
        redirect_type: Some(RedirectType::TemporaryRedirect),
        ..LinkChanges::default()
    };
    service
        .update(link.code.as_str(), &changes, shortener::keys::Scope::All)
        .await
        .unwrap();
    let resolved = service.resolve(link.code.as_str()).await.unwrap();
    assert_eq!(resolved.url, "https://example.com/behind");
    assert_eq!(resolved.redirect_type, RedirectType::TemporaryRedirect);
}

#[tokio::test]
async fn unknown_codes_are_answered_from_the_cache_for_a_short_while() {
    let (service, store, cache, _dir) = service(Duration::from_millis(300)).await;
    for _ in 0..5 {
        assert!(matches!(
            service.resolve("ghost").await,
            Err(LinkError::NotFound(_))
        ));
    }
    assert_eq!(cache.stats(), (4, 1), "one store read for five lookups");

    // Written behind the service's back: unknown until the entry expires.
    let mut ghost = crate::store::behaviour::link("ghost");
    ghost.expires_at = None;
    store.insert(&ghost, &created(&ghost)).await.unwrap();
    assert!(service.resolve("ghost").await.is_err());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(service.resolve("ghost").await.unwrap().id, ghost.id);
}

#[test]
fn a_lookup_that_started_before_an_invalidation_cannot_put_a_stale_link_back() {
    let cache = LinkCache::default();
    let stale = Arc::new(crate::store::behaviour::link("racy"));
    // A lookup takes its ticket and reads the store...
    let ticket = cache.ticket("racy");
    // ...an update commits and invalidates meanwhile...
    cache.invalidate("racy");
    // ...and the lookup's result, read before the update, is refused.
    cache.insert("racy", Some(stale.clone()), ticket);
    assert!(matches!(cache.get("racy"), Cached::Unknown));
    cache.insert("racy", None, ticket);
    assert!(matches!(cache.get("racy"), Cached::Unknown));
    // A lookup after the invalidation is cached as usual.
    let fresh = cache.ticket("racy");
    cache.insert("racy", Some(stale.clone()), fresh);
    assert!(matches!(cache.get("racy"), Cached::Link(_)));

    // A creation elsewhere can make "unknown" stale, never a link.
    let before_creation = cache.ticket("born");
    cache.forget_missing("born");
    cache.insert("born", None, before_creation);
    assert!(matches!(cache.get("born"), Cached::Unknown));
    cache.insert("born", Some(stale), before_creation);
    assert!(matches!(cache.get("born"), Cached::Link(_)));
}
