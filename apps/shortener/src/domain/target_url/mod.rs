//! The URL a link redirects to.
//!
//! People paste URLs from a browser's address bar, so what is accepted is
//! what a browser's URL parser (the WHATWG URL Standard, the `url` crate)
//! accepts as an absolute http(s) URL, within limits a client can check
//! before sending: exactly [`URL_PATTERN`], the regular expression the
//! OpenAPI document publishes, plus two rules no regular expression can
//! state, which the document's description gives: an `xn--` label must be
//! valid punycode, and the normalised target has at most
//! [`MAX_URL_LENGTH`] characters.
//!
//! - The host is an IPv4 address or a name: ASCII letters, digits, hyphens,
//!   underscores and dots (at most 254 characters), or, written in Unicode,
//!   also the letters of `idn_letters!` (at most [`MAX_IDN_PART_CHARS`]
//!   characters before its last dot and as many after it, so that its
//!   punycode stays a DNS name). Its last label starts with a letter, so it
//!   is never read as an address.
//! - Path, query and fragment may hold any character but a control
//!   character: non-ASCII letters, spaces, `|`, `[`, `]`, `{`, `}`, `^`, `'`.
//! - Never accepted: a user name or password, another scheme, control
//!   characters, an empty host, more than [`MAX_URL_LENGTH`] characters.
//!   Spaces around the URL (a paste often has them) are dropped.
//!
//! The stored form is the URL Standard's serialisation: scheme and host in
//! lower case, the host in punycode, default port and dot segments removed,
//! and percent-encoding where the standard encodes (non-ASCII characters as
//! their UTF-8 bytes, spaces as `%20`, `'` in a query as `%27`). The events
//! carry it as an RFC 3986 URI, so the few characters the standard leaves
//! as they are and RFC 3986 does not allow are percent-encoded too (`[`,
//! `]`, `|`, `{`, `}`, `^`, `` ` ``, `\`, a second `#`, and a `%` that starts
//! no escape): the same resource for every server. A URL without a path
//! keeps none.

use std::fmt;
use std::sync::LazyLock;

use regex::Regex;
use url::{ParseError, Position, Url};

/// Longest accepted target, as sent and once normalised.
pub const MAX_URL_LENGTH: usize = 2048;

/// Longest part of a host written with non-ASCII letters, before its last
/// dot and after it: its punycode must stay within the 254 characters of a
/// DNS name (and of the events' field).
pub const MAX_IDN_PART_CHARS: usize = 20;

/// An IPv4 address part, 0 to 255 without leading zeros.
macro_rules! octet {
    () => {
        "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
    };
}

/// The letters a host may be written in beyond ASCII, as ranges of literal
/// characters (every regex dialect reads them the same way): Latin-1 and
/// Latin Extended-A, Greek, Cyrillic, Hiragana, Katakana, CJK ideographs
/// and Hangul syllables. None is a combining mark or a right-to-left letter,
/// so every label of them passes IDNA's checks (a unit test proves it for
/// each one); a host in another script is given in punycode.
macro_rules! idn_letters {
    () => {
        "À-ÖØ-öø-ſΑ-ΡΣ-ώЀ-џぁ-ゖァ-ヺ一-鿿가-힣"
    };
}

/// What may follow the host's part: anything but a control character
/// (C0, DEL, C1) and the delimiters in `$stop`.
macro_rules! text_but {
    ($stop:literal) => {
        concat!("[^\\x00-\\x1F\\x7F-\\x9F", $stop, "]")
    };
}

macro_rules! url_grammar {
    () => {
        concat!(
            " *[Hh][Tt][Tt][Pp][Ss]?://",
            "(?:",
            // An IPv4 address.
            octet!(),
            "(?:\\.",
            octet!(),
            "){3}",
            // An ASCII name whose last label starts with a letter (the URL
            // Standard reads a numeric last label as IPv4) and has at most
            // 63 characters, after at most 191 of letters, digits, hyphens,
            // underscores and dots: at most 254 in all, as the events require.
            "|(?:[A-Za-z0-9._-]{0,190}\\.)?[A-Za-z][A-Za-z0-9_-]{0,62}",
            // A name with letters beyond ASCII: at most 20 characters
            // before its last dot and 20 after it.
            "|(?:[A-Za-z0-9._",
            idn_letters!(),
            "-]{0,20}\\.)?[A-Za-z",
            idn_letters!(),
            "][A-Za-z0-9_",
            idn_letters!(),
            "-]{0,19}",
            ")",
            // A port up to 65535; leading zeros allowed, five digits at most.
            "(?::(?:[0-9]{0,4}|[0-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?",
            "(?:/",
            text_but!("?#"),
            "*)?",
            "(?:\\?",
            text_but!("#"),
            "*)?",
            "(?:#",
            text_but!(""),
            "*)?",
            " *"
        )
    };
}

/// Every accepted target (with at most [`MAX_URL_LENGTH`] characters),
/// unanchored so that a test can generate strings from it.
#[cfg(test)]
const URL_GRAMMAR: &str = url_grammar!();

/// [`URL_GRAMMAR`] anchored: the `pattern` of a target in the OpenAPI document.
pub const URL_PATTERN: &str = concat!("^", url_grammar!(), "$");

static URL_REGEX: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(URL_PATTERN).expect("the URL pattern compiles"));

/// An absolute http(s) URL without credentials, normalised.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct TargetUrl {
    url: String,
    host: String,
}

impl TargetUrl {
    pub fn parse(input: &str) -> Result<Self, String> {
        let length = input.chars().count();
        if length > MAX_URL_LENGTH {
            return Err(format!(
                "must be at most {MAX_URL_LENGTH} characters, not {length}"
            ));
        }
        let trimmed = input.trim_matches(' ');
        if trimmed.is_empty() {
            return Err("must not be empty".into());
        }
        if input.chars().any(char::is_control) {
            return Err("must not contain control characters".into());
        }
        let url = Url::parse(trimmed).map_err(|e| match e {
            ParseError::RelativeUrlWithoutBase => {
                "must be an absolute URL starting with http:// or https://".to_owned()
            }
            other => format!("is not a valid URL: {other}"),
        })?;
        match url.scheme() {
            "http" | "https" => {}
            other => {
                return Err(format!(
                    "scheme {other:?} is not allowed, only http and https"
                ));
            }
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not contain a user name or password".into());
        }
        let host = match url.host_str() {
            Some(host) if !host.is_empty() => host.to_owned(),
            _ => return Err("must have a host".into()),
        };
        if !URL_REGEX.is_match(input) {
            return Err(not_in_grammar(trimmed));
        }
        let normalised = without_added_path(trimmed, strict_rfc3986(&url));
        if normalised.len() > MAX_URL_LENGTH {
            return Err(format!(
                "must be at most {MAX_URL_LENGTH} characters once normalised \
                 (non-ASCII characters percent-encoded), not {}",
                normalised.len()
            ));
        }
        Ok(Self {
            url: normalised,
            host,
        })
    }

    /// A target as a store holds it, with its host: parsed once, when it
    /// was set.
    pub fn from_store(url: String, host: String) -> Self {
        Self { url, host }
    }

    pub fn as_str(&self) -> &str {
        &self.url
    }

    /// Lower-case ASCII host (punycode for IDN), the events' `target_host`.
    pub fn host(&self) -> &str {
        &self.host
    }
}

/// A target as the OpenAPI document states it: exactly the pattern
/// [`TargetUrl::parse`] enforces, so a schema-valid target is an accepted one.
impl utoipa::PartialSchema for TargetUrl {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(MAX_URL_LENGTH))
            .pattern(Some(URL_PATTERN))
            .description(Some(
                "An absolute http(s) URL, as a browser's address bar shows it. The host is an \
                 IPv4 address or a name: ASCII letters, digits, hyphens, underscores and dots \
                 (at most 254 characters), or a name that also has Latin, Greek, Cyrillic, \
                 Chinese, Japanese or Korean letters, at most 20 characters before its last \
                 dot and 20 after it (give a host in another script in punycode; an xn-- \
                 label must be valid punycode). Path, query and fragment may hold any \
                 character but a control character. No user name or password; spaces around \
                 the URL are dropped. Stored normalised as the WHATWG URL Standard serialises \
                 it (scheme and host in lower case, the host in punycode, default port and \
                 dot segments removed, non-ASCII characters percent-encoded as UTF-8, spaces \
                 as %20, ' in a query as %27), then as an RFC 3986 URI: [ ] | { } ^ ` \\, a \
                 second # and a % that starts no escape percent-encoded too. At most 2048 \
                 characters as sent and once normalised.",
            ))
            .examples(Some(serde_json::json!("https://example.com/docs")))
            .into()
    }
}

impl utoipa::ToSchema for TargetUrl {}

impl PartialEq<&str> for TargetUrl {
    fn eq(&self, other: &&str) -> bool {
        self.url == *other
    }
}

impl fmt::Display for TargetUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

/// Why a URL the `url` crate parsed is outside [`URL_PATTERN`], as precisely
/// as can be said cheaply.
fn not_in_grammar(input: &str) -> String {
    let Some((_, after_scheme)) = input.split_once("://") else {
        return "must start with http:// or https://".into();
    };
    let authority_end = after_scheme
        .find(['/', '?', '#'])
        .unwrap_or(after_scheme.len());
    let authority = &after_scheme[..authority_end];
    if authority.starts_with('[') {
        return "must have a DNS name or an IPv4 address as host, not an IPv6 literal".into();
    }
    let host = authority
        .rsplit_once(':')
        .map_or(authority, |(host, _)| host);
    if !host.is_ascii() {
        let (before, after) = host.rsplit_once('.').unwrap_or(("", host));
        if before.chars().count().max(after.chars().count()) > MAX_IDN_PART_CHARS {
            return format!(
                "must have at most {MAX_IDN_PART_CHARS} characters before the host's last dot \
                 and {MAX_IDN_PART_CHARS} after it when the host has non-ASCII letters: \
                 give it in punycode (xn--)"
            );
        }
        return "must have a host in ASCII, or with Latin, Greek, Cyrillic, Chinese, \
                Japanese or Korean letters: give a host in another script in punycode (xn--)"
            .into();
    }
    "must have an IPv4 address or a name as host: letters, digits, hyphens, \
     underscores and dots, at most 254 characters, the last label starting with a \
     letter and at most 63 characters long; and a port of at most five digits"
        .into()
}

/// Drops the `/` the URL Standard adds to a URL that has no path, so a
/// target is stored as it was given (the same resource either way).
fn without_added_path(input: &str, mut normalised: String) -> String {
    let after_scheme = input.split_once("://").map_or(input, |(_, rest)| rest);
    let had_path = after_scheme
        .find(['/', '?', '#'])
        .is_some_and(|at| after_scheme[at..].starts_with('/'));
    if !had_path {
        if let Some(at) = normalised
            .find("://")
            .and_then(|scheme| normalised[scheme + 3..].find('/').map(|at| scheme + 3 + at))
        {
            normalised.remove(at);
        }
    }
    normalised
}

/// Percent-encodes what RFC 3986 does not allow after the authority (the
/// URL Standard leaves `[`, `|`, `{`, ... as they are; the events' URIs may
/// not), and a `%` that starts no escape.
fn strict_rfc3986(url: &Url) -> String {
    let (origin, rest) = (&url[..Position::BeforePath], &url[Position::BeforePath..]);
    let mut out = String::with_capacity(url.as_str().len() + 8);
    out.push_str(origin);
    let bytes = rest.as_bytes();
    let mut in_fragment = false;
    for (i, &b) in bytes.iter().enumerate() {
        let allowed = match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => true,
            b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=' => true,
            b':' | b'@' | b'/' | b'?' => true,
            b'#' if !in_fragment => {
                in_fragment = true;
                true
            }
            b'%' => bytes
                .get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)),
            _ => false,
        };
        if allowed {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests;
