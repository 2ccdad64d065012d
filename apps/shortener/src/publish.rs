//! Publishing to JetStream with a deadline, shared by the outbox relay and
//! the click pipeline.
//!
//! A JetStream publish is two steps: the message is handed to the client,
//! then the server's ack arrives. While NATS is away the first step can wait
//! for space in the client's buffer and the second for an ack that never
//! comes, so a publisher that awaits either without a limit stops for good.
//! Here one deadline, taken when the first message is sent, bounds both:
//! what was not acknowledged by then is reported, and the caller publishes it
//! again under the same `Nats-Msg-Id` (JetStream drops the copy) or keeps it
//! in the store.

use std::time::Duration;

use async_nats::jetstream;
use async_nats::HeaderMap;
use tokio::time::{timeout_at, Instant};
use uuid::Uuid;

/// How long creating or checking the stream may take.
const STREAM_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// Creates the `SHORTENER` stream if it is missing, within a deadline.
pub async fn ensure_shortener_stream(
    jetstream: &jetstream::Context,
) -> anyhow::Result<jetstream::stream::Stream> {
    let config = contracts::stream::shortener_stream_config();
    let stream = tokio::time::timeout(
        STREAM_CHECK_TIMEOUT,
        contracts::stream::ensure_stream(jetstream, config),
    )
    .await
    .map_err(|_| anyhow::anyhow!("checking the SHORTENER stream timed out"))??;
    Ok(stream)
}

/// The NATS headers of an event (see `contracts::headers::for_event`).
pub fn header_map(headers: [(&'static str, String); 3]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.insert(name, async_nats::HeaderValue::from(value));
    }
    map
}

/// One event on its way to JetStream.
pub struct Outgoing<'a> {
    pub event_id: Uuid,
    /// A static subject costs no allocation per message.
    pub subject: async_nats::Subject,
    pub event_type: &'a str,
    pub event_version: u32,
    /// Shared with the caller, not copied.
    pub payload: bytes::Bytes,
}

/// Sends every message in order, then awaits the acks, all within `limit`
/// of the first send. Returns, per message, whether JetStream acknowledged
/// it (an ack that says "duplicate" counts: the stream has it). After the
/// first message that cannot be sent, the rest are not tried.
pub async fn publish_all(
    jetstream: &jetstream::Context,
    messages: &[Outgoing<'_>],
    limit: Duration,
) -> Vec<bool> {
    let deadline = Instant::now() + limit;
    let mut acks = Vec::with_capacity(messages.len());
    // One timer for the whole batch, not one per message.
    let _ = timeout_at(deadline, async {
        for message in messages {
            let headers = contracts::headers::for_event(
                message.event_id,
                message.event_type,
                message.event_version,
            );
            let send = jetstream.publish_with_headers(
                message.subject.clone(),
                header_map(headers),
                message.payload.clone(),
            );
            match send.await {
                Ok(ack) => acks.push(ack),
                Err(_) => break,
            }
        }
    })
    .await;
    let mut acked = vec![false; messages.len()];
    let _ = timeout_at(deadline, async {
        for (slot, ack) in acked.iter_mut().zip(acks) {
            *slot = ack.await.is_ok();
        }
    })
    .await;
    acked
}
