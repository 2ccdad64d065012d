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

use async_nats::HeaderMap;
use async_nats::jetstream;
use futures::StreamExt;
use service_kit::telemetry;
use tokio::time::{Instant, timeout_at};
use uuid::Uuid;

/// How long creating or checking the stream may take.
const STREAM_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// Creates the `SHORTENER` stream (on `replicas` servers) if it is
/// missing, within a deadline.
pub async fn ensure_shortener_stream(
    jetstream: &jetstream::Context,
    replicas: usize,
) -> anyhow::Result<jetstream::stream::Stream> {
    let config = contracts::stream::shortener_stream_config(replicas);
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
    /// The trace the event belongs to (a traced request's, kept in the
    /// outbox row, or a sampled redirect's). The publish becomes a span of
    /// that trace, and the message carries its `traceparent` on.
    pub traceparent: Option<&'a str>,
}

/// Publishes to JetStream with one reply subscription of its own, instead
/// of the client's request machinery (a fresh inbox, a oneshot channel, an
/// ack permit and a JSON enum per message): a message goes out as a plain
/// publish whose reply subject names its batch and place, and the acks are
/// matched as they come back. At tens of thousands of clicks a second that
/// is most of what the publishing thread spent. One per publishing task (a
/// batch at a time); an ack that comes after its batch gave up is ignored,
/// and the message was published again or spooled anyway.
pub struct Publisher {
    client: async_nats::Client,
    /// `_INBOX.<unique>`; replies come to `<prefix>.<batch>-<index>`.
    prefix: String,
    acks: Option<async_nats::Subscriber>,
    batch: u64,
}

/// What JetStream answers a stored message; an error answer has no `seq`.
#[derive(serde::Deserialize)]
struct PubAck {
    #[allow(dead_code)] // its presence is what is checked
    seq: u64,
}

impl Publisher {
    pub fn new(client: async_nats::Client) -> Self {
        Self {
            prefix: client.new_inbox(),
            client,
            acks: None,
            batch: 0,
        }
    }

    /// Sends every message in order, then awaits the acks, all within
    /// `limit` of the first send. Returns, per message, whether JetStream
    /// acknowledged it (an ack that says "duplicate" counts: the stream has
    /// it). After the first message that cannot be sent, the rest are not
    /// tried.
    pub async fn publish_all(&mut self, messages: &[Outgoing<'_>], limit: Duration) -> Vec<bool> {
        let deadline = Instant::now() + limit;
        let mut acked = vec![false; messages.len()];
        if messages.is_empty() {
            return acked;
        }
        let mut acks = match self.acks.take() {
            Some(acks) => acks,
            None => match timeout_at(
                deadline,
                self.client.subscribe(format!("{}.*", self.prefix)),
            )
            .await
            {
                Ok(Ok(acks)) => acks,
                _ => return acked,
            },
        };
        self.batch += 1;
        let batch = self.batch;
        let mut sent = 0;
        // Spans of the traced messages, open until their acks are in.
        let mut spans: Vec<(usize, tracing::Span)> = Vec::new();
        // One timer for the whole batch, not one per message.
        let _ = timeout_at(deadline, async {
            for (index, message) in messages.iter().enumerate() {
                let headers = contracts::headers::for_event(
                    message.event_id,
                    message.event_type,
                    message.event_version,
                );
                let reply = format!("{}.{batch:x}-{index:x}", self.prefix);
                let mut headers = header_map(headers);
                if let Some(span) = message.traceparent.and_then(|parent| {
                    publish_span(message.subject.as_str(), message.event_id, parent)
                }) {
                    if let Some(traceparent) = telemetry::traceparent_of(&span) {
                        headers.insert(contracts::headers::TRACEPARENT, traceparent.as_str());
                    }
                    spans.push((index, span));
                }
                let send = self.client.publish_with_reply_and_headers(
                    message.subject.clone(),
                    reply,
                    headers,
                    message.payload.clone(),
                );
                if send.await.is_err() {
                    break;
                }
                sent += 1;
            }
        })
        .await;
        let ended = collect_acks(&mut acks, batch, &mut acked[..sent], deadline).await;
        if !ended {
            self.acks = Some(acks);
        }
        for (index, span) in spans {
            if !acked[index] {
                span.record("otel.status_code", "error");
            }
        }
        acked
    }
}

/// Reads the acks of `batch` into `acked` (one place per message sent)
/// until each is answered or `deadline` passes; whether the subscription
/// ended meanwhile.
async fn collect_acks(
    acks: &mut async_nats::Subscriber,
    batch: u64,
    acked: &mut [bool],
    deadline: Instant,
) -> bool {
    let sent = acked.len();
    let mut answered = vec![false; sent];
    let mut waiting = sent;
    let mut ended = false;
    let _ = timeout_at(deadline, async {
        while waiting > 0 {
            let Some(answer) = acks.next().await else {
                ended = true;
                break;
            };
            let Some(index) = place(&answer.subject, batch).filter(|&i| i < sent) else {
                continue; // a late answer to an earlier batch
            };
            if std::mem::replace(&mut answered[index], true) {
                continue;
            }
            waiting -= 1;
            // "No responders" (no stream) comes back as an empty message.
            acked[index] = serde_json::from_slice::<PubAck>(&answer.payload).is_ok();
        }
    })
    .await;
    ended
}

/// The producer span of publishing one traced event, a child of the span
/// `parent` names; `None` when tracing is off.
fn publish_span(subject: &str, event_id: Uuid, parent: &str) -> Option<tracing::Span> {
    if !telemetry::is_on() {
        return None;
    }
    let span = service_kit::traced_span!(
        format_args!("publish {subject}"),
        "producer",
        messaging.system = "nats",
        messaging.destination.name = %subject,
        event_id = %event_id,
    );
    telemetry::continue_trace(&span, Some(parent));
    Some(span)
}

/// The place in `batch` a reply subject `<prefix>.<batch>-<index>` names.
fn place(subject: &str, batch: u64) -> Option<usize> {
    let token = &subject[subject.rfind('.')? + 1..];
    let (of, index) = token.split_once('-')?;
    (u64::from_str_radix(of, 16).ok()? == batch)
        .then(|| usize::from_str_radix(index, 16).ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_subject_names_its_batch_and_place() {
        assert_eq!(place("_INBOX.abc.1f-a", 0x1f), Some(10));
        assert_eq!(place("_INBOX.abc.1e-a", 0x1f), None);
        assert_eq!(place("_INBOX.abc.1f", 0x1f), None);
        assert_eq!(place("_INBOX.abc.1f-zz", 0x1f), None);
    }
}
