//! Dead letters: each message that can never be processed is republished
//! to `analytics.dlq.<subject>` with why, then acknowledged. A letter always
//! fits: bounded one-line error headers, and the payload only when it fits
//! under the server's `max_payload`.

use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::{AckKind, Message};
use contracts::headers::{
    DLQ_DELIVERIES, DLQ_ERROR, DLQ_ORIGINAL_SEQUENCE, DLQ_ORIGINAL_SUBJECT, DLQ_PATH,
    DLQ_PAYLOAD_OMITTED, DLQ_REASON,
};
use contracts::subjects::dead_letter_subject;
use tokio_util::sync::CancellationToken;

use super::Ingest;
use crate::metrics::DeadLetterLabels;

/// Dead letters published before their acks are awaited; well below the
/// client's limit of acks in flight.
const DEAD_LETTER_CHUNK: usize = 1_000;

/// A message on its way to the dead-letter subject: the original, its
/// reason, and the headers and payload it is republished with.
type Letter<'m> = (
    &'m Message,
    &'static str,
    async_nats::HeaderMap,
    bytes::Bytes,
);

/// The longest error text a dead letter carries, in bytes.
const MAX_ERROR_TEXT: usize = 1024;

/// Room kept for the protocol's own bytes beside headers and payload.
const LETTER_OVERHEAD: usize = 512;

/// Why a message goes to the dead-letter subject.
pub(super) struct DeadLetter<'a> {
    pub(super) reason: &'static str,
    pub(super) error: String,
    pub(super) path: Option<&'a str>,
}

/// The message's `event_id` as its publisher set it (`Nats-Msg-Id`), for
/// the log line about it; what cannot be decoded may have none.
pub(super) fn event_id(message: &Message) -> &str {
    message
        .headers
        .as_ref()
        .and_then(|headers| headers.get(contracts::headers::NATS_MSG_ID))
        .map_or("", |value| value.as_str())
}

impl Ingest {
    /// Republishes each message on the dead-letter subject with its reason,
    /// retrying what was not accepted, and acks each original once its dead
    /// letter is stored. False if shutdown came first: the originals not
    /// yet acked are redelivered later.
    pub(super) async fn dead_letter(
        &self,
        subject: &'static str,
        letters: Vec<(&Message, DeadLetter<'_>)>,
        shutdown: &CancellationToken,
    ) -> bool {
        let target = dead_letter_subject(subject);
        let max_payload = self.jetstream.client().server_info().max_payload;
        let mut pending: Vec<Letter> = letters
            .into_iter()
            .map(|(message, letter)| {
                let (headers, payload) = dead_letter_of(message, &letter, max_payload);
                tracing::warn!(subject, event_id = event_id(message), reason = letter.reason, error = %headers.get(DLQ_ERROR).map(|v| v.as_str()).unwrap_or_default(), "message dead-lettered");
                (message, letter.reason, headers, payload)
            })
            .collect();
        let mut backoff = self.settings.backoff();
        while !pending.is_empty() {
            let mut refused = Vec::new();
            // In chunks: the client holds a bounded number of acks in flight,
            // and a publish beyond it waits until one is awaited.
            let mut letters = pending.into_iter().peekable();
            while letters.peek().is_some() {
                let chunk = letters.by_ref().take(DEAD_LETTER_CHUNK).collect();
                refused.extend(self.send_dead_letters(subject, &target, chunk).await);
            }
            if refused.is_empty() {
                break;
            }
            tracing::warn!(subject, letters = refused.len(), "retrying dead letters");
            backoff.wait(shutdown.cancelled()).await;
            if shutdown.is_cancelled() {
                return false;
            }
            pending = refused;
        }
        true
    }

    /// Publishes the letters together, then awaits each JetStream ack;
    /// returns the ones not accepted.
    pub(super) async fn send_dead_letters<'m>(
        &self,
        subject: &'static str,
        target: &str,
        letters: Vec<Letter<'m>>,
    ) -> Vec<Letter<'m>> {
        let mut acks = Vec::with_capacity(letters.len());
        for (_, _, headers, payload) in &letters {
            acks.push(
                self.jetstream
                    .publish_with_headers(target.to_owned(), headers.clone(), payload.clone())
                    .await,
            );
        }
        let mut refused = Vec::new();
        let mut last_error = None;
        for (letter, ack) in letters.into_iter().zip(acks) {
            let accepted = match ack {
                Ok(ack) => ack.await.map(drop).map_err(anyhow::Error::from),
                // Retrying cannot make a letter smaller: the original is
                // given up (terminated, counted), never retried forever.
                Err(error) if error.kind() == PublishErrorKind::MaxPayloadExceeded => {
                    self.unpublishable(subject, letter.0, &error).await;
                    continue;
                }
                Err(error) => Err(error.into()),
            };
            match accepted {
                Ok(()) => self.dead_lettered(subject, letter.0, letter.1).await,
                Err(error) => {
                    last_error = Some(error);
                    refused.push(letter);
                }
            }
        }
        if let Some(error) = last_error {
            tracing::warn!(subject, %error, letters = refused.len(), "dead letters not accepted");
        }
        refused
    }

    /// Terminates a message whose dead letter can never be published, after
    /// saying so: it stays on the source stream, at the logged sequence.
    pub(super) async fn unpublishable(
        &self,
        subject: &'static str,
        message: &Message,
        error: &PublishError,
    ) {
        let sequence = message.info().map(|i| i.stream_sequence).ok();
        tracing::error!(subject, event_id = event_id(message), ?sequence, %error, "a dead letter cannot be published; the message is terminated");
        self.metrics
            .dead_letters
            .get_or_create(&DeadLetterLabels {
                subject,
                reason: "unpublishable",
            })
            .inc();
        self.metrics.dead_letters_total.inc();
        if let Err(error) = message.ack_with(AckKind::Term).await {
            tracing::warn!(subject, %error, "terminating an unpublishable message failed");
        }
    }

    /// Counts a message the dead-letter subject accepted and acks the original.
    pub(super) async fn dead_lettered(
        &self,
        subject: &'static str,
        message: &Message,
        reason: &'static str,
    ) {
        self.metrics
            .dead_letters
            .get_or_create(&DeadLetterLabels { subject, reason })
            .inc();
        self.metrics.dead_letters_total.inc();
        if let Err(error) = message.ack().await {
            tracing::warn!(subject, %error, "ack of a dead-lettered message failed; it may be dead-lettered twice");
        }
    }
}

/// The letter for `message`: its original headers plus why and from where it
/// was dead-lettered, every added value on one line and bounded; and its
/// payload, unless the letter would then exceed the server's `max_payload`,
/// in which case it says so and where the original is.
fn dead_letter_of(
    message: &Message,
    letter: &DeadLetter<'_>,
    max_payload: usize,
) -> (async_nats::HeaderMap, bytes::Bytes) {
    let mut headers = message.headers.clone().unwrap_or_default();
    headers.insert(DLQ_REASON, letter.reason);
    headers.insert(DLQ_ERROR, header_text(&letter.error).as_str());
    if let Some(path) = letter.path {
        headers.insert(DLQ_PATH, header_text(path).as_str());
    }
    headers.insert(DLQ_ORIGINAL_SUBJECT, message.subject.as_str());
    if let Ok(info) = message.info() {
        headers.insert(
            DLQ_ORIGINAL_SEQUENCE,
            info.stream_sequence.to_string().as_str(),
        );
        headers.insert(DLQ_DELIVERIES, info.delivered.to_string().as_str());
    }
    let header_bytes: usize = headers
        .iter()
        .map(|(name, values)| {
            values
                .iter()
                .map(|v| AsRef::<str>::as_ref(name).len() + v.as_str().len() + 4)
                .sum::<usize>()
        })
        .sum();
    let payload = message.payload.clone();
    if header_bytes + payload.len() + LETTER_OVERHEAD <= max_payload {
        return (headers, payload);
    }
    headers.insert(DLQ_PAYLOAD_OMITTED, payload.len().to_string().as_str());
    (headers, bytes::Bytes::new())
}

/// `text` fit for a header value: control characters (CR and LF above all,
/// which the client refuses) as spaces, and at most [`MAX_ERROR_TEXT`] bytes.
fn header_text(text: &str) -> String {
    const ELLIPSIS: char = '…';
    let mut out = String::with_capacity(text.len().min(MAX_ERROR_TEXT));
    for c in text.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if out.len() + c.len_utf8() > MAX_ERROR_TEXT - ELLIPSIS.len_utf8() {
            out.push(ELLIPSIS);
            break;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_text_is_one_bounded_line() {
        assert_eq!(header_text("a\r\nb\tc"), "a  b c");
        let long = header_text(&"é".repeat(2_000));
        assert!(long.len() <= MAX_ERROR_TEXT, "{}", long.len());
        assert!(long.ends_with('…'));
        assert_eq!(header_text("short"), "short");
    }
}
