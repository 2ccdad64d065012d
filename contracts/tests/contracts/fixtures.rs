//! Every valid fixture validates and decodes; every invalid one is rejected
//! at the JSON path its `expected-errors.json` names.

use contracts::schema::{self, DOCUMENTS};
use contracts::{AnyEvent, ErrorKind, UrlCreated, decode, decode_any, encode};

use crate::support::{fixture_sets, to_bytes};

#[test]
fn every_schema_has_fixtures_and_every_fixture_set_has_a_schema() {
    let sets = fixture_sets();
    for doc in &DOCUMENTS {
        let set = sets
            .iter()
            .find(|s| s.event_type == doc.event_type && s.version == doc.version);
        let set = set.unwrap_or_else(|| panic!("{} has no fixtures", doc.file_name));
        assert!(
            set.documents(true).len() >= 3,
            "{}: fewer than 3 valid fixtures",
            set.label()
        );
        assert!(
            set.documents(false).len() >= 6,
            "{}: fewer than 6 invalid fixtures",
            set.label()
        );
    }
    for set in &sets {
        assert!(
            schema::document(&set.event_type, set.version).is_some(),
            "fixtures for {} have no schema",
            set.label()
        );
    }
}

#[test]
fn valid_fixtures_validate_decode_and_reencode() {
    for set in fixture_sets() {
        for (name, doc) in set.documents(true) {
            let at = format!("{}/valid/{name}", set.label());
            schema::validate(&set.event_type, set.version, &doc)
                .unwrap_or_else(|e| panic!("{at}: rejected by its schema: {e}"));
            let event = decode_any(&to_bytes(&doc)).unwrap_or_else(|e| panic!("{at}: {e}"));
            assert_eq!(event.subject(), set.event_type, "{at}");
            assert_eq!(
                event.event_id().to_string(),
                doc["event_id"].as_str().unwrap().to_lowercase(),
                "{at}"
            );
            // What a consumer decoded, a producer can publish again unchanged.
            let reencoded = match &event {
                AnyEvent::Created(e) => encode(e),
                AnyEvent::Clicked(e) => encode(e),
                AnyEvent::Updated(e) => encode(e),
                AnyEvent::Deleted(e) => encode(e),
            };
            let reencoded = reencoded.unwrap_or_else(|e| panic!("{at}: re-encoding failed: {e}"));
            assert_eq!(
                decode_any(&reencoded).unwrap(),
                event,
                "{at}: round trip changed the event"
            );
        }
    }
}

#[test]
fn invalid_fixtures_are_rejected_at_the_expected_path() {
    for set in fixture_sets() {
        let expected = set.expected_errors();
        let invalid = set.documents(false);
        let names: Vec<_> = invalid.iter().map(|(n, _)| n.clone()).collect();
        let listed: Vec<_> = expected.keys().cloned().collect();
        assert_eq!(
            names,
            listed,
            "{}: expected-errors.json must list exactly the invalid fixtures",
            set.label()
        );
        for (name, doc) in invalid {
            let at = format!("{}/invalid/{name}", set.label());
            let path = &expected[&name];
            let error = schema::validate(&set.event_type, set.version, &doc)
                .expect_err(&format!("{at}: accepted by its schema"));
            assert!(
                error.violations().iter().any(|v| &v.path == path),
                "{at}: expected a violation at {path}, got {error}"
            );
            let error = decode_any(&to_bytes(&doc)).expect_err(&format!("{at}: decoded"));
            assert!(!error.to_string().is_empty());
            if set.event_type == contracts::subjects::URL_CREATED {
                let error =
                    decode::<UrlCreated>(&to_bytes(&doc)).expect_err(&format!("{at}: decoded"));
                assert!(
                    error.violations().iter().any(|v| &v.path == path),
                    "{at}: typed decode should fail at {path}, got {error}"
                );
            }
        }
    }
}

#[test]
fn payloads_that_are_not_events_are_rejected_with_a_reason() {
    let cases: [(&[u8], ErrorKind, &str); 6] = [
        (b"{not json", ErrorKind::InvalidJson, ""),
        (b"", ErrorKind::InvalidJson, ""),
        (b"[1, 2]", ErrorKind::SchemaViolation, ""),
        (
            br#"{"event_version": 1}"#,
            ErrorKind::UnknownEventType,
            "/event_type",
        ),
        (
            br#"{"event_type": "shortener.url.exploded", "event_version": 1}"#,
            ErrorKind::UnknownEventType,
            "/event_type",
        ),
        (
            br#"{"event_type": "shortener.url.clicked", "event_version": -1}"#,
            ErrorKind::UnsupportedVersion,
            "/event_version",
        ),
    ];
    for (payload, kind, path) in cases {
        let error = decode_any(payload).expect_err("must be rejected");
        assert_eq!(
            error.kind(),
            kind,
            "{}: {error}",
            String::from_utf8_lossy(payload)
        );
        assert_eq!(
            error.path(),
            path,
            "{}: {error}",
            String::from_utf8_lossy(payload)
        );
    }
}

#[test]
fn a_consumer_of_one_subject_refuses_another_event_type() {
    let set = crate::support::fixture_set(contracts::subjects::URL_CLICKED, 1);
    let (_, doc) = set.documents(true).remove(0);
    let error = decode::<UrlCreated>(&to_bytes(&doc)).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::WrongEventType);
    assert_eq!(error.path(), "/event_type");
}
