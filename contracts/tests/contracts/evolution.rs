//! Evolution rule: a schema may only change so that every valid fixture of
//! every earlier version still decodes. A breaking change is a new
//! `event_version`, with an upcaster from the previous one; these tests walk
//! every version pair and hold the upcasters to it.
//!
//! Worked example: `shortener.url.created` v2 added the required `target_host`.
//! v1 events (the stream keeps months of them) are upcast by deriving it.

use contracts::schema::{self, DOCUMENTS};
use contracts::{
    AnyEvent, ErrorKind, Event, UrlCreated, UrlCreatedV1, decode, decode_any, upcast_to_latest,
};
use serde_json::Value;

use crate::support::{fixture_set, to_bytes};

#[test]
fn versions_of_each_event_are_contiguous_from_one() {
    for doc in &DOCUMENTS {
        let latest = schema::latest_version(doc.event_type).unwrap();
        for version in 1..=latest {
            assert!(
                schema::document(doc.event_type, version).is_some(),
                "{} has v{latest} but no v{version}",
                doc.event_type
            );
        }
    }
}

#[test]
fn every_valid_fixture_of_every_older_version_upcasts_to_a_valid_latest() {
    for doc in &DOCUMENTS {
        let latest = schema::latest_version(doc.event_type).unwrap();
        if doc.version == latest {
            continue;
        }
        for (name, fixture) in fixture_set(doc.event_type, doc.version).documents(true) {
            let at = format!("{} v{} valid/{name}", doc.event_type, doc.version);
            let upcast = upcast_to_latest(fixture.clone()).unwrap_or_else(|e| panic!("{at}: {e}"));
            assert_eq!(upcast["event_version"], latest, "{at}");
            schema::validate(doc.event_type, latest, &upcast)
                .unwrap_or_else(|e| panic!("{at}: {e}"));
            decode_any(&to_bytes(&fixture)).unwrap_or_else(|e| panic!("{at}: {e}"));
        }
    }
}

/// Fixtures with the same name in v1 and v2 describe the same link: upcasting
/// the v1 one must give exactly the v2 one.
#[test]
fn created_v1_upcasts_to_exactly_the_matching_v2_fixture() {
    let v2: Vec<(String, Value)> = fixture_set(UrlCreated::EVENT_TYPE, 2).documents(true);
    let mut compared = 0;
    for (name, v1) in fixture_set(UrlCreated::EVENT_TYPE, 1).documents(true) {
        if let Some((_, expected)) = v2.iter().find(|(n, _)| *n == name) {
            assert_eq!(&upcast_to_latest(v1).unwrap(), expected, "{name}");
            compared += 1;
        }
    }
    assert!(compared >= 3, "only {compared} v1/v2 fixture pairs");
}

#[test]
fn the_v2_schema_rejects_v1_payloads_so_the_new_version_was_needed() {
    let (_, mut v1) = fixture_set(UrlCreated::EVENT_TYPE, 1)
        .documents(true)
        .remove(0);
    v1["event_version"] = Value::from(2);
    let error = schema::validate(UrlCreated::EVENT_TYPE, 2, &v1).unwrap_err();
    assert_eq!(error.path(), "/data/target_host");
}

#[test]
fn typed_and_untyped_decoding_agree_on_upcast_events() {
    let (_, v1) = fixture_set(UrlCreated::EVENT_TYPE, 1)
        .documents(true)
        .into_iter()
        .find(|(name, _)| name == "never-expires.json")
        .unwrap();
    let typed = decode::<UrlCreated>(&to_bytes(&v1)).unwrap();
    assert_eq!(typed.data.target_host, "example.com");
    assert_eq!(
        decode_any(&to_bytes(&v1)).unwrap(),
        AnyEvent::Created(typed)
    );
}

#[test]
fn a_consumer_never_downcasts_a_newer_version() {
    let (_, v2) = fixture_set(UrlCreated::EVENT_TYPE, 2)
        .documents(true)
        .remove(0);
    let error = decode::<UrlCreatedV1>(&to_bytes(&v2)).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::UnsupportedVersion);
    assert_eq!(error.path(), "/event_version");
}
