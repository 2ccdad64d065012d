//! Errors of encoding and decoding events. Each names the JSON path at fault,
//! so a dead letter or a log line says exactly what was wrong.

use std::fmt;

/// One place where a document broke its schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// JSON Pointer to the offending value (`/data/url_id`); for a missing
    /// property, the pointer to where it should have been.
    pub path: String,
    /// What is wrong there.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() {
            "/"
        } else {
            &self.path
        };
        write!(f, "{path}: {}", self.message)
    }
}

/// The broad class of a contract failure; stable strings for headers and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The payload is not JSON at all.
    InvalidJson,
    /// `event_type` is missing, not a string, or not an event this crate knows.
    UnknownEventType,
    /// `event_type` is known but is not the one the caller expected.
    WrongEventType,
    /// `event_version` is missing, not an integer, or has no schema.
    UnsupportedVersion,
    /// The document breaks its schema.
    SchemaViolation,
    /// The document passed its schema but could not be mapped to the Rust type,
    /// or an upcaster could not convert it. Always a bug in this crate.
    Mapping,
}

impl ErrorKind {
    /// Every kind, for metrics that show each one from the start.
    pub const ALL: [ErrorKind; 6] = [
        ErrorKind::InvalidJson,
        ErrorKind::UnknownEventType,
        ErrorKind::WrongEventType,
        ErrorKind::UnsupportedVersion,
        ErrorKind::SchemaViolation,
        ErrorKind::Mapping,
    ];

    /// Stable identifier, used as the `Dlq-Reason` header and as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidJson => "invalid_json",
            ErrorKind::UnknownEventType => "unknown_event_type",
            ErrorKind::WrongEventType => "wrong_event_type",
            ErrorKind::UnsupportedVersion => "unsupported_version",
            ErrorKind::SchemaViolation => "schema_violation",
            ErrorKind::Mapping => "mapping",
        }
    }
}

/// Why a payload is not a valid event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {}", kind.as_str(), violations.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct ContractError {
    kind: ErrorKind,
    /// Never empty.
    violations: Vec<Violation>,
}

impl ContractError {
    pub(crate) fn new(
        kind: ErrorKind,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            violations: vec![Violation {
                path: path.into(),
                message: message.into(),
            }],
        }
    }

    pub(crate) fn schema(violations: Vec<Violation>) -> Self {
        debug_assert!(!violations.is_empty());
        Self {
            kind: ErrorKind::SchemaViolation,
            violations,
        }
    }

    /// The class of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// JSON Pointer of the first failing location (`""` is the document itself).
    pub fn path(&self) -> &str {
        &self.violations[0].path
    }

    /// Every failing location, in the order the validator found them.
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }
}
