//! Whatever a producer builds from domain-valid values validates against the
//! schema, and decodes back to exactly the same value.

use chrono::{DateTime, Utc};
use contracts::{
    ClickEvent, ClickFacts, Envelope, Event, RedirectType, UrlClicked, UrlCreated, UrlCreatedV1,
    UrlDeleted, UrlUpdated, VisitorKey, decode, encode, schema,
};
use proptest::prelude::*;
use uuid::Uuid;

fn uuid() -> impl Strategy<Value = Uuid> {
    any::<u128>().prop_map(Uuid::from_u128)
}

/// Any instant from 1970 to 9999, with nanosecond precision.
fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    (0i64..253_402_300_799, 0u32..1_000_000_000)
        .prop_map(|(secs, nanos)| DateTime::from_timestamp(secs, nanos).unwrap())
}

fn short_code() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_-]{1,64}"
}

/// Targets as the shortener normalises them: http(s), ASCII host, any path.
fn target_url() -> impl Strategy<Value = String> {
    (
        prop_oneof!["http", "https"],
        // Only what the domain accepts: no label has two hyphens in a row
        // (so never an `xn--` label, which would have to be valid punycode),
        // and the last label starts with a letter, so the host is a name,
        // not an IPv4 address.
        "([a-z0-9]{1,10}(-[a-z0-9]{1,10}){0,2}\\.){0,3}[a-z][a-z0-9]{0,11}",
        proptest::option::of(1u16..),
        "(/[A-Za-z0-9._~!$&'()*+,;=:@-]{0,30}|/%[0-9A-F]{2}){0,5}",
        proptest::option::of("[A-Za-z0-9=&_.-]{0,40}"),
    )
        .prop_map(|(scheme, host, port, path, query)| {
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            let query = query.map(|q| format!("?{q}")).unwrap_or_default();
            format!("{scheme}://{host}{port}{path}{query}")
        })
}

fn envelope<T: Event + std::fmt::Debug>(
    data: impl Strategy<Value = T>,
) -> impl Strategy<Value = Envelope<T>> {
    (uuid(), instant(), "[a-z][a-z0-9_.-]{0,63}", data).prop_map(|(id, at, producer, data)| {
        let mut envelope = Envelope::new(producer, at, data);
        envelope.event_id = id;
        envelope
    })
}

fn created() -> impl Strategy<Value = UrlCreated> {
    (
        uuid(),
        short_code(),
        target_url(),
        instant(),
        proptest::option::of(instant()),
    )
        .prop_map(
            |(url_id, short_code, original_url, created_at, expires_at)| UrlCreated {
                target_host: UrlCreated::host_of(&original_url).expect("generated URLs have hosts"),
                url_id,
                short_code,
                original_url,
                created_at,
                expires_at,
            },
        )
}

fn created_v1() -> impl Strategy<Value = UrlCreatedV1> {
    created().prop_map(|c| UrlCreatedV1 {
        url_id: c.url_id,
        short_code: c.short_code,
        original_url: c.original_url,
        created_at: c.created_at,
        expires_at: c.expires_at,
    })
}

fn clicked() -> impl Strategy<Value = UrlClicked> {
    (
        uuid(),
        short_code(),
        instant(),
        proptest::option::of(".{0,300}"),
        proptest::option::of(".{0,300}"),
        proptest::option::of("[0-9a-f]{1,128}"),
        proptest::option::of("[A-Z]{2}"),
    )
        .prop_map(
            |(url_id, short_code, clicked_at, referrer, user_agent, visitor_key, country)| {
                UrlClicked {
                    url_id,
                    short_code,
                    clicked_at,
                    referrer,
                    user_agent,
                    visitor_key,
                    country,
                }
            },
        )
}

fn updated() -> impl Strategy<Value = UrlUpdated> {
    (
        uuid(),
        short_code(),
        proptest::option::of(target_url()),
        proptest::option::of(proptest::option::of(instant())),
        proptest::option::of(proptest::sample::select(RedirectType::ALL.to_vec())),
        instant(),
    )
        // The schema demands at least one change; so does the shortener.
        .prop_filter(
            "an update changes something",
            |(_, _, url, expiry, redirect, _)| {
                url.is_some() || expiry.is_some() || redirect.is_some()
            },
        )
        .prop_map(
            |(url_id, short_code, original_url, expires_at, redirect_type, updated_at)| {
                UrlUpdated {
                    url_id,
                    short_code,
                    original_url,
                    expires_at,
                    redirect_type,
                    updated_at,
                }
            },
        )
}

fn deleted() -> impl Strategy<Value = UrlDeleted> {
    (uuid(), short_code(), instant()).prop_map(|(url_id, short_code, deleted_at)| UrlDeleted {
        url_id,
        short_code,
        deleted_at,
    })
}

fn round_trips<T: Event + PartialEq + std::fmt::Debug>(
    envelope: Envelope<T>,
) -> Result<(), TestCaseError> {
    let bytes = encode(&envelope).map_err(|e| TestCaseError::fail(format!("{e}")))?;
    let decoded = decode::<T>(&bytes).map_err(|e| TestCaseError::fail(format!("{e}")))?;
    prop_assert_eq!(decoded, envelope);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn created_events_validate_and_round_trip(envelope in envelope(created())) {
        round_trips(envelope)?;
    }

    #[test]
    fn created_v1_events_validate_and_round_trip(envelope in envelope(created_v1())) {
        round_trips(envelope)?;
    }

    #[test]
    fn clicked_events_validate_and_round_trip(envelope in envelope(clicked())) {
        round_trips(envelope)?;
    }

    #[test]
    fn updated_events_validate_and_round_trip(envelope in envelope(updated())) {
        round_trips(envelope)?;
    }

    #[test]
    fn deleted_events_validate_and_round_trip(envelope in envelope(deleted())) {
        round_trips(envelope)?;
    }

    /// Every click event the shortener's constructor returns validates against
    /// its schema and decodes back to itself, whatever the request carried:
    /// this is what lets the redirect path skip the run-time validator.
    #[test]
    fn every_constructed_click_event_validates(
        (producer, code, at) in (
            prop_oneof!["shortener", "[a-z][a-z0-9_.-]{0,70}", ".{0,10}"],
            prop_oneof![short_code(), ".{0,80}"],
            prop_oneof![
                instant(),
                (-8_334_632_851_200i64..8_210_298_412_799).prop_map(|s| DateTime::from_timestamp(s, 0).unwrap()),
            ],
        ),
        (referrer, user_agent, country) in (
            proptest::option::of(prop_oneof![".{0,3000}", "\\PC{2040,2060}"]),
            proptest::option::of(prop_oneof![".{0,1500}", "\\PC{1020,1030}"]),
            proptest::option::of(prop_oneof!["[A-Za-z]{2}", " ?[a-z]{2} ?", ".{0,4}"]),
        ),
        (url_id, visitor) in (uuid(), proptest::option::of(any::<[u8; 16]>())),
    ) {
        let facts = ClickFacts {
            url_id,
            short_code: &code,
            clicked_at: at,
            referrer: referrer.as_deref(),
            user_agent: user_agent.as_deref(),
            visitor_key: visitor.map(VisitorKey),
            country: country.as_deref(),
        };
        let Ok(event) = ClickEvent::new(&producer, facts) else {
            // Refused only when the code or producer breaks its pattern or
            // the year has no four digits.
            let code_ok = code.len() <= 64 && regex_like(&code, "^[A-Za-z0-9_-]+$");
            let producer_ok = producer.len() <= 64 && regex_like(&producer, "^[a-z][a-z0-9_.-]*$");
            let year_ok = (0..=9999).contains(&chrono::Datelike::year(&at));
            prop_assert!(!(code_ok && producer_ok && year_ok), "a well-formed click was refused");
            return Ok(());
        };
        let bytes = event.encode();
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        schema::validate(UrlClicked::EVENT_TYPE, UrlClicked::VERSION, &value)
            .map_err(|e| TestCaseError::fail(format!("{e}")))?;
        let decoded = decode::<UrlClicked>(&bytes).map_err(|e| TestCaseError::fail(format!("{e}")))?;
        prop_assert_eq!(&decoded, event.envelope());
    }

    /// Upcasting is the identity on everything a v2 producer would have said.
    #[test]
    fn v1_created_events_upcast_to_the_v2_a_producer_would_send(envelope in envelope(created_v1())) {
        let bytes = encode(&envelope).unwrap();
        let upcast = decode::<UrlCreated>(&bytes).unwrap();
        prop_assert_eq!(upcast.event_version, UrlCreated::VERSION);
        prop_assert_eq!(&upcast.data.original_url, &envelope.data.original_url);
        prop_assert_eq!(Some(upcast.data.target_host.clone()), UrlCreated::host_of(&envelope.data.original_url));
        prop_assert_eq!(upcast.data.expires_at, envelope.data.expires_at);
    }
}

#[test]
fn encode_refuses_an_event_that_breaks_its_schema() {
    let data = UrlDeleted {
        url_id: Uuid::nil(),
        short_code: "no spaces allowed".into(),
        deleted_at: Utc::now(),
    };
    let error = encode(&Envelope::new("shortener", Utc::now(), data)).unwrap_err();
    assert_eq!(error.path(), "/data/short_code", "{error}");
}

#[test]
fn an_update_that_changes_nothing_is_refused() {
    let data = UrlUpdated {
        url_id: Uuid::nil(),
        short_code: "abc".into(),
        original_url: None,
        expires_at: None,
        redirect_type: None,
        updated_at: Utc::now(),
    };
    let error = encode(&Envelope::new("shortener", Utc::now(), data)).unwrap_err();
    assert_eq!(error.path(), "/data", "{error}");
}

#[test]
fn a_removed_expiry_is_told_apart_from_an_unchanged_one() {
    let removed = UrlUpdated {
        url_id: Uuid::nil(),
        short_code: "abc".into(),
        original_url: None,
        expires_at: Some(None),
        redirect_type: Some(RedirectType::PermanentRedirect),
        updated_at: Utc::now(),
    };
    let bytes = encode(&Envelope::new("shortener", Utc::now(), removed)).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert!(json["data"]["expires_at"].is_null() && json["data"].get("expires_at").is_some());
    assert!(json["data"].get("original_url").is_none());
    assert_eq!(json["data"]["redirect_type"], 308);
    assert_eq!(
        decode::<UrlUpdated>(&bytes).unwrap().data.expires_at,
        Some(None)
    );
}

/// A whole-string match of a simple character-class pattern, through the
/// schema validator's own engine, so the property above does not restate the
/// rules it checks.
fn regex_like(text: &str, pattern: &str) -> bool {
    let schema = serde_json::json!({ "type": "string", "pattern": pattern });
    jsonschema::is_valid(&schema, &serde_json::json!(text))
}

#[test]
fn generated_target_urls_are_all_urls_the_domain_accepts() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    for _ in 0..20_000 {
        let url = target_url().new_tree(&mut runner).unwrap().current();
        assert!(
            UrlCreated::host_of(&url).is_some(),
            "the strategy built a URL without a host: {url}"
        );
    }
}

#[test]
fn a_click_with_a_well_formed_code_is_always_built() {
    let event = ClickEvent::new(
        "shortener",
        ClickFacts {
            url_id: Uuid::nil(),
            short_code: "aZ3-_9",
            clicked_at: Utc::now(),
            referrer: Some(""),
            user_agent: Some(&"ü".repeat(2000)),
            visitor_key: Some(VisitorKey([7; 16])),
            country: Some(" de "),
        },
    )
    .unwrap();
    let data = &event.envelope().data;
    assert_eq!(data.referrer, None);
    assert_eq!(data.user_agent.as_ref().unwrap().chars().count(), 1024);
    assert_eq!(data.country.as_deref(), Some("DE"));
    assert_eq!(data.visitor_key.as_ref().unwrap().len(), 32);
    assert!(
        ClickEvent::new(
            "shortener",
            ClickFacts {
                short_code: "a b",
                ..ClickFacts::default()
            }
        )
        .is_err()
    );
}
