//! Click events built so that they always satisfy their schema, without
//! running the schema validator.
//!
//! A redirect produces one `shortener.url.clicked` event, at tens of
//! thousands per second, and running the JSON Schema validator on each was
//! an eighth of the shortener's CPU. [`ClickEvent::new`] instead checks the
//! few rules the request cannot be trusted with (the code's alphabet and
//! length, the producer name, the year range) and brings the free-form
//! headers into shape (truncated on character boundaries, empty as null,
//! the country upper-cased or dropped). `tests/contracts/properties.rs`
//! proves, over arbitrary inputs, that every event this constructor returns
//! validates against the schema and decodes back to itself; that proof is
//! what lets [`ClickEvent::encode`] skip the validator. Everything else
//! (outbox events, consumers) keeps validating at run time.

use chrono::{DateTime, Datelike, Utc};
use uuid::Uuid;

use crate::error::{ContractError, ErrorKind};
use crate::events::{Envelope, UrlClicked};

/// Longest `referrer` kept, in characters (the schema's `maxLength`).
pub const MAX_REFERRER_CHARS: usize = 2048;
/// Longest `user_agent` kept, in characters (the schema's `maxLength`).
pub const MAX_USER_AGENT_CHARS: usize = 1024;
/// Longest short code (the schema's `maxLength`).
const MAX_CODE_CHARS: usize = 64;
/// Longest producer name (the schema's `maxLength`).
const MAX_PRODUCER_CHARS: usize = 64;

/// An anonymised visitor: 16 bytes of a keyed hash, sent as 32 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VisitorKey(pub [u8; 16]);

impl VisitorKey {
    /// The 32 lower-case hex digits the event carries (by table: this runs
    /// once per redirect, and the formatting machinery costs more).
    pub fn to_hex(self) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut hex = String::with_capacity(32);
        for byte in self.0 {
            hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
            hex.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
        }
        hex
    }
}

/// What the shortener knows about one served redirect, as it arrived.
#[derive(Debug, Clone, Default)]
pub struct ClickFacts<'a> {
    pub url_id: Uuid,
    pub short_code: &'a str,
    pub clicked_at: DateTime<Utc>,
    /// The `Referer` header as sent.
    pub referrer: Option<&'a str>,
    /// The `User-Agent` header as sent.
    pub user_agent: Option<&'a str>,
    pub visitor_key: Option<VisitorKey>,
    /// A country header as sent; kept only when it is two ASCII letters.
    pub country: Option<&'a str>,
}

/// A `shortener.url.clicked` event that is valid by construction.
#[derive(Debug, Clone, PartialEq)]
pub struct ClickEvent(Envelope<UrlClicked>);

fn truncated(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => text[..end].to_owned(),
        None => text.to_owned(),
    }
}

fn refused(path: &str, message: String) -> ContractError {
    ContractError::new(ErrorKind::SchemaViolation, path, message)
}

impl ClickEvent {
    /// Builds the event; refuses only what cannot be repaired (a code or a
    /// producer outside their alphabet, a year outside 0000–9999).
    pub fn new(producer: &str, facts: ClickFacts<'_>) -> Result<Self, ContractError> {
        let producer_ok = producer.len() <= MAX_PRODUCER_CHARS
            && producer
                .as_bytes()
                .first()
                .is_some_and(u8::is_ascii_lowercase)
            && producer.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-')
            });
        if !producer_ok {
            return Err(refused(
                "/producer",
                format!("{producer:?} is not a producer name"),
            ));
        }
        let code_ok = (1..=MAX_CODE_CHARS).contains(&facts.short_code.len())
            && facts
                .short_code
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
        if !code_ok {
            return Err(refused(
                "/data/short_code",
                format!("{:?} is not a short code", facts.short_code),
            ));
        }
        if !(0..=9999).contains(&facts.clicked_at.year()) {
            return Err(refused(
                "/data/clicked_at",
                format!("{} is outside the years 0000-9999", facts.clicked_at),
            ));
        }
        let text = |value: Option<&str>, max: usize| {
            value.filter(|v| !v.is_empty()).map(|v| truncated(v, max))
        };
        let country = facts
            .country
            .map(str::trim)
            .filter(|c| c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic()))
            .map(str::to_ascii_uppercase);
        Ok(Self(Envelope::new(
            producer,
            facts.clicked_at,
            UrlClicked {
                url_id: facts.url_id,
                short_code: facts.short_code.to_owned(),
                clicked_at: facts.clicked_at,
                referrer: text(facts.referrer, MAX_REFERRER_CHARS),
                user_agent: text(facts.user_agent, MAX_USER_AGENT_CHARS),
                visitor_key: facts.visitor_key.map(VisitorKey::to_hex),
                country,
            },
        )))
    }

    pub fn envelope(&self) -> &Envelope<UrlClicked> {
        &self.0
    }

    pub fn into_envelope(self) -> Envelope<UrlClicked> {
        self.0
    }

    /// The JSON to publish. No validator runs: the construction above is
    /// proven to produce only valid events (see the module documentation).
    pub fn encode(&self) -> Vec<u8> {
        let data = &self.0.data;
        // Sized once: the fixed members take about 400 bytes.
        let free_text = data.referrer.as_ref().map_or(0, String::len)
            + data.user_agent.as_ref().map_or(0, String::len);
        let mut json = Vec::with_capacity(448 + free_text + free_text / 8);
        serde_json::to_writer(&mut json, &self.0)
            .expect("strings, numbers and times always serialise");
        json
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_headers_are_cut_on_character_boundaries() {
        assert_eq!(truncated("äbc", 2), "äb");
        assert_eq!(truncated("ab", 5), "ab");
    }

    #[test]
    fn visitor_keys_are_32_hex_digits() {
        let key = VisitorKey([
            0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0, 0, 0, 0, 0, 0, 0xf0, 0x0f,
        ]);
        assert_eq!(key.to_hex(), format!("{:032x}", u128::from_be_bytes(key.0)));
        assert_eq!(
            VisitorKey([0xab; 16]).to_hex(),
            "abababababababababababababababab"
        );
        assert_eq!(VisitorKey([0; 16]).to_hex().len(), 32);
    }
}
