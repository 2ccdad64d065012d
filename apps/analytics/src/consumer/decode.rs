//! Payloads to rows, in parallel for big batches; what cannot be decoded
//! goes to the dead-letter subject.

use async_nats::jetstream::Message;
use contracts::{ContractError, UrlClicked, UrlCreated, UrlDeleted, UrlUpdated, decode, subjects};
use service_kit::telemetry;
use tokio_util::sync::CancellationToken;

use super::Ingest;
use super::dead_letters::DeadLetter;
use crate::domain::{ClickRow, LinkChange};

/// What a message decoded to.
enum Row {
    Click(ClickRow),
    Link(LinkChange),
}

fn decode_for(subject: &str, payload: &[u8]) -> Result<Row, ContractError> {
    Ok(match subject {
        subjects::URL_CLICKED => Row::Click(ClickRow::from_event(decode::<UrlClicked>(payload)?)),
        subjects::URL_CREATED => Row::Link(LinkChange::Created(decode::<UrlCreated>(payload)?)),
        subjects::URL_UPDATED => Row::Link(LinkChange::Updated(decode::<UrlUpdated>(payload)?)),
        _ => Row::Link(LinkChange::Deleted(decode::<UrlDeleted>(payload)?)),
    })
}

/// A batch ready for the store: its valid messages and what they decoded to
/// (the rest were dead-lettered).
pub(super) struct Decoded {
    pub(super) valid: Vec<Message>,
    pub(super) clicks: Vec<ClickRow>,
    pub(super) changes: Vec<LinkChange>,
    /// The consume spans of the valid messages that carry a trace (see
    /// `consume_spans`), each with its message's index in `valid`.
    pub(super) traced: Vec<(usize, tracing::Span)>,
}

/// A consumer span for each message that continues a trace through its
/// `traceparent` header. None at all while tracing is off; and a message
/// without the header starts no trace, so unsampled clicks cost nothing.
fn consume_spans(subject: &'static str, messages: &[Message]) -> Vec<(usize, tracing::Span)> {
    if !telemetry::is_on() {
        return Vec::new();
    }
    messages
        .iter()
        .enumerate()
        .filter_map(|(index, message)| {
            let parent = message
                .headers
                .as_ref()?
                .get(contracts::headers::TRACEPARENT)?
                .as_str();
            let span = service_kit::traced_span!(
                format_args!("process {subject}"),
                "consumer",
                messaging.system = "nats",
                messaging.destination.name = subject,
                event_id = super::dead_letters::event_id(message),
            );
            telemetry::continue_trace(&span, Some(parent));
            Some((index, span))
        })
        .collect()
}

/// Below this many messages a batch is decoded in place.
const PARALLEL_DECODE_FROM: usize = 512;

/// Decodes (validates, enriches) a batch. Decoding is the CPU-bound part of
/// ingest, so a large batch is split over the blocking pool's threads while
/// the consumers' own thread stays free for I/O.
async fn decode_all(subject: &'static str, batch: &[Message]) -> Vec<Result<Row, ContractError>> {
    if batch.len() < PARALLEL_DECODE_FROM {
        return batch
            .iter()
            .map(|m| decode_for(subject, &m.payload))
            .collect();
    }
    let parts = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .max(2);
    let chunk = batch.len().div_ceil(parts);
    let tasks: Vec<_> = batch
        .chunks(chunk)
        .map(|messages| {
            let payloads: Vec<_> = messages.iter().map(|m| m.payload.clone()).collect();
            tokio::task::spawn_blocking(move || {
                payloads
                    .iter()
                    .map(|p| decode_for(subject, p))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut decoded = Vec::with_capacity(batch.len());
    for task in tasks {
        decoded.extend(task.await.expect("decoding does not panic"));
    }
    decoded
}

impl Ingest {
    /// Decodes a batch and dead-letters what cannot be decoded. None if
    /// shutdown came while dead-lettering.
    pub(super) async fn decode(
        &self,
        subject: &'static str,
        batch: Vec<Message>,
        shutdown: &CancellationToken,
    ) -> Option<Decoded> {
        let mut decoded = Decoded {
            valid: Vec::with_capacity(batch.len()),
            clicks: Vec::new(),
            changes: Vec::new(),
            traced: Vec::new(),
        };
        let rows = decode_all(subject, &batch).await;
        let mut rejected = Vec::new();
        for (message, row) in batch.into_iter().zip(rows) {
            match row {
                Ok(Row::Click(row)) => decoded.clicks.push(row),
                Ok(Row::Link(change)) => decoded.changes.push(change),
                Err(error) => {
                    rejected.push((message, error));
                    continue;
                }
            }
            decoded.valid.push(message);
        }
        decoded.traced = consume_spans(subject, &decoded.valid);
        let letters: Vec<_> = rejected
            .iter()
            .map(|(message, error)| {
                let letter = DeadLetter {
                    reason: error.kind().as_str(),
                    error: error.to_string(),
                    path: Some(error.path()),
                };
                (message, letter)
            })
            .collect();
        self.dead_letter(subject, letters, shutdown)
            .await
            .then_some(decoded)
    }
}
