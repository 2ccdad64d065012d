//! The whole system on free 127.0.0.1 ports, stopped when dropped.

use std::time::{Duration, Instant};

use serde_json::Value;
use system_tests::process::{HttpAnswer, http_exchange};
use system_tests::{NatsServer, Service};
use tempfile::TempDir;

/// How long analytics may take to show what the shortener did.
pub const CONVERGE: Duration = Duration::from_secs(30);

pub struct System {
    /// The admin key both services are started with (`*_API_KEY`); every
    /// request of [`System`]'s helpers sends it.
    pub key: String,
    // Dropped in this order: services before the broker.
    pub shortener: Service,
    pub analytics: Service,
    /// Stopped last. (The fault suite, which shares this module, kills it.)
    #[allow(dead_code)]
    pub nats: NatsServer,
    pub dir: TempDir,
}

impl System {
    /// Starts nats-server, then both services on SQLite. `None` (the test
    /// skips) only where nats-server is missing outside CI.
    pub fn start() -> Option<Self> {
        Self::start_with(&[])
    }

    /// Like [`System::start`], with more variables for analytics.
    pub fn start_with(analytics_env: &[(&str, String)]) -> Option<Self> {
        Self::start_custom(&[], analytics_env)
    }

    /// Like [`System::start`], with the shortener on MongoDB at `uri`.
    #[allow(dead_code)] // the fault suite's
    pub fn start_on_mongo(uri: &str) -> Option<Self> {
        Self::start_custom(&[("SHORTENER_MONGODB_URI", uri.to_owned())], &[])
    }

    /// With more variables for each service.
    pub fn start_custom(
        shortener_env: &[(&str, String)],
        analytics_env: &[(&str, String)],
    ) -> Option<Self> {
        let nats = system_tests::started(NatsServer::start())?;
        let dir = tempfile::tempdir().expect("a temporary directory");
        let key = format!(
            "{:032x}{:032x}",
            uuid::Uuid::new_v4().as_u128(),
            uuid::Uuid::new_v4().as_u128()
        );
        let mut env = vec![
            ("SHORTENER_API_KEY", key.clone()),
            ("SHORTENER_NATS_URL", nats.url()),
            (
                "SHORTENER_SQLITE_PATH",
                dir.path().join("links.db").display().to_string(),
            ),
            ("SHORTENER_CREATE_RATE_PER_MINUTE", "0".into()),
        ];
        env.extend(shortener_env.iter().cloned());
        let shortener =
            Service::start("shortener", &env, dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let mut env = vec![
            ("ANALYTICS_API_KEY", key.clone()),
            ("ANALYTICS_NATS_URL", nats.url()),
            (
                "ANALYTICS_SQLITE_PATH",
                dir.path().join("analytics.db").display().to_string(),
            ),
        ];
        env.extend(analytics_env.iter().cloned());
        let analytics =
            Service::start("analytics", &env, dir.path()).unwrap_or_else(|e| panic!("{e}"));
        Some(Self {
            key,
            shortener,
            analytics,
            nats,
            dir,
        })
    }

    /// The console over both services, started with `extra` variables.
    pub fn console_with(&self, extra: &[(&str, String)]) -> Service {
        let mut env = vec![
            ("CONSOLE_SHORTENER_URL", self.shortener.url()),
            ("CONSOLE_ANALYTICS_URL", self.analytics.url()),
            ("CONSOLE_ANALYTICS_API_KEY", self.key.clone()),
            (
                "CONSOLE_SESSION_SECRET",
                "a test secret of at least 32 bytes!!".into(),
            ),
        ];
        env.extend(extra.iter().cloned());
        Service::start("console", &env, self.dir.path()).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The console over both services.
    pub fn console(&self) -> Service {
        self.console_with(&[])
    }

    fn call(
        &self,
        service: &Service,
        method: &str,
        path: &str,
        extra: &str,
        body: &str,
    ) -> HttpAnswer {
        let request = format!(
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nX-Api-Key: {}\r\n{extra}Content-Length: {}\r\n\r\n{body}",
            self.key,
            body.len()
        );
        http_exchange(service.port(), &request).unwrap_or_else(|| {
            panic!(
                "{method} {path}: no answer; last log lines:\n{}",
                service.log_tail()
            )
        })
    }

    /// `POST /api/v1/links`, whatever it answers.
    pub fn try_create(&self, url: &str) -> HttpAnswer {
        self.post_link(&serde_json::json!({ "url": url }))
    }

    /// `POST /api/v1/links` with this body, whatever it answers.
    pub fn post_link(&self, body: &Value) -> HttpAnswer {
        self.call(
            &self.shortener,
            "POST",
            "/api/v1/links",
            "Content-Type: application/json\r\n",
            &body.to_string(),
        )
    }

    /// `POST /api/v1/links`; the created link.
    pub fn create(&self, url: &str) -> Value {
        let answer = self.try_create(url);
        assert_eq!(answer.status, 201, "create {url}: {}", answer.body);
        serde_json::from_str(&answer.body).expect("the link is JSON")
    }

    /// `GET /{code}` as a browser coming from a search engine would.
    pub fn follow(&self, code: &str, query: &str) -> HttpAnswer {
        self.call(
            &self.shortener,
            "GET",
            &format!("/{code}{query}"),
            "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0\r\n\
             Referer: https://duckduckgo.com/?q=short+links\r\n",
            "",
        )
    }

    /// `GET /{code}` as a visitor with this browser and referrer.
    #[allow(dead_code)] // the console test's
    pub fn follow_as(&self, code: &str, user_agent: &str, referer: &str) -> HttpAnswer {
        self.call(
            &self.shortener,
            "GET",
            &format!("/{code}"),
            &format!("User-Agent: {user_agent}\r\nReferer: {referer}\r\n"),
            "",
        )
    }

    /// `PATCH /api/v1/links/{code}` with this body; the status.
    #[allow(dead_code)] // the console tests'
    pub fn patch(&self, code: &str, body: &Value) -> u16 {
        let answer = self.call(
            &self.shortener,
            "PATCH",
            &format!("/api/v1/links/{code}"),
            "Content-Type: application/json\r\n",
            &body.to_string(),
        );
        answer.status
    }

    /// A new key with this role (`admin` or `author`).
    #[allow(dead_code)] // the console tests'
    pub fn new_key(&self, name: &str, role: &str) -> String {
        let answer = self.call(
            &self.shortener,
            "POST",
            "/api/v1/keys",
            "Content-Type: application/json\r\n",
            &serde_json::json!({ "name": name, "role": role }).to_string(),
        );
        assert_eq!(answer.status, 201, "{}", answer.body);
        let key: Value = serde_json::from_str(&answer.body).expect("JSON");
        key["key"].as_str().expect("the new key").to_owned()
    }

    pub fn delete(&self, code: &str) -> u16 {
        self.call(
            &self.shortener,
            "DELETE",
            &format!("/api/v1/links/{code}"),
            "",
            "",
        )
        .status
    }

    pub fn link(&self, code: &str) -> Value {
        let answer = self.call(
            &self.shortener,
            "GET",
            &format!("/api/v1/links/{code}"),
            "",
            "",
        );
        assert_eq!(answer.status, 200, "{}", answer.body);
        serde_json::from_str(&answer.body).expect("JSON")
    }

    /// Analytics' stats of the link, or `None` while analytics does not know it.
    pub fn stats(&self, code: &str) -> Option<Value> {
        let answer = self.call(
            &self.analytics,
            "GET",
            &format!("/api/v1/links/{code}/stats"),
            "",
            "",
        );
        match answer.status {
            200 => Some(serde_json::from_str(&answer.body).expect("JSON")),
            404 => None,
            other => panic!("stats of {code}: {other} {}", answer.body),
        }
    }

    #[allow(dead_code)] // the fault suite's
    pub fn shortener_get(&self, path: &str) -> HttpAnswer {
        self.call(&self.shortener, "GET", path, "", "")
    }

    pub fn analytics_get(&self, path: &str) -> HttpAnswer {
        self.call(&self.analytics, "GET", path, "", "")
    }

    /// Polls `probe` until it yields a value, at most [`CONVERGE`].
    pub fn eventually<T>(&self, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
        let started = Instant::now();
        loop {
            if let Some(value) = probe() {
                return value;
            }
            assert!(
                started.elapsed() < CONVERGE,
                "{what}: not within {CONVERGE:?}; analytics log:\n{}",
                self.analytics.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
