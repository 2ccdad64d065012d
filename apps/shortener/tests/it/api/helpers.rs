//! `spawn_app`: the shortener built as the binary builds it, on port 0.

use std::sync::Arc;
use std::time::Duration;

use shortener::store::Store as StorePort;

use actix_web::dev::ServerHandle;
use contracts::AnyEvent;
use serde_json::Value;
use service_kit::settings::{ExposeSecret, SecretString};
use shortener::configuration::StoreSettings;
use shortener::{Application, Settings};
use system_tests::{MongoServer, NatsServer, started};
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
    pub create_rate_per_minute: Option<u32>,
    pub auth_failures_per_minute: Option<u32>,
    pub trusted_proxies: Option<&'static str>,
    pub country_header: Option<&'static str>,
}

pub struct TestApp {
    pub address: String,
    /// Sends the admin key (`SHORTENER_API_KEY`) with every request.
    pub client: reqwest::Client,
    /// Sends no key.
    pub anonymous: reqwest::Client,
    pub nats: NatsServer,
    /// The app's own store, still usable after `stop`.
    pub store: Arc<dyn StorePort>,
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
                uri: SecretString::from(mongo.uri()),
                database: "shortener".into(),
            };
            (settings, Some(mongo))
        }
    };
    let admin_key = hex::encode(rand::random::<[u8; 32]>());
    let settings = Settings {
        http_addr: "127.0.0.1:0".parse().unwrap(),
        public_url: "https://sho.rt".into(),
        nats_url: nats.url(),
        store: store_settings,
        api_key: Some(SecretString::from(admin_key.clone())),
        create_rate_per_minute: options.create_rate_per_minute.unwrap_or(0),
        auth_failures_per_minute: std::num::NonZeroU32::new(
            options.auth_failures_per_minute.unwrap_or(10_000),
        )
        .unwrap(),
        trusted_proxies: shortener::client_addr::TrustedProxies::parse(
            options.trusted_proxies.unwrap_or_default(),
        )
        .unwrap(),
        country_header: options
            .country_header
            .map(|h| h.parse().expect("a header name")),
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
    let client = client_with_key(Some(&admin_key));
    Some(TestApp {
        address,
        client,
        anonymous: client_with_key(None),
        nats,
        store,
        settings: settings_kept,
        handle,
        task,
        _mongo: mongo,
        _dir: dir,
    })
}

/// An HTTP client that follows no redirect and sends `key` (if any).
pub fn client_with_key(key: Option<&str>) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(key) = key {
        headers.insert("x-api-key", key.parse().unwrap());
    }
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .default_headers(headers)
        .build()
        .unwrap()
}

impl TestApp {
    /// The variables that point a `shortener` process at this app's store.
    pub fn store_env(&self) -> Vec<(String, String)> {
        match &self.settings.store {
            StoreSettings::Sqlite { path } => {
                vec![("SHORTENER_SQLITE_PATH".into(), path.display().to_string())]
            }
            StoreSettings::Mongo { uri, database } => vec![
                (
                    "SHORTENER_MONGODB_URI".into(),
                    uri.expose_secret().to_owned(),
                ),
                ("SHORTENER_MONGODB_DATABASE".into(), database.clone()),
            ],
        }
    }

    /// A new stored key of this role, made through the API; the key.
    pub async fn key(&self, name: &str, role: &str) -> String {
        let response = self
            .client
            .post(self.url("/api/v1/keys"))
            .json(&serde_json::json!({ "name": name, "role": role }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.unwrap();
        body["key"].as_str().unwrap().to_owned()
    }

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
    pub store: Arc<dyn StorePort>,
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
