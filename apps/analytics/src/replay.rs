//! Replay: rebuilds the analytics store from the stream, which is the event
//! log. The store is emptied, the durable consumers are deleted and created
//! again from the first message, and everything is consumed until no message
//! is left unacknowledged. Run it while the service is stopped
//! (`analytics replay`); the result has the same stats as before, because
//! every write is idempotent and ordering-independent.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use tokio_util::sync::CancellationToken;

use crate::configuration::Settings;
use crate::consumer::supervise::{prepare_consumers, run_consumers};
use crate::consumer::{delete_consumers, ensure_consumers, lag, Ingest};
use crate::metrics::Metrics;
use crate::startup::{connect_nats, open_store};

/// What a replay did.
#[derive(Debug, Clone, Copy)]
pub struct ReplayReport {
    pub clicks: u64,
    pub elapsed: Duration,
}

pub async fn replay(settings: &Settings) -> anyhow::Result<ReplayReport> {
    let started = Instant::now();
    let store = open_store(&settings.store).await?;
    let nats = connect_nats(&settings.nats_url).await?;
    let jetstream = jetstream::new(nats);
    let shutdown = CancellationToken::new();
    let (stream, _) = prepare_consumers(&jetstream, &settings.consumers, &shutdown)
        .await
        .expect("not cancelled");
    delete_consumers(&stream).await?;
    store.reset().await?;
    tracing::info!(
        store = store.kind(),
        "store emptied; consuming the stream from its first message"
    );
    let ingest = Arc::new(Ingest::new(
        store.clone(),
        jetstream,
        Arc::new(Metrics::default()),
        settings.consumers.clone(),
    ));
    let consuming = Arc::new(AtomicBool::new(false));
    let task = tokio::spawn(run_consumers(ingest, consuming.clone(), shutdown.clone()));
    let mut consumers = ensure_consumers(&stream, &settings.consumers).await?;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if !consuming.load(Ordering::Acquire) {
            continue;
        }
        let mut left = 0;
        for (_, consumer) in &mut consumers {
            left += lag(consumer).await?;
        }
        if left == 0 {
            break;
        }
    }
    shutdown.cancel();
    task.await?;
    Ok(ReplayReport {
        clicks: store.click_count().await?,
        elapsed: started.elapsed(),
    })
}
