//! A test environment (nats-server, the store's server, a temp dir), the
//! analytics app on port 0, and builders and publishers of events.

use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use analytics::{Application, Settings};
use async_nats::jetstream;
use chrono::{DateTime, TimeZone, Utc};
use contracts::{Envelope, Event, UrlClicked, UrlCreated, encode};
use serde_json::Value;
use system_tests::{ClickHouseServer, NatsServer, started};
use tokio::task::JoinHandle;
use uuid::Uuid;

#[derive(Debug, Clone, Copy)]
#[allow(non_camel_case_types)]
pub enum StoreKind {
    sqlite,
    clickhouse,
}

/// Servers and a data directory, shared by the app's successive runs.
pub struct Env {
    pub nats: NatsServer,
    pub clickhouse: Option<ClickHouseServer>,
    pub dir: tempfile::TempDir,
}

impl Env {
    /// `None` when a server is not installed outside CI (the test is skipped).
    pub fn start(kind: StoreKind) -> Option<Self> {
        let nats = started(NatsServer::start())?;
        let clickhouse = match kind {
            StoreKind::sqlite => None,
            StoreKind::clickhouse => Some(started(ClickHouseServer::start())?),
        };
        Some(Self {
            nats,
            clickhouse,
            dir: tempfile::tempdir().unwrap(),
        })
    }

    /// The environment variables the binary reads, for this environment.
    pub fn vars(&self) -> Vec<(&'static str, String)> {
        let mut vars = vec![
            ("ANALYTICS_NATS_URL", self.nats.url()),
            ("ANALYTICS_ACK_WAIT_SECONDS", "2".into()),
            ("ANALYTICS_API_KEY", TEST_KEY.into()),
            ("ANALYTICS_AUTH_FAILURES_PER_MINUTE", "10000".into()),
        ];
        match &self.clickhouse {
            Some(ch) => {
                vars.push(("ANALYTICS_CLICKHOUSE_URL", ch.url()));
                vars.push(("ANALYTICS_CLICKHOUSE_DATABASE", "analytics_test".into()));
            }
            None => vars.push((
                "ANALYTICS_SQLITE_PATH",
                self.dir.path().join("analytics.db").display().to_string(),
            )),
        }
        vars
    }

    pub fn settings(&self) -> Settings {
        let vars = self.vars();
        let mut settings = Settings::from_lookup(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.clone())
        })
        .unwrap();
        settings.http_addr = "127.0.0.1:0".parse().unwrap();
        settings
    }

    /// A JetStream context on the environment's server, with the stream
    /// created as the shortener would (whichever service starts first).
    pub async fn jetstream(&self) -> jetstream::Context {
        let js = jetstream::new(async_nats::connect(self.nats.url()).await.unwrap());
        contracts::stream::ensure_stream(&js, contracts::stream::shortener_stream_config(1))
            .await
            .unwrap();
        js
    }

    /// The app, in this process, consuming.
    pub async fn app(&self) -> TestApp {
        self.app_with(self.settings()).await
    }

    /// The app with these settings (from [`Env::settings`], changed).
    pub async fn app_with(&self, settings: Settings) -> TestApp {
        let app = Application::build(&settings)
            .await
            .expect("the application builds");
        let address = format!("http://127.0.0.1:{}", app.port());
        let handle = app.handle();
        let task = tokio::spawn(app.run_until_stopped());
        let app = TestApp {
            address,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .default_headers(
                    [("x-api-key".parse().unwrap(), TEST_KEY.parse().unwrap())]
                        .into_iter()
                        .collect(),
                )
                .build()
                .unwrap(),
            handle,
            task,
        };
        app.wait_ready().await;
        app
    }
}

/// The key every test app is started with (`ANALYTICS_API_KEY`).
pub const TEST_KEY: &str = "analytics-test-key-0123456789abcdef0123456789";

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    handle: ServerHandle,
    task: JoinHandle<anyhow::Result<()>>,
}

impl TestApp {
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .unwrap()
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let response = self.get(path).await;
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn wait_ready(&self) {
        let started = Instant::now();
        while self.get("/ready").await.status() != 200 {
            assert!(started.elapsed() < Duration::from_secs(30), "never ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls `path` until `done` holds for its JSON (bounded), returning it.
    pub async fn eventually(&self, path: &str, done: impl Fn(u16, &Value) -> bool) -> Value {
        let started = Instant::now();
        loop {
            let (status, body) = self.get_json(path).await;
            if done(status, &body) {
                return body;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{path} never got there; last answer {status}: {body}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Graceful stop, as on SIGTERM.
    pub async fn stop(self) {
        self.handle.stop(true).await;
        self.task.await.unwrap().unwrap();
    }
}

/// Publishes raw bytes to JetStream with a message id, awaiting the ack.
pub async fn publish_raw(js: &jetstream::Context, subject: &str, msg_id: &str, payload: Vec<u8>) {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", msg_id);
    js.publish_with_headers(subject.to_owned(), headers, payload.into())
        .await
        .unwrap()
        .await
        .unwrap();
}

/// Publishes events as the shortener does (`Nats-Msg-Id` = `event_id`),
/// awaiting the acks in bounded batches.
pub async fn publish<T: Event>(js: &jetstream::Context, events: &[Envelope<T>]) {
    for chunk in events.chunks(1_000) {
        let mut acks = Vec::with_capacity(chunk.len());
        for event in chunk {
            let mut headers = async_nats::HeaderMap::new();
            for (name, value) in event.headers() {
                headers.insert(name, value.as_str());
            }
            acks.push(
                js.publish_with_headers(event.subject(), headers, encode(event).unwrap().into())
                    .await
                    .unwrap(),
            );
        }
        for ack in acks {
            ack.await.unwrap();
        }
    }
}

pub fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0).unwrap()
}

pub fn created(id: Uuid, code: &str, created_at: i64) -> Envelope<UrlCreated> {
    Envelope::new(
        "shortener",
        at(created_at),
        UrlCreated {
            url_id: id,
            short_code: code.into(),
            original_url: format!("https://example.com/{code}"),
            target_host: "example.com".into(),
            created_at: at(created_at),
            expires_at: None,
        },
    )
}

pub fn clicked(id: Uuid, code: &str, clicked_at: i64) -> Envelope<UrlClicked> {
    Envelope::new(
        "shortener",
        at(clicked_at),
        UrlClicked {
            url_id: id,
            short_code: code.into(),
            clicked_at: at(clicked_at),
            referrer: None,
            user_agent: None,
            visitor_key: None,
            country: None,
        },
    )
}

/// Total clicks of a stats answer.
pub fn total(body: &Value) -> u64 {
    body["total_clicks"].as_u64().unwrap_or(0)
}
