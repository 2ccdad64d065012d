//! The consumer tasks: one per subject, each supervised (started again,
//! with backoff, when it ends or panics), plus the probe that reports each
//! consumer's lag and whether it answers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::jetstream;
use contracts::stream::{dead_letter_stream_config, ensure_stream, shortener_stream_config};
use tokio_util::sync::CancellationToken;

use super::{ConsumerSettings, Ingest, ensure_consumers, lag};
use crate::metrics::SubjectLabel;

/// Makes the streams and the durable consumers exist, retrying while NATS
/// is unreachable; `None` if shutdown came first.
pub async fn prepare_consumers(
    jetstream: &jetstream::Context,
    settings: &ConsumerSettings,
    shutdown: &CancellationToken,
) -> Option<(
    jetstream::stream::Stream,
    Vec<(&'static str, jetstream::consumer::PullConsumer)>,
)> {
    let mut backoff = settings.backoff();
    loop {
        let attempt = async {
            // Whichever service starts first creates the stream.
            let replicas = settings.stream_replicas;
            let stream = ensure_stream(jetstream, shortener_stream_config(replicas)).await?;
            ensure_stream(jetstream, dead_letter_stream_config(replicas)).await?;
            let consumers = ensure_consumers(&stream, settings).await?;
            anyhow::Ok((stream, consumers))
        };
        match attempt.await {
            Ok(ready) => return Some(ready),
            Err(error) => {
                tracing::warn!(error = %format!("{error:#}"), "JetStream not ready; retrying");
                backoff.wait(shutdown.cancelled()).await;
                if shutdown.is_cancelled() {
                    return None;
                }
            }
        }
    }
}

/// Runs one consumer per subject plus the lag reporter until shutdown.
pub async fn run_consumers(
    ingest: Arc<Ingest>,
    consuming: Arc<AtomicBool>,
    shutdown: CancellationToken,
) {
    let Some((_, consumers)) =
        prepare_consumers(&ingest.jetstream, &ingest.settings, &shutdown).await
    else {
        return;
    };
    let mut tasks = Vec::new();
    for (subject, consumer) in consumers.iter().cloned() {
        tasks.push(tokio::spawn(supervise(
            ingest.clone(),
            subject,
            consumer,
            shutdown.clone(),
        )));
    }
    tasks.push(tokio::spawn(report_lag(
        consumers,
        ingest.clone(),
        shutdown.clone(),
    )));
    consuming.store(true, Ordering::Release);
    tracing::info!("consuming the shortener's events");
    for task in tasks {
        if let Err(error) = task.await {
            tracing::error!(%error, "a consumer task panicked");
        }
    }
    consuming.store(false, Ordering::Release);
}

/// Runs the consumer task of `subject`, and runs it again whenever it ends
/// or panics before shutdown: with backoff, on its durable consumer looked
/// up (or created) anew. One subject's failure never stops the others.
async fn supervise(
    ingest: Arc<Ingest>,
    subject: &'static str,
    consumer: jetstream::consumer::PullConsumer,
    shutdown: CancellationToken,
) {
    let mut consumer = Some(consumer);
    let mut backoff = ingest.settings.backoff();
    loop {
        if let Some(consumer) = consumer.take() {
            let task = tokio::spawn(ingest.clone().run(subject, consumer, shutdown.clone()));
            let outcome = task.await;
            if shutdown.is_cancelled() {
                return;
            }
            match outcome {
                Err(error) if error.is_panic() => {
                    tracing::error!(subject, "the consumer task panicked; starting it again")
                }
                _ => tracing::warn!(subject, "the consumer task ended; starting it again"),
            }
            ingest
                .metrics
                .consumer_restarts
                .get_or_create(&SubjectLabel { subject })
                .inc();
        }
        backoff.wait(shutdown.cancelled()).await;
        if shutdown.is_cancelled() {
            return;
        }
        match ingest.recreate(subject).await {
            Ok(found) => consumer = Some(found),
            Err(error) => {
                tracing::warn!(subject, error = %format!("{error:#}"), "cannot find or create the consumer; retrying")
            }
        }
    }
}

/// Every 2 s: each consumer's lag, and whether it answers at all.
async fn report_lag(
    mut consumers: Vec<(&'static str, jetstream::consumer::PullConsumer)>,
    ingest: Arc<Ingest>,
    shutdown: CancellationToken,
) {
    let metrics = &ingest.metrics;
    loop {
        for (subject, consumer) in &mut consumers {
            let label = SubjectLabel { subject };
            match lag(consumer).await {
                Ok(lag) => {
                    ingest.health.answered(subject);
                    metrics.consumer_up.get_or_create(&label).set(1);
                    metrics
                        .consumer_lag
                        .get_or_create(&label)
                        .set(i64::try_from(lag).unwrap_or(i64::MAX));
                }
                Err(_) => {
                    metrics.consumer_up.get_or_create(&label).set(0);
                }
            }
        }
        report_stream_sizes(&ingest).await;
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

/// How full each stream is (for the alert on storage near `max_bytes`):
/// one JetStream request per stream, the lookup, whose answer is the info.
async fn report_stream_sizes(ingest: &Ingest) {
    use contracts::stream::{DEAD_LETTER_STREAM_NAME, STREAM_NAME};
    for stream in [STREAM_NAME, DEAD_LETTER_STREAM_NAME] {
        let Ok(handle) = ingest.jetstream.get_stream(stream).await else {
            continue;
        };
        let info = handle.cached_info();
        let label = crate::metrics::StreamLabel { stream };
        let metrics = &ingest.metrics;
        metrics
            .stream_bytes
            .get_or_create(&label)
            .set(i64::try_from(info.state.bytes).unwrap_or(i64::MAX));
        metrics
            .stream_max_bytes
            .get_or_create(&label)
            .set(info.config.max_bytes);
    }
}
