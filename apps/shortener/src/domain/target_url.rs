//! The URL a link redirects to.
//!
//! What is accepted is exactly [`URL_PATTERN`], the regular expression the
//! OpenAPI document publishes, so a client can check a target before sending
//! it: an absolute http(s) URL in RFC 3986 characters (other characters
//! percent-encoded), whose host is a name of at most 254 characters (its last
//! label starting with a letter) or an IPv4 address, with an optional port up
//! to 65535, and no user name or password. An international
//! domain name is given in punycode, and an `xn--` label must be valid
//! punycode. Parsing is then WHATWG's (`url` crate): scheme and host in lower
//! case, default ports and dot segments removed. A URL without a path keeps
//! none, so normalising never makes a target longer.

use std::fmt;
use std::sync::LazyLock;

use regex::Regex;
use url::{ParseError, Position, Url};

/// Longest accepted target, before and after normalisation.
pub const MAX_URL_LENGTH: usize = 2048;

/// An IPv4 address part, 0 to 255 without leading zeros.
macro_rules! octet {
    () => {
        "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
    };
}

/// One RFC 3986 `pchar` (plus `$extra`); `%` only as the start of an escape.
macro_rules! pchar {
    ($extra:literal) => {
        concat!(
            "(?:[A-Za-z0-9._~!$&()*+,;=:@",
            $extra,
            "-]|%[0-9A-Fa-f]{2})"
        )
    };
}

macro_rules! url_grammar {
    () => {
        concat!(
            "[Hh][Tt][Tt][Pp][Ss]?://",
            // An IPv4 address, or a name whose last label starts with a
            // letter (WHATWG reads a numeric last label as IPv4) and has at
            // most 63 characters, after at most 191 of letters, digits,
            // hyphens and dots: at most 254 in all, as the events require.
            "(?:",
            octet!(),
            "(?:\\.",
            octet!(),
            "){3}|(?:[A-Za-z0-9.-]{0,190}\\.)?[A-Za-z][A-Za-z0-9-]{0,62})",
            // A port up to 65535; leading zeros allowed, five digits at most.
            "(?::(?:[0-9]{0,4}|[0-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?",
            "(?:/",
            pchar!("'/"),
            "*)?",
            // No `'` in a query: WHATWG escapes it there, lengthening the URL.
            "(?:\\?",
            pchar!("/?"),
            "*)?",
            "(?:#",
            pchar!("'/?"),
            "*)?"
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetUrl {
    url: String,
    host: String,
}

impl TargetUrl {
    pub fn parse(input: &str) -> Result<Self, String> {
        if input.is_empty() {
            return Err("must not be empty".into());
        }
        let length = input.chars().count();
        if length > MAX_URL_LENGTH {
            return Err(format!(
                "must be at most {MAX_URL_LENGTH} characters, not {length}"
            ));
        }
        if input.chars().any(char::is_control) {
            return Err("must not contain control characters".into());
        }
        if input.chars().any(char::is_whitespace) {
            return Err("must not contain whitespace".into());
        }
        if let Some(c) = input.chars().find(|c| !c.is_ascii()) {
            return Err(format!(
                "must be ASCII: percent-encode {c:?} (its UTF-8 bytes), and give an \
                 international domain name in punycode (xn--)"
            ));
        }
        let url = Url::parse(input).map_err(|e| match e {
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
                ))
            }
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not contain a user name or password".into());
        }
        if !URL_REGEX.is_match(input) {
            return Err(not_in_grammar(input));
        }
        let host = match url.host_str() {
            Some(host) if !host.is_empty() => host.to_ascii_lowercase(),
            _ => return Err("must have a host".into()),
        };
        let normalised = without_added_path(input, strict_rfc3986(&url));
        if normalised.len() > MAX_URL_LENGTH {
            return Err(format!(
                "is longer than {MAX_URL_LENGTH} characters once normalised"
            ));
        }
        Ok(Self {
            url: normalised,
            host,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.url
    }

    /// Lower-case ASCII host (punycode for IDN), the events' `target_host`.
    pub fn host(&self) -> &str {
        &self.host
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
    let (authority, rest) = after_scheme.split_at(authority_end);
    let rfc3986 = |c: char| c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@/?#%".contains(c);
    if let Some(c) = rest.chars().find(|&c| !rfc3986(c)) {
        return format!(
            "must contain only RFC 3986 characters: percent-encode {c:?} as %{:02X}",
            u32::from(c)
        );
    }
    if rest.contains('%') {
        return "must use '%' only to start an escape of two hex digits (write %25)".into();
    }
    if rest.split_once('?').is_some_and(|(_, q)| q.contains('\'')) {
        return "must percent-encode ' in the query as %27".into();
    }
    if authority.starts_with('[') {
        return "must have a DNS name or an IPv4 address as host, not an IPv6 literal".into();
    }
    "must have an IPv4 address or a name as host: letters, digits, hyphens and dots, \
     at most 254 characters, the last label starting with a letter and at most 63 \
     characters long; and a port of at most five digits"
        .into()
}

/// Drops the `/` WHATWG adds to a URL that has no path, so a normalised
/// target is never longer than what was sent (the same resource either way).
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

/// Percent-encodes what RFC 3986 does not allow after the authority.
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
mod tests {
    use super::*;

    #[test]
    fn normalises_what_it_accepts() {
        let cases = [
            ("https://example.com", "https://example.com", "example.com"),
            (
                "https://example.com/",
                "https://example.com/",
                "example.com",
            ),
            (
                "https://example.com?q=1",
                "https://example.com?q=1",
                "example.com",
            ),
            (
                "HTTPS://Example.COM/Path?Q=1#Frag",
                "https://example.com/Path?Q=1#Frag",
                "example.com",
            ),
            (
                "http://example.com:80/a",
                "http://example.com/a",
                "example.com",
            ),
            (
                "http://example.com:0080",
                "http://example.com",
                "example.com",
            ),
            (
                "https://xn--bcher-kva.example/katalog",
                "https://xn--bcher-kva.example/katalog",
                "xn--bcher-kva.example",
            ),
            (
                "https://example.com/a/./b/../c?x=%5B1%5D",
                "https://example.com/a/c?x=%5B1%5D",
                "example.com",
            ),
            (
                "https://127.0.0.1:8443/x",
                "https://127.0.0.1:8443/x",
                "127.0.0.1",
            ),
            ("http://1.example", "http://1.example", "1.example"),
        ];
        for (input, url, host) in cases {
            let parsed = TargetUrl::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(parsed.as_str(), url, "{input}");
            assert_eq!(parsed.host(), host, "{input}");
        }
    }

    #[test]
    fn refuses_what_is_not_a_safe_http_target() {
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LENGTH));
        let label = "a".repeat(64);
        let long_label = format!("https://example.{label}/");
        let long_host = format!("https://{}.example/", "a.".repeat(96));
        let cases = [
            "",
            "example.com",
            "/relative/path",
            "//example.com/x",
            "http:/example.com/x",
            "javascript:alert(1)",
            "JavaScript:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "file:///etc/passwd",
            "ftp://example.com/file",
            "mailto:someone@example.com",
            "https://user:secret@example.com/",
            "https://user@example.com/",
            "https://exa mple.com/",
            " https://example.com/",
            "https://example.com/\u{0}",
            "https://example.com/\n",
            "https://example.com/\u{7f}",
            "https://",
            "http://exa_mple..com:99999/",
            "https://example.com:123456/",
            "https://bücher.example/",
            "https://example.com/ä",
            "https://example.com/a|b",
            "https://example.com/?x=[1]",
            "https://example.com/?q='1'",
            "https://example.com/100%",
            "https://example.com/a#b#c",
            "http://[2001:db8::1]:8080/s",
            "http://1.2.3.4.5/",
            "http://256.1.1.1/",
            "http://example.0x1/",
            "http://xn--zz.example/",
            long_label.as_str(),
            long_host.as_str(),
            long.as_str(),
        ];
        for input in cases {
            assert!(TargetUrl::parse(input).is_err(), "accepted {input:?}");
        }
    }

    #[test]
    fn refusals_say_what_to_change() {
        let reason = |input: &str| TargetUrl::parse(input).unwrap_err();
        assert!(reason("https://example.com/a|b").contains("%7C"));
        assert!(reason("https://example.com/ä").contains("ASCII"));
        assert!(reason("https://example.com/?q='1'").contains("%27"));
        assert!(reason("http://[::1]/").contains("IPv6"));
        assert!(reason("http:/example.com").contains("http://"));
    }

    mod properties {
        use chrono::Utc;
        use contracts::{encode, Envelope, UrlCreated};
        use proptest::prelude::*;

        use super::*;

        /// Strings of the published grammar, bounded in length.
        fn in_grammar() -> impl Strategy<Value = String> {
            proptest::string::string_regex(URL_GRAMMAR)
                .expect("the grammar is a regex proptest can generate from")
                .prop_filter("at most the maximum length", |s| s.len() <= MAX_URL_LENGTH)
                // The one rule beyond the grammar, stated in the document:
                // an `xn--` label must be valid punycode (tested apart).
                .prop_filter("no punycode label", |s| {
                    !s.to_ascii_lowercase().contains("xn--")
                })
        }

        /// URL-ish inputs with every kind of character in every part.
        fn urlish() -> impl Strategy<Value = String> {
            (
                prop_oneof!["http", "https", "HTTP", "HtTpS"],
                "([a-zA-Z0-9-]{1,10}\\.){0,2}[a-zA-Zü0-9]{1,8}",
                proptest::option::of(0u32..70_000),
                "(/\\PC{0,12}){0,3}",
                proptest::option::of("\\PC{0,20}"),
                proptest::option::of("\\PC{0,12}"),
            )
                .prop_map(|(scheme, host, port, path, query, fragment)| {
                    let port = port.map(|p| format!(":{p}")).unwrap_or_default();
                    let query = query.map(|q| format!("?{q}")).unwrap_or_default();
                    let fragment = fragment.map(|f| format!("#{f}")).unwrap_or_default();
                    format!("{scheme}://{host}{port}{path}{query}{fragment}")
                })
        }

        fn publishable(target: &TargetUrl) -> Result<(), TestCaseError> {
            let data = UrlCreated {
                url_id: uuid::Uuid::now_v7(),
                short_code: "abc".into(),
                original_url: target.as_str().to_owned(),
                target_host: target.host().to_owned(),
                created_at: Utc::now(),
                expires_at: None,
            };
            encode(&Envelope::new("shortener", Utc::now(), data))
                .map_err(|e| TestCaseError::fail(format!("{}: {e}", target.as_str())))?;
            // The v1 upcaster derives the host the same way the shortener does.
            let derived = UrlCreated::host_of(target.as_str());
            prop_assert_eq!(derived.as_deref(), Some(target.host()));
            // Normalising is idempotent: a stored target parses to itself.
            prop_assert_eq!(&TargetUrl::parse(target.as_str()).unwrap(), target);
            Ok(())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            /// The document's pattern promises acceptance: everything it
            /// matches is accepted, and is a valid event field.
            #[test]
            fn every_string_of_the_grammar_is_accepted(input in in_grammar()) {
                let target = TargetUrl::parse(&input)
                    .map_err(|e| TestCaseError::fail(format!("{input:?}: {e}")))?;
                prop_assert!(target.as_str().len() <= input.len());
                publishable(&target)?;
            }

            /// ... and refusal: whatever is accepted matches it.
            #[test]
            fn every_accepted_url_matches_the_grammar_and_is_publishable(input in urlish()) {
                if let Ok(target) = TargetUrl::parse(&input) {
                    prop_assert!(URL_REGEX.is_match(&input), "{:?}", input);
                    publishable(&target)?;
                }
            }

            #[test]
            fn arbitrary_text_never_panics_and_accepted_text_is_publishable(input in "\\PC{0,80}") {
                if let Ok(target) = TargetUrl::parse(&input) {
                    publishable(&target)?;
                }
            }
        }
    }
}
