//! The click pipeline's shutdown is bounded even when NATS is gone.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use shortener::clicks::{click_pipeline, ClickContext, ClickSettings, VisitorKeys};
use shortener::store::LinkStore;
use system_tests::{require, NatsServer};
use tokio_util::sync::CancellationToken;

use crate::store::behaviour::{created, link};

#[tokio::test]
async fn a_drain_against_an_unreachable_nats_ends_within_its_one_deadline() {
    let mut nats = require!(NatsServer::start());
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn LinkStore> = Arc::new(
        shortener::store::sqlite::SqliteStore::open(&dir.path().join("links.db"))
            .await
            .unwrap(),
    );
    let target = link("unlucky");
    store.insert(&target, &created(&target)).await.unwrap();
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(nats.url())
        .await
        .unwrap();
    nats.stop();
    let jetstream = jetstream::ContextBuilder::new()
        .timeout(Duration::from_millis(300))
        .build(client);
    let settings = ClickSettings {
        batch_size: 10,
        drain_timeout: Duration::from_secs(1),
        ..ClickSettings::default()
    };
    let (recorder, publisher) = click_pipeline(store, jetstream, VisitorKeys::new(None), settings);
    // 20 batches that can never be acknowledged.
    for _ in 0..200 {
        recorder.record(&target, ClickContext::default()).await;
    }
    let shutdown = CancellationToken::new();
    shutdown.cancel();
    // With a deadline per batch this took 20 drain timeouts; with one for
    // the whole drain it is one timeout plus one attempt.
    tokio::time::timeout(Duration::from_secs(10), publisher.run(shutdown))
        .await
        .expect("the drain ends within its deadline");
}
