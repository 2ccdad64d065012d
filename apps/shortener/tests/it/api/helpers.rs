//! `spawn_app`: the shortener built as the binary builds it, on port 0.

use std::sync::Arc;
use std::time::Duration;

use shortener::store::LinkStore;

use actix_web::dev::ServerHandle;
use contracts::AnyEvent;
use serde_json::Value;
use shortener::configuration::{Secret, StoreSettings};
use shortener::{Application, Settings};
use system_tests::{started, MongoServer, NatsServer};
use tokio::task::JoinHandle;

#[derive(Debug, Clone, Copy)]
#[allow(non_camel_case_types)]
pub enum Store {
    sqlite,
    mongo,
}

/// What a test may change in the settings.
#[derive(Debug, Default, Clone)]
pub struct Options {
    pub api_key: Option<&'static str>,
    pub create_rate_per_minute: Option<u32>,
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub nats: NatsServer,
    /// The app's own store, still usable after `stop`.
    pub store: Arc<dyn LinkStore>,
    settings: Settings,
    handle: ServerHandle,
    task: JoinHandle<anyhow::Result<()>>,
    _mongo: Option<MongoServer>,
    _dir: tempfile::TempDir,
}

/// The app on a fresh store and a fresh nats-server; `None` when a backend
/// is not installed outside CI (the test is skipped).
pub async fn spawn_app(store: Store, options: Options) -> Option<TestApp> {
    let nats = started(NatsServer::start())?;
    let dir = tempfile::tempdir().unwrap();
    let (store_settings, mongo) = match store {
        Store::sqlite => (
            StoreSettings::Sqlite {
                path: dir.path().join("links.db"),
            },
            None,
        ),
        Store::mongo => {
            let mongo = started(MongoServer::start())?;
            let settings = StoreSettings::Mongo {
                uri: Secret::new(mongo.uri()),
                database: "shortener".into(),
            };
            (settings, Some(mongo))
        }
    };
    let settings = Settings {
        http_addr: "127.0.0.1:0".parse().unwrap(),
        public_url: "https://sho.rt".into(),
        nats_url: nats.url(),
        store: store_settings,
        api_key: options.api_key.map(Secret::new),
        create_rate_per_minute: options.create_rate_per_minute.unwrap_or(0),
        ..Settings::default()
    };
    let app = Application::build(&settings)
        .await
        .expect("the application builds");
    let settings_kept = settings.clone();
    let address = format!("http://127.0.0.1:{}", app.port());
    let store = app.store();
    let handle = app.handle();
    let task = tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    Some(TestApp {
        address,
        client,
        nats,
        store,
        settings: settings_kept,
        handle,
        task,
        _mongo: mongo,
        _dir: dir,
    })
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// `POST /api/v1/links` with a JSON body.
    pub async fn create(&self, body: Value) -> reqwest::Response {
        self.client
            .post(self.url("/api/v1/links"))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Creates a link that must succeed; returns its JSON.
    pub async fn create_ok(&self, body: Value) -> Value {
        let response = self.create(body).await;
        assert_eq!(response.status(), 201);
        response.json().await.unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn patch(&self, code: &str, body: Value) -> reqwest::Response {
        self.client
            .patch(self.url(&format!("/api/v1/links/{code}")))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn delete(&self, code: &str) -> reqwest::Response {
        self.client
            .delete(self.url(&format!("/api/v1/links/{code}")))
            .send()
            .await
            .unwrap()
    }

    /// Graceful stop (what SIGTERM does): in-flight requests finish, then
    /// clicks and the outbox drain. The store and NATS stay up for checks.
    pub async fn stop(self) -> Stopped {
        self.handle.stop(true).await;
        self.task.await.unwrap().unwrap();
        Stopped {
            nats: self.nats,
            store: self.store,
            _mongo: self._mongo,
            _dir: self._dir,
        }
    }

    /// A second instance on the same store and NATS, as a scaled-out
    /// deployment runs them.
    pub async fn sibling(&self) -> Sibling {
        let app = Application::build(&self.settings)
            .await
            .expect("the sibling builds");
        let address = format!("http://127.0.0.1:{}", app.port());
        let handle = app.handle();
        let task = tokio::spawn(app.run_until_stopped());
        Sibling {
            address,
            handle,
            task,
        }
    }

    /// Every event on the stream (of `subject`, or all), decoded.
    pub async fn events(&self, subject: Option<&str>) -> Vec<AnyEvent> {
        crate::stream::events_on(&self.nats, subject).await
    }
}

/// Another instance of the app; see [`TestApp::sibling`].
pub struct Sibling {
    pub address: String,
    handle: ServerHandle,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Sibling {
    pub async fn stop(self) {
        self.handle.stop(true).await;
        self.task.await.unwrap().unwrap();
    }
}

/// What is left of a stopped app.
pub struct Stopped {
    pub nats: NatsServer,
    pub store: Arc<dyn LinkStore>,
    _mongo: Option<MongoServer>,
    _dir: tempfile::TempDir,
}

/// Asserts an RFC 7807 body with this status, and returns it.
pub async fn problem(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status(), status, "{response:?}");
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], status);
    assert!(body["title"].is_string() && body["detail"].is_string() && body["type"].is_string());
    body
}
