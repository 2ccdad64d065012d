//! The HTTP API end to end: the real application on port 0, a real
//! nats-server, and each store in turn.

mod bad_input;
mod behaviour;
pub mod helpers;

/// Runs every API behaviour test against one store.
macro_rules! api_suite {
    ($store:ident) => {
        mod $store {
            use super::behaviour;
            use super::helpers::{spawn_app, Store};

            api_suite!(@tests Store::$store;
                links_are_created_read_listed_patched_and_deleted,
                twenty_concurrent_claims_of_an_alias_give_one_201_and_nineteen_409,
                redirects_use_the_link_status_and_merge_the_query,
                urls_pasted_from_a_browser_are_stored_and_redirected_normalised,
                unknown_codes_are_404_and_deleted_or_expired_links_are_410,
                every_write_reaches_the_stream_as_a_valid_event,
                bad_inputs_get_problem_json_naming_the_field,
                a_thousand_redirects_give_a_thousand_click_events_and_count,
                a_change_on_one_instance_reaches_the_cache_of_another,
                head_answers_as_get_and_records_no_click,
                an_unknown_code_is_cached_until_it_is_created,
                a_link_has_a_qr_code_of_its_short_url,
                links_have_titles_and_tags_and_are_found_by_them,
                a_bulk_create_answers_each_item_in_order,
                password_links_redirect_only_with_their_password,
                a_wrong_password_takes_as_long_as_an_unknown_code,
            );

            #[tokio::test]
            async fn stopping_with_clicks_pending_loses_none() {
                let Some(app) = spawn_app(Store::$store, Default::default()).await else { return };
                behaviour::stopping_with_clicks_pending_loses_none(app).await;
            }
        }
    };
    (@tests $store:expr; $($test:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $test() {
                let Some(app) = spawn_app($store, Default::default()).await else { return };
                behaviour::$test(&app).await;
                app.stop().await;
            }
        )*
    };
}

api_suite!(sqlite);
api_suite!(mongo);

mod access;

mod observability {
    use std::time::{Duration, Instant};

    use serde_json::json;
    use system_tests::process::metric_value;

    use super::helpers::{Store, TestApp, spawn_app};

    async fn wait_for_status(app: &TestApp, path: &str, status: u16) -> reqwest::Response {
        let started = Instant::now();
        loop {
            let response = app.get(path).await;
            if response.status() == status {
                return response;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{path} never answered {status}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `/ready` reports NATS as `state`; ready all along.
    async fn wait_for_nats(app: &TestApp, state: &str) {
        let started = Instant::now();
        loop {
            let response = app.get("/ready").await;
            assert_eq!(response.status(), 200);
            let body: serde_json::Value = response.json().await.unwrap();
            if body["checks"]["nats"] == state {
                assert_eq!(body["checks"]["store"], "ok");
                return;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "{body}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Ready means "can serve": the store answers. A broker outage is
    /// reported in the body and the metrics, but keeps the instance in the
    /// load balancer.
    #[tokio::test]
    async fn ready_stays_up_without_nats_and_says_so() {
        let Some(mut app) = spawn_app(Store::sqlite, Default::default()).await else {
            return;
        };
        wait_for_nats(&app, "ok").await;
        app.nats.stop();
        wait_for_nats(&app, "disconnected").await;
        let metrics = app.get("/metrics").await.text().await.unwrap();
        assert_eq!(
            metric_value(&metrics, "shortener_nats_connected"),
            Some(0.0)
        );
        // Without NATS, links are still created: the outbox keeps their events.
        app.create_ok(json!({ "url": "https://example.com/" }))
            .await;
        app.nats.restart().unwrap();
        wait_for_status(&app, "/ready", 200).await;
        let started = Instant::now();
        while metric_value(
            &app.get("/metrics").await.text().await.unwrap(),
            "shortener_nats_connected",
        ) != Some(1.0)
        {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "never reconnected"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(app.get("/health").await.status(), 200);
        app.stop().await;
    }

    #[tokio::test]
    async fn metrics_count_requests_redirects_cache_and_clicks() {
        let Some(app) = spawn_app(Store::sqlite, Default::default()).await else {
            return;
        };
        app.create_ok(json!({ "url": "https://example.com/", "alias": "metered" }))
            .await;
        for _ in 0..5 {
            assert_eq!(app.get("/metered").await.status(), 302);
        }
        assert_eq!(app.get("/unknown1").await.status(), 404);
        let started = Instant::now();
        let text = loop {
            let text = app.get("/metrics").await.text().await.unwrap();
            if metric_value(&text, "shortener_clicks_published_total") == Some(5.0) {
                break text;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "clicks never published:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(
            metric_value(
                &text,
                r#"shortener_http_requests_total{method="GET",route="/{code}",status="302"}"#
            ),
            Some(5.0)
        );
        assert_eq!(
            metric_value(
                &text,
                r#"shortener_http_requests_total{method="GET",route="/{code}",status="404"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            metric_value(
                &text,
                r#"shortener_http_requests_total{method="POST",route="/api/v1/links",status="201"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            metric_value(&text, "shortener_redirect_duration_seconds_count"),
            Some(6.0)
        );
        // The first redirect and the unknown code miss; the other four hit.
        assert_eq!(
            metric_value(&text, "shortener_redirect_cache_hits_total"),
            Some(4.0)
        );
        assert_eq!(
            metric_value(&text, "shortener_redirect_cache_misses_total"),
            Some(2.0)
        );
        assert_eq!(
            metric_value(&text, "shortener_click_publish_lag_seconds_count"),
            Some(5.0)
        );
        assert!(metric_value(&text, "shortener_outbox_depth").is_some());
        assert!(metric_value(&text, "shortener_clicks_queued").is_some());
        assert_eq!(
            metric_value(&text, "shortener_click_spool_depth"),
            Some(0.0)
        );
        assert_eq!(
            metric_value(&text, "shortener_click_spool_oldest_age_seconds"),
            Some(0.0)
        );
        assert_eq!(metric_value(&text, "shortener_nats_connected"), Some(1.0));
        // The same figures as JSON, for a key.
        let status: serde_json::Value = app
            .client
            .get(app.url("/api/v1/status"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(status["service"], "shortener", "{status}");
        assert_eq!(status["ready"], true, "{status}");
        assert_eq!(status["not_ready"], serde_json::json!([]), "{status}");
        assert_eq!(status["nats_connected"], true, "{status}");
        assert_eq!(status["click_spool_depth"], 0, "{status}");
        assert_eq!(status["click_spool_oldest_age_seconds"], 0.0, "{status}");
        assert_eq!(status["clicks_dropped"]["queue_full"], 0, "{status}");
        assert!(status["outbox_depth"].is_u64(), "{status}");
        app.stop().await;
    }
}

mod openapi {
    use super::helpers::{Store, spawn_app};

    #[tokio::test]
    async fn the_openapi_document_describes_every_route() {
        let Some(app) = spawn_app(Store::sqlite, Default::default()).await else {
            return;
        };
        let response = app.get("/api/v1/openapi.json").await;
        assert_eq!(response.status(), 200);
        let document: serde_json::Value = response.json().await.unwrap();
        assert!(document["openapi"].as_str().unwrap().starts_with("3."));
        for (path, methods) in [
            ("/api/v1/links", &["post", "get"][..]),
            ("/api/v1/links/{code}", &["get", "patch", "delete"][..]),
            ("/{code}", &["get"][..]),
        ] {
            for method in methods {
                let operation = &document["paths"][path][method];
                assert!(operation.is_object(), "{method} {path} is not documented");
                assert!(
                    operation["responses"].as_object().unwrap().len() >= 2,
                    "{method} {path}"
                );
            }
        }
        for schema in ["Link", "CreateLink", "UpdateLink", "LinkPage", "Problem"] {
            assert!(
                document["components"]["schemas"][schema].is_object(),
                "{schema}"
            );
        }
        app.stop().await;
    }
}
