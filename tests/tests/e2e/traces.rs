//! One trace from the console to analytics' store, across HTTP and NATS.
//!
//! The shortener, analytics and the console run as processes exporting to
//! an OTLP/HTTP receiver this test starts (`system_tests::otlp`, decoding
//! with the protocol's own types). A link created through the console must
//! give one trace: the console's request, its call to the shortener, the
//! shortener's request, the outbox relay's publish, and analytics' consume
//! and store spans, each the parent of the next. A click whose redirect
//! carries a sampled `traceparent` must reach analytics' store span in that
//! trace; one that says "not sampled" must leave no span at all.

use std::time::{Duration, Instant};

use serde_json::Value;
use system_tests::otlp::{OtlpReceiver, ReceivedSpan};
use system_tests::process::http_exchange;

use crate::console_http::{console_call, csrf_in, sign_in};
use crate::system::{CONVERGE, System};

fn tracing_env(receiver: &OtlpReceiver) -> Vec<(&'static str, String)> {
    vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url()),
        // Export every 100 ms, not every 5 s.
        ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
        // Redirects without a sampled parent are not traced at all.
        ("OTEL_TRACES_SAMPLER_ARG", "0".into()),
        ("LOG_FORMAT", "json".into()),
    ]
}

/// Waits until `find` finds what it looks for in the received spans.
fn wait_for<T>(
    receiver: &OtlpReceiver,
    what: &str,
    find: impl Fn(&[ReceivedSpan]) -> Option<T>,
) -> T {
    let deadline = Instant::now() + CONVERGE;
    loop {
        let spans = receiver.spans();
        if let Some(found) = find(&spans) {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not received within {CONVERGE:?}; received:\n{}",
            spans
                .iter()
                .map(|s| format!(
                    "  {} {} {} trace {} span {} parent {}",
                    s.service, s.kind, s.name, s.trace_id, s.span_id, s.parent_span_id
                ))
                .collect::<Vec<_>>()
                .join("\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The one span of `trace` that is `parent`'s child with this service,
/// kind and name.
fn child<'a>(
    spans: &'a [ReceivedSpan],
    parent: &ReceivedSpan,
    service: &str,
    kind: &str,
    name: &str,
) -> Option<&'a ReceivedSpan> {
    spans.iter().find(|s| {
        s.trace_id == parent.trace_id
            && s.parent_span_id == parent.span_id
            && s.service == service
            && s.kind == kind
            && s.name == name
    })
}

/// Below `parent`: the publish of `subject` and analytics' consume and
/// store spans, each the child of the one before.
fn through_the_bus<'a>(
    spans: &'a [ReceivedSpan],
    parent: &ReceivedSpan,
    subject: &str,
) -> Option<[&'a ReceivedSpan; 3]> {
    let publish = child(
        spans,
        parent,
        "shortener",
        "producer",
        &format!("publish {subject}"),
    )?;
    let consume = child(
        spans,
        publish,
        "analytics",
        "consumer",
        &format!("process {subject}"),
    )?;
    let store = child(
        spans,
        consume,
        "analytics",
        "client",
        &format!("store {subject}"),
    )?;
    Some([publish, consume, store])
}

#[test]
fn a_link_made_in_the_console_and_a_sampled_click_are_each_one_trace_down_to_the_store() {
    let receiver = OtlpReceiver::start().expect("the OTLP receiver");
    let env = tracing_env(&receiver);
    // The test's redirects come from 127.0.0.1: a trusted proxy, whose
    // trace context the shortener continues (a visitor's it ignores).
    let mut shortener_env = env.clone();
    shortener_env.push(("SHORTENER_TRUSTED_PROXIES", "127.0.0.1/32".into()));
    let Some(system) = System::start_custom(&shortener_env, &env) else {
        return;
    };
    let console = system.console_with(&env);

    // A link, made through the console's form.
    let session = sign_in(console.port(), &system.key);
    let form = console_call(console.port(), "GET", "/links/new", &session, "", "");
    let url = format!("https://example.com/traced/{}", uuid::Uuid::new_v4());
    let created = console_call(
        console.port(),
        "POST",
        "/links",
        &session,
        "",
        &format!("csrf={}&url={}&redirect_type=302", csrf_in(&form.body), url),
    );
    assert_eq!(created.status, 303, "{}", created.body);

    let [
        console_request,
        console_call_span,
        shortener_request,
        publish,
        consume,
        store,
    ] = wait_for(&receiver, "the link's trace down to the store", |spans| {
        let root = spans.iter().find(|s| {
            s.service == "console"
                && s.kind == "server"
                && s.name == "POST /links"
                && s.parent_span_id.is_empty()
        })?;
        let call = child(spans, root, "console", "client", "shortener POST")?;
        let request = child(spans, call, "shortener", "server", "POST /api/v1/links")?;
        let [publish, consume, store] = through_the_bus(spans, request, "shortener.url.created")?;
        Some([root, call, request, publish, consume, store].map(Clone::clone))
    });
    assert_eq!(
        shortener_request.attribute("http.response.status_code"),
        Some("201")
    );
    assert_eq!(
        console_request.attribute("http.response.status_code"),
        Some("303")
    );
    assert_eq!(
        console_call_span.attribute("http.response.status_code"),
        Some("201")
    );
    let event_id = publish
        .attribute("event_id")
        .expect("the event's id on its publish");
    assert_eq!(consume.attribute("event_id"), Some(event_id));
    assert_eq!(store.attribute("db.system.name"), Some("sqlite"));
    for span in [&publish, &consume, &store] {
        assert!(!span.error, "{span:?}");
    }

    // The shortener's log line about the link names the trace, the span and
    // the event (LOG_FORMAT=json).
    let log = std::fs::read_to_string(system.dir.path().join("shortener.log")).unwrap();
    let line: Value = log
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|line| line["fields"]["message"] == "link created")
        .unwrap_or_else(|| panic!("a JSON line about the new link in:\n{log}"));
    assert_eq!(
        line["span"]["trace_id"],
        shortener_request.trace_id.as_str()
    );
    assert_eq!(line["span"]["span_id"], shortener_request.span_id.as_str());
    assert_eq!(line["fields"]["event_id"], event_id);

    // A click whose redirect says "sampled" joins that trace down to the
    // store; one that says "not sampled" leaves nothing.
    let code = find_code(&system, &url);
    let unsampled_trace = format!("{:032x}", uuid::Uuid::new_v4().as_u128());
    let sampled_trace = format!("{:032x}", uuid::Uuid::new_v4().as_u128());
    let caller_span = "00f067aa0ba902b7";
    for (trace, flags) in [(&unsampled_trace, "00"), (&sampled_trace, "01")] {
        let answer = http_exchange(
            system.shortener.port(),
            &format!(
                "GET /{code} HTTP/1.0\r\nHost: 127.0.0.1\r\ntraceparent: 00-{trace}-{caller_span}-{flags}\r\n\r\n"
            ),
        )
        .expect("the redirect answers");
        assert_eq!(answer.status, 302, "{}", answer.body);
    }
    let [redirect, click_publish, click_store] = wait_for(
        &receiver,
        "the sampled click's trace down to the store",
        |spans| {
            let redirect = spans.iter().find(|s| {
                s.trace_id == sampled_trace
                    && s.parent_span_id == caller_span
                    && s.service == "shortener"
                    && s.kind == "server"
            })?;
            let [publish, _, store] = through_the_bus(spans, redirect, "shortener.url.clicked")?;
            Some([redirect, publish, store].map(Clone::clone))
        },
    );
    assert_eq!(redirect.name, "GET /{code}");
    assert_eq!(click_publish.trace_id, sampled_trace);
    assert_eq!(click_store.trace_id, sampled_trace);
    // Both clicks were published together or the unsampled one first.
    assert!(
        receiver
            .spans()
            .iter()
            .all(|s| s.trace_id != unsampled_trace),
        "an unsampled redirect was traced"
    );
    // Probes and scrapes are never traced.
    assert!(
        receiver
            .spans()
            .iter()
            .all(|s| !s.name.contains("/ready") && !s.name.contains("/metrics")),
        "a probe was traced"
    );
}

/// The code of the link to `url`, from the shortener's list.
fn find_code(system: &System, url: &str) -> String {
    let page: Value =
        serde_json::from_str(&system.shortener_get("/api/v1/links?limit=100").body).unwrap();
    page["items"]
        .as_array()
        .and_then(|items| items.iter().find(|l| l["url"] == url))
        .and_then(|l| l["code"].as_str())
        .unwrap_or_else(|| panic!("the link to {url} in {page}"))
        .to_owned()
}
