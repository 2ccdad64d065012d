//! The dashboard as a browser renders it: headless Chromium loads the pages
//! from the running analytics service.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use system_tests::process::find_executable;

use crate::system::System;

const BROWSER_TIMEOUT: Duration = Duration::from_secs(60);

fn chromium() -> Option<PathBuf> {
    let found = find_executable("chromium", "CHROMIUM_BIN", &[])
        .or_else(|| find_executable("chromium-browser", "CHROMIUM_BIN", &[]));
    if found.is_none() {
        assert!(
            !system_tests::backends_required(),
            "chromium is not installed (apt-get install chromium, or set CHROMIUM_BIN)"
        );
        eprintln!("SKIPPED: chromium is not installed");
    }
    found
}

/// Runs headless Chromium with `args` on `url`; its stdout. Bounded in time;
/// the browser is killed by PID if it overstays.
fn browse(chromium: &Path, profile: &Path, args: &[&str], url: &str) -> String {
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium starts");
    let started = Instant::now();
    loop {
        if child.try_wait().expect("wait for chromium").is_some() {
            break;
        }
        if started.elapsed() > BROWSER_TIMEOUT {
            let _ = child.kill();
            panic!("chromium did not finish {url} within {BROWSER_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("chromium's output");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn the_dashboard_shows_the_chart_of_a_link_with_clicks_in_a_browser() {
    let Some(chromium) = chromium() else { return };
    let Some(system) = System::start() else {
        return;
    };
    let link = system.create("https://example.com/dashboard");
    let code = link["code"].as_str().unwrap().to_owned();
    let quiet = system.create("https://example.com/never-clicked");
    let quiet_code = quiet["code"].as_str().unwrap().to_owned();
    for _ in 0..25 {
        assert_eq!(system.follow(&code, "").status, 302);
    }
    system.eventually("analytics counts the clicks", || {
        system
            .stats(&code)
            .filter(|s| s["total_clicks"] == 25)
            .map(|_| ())
    });
    system.eventually("analytics knows the link without clicks", || {
        system.stats(&quiet_code).map(|_| ())
    });

    let profile = system.dir.path().join("chromium");
    // The dashboard needs a key; a browser cannot be told to send one, so it
    // goes through a proxy that adds it, as an operator's would.
    let proxy = system_tests::proxy::KeyProxy::start(system.analytics.port(), &system.key)
        .expect("the key proxy starts");
    let base = format!("http://127.0.0.1:{}", proxy.port());
    let anonymous = system_tests::process::http_get(system.analytics.port(), "/");
    assert_eq!(
        anonymous.map(|(s, _)| s),
        Some(401),
        "the dashboard needs a key"
    );

    // The link's page, as the browser built its DOM.
    let dom = browse(
        &chromium,
        &profile,
        &["--dump-dom"],
        &format!("{base}/links/{code}"),
    );
    assert!(dom.contains(r#"id="clicks-chart""#), "no chart in:\n{dom}");
    assert!(dom.contains(r#"data-total-clicks="25""#), "{dom}");
    let bars = dom.matches(r#"class="bar""#).count();
    assert!(bars >= 1, "a link with clicks has at least one bar: {dom}");
    assert!(dom.contains("duckduckgo.com"), "top referrers are listed");
    assert!(dom.contains("Firefox"), "browsers are listed");

    // A link without clicks still gets its (empty) chart.
    let dom = browse(
        &chromium,
        &profile,
        &["--dump-dom"],
        &format!("{base}/links/{quiet_code}"),
    );
    assert!(dom.contains(r#"data-total-clicks="0""#), "{dom}");
    assert!(dom.contains("No clicks in this range"));

    // The index lists both, newest first, each with its total.
    let dom = browse(&chromium, &profile, &["--dump-dom"], &format!("{base}/"));
    let (busy, quiet) = (
        dom.find(&format!("/links/{code}")),
        dom.find(&format!("/links/{quiet_code}")),
    );
    assert!(busy.is_some() && quiet.is_some() && quiet < busy, "{dom}");
    let busy_row = &dom[busy.unwrap()..];
    let busy_row = &busy_row[..busy_row.find("</tr>").unwrap()];
    assert!(
        busy_row.contains(r#"<td class="num">25</td>"#),
        "{busy_row}"
    );

    // And it renders to an image.
    let png = system.dir.path().join("dashboard.png");
    browse(
        &chromium,
        &profile,
        &[
            "--window-size=1280,1100",
            &format!("--screenshot={}", png.display()),
        ],
        &format!("{base}/links/{code}"),
    );
    let bytes = std::fs::read(&png).expect("chromium wrote the screenshot");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    assert!(
        bytes.len() > 10_000,
        "a rendered page, not a blank one: {} bytes",
        bytes.len()
    );
}
