//! What analytics must do, run against each store (see `main.rs`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use contracts::subjects::URL_CLICKED;
use contracts::{Envelope, UrlClicked, UrlDeleted, UrlUpdated};
use futures::StreamExt;
use serde_json::{Value, json};
use uuid::Uuid;

use super::helpers::{Env, TestApp, at, clicked, created, publish, publish_raw, total};

/// 2026-03-01T00:00:00Z.
const D0: i64 = 1_772_323_200;
const DAY: i64 = 86_400;

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36";
const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
const SLACK: &str = "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)";

/// User agents with their hand-checked labels: browser, os, device, bot.
const AGENTS: [(Option<&str>, &str, &str, &str, bool); 5] = [
    (Some(FIREFOX), "Firefox", "Linux", "desktop", false),
    (Some(CHROME), "Chrome", "Windows 10", "desktop", false),
    (Some(IPHONE), "Safari", "iPhone", "mobile", false),
    (Some(SLACK), "misc crawler", "unknown", "bot", true),
    (None, "unknown", "unknown", "unknown", false),
];

/// Referrers with the host analytics must reduce them to ("" = none).
const REFERRERS: [(Option<&str>, &str); 5] = [
    (None, ""),
    (
        Some("https://www.google.com/search?q=short"),
        "www.google.com",
    ),
    (
        Some("https://News.YCombinator.com/item?id=1"),
        "news.ycombinator.com",
    ),
    (Some("https://t.co/abc"), "t.co"),
    (Some("not a url"), ""),
];

const COUNTRIES: [(Option<&str>, &str); 4] = [
    (Some("DE"), "DE"),
    (Some("US"), "US"),
    (Some("FR"), "FR"),
    (None, ""),
];

/// One generated click and what analytics must derive from it.
struct Expected {
    link: usize,
    at: i64,
    visitor: String,
    referrer: &'static str,
    browser: &'static str,
    os: &'static str,
    device: &'static str,
    bot: bool,
    country: &'static str,
}

fn top(values: impl Iterator<Item = &'static str>) -> Value {
    let mut counts: HashMap<&str, u64> = HashMap::new();
    for v in values.filter(|v| !v.is_empty()) {
        *counts.entry(v).or_default() += 1;
    }
    let mut items: Vec<(&str, u64)> = counts.into_iter().collect();
    items.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    items.truncate(10);
    Value::Array(
        items
            .into_iter()
            .map(|(v, c)| json!({"value": v, "clicks": c}))
            .collect(),
    )
}

fn rfc3339(t: i64) -> String {
    at(t).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The stats a window of expected clicks must produce.
fn expected_stats(clicks: &[&Expected], from: i64, to: i64, bucket: i64) -> Value {
    let inside: Vec<&&Expected> = clicks
        .iter()
        .filter(|c| c.at >= from && c.at < to)
        .collect();
    let uniques = |cs: &[&&Expected]| {
        cs.iter()
            .filter(|c| !c.visitor.is_empty())
            .map(|c| c.visitor.as_str())
            .collect::<BTreeSet<_>>()
            .len() as u64
    };
    let mut series = Vec::new();
    let mut start = from.div_euclid(bucket) * bucket;
    while start < to {
        let in_bucket: Vec<&&Expected> = inside
            .iter()
            .copied()
            .filter(|c| c.at >= start && c.at < start + bucket)
            .collect();
        series.push(json!({"t": rfc3339(start), "clicks": in_bucket.len(), "unique_visitors": uniques(&in_bucket)}));
        start += bucket;
    }
    let bots = inside.iter().filter(|c| c.bot).count() as u64;
    json!({
        "total_clicks": inside.len(),
        "unique_visitors": uniques(&inside),
        "bot_clicks": bots,
        "human_clicks": inside.len() as u64 - bots,
        "series": series,
        "top_referrers": top(inside.iter().map(|c| c.referrer)),
        "browsers": top(inside.iter().map(|c| c.browser)),
        "os": top(inside.iter().map(|c| c.os)),
        "devices": top(inside.iter().map(|c| c.device)),
        "countries": top(inside.iter().map(|c| c.country)),
    })
}

const COMPARED: [&str; 10] = [
    "total_clicks",
    "unique_visitors",
    "bot_clicks",
    "human_clicks",
    "series",
    "top_referrers",
    "browsers",
    "os",
    "devices",
    "countries",
];

fn assert_stats(actual: &Value, expected: &Value, what: &str) {
    for field in COMPARED {
        assert_eq!(actual[field], expected[field], "{what}: {field}");
    }
}

/// The scenario of the issue: 1000 clicks over 3 links across 3 days, plus
/// two just outside the window, which must not count.
struct Scenario {
    links: [(Uuid, &'static str); 3],
    expected: Vec<Expected>,
    events: Vec<Envelope<UrlClicked>>,
}

fn scenario() -> Scenario {
    let links = [
        (Uuid::now_v7(), "alpha"),
        (Uuid::now_v7(), "bravo"),
        (Uuid::now_v7(), "charlie"),
    ];
    let mut expected = Vec::new();
    let mut events = Vec::new();
    for i in 0..1_002_i64 {
        let link = if i % 5 == 0 { 0 } else { (i % 3) as usize };
        let when = match i {
            1_000 => D0 - 1,
            1_001 => D0 + 3 * DAY,
            _ => D0 + ((i / 7) % 3) * DAY + ((i * 5) % 24) * 3_600 + (i % 60) * 60 + (i * 7) % 60,
        };
        let agent = AGENTS[((i / 2) % 5) as usize];
        let referrer = REFERRERS[(i % 5) as usize];
        let country = COUNTRIES[((i / 3) % 4) as usize];
        // 37 visitors; a visitor's key changes every UTC day, as the
        // shortener's does (`shortener.url.clicked`).
        let visitor = if i % 11 == 0 {
            String::new()
        } else {
            format!("{:016x}{:016x}", when.div_euclid(DAY), i % 37)
        };
        let (id, code) = links[link];
        let mut event = clicked(id, code, when);
        event.data.user_agent = agent.0.map(str::to_owned);
        event.data.referrer = referrer.0.map(str::to_owned);
        event.data.country = country.0.map(str::to_owned);
        event.data.visitor_key = (!visitor.is_empty()).then(|| visitor.clone());
        events.push(event);
        expected.push(Expected {
            link,
            at: when,
            visitor,
            referrer: referrer.1,
            browser: agent.1,
            os: agent.2,
            device: agent.3,
            bot: agent.4,
            country: country.1,
        });
    }
    Scenario {
        links,
        expected,
        events,
    }
}

async fn ingest_scenario(env: &Env, app: &super::helpers::TestApp) -> Scenario {
    let s = scenario();
    let js = env.jetstream().await;
    let creations: Vec<_> = s
        .links
        .iter()
        .map(|(id, code)| created(*id, code, D0 - DAY))
        .collect();
    publish(&js, &creations).await;
    publish(&js, &s.events).await;
    for (index, (_, code)) in s.links.iter().enumerate() {
        let all = s.expected.iter().filter(|c| c.link == index).count() as u64;
        app.eventually(
            &format!(
                "/api/v1/links/{code}/stats?from={}&to={}",
                rfc3339(D0 - DAY),
                rfc3339(D0 + 4 * DAY)
            ),
            |status, body| status == 200 && total(body) == all,
        )
        .await;
    }
    s
}

pub async fn a_thousand_clicks_over_three_links_and_three_days_give_exact_stats(env: &Env) {
    let app = env.app().await;
    let s = ingest_scenario(env, &app).await;
    let (from, to) = (D0, D0 + 3 * DAY);
    let mut grand_total = 0;
    for (index, (id, code)) in s.links.iter().enumerate() {
        let clicks: Vec<&Expected> = s.expected.iter().filter(|c| c.link == index).collect();
        let expected = expected_stats(&clicks, from, to, DAY);
        let query = format!("from={}&to={}", rfc3339(from), rfc3339(to));
        let (status, by_code) = app
            .get_json(&format!("/api/v1/links/{code}/stats?{query}"))
            .await;
        assert_eq!(status, 200, "{by_code}");
        assert_stats(&by_code, &expected, code);
        assert_eq!(by_code["series"].as_array().unwrap().len(), 3);
        assert_eq!(by_code["bucket"], "day");
        assert_eq!(by_code["link"]["status"], "active");
        assert_eq!(by_code["link"]["short_code"], *code);
        let (_, by_id) = app
            .get_json(&format!("/api/v1/urls/{id}/stats?{query}&bucket=day"))
            .await;
        assert_stats(&by_id, &expected, code);
        grand_total += by_code["total_clicks"].as_u64().unwrap();
        // Hours of the middle day: 24 buckets, empty ones included.
        let (day_from, day_to) = (D0 + DAY, D0 + 2 * DAY);
        let (status, hourly) = app
            .get_json(&format!(
                "/api/v1/links/{code}/stats?from={}&to={}&bucket=hour",
                rfc3339(day_from),
                rfc3339(day_to)
            ))
            .await;
        assert_eq!(status, 200);
        assert_eq!(hourly["series"].as_array().unwrap().len(), 24);
        assert_stats(
            &hourly,
            &expected_stats(&clicks, day_from, day_to, 3_600),
            code,
        );
    }
    assert_eq!(
        grand_total, 1_000,
        "the two clicks outside the window do not count"
    );
    app.stop().await;
}

pub async fn the_same_event_twice_counts_once(env: &Env) {
    let app = env.app().await;
    let js = env.jetstream().await;
    let id = Uuid::now_v7();
    publish(&js, &[created(id, "twice", D0)]).await;
    let event = clicked(id, "twice", D0 + 10);
    let payload = contracts::encode(&event).unwrap();
    // Once as published, once republished with a new message id (the
    // server cannot deduplicate that), then a different click.
    publish_raw(
        &js,
        URL_CLICKED,
        &event.event_id.to_string(),
        payload.clone(),
    )
    .await;
    publish_raw(&js, URL_CLICKED, &Uuid::now_v7().to_string(), payload).await;
    publish(&js, &[clicked(id, "twice", D0 + 20)]).await;
    let path = format!(
        "/api/v1/links/twice/stats?from={}&to={}",
        rfc3339(D0),
        rfc3339(D0 + DAY)
    );
    app.eventually(&format!("{path}&bucket=hour"), |_, body| total(body) >= 2)
        .await;
    // Let every message be processed: the consumer has no lag left.
    wait_for_no_lag(&app).await;
    let (_, body) = app.get_json(&path).await;
    assert_eq!(total(&body), 2, "{body}");
    assert_eq!(body["series"][0]["clicks"], 2);
    app.stop().await;
}

/// Waits until every consumer reported no lag (the lag gauges are refreshed
/// every 2 s, so this also waits for a fresh report).
async fn wait_for_no_lag(app: &super::helpers::TestApp) {
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    let started = std::time::Instant::now();
    loop {
        let text = app.get("/metrics").await.text().await.unwrap();
        let lags: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("analytics_consumer_lag_messages{"))
            .collect();
        if lags.len() == 4 && lags.iter().all(|l| l.ends_with(" 0")) {
            return;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "lag never reached 0: {lags:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

pub async fn a_click_before_its_link_is_counted_and_later_attributed(env: &Env) {
    let app = env.app().await;
    let js = env.jetstream().await;
    let id = Uuid::now_v7();
    let now = chrono::Utc::now().timestamp();
    publish(
        &js,
        &[
            clicked(id, "early", now - 60),
            clicked(id, "early", now - 30),
        ],
    )
    .await;
    let body = app
        .eventually("/api/v1/links/early/stats", |status, body| {
            status == 200 && total(body) == 2
        })
        .await;
    assert_eq!(body["link"]["status"], "unknown", "{body}");
    assert_eq!(body["link"]["shortener_url_id"], id.to_string());
    let (_, report) = app.get_json("/api/v1/reconciliation?grace_seconds=0").await;
    let orphan = report["orphans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["shortener_url_id"] == id.to_string())
        .unwrap_or_else(|| panic!("not an orphan: {report}"));
    assert_eq!(orphan["clicks"], 2);
    assert_eq!(orphan["short_code"], "early");
    // With the default grace period the clicks are too recent to be orphans.
    let (_, report) = app.get_json("/api/v1/reconciliation").await;
    assert!(report["orphans"].as_array().unwrap().is_empty(), "{report}");

    publish(&js, &[created(id, "early", now - 120)]).await;
    let body = app
        .eventually("/api/v1/links/early/stats", |_, body| {
            body["link"]["status"] == "active"
        })
        .await;
    assert_eq!(total(&body), 2);
    assert_eq!(body["link"]["target"], "https://example.com/early");
    let (_, by_id) = app.get_json(&format!("/api/v1/urls/{id}/stats")).await;
    assert_eq!(total(&by_id), 2);
    let (_, report) = app.get_json("/api/v1/reconciliation?grace_seconds=0").await;
    assert!(report["orphans"].as_array().unwrap().is_empty(), "{report}");
    app.stop().await;
}

pub async fn poison_messages_land_in_the_dead_letter_subject_while_valid_traffic_flows(env: &Env) {
    let app = env.app().await;
    let js = env.jetstream().await;
    let id = Uuid::now_v7();
    publish(&js, &[created(id, "poison", D0)]).await;
    let mut schema_violation = serde_json::to_value(clicked(id, "poison", D0 + 1)).unwrap();
    schema_violation["data"]
        .as_object_mut()
        .unwrap()
        .remove("url_id");
    let mut future_version = serde_json::to_value(clicked(id, "poison", D0 + 2)).unwrap();
    future_version["event_version"] = json!(99);
    let wrong_type = serde_json::to_vec(&created(id, "poison", D0)).unwrap();
    let poisons: [(&str, Vec<u8>); 4] = [
        ("invalid_json", b"{not json".to_vec()),
        (
            "schema_violation",
            serde_json::to_vec(&schema_violation).unwrap(),
        ),
        (
            "unsupported_version",
            serde_json::to_vec(&future_version).unwrap(),
        ),
        ("wrong_event_type", wrong_type),
    ];
    let named: Vec<(String, Vec<u8>)> = poisons
        .iter()
        .enumerate()
        .map(|(i, (_, payload))| (format!("poison-{i}"), payload.clone()))
        .collect();
    let (path, valid, letters) = around_poison(env, &app, id, "poison", &named).await;
    let mut reasons = BTreeMap::new();
    for letter in letters {
        let headers = letter.headers.clone().unwrap();
        let reason = headers.get("Dlq-Reason").unwrap().to_string();
        assert!(
            headers
                .get("Dlq-Error")
                .is_some_and(|e| !e.as_str().is_empty())
        );
        assert_eq!(
            headers.get("Dlq-Original-Subject").unwrap().as_str(),
            URL_CLICKED
        );
        assert!(headers.get("Dlq-Original-Sequence").is_some());
        assert!(
            headers
                .get("Nats-Msg-Id")
                .unwrap()
                .as_str()
                .starts_with("poison-"),
            "original headers are kept"
        );
        reasons.insert(reason, letter.payload.to_vec());
    }
    let expected: BTreeMap<String, Vec<u8>> = poisons
        .iter()
        .map(|(r, p)| (r.to_string(), p.clone()))
        .collect();
    assert_eq!(
        reasons, expected,
        "each poison once, with its reason and original payload"
    );
    let (_, body) = app.get_json(&path).await;
    assert_eq!(total(&body), valid, "no poison was counted");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("analytics_dead_letters_total{subject=\"shortener.url.clicked\",reason=\"invalid_json\"} 1"), "{metrics}");
    let (_, status) = app.get_json("/api/v1/status").await;
    assert_eq!(
        status["dead_letters"].as_u64(),
        Some(reasons.len() as u64),
        "every dead letter, whatever its reason: {status}"
    );
    app.stop().await;
}

/// Publishes ten valid clicks of `code` before each poison (published raw
/// under its name as `Nats-Msg-Id`) and ten after the last, waits until
/// analytics counts exactly the valid ones, and returns the stats path, that
/// count, and the dead letters on the clicked subject.
async fn around_poison(
    env: &Env,
    app: &TestApp,
    id: Uuid,
    code: &str,
    poisons: &[(String, Vec<u8>)],
) -> (String, u64, Vec<async_nats::jetstream::Message>) {
    let js = env.jetstream().await;
    let mut valid = 0;
    for (i, (name, payload)) in poisons.iter().enumerate() {
        let batch: Vec<_> = (0..10)
            .map(|k| clicked(id, code, D0 + 100 + (i * 10 + k) as i64))
            .collect();
        publish(&js, &batch).await;
        valid += batch.len() as u64;
        publish_raw(&js, URL_CLICKED, name, payload.clone()).await;
    }
    let tail: Vec<_> = (0..10).map(|k| clicked(id, code, D0 + 500 + k)).collect();
    publish(&js, &tail).await;
    valid += tail.len() as u64;
    let path = format!(
        "/api/v1/links/{code}/stats?from={}&to={}",
        rfc3339(D0),
        rfc3339(D0 + DAY)
    );
    app.eventually(&path, |_, body| total(body) == valid).await;

    let dlq = js.get_stream("ANALYTICS_DLQ").await.unwrap();
    let consumer = dlq
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            filter_subject: format!("analytics.dlq.{URL_CLICKED}"),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut letters = consumer
        .fetch()
        .max_messages(10)
        .expires(std::time::Duration::from_secs(2))
        .messages()
        .await
        .unwrap();
    let mut all = Vec::new();
    while let Some(Ok(letter)) = letters.next().await {
        all.push(letter);
    }
    (path, valid, all)
}

/// Poison that used to stop a subject for good: a 700 KB schema-breaking
/// click (the validator's message embedded the value, so the letter outgrew
/// the server's limit), a value with CR/LF (the client panics on a header
/// value with one), and an event so near the limit that its letter cannot
/// carry it. Each is dead-lettered once, with bounded one-line
/// headers, and the valid clicks around them are counted.
pub async fn huge_and_header_breaking_poison_is_dead_lettered_and_ingestion_goes_on(env: &Env) {
    let app = env.app().await;
    let js = env.jetstream().await;
    let id = Uuid::now_v7();
    publish(&js, &[created(id, "bulky", D0)]).await;
    let mut huge = serde_json::to_value(clicked(id, "bulky", D0 + 1)).unwrap();
    huge["data"]["user_agent"] = json!("A".repeat(700_000));
    let mut crlf = serde_json::to_value(clicked(id, "bulky", D0 + 2)).unwrap();
    crlf["data"]["country"] = json!("U\r\nDlq-Reason: forged");
    let max_payload = js.client().server_info().max_payload;
    let near_limit = format!("{{{}", " ".repeat(max_payload - 200)).into_bytes();
    let poisons: [(&str, Vec<u8>); 3] = [
        ("huge", serde_json::to_vec(&huge).unwrap()),
        ("crlf", serde_json::to_vec(&crlf).unwrap()),
        ("near-limit", near_limit),
    ];
    let named: Vec<(String, Vec<u8>)> = poisons
        .iter()
        .map(|(name, payload)| (name.to_string(), payload.clone()))
        .collect();
    let (path, valid, letters) = around_poison(env, &app, id, "bulky", &named).await;
    let mut seen = BTreeMap::new();
    for letter in letters {
        let headers = letter.headers.clone().unwrap();
        let name = headers.get("Nats-Msg-Id").unwrap().to_string();
        let error = headers.get("Dlq-Error").unwrap().as_str().to_owned();
        assert!(error.len() <= 1024, "{name}: a {} byte error", error.len());
        assert!(!error.contains(['\r', '\n']), "{name}: {error:?}");
        assert!(!error.contains("AAAA"), "{name}: the value is masked");
        let omitted = headers.get("Dlq-Payload-Omitted").map(|v| v.to_string());
        seen.insert(name, (letter.payload.len(), omitted));
    }
    let expected: BTreeMap<String, (usize, Option<String>)> = [
        ("huge".to_owned(), (poisons[0].1.len(), None)),
        ("crlf".to_owned(), (poisons[1].1.len(), None)),
        (
            "near-limit".to_owned(),
            (0, Some(poisons[2].1.len().to_string())),
        ),
    ]
    .into();
    assert_eq!(seen, expected, "each poison dead-lettered once");
    let (_, body) = app.get_json(&path).await;
    assert_eq!(total(&body), valid, "no poison was counted");
    app.stop().await;
}

/// More poison in one batch than the dead-letter publisher sends before it
/// awaits acks, and more than the client allows in flight (5,000): all of it is
/// dead-lettered once, and the valid clicks behind it are counted.
pub async fn a_burst_of_poison_in_one_batch_is_dead_lettered_in_full(env: &Env) {
    const POISONED: usize = 6_000;
    let js = env.jetstream().await;
    let id = Uuid::now_v7();
    publish(&js, &[created(id, "burst", D0)]).await;
    for i in 0..POISONED {
        publish_raw(
            &js,
            URL_CLICKED,
            &format!("burst-{i}"),
            b"{not json".to_vec(),
        )
        .await;
    }
    let valid: Vec<_> = (0..100)
        .map(|k| clicked(id, "burst", D0 + 10 + k))
        .collect();
    publish(&js, &valid).await;
    // Started after publishing, so the poison arrives in one batch.
    let app = env.app().await;
    let path = format!(
        "/api/v1/links/burst/stats?from={}&to={}",
        rfc3339(D0),
        rfc3339(D0 + DAY)
    );
    app.eventually(&path, |_, body| total(body) == valid.len() as u64)
        .await;
    let dlq = js.get_stream("ANALYTICS_DLQ").await.unwrap();
    let letters = dlq.cached_info().state.messages;
    assert_eq!(
        letters as usize, POISONED,
        "each poisoned message dead-lettered once"
    );
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(&format!(
            "analytics_dead_letters_total{{subject=\"shortener.url.clicked\",reason=\"invalid_json\"}} {POISONED}"
        )),
        "{metrics}"
    );
    app.stop().await;
}

pub async fn updates_and_deletions_keep_the_copy_current(env: &Env) {
    let app = env.app().await;
    let js = env.jetstream().await;
    let id = Uuid::now_v7();
    let now = chrono::Utc::now().timestamp();
    publish(&js, &[created(id, "moving", now - 100)]).await;
    publish(&js, &[clicked(id, "moving", now - 50)]).await;
    let update = Envelope::new(
        "shortener",
        at(now - 40),
        UrlUpdated {
            url_id: id,
            short_code: "moving".into(),
            original_url: Some("https://elsewhere.example/new".into()),
            expires_at: Some(Some(at(now + 3_600))),
            redirect_type: None,
            updated_at: at(now - 40),
        },
    );
    publish(&js, &[update]).await;
    // The subjects are consumed independently, so the update may be stored
    // before the creation: wait until both are in the copy.
    let body = app
        .eventually("/api/v1/links/moving/stats", |_, body| {
            body["link"]["target"] == "https://elsewhere.example/new"
                && body["link"]["created_at"].is_string()
        })
        .await;
    assert_eq!(body["link"]["expires_at"], rfc3339(now + 3_600));
    assert_eq!(body["link"]["status"], "active");
    let deletion = Envelope::new(
        "shortener",
        at(now - 10),
        UrlDeleted {
            url_id: id,
            short_code: "moving".into(),
            deleted_at: at(now - 10),
        },
    );
    publish(&js, &[deletion]).await;
    let body = app
        .eventually("/api/v1/links/moving/stats", |_, body| {
            body["link"]["status"] == "deleted"
        })
        .await;
    assert_eq!(body["link"]["deleted_at"], rfc3339(now - 10));
    assert_eq!(total(&body), 1, "a deleted link keeps its clicks");
    let (_, report) = app.get_json("/api/v1/reconciliation").await;
    let deleted = &report["deleted"].as_array().unwrap()[0];
    assert_eq!(deleted["shortener_url_id"], id.to_string());
    assert_eq!(deleted["clicks"], 1);
    app.stop().await;
}

pub async fn bad_parameters_get_problem_json_naming_the_field(env: &Env) {
    let app = env.app().await;
    let js = env.jetstream().await;
    let id = Uuid::now_v7();
    publish(&js, &[created(id, "params", D0)]).await;
    app.eventually("/api/v1/links/params/stats", |status, _| status == 200)
        .await;
    let cases = [
        (
            "/api/v1/links/params/stats?from=yesterday",
            400,
            Some("from"),
        ),
        (
            "/api/v1/links/params/stats?to=2026-02-30T00:00:00Z",
            400,
            Some("to"),
        ),
        (
            "/api/v1/links/params/stats?bucket=week",
            400,
            Some("bucket"),
        ),
        (
            "/api/v1/urls/not-a-uuid/stats",
            400,
            Some("shortener_url_id"),
        ),
        (
            "/api/v1/reconciliation?grace_seconds=-1",
            400,
            Some("grace_seconds"),
        ),
        ("/api/v1/links/nobody/stats", 404, None),
        (
            &*format!("/api/v1/urls/{}/stats", Uuid::now_v7()),
            404,
            None,
        ),
        ("/api/v1/nothing-here", 404, None),
    ];
    for (path, status, field) in cases {
        let response = app.get(path).await;
        assert_eq!(response.status().as_u16(), status, "{path}");
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "application/problem+json",
            "{path}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], status, "{path}");
        assert_eq!(body["field"].as_str(), field, "{path}: {body}");
    }
    // What the document allows is answered: a start after the end is an
    // empty range, and a series longer than 10,000 points keeps the latest.
    let (status, empty) = app
        .get_json("/api/v1/links/params/stats?from=2026-03-02T00:00:00Z&to=2026-03-01T00:00:00Z")
        .await;
    assert_eq!(status, 200, "{empty}");
    assert_eq!(empty["total_clicks"], 0);
    assert_eq!(empty["series"], json!([]));
    let (status, long) = app
        .get_json("/api/v1/links/params/stats?from=2000-01-01T00:00:00Z&to=2026-01-01T00:00:00Z&bucket=hour")
        .await;
    assert_eq!(status, 200);
    assert_eq!(long["from"], "2000-01-01T00:00:00Z");
    let series = long["series"].as_array().unwrap();
    assert_eq!(series.len(), 10_000);
    assert_eq!(series[9_999]["t"], "2025-12-31T23:00:00Z");
    app.stop().await;
}

pub async fn replay_rebuilds_identical_stats(env: &Env) {
    let app = env.app().await;
    let s = ingest_scenario(env, &app).await;
    // A deletion and an orphan too, so the copies are rebuilt as well.
    let js = env.jetstream().await;
    let deletion = Envelope::new(
        "shortener",
        at(D0 + 4 * DAY),
        UrlDeleted {
            url_id: s.links[2].0,
            short_code: "charlie".into(),
            deleted_at: at(D0 + 4 * DAY),
        },
    );
    publish(&js, &[deletion]).await;
    app.eventually("/api/v1/links/charlie/stats", |_, body| {
        body["link"]["status"] == "deleted"
    })
    .await;
    let query = format!(
        "from={}&to={}&bucket=hour",
        rfc3339(D0 - DAY),
        rfc3339(D0 + 5 * DAY)
    );
    let codes: Vec<String> = s.links.iter().map(|(_, code)| code.to_string()).collect();
    let stats = |app: &TestApp| {
        let paths: Vec<String> = codes
            .iter()
            .map(|code| format!("/api/v1/links/{code}/stats?{query}"))
            .collect();
        let (client, address) = (app.client.clone(), app.address.clone());
        async move {
            let mut all = Vec::new();
            for path in paths {
                let answer = client.get(format!("{address}{path}")).send().await.unwrap();
                all.push(answer.json::<Value>().await.unwrap());
            }
            all
        }
    };
    let before = stats(&app).await;

    // The service keeps running while replay builds beside it and swaps.
    let report = analytics::replay::replay(&env.settings(), Default::default())
        .await
        .unwrap();
    assert_eq!(report.clicks, 1_002);
    assert!(report.shortfall.is_empty(), "{:?}", report.shortfall);
    assert_eq!(
        stats(&app).await,
        before,
        "the running service, after the swap"
    );
    if env.clickhouse.is_none() {
        let kept = std::path::Path::new(&report.kept);
        assert!(kept.exists(), "the store as it was is kept: {kept:?}");
    }
    app.stop().await;
    let app = env.app().await;
    assert_eq!(stats(&app).await, before, "a restarted service");
    app.stop().await;
}

/// Clicks the stream no longer holds (purged here; in production, older
/// than the stream's 180 days) make replay refuse and leave the store as
/// it was; `--allow-shorter-history` accepts losing them.
pub async fn replay_refuses_to_lose_clicks_the_stream_no_longer_holds(env: &Env) {
    let app = env.app().await;
    let js = env.jetstream().await;
    let (old, new) = (Uuid::now_v7(), Uuid::now_v7());
    publish(&js, &[created(old, "bygone", D0)]).await;
    let bygone: Vec<_> = (0..10).map(|i| clicked(old, "bygone", D0 + i)).collect();
    publish(&js, &bygone).await;
    let mut stream = js.get_stream("SHORTENER").await.unwrap();
    let purge_below = stream.info().await.unwrap().state.last_sequence + 1;
    publish(&js, &[created(new, "recent", D0 + DAY)]).await;
    let recent: Vec<_> = (0..5)
        .map(|i| clicked(new, "recent", D0 + DAY + i))
        .collect();
    publish(&js, &recent).await;
    wait_for_no_lag(&app).await;
    let path = |code: &str| {
        format!(
            "/api/v1/links/{code}/stats?from={}&to={}",
            rfc3339(D0 - DAY),
            rfc3339(D0 + 2 * DAY)
        )
    };
    let before = (
        app.get_json(&path("bygone")).await.1,
        app.get_json(&path("recent")).await.1,
    );
    assert_eq!(total(&before.0), 10);
    stream.purge().sequence(purge_below).await.unwrap();

    let error = analytics::replay::replay(&env.settings(), Default::default())
        .await
        .expect_err("replay must refuse");
    let refused = error
        .downcast_ref::<analytics::replay::Refused>()
        .unwrap_or_else(|| panic!("not a refusal: {error:#}"));
    let reasons = refused.reasons.join(" | ");
    assert!(
        reasons.contains("before the stream's first message"),
        "{reasons}"
    );
    assert!(
        reasons.contains("1 links would lose 10 clicks"),
        "{reasons}"
    );
    let after = (
        app.get_json(&path("bygone")).await.1,
        app.get_json(&path("recent")).await.1,
    );
    assert_eq!(after, before, "the live store is unchanged");
    // And the refused build is gone.
    match &env.clickhouse {
        None => assert!(!env.dir.path().join("analytics.db.replay").exists()),
        Some(clickhouse) => {
            let count = app
                .client
                .post(clickhouse.url())
                .body("SELECT count() FROM system.databases WHERE name = 'analytics_test_replay'")
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            assert_eq!(count.trim(), "0", "the build database is dropped");
        }
    }

    let options = analytics::replay::ReplayOptions {
        allow_shorter_history: true,
    };
    let report = analytics::replay::replay(&env.settings(), options)
        .await
        .unwrap();
    assert_eq!(report.shortfall.len(), 2, "{:?}", report.shortfall);
    assert_eq!(report.clicks, 5);
    let (status, gone) = app.get_json(&path("bygone")).await;
    assert_eq!(
        status, 404,
        "its creation is no longer on the stream either: {gone}"
    );
    assert_eq!(app.get_json(&path("recent")).await.1, before.1);
    app.stop().await;
}

/// The test hook makes the clicked subject's task panic at its first batch:
/// the task is started again, the batch it dropped is redelivered and
/// counted once, and the other subjects never stop.
pub async fn a_panicking_consumer_task_is_restarted_and_the_others_never_stop(env: &Env) {
    let mut settings = env.settings();
    settings.consumers.panic_once_on = Some(URL_CLICKED);
    settings.consumers.ack_wait = std::time::Duration::from_secs(2);
    let app = env.app_with(settings).await;
    let js = env.jetstream().await;
    let id = Uuid::now_v7();
    publish(&js, &[created(id, "phoenix", D0)]).await;
    let clicks: Vec<_> = (0..20)
        .map(|k| clicked(id, "phoenix", D0 + 10 + k))
        .collect();
    publish(&js, &clicks).await;
    // Another subject flows while the clicked one restarts.
    publish(&js, &[created(Uuid::now_v7(), "bystander", D0)]).await;
    app.eventually("/api/v1/links/bystander/stats", |status, _| status == 200)
        .await;
    let path = format!(
        "/api/v1/links/phoenix/stats?from={}&to={}",
        rfc3339(D0),
        rfc3339(D0 + DAY)
    );
    app.eventually(&path, |_, body| total(body) == 20).await;
    let metrics = app.get("/metrics").await.text().await.unwrap();
    let restarted = format!("analytics_consumer_restarts_total{{subject=\"{URL_CLICKED}\"}} 1");
    assert!(metrics.contains(&restarted), "{metrics}");
    // The others never restarted (their series exist from the start, at 0).
    assert!(
        metrics.contains("analytics_consumer_restarts_total{subject=\"shortener.url.created\"} 0"),
        "{metrics}"
    );
    // Still counted once, well after the redelivery window.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let (_, body) = app.get_json(&path).await;
    assert_eq!(total(&body), 20);
    app.stop().await;
}

/// Every durable consumer deleted through the JetStream API while analytics
/// runs: they are created again, nothing published meanwhile is lost, and
/// `/metrics` and `/ready` show the gap while it lasts.
pub async fn deleted_consumers_are_created_again_and_nothing_is_lost(env: &Env) {
    use analytics::consumer::{SUBJECTS, consumer_name};
    let app = env.app().await;
    let js = env.jetstream().await;
    let id = Uuid::now_v7();
    publish(&js, &[created(id, "lazarus", D0)]).await;
    let first: Vec<_> = (0..10)
        .map(|k| clicked(id, "lazarus", D0 + 10 + k))
        .collect();
    publish(&js, &first).await;
    let path = format!(
        "/api/v1/links/lazarus/stats?from={}&to={}",
        rfc3339(D0),
        rfc3339(D0 + DAY)
    );
    app.eventually(&path, |_, body| total(body) == 10).await;
    let (status, ready) = app.get_json("/ready").await;
    assert_eq!(status, 200, "{ready}");
    for subject in SUBJECTS {
        assert!(
            ready["consumers"][subject]["answered_seconds_ago"].is_number(),
            "{ready}"
        );
    }

    let stream = js.get_stream("SHORTENER").await.unwrap();
    for subject in SUBJECTS {
        // nats-server 2.9 may refuse a deletion that races the consumer's
        // own writes ("directory not empty"); an operator would try again.
        let name = consumer_name("analytics", subject);
        let mut attempts = 0;
        while let Err(error) = stream.delete_consumer(&name).await {
            attempts += 1;
            assert!(attempts < 50, "{name} cannot be deleted: {error}");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    let second: Vec<_> = (0..10)
        .map(|k| clicked(id, "lazarus", D0 + 30 + k))
        .collect();
    publish(&js, &second).await;
    let started = std::time::Instant::now();
    let mut longest_silence: f64 = 0.0;
    let mut seen_down = false;
    loop {
        let (_, ready) = app.get_json("/ready").await;
        if let Some(ago) = ready["consumers"][URL_CLICKED]["answered_seconds_ago"].as_f64() {
            longest_silence = longest_silence.max(ago);
        }
        let metrics = app.get("/metrics").await.text().await.unwrap();
        seen_down |= metrics.contains(&format!(
            "analytics_consumer_up{{subject=\"{URL_CLICKED}\"}} 0"
        ));
        let (_, body) = app.get_json(&path).await;
        if total(&body) == 20 {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "never recovered: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    eprintln!(
        "consumers back after {:?}; longest silence seen in /ready {longest_silence} s; \
         analytics_consumer_up 0 seen: {seen_down}",
        started.elapsed()
    );
    for subject in SUBJECTS {
        stream
            .consumer_info(consumer_name("analytics", subject))
            .await
            .unwrap();
    }
    // The lag reporter sees them again.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let metrics = app.get("/metrics").await.text().await.unwrap();
        if SUBJECTS
            .iter()
            .all(|s| metrics.contains(&format!("analytics_consumer_up{{subject=\"{s}\"}} 1")))
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{metrics}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // The status shows the same, as JSON.
    let (status, body) = app.get_json("/api/v1/status").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["service"], "analytics");
    let consumers = body["consumers"].as_array().unwrap();
    assert_eq!(consumers.len(), SUBJECTS.len(), "{body}");
    assert!(consumers.iter().all(|c| c["up"] == true), "{body}");
    app.stop().await;
}

/// `count` UUIDv7 ids in ascending order whose second halves descend:
/// a store that compares ids by their second half first (as ClickHouse
/// compares a `UUID`) would list them backwards.
fn ascending_ids(count: u64) -> Vec<Uuid> {
    let (high, low) = Uuid::now_v7().as_u64_pair();
    (0..count)
        .map(|n| Uuid::from_u64_pair((high & !0xfff) + n, (low | 0xfff) - n))
        .collect()
}

/// The list of links and the reconciliation report read one page at a
/// time; following their cursors visits every row exactly once.
pub async fn the_index_and_reconciliation_read_one_page_at_a_time(env: &Env) {
    let app = env.app().await;
    let js = env.jetstream().await;
    let now = chrono::Utc::now().timestamp();
    // 105 created links, newest last; 5 of them deleted; 3 links known only
    // by their old clicks (orphans).
    let links: Vec<(Uuid, String)> = ascending_ids(105)
        .into_iter()
        .enumerate()
        .map(|(n, id)| (id, format!("paged{n}")))
        .collect();
    let creations: Vec<_> = links
        .iter()
        .enumerate()
        .map(|(n, (id, code))| created(*id, code, now - 10_000 + n as i64))
        .collect();
    publish(&js, &creations).await;
    let deletions: Vec<_> = links[..5]
        .iter()
        .map(|(id, code)| {
            Envelope::new(
                "shortener",
                at(now - 100),
                UrlDeleted {
                    url_id: *id,
                    short_code: code.clone(),
                    deleted_at: at(now - 100),
                },
            )
        })
        .collect();
    publish(&js, &deletions).await;
    let orphans = ascending_ids(3);
    let clicks: Vec<_> = orphans
        .iter()
        .enumerate()
        .map(|(n, id)| clicked(*id, &format!("orphan{n}"), now - 5_000))
        .chain([clicked(links[104].0, &links[104].1, now - 50)])
        .collect();
    publish(&js, &clicks).await;
    wait_for_no_lag(&app).await;

    // The links: newest first, 100 to a page, then the last 8.
    let (status, page) = app.get_json("/api/v1/links").await;
    assert_eq!(status, 200, "{page}");
    let codes = |page: &serde_json::Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["short_code"].as_str().unwrap().to_owned())
            .collect()
    };
    let first = codes(&page);
    assert_eq!(first.len(), 100, "{page}");
    assert_eq!(first[0], "paged104", "newest first");
    assert_eq!(page["items"][0]["clicks"], 1, "with its click total");
    assert_eq!(page["items"][0]["status"], "active");
    let next = page["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let (status, second_page) = app.get_json(&format!("/api/v1/links?cursor={next}")).await;
    assert_eq!(status, 200, "{second_page}");
    let second = codes(&second_page);
    assert_eq!(second_page["next_cursor"], serde_json::Value::Null);
    let mut seen: Vec<String> = first.iter().chain(&second).cloned().collect();
    assert_eq!(seen.len(), 108, "105 links and 3 orphans, each once");
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 108);
    // By id: the copies of exactly these links, orphans included.
    let wanted = format!("{},{},{}", links[104].0, orphans[0], Uuid::now_v7());
    let (status, some) = app.get_json(&format!("/api/v1/links?ids={wanted}")).await;
    assert_eq!(status, 200, "{some}");
    let mut found = codes(&some);
    found.sort();
    assert_eq!(
        found,
        ["orphan0", "paged104"],
        "an unknown id is simply absent"
    );
    assert_eq!(some["next_cursor"], serde_json::Value::Null);
    let paged = some["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["short_code"] == "paged104")
        .unwrap();
    assert!(paged["version"].as_u64().unwrap() >= 1, "{paged}");
    let too_many: Vec<String> = (0..101).map(|_| Uuid::now_v7().to_string()).collect();
    for query in [
        "cursor=nonsense",
        "limit=0",
        "ids=not-a-uuid",
        &format!("ids={}", too_many.join(",")),
    ] {
        let (status, problem) = app.get_json(&format!("/api/v1/links?{query}")).await;
        assert_eq!(status, 400, "{query}");
        assert_eq!(
            problem["field"],
            query.split('=').next().unwrap(),
            "{problem}"
        );
    }

    // Reconciliation, two rows per list at a time.
    let mut path = "/api/v1/reconciliation?grace_seconds=60&limit=2".to_owned();
    let (mut found_orphans, mut found_deleted) = (Vec::new(), Vec::new());
    for _ in 0..20 {
        let (status, report) = app.get_json(&path).await;
        assert_eq!(status, 200, "{report}");
        assert_eq!(report["limit"], 2);
        for o in report["orphans"].as_array().unwrap() {
            found_orphans.push(o["shortener_url_id"].as_str().unwrap().to_owned());
            assert_eq!(o["clicks"], 1);
        }
        for d in report["deleted"].as_array().unwrap() {
            found_deleted.push(d["short_code"].as_str().unwrap().to_owned());
        }
        match report["next_cursor"].as_str() {
            Some(cursor) => {
                path = format!("/api/v1/reconciliation?grace_seconds=60&limit=2&cursor={cursor}")
            }
            None => break,
        }
    }
    let expected_orphans: Vec<String> = orphans.iter().map(Uuid::to_string).collect();
    assert_eq!(
        found_orphans, expected_orphans,
        "orphans in id order, each once"
    );
    let expected_deleted: Vec<String> = links[..5].iter().map(|(_, c)| c.clone()).collect();
    assert_eq!(
        found_deleted, expected_deleted,
        "deleted links in id order, each once"
    );
    for (query, name) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("cursor=x~y", "cursor"),
    ] {
        let (status, problem) = app
            .get_json(&format!("/api/v1/reconciliation?{query}"))
            .await;
        assert_eq!(status, 400, "{query}");
        assert_eq!(problem["field"], name, "{problem}");
    }
    app.stop().await;
}
