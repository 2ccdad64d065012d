//! Who may do what: keys, roles, throttling, the command line, and client
//! addresses behind proxies.

use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::helpers::{Options, Store, TestApp, client_with_key, problem, spawn_app};

/// Sends `method path` (with a JSON body for writes) as `client`.
async fn call(
    app: &TestApp,
    client: &reqwest::Client,
    method: &Method,
    path: &str,
) -> reqwest::Response {
    let mut request = client.request(method.clone(), app.url(path));
    if *method == Method::POST && path == "/api/v1/links" {
        request = request.json(&json!({ "url": "https://example.com/matrix" }));
    } else if *method == Method::POST && path == "/api/v1/links/bulk" {
        request = request.json(&json!([{ "url": "https://example.com/matrix" }]));
    } else if *method == Method::POST {
        request = request.json(
            &json!({ "name": format!("k{}", uuid::Uuid::new_v4().simple()), "role": "author" }),
        );
    } else if *method == Method::PATCH {
        request = request.json(&json!({ "redirect_type": 307 }));
    }
    request.send().await.unwrap()
}

/// A 429 says when to come back: within the minute its quota refills in.
fn assert_retry_after(response: &reqwest::Response) {
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
}

/// Asserts the status, and a problem+json body for errors.
async fn expect(response: reqwest::Response, status: u16, what: &str) {
    assert_eq!(response.status().as_u16(), status, "{what}");
    if status >= 400 {
        let body = problem(response, status).await;
        if status == 401 {
            assert_eq!(body["code"], "unauthorized", "{what}");
        }
    }
}

#[tokio::test]
async fn every_endpoint_answers_each_kind_of_caller_as_documented() {
    let Some(app) = spawn_app(Store::sqlite, Options::default()).await else {
        return;
    };
    let author_key = app.key("author-a", "author").await;
    let revoked_key = app.key("revoked", "author").await;
    let revoke = app
        .client
        .delete(app.url("/api/v1/keys/revoked"))
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), 204);
    let callers = [
        ("anonymous", client_with_key(None)),
        ("unknown", client_with_key(Some(&"0".repeat(64)))),
        ("revoked", client_with_key(Some(&revoked_key))),
        ("admin", app.client.clone()),
        ("author", client_with_key(Some(&author_key))),
    ];
    let link = app
        .create_ok(json!({ "url": "https://example.com/admin-made" }))
        .await;
    let code = link["code"].as_str().unwrap().to_owned();
    let links = format!("/api/v1/links/{code}");
    // (method, path, admin's status, author's status); the others get 401.
    let rows: Vec<(Method, String, u16, u16)> = vec![
        (Method::GET, "/api/v1/openapi.json".into(), 200, 200),
        (Method::GET, "/api/v1/status".into(), 200, 200),
        (Method::POST, "/api/v1/links".into(), 201, 201),
        (Method::POST, "/api/v1/links/bulk".into(), 200, 200),
        (Method::GET, "/api/v1/links".into(), 200, 200),
        (Method::GET, links.clone(), 200, 404),
        (Method::PATCH, links.clone(), 200, 404),
        (Method::GET, format!("{links}/qr"), 200, 404),
        (Method::GET, "/api/v1/keys".into(), 200, 403),
        (Method::POST, "/api/v1/keys".into(), 201, 403),
        (Method::DELETE, "/api/v1/keys/nobody".into(), 404, 403),
        (Method::DELETE, links.clone(), 204, 404),
    ];
    for (method, path, admin, author) in &rows {
        for (who, client) in &callers {
            let status = match *who {
                "admin" => *admin,
                "author" => *author,
                _ => 401,
            };
            // The admin's DELETE comes last, after the author's 404.
            if *method == Method::DELETE && path == &links && *who == "admin" {
                continue;
            }
            let response = call(&app, client, method, path).await;
            if status == 401 {
                assert!(response.headers().contains_key("www-authenticate"));
            }
            expect(response, status, &format!("{who} {method} {path}")).await;
        }
    }
    expect(
        call(&app, &app.client, &Method::DELETE, &links).await,
        204,
        "admin DELETE",
    )
    .await;
    // A bulk create makes the caller's own links, as a single create does.
    let author = &callers[4].1;
    let made: serde_json::Value = call(&app, author, &Method::POST, "/api/v1/links/bulk")
        .await
        .json()
        .await
        .unwrap();
    let mine = format!(
        "/api/v1/links/{}",
        made["items"][0]["link"]["code"].as_str().unwrap()
    );
    expect(
        call(&app, author, &Method::GET, &mine).await,
        200,
        "the author's bulk link",
    )
    .await;
    // Public for everyone: redirects, health, readiness, metrics.
    let other = app
        .create_ok(json!({ "url": "https://example.com/public" }))
        .await;
    let public = [
        format!("/{}", other["code"].as_str().unwrap()),
        "/health".into(),
        "/ready".into(),
        "/metrics".into(),
    ];
    for path in &public {
        let status = app
            .anonymous
            .get(app.url(path))
            .send()
            .await
            .unwrap()
            .status();
        assert!(
            status.is_success() || status.is_redirection(),
            "{path}: {status}"
        );
    }
    // A bearer token is a key too.
    let bearer = app
        .anonymous
        .get(app.url("/api/v1/links"))
        .bearer_auth(&author_key)
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn an_authors_links_are_invisible_to_another_author_and_visible_to_admins() {
    let Some(app) = spawn_app(Store::sqlite, Options::default()).await else {
        return;
    };
    let a = client_with_key(Some(&app.key("a", "author").await));
    let b = client_with_key(Some(&app.key("b", "author").await));
    let created = a
        .post(app.url("/api/v1/links"))
        .json(&json!({ "url": "https://example.com/a-only", "alias": "a-only" }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    for method in [Method::GET, Method::PATCH, Method::DELETE] {
        let response = call(&app, &b, &method, "/api/v1/links/a-only").await;
        let body = problem(response, 404).await;
        // Exactly what an unknown code answers: nothing to probe.
        let unknown = problem(call(&app, &b, &method, "/api/v1/links/no-such").await, 404).await;
        assert_eq!(body["code"], unknown["code"]);
    }
    let listed = |client: reqwest::Client| {
        let url = app.url("/api/v1/links?limit=100");
        async move {
            let page: Value = client.get(url).send().await.unwrap().json().await.unwrap();
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["code"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert!(!listed(b.clone()).await.contains(&"a-only".to_owned()));
    assert!(listed(a.clone()).await.contains(&"a-only".to_owned()));
    assert!(
        listed(app.client.clone())
            .await
            .contains(&"a-only".to_owned())
    );
    assert_eq!(app.get("/api/v1/links/a-only").await.status(), 200);
    assert_eq!(
        a.get(app.url("/api/v1/links/a-only"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    app.stop().await;
}

#[tokio::test]
async fn repeated_failures_from_one_client_are_throttled_even_with_a_right_key() {
    let options = Options {
        auth_failures_per_minute: Some(3),
        ..Options::default()
    };
    let Some(app) = spawn_app(Store::sqlite, options).await else {
        return;
    };
    for _ in 0..3 {
        problem(
            app.anonymous
                .get(app.url("/api/v1/links"))
                .send()
                .await
                .unwrap(),
            401,
        )
        .await;
    }
    let throttled = app
        .anonymous
        .get(app.url("/api/v1/links"))
        .send()
        .await
        .unwrap();
    assert_retry_after(&throttled);
    problem(throttled, 429).await;
    // Guessing gains nothing: while throttled, the right key is refused too.
    problem(app.get("/api/v1/links").await, 429).await;
    // The probes are never throttled by this.
    assert_eq!(
        app.anonymous
            .get(app.url("/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    app.stop().await;
}

#[tokio::test]
async fn creation_is_rate_limited_per_client_with_retry_after() {
    let options = Options {
        create_rate_per_minute: Some(3),
        ..Options::default()
    };
    let Some(app) = spawn_app(Store::sqlite, options).await else {
        return;
    };
    for n in 0..3 {
        app.create_ok(json!({ "url": format!("https://example.com/{n}") }))
            .await;
    }
    let limited = app.create(json!({ "url": "https://example.com/4" })).await;
    assert_retry_after(&limited);
    problem(limited, 429).await;
    // Only creation is limited.
    assert_eq!(app.get("/api/v1/links").await.status(), 200);
    app.stop().await;
}

/// Creates a link as a client behind a proxy that says it is `forwarded_for`.
async fn create_from(app: &TestApp, forwarded_for: &str, n: u32) -> StatusCode {
    app.client
        .post(app.url("/api/v1/links"))
        .header("x-forwarded-for", forwarded_for)
        .json(&json!({ "url": format!("https://example.com/proxied/{n}") }))
        .send()
        .await
        .unwrap()
        .status()
}

/// The visitor keys and countries of the clicks on the stream, in order.
async fn clicks_seen(app: &TestApp, count: usize) -> Vec<(Option<String>, Option<String>)> {
    let started = Instant::now();
    loop {
        let clicks: Vec<_> = app
            .events(Some("shortener.url.clicked"))
            .await
            .into_iter()
            .filter_map(|e| match e {
                contracts::AnyEvent::Clicked(c) => Some((c.data.visitor_key, c.data.country)),
                _ => None,
            })
            .collect();
        if clicks.len() >= count {
            return clicks;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{} clicks",
            clicks.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Two visitors behind one proxy, the same browser: told apart only when
/// the proxy is trusted; a country header counts only from a trusted proxy.
async fn proxied_visitors(
    trusted: Option<&'static str>,
) -> Option<(bool, StatusCode, Option<String>)> {
    let options = Options {
        trusted_proxies: trusted,
        country_header: Some("cf-ipcountry"),
        create_rate_per_minute: Some(2),
        ..Options::default()
    };
    let app = spawn_app(Store::sqlite, options).await?;
    // The proxy's own creation, then one per client behind it.
    app.create_ok(json!({ "url": "https://example.com/p", "alias": "proxied" }))
        .await;
    assert_eq!(create_from(&app, "198.51.100.1", 1).await, 201);
    let second_client = create_from(&app, "198.51.100.2", 2).await;
    for visitor in ["198.51.100.1", "198.51.100.2"] {
        let response = app
            .anonymous
            .get(app.url("/proxied"))
            .header("x-forwarded-for", visitor)
            .header("user-agent", "the same browser")
            .header("cf-ipcountry", "fr")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 302);
    }
    let clicks = clicks_seen(&app, 2).await;
    let distinct = clicks[0].0 != clicks[1].0;
    let country = clicks[0].1.clone();
    app.stop().await;
    Some((distinct, second_client, country))
}

#[tokio::test]
async fn forwarded_addresses_count_only_from_trusted_proxies() {
    let Some((distinct, second, country)) = proxied_visitors(Some("127.0.0.1/32")).await else {
        return;
    };
    assert!(
        distinct,
        "two visitors behind a trusted proxy are two visitors"
    );
    assert_eq!(second, 201, "each client has its own creation bucket");
    assert_eq!(country.as_deref(), Some("FR"));

    let (distinct, second, country) = proxied_visitors(None).await.expect("as above");
    assert!(!distinct, "without trust, the header is ignored");
    assert_eq!(second, 429, "one bucket: the peer's");
    assert_eq!(
        country, None,
        "a country header from an untrusted peer is ignored"
    );
}

/// `shortener api-key …` with the app's store in the environment.
fn cli(app: &TestApp, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_shortener"))
        .arg("api-key")
        .args(args)
        .envs(app.store_env())
        .env("RUST_LOG", "off")
        .output()
        .expect("the shortener binary runs")
}

async fn cli_creates_uses_and_revokes_keys(store: Store) {
    let Some(app) = spawn_app(store, Options::default()).await else {
        return;
    };
    let created = cli(&app, &["create", "--name", "from-cli", "--role", "author"]);
    assert!(created.status.success(), "{created:?}");
    let key = String::from_utf8(created.stdout).unwrap().trim().to_owned();
    assert_eq!(key.len(), 64, "stdout is the key and nothing else: {key:?}");
    let client = client_with_key(Some(&key));
    let started = Instant::now();
    while client
        .get(app.url("/api/v1/links"))
        .send()
        .await
        .unwrap()
        .status()
        != 200
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the new key never worked"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let listed = cli(&app, &["list"]);
    let listing = String::from_utf8(listed.stdout).unwrap();
    assert!(
        listing.contains("from-cli") && listing.contains("author"),
        "{listing}"
    );
    assert!(!listing.contains(&key), "a listing never shows a key");
    let revoked = cli(&app, &["revoke", "from-cli"]);
    assert!(revoked.status.success(), "{revoked:?}");
    let started = Instant::now();
    while client
        .get(app.url("/api/v1/links"))
        .send()
        .await
        .unwrap()
        .status()
        != 401
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the revoked key still works"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let again = cli(&app, &["revoke", "from-cli"]);
    assert!(!again.status.success(), "revoking twice is an error");
    let bad = cli(&app, &["create", "--name", "x", "--role", "owner"]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("role"));
    app.stop().await;
}

#[tokio::test]
async fn the_cli_manages_keys_on_sqlite() {
    cli_creates_uses_and_revokes_keys(Store::sqlite).await;
}

#[tokio::test]
async fn the_cli_manages_keys_on_mongodb() {
    cli_creates_uses_and_revokes_keys(Store::mongo).await;
}

#[tokio::test]
async fn a_method_a_route_does_not_take_gets_405_with_allow() {
    let Some(app) = spawn_app(Store::sqlite, Options::default()).await else {
        return;
    };
    for (method, path, allow) in [
        (Method::PUT, "/api/v1/links", "GET, POST"),
        (Method::POST, "/api/v1/links/abc", "GET, PATCH, DELETE"),
        (Method::PATCH, "/api/v1/keys", "GET, POST"),
        (Method::GET, "/api/v1/keys/someone", "DELETE"),
        (Method::PUT, "/abc1234", "GET, HEAD, POST"),
        (Method::DELETE, "/health", "GET"),
    ] {
        let response = app
            .client
            .request(method.clone(), app.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["allow"], allow, "{method} {path}");
        problem(response, 405).await;
    }
    app.stop().await;
}
