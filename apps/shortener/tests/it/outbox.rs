//! The outbox relay against a real nats-server: nothing a store accepted is
//! lost while NATS is down, and nothing is published twice.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use contracts::{AnyEvent, subjects};
use shortener::outbox::{OutboxRelay, RelaySettings};
use shortener::store::Store;
use shortener::store::mongo::MongoStore;
use shortener::store::sqlite::SqliteStore;
use system_tests::{MongoServer, NatsServer, require};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::store::behaviour::{created, link};
use crate::stream::events_on;

fn settings() -> RelaySettings {
    RelaySettings {
        max_backoff: Duration::from_millis(500),
        ..RelaySettings::default()
    }
}

async fn jetstream_context(nats: &NatsServer) -> jetstream::Context {
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(nats.url())
        .await
        .unwrap();
    jetstream::new(client)
}

/// Writes `n` links with their created events; returns the event ids.
async fn write_links(store: &dyn Store, prefix: &str, n: usize) -> HashSet<Uuid> {
    let mut ids = HashSet::new();
    for i in 0..n {
        let link = link(&format!("{prefix}{i}"));
        let event = created(&link);
        store.insert(&link, &event).await.unwrap();
        ids.insert(event.event_id);
    }
    ids
}

async fn wait_until_outbox_empty(store: &dyn Store, limit: Duration) {
    let started = Instant::now();
    while store.outbox_depth().await.unwrap() > 0 {
        assert!(
            started.elapsed() < limit,
            "outbox not drained after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The ids of every created event on the stream (see `events_on`).
async fn created_events_on_stream(nats: &NatsServer) -> Vec<Uuid> {
    events_on(nats, Some(subjects::URL_CREATED))
        .await
        .into_iter()
        .filter_map(|event| match event {
            AnyEvent::Created(created) => Some(created.event_id),
            _ => None,
        })
        .collect()
}

/// A store in a fresh temporary SQLite file (kept alive by the guard).
async fn sqlite_store() -> (Arc<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("links.db"))
        .await
        .unwrap();
    (Arc::new(store), dir)
}

/// A relay whose poll interval is far beyond any test: it publishes only
/// when woken or when draining.
async fn relay_that_never_polls(store: &Arc<dyn Store>, nats: &NatsServer) -> OutboxRelay {
    let settings = RelaySettings {
        poll_interval: Duration::from_secs(3600),
        ..settings()
    };
    OutboxRelay::new(store.clone(), jetstream_context(nats).await, settings)
}

async fn nothing_is_lost_while_nats_is_down(store: Arc<dyn Store>) {
    let mut nats = require!(NatsServer::start());
    nats.stop();

    // 100 creations while NATS is down all succeed: they only touch the store.
    let written = write_links(store.as_ref(), "offline", 100).await;
    let relay = OutboxRelay::new(store.clone(), jetstream_context(&nats).await, settings());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(relay.run(shutdown.clone()));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        store.outbox_depth().await.unwrap(),
        100,
        "nothing can be sent yet"
    );

    nats.restart().unwrap();
    wait_until_outbox_empty(store.as_ref(), Duration::from_secs(60)).await;
    shutdown.cancel();
    task.await.unwrap();

    let published = created_events_on_stream(&nats).await;
    let distinct: HashSet<Uuid> = published.iter().copied().collect();
    assert_eq!(published.len(), 100, "exactly 100 events, no duplicates");
    assert_eq!(distinct, written);
}

#[tokio::test]
async fn sqlite_outbox_loses_nothing_while_nats_is_down() {
    let (store, _dir) = sqlite_store().await;
    nothing_is_lost_while_nats_is_down(store).await;
}

#[tokio::test]
async fn mongo_outbox_loses_nothing_while_nats_is_down() {
    let mongo = require!(MongoServer::start());
    let store = MongoStore::connect(&mongo.uri(), "shortener")
        .await
        .unwrap();
    nothing_is_lost_while_nats_is_down(Arc::new(store)).await;
}

#[tokio::test]
async fn shutdown_drains_what_is_pending() {
    let nats = require!(NatsServer::start());
    let (store, _dir) = sqlite_store().await;
    let written = write_links(store.as_ref(), "drain", 50).await;
    let relay = relay_that_never_polls(&store, &nats).await;
    let shutdown = CancellationToken::new();
    shutdown.cancel();
    relay.run(shutdown).await;
    assert_eq!(store.outbox_depth().await.unwrap(), 0);
    let published: HashSet<Uuid> = created_events_on_stream(&nats).await.into_iter().collect();
    assert_eq!(published, written);
}

#[tokio::test]
async fn a_woken_relay_publishes_without_waiting_for_its_poll() {
    let nats = require!(NatsServer::start());
    let (store, _dir) = sqlite_store().await;
    let relay = relay_that_never_polls(&store, &nats).await;
    let wake = relay.waker();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(relay.run(shutdown.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    write_links(store.as_ref(), "woken", 3).await;
    wake.notify_one();
    wait_until_outbox_empty(store.as_ref(), Duration::from_secs(10)).await;
    shutdown.cancel();
    task.await.unwrap();
}
