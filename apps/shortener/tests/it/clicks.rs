//! The click pipeline through a broker outage: clicks wait in the store's
//! spool and reach the stream, counted once, when NATS is back; on SQLite
//! and on the MongoDB-wire server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use shortener::clicks::{ClickContext, ClickSettings, VisitorKeys, click_pipeline};
use shortener::store::Store;
use system_tests::{MongoServer, NatsServer, require};
use tokio_util::sync::CancellationToken;

use crate::store::behaviour::{created, link};

const CLICKS: u64 = 2_500;

async fn eventually(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !done().await {
        assert!(started.elapsed() < Duration::from_secs(60), "{what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn clicks_on_the_stream(jetstream: &jetstream::Context) -> u64 {
    let Ok(mut stream) = jetstream.get_stream("SHORTENER").await else {
        return 0;
    };
    let Ok(info) = stream.info().await else {
        return 0;
    };
    info.state.messages
}

/// A link in `store`, and a client of a nats-server that was then stopped;
/// `None` when nats-server is not installed (outside CI only).
async fn link_and_stopped_broker(
    store: &Arc<dyn Store>,
    code: &str,
) -> Option<(NatsServer, async_nats::Client, shortener::store::Link)> {
    let mut nats = system_tests::started(NatsServer::start())?;
    let target = link(code);
    store.insert(&target, &created(&target)).await.unwrap();
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(nats.url())
        .await
        .unwrap();
    nats.stop();
    Some((nats, client, target))
}

/// NATS goes away; every click recorded meanwhile is spooled (none
/// dropped), and once NATS is back on the same data directory the relay
/// publishes each to the stream and counts it on the link, exactly once.
async fn clicks_wait_in_the_spool_until_the_broker_is_back(store: Arc<dyn Store>) {
    let Some((mut nats, client, target)) = link_and_stopped_broker(&store, "outage").await else {
        return;
    };
    let jetstream = jetstream::new(client.clone());
    eventually("the client notices the outage", async || {
        client.connection_state() != async_nats::connection::State::Connected
    })
    .await;

    let settings = ClickSettings {
        publish_timeout: Duration::from_millis(300),
        ..ClickSettings::default()
    };
    let pipeline = click_pipeline(
        store.clone(),
        client.clone(),
        jetstream.clone(),
        VisitorKeys::new(None),
        settings,
    );
    let publishing = CancellationToken::new();
    let publisher = tokio::spawn(pipeline.publisher.run(publishing.clone()));
    for _ in 0..CLICKS {
        pipeline.recorder.record(&target, ClickContext::default());
    }
    eventually("every click is spooled", async || {
        store.spool_state().await.unwrap().depth == CLICKS
    })
    .await;
    assert_eq!(pipeline.metrics.spooled.get(), CLICKS);
    assert_eq!(pipeline.metrics.published.get(), 0);

    // The broker comes back; the relay finds the spool and empties it.
    nats.restart().unwrap();
    let relaying = CancellationToken::new();
    let relay = tokio::spawn(pipeline.relay.run(relaying.clone()));
    eventually("the spool drains", async || {
        store.spool_state().await.unwrap().depth == 0
    })
    .await;
    assert_eq!(clicks_on_the_stream(&jetstream).await, CLICKS);
    assert_eq!(
        store.find("outage").await.unwrap().unwrap().click_count,
        CLICKS
    );
    assert_eq!(pipeline.metrics.relayed.get(), CLICKS);
    let dropped: u64 = ["queue_full", "broker_and_store_unavailable"]
        .iter()
        .map(|reason| {
            pipeline
                .metrics
                .drops
                .counter
                .get_or_create(&shortener::clicks::DropLabels { reason })
                .get()
        })
        .sum();
    assert_eq!(dropped, 0);
    publishing.cancel();
    relaying.cancel();
    publisher.await.unwrap();
    relay.await.unwrap();
}

#[tokio::test]
async fn sqlite_keeps_clicks_through_a_broker_outage() {
    let dir = tempfile::tempdir().unwrap();
    let store = shortener::store::sqlite::SqliteStore::open(&dir.path().join("links.db"))
        .await
        .unwrap();
    clicks_wait_in_the_spool_until_the_broker_is_back(Arc::new(store)).await;
}

#[tokio::test]
async fn mongodb_keeps_clicks_through_a_broker_outage() {
    let server = require!(MongoServer::start());
    let store = shortener::store::mongo::MongoStore::connect(&server.uri(), "shortener")
        .await
        .unwrap();
    clicks_wait_in_the_spool_until_the_broker_is_back(Arc::new(store)).await;
}

/// Shutdown while NATS is away spools what is queued, quickly, instead of
/// waiting for acks that cannot come.
#[tokio::test]
async fn shutdown_during_an_outage_spools_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(
        shortener::store::sqlite::SqliteStore::open(&dir.path().join("links.db"))
            .await
            .unwrap(),
    );
    let Some((_nats, client, target)) = link_and_stopped_broker(&store, "unlucky").await else {
        return;
    };
    let pipeline = click_pipeline(
        store.clone(),
        client.clone(),
        jetstream::new(client),
        VisitorKeys::new(None),
        ClickSettings {
            batch_size: 10,
            ..ClickSettings::default()
        },
    );
    for _ in 0..200 {
        pipeline.recorder.record(&target, ClickContext::default());
    }
    let shutdown = CancellationToken::new();
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), pipeline.publisher.run(shutdown))
        .await
        .expect("the drain ends within its deadline");
    assert_eq!(store.spool_state().await.unwrap().depth, 200);
}
