//! NATS subject names. Every event's `event_type` equals the subject it is
//! published on, so a consumer can check one against the other.

/// A link was created.
pub const URL_CREATED: &str = "shortener.url.created";
/// A redirect was served.
pub const URL_CLICKED: &str = "shortener.url.clicked";
/// A link's target, expiry or redirect type changed.
pub const URL_UPDATED: &str = "shortener.url.updated";
/// A link was deleted.
pub const URL_DELETED: &str = "shortener.url.deleted";

/// Every event subject, in a stable order.
pub const ALL: [&str; 4] = [URL_CREATED, URL_CLICKED, URL_UPDATED, URL_DELETED];

/// Prefix of dead-letter subjects: a message that can never be processed from
/// subject `s` is republished on `analytics.dlq.s`.
pub const DEAD_LETTER_PREFIX: &str = "analytics.dlq.";

/// The dead-letter subject for messages that failed on `original`.
///
/// ```
/// assert_eq!(
///     contracts::subjects::dead_letter_subject("shortener.url.clicked"),
///     "analytics.dlq.shortener.url.clicked"
/// );
/// ```
pub fn dead_letter_subject(original: &str) -> String {
    format!("{DEAD_LETTER_PREFIX}{original}")
}
