use std::time::{Duration, Instant};

use crate::system::System;

#[test]
fn every_served_redirect_is_counted_exactly_once_in_analytics() {
    let Some(system) = System::start() else {
        return;
    };
    let link = system.create("https://example.com/landing?lang=en");
    let code = link["code"].as_str().unwrap().to_owned();

    const N: u64 = 300;
    for i in 0..N {
        let answer = system.follow(&code, &format!("?utm_source=e2e&n={i}"));
        assert_eq!(answer.status, 302);
        assert_eq!(
            answer.header("location"),
            Some(format!("https://example.com/landing?lang=en&utm_source=e2e&n={i}").as_str())
        );
    }
    let last_redirect = Instant::now();

    let stats = system.eventually("analytics counts every click", || {
        system
            .stats(&code)
            .filter(|s| s["total_clicks"].as_u64() >= Some(N))
    });
    let lag = last_redirect.elapsed();
    eprintln!("e2e: {N} clicks visible in analytics {lag:?} after the last redirect");
    assert_eq!(stats["total_clicks"], N, "never more than were served");
    assert_eq!(stats["link"]["shortener_url_id"], link["id"]);
    assert_eq!(
        stats["link"]["target"],
        "https://example.com/landing?lang=en"
    );
    assert_eq!(stats["top_referrers"][0]["value"], "duckduckgo.com");
    assert_eq!(stats["browsers"][0]["value"], "Firefox");
    assert_eq!(stats["bot_clicks"], 0);
    let series_total: u64 = stats["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["clicks"].as_u64().unwrap())
        .sum();
    assert_eq!(series_total, N);

    // The owner's counter converges to the same number.
    system.eventually("the shortener's click_count", || {
        (system.link(&code)["click_count"] == N).then_some(())
    });
    // And nothing arrives late to push analytics past it.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(system.stats(&code).unwrap()["total_clicks"], N);
}

#[test]
fn a_deleted_link_answers_410_and_analytics_shows_it_deleted() {
    let Some(system) = System::start() else {
        return;
    };
    let link = system.create("https://example.com/soon-gone");
    let code = link["code"].as_str().unwrap().to_owned();
    assert_eq!(system.follow(&code, "").status, 302);
    assert_eq!(system.delete(&code), 204);
    assert_eq!(system.follow(&code, "").status, 410);

    let stats = system.eventually("analytics sees the deletion", || {
        system
            .stats(&code)
            .filter(|s| s["link"]["status"] == "deleted")
    });
    assert!(stats["link"]["deleted_at"].is_string());
    // The click served before the deletion is kept.
    assert_eq!(stats["total_clicks"], 1);

    let report = system.analytics_get("/api/v1/reconciliation");
    assert_eq!(report.status, 200);
    let report: serde_json::Value = serde_json::from_str(&report.body).unwrap();
    let deleted = report["deleted"].as_array().unwrap();
    assert!(
        deleted.iter().any(|d| d["shortener_url_id"] == link["id"]),
        "{report}"
    );
}
