//! The JetStream streams both services rely on, defined once.
//!
//! Either service calls [`ensure_stream`] at start-up, so whichever starts
//! first creates the stream and start order never matters.

use std::time::Duration;

use async_nats::jetstream::{self, stream};

/// The event log of the shortener: every `shortener.>` event.
pub const STREAM_NAME: &str = "SHORTENER";
/// Subjects captured by [`STREAM_NAME`].
pub const STREAM_SUBJECTS: &str = "shortener.>";
/// Messages analytics could never process, kept for inspection and re-drive.
pub const DEAD_LETTER_STREAM_NAME: &str = "ANALYTICS_DLQ";
/// Subjects captured by [`DEAD_LETTER_STREAM_NAME`].
pub const DEAD_LETTER_SUBJECTS: &str = "analytics.dlq.>";

/// How long events are kept. Long, because the stream is the log analytics is
/// rebuilt from by replay.
pub const RETENTION: Duration = Duration::from_secs(180 * 24 * 60 * 60);
/// Window in which the server drops a second publish with the same
/// `Nats-Msg-Id`. It costs memory per message at high click rates, so it only
/// covers publisher retries; consumers deduplicate on `event_id` for the rest.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(2 * 60);

/// Definition of the `SHORTENER` stream.
pub fn shortener_stream_config() -> stream::Config {
    stream::Config {
        name: STREAM_NAME.to_owned(),
        description: Some("Events of the shortener service; the log analytics replays from".into()),
        subjects: vec![STREAM_SUBJECTS.to_owned()],
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        max_age: RETENTION,
        duplicate_window: DUPLICATE_WINDOW,
        discard: stream::DiscardPolicy::Old,
        num_replicas: 1,
        ..Default::default()
    }
}

/// Definition of the `ANALYTICS_DLQ` stream.
pub fn dead_letter_stream_config() -> stream::Config {
    stream::Config {
        name: DEAD_LETTER_STREAM_NAME.to_owned(),
        description: Some(
            "Messages analytics could not process, with the reason in headers".into(),
        ),
        subjects: vec![DEAD_LETTER_SUBJECTS.to_owned()],
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        max_age: RETENTION,
        duplicate_window: DUPLICATE_WINDOW,
        discard: stream::DiscardPolicy::Old,
        num_replicas: 1,
        ..Default::default()
    }
}

/// Why a stream could not be made ready.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("failed to create or look up stream {name}: {source}")]
    Create {
        name: String,
        #[source]
        source: jetstream::context::CreateStreamError,
    },
    #[error("failed to read the info of stream {name}: {source}")]
    Info {
        name: String,
        #[source]
        source: jetstream::context::RequestError,
    },
    #[error("stream {name} exists with subjects {found:?}, expected {expected:?}; fix it by hand, it is not changed automatically")]
    Mismatch {
        name: String,
        found: Vec<String>,
        expected: Vec<String>,
    },
}

/// Creates the stream if it is missing and checks that an existing one
/// captures the expected subjects (a stream with other subjects would make
/// publishes fail or events vanish, so it is an error, not a warning).
pub async fn ensure_stream(
    js: &jetstream::Context,
    config: stream::Config,
) -> Result<stream::Stream, StreamError> {
    let name = config.name.clone();
    let expected = config.subjects.clone();
    let mut stream =
        js.get_or_create_stream(config)
            .await
            .map_err(|source| StreamError::Create {
                name: name.clone(),
                source,
            })?;
    let found = stream
        .info()
        .await
        .map_err(|source| StreamError::Info {
            name: name.clone(),
            source,
        })?
        .config
        .subjects
        .clone();
    if found != expected {
        return Err(StreamError::Mismatch {
            name,
            found,
            expected,
        });
    }
    Ok(stream)
}
