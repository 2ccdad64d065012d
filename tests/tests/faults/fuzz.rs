//! Scenario 5, fuzzing of the public parsers for a bounded time (proptest):
//! the URL and alias newtypes, event decoding, and the stats query
//! parameters. Any panic fails the row, with the smallest input found.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use crate::{Mode, Row};

/// Strings near what each parser expects, plus anything at all.
fn url_like() -> BoxedStrategy<String> {
    prop_oneof![
        any::<String>(),
        "(?i)(https?|javascript|data|file|ftp|mailto)(:|://)[ -~]{0,120}",
        "https?://([a-z0-9-]{0,20}\\.){0,4}[a-z]{0,10}(:[0-9]{0,6})?(/[ -~]{0,40})?(\\?[ -~]{0,40})?",
        "https?://[\\PC]{0,60}",
        "https?://(user(:pw)?@)?\\[[0-9a-f:]{0,40}\\](/.{0,20})?",
    ]
    .boxed()
}

fn event_like() -> BoxedStrategy<Vec<u8>> {
    let fixture = include_str!(
        "../../../contracts/fixtures/shortener.url.clicked/v1/valid/browser-with-referrer.json"
    );
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..400),
        // A valid event with one byte changed, one cut short, one with a value swapped.
        (0..fixture.len(), any::<u8>()).prop_map(move |(at, byte)| {
            let mut bytes = fixture.as_bytes().to_vec();
            bytes[at] = byte;
            bytes
        }),
        (0..fixture.len()).prop_map(move |end| fixture.as_bytes()[..end].to_vec()),
        (
            "[a-z_]{1,16}",
            prop_oneof![
                Just("null".to_owned()),
                Just("[]".to_owned()),
                Just("{}".to_owned()),
                any::<i64>().prop_map(|n| n.to_string()),
                "\"[ -~]{0,20}\"",
            ]
        )
            .prop_map(move |(key, value)| {
                let mut json: serde_json::Value = serde_json::from_str(fixture).unwrap();
                let value: serde_json::Value = serde_json::from_str(&value).unwrap_or_default();
                json["data"][key.as_str()] = value.clone();
                json[key.as_str()] = value;
                serde_json::to_vec(&json).unwrap()
            }),
    ]
    .boxed()
}

fn query_like() -> BoxedStrategy<String> {
    prop_oneof![
        any::<String>(),
        "((from|to|bucket|x)=[-+:.TZ0-9a-z% ]{0,30}&?){0,4}",
        "from=[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(Z|[+-][0-9]{2}:[0-9]{2}| [0-9]{2}:[0-9]{2})&to=.{0,30}&bucket=(hour|day|week|)",
    ]
    .boxed()
}

/// Runs `check` on inputs from `strategy` until `budget` is spent.
fn fuzz<T: std::fmt::Debug>(
    name: &str,
    budget: Duration,
    strategy: BoxedStrategy<T>,
    check: impl Fn(T),
) -> Row {
    let started = Instant::now();
    let mut cases = 0u64;
    let mut failure = None;
    while started.elapsed() < budget && failure.is_none() {
        // A runner runs its cases once; each round gets a fresh random seed.
        let mut runner = TestRunner::new(Config {
            cases: 2_000,
            failure_persistence: None,
            ..Config::default()
        });
        match runner.run(&strategy, |input| {
            check(input);
            Ok(())
        }) {
            Ok(()) => cases += 2_000,
            Err(error) => failure = Some(error.to_string()),
        }
    }
    Row {
        scenario: format!("5 fuzz {name}"),
        expected: cases,
        counted: cases,
        lost: 0,
        double: 0,
        ok: failure.is_none(),
        note: match failure {
            None => format!(
                "{cases} inputs in {:.0} s, no panic",
                started.elapsed().as_secs_f64()
            ),
            Some(error) => format!("PANIC: {error}"),
        },
    }
}

pub fn run(mode: Mode) -> Vec<Row> {
    let budget = mode.secs(2, 60);
    // Panics are the finding; the default hook would print each one twice.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let rows = vec![
        fuzz("TargetUrl::parse", budget, url_like(), |s| {
            if let Ok(url) = shortener::domain::TargetUrl::parse(&s) {
                // What it accepts is an absolute http(s) URL without userinfo.
                let text = url.as_str();
                assert!(
                    text.starts_with("http://") || text.starts_with("https://"),
                    "{text}"
                );
            }
        }),
        fuzz("Alias::parse", budget, any::<String>().boxed(), |s| {
            if let Ok(alias) = shortener::domain::Alias::parse(&s) {
                let code = alias.into_code();
                assert!((3..=64).contains(&code.as_str().len()), "{code:?}");
            }
        }),
        fuzz("contracts::decode_any", budget, event_like(), |bytes| {
            let _ = contracts::decode_any(&bytes);
        }),
        fuzz("StatsQuery::parse", budget, query_like(), |q| {
            let _ = analytics::routes::StatsQuery::parse(&q);
        }),
    ];
    std::panic::set_hook(hook);
    rows
}
