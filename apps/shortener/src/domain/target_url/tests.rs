//! What is accepted, how it is normalised, and the grammar proven in both
//! directions.

use super::*;

/// What is sent, what is stored, and the host the events carry.
const NORMALISED: &[(&str, &str, &str)] = &[
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

#[test]
fn normalises_what_it_accepts() {
    for &(input, url, host) in NORMALISED {
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
        let target =
            TargetUrl::parse(&format!("https://{host}/")).unwrap_or_else(|e| panic!("{host}: {e}"));
        assert!(target.host().len() <= 254, "{}", target.host());
    }
}

mod properties {
    use chrono::Utc;
    use contracts::{Envelope, UrlCreated, encode};
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
