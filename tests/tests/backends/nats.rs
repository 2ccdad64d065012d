//! JetStream: the stream definition from `contracts`, deduplicated publishing,
//! a durable pull consumer with explicit acks, persistence across a restart.

use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use chrono::Utc;
use contracts::stream::{STREAM_NAME, ensure_stream, shortener_stream_config};
use contracts::{Envelope, UrlClicked, decode, encode, subjects};
use futures::StreamExt;
use system_tests::{NatsServer, require};
use uuid::Uuid;

fn click(n: usize) -> Envelope<UrlClicked> {
    Envelope::new(
        "shortener",
        Utc::now(),
        UrlClicked {
            url_id: Uuid::now_v7(),
            short_code: format!("code{n}"),
            clicked_at: Utc::now(),
            referrer: None,
            user_agent: Some("smoke-test".into()),
            visitor_key: Some(format!("{n:032x}")),
            country: None,
        },
    )
}

async fn publish(
    js: &jetstream::Context,
    event: &Envelope<UrlClicked>,
) -> jetstream::publish::PublishAck {
    let mut headers = async_nats::HeaderMap::new();
    for (name, value) in event.headers() {
        headers.insert(name, value.as_str());
    }
    js.publish_with_headers(event.subject(), headers, encode(event).unwrap().into())
        .await
        .expect("publish")
        .await
        .expect("publish ack")
}

#[tokio::test]
async fn jetstream_publishes_deduplicates_and_delivers_to_a_durable_consumer() {
    let nats = require!(NatsServer::start());
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = jetstream::new(client);
    let stream = ensure_stream(&js, shortener_stream_config(1))
        .await
        .unwrap();
    // Whoever starts second finds the stream already there.
    ensure_stream(&js, shortener_stream_config(1))
        .await
        .unwrap();

    let events: Vec<_> = (0..100).map(click).collect();
    for event in &events {
        assert!(!publish(&js, event).await.duplicate);
    }
    assert!(
        publish(&js, &events[0]).await.duplicate,
        "same Nats-Msg-Id must be dropped"
    );

    let consumer = stream
        .get_or_create_consumer(
            "smoke",
            consumer::pull::Config {
                durable_name: Some("smoke".into()),
                filter_subject: subjects::URL_CLICKED.into(),
                ack_policy: consumer::AckPolicy::Explicit,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut received = Vec::new();
    while received.len() < events.len() {
        let mut batch = consumer
            .batch()
            .max_messages(50)
            .expires(Duration::from_secs(2))
            .messages()
            .await
            .unwrap();
        while let Some(message) = batch.next().await {
            let message = message.unwrap();
            received.push(decode::<UrlClicked>(&message.payload).unwrap());
            message.ack().await.unwrap();
        }
    }
    assert_eq!(received, events);
    let info = js
        .get_stream(STREAM_NAME)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .clone();
    assert_eq!(info.state.messages, 100);
}

#[tokio::test]
async fn jetstream_keeps_its_messages_across_a_server_restart() {
    let mut nats = require!(NatsServer::start());
    {
        let js = jetstream::new(async_nats::connect(nats.url()).await.unwrap());
        ensure_stream(&js, shortener_stream_config(1))
            .await
            .unwrap();
        for n in 0..10 {
            publish(&js, &click(n)).await;
        }
    }
    nats.kill();
    nats.restart().unwrap();
    let js = jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let mut stream = js.get_stream(STREAM_NAME).await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 10);
}
