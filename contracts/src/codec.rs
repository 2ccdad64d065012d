//! Encoding and decoding of events, with validation on both sides and
//! upcasting of older versions.
//!
//! Decoding is: parse JSON → read `event_type`/`event_version` → validate
//! against that exact schema → upcast step by step to the version the caller
//! wants (each step's output validated against the next schema) → map to the
//! Rust type. Every failure names the JSON path at fault.

use serde_json::Value;

use crate::error::{ContractError, ErrorKind};
use crate::events::{AnyEvent, Envelope, Event, UrlClicked, UrlCreated, UrlDeleted, UrlUpdated};
use crate::schema;
use crate::subjects;

/// Serialises an event after checking it against its schema, so that nothing
/// invalid is ever published.
pub fn encode<T: Event>(envelope: &Envelope<T>) -> Result<Vec<u8>, ContractError> {
    let value = serde_json::to_value(envelope)
        .map_err(|e| ContractError::new(ErrorKind::Mapping, "", e.to_string()))?;
    schema::validate(T::EVENT_TYPE, T::VERSION, &value)?;
    serde_json::to_vec(&value)
        .map_err(|e| ContractError::new(ErrorKind::Mapping, "", e.to_string()))
}

/// Decodes an event of type `T`, upcasting an older version to `T::VERSION`.
pub fn decode<T: Event>(payload: &[u8]) -> Result<Envelope<T>, ContractError> {
    let value = parse(payload)?;
    let (event_type, version) = identify(&value)?;
    if event_type != T::EVENT_TYPE {
        return Err(ContractError::new(
            ErrorKind::WrongEventType,
            "/event_type",
            format!("expected {:?}, found {event_type:?}", T::EVENT_TYPE),
        ));
    }
    schema::validate(&event_type, version, &value)?;
    if version > T::VERSION {
        return Err(ContractError::new(
            ErrorKind::UnsupportedVersion,
            "/event_version",
            format!(
                "{event_type} v{version} is newer than the v{} this consumer reads",
                T::VERSION
            ),
        ));
    }
    let value = upcast(&event_type, value, version, T::VERSION)?;
    into_envelope(value)
}

/// Decodes any known event into its latest version.
pub fn decode_any(payload: &[u8]) -> Result<AnyEvent, ContractError> {
    let value = parse(payload)?;
    let (event_type, version) = identify(&value)?;
    schema::validate(&event_type, version, &value)?;
    let latest = schema::latest_version(&event_type).unwrap_or(version);
    let value = upcast(&event_type, value, version, latest)?;
    match event_type.as_str() {
        subjects::URL_CREATED => into_envelope::<UrlCreated>(value).map(AnyEvent::Created),
        subjects::URL_CLICKED => into_envelope::<UrlClicked>(value).map(AnyEvent::Clicked),
        subjects::URL_UPDATED => into_envelope::<UrlUpdated>(value).map(AnyEvent::Updated),
        subjects::URL_DELETED => into_envelope::<UrlDeleted>(value).map(AnyEvent::Deleted),
        other => Err(ContractError::new(
            ErrorKind::Mapping,
            "/event_type",
            format!("{other:?} has a schema but no Rust type"),
        )),
    }
}

/// Upcasts a document that is valid at its own version to the latest version
/// of its event type. For tools that work on raw JSON (replays, re-drives).
pub fn upcast_to_latest(value: Value) -> Result<Value, ContractError> {
    let (event_type, version) = identify(&value)?;
    schema::validate(&event_type, version, &value)?;
    let latest = schema::latest_version(&event_type).unwrap_or(version);
    upcast(&event_type, value, version, latest)
}

fn parse(payload: &[u8]) -> Result<Value, ContractError> {
    serde_json::from_slice(payload).map_err(|e| {
        ContractError::new(
            ErrorKind::InvalidJson,
            "",
            format!("payload is not valid JSON: {e}"),
        )
    })
}

/// Reads the two envelope fields that say which schema applies.
fn identify(value: &Value) -> Result<(String, u32), ContractError> {
    let Some(object) = value.as_object() else {
        return Err(ContractError::new(
            ErrorKind::SchemaViolation,
            "",
            "an event must be a JSON object",
        ));
    };
    let event_type = match object.get("event_type") {
        Some(Value::String(t)) if schema::is_known_event_type(t) => t.clone(),
        Some(Value::String(t)) => {
            return Err(ContractError::new(
                ErrorKind::UnknownEventType,
                "/event_type",
                format!("unknown event type {t:?}"),
            ));
        }
        Some(other) => {
            return Err(ContractError::new(
                ErrorKind::UnknownEventType,
                "/event_type",
                format!("event_type must be a string, found {other}"),
            ));
        }
        None => {
            return Err(ContractError::new(
                ErrorKind::UnknownEventType,
                "/event_type",
                "\"event_type\" is a required property",
            ));
        }
    };
    let version = match object.get("event_version") {
        Some(v) => v
            .as_u64()
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| {
                ContractError::new(
                    ErrorKind::UnsupportedVersion,
                    "/event_version",
                    format!("event_version must be a positive integer, found {v}"),
                )
            })?,
        None => {
            return Err(ContractError::new(
                ErrorKind::UnsupportedVersion,
                "/event_version",
                "\"event_version\" is a required property",
            ));
        }
    };
    Ok((event_type, version))
}

/// Applies the upcasters `from → from+1 → … → to`, validating each result, so
/// that a faulty upcaster is caught here and not in a consumer's store.
fn upcast(event_type: &str, mut value: Value, from: u32, to: u32) -> Result<Value, ContractError> {
    for version in from..to {
        value = step(event_type, version, value)?;
        schema::validate(event_type, version + 1, &value).map_err(|e| {
            ContractError::new(
                ErrorKind::Mapping,
                e.path(),
                format!(
                    "upcast of {event_type} v{version} produced an invalid v{}: {e}",
                    version + 1
                ),
            )
        })?;
    }
    Ok(value)
}

/// One upcaster: `event_type` from `version` to `version + 1`.
fn step(event_type: &str, version: u32, value: Value) -> Result<Value, ContractError> {
    match (event_type, version) {
        (subjects::URL_CREATED, 1) => created_v1_to_v2(value),
        _ => Err(ContractError::new(
            ErrorKind::Mapping,
            "/event_version",
            format!(
                "no upcaster from {event_type} v{version} to v{}",
                version + 1
            ),
        )),
    }
}

/// `shortener.url.created` v1 → v2: v2 adds `target_host`, which is derived
/// from `original_url` exactly as the shortener computes it.
fn created_v1_to_v2(mut value: Value) -> Result<Value, ContractError> {
    let original_url = value
        .pointer("/data/original_url")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let host = UrlCreated::host_of(original_url).ok_or_else(|| {
        ContractError::new(
            ErrorKind::Mapping,
            "/data/original_url",
            format!("cannot derive target_host from {original_url:?}"),
        )
    })?;
    value["data"]["target_host"] = Value::String(host);
    value["event_version"] = Value::from(2);
    Ok(value)
}

fn into_envelope<T: Event>(value: Value) -> Result<Envelope<T>, ContractError> {
    serde_json::from_value(value).map_err(|e| {
        ContractError::new(
            ErrorKind::Mapping,
            "",
            format!("valid {} did not map to its Rust type: {e}", T::EVENT_TYPE),
        )
    })
}
