//! What a client of the shortener's API can rely on, on every store.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use contracts::{AnyEvent, subjects};
use futures::StreamExt;
use serde_json::{Value, json};

use super::helpers::{TestApp, problem};
use crate::stream::events_on;

pub async fn links_are_created_read_listed_patched_and_deleted(app: &TestApp) {
    let expires = (Utc::now() + chrono::Duration::days(7)).to_rfc3339();
    let created = app
        .create_ok(json!({ "url": "HTTPS://Example.COM/a b?x=1".replace(' ', "%20"), "alias": "my-link", "expires_at": expires, "redirect_type": 301 }))
        .await;
    assert_eq!(created["code"], "my-link");
    assert_eq!(created["short_url"], "https://sho.rt/my-link");
    assert_eq!(created["url"], "https://example.com/a%20b?x=1");
    assert_eq!(created["redirect_type"], 301);
    assert_eq!(created["click_count"], 0);
    assert!(created["id"].is_string() && created["created_at"].is_string());
    let expires_at: DateTime<Utc> = created["expires_at"].as_str().unwrap().parse().unwrap();
    assert!(
        (expires_at - expires.parse::<DateTime<Utc>>().unwrap())
            .num_milliseconds()
            .abs()
            < 1
    );

    let generated = app
        .create_ok(json!({ "url": "https://example.org/" }))
        .await;
    let code = generated["code"].as_str().unwrap();
    assert_eq!(code.len(), 7);
    assert!(code.chars().all(|c| c.is_ascii_alphanumeric()));
    assert_eq!(generated["redirect_type"], 302);
    assert_eq!(generated["expires_at"], Value::Null);

    let read: Value = app.get("/api/v1/links/my-link").await.json().await.unwrap();
    assert_eq!(read, created);

    // Paging: newest first, a cursor until the last page.
    for n in 0..3 {
        app.create_ok(json!({ "url": format!("https://example.net/{n}") }))
            .await;
    }
    let page: Value = app.get("/api/v1/links?limit=3").await.json().await.unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 3);
    assert_eq!(page["items"][0]["url"], "https://example.net/2");
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest: Value = app
        .get(&format!("/api/v1/links?limit=3&cursor={cursor}"))
        .await
        .json()
        .await
        .unwrap();
    let codes: Vec<&str> = rest["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, [code, "my-link"]);
    assert_eq!(rest["next_cursor"], Value::Null);

    let patched = app
        .patch(
            "my-link",
            json!({ "url": "https://example.com/new", "expires_at": null, "redirect_type": 308 }),
        )
        .await;
    assert_eq!(patched.status(), 200);
    let patched: Value = patched.json().await.unwrap();
    assert_eq!(patched["url"], "https://example.com/new");
    assert_eq!(patched["expires_at"], Value::Null);
    assert_eq!(patched["redirect_type"], 308);
    assert_eq!(patched["created_at"], created["created_at"]);

    assert_eq!(app.delete("my-link").await.status(), 204);
    problem(app.get("/api/v1/links/my-link").await, 410).await;
    problem(app.delete("my-link").await, 410).await;
    let page: Value = app
        .get("/api/v1/links?limit=100")
        .await
        .json()
        .await
        .unwrap();
    assert!(
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["code"] != "my-link")
    );
}

pub async fn twenty_concurrent_claims_of_an_alias_give_one_201_and_nineteen_409(app: &TestApp) {
    let claims = (0..20).map(|n| {
        app.create(json!({ "url": format!("https://example.com/{n}"), "alias": "contested" }))
    });
    let responses = futures::future::join_all(claims).await;
    let mut statuses: HashMap<u16, usize> = HashMap::new();
    for response in responses {
        let status = response.status().as_u16();
        *statuses.entry(status).or_default() += 1;
        if status == 409 {
            let body = problem(response, 409).await;
            assert_eq!(body["field"], "alias");
        }
    }
    assert_eq!(statuses, HashMap::from([(201, 1), (409, 19)]));
}

pub async fn redirects_use_the_link_status_and_merge_the_query(app: &TestApp) {
    for (status, alias) in [
        (None, "plain"),
        (Some(301), "moved"),
        (Some(307), "temporary"),
        (Some(308), "permanent"),
    ] {
        let mut body =
            json!({ "url": "https://example.com/landing?ref=sho#section", "alias": alias });
        if let Some(status) = status {
            body["redirect_type"] = json!(status);
        }
        app.create_ok(body).await;
        let response = app.get(&format!("/{alias}?utm_source=mail&q=a%20b")).await;
        assert_eq!(response.status().as_u16(), status.unwrap_or(302), "{alias}");
        assert_eq!(
            response.headers()["location"],
            "https://example.com/landing?ref=sho&utm_source=mail&q=a%20b#section"
        );
        let cache = response.headers()["cache-control"].to_str().unwrap();
        assert!(
            cache.contains(if status.unwrap_or(302) == 301 || status == Some(308) {
                "max-age"
            } else {
                "no-store"
            }),
            "{cache}"
        );
        let plain = app.get(&format!("/{alias}")).await;
        assert_eq!(
            plain.headers()["location"],
            "https://example.com/landing?ref=sho#section"
        );
    }
}

/// What people paste from a browser's address bar is accepted, stored in
/// the URL Standard's form (as an RFC 3986 URI), and redirected to that
/// form; a change takes the same road.
pub async fn urls_pasted_from_a_browser_are_stored_and_redirected_normalised(app: &TestApp) {
    let cases = [
        (
            "https://de.wikipedia.org/wiki/Straße",
            "https://de.wikipedia.org/wiki/Stra%C3%9Fe",
        ),
        (
            "https://пример.рф/путь",
            "https://xn--e1afmkfd.xn--p1ai/%D0%BF%D1%83%D1%82%D1%8C",
        ),
        (
            "https://fonts.googleapis.com/css?family=Roboto|Open+Sans",
            "https://fonts.googleapis.com/css?family=Roboto%7COpen+Sans",
        ),
        (
            "https://example.com/list?ids=[1,2]&q='x'",
            "https://example.com/list?ids=%5B1,2%5D&q=%27x%27",
        ),
        (
            "https://example.com/search?q=two words",
            "https://example.com/search?q=two%20words",
        ),
    ];
    for (n, (pasted, normalised)) in cases.into_iter().enumerate() {
        let alias = format!("pasted-{n}");
        let created = app
            .create_ok(json!({ "url": pasted, "alias": alias }))
            .await;
        assert_eq!(created["url"], normalised, "{pasted}");
        let read = app.get(&format!("/api/v1/links/{alias}")).await;
        assert_eq!(read.json::<Value>().await.unwrap()["url"], normalised);
        let redirect = app.get(&format!("/{alias}")).await;
        assert_eq!(redirect.status(), 302, "{pasted}");
        assert_eq!(redirect.headers()["location"], normalised, "{pasted}");
    }
    let patched = app
        .patch("pasted-0", json!({ "url": "https://例え.テスト/ページ" }))
        .await;
    assert_eq!(patched.status(), 200);
    let location = app.get("/pasted-0").await.headers()["location"].clone();
    assert_eq!(
        location,
        "https://xn--r8jz45g.xn--zckzah/%E3%83%9A%E3%83%BC%E3%82%B8"
    );
    for refused in [
        "javascript:alert(1)",
        "https://user:pw@example.com/",
        "https://exa mple.com/",
    ] {
        let body = problem(app.create(json!({ "url": refused })).await, 422).await;
        assert_eq!(body["field"], "url", "{refused}: {body}");
    }
}

pub async fn unknown_codes_are_404_and_deleted_or_expired_links_are_410(app: &TestApp) {
    problem(app.get("/nope123").await, 404).await;
    problem(app.get("/bad%20code").await, 404).await;
    problem(app.get("/api/v1/links/nope123").await, 404).await;

    app.create_ok(json!({ "url": "https://example.com/", "alias": "deleted-one" }))
        .await;
    assert_eq!(app.delete("deleted-one").await.status(), 204);
    problem(app.get("/deleted-one").await, 410).await;
    // A deleted code is never handed out again.
    problem(
        app.create(json!({ "url": "https://example.com/", "alias": "deleted-one" }))
            .await,
        409,
    )
    .await;

    let soon = (Utc::now() + chrono::Duration::milliseconds(2500)).to_rfc3339();
    app.create_ok(
        json!({ "url": "https://example.com/", "alias": "short-lived", "expires_at": soon }),
    )
    .await;
    assert_eq!(app.get("/short-lived").await.status(), 302);
    tokio::time::sleep(Duration::from_millis(2700)).await;
    let gone = problem(app.get("/short-lived").await, 410).await;
    assert!(gone["detail"].as_str().unwrap().contains("expired"));

    // An expiry already past retires a link at once: on creation, and as a
    // change (which a later change can undo).
    let past = "2001-01-01T00:00:00Z";
    app.create_ok(
        json!({ "url": "https://example.com/", "alias": "born-expired", "expires_at": past }),
    )
    .await;
    problem(app.get("/born-expired").await, 410).await;
    app.create_ok(json!({ "url": "https://example.com/", "alias": "retired" }))
        .await;
    assert_eq!(app.get("/retired").await.status(), 302);
    assert_eq!(
        app.patch("retired", json!({ "expires_at": past }))
            .await
            .status(),
        200
    );
    problem(app.get("/retired").await, 410).await;
    assert_eq!(
        app.patch("retired", json!({ "expires_at": null }))
            .await
            .status(),
        200
    );
    assert_eq!(app.get("/retired").await.status(), 302);
}

pub async fn every_write_reaches_the_stream_as_a_valid_event(app: &TestApp) {
    let link = app
        .create_ok(json!({ "url": "https://example.com/", "alias": "evented" }))
        .await;
    assert_eq!(
        app.patch("evented", json!({ "redirect_type": 307 }))
            .await
            .status(),
        200
    );
    // A PATCH that changes nothing writes (and publishes) nothing.
    assert_eq!(
        app.patch("evented", json!({ "redirect_type": 307 }))
            .await
            .status(),
        200
    );
    assert_eq!(app.delete("evented").await.status(), 204);

    let started = Instant::now();
    let events = loop {
        let events = app.events(None).await;
        let events: Vec<AnyEvent> = events
            .into_iter()
            .filter(|e| !matches!(e, AnyEvent::Clicked(_)))
            .collect();
        if events.len() >= 3 || started.elapsed() > Duration::from_secs(15) {
            break events;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let id = link["id"].as_str().unwrap();
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(events.iter().all(|e| e.url_id().to_string() == id));
    match (&events[0], &events[1], &events[2]) {
        (AnyEvent::Created(c), AnyEvent::Updated(u), AnyEvent::Deleted(_)) => {
            assert_eq!(c.data.target_host, "example.com");
            assert_eq!(u.data.redirect_type.map(u16::from), Some(307));
            assert_eq!(u.data.original_url, None, "only changed fields are sent");
        }
        other => panic!("unexpected events {other:?}"),
    }
}

pub async fn bad_inputs_get_problem_json_naming_the_field(app: &TestApp) {
    super::bad_input::every_bad_input_is_refused(app).await;
}

/// Serves `n` redirects of `code`, 32 at a time, as a browser would.
async fn redirect_many(app: &TestApp, code: &str, n: usize) {
    let statuses: Vec<u16> = futures::stream::iter(0..n)
        .map(|i| async move {
            app.client
                .get(app.url(&format!("/{code}?n={i}")))
                .header(
                    "user-agent",
                    format!("Mozilla/5.0 (X11; Linux x86_64) test/{}", i % 7),
                )
                .header("referer", "https://news.example.org/item?id=1")
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
        .buffer_unordered(32)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == 302), "{statuses:?}");
}

/// The clicked events of one link on the stream.
fn clicks_of(
    events: Vec<AnyEvent>,
    url_id: &str,
) -> Vec<contracts::Envelope<contracts::UrlClicked>> {
    events
        .into_iter()
        .filter_map(|e| match e {
            AnyEvent::Clicked(c) if c.data.url_id.to_string() == url_id => Some(c),
            _ => None,
        })
        .collect()
}

pub async fn a_thousand_redirects_give_a_thousand_click_events_and_count(app: &TestApp) {
    let link = app
        .create_ok(json!({ "url": "https://example.com/", "alias": "popular" }))
        .await;
    let id = link["id"].as_str().unwrap();
    redirect_many(app, "popular", 1000).await;

    let started = Instant::now();
    loop {
        let count = app
            .get("/api/v1/links/popular")
            .await
            .json::<Value>()
            .await
            .unwrap()["click_count"]
            .clone();
        if count == 1000 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "click_count is {count} after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let clicks = clicks_of(app.events(Some(subjects::URL_CLICKED)).await, id);
    assert_eq!(clicks.len(), 1000);
    let distinct: std::collections::HashSet<_> = clicks.iter().map(|c| c.event_id).collect();
    assert_eq!(distinct.len(), 1000);
    let click = &clicks[0];
    assert_eq!(click.data.short_code, "popular");
    assert_eq!(
        click.data.referrer.as_deref(),
        Some("https://news.example.org/item?id=1")
    );
    assert!(
        click
            .data
            .user_agent
            .as_deref()
            .unwrap()
            .starts_with("Mozilla/5.0")
    );
    let visitor = click.data.visitor_key.as_deref().unwrap();
    assert!(!visitor.contains("127.0.0.1"));
    // Seven user agents from one address: seven visitors.
    let visitors: std::collections::HashSet<_> =
        clicks.iter().map(|c| c.data.visitor_key.clone()).collect();
    assert_eq!(visitors.len(), 7);
}

/// Called with an app of its own: it is stopped here.
pub async fn stopping_with_clicks_pending_loses_none(app: TestApp) {
    let link = app
        .create_ok(json!({ "url": "https://example.com/", "alias": "last-orders" }))
        .await;
    let id = link["id"].as_str().unwrap().to_owned();
    redirect_many(&app, "last-orders", 500).await;
    // Stop at once: most clicks are still queued or counted only in memory.
    let stopped = app.stop().await;
    let clicks = clicks_of(
        events_on(&stopped.nats, Some(subjects::URL_CLICKED)).await,
        &id,
    );
    assert_eq!(clicks.len(), 500);
    let stored = stopped.store.find("last-orders").await.unwrap().unwrap();
    assert_eq!(stored.click_count, 500);
}

/// Polls `GET url` until `check` accepts the response, for at most 10 s.
async fn eventually(
    app: &TestApp,
    url: &str,
    what: &str,
    check: impl Fn(&reqwest::Response) -> bool,
) {
    let started = Instant::now();
    loop {
        let response = app.client.get(url).send().await.unwrap();
        if check(&response) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{what}: still {response:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn a_change_on_one_instance_reaches_the_cache_of_another(app: &TestApp) {
    app.create_ok(json!({ "url": "https://example.com/old", "alias": "shared" }))
        .await;
    let other = app.sibling().await;
    let via_other = format!("{}/shared", other.address);
    // Warm the other instance's cache.
    for _ in 0..3 {
        let response = app.client.get(&via_other).send().await.unwrap();
        assert_eq!(response.headers()["location"], "https://example.com/old");
    }

    assert_eq!(
        app.patch("shared", json!({ "url": "https://example.com/new" }))
            .await
            .status(),
        200
    );
    eventually(app, &via_other, "the update", |r| {
        r.headers()
            .get("location")
            .is_some_and(|l| l == "https://example.com/new")
    })
    .await;

    assert_eq!(app.delete("shared").await.status(), 204);
    eventually(app, &via_other, "the deletion", |r| r.status() == 410).await;
    other.stop().await;
}

/// HEAD answers exactly as GET does (status, `Location`, `Cache-Control`)
/// and records no click: link checkers and preview bots are not visitors.
pub async fn head_answers_as_get_and_records_no_click(app: &TestApp) {
    app.create_ok(
        json!({ "url": "https://example.com/head", "alias": "headed", "redirect_type": 308 }),
    )
    .await;
    for _ in 0..3 {
        let head = app
            .client
            .head(app.url("/headed?x=1"))
            .send()
            .await
            .unwrap();
        let get = app.get("/headed?x=1").await;
        assert_eq!(head.status(), get.status());
        assert_eq!(head.status(), 308);
        for name in ["location", "cache-control"] {
            assert_eq!(head.headers()[name], get.headers()[name], "{name}");
        }
    }
    let unknown = app
        .client
        .head(app.url("/no-such-code"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    // Only the three GETs were clicks.
    let started = std::time::Instant::now();
    loop {
        let count = app.events(Some("shortener.url.clicked")).await.len();
        if count >= 3 {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            assert_eq!(app.events(Some("shortener.url.clicked")).await.len(), 3);
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{count} clicks"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// A code looked up while unknown answers 404 from the cache, and creating
/// it ends that at once: the next redirect follows the new link.
pub async fn an_unknown_code_is_cached_until_it_is_created(app: &TestApp) {
    for _ in 0..3 {
        problem(app.get("/later").await, 404).await;
    }
    app.create_ok(json!({ "url": "https://example.com/later", "alias": "later" }))
        .await;
    let response = app.get("/later").await;
    assert_eq!(response.status(), 302);
    assert_eq!(response.headers()["location"], "https://example.com/later");
}

/// What a phone would read from a greyscale image (rqrr, an independent
/// decoder): the one QR code's text.
fn scan(width: usize, height: usize, pixel: impl Fn(usize, usize) -> u8) -> String {
    let mut image = rqrr::PreparedImage::prepare_from_greyscale(width, height, pixel);
    let grids = image.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the image");
    grids[0].decode().expect("the code decodes").1
}

/// `GET /api/v1/links/{code}/qr`: the short URL as a QR code, in PNG and
/// SVG, at least the size asked; bad parameters and unknown codes answer
/// problem+json.
pub async fn a_link_has_a_qr_code_of_its_short_url(app: &TestApp) {
    let link = app
        .create_ok(json!({ "url": "https://example.com/qr", "alias": "scan-me" }))
        .await;
    let path = "/api/v1/links/scan-me/qr";

    let png = app.get(&format!("{path}?format=png&size=300")).await;
    assert_eq!(png.status(), 200);
    assert_eq!(png.headers()["content-type"], "image/png");
    let bytes = png.bytes().await.unwrap();
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes.to_vec()))
        .read_info()
        .unwrap();
    let mut pixels = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut pixels).unwrap();
    assert!(info.width >= 300 && info.width == info.height, "{info:?}");
    let width = info.width as usize;
    let text = scan(width, width, |x, y| pixels[y * width + x]);
    assert_eq!(text, link["short_url"]);

    let svg = app.get(path).await;
    assert_eq!(svg.status(), 200);
    assert_eq!(svg.headers()["content-type"], "image/svg+xml");
    let svg = svg.text().await.unwrap();
    assert!(svg.contains("<svg"), "{svg}");
    let side: usize = svg
        .split("width=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no width: {svg}"));
    assert!(side >= 256, "the default size is 256 at least: {side}");

    for (query, field) in [("format=gif", "format"), ("size=8", "size")] {
        let answer = app.get(&format!("{path}?{query}")).await;
        assert_eq!(problem(answer, 400).await["field"], field, "{query}");
    }
    problem(app.get("/api/v1/links/no-such-code/qr").await, 404).await;
    assert_eq!(app.delete("scan-me").await.status(), 204);
    problem(app.get(path).await, 410).await;
}

/// The codes of one page of `GET /api/v1/links?{query}`, and its cursor.
async fn listed(app: &TestApp, query: &str) -> (Vec<String>, Option<String>) {
    let response = app.get(&format!("/api/v1/links?{query}")).await;
    assert_eq!(response.status(), 200, "{query}");
    let page: Value = response.json().await.unwrap();
    let codes = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["code"].as_str().unwrap().to_owned())
        .collect();
    (codes, page["next_cursor"].as_str().map(str::to_owned))
}

pub async fn links_have_titles_and_tags_and_are_found_by_them(app: &TestApp) {
    let created = app
        .create_ok(json!({
            "url": "https://example.com/q3", "alias": "q3-plan",
            "title": "  Q3 Launch Plan ", "tags": ["q3", "launch", "q3"],
        }))
        .await;
    assert_eq!(created["title"], "Q3 Launch Plan", "trimmed");
    assert_eq!(created["tags"], json!(["q3", "launch"]), "each tag once");
    let plain = app
        .create_ok(json!({ "url": "https://example.com/plain", "alias": "plain" }))
        .await;
    assert_eq!(plain["title"], Value::Null);
    assert_eq!(plain["tags"], json!([]));
    app.create_ok(
        json!({ "url": "https://example.com/launch-notes", "alias": "notes", "tags": ["q3"] }),
    )
    .await;

    // Search over code, target and title; filter by tag; both at once.
    assert_eq!(listed(app, "q=launch").await.0, ["notes", "q3-plan"]);
    assert_eq!(listed(app, "q=LAUNCH%20plan").await.0, ["q3-plan"]);
    assert_eq!(listed(app, "q=plain").await.0, ["plain"]);
    assert_eq!(listed(app, "tag=q3").await.0, ["notes", "q3-plan"]);
    assert_eq!(
        listed(app, "tag=launch&q=notes").await.0,
        Vec::<String>::new()
    );
    assert_eq!(
        listed(app, "q=&tag=launch").await.0,
        ["q3-plan"],
        "an empty q is no filter"
    );
    // By id: which of these are live (an unknown id is simply absent).
    let ids = format!(
        "{},{},{}",
        created["id"].as_str().unwrap(),
        plain["id"].as_str().unwrap(),
        uuid::Uuid::now_v7()
    );
    assert_eq!(
        listed(app, &format!("ids={ids}")).await.0,
        ["plain", "q3-plan"]
    );

    // PATCH replaces tags, removes the title with null; the rest stays.
    let patched: Value = app
        .patch("q3-plan", json!({ "title": null, "tags": ["archive"] }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(patched["title"], Value::Null);
    assert_eq!(patched["tags"], json!(["archive"]));
    assert_eq!(patched["url"], "https://example.com/q3");
    let read: Value = app.get("/api/v1/links/q3-plan").await.json().await.unwrap();
    assert_eq!(read, patched);
    assert_eq!(listed(app, "tag=q3").await.0, ["notes"]);
    // Labels are the shortener's own: no event tells analytics of them.
    let updates = app.events(Some(subjects::URL_UPDATED)).await;
    assert!(updates.is_empty(), "{updates:?}");

    // By clicks: most first, ties newest first, paged with the cursor.
    redirect_many(app, "plain", 3).await;
    redirect_many(app, "notes", 1).await;
    for (code, clicks) in [("notes", 1), ("plain", 3)] {
        let started = Instant::now();
        loop {
            let read: Value = app
                .get(&format!("/api/v1/links/{code}"))
                .await
                .json()
                .await
                .unwrap();
            if read["click_count"] == clicks {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{code}: {read}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let (first, cursor) = listed(app, "sort=clicks&limit=2").await;
    assert_eq!(first, ["plain", "notes"]);
    let cursor = cursor.expect("a second page");
    let (rest, end) = listed(app, &format!("sort=clicks&limit=2&cursor={cursor}")).await;
    assert_eq!(rest, ["q3-plan"]);
    assert_eq!(end, None);
    let (newest, _) = listed(app, "sort=created").await;
    assert_eq!(newest, ["notes", "plain", "q3-plan"]);
}

pub async fn a_bulk_create_answers_each_item_in_order(app: &TestApp) {
    app.create_ok(json!({ "url": "https://example.com/taken", "alias": "taken" }))
        .await;
    let mut body: Vec<Value> = (0..250)
        .map(|n| json!({ "url": format!("https://example.com/bulk/{n}"), "tags": ["bulk"] }))
        .collect();
    body[3] = json!({ "url": "not a url" });
    body[10] = json!({ "url": "https://example.com/x", "alias": "taken" });
    body[20] = json!({ "url": "https://example.com/y", "alias": "twice", "title": "First" });
    body[21] = json!({ "url": "https://example.com/z", "alias": "twice" });
    body[30] = json!({ "url": "https://example.com/w", "nope": 1 });
    body[40] = json!("not an object");
    let bulk = |body: Value| {
        app.client
            .post(app.url("/api/v1/links/bulk"))
            .json(&body)
            .send()
    };
    let response = bulk(json!(body)).await.unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    let items = answer["items"].as_array().unwrap();
    assert_eq!(items.len(), 250, "one answer per item, in order");
    let problem_field = |i: usize| items[i]["problem"]["field"].as_str().unwrap_or_default();
    assert_eq!(
        (items[3]["status"].as_u64(), problem_field(3)),
        (Some(422), "url")
    );
    assert_eq!(items[10]["status"], 409, "an alias taken in the store");
    assert_eq!(items[10]["problem"]["code"], "alias_taken");
    assert_eq!(items[20]["status"], 201);
    assert_eq!(items[20]["link"]["code"], "twice");
    assert_eq!(items[20]["link"]["title"], "First");
    assert_eq!(
        items[21]["status"], 409,
        "an alias taken earlier in the same request"
    );
    assert_eq!(
        (items[30]["status"].as_u64(), problem_field(30)),
        (Some(422), "nope")
    );
    assert_eq!(items[40]["status"], 422);
    let created: Vec<&Value> = items.iter().filter(|i| i["status"] == 201).collect();
    assert_eq!(created.len(), 245);
    for (n, item) in items.iter().enumerate() {
        if item["status"] == 201 && n != 20 {
            assert_eq!(item["link"]["url"], format!("https://example.com/bulk/{n}"));
            assert_eq!(item["link"]["tags"], json!(["bulk"]));
        }
    }
    // Each created link redirects and its created event reaches the stream.
    let code = items[0]["link"]["code"].as_str().unwrap();
    let response = app
        .client
        .get(app.url(&format!("/{code}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 302);
    let started = Instant::now();
    loop {
        let events = app.events(Some(subjects::URL_CREATED)).await;
        if events.len() == 246 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{} created events",
            events.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The whole body's shape is checked first.
    for (body, why) in [
        (json!([]), "empty"),
        (
            json!(
                (0..1001)
                    .map(|n| json!({ "url": format!("https://e.com/{n}") }))
                    .collect::<Vec<_>>()
            ),
            "too many",
        ),
        (json!({ "url": "https://e.com/" }), "not an array"),
    ] {
        let response = bulk(body).await.unwrap();
        assert_eq!(response.status(), 422, "{why}");
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["field"], "body", "{why}: {problem}");
    }
}

pub async fn password_links_redirect_only_with_their_password(app: &TestApp) {
    let link = app
        .create_ok(json!({
            "url": "https://example.com/secret", "alias": "secret", "password": "open sesame",
        }))
        .await;
    assert_eq!(link["password_protected"], true);
    let shown = link.to_string();
    assert!(
        !shown.contains("sesame") && !shown.contains("argon2"),
        "{shown}"
    );
    let plain = app
        .create_ok(json!({ "url": "https://example.com/open" }))
        .await;
    assert_eq!(plain["password_protected"], false);

    // GET: a form, no redirect and no click; HEAD: 401.
    let page = app
        .anonymous
        .get(app.url("/secret?utm=x"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    let html = page.text().await.unwrap();
    assert!(
        html.contains(r#"name="password""#) && html.contains(r#"<form method="post">"#),
        "{html}"
    );
    assert!(!html.contains("http"), "nothing from elsewhere: {html}");
    let head = app.anonymous.head(app.url("/secret")).send().await.unwrap();
    assert_eq!(head.status(), 401);

    let unlock = |code: &'static str, password: &'static str| {
        app.anonymous
            .post(app.url(&format!("/{code}?utm=x")))
            .form(&[("password", password)])
            .send()
    };
    let wrong = unlock("secret", "open sesame!").await.unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(wrong.text().await.unwrap().contains("Wrong password"));
    let right = unlock("secret", "open sesame").await.unwrap();
    assert_eq!(right.status(), 302);
    assert_eq!(
        right.headers()["location"],
        "https://example.com/secret?utm=x"
    );
    // Only the redirect that was given counts: one click.
    let started = Instant::now();
    let secret_id = link["id"].as_str().unwrap().to_owned();
    loop {
        let clicks: Vec<_> = app
            .events(Some(subjects::URL_CLICKED))
            .await
            .into_iter()
            .filter(|e| matches!(e, AnyEvent::Clicked(c) if c.data.url_id.to_string() == secret_id))
            .collect();
        if clicks.len() == 1 {
            break;
        }
        assert!(
            clicks.is_empty() && started.elapsed() < Duration::from_secs(15),
            "{} clicks",
            clicks.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // An unknown code answers as GET does, after the same work.
    assert_eq!(unlock("nobody-here", "x").await.unwrap().status(), 404);
    // Not a form, or no password field: named.
    let json_body = app
        .anonymous
        .post(app.url("/secret"))
        .json(&json!({ "password": "open sesame" }))
        .send()
        .await
        .unwrap();
    assert_eq!(json_body.status(), 415);
    let empty = app
        .anonymous
        .post(app.url("/secret"))
        .form(&[("other", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(empty.status(), 422);

    // PATCH: a new password replaces the old; null removes it.
    let changed: Value = app
        .patch("secret", json!({ "password": "new words" }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(changed["password_protected"], true);
    assert_eq!(unlock("secret", "open sesame").await.unwrap().status(), 401);
    assert_eq!(unlock("secret", "new words").await.unwrap().status(), 302);
    let opened: Value = app
        .patch("secret", json!({ "password": null }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(opened["password_protected"], false);
    let now_open = app.anonymous.get(app.url("/secret")).send().await.unwrap();
    assert_eq!(now_open.status(), 302);
    // A too-short password is refused, named.
    let short = app.patch("secret", json!({ "password": "abc" })).await;
    assert_eq!(problem(short, 422).await["field"], "password");

    // Attempts are limited per client: 10 a minute, then 429 with the wait.
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(unlock("nobody-here", "guess").await.unwrap());
    }
    let last = statuses.pop().unwrap();
    assert_eq!(last.status(), 429);
    let wait: u64 = last.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
}

/// A wrong password and an unknown code cost the same: the answer's time
/// does not tell whether a code exists (the statuses do, as GET's do).
pub async fn a_wrong_password_takes_as_long_as_an_unknown_code(app: &TestApp) {
    app.create_ok(
        json!({ "url": "https://example.com/t", "alias": "timed", "password": "right one" }),
    )
    .await;
    let time = |code: &'static str| async move {
        let started = Instant::now();
        let response = app
            .anonymous
            .post(app.url(&format!("/{code}")))
            .form(&[("password", "wrong one")])
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), started.elapsed().as_secs_f64())
    };
    let (mut wrong, mut unknown) = (Vec::new(), Vec::new());
    // Interleaved, within the per-client limit of 10 a minute.
    for _ in 0..4 {
        let (status, took) = time("timed").await;
        assert_eq!(status, 401);
        wrong.push(took);
        let (status, took) = time("no-such-code").await;
        assert_eq!(status, 404);
        unknown.push(took);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[1] + v[2]) / 2.0
    };
    let (wrong, unknown) = (median(wrong), median(unknown));
    let ratio = unknown / wrong;
    assert!(
        (0.5..2.0).contains(&ratio),
        "unknown code {unknown:.4} s against wrong password {wrong:.4} s"
    );
}
