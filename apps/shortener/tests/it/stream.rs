//! Reading back what the service published.

use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use contracts::stream::STREAM_NAME;
use contracts::{AnyEvent, decode_any, headers};
use futures::StreamExt;
use system_tests::NatsServer;

/// Every event on the stream (of `subject`, or all), decoded, so each one is
/// schema-valid; and each carries `Nats-Msg-Id` equal to its `event_id`, the
/// header JetStream deduplicates on.
pub async fn events_on(nats: &NatsServer, subject: Option<&str>) -> Vec<AnyEvent> {
    let js = jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let Ok(stream) = js.get_stream(STREAM_NAME).await else {
        return Vec::new();
    };
    let consumer = stream
        .create_consumer(consumer::pull::Config {
            ack_policy: consumer::AckPolicy::None,
            filter_subject: subject.unwrap_or_default().to_owned(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut events = Vec::new();
    loop {
        let mut batch = consumer
            .batch()
            .max_messages(1000)
            .expires(Duration::from_millis(300))
            .messages()
            .await
            .unwrap();
        let before = events.len();
        while let Some(message) = batch.next().await {
            let message = message.unwrap();
            let event = decode_any(&message.payload).expect("a valid event");
            let msg_id = message
                .headers
                .as_ref()
                .and_then(|h| h.get(headers::NATS_MSG_ID));
            assert_eq!(
                msg_id.map(|v| v.as_str().to_owned()),
                Some(event.event_id().to_string())
            );
            events.push(event);
        }
        if events.len() == before {
            return events;
        }
    }
}
