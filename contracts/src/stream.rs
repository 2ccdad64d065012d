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

/// Definition of the `SHORTENER` stream, kept on `replicas` servers.
pub fn shortener_stream_config(replicas: usize) -> stream::Config {
    stream::Config {
        name: STREAM_NAME.to_owned(),
        description: Some("Events of the shortener service; the log analytics replays from".into()),
        subjects: vec![STREAM_SUBJECTS.to_owned()],
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        max_age: RETENTION,
        duplicate_window: DUPLICATE_WINDOW,
        discard: stream::DiscardPolicy::Old,
        num_replicas: replicas,
        ..Default::default()
    }
}

/// Definition of the `ANALYTICS_DLQ` stream, kept on `replicas` servers.
pub fn dead_letter_stream_config(replicas: usize) -> stream::Config {
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
        num_replicas: replicas,
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
    #[error(
        "stream {name} is kept on {found} server(s); moving it to {wanted} failed (a single nats-server keeps 1, a cluster at most as many as it has servers): {source}"
    )]
    Replicas {
        name: String,
        found: usize,
        wanted: usize,
        #[source]
        source: jetstream::context::UpdateStreamError,
    },
    #[error(
        "stream {name} exists with subjects {found:?}, expected {expected:?}; fix it by hand, it is not changed automatically"
    )]
    Mismatch {
        name: String,
        found: Vec<String>,
        expected: Vec<String>,
    },
}

/// Creates the stream if it is missing and checks that an existing one
/// captures the expected subjects (a stream with other subjects would make
/// publishes fail or events vanish, so it is an error, not a warning). An
/// existing stream on another number of servers than configured is moved
/// to that number (JetStream copies it over while it keeps serving).
pub async fn ensure_stream(
    js: &jetstream::Context,
    config: stream::Config,
) -> Result<stream::Stream, StreamError> {
    let name = config.name.clone();
    let expected = config.subjects.clone();
    let wanted = config.num_replicas;
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
        .clone();
    if found.subjects != expected {
        return Err(StreamError::Mismatch {
            name,
            found: found.subjects,
            expected,
        });
    }
    if found.num_replicas != wanted {
        let replicas = found.num_replicas;
        js.update_stream(stream::Config {
            num_replicas: wanted,
            ..found
        })
        .await
        .map_err(|source| StreamError::Replicas {
            name: name.clone(),
            found: replicas,
            wanted,
            source,
        })?;
    }
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_streams_are_kept_on_the_servers_asked_for() {
        assert_eq!(shortener_stream_config(3).num_replicas, 3);
        assert_eq!(dead_letter_stream_config(1).num_replicas, 1);
    }
}
