//! What analytics derives from a click: browser, OS and device from the user
//! agent (`woothee`, a maintained cross-language classifier), a bot flag
//! (crawlers and link-preview fetchers), and the referrer reduced to its host.

use std::sync::{Arc, LazyLock};

use moka::sync::Cache;

/// The derived, low-cardinality facts of one click.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    pub browser: String,
    pub os: String,
    /// `desktop`, `mobile`, `tablet`, `bot`, `other` or `unknown`.
    pub device: String,
    pub is_bot: bool,
}

static PARSER: LazyLock<woothee::parser::Parser> = LazyLock::new(woothee::parser::Parser::new);

/// Substrings (lower case) of user agents that fetch a link without a human
/// behind it: link unfurlers of chat apps and social networks, monitors,
/// HTTP libraries. `woothee` knows the big search crawlers already.
const BOT_MARKERS: &[&str] = &[
    "bot",
    "crawler",
    "spider",
    "slurp",
    "facebookexternalhit",
    "facebookcatalog",
    "embedly",
    "quora link preview",
    "skypeuripreview",
    "whatsapp",
    "vkshare",
    "pinterest",
    "bitlybot",
    "outbrain",
    "google-inspectiontool",
    "googleother",
    "headlesschrome",
    "lighthouse",
    "preview",
    "curl/",
    "wget/",
    "python-requests",
    "python-urllib",
    "go-http-client",
    "okhttp",
    "java/",
    "libwww-perl",
    "httpclient",
    "axios/",
    "node-fetch",
    "uptime",
    "monitor",
];

fn title_or_unknown(value: &str) -> String {
    if value.is_empty() || value == woothee::woothee::VALUE_UNKNOWN {
        "unknown".to_owned()
    } else {
        value.to_owned()
    }
}

/// User agents recently classified. Clicks repeat a small set of user
/// agents (the current browsers on the common systems, the big crawlers), so
/// most clicks skip the classifier, which is the costliest step of decoding
/// a click; bounded, so a flood of distinct agents costs memory only up to
/// the limit (about 3 MB).
static CLASSIFIED: LazyLock<Cache<String, Arc<Agent>>> = LazyLock::new(|| Cache::new(10_000));

/// Classifies a user agent. An absent or empty one is `unknown`, not a bot:
/// the shortener does not always see one, and guessing would skew the split.
pub fn agent(user_agent: Option<&str>) -> Agent {
    let Some(ua) = user_agent.map(str::trim).filter(|u| !u.is_empty()) else {
        return Agent {
            browser: "unknown".into(),
            os: "unknown".into(),
            device: "unknown".into(),
            is_bot: false,
        };
    };
    if let Some(known) = CLASSIFIED.get(ua) {
        return Agent::clone(&known);
    }
    let classified = classify(ua);
    CLASSIFIED.insert(ua.to_owned(), Arc::new(classified.clone()));
    classified
}

fn classify(ua: &str) -> Agent {
    let lower = ua.to_ascii_lowercase();
    let parsed = PARSER.parse(ua);
    let category = parsed.as_ref().map(|p| p.category).unwrap_or_default();
    let is_bot = category == "crawler" || BOT_MARKERS.iter().any(|m| lower.contains(m));
    let device = if is_bot {
        "bot"
    } else if lower.contains("ipad") || lower.contains("tablet") {
        "tablet"
    } else {
        match category {
            "pc" => "desktop",
            "smartphone" | "mobilephone" => "mobile",
            "appliance" | "misc" => "other",
            _ => "unknown",
        }
    };
    Agent {
        browser: title_or_unknown(parsed.as_ref().map(|p| p.name).unwrap_or_default()),
        os: title_or_unknown(parsed.as_ref().map(|p| p.os).unwrap_or_default()),
        device: device.to_owned(),
        is_bot,
    }
}

/// The referrer's host, lower case, without a trailing dot; empty for no
/// referrer, a referrer that is not an absolute URL with a host, or the
/// `android-app://`-style pseudo URLs' package names kept as they are.
pub fn referrer_host(referrer: Option<&str>) -> String {
    referrer
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .and_then(|r| url::Url::parse(r).ok())
        .and_then(|u| {
            u.host_str()
                .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
        })
        .unwrap_or_default()
}

/// A country code as stored: upper-case ISO 3166-1 alpha-2, or empty.
pub fn country(country: Option<&str>) -> String {
    country
        .map(str::trim)
        .filter(|c| c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic()))
        .map(str::to_ascii_uppercase)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIREFOX_LINUX: &str =
        "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
    const SAFARI_IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
    const SAFARI_IPAD: &str = "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
    const CHROME_WINDOWS: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36";

    #[test]
    fn browsers_os_and_devices() {
        let firefox = agent(Some(FIREFOX_LINUX));
        assert_eq!(
            (
                firefox.browser.as_str(),
                firefox.os.as_str(),
                firefox.device.as_str()
            ),
            ("Firefox", "Linux", "desktop")
        );
        assert!(!firefox.is_bot);
        let iphone = agent(Some(SAFARI_IPHONE));
        assert_eq!(
            (
                iphone.browser.as_str(),
                iphone.os.as_str(),
                iphone.device.as_str()
            ),
            ("Safari", "iPhone", "mobile")
        );
        assert_eq!(agent(Some(SAFARI_IPAD)).device, "tablet");
        let chrome = agent(Some(CHROME_WINDOWS));
        assert_eq!(
            (chrome.browser.as_str(), chrome.os.as_str()),
            ("Chrome", "Windows 10")
        );
    }

    #[test]
    fn a_remembered_agent_is_classified_as_the_first_time() {
        for ua in [FIREFOX_LINUX, SAFARI_IPAD, "curl/8.5.0", "something odd"] {
            let first = agent(Some(ua));
            assert_eq!(first, classify(ua));
            assert_eq!(agent(Some(ua)), first, "{ua}");
            assert_eq!(agent(Some(&format!("  {ua} "))), first, "trimmed first");
        }
    }

    #[test]
    fn crawlers_and_link_previews_are_bots() {
        for ua in [
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
            "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
            "Twitterbot/1.0",
            "WhatsApp/2.23.20.0",
            "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
            "TelegramBot (like TwitterBot)",
            "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)",
            "curl/8.5.0",
        ] {
            let a = agent(Some(ua));
            assert!(a.is_bot, "{ua}");
            assert_eq!(a.device, "bot", "{ua}");
        }
    }

    #[test]
    fn missing_agents_are_unknown_humans() {
        let a = agent(None);
        assert_eq!(
            (a.browser.as_str(), a.device.as_str(), a.is_bot),
            ("unknown", "unknown", false)
        );
        assert_eq!(agent(Some("  ")), a);
        assert_eq!(agent(Some("something odd")).browser, "unknown");
    }

    #[test]
    fn referrers_become_hosts() {
        assert_eq!(
            referrer_host(Some("https://News.Example.COM./a?b=c")),
            "news.example.com"
        );
        assert_eq!(referrer_host(Some("http://[::1]:8080/x")), "[::1]");
        assert_eq!(referrer_host(Some("not a url")), "");
        assert_eq!(referrer_host(Some("")), "");
        assert_eq!(referrer_host(None), "");
    }

    #[test]
    fn countries_are_upper_case_codes() {
        assert_eq!(country(Some("de")), "DE");
        assert_eq!(country(Some("DEU")), "");
        assert_eq!(country(None), "");
    }
}
