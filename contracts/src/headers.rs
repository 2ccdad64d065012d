//! Message header names shared by publishers, consumers and the dead-letter path.

/// JetStream deduplication header; publishers set it to the event's `event_id`.
pub const NATS_MSG_ID: &str = "Nats-Msg-Id";
/// The event's type (equal to the subject), so routers need not parse the body.
pub const EVENT_TYPE: &str = "Event-Type";
/// The event's schema version.
pub const EVENT_VERSION: &str = "Event-Version";
/// Optional: the W3C Trace Context (`00-<trace id>-<span id>-<flags>`) of
/// the span that published the event, on events that belong to a traced
/// request. Consumers continue the trace from it; a missing or malformed
/// value means no trace, never a rejected event.
pub const TRACEPARENT: &str = "traceparent";

/// The headers every published event carries, as `(name, value)`:
/// `Nats-Msg-Id` (= `event_id`, for server-side deduplication), and the
/// type and version for routing without parsing the body.
pub fn for_event(
    event_id: uuid::Uuid,
    event_type: &str,
    event_version: u32,
) -> [(&'static str, String); 3] {
    // Without the formatting machinery: this runs once per published click.
    let mut id = [0; uuid::fmt::Hyphenated::LENGTH];
    [
        (
            NATS_MSG_ID,
            event_id.hyphenated().encode_lower(&mut id).to_owned(),
        ),
        (EVENT_TYPE, event_type.to_owned()),
        (EVENT_VERSION, event_version.to_string()),
    ]
}

/// On a dead letter: the machine-readable reason (see `ErrorKind::as_str`).
pub const DLQ_REASON: &str = "Dlq-Reason";
/// On a dead letter: the human-readable error, naming the JSON path at fault.
pub const DLQ_ERROR: &str = "Dlq-Error";
/// On a dead letter: the JSON pointer at fault, when there is one.
pub const DLQ_PATH: &str = "Dlq-Path";
/// On a dead letter: the subject the message was first published on.
pub const DLQ_ORIGINAL_SUBJECT: &str = "Dlq-Original-Subject";
/// On a dead letter: the message's sequence in the source stream.
pub const DLQ_ORIGINAL_SEQUENCE: &str = "Dlq-Original-Sequence";
/// On a dead letter whose original did not fit beside its headers: the
/// original payload's size in bytes (the letter's own payload is empty; the
/// original is on the source stream at `Dlq-Original-Sequence`).
pub const DLQ_PAYLOAD_OMITTED: &str = "Dlq-Payload-Omitted";
/// On a dead letter: how many times the message had been delivered.
pub const DLQ_DELIVERIES: &str = "Dlq-Deliveries";
