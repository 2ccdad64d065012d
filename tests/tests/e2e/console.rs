//! The console in a real browser: headless Chromium driven through
//! chromedriver (WebDriver, with `fantoccini`), against the real console,
//! shortener, analytics and nats-server processes.
//!
//! The console reaches both services through proxies that check every API
//! answer it receives against that service's OpenAPI document (the
//! console's contract tests as a consumer; see `openapi_proxy`).
//!
//! With `CONSOLE_SCREENSHOTS_DIR` set, the test also saves the screenshots
//! of docs/img/ there (`make screenshots`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use system_tests::Service;
use system_tests::process::{Supervised, find_executable, free_port, http_get_with_key, port_open};

use crate::console_http::{console_call, csrf_in, import_csv, set_cookie, sign_in, text_by_id};
use crate::openapi_proxy::OpenApiProxy;
use crate::system::System;

/// How long the browser may take to show a click (the bound).
const CLICK_VISIBLE_WITHIN: Duration = Duration::from_secs(10);

fn executable(name: &str, package: &str) -> Option<PathBuf> {
    let found = find_executable(name, &format!("{}_BIN", name.to_ascii_uppercase()), &[]);
    if found.is_none() {
        assert!(
            !system_tests::backends_required(),
            "{name} is not installed (apt-get install {package})"
        );
        eprintln!("SKIPPED: {name} is not installed");
    }
    found
}

/// chromedriver on a free port, stopped (by PID) when dropped.
struct Driver {
    _process: Supervised,
    url: String,
}

impl Driver {
    fn start(binary: &Path, log_dir: &Path) -> Self {
        let port = free_port();
        let mut process = Supervised::start(
            "chromedriver",
            binary,
            vec![format!("--port={port}"), "--allowed-ips=127.0.0.1".into()],
            log_dir.join("chromedriver.log"),
        )
        .expect("chromedriver starts");
        process
            // (It answers HTTP/1.1 only, so the port is the readiness.)
            .wait_until(Duration::from_secs(20), || port_open(port))
            .expect("chromedriver answers");
        Self {
            _process: process,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    async fn browser(&self, chromium: &Path, profile: &Path) -> Client {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                // Downloads land in the profile's directory, without asking.
                "prefs": {
                    "download.default_directory": profile.join("downloads"),
                    "download.prompt_for_download": false,
                },
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--disable-component-update",
                    "--no-first-run", "--hide-scrollbars", "--window-size=1280,1000",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("a WebDriver session")
    }
}

/// The page's element matching `css`.
async fn find(browser: &Client, css: &str) -> fantoccini::elements::Element {
    let found = browser
        .wait()
        .at_most(Duration::from_secs(5))
        .for_element(Locator::Css(css))
        .await;
    match found {
        Ok(element) => element,
        Err(e) => {
            let source = browser.source().await.unwrap_or_default();
            panic!("no {css} on {}: {e}\n{source}", path_of(browser).await)
        }
    }
}

/// Types `text` into the field `css`, replacing what it held.
async fn fill(browser: &Client, css: &str, text: &str) {
    let field = find(browser, css).await;
    field.clear().await.expect("the field clears");
    field.send_keys(text).await.expect("the field takes text");
}

/// Clicks the button whose text is `text`, within `scope` (an XPath), and
/// waits for the page its form leads to.
async fn press(browser: &Client, scope: &str, text: &str) {
    let button = browser
        .find(Locator::XPath(&format!(
            "{scope}//button[normalize-space()='{text}']"
        )))
        .await
        .unwrap_or_else(|e| panic!("no button {text:?}: {e}"));
    script(browser, "window.__before_submit = true;").await;
    button.click().await.expect("the button clicks");
    let clicked = Instant::now();
    loop {
        let loaded = browser
            .execute(
                "return window.__before_submit === undefined && document.readyState === 'complete';",
                vec![],
            )
            .await
            .unwrap_or(Value::Bool(false));
        if loaded == Value::Bool(true) {
            return;
        }
        assert!(
            clicked.elapsed() < Duration::from_secs(15),
            "{text:?} led to no new page"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn path_of(browser: &Client) -> String {
    let url = browser.current_url().await.expect("a URL");
    let query = url.query().filter(|q| !q.is_empty());
    format!(
        "{}{}",
        url.path(),
        query.map(|q| format!("?{q}")).unwrap_or_default()
    )
}

async fn text_of(browser: &Client, css: &str) -> String {
    find(browser, css).await.text().await.expect("text")
}

async fn value_of(browser: &Client, css: &str) -> String {
    find(browser, css)
        .await
        .prop("value")
        .await
        .expect("a value")
        .unwrap_or_default()
}

async fn script(browser: &Client, source: &str) -> Value {
    browser
        .execute(source, vec![])
        .await
        .expect("the script runs")
}

/// Every visible form field has a visible `<label>`, and the page fits
/// the window's width.
async fn page_is_well_formed(browser: &Client, what: &str) {
    let unlabelled = script(
        browser,
        "return [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
            .filter(f => f.getClientRects().length > 0)
            .filter(f => !f.labels || f.labels.length === 0
                || [...f.labels].every(l => l.offsetParent === null && getComputedStyle(l).position !== 'fixed'))
            .map(f => f.outerHTML);",
    )
    .await;
    assert_eq!(
        unlabelled,
        json!([]),
        "{what}: fields without a visible label"
    );
    let overflow = script(
        browser,
        "return document.documentElement.scrollWidth - window.innerWidth;",
    )
    .await;
    assert!(
        overflow.as_i64().unwrap_or(1) <= 0,
        "{what}: wider than the window by {overflow} px"
    );
}

async fn log_in(browser: &Client, console: &str, key: &str) {
    browser
        .goto(&format!("{console}/login"))
        .await
        .expect("the login page");
    fill(browser, "#key", key).await;
    press(browser, "", "Log in").await;
    let path = path_of(browser).await;
    if path != "/links" {
        panic!(
            "not signed in (at {path}):\n{}",
            browser.source().await.unwrap_or_default()
        );
    }
}

/// Reloads the System page until the consistency monitor finds analytics
/// in step with the shortener (the bound: 10 s).
async fn system_in_step(browser: &Client, base: &str) {
    let started = Instant::now();
    loop {
        browser.goto(&format!("{base}/system")).await.unwrap();
        let heading = text_of(browser, "#consistency h2").await;
        if heading.contains("in step") {
            assert_eq!(text_of(browser, "#consistency-missing").await, "0");
            assert_eq!(text_of(browser, "#consistency-lag").await, "0.0");
            return;
        }
        assert!(
            started.elapsed() < CLICK_VISIBLE_WITHIN,
            "analytics' copies not in step: {heading}\n{}",
            text_of(browser, "#consistency").await
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn log_out(browser: &Client) {
    press(browser, "//header", "Log out").await;
    assert_eq!(path_of(browser).await, "/login");
}

fn screenshots_wanted() -> bool {
    std::env::var_os("CONSOLE_SCREENSHOTS_DIR").is_some()
}

/// Visits from a mix of browsers and referrers; how many.
fn visitor_mix(system: &System, code: &str) -> usize {
    let agents = [
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    ];
    let referrers = [
        "https://news.ycombinator.com/item?id=1",
        "https://www.google.com/",
        "https://twitter.com/",
        "https://mail.example.com/",
    ];
    let mut visits = 0;
    for n in 0..48 {
        let answer = system.follow_as(code, agents[n % 4], referrers[(n / 3) % 4]);
        assert_eq!(answer.status, 302);
        visits += 1;
    }
    visits
}

async fn screenshot(browser: &Client, name: &str) {
    let Some(dir) = std::env::var_os("CONSOLE_SCREENSHOTS_DIR") else {
        return;
    };
    // The whole page: the window as tall as the document, for the shot.
    let height = script(browser, "return document.documentElement.scrollHeight;").await;
    let height = height.as_u64().unwrap_or(1000).clamp(600, 2400) as u32;
    browser
        .set_window_size(1280, height)
        .await
        .expect("the window resizes");
    let png = browser.screenshot().await.expect("a screenshot");
    browser
        .set_window_size(1280, 1000)
        .await
        .expect("the window resizes");
    std::fs::create_dir_all(&dir).expect("the screenshot directory");
    std::fs::write(Path::new(&dir).join(name), png).expect("the screenshot is written");
}

/// The console in front of `system`'s services, through proxies that
/// check every API answer against the answering service's document.
pub struct ProxiedConsole {
    // Dropped first: the console before the proxies it calls.
    pub console: Service,
    pub shortener: OpenApiProxy,
    pub analytics: OpenApiProxy,
}

impl ProxiedConsole {
    pub fn start(system: &System) -> Self {
        let shortener = OpenApiProxy::start(
            system.shortener.port(),
            document_of(&system.shortener, &system.key),
        )
        .expect("the shortener's contract proxy");
        let analytics = OpenApiProxy::start(
            system.analytics.port(),
            document_of(&system.analytics, &system.key),
        )
        .expect("analytics' contract proxy");
        let console = Service::start(
            "console",
            &[
                ("CONSOLE_SHORTENER_URL", shortener.url()),
                ("CONSOLE_ANALYTICS_URL", analytics.url()),
                ("CONSOLE_ANALYTICS_API_KEY", system.key.clone()),
                (
                    "CONSOLE_SESSION_SECRET",
                    "a test secret of at least 32 bytes!!".into(),
                ),
            ],
            system.dir.path(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        Self {
            console,
            shortener,
            analytics,
        }
    }

    /// Every answer the console received matched its service's document.
    pub fn assert_contracts_held(&self) {
        for (name, proxy) in [
            ("shortener", &self.shortener),
            ("analytics", &self.analytics),
        ] {
            let findings = proxy.findings();
            assert!(
                findings.violations.is_empty(),
                "{name} answers that break its document:\n{}",
                findings.violations.join("\n")
            );
        }
        assert!(
            !self.shortener.findings().checked.is_empty(),
            "the console called the shortener's API"
        );
    }
}

fn document_of(service: &Service, key: &str) -> Value {
    let (status, body) =
        http_get_with_key(service.port(), "/api/v1/openapi.json", key).expect("the document");
    assert_eq!(status, 200);
    serde_json::from_str(&body).expect("the document is JSON")
}

/// Everything a browser test needs: Chromium, its driver, the system and
/// the console in front of it. `None` (the test skips) where something is
/// not installed outside CI.
fn browser_rig() -> Option<(PathBuf, Driver, System, ProxiedConsole)> {
    let (Some(chromium), Some(chromedriver)) = (
        executable("chromium", "chromium"),
        executable("chromedriver", "chromium-driver"),
    ) else {
        return None;
    };
    let system = System::start()?;
    let proxied = ProxiedConsole::start(&system);
    let driver = Driver::start(&chromedriver, system.dir.path());
    Some((chromium, driver, system, proxied))
}

#[test]
fn people_shorten_find_edit_and_delete_links_in_the_console() {
    let Some((chromium, driver, system, proxied)) = browser_rig() else {
        return;
    };
    let base = proxied.console.url();
    // Links of the admin's that the search must leave out.
    for n in 0..3 {
        let other = system.post_link(&json!({ "url": format!("https://example.org/other/{n}"), "title": format!("Other {n}"), "tags": ["misc"] }));
        assert_eq!(other.status, 201, "{}", other.body);
    }

    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let browser = driver
            .browser(&chromium, &system.dir.path().join("profile"))
            .await;

        // Signed out, every page leads to the login.
        browser.goto(&format!("{base}/links")).await.unwrap();
        assert_eq!(path_of(&browser).await, "/login");
        page_is_well_formed(&browser, "login").await;
        fill(&browser, "#key", "not-a-key").await;
        press(&browser, "", "Log in").await;
        assert!(text_of(&browser, ".error").await.contains("not valid"));

        // Log in; create a link with a title and tags.
        log_in(&browser, &base, &system.key).await;
        page_is_well_formed(&browser, "links").await;
        find(&browser, "header nav a[href='/links/new']")
            .await
            .click()
            .await
            .unwrap();
        page_is_well_formed(&browser, "new link").await;
        fill(&browser, "#url", "https://example.com/docs/q3").await;
        fill(&browser, "#alias", "docs-q3").await;
        fill(&browser, "#title", "Q3 launch docs").await;
        fill(&browser, "#tags", "docs, q3-launch").await;
        press(&browser, "", "Shorten").await;
        assert_eq!(path_of(&browser).await, "/links/docs-q3?created=1");

        // Its short URL, a copy button (JS) and its QR code.
        let short_url = value_of(&browser, "#short-url").await;
        assert!(short_url.ends_with("/docs-q3"), "{short_url}");
        assert_eq!(
            script(
                &browser,
                "return document.querySelector('[data-copy]').hidden;"
            )
            .await,
            json!(false),
            "the copy button shows with JS"
        );
        let qr_width = script(
            &browser,
            "const img = document.getElementById('qr');
             return img.complete ? img.naturalWidth : -1;",
        )
        .await;
        assert!(
            qr_width.as_i64().unwrap_or(0) > 0,
            "the QR code loads: {qr_width}"
        );
        page_is_well_formed(&browser, "link page").await;
        screenshot(&browser, "console-new-link.png").await;

        // Followed by a fresh client, the click shows on the link page
        // within 10 s.
        let followed = system.follow("docs-q3", "");
        assert_eq!(followed.status, 302);
        assert_eq!(
            followed.header("location"),
            Some("https://example.com/docs/q3")
        );
        let followed_at = Instant::now();
        loop {
            browser
                .goto(&format!("{base}/links/docs-q3"))
                .await
                .unwrap();
            let clicks = browser.find(Locator::Css("#total-clicks b")).await.ok();
            let clicks = match clicks {
                Some(element) => element.text().await.unwrap_or_default(),
                None => String::new(),
            };
            if clicks == "1" {
                break;
            }
            assert!(
                followed_at.elapsed() < CLICK_VISIBLE_WITHIN,
                "the click did not show within {CLICK_VISIBLE_WITHIN:?} (clicks: {clicks:?})"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        assert_eq!(text_of(&browser, "#unique-visitors b").await, "1");
        assert!(text_of(&browser, "#browsers").await.contains("Firefox"));
        assert!(
            text_of(&browser, "#top-referrers")
                .await
                .contains("duckduckgo.com")
        );
        let bars = script(
            &browser,
            "return document.querySelectorAll('#clicks-chart .bar').length;",
        )
        .await;
        assert_eq!(bars, json!(1), "one bucket with clicks");
        // The range picker: 30 days per day.
        find(&browser, "#range option[value='30d']")
            .await
            .click()
            .await
            .unwrap();
        // The script submits a change of range at once; without it, Show does.
        let chosen = Instant::now();
        while !path_of(&browser).await.contains("range=30d") {
            if chosen.elapsed() > Duration::from_secs(3) {
                press(&browser, "//section[@id='stats']", "Show").await;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(path_of(&browser).await.contains("range=30d"));
        assert_eq!(value_of(&browser, "#bucket").await, "day");
        assert_eq!(text_of(&browser, "#total-clicks b").await, "1");
        if screenshots_wanted() {
            // A link page worth looking at: visitors of several kinds.
            let visits = visitor_mix(&system, "docs-q3");
            let expected = (visits + 1).to_string();
            let started = Instant::now();
            loop {
                browser
                    .goto(&format!("{base}/links/docs-q3?range=24h"))
                    .await
                    .unwrap();
                if text_of(&browser, "#total-clicks b").await == expected {
                    break;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "the visits did not arrive"
                );
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            screenshot(&browser, "console-link-stats.png").await;
        }

        // Edit the target.
        fill(&browser, "#url", "https://example.com/docs/q3-final").await;
        press(&browser, "//section[@id='edit']", "Save").await;
        assert_eq!(path_of(&browser).await, "/links/docs-q3?saved=1");
        assert!(text_of(&browser, ".flash").await.contains("Saved"));
        assert_eq!(
            system.follow("docs-q3", "").header("location"),
            Some("https://example.com/docs/q3-final")
        );
        // A refused change names its field and keeps what was typed.
        fill(&browser, "#tags", "Not OK!").await;
        press(&browser, "//section[@id='edit']", "Save").await;
        assert!(!text_of(&browser, "#tags-error").await.is_empty());
        assert_eq!(value_of(&browser, "#tags").await, "Not OK!");

        // Search by tag, and by text.
        browser.goto(&format!("{base}/links")).await.unwrap();
        fill(&browser, "#tag", "q3-launch").await;
        press(&browser, "", "Search").await;
        let rows = text_of(&browser, "#links tbody").await;
        assert!(
            rows.contains("docs-q3") && rows.contains("Q3 launch docs"),
            "{rows}"
        );
        assert!(!rows.contains("Other"), "{rows}");
        browser.goto(&format!("{base}/links")).await.unwrap();
        fill(&browser, "#q", "OTHER 1").await;
        press(&browser, "", "Search").await;
        let rows = text_of(&browser, "#links tbody").await;
        assert!(
            rows.contains("Other 1") && !rows.contains("docs-q3"),
            "{rows}"
        );
        browser.goto(&format!("{base}/links")).await.unwrap();
        screenshot(&browser, "console-links.png").await;

        // An author key, made on the Keys page, sees none of the admin's links.
        find(&browser, "header nav a[href='/keys']")
            .await
            .click()
            .await
            .unwrap();
        page_is_well_formed(&browser, "keys").await;
        fill(&browser, "#name", "alice").await;
        press(&browser, "", "Create key").await;
        let alice = value_of(&browser, "#new-key-value").await;
        assert_eq!(alice.len(), 64, "the new key is shown once: {alice:?}");
        browser.goto(&format!("{base}/keys")).await.unwrap();
        assert!(
            !browser.source().await.unwrap().contains(&alice),
            "and only once"
        );
        log_out(&browser).await;
        log_in(&browser, &base, &alice).await;
        assert!(
            find(&browser, "#no-links")
                .await
                .text()
                .await
                .unwrap()
                .contains("No links yet")
        );
        assert!(
            browser
                .find(Locator::Css("header nav a[href='/keys']"))
                .await
                .is_err()
        );
        browser
            .goto(&format!("{base}/links/docs-q3"))
            .await
            .unwrap();
        assert!(
            text_of(&browser, "h1").await.contains("Not found"),
            "another author's link is unknown"
        );
        browser.goto(&format!("{base}/keys")).await.unwrap();
        assert!(text_of(&browser, "h1").await.contains("Not allowed"));
        // Alice's own link is hers to see; what she pastes from her
        // browser's address bar is taken as it is, and the link page shows
        // the form it was stored in.
        for target in [
            "https://example.net/alice",
            "https://пример.рф/путь?q=two words",
        ] {
            browser.goto(&format!("{base}/links/new")).await.unwrap();
            fill(&browser, "#url", target).await;
            press(&browser, "", "Shorten").await;
            let path = path_of(&browser).await;
            assert!(
                path.ends_with("?created=1"),
                "{path}: {}",
                browser.source().await.unwrap()
            );
        }
        assert_eq!(
            text_of(&browser, ".target").await,
            "→ https://xn--e1afmkfd.xn--p1ai/%D0%BF%D1%83%D1%82%D1%8C?q=two%20words"
        );
        log_out(&browser).await;

        // Delete, with a confirmation.
        log_in(&browser, &base, &system.key).await;
        browser
            .goto(&format!("{base}/links/docs-q3"))
            .await
            .unwrap();
        press(&browser, "//section[@id='danger']", "Delete").await;
        assert_eq!(path_of(&browser).await, "/links/docs-q3/delete");
        page_is_well_formed(&browser, "delete confirmation").await;
        press(&browser, "//main", "Delete").await;
        assert!(
            path_of(&browser)
                .await
                .starts_with("/links?deleted=docs-q3")
        );
        assert!(
            text_of(&browser, ".flash")
                .await
                .contains("Deleted /docs-q3")
        );
        assert_eq!(system.follow("docs-q3", "").status, 410);

        // Usable at 375 px: every page fits the width.
        browser.set_window_size(375, 812).await.unwrap();
        for path in ["/links", "/links/new", "/system", "/keys"] {
            browser.goto(&format!("{base}{path}")).await.unwrap();
            page_is_well_formed(&browser, &format!("{path} at 375 px")).await;
        }
        let code = system.create("https://example.com/narrow")["code"]
            .as_str()
            .unwrap()
            .to_owned();
        browser.goto(&format!("{base}/links/{code}")).await.unwrap();
        page_is_well_formed(&browser, "a link page at 375 px").await;

        // System: both services ready, with versions and the pipeline.
        browser.set_window_size(1280, 1000).await.unwrap();
        browser.goto(&format!("{base}/system")).await.unwrap();
        system_in_step(&browser, &base).await;
        assert!(text_of(&browser, "#shortener h2").await.contains("ready"));
        assert!(text_of(&browser, "#analytics h2").await.contains("ready"));
        assert_eq!(text_of(&browser, "#spool-depth").await, "0");
        assert!(!text_of(&browser, "#consumer-lag").await.is_empty());
        assert!(browser.source().await.unwrap().contains("Version 0.1.0"));

        browser.close().await.expect("the session closes");
    });

    // Every API answer the console received matched its service's document.
    proxied.assert_contracts_held();
    let shortener_checked = proxied.shortener.findings().checked.join("\n");
    for expected in [
        "POST /api/v1/links -> 201",
        "PATCH /api/v1/links/docs-q3 -> 200",
        "PATCH /api/v1/links/docs-q3 -> 422",
        "DELETE /api/v1/links/docs-q3 -> 204",
        "GET /api/v1/links/docs-q3 -> 404",
        "GET /api/v1/keys -> 403",
        "POST /api/v1/keys -> 201",
        "GET /api/v1/links/docs-q3/qr -> 200",
    ] {
        assert!(
            shortener_checked.contains(expected),
            "{expected} not seen:\n{shortener_checked}"
        );
    }
    let analytics_checked = proxied.analytics.findings().checked.join("\n");
    assert!(
        analytics_checked.contains("/stats -> 200"),
        "{analytics_checked}"
    );
}

fn form_value(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[test]
fn the_console_guards_its_sessions_and_forms() {
    let Some(system) = System::start() else {
        return;
    };
    let proxied = ProxiedConsole::start(&system);
    let port = proxied.console.port();

    // Signed out: pages lead to the login; the page forbids framing and
    // anything from elsewhere.
    let answer = console_call(port, "GET", "/links", "", "", "");
    assert_eq!(
        (answer.status, answer.header("location")),
        (303, Some("/login"))
    );
    let login = console_call(port, "GET", "/login", "", "", "");
    assert_eq!(login.status, 200);
    let csp = login.header("content-security-policy").unwrap_or_default();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    let (token_cookie, flags) = set_cookie(&login, "console_login").expect("a login cookie");
    assert!(
        flags.contains("HttpOnly") && flags.contains("SameSite=Strict"),
        "{flags}"
    );
    assert!(!flags.contains("Secure"), "plain http: {flags}");
    let over_https = console_call(
        port,
        "GET",
        "/login",
        "",
        "X-Forwarded-Proto: https\r\n",
        "",
    );
    let (_, flags) = set_cookie(&over_https, "console_login").unwrap();
    assert!(flags.contains("Secure"), "behind an https proxy: {flags}");

    // The login form's token must match its cookie.
    let token = csrf_in(&login.body);
    let forged = console_call(
        port,
        "POST",
        "/login",
        token_cookie,
        "",
        &format!("csrf={}&key={}", "0".repeat(64), system.key),
    );
    assert_eq!(forged.status, 403);
    // A key that cannot be one is refused as invalid, not sent on.
    let odd = console_call(
        port,
        "POST",
        "/login",
        token_cookie,
        "",
        &format!("csrf={token}&key=%E2%9C%93%0Aabc"),
    );
    assert_eq!(odd.status, 401, "{}", odd.body);
    let signed_in = console_call(
        port,
        "POST",
        "/login",
        token_cookie,
        "",
        &format!("csrf={token}&key={}", system.key),
    );
    assert_eq!(
        (signed_in.status, signed_in.header("location")),
        (303, Some("/links"))
    );
    let (session, flags) = set_cookie(&signed_in, "console_session").expect("a session cookie");
    assert!(
        flags.contains("HttpOnly") && flags.contains("SameSite=Strict"),
        "{flags}"
    );
    assert!(
        !session.contains(&system.key),
        "the key never reaches the browser"
    );

    // Every form needs the session's token.
    let new_page = console_call(port, "GET", "/links/new", session, "", "");
    assert_eq!(new_page.status, 200);
    let token = csrf_in(&new_page.body);
    let form = |csrf: &str| {
        format!(
            "csrf={csrf}&url={}&alias=guarded&redirect_type=302",
            form_value("https://example.com/guarded")
        )
    };
    for bad in ["", "nope", &"0".repeat(64)] {
        let answer = console_call(port, "POST", "/links", session, "", &form(bad));
        assert_eq!(answer.status, 403, "csrf {bad:?}");
    }
    assert_eq!(
        system.follow("guarded", "").status,
        404,
        "nothing was created"
    );
    let created = console_call(port, "POST", "/links", session, "", &form(&token));
    assert_eq!(
        (created.status, created.header("location")),
        (303, Some("/links/guarded?created=1"))
    );
    assert_eq!(system.follow("guarded", "").status, 302);

    // Logging out ends the session on the server, not only in the browser.
    let out = console_call(
        port,
        "POST",
        "/logout",
        session,
        "",
        &format!("csrf={token}"),
    );
    assert_eq!(out.status, 303);
    let after = console_call(port, "GET", "/links", session, "", "");
    assert_eq!(
        (after.status, after.header("location")),
        (303, Some("/login"))
    );

    // Sign-ins are limited per address: a guesser gets 429 before the
    // shortener's failed-key limit would lock out the console itself.
    let statuses: Vec<u16> = (0..12)
        .map(|_| {
            let login = console_call(port, "GET", "/login", "", "", "");
            let (cookie, _) = set_cookie(&login, "console_login").unwrap();
            let token = csrf_in(&login.body);
            console_call(
                port,
                "POST",
                "/login",
                cookie,
                "",
                &format!("csrf={token}&key={}", "f".repeat(64)),
            )
            .status
        })
        .collect();
    assert!(
        statuses.contains(&401) && statuses.last() == Some(&429),
        "{statuses:?}"
    );
    let admin = console_call(port, "GET", "/login", "", "", "");
    assert_eq!(admin.status, 200, "the login page itself stays up");
    proxied.assert_contracts_held();
}

/// The links export as it streams (chunked), decoded.
fn export_text(port: u16, session: &str) -> String {
    let answer = console_call(port, "GET", "/links/export.csv", session, "", "");
    assert_eq!(answer.status, 200);
    assert!(
        answer
            .header("content-type")
            .unwrap_or_default()
            .starts_with("text/csv")
    );
    if answer.header("transfer-encoding") == Some("chunked") {
        let body = crate::openapi_proxy::dechunk(answer.body.as_bytes()).expect("chunks");
        String::from_utf8(body).expect("UTF-8")
    } else {
        answer.body
    }
}

/// The links export, as rows of (code, url, title, tags, expires_at).
fn exported(port: u16, session: &str) -> Vec<Vec<String>> {
    let text = export_text(port, session);
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("code,short_url,url,title,tags,created_at,expires_at,clicks")
    );
    let mut rows: Vec<Vec<String>> = lines
        .map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            assert_eq!(cells.len(), 8, "{line}");
            [0, 2, 3, 4, 6]
                .iter()
                .map(|&i| cells[i].to_owned())
                .collect()
        })
        .collect();
    rows.sort();
    rows
}

#[test]
fn links_are_imported_from_csv_and_exported_back_unchanged() {
    let Some(system) = System::start() else {
        return;
    };
    let proxied = ProxiedConsole::start(&system);
    let port = proxied.console.port();
    let session = sign_in(port, &system.key);
    // 50 rows; line 12 has no http(s) target, line 32 repeats line 7's alias.
    let mut csv = String::from("url,alias,title,tags,expires_at\n");
    for n in 0..50 {
        let (url, alias) = match n {
            10 => ("mailto:someone@example.com".to_owned(), format!("imp-{n}")),
            30 => (format!("https://example.com/{n}"), "imp-5".to_owned()),
            _ => (format!("https://example.com/{n}"), format!("imp-{n}")),
        };
        let expires = if n % 10 == 3 {
            "2030-01-01T00:00:00Z"
        } else {
            ""
        };
        csv.push_str(&format!(
            "{url},{alias},Imported {n},import batch-{},{expires}\n",
            n % 3
        ));
    }
    let (preview, result) = import_csv(port, &session, &csv);
    assert_eq!(text_by_id(&preview.body, "rows-read"), "50");
    assert_eq!(text_by_id(&preview.body, "rows-valid"), "48");
    assert!(
        preview
            .body
            .contains("<td class=\"num\">12</td><td>url</td>"),
        "{}",
        preview.body
    );
    assert!(
        preview
            .body
            .contains("<td class=\"num\">32</td><td>alias</td>"),
        "{}",
        preview.body
    );
    assert_eq!(text_by_id(&result.body, "created"), "48");
    assert_eq!(system.follow("imp-0", "").status, 302);
    assert_eq!(system.follow("imp-10", "").status, 404);
    let link = system.link("imp-3");
    assert_eq!(link["title"], "Imported 3");
    assert_eq!(link["tags"], json!(["import", "batch-0"]));
    assert_eq!(link["expires_at"], "2030-01-01T00:00:00Z");

    // Export, then import into an empty system: the same links.
    let first = exported(port, &session);
    assert_eq!(first.len(), 48);
    let export = export_text(port, &session);
    let Some(other) = System::start() else {
        return;
    };
    let other_console = ProxiedConsole::start(&other);
    let other_port = other_console.console.port();
    let other_session = sign_in(other_port, &other.key);
    let (preview, result) = import_csv(other_port, &other_session, &export);
    assert!(
        preview.body.contains("this console&#39;s export")
            || preview.body.contains("this console's export"),
        "{}",
        preview.body
    );
    assert_eq!(text_by_id(&result.body, "created"), "48");
    assert_eq!(exported(other_port, &other_session), first);
    proxied.assert_contracts_held();
    other_console.assert_contracts_held();
}

#[test]
fn people_import_export_and_protect_links_in_the_browser() {
    let Some((chromium, driver, system, proxied)) = browser_rig() else {
        return;
    };
    let base = proxied.console.url();
    // 50 rows, 2 of them bad: line 9 has no http(s) target, line 40
    // repeats line 4's alias.
    let mut csv = String::from("url,alias,title,tags\n");
    for n in 0..50 {
        let (url, alias) = match n {
            7 => ("javascript:alert(1)".to_owned(), format!("b-{n}")),
            38 => (format!("https://example.com/{n}"), "b-2".to_owned()),
            _ => (format!("https://example.com/{n}"), format!("b-{n}")),
        };
        csv.push_str(&format!("{url},{alias},Batch {n},browser\n"));
    }
    let file = system.dir.path().join("links.csv");
    std::fs::write(&file, csv).unwrap();
    // A protected link whose target the browser can load here.
    let target = format!("{base}/health");
    let protected =
        system.post_link(&json!({ "url": target, "alias": "members", "password": "club rules" }));
    assert_eq!(protected.status, 201, "{}", protected.body);

    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let browser = driver
            .browser(&chromium, &system.dir.path().join("profile-a"))
            .await;
        log_in(&browser, &base, &system.key).await;

        // Import: the preview names both bad rows; 48 are imported.
        find(&browser, "header nav a[href='/links/import']")
            .await
            .click()
            .await
            .unwrap();
        page_is_well_formed(&browser, "import").await;
        find(&browser, "#file")
            .await
            .send_keys(&file.display().to_string())
            .await
            .unwrap();
        press(&browser, "", "Preview").await;
        assert_eq!(text_of(&browser, "#rows-read").await, "50");
        assert_eq!(text_of(&browser, "#rows-valid").await, "48");
        let problems = text_of(&browser, "#row-errors tbody").await;
        assert!(
            problems.contains("9 url") && problems.contains("40 alias"),
            "{problems}"
        );
        page_is_well_formed(&browser, "import preview").await;
        screenshot(&browser, "console-import-preview.png").await;
        press(&browser, "", "Import 48 links").await;
        assert_eq!(text_of(&browser, "#created").await, "48");
        assert_eq!(system.follow("b-0", "").status, 302);
        assert_eq!(system.follow("b-7", "").status, 404);

        // Export: the file the button downloads, read back.
        browser.goto(&format!("{base}/links")).await.unwrap();
        find(&browser, "#export").await.click().await.unwrap();
        let downloads = system.dir.path().join("profile-a").join("downloads");
        let clicked = Instant::now();
        let text = loop {
            let done = std::fs::read_dir(&downloads).ok().and_then(|entries| {
                entries
                    .flatten()
                    .map(|e| e.path())
                    .find(|p| p.extension().is_some_and(|e| e == "csv"))
            });
            if let Some(path) = done {
                break std::fs::read_to_string(path).expect("the download reads");
            }
            assert!(
                clicked.elapsed() < Duration::from_secs(15),
                "no download in {downloads:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some("code,short_url,url,title,tags,created_at,expires_at,clicks")
        );
        let rows: Vec<&str> = lines.collect();
        assert_eq!(
            rows.len(),
            49,
            "48 imported and the protected link:\n{text}"
        );
        assert!(
            rows.iter()
                .any(|r| r.starts_with("b-0,") && r.contains(",Batch 0,browser,")),
            "{text}"
        );

        // The system page, for its screenshot.
        system_in_step(&browser, &base).await;
        screenshot(&browser, "console-system.png").await;
        browser.close().await.unwrap();

        // A protected link in a fresh browser: the form, a wrong password
        // (401), then the right one (the redirect, one click).
        let visitor = driver
            .browser(&chromium, &system.dir.path().join("profile-b"))
            .await;
        visitor
            .goto(&format!("{}/members", system.shortener.url()))
            .await
            .unwrap();
        assert!(text_of(&visitor, "h1").await.contains("protected"));
        page_is_well_formed(&visitor, "password form").await;
        fill(&visitor, "#password", "club rule").await;
        press(&visitor, "", "Continue").await;
        assert!(text_of(&visitor, ".error").await.contains("Wrong password"));
        let status = script(
            &visitor,
            "return performance.getEntriesByType('navigation')[0].responseStatus;",
        )
        .await;
        assert_eq!(status, json!(401), "a wrong password answers 401");
        fill(&visitor, "#password", "club rules").await;
        press(&visitor, "", "Continue").await;
        let landed = visitor.current_url().await.unwrap();
        assert_eq!(
            landed.as_str(),
            target.as_str(),
            "the right password leads to the target"
        );
        visitor.close().await.unwrap();
    });
    let counted = system.eventually("analytics counts the one click", || {
        system.stats("members").filter(|s| s["total_clicks"] == 1)
    });
    assert_eq!(counted["total_clicks"], 1);
    proxied.assert_contracts_held();
}
