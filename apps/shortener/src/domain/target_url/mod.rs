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
#[derive(Debug, Clone, PartialEq, Eq)]
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
                ))
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
            // What people paste from a browser.
            (
                "https://de.wikipedia.org/wiki/Straße",
                "https://de.wikipedia.org/wiki/Stra%C3%9Fe",
                "de.wikipedia.org",
            ),
            (
                "https://пример.рф/путь",
                "https://xn--e1afmkfd.xn--p1ai/%D0%BF%D1%83%D1%82%D1%8C",
                "xn--e1afmkfd.xn--p1ai",
            ),
            (
                "https://fonts.googleapis.com/css?family=Roboto|Open+Sans",
                "https://fonts.googleapis.com/css?family=Roboto%7COpen+Sans",
                "fonts.googleapis.com",
            ),
            (
                "https://Bücher.example/katalog?q=ä",
                "https://xn--bcher-kva.example/katalog?q=%C3%A4",
                "xn--bcher-kva.example",
            ),
            (
                "https://example.com/?x=[1]&y={2}^",
                "https://example.com/?x=%5B1%5D&y=%7B2%7D%5E",
                "example.com",
            ),
            (
                "https://example.com/?q='1'",
                "https://example.com/?q=%271%27",
                "example.com",
            ),
            (
                "https://example.com/search?q=two words#part two",
                "https://example.com/search?q=two%20words#part%20two",
                "example.com",
            ),
            (
                "https://example.com/a|b/100%/c#x#y",
                "https://example.com/a%7Cb/100%25/c#x%23y",
                "example.com",
            ),
            (
                "  https://example.com/docs ",
                "https://example.com/docs",
                "example.com",
            ),
            (
                "https://my_host.example/",
                "https://my_host.example/",
                "my_host.example",
            ),
            (
                "https://例え.テスト/ページ",
                "https://xn--r8jz45g.xn--zckzah/%E3%83%9A%E3%83%BC%E3%82%B8",
                "xn--r8jz45g.xn--zckzah",
            ),
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
        let long_idn_host = format!("https://{}.example/", "ü".repeat(MAX_IDN_PART_CHARS + 1));
        let long_idn_label = format!("https://example.{}/", "ü".repeat(MAX_IDN_PART_CHARS + 1));
        let encoded_too_long = format!("https://example.com/{}", "ä".repeat(1100));
        let cases = [
            "",
            "   ",
            "example.com",
            "/relative/path",
            "//example.com/x",
            "http:/example.com/x",
            "https:example.com/x",
            "javascript:alert(1)",
            "JavaScript:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "file:///etc/passwd",
            "ftp://example.com/file",
            "mailto:someone@example.com",
            "https://user:secret@example.com/",
            "https://user@example.com/",
            "https://exa mple.com/",
            "https://example.com/\u{0}",
            "https://example.com/\n",
            "\thttps://example.com/",
            "https://example.com/\u{7f}",
            "https://example.com/\u{85}",
            "https://",
            "http://exa_mple..com:99999/",
            "https://example.com:123456/",
            "http://[2001:db8::1]:8080/s",
            "http://1.2.3.4.5/",
            "http://256.1.1.1/",
            "http://127.1/",
            "http://example.0x1/",
            "http://xn--zz.example/",
            "https://مثال.example/",
            "https://😀.example/",
            "https://exa%6Dple.com/",
            "https://example.com\\path",
            long_label.as_str(),
            long_host.as_str(),
            long_idn_host.as_str(),
            long_idn_label.as_str(),
            encoded_too_long.as_str(),
            long.as_str(),
        ];
        for input in cases {
            assert!(TargetUrl::parse(input).is_err(), "accepted {input:?}");
        }
    }

    #[test]
    fn refusals_say_what_to_change() {
        let reason = |input: &str| TargetUrl::parse(input).unwrap_err();
        assert!(reason("https://user:pw@example.com/").contains("user name or password"));
        assert!(reason("javascript:alert(1)").contains("only http and https"));
        assert!(reason("https://exa mple.com/").contains("not a valid URL"));
        assert!(reason("https://example.com/\u{7}").contains("control characters"));
        assert!(reason("http://[::1]/").contains("IPv6"));
        assert!(reason("http:/example.com").contains("http://"));
        assert!(reason("https://مثال.example/").contains("punycode"));
        let long_idn_host = format!("https://{}.example/", "ü".repeat(MAX_IDN_PART_CHARS + 1));
        assert!(reason(&long_idn_host).contains("at most 20"));
        let encoded_too_long = format!("https://example.com/{}", "ä".repeat(1100));
        assert!(reason(&encoded_too_long).contains("once normalised"));
    }

    /// Every letter a host may be written in passes IDNA, at the start of
    /// a label, inside one, and as a whole last label: the grammar promises
    /// no letter the URL parser refuses.
    #[test]
    fn every_host_letter_of_the_grammar_is_accepted() {
        let class = Regex::new(concat!("^[", idn_letters!(), "]$")).unwrap();
        let letters = (0x80..=0xFFFF_u32)
            .filter_map(char::from_u32)
            .filter(|c| class.is_match(c.encode_utf8(&mut [0; 4])));
        let mut count = 0;
        for c in letters {
            for input in [
                format!("https://{c}a.example/"),
                format!("https://a{c}.example/"),
                format!("https://example.{c}/"),
            ] {
                let target = TargetUrl::parse(&input).unwrap_or_else(|e| panic!("{input}: {e}"));
                assert!(target.host().is_ascii(), "{input}");
            }
            count += 1;
        }
        assert!(count > 30_000, "{count} letters");
    }

    /// The longest punycode a host of the grammar's non-ASCII letters can
    /// take still fits the events' `target_host`.
    #[test]
    fn the_longest_idn_host_fits_the_events() {
        let far_apart = ['À', '힣', 'ſ', '鿿', 'Ѐ', 'ぁ'];
        let label = |n: usize| -> String { far_apart.iter().cycle().take(n).collect() };
        for host in [
            format!("{}.{}", label(20), label(20)),
            format!("{}{}", "ü.".repeat(10), label(20)),
            format!("{}.{}", "힣.".repeat(10), label(20)),
        ] {
            let target = TargetUrl::parse(&format!("https://{host}/"))
                .unwrap_or_else(|e| panic!("{host}: {e}"));
            assert!(target.host().len() <= 254, "{}", target.host());
        }
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
                .prop_filter("at most the maximum length", |s| {
                    s.chars().count() <= MAX_URL_LENGTH
                })
                // The two rules beyond the grammar, stated in the document:
                // an `xn--` label must be valid punycode (tested apart), and
                // the normalised target is at most MAX_URL_LENGTH long.
                .prop_filter("no punycode label", |s| {
                    !s.to_ascii_lowercase().contains("xn--")
                })
                .prop_filter("short enough once percent-encoded", |s| {
                    s.len() * 3 <= MAX_URL_LENGTH
                })
        }

        /// URL-ish inputs with every kind of character in every part.
        fn urlish() -> impl Strategy<Value = String> {
            (
                prop_oneof![" ?http", "https", "HTTP", "HtTpS"],
                "([a-zA-Z0-9_-]{1,10}\\.){0,2}[a-zA-Zü0-9]{1,8}|\\PC{1,12}",
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
            prop_assert!(target.as_str().is_ascii(), "{}", target.as_str());
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
                if input.trim_matches(' ').bytes().all(|b| b.is_ascii_graphic()) {
                    // Printable ASCII grows only by the escapes of the few
                    // characters RFC 3986 does not allow.
                    let escaped = input.bytes().filter(|b| b"\"<>`'{}[]|^\\%#".contains(b)).count();
                    prop_assert!(target.as_str().len() <= input.len() + 2 * escaped);
                }
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
