//! The embedded JSON Schemas (draft 2020-12), compiled once per process.
//!
//! The files under `contracts/schemas/` are compiled into the binary with
//! `include_str!`, so a service can never run against schemas other than the
//! ones it was built and tested with.

use std::sync::LazyLock;

use jsonschema::error::ValidationErrorKind;
use jsonschema::{Draft, PatternOptions, Validator};
use serde_json::Value;

use crate::error::{ContractError, ErrorKind, Violation};

/// One schema file: an event type at one version.
#[derive(Debug)]
pub struct SchemaDocument {
    /// The event type (and subject) the schema describes.
    pub event_type: &'static str,
    /// The `event_version` it describes.
    pub version: u32,
    /// File name under `contracts/schemas/`.
    pub file_name: &'static str,
    /// The file's text.
    pub source: &'static str,
}

macro_rules! schema_document {
    ($event_type:literal, $version:literal) => {
        SchemaDocument {
            event_type: $event_type,
            version: $version,
            file_name: concat!($event_type, ".v", $version, ".json"),
            source: include_str!(concat!("../schemas/", $event_type, ".v", $version, ".json")),
        }
    };
}

/// Every schema this crate knows, oldest version first within an event type.
pub static DOCUMENTS: [SchemaDocument; 5] = [
    schema_document!("shortener.url.created", 1),
    schema_document!("shortener.url.created", 2),
    schema_document!("shortener.url.clicked", 1),
    schema_document!("shortener.url.updated", 1),
    schema_document!("shortener.url.deleted", 1),
];

/// Compiled validators, index-aligned with [`DOCUMENTS`]. Formats (`uuid`,
/// `date-time`, `uri`) are asserted, not just annotated.
static VALIDATORS: LazyLock<Vec<Validator>> = LazyLock::new(|| {
    DOCUMENTS
        .iter()
        .map(|doc| {
            let schema: Value = serde_json::from_str(doc.source)
                .unwrap_or_else(|e| panic!("embedded schema {} is not JSON: {e}", doc.file_name));
            jsonschema::options()
                .with_draft(Draft::Draft202012)
                .should_validate_formats(true)
                // Every pattern in the schemas is a plain regular expression
                // (no look-around or back-references), so the linear-time
                // `regex` engine serves them without `fancy-regex`'s wrapper.
                .with_pattern_options(PatternOptions::regex())
                .build(&schema)
                .unwrap_or_else(|e| {
                    panic!("embedded schema {} does not compile: {e}", doc.file_name)
                })
        })
        .collect()
});

/// The schema of `event_type` at `version`, if there is one.
pub fn document(event_type: &str, version: u32) -> Option<&'static SchemaDocument> {
    DOCUMENTS
        .iter()
        .find(|d| d.event_type == event_type && d.version == version)
}

/// Whether any schema describes `event_type`.
pub fn is_known_event_type(event_type: &str) -> bool {
    DOCUMENTS.iter().any(|d| d.event_type == event_type)
}

/// The newest version of `event_type`, which is what decoding upcasts to.
pub fn latest_version(event_type: &str) -> Option<u32> {
    DOCUMENTS
        .iter()
        .filter(|d| d.event_type == event_type)
        .map(|d| d.version)
        .max()
}

/// Checks `instance` against the schema of `event_type` at `version` and
/// returns every violation, each with the JSON path at fault.
pub fn validate(event_type: &str, version: u32, instance: &Value) -> Result<(), ContractError> {
    let Some(index) = DOCUMENTS
        .iter()
        .position(|d| d.event_type == event_type && d.version == version)
    else {
        return Err(if is_known_event_type(event_type) {
            ContractError::new(
                ErrorKind::UnsupportedVersion,
                "/event_version",
                format!("{event_type} has no schema for event_version {version}"),
            )
        } else {
            ContractError::new(
                ErrorKind::UnknownEventType,
                "/event_type",
                format!("unknown event type {event_type:?}"),
            )
        });
    };
    let violations: Vec<Violation> = VALIDATORS[index]
        .iter_errors(instance)
        .map(|error| {
            let mut path = error.instance_path().as_str().to_owned();
            // A missing property is reported at its parent; name the property
            // itself, which is what a reader of the error is looking for.
            if let ValidationErrorKind::Required { property } = error.kind() {
                if let Some(name) = property.as_str() {
                    path.push('/');
                    path.push_str(&name.replace('~', "~0").replace('/', "~1"));
                }
            }
            // Masked: the offending value stays out of the message, which
            // travels in logs and dead-letter headers (a value can be huge).
            Violation {
                path,
                message: error.masked().to_string(),
            }
        })
        .collect();
    if violations.is_empty() {
        Ok(())
    } else {
        Err(ContractError::schema(violations))
    }
}
