//! Who may read analytics: every endpoint but the probes and metrics needs
//! one of analytics' own keys.

use std::process::Command;
use std::time::{Duration, Instant};

use super::helpers::{Env, StoreKind, TestApp};

fn client(key: Option<&str>) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(key) = key {
        headers.insert("x-api-key", key.parse().unwrap());
    }
    reqwest::Client::builder()
        .default_headers(headers)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn status(app: &TestApp, client: &reqwest::Client, path: &str) -> (u16, String, bool) {
    let response = client
        .get(format!("{}{path}", app.address))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let challenged = response.headers().contains_key("www-authenticate");
    let body = response.text().await.unwrap();
    if status >= 400 {
        assert_eq!(content_type, "application/problem+json", "{path}: {body}");
    }
    (status, body, challenged)
}

pub async fn every_endpoint_but_the_probes_needs_a_key(env: &Env) {
    let app = env.app().await;
    let store = analytics::startup::open_store(&env.settings().store)
        .await
        .unwrap();
    let (_, revoked) = analytics::keys::create_key(store.as_ref(), "revoked")
        .await
        .unwrap();
    analytics::keys::revoke_key(store.as_ref(), "revoked")
        .await
        .unwrap();
    let (_, valid) = analytics::keys::create_key(store.as_ref(), "reader")
        .await
        .unwrap();
    let callers = [
        ("anonymous", client(None), false),
        ("unknown", client(Some(&"0".repeat(64))), false),
        ("revoked", client(Some(&revoked)), false),
        ("stored key", client(Some(&valid)), true),
        ("bootstrap key", app.client.clone(), true),
    ];
    // (path, status with a key)
    let paths = [
        ("/api/v1/openapi.json", 200),
        ("/api/v1/links/nope/stats", 404),
        (
            "/api/v1/urls/00000000-0000-0000-0000-000000000000/stats",
            404,
        ),
        ("/api/v1/reconciliation", 200),
        ("/api/v1/links", 200),
        ("/api/v1/status", 200),
        ("/", 404),
        ("/links/nope", 404),
        ("/no/such/page", 404),
    ];
    for (path, with_key) in paths {
        for (who, client, allowed) in &callers {
            let (got, body, challenged) = status(&app, client, path).await;
            let expected = if *allowed { with_key } else { 401 };
            assert_eq!(got, expected, "{who} GET {path}: {body}");
            if expected == 401 {
                assert!(challenged, "{who} {path}: a 401 names the scheme");
                assert!(body.contains("\"code\":\"unauthorized\""), "{body}");
            }
        }
    }
    for path in ["/health", "/ready", "/metrics"] {
        let (got, _, _) = status(&app, &client(None), path).await;
        assert_eq!(got, 200, "anonymous {path}");
    }
    let bearer = reqwest::Client::new()
        .get(format!("{}/api/v1/reconciliation", app.address))
        .bearer_auth(&valid)
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 200, "a bearer token is a key too");
    // A method a route does not take: 405 naming the ones it does.
    for path in ["/api/v1/reconciliation", "/api/v1/links", "/health"] {
        let response = app
            .client
            .post(format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405, "POST {path}");
        assert_eq!(response.headers()["allow"], "GET", "POST {path}");
    }
    app.stop().await;
}

/// `analytics api-key …` against the environment's store, while the app
/// runs.
fn cli(env: &Env, args: &[&str]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_analytics"));
    command.arg("api-key").args(args).env("RUST_LOG", "off");
    for (name, value) in env.vars() {
        command.env(name, value);
    }
    command.output().expect("the analytics binary runs")
}

pub async fn the_cli_creates_uses_and_revokes_keys(env: &Env) {
    let app = env.app().await;
    let created = cli(env, &["create", "--name", "console"]);
    assert!(created.status.success(), "{created:?}");
    let key = String::from_utf8(created.stdout).unwrap().trim().to_owned();
    assert_eq!(key.len(), 64, "stdout is the key and nothing else: {key:?}");
    let reader = client(Some(&key));
    let started = Instant::now();
    while status(&app, &reader, "/api/v1/reconciliation").await.0 != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the new key never worked"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let listing = String::from_utf8(cli(env, &["list"]).stdout).unwrap();
    assert!(listing.contains("console"), "{listing}");
    assert!(!listing.contains(&key), "a listing never shows a key");
    let revoked = cli(env, &["revoke", "console"]);
    assert!(revoked.status.success(), "{revoked:?}");
    let started = Instant::now();
    while status(&app, &reader, "/api/v1/reconciliation").await.0 != 401 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the revoked key still works"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!cli(env, &["revoke", "console"]).status.success());
    assert!(!cli(env, &["create", "--name", "bad name"]).status.success());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_unknown_and_revoked_keys_get_401_everywhere_but_the_probes() {
    let Some(env) = Env::start(StoreKind::sqlite) else {
        return;
    };
    every_endpoint_but_the_probes_needs_a_key(&env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_manages_keys_on_sqlite() {
    let Some(env) = Env::start(StoreKind::sqlite) else {
        return;
    };
    the_cli_creates_uses_and_revokes_keys(&env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_manages_keys_on_clickhouse() {
    let Some(env) = Env::start(StoreKind::clickhouse) else {
        return;
    };
    the_cli_creates_uses_and_revokes_keys(&env).await;
}
