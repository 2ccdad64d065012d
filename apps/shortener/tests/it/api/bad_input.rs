//! A table of bad inputs: each gets its status and a problem+json body
//! naming the field at fault.

use serde_json::json;

use super::helpers::{TestApp, problem};

struct Case {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    content_type: Option<&'static str>,
    body: String,
    status: u16,
    /// The field the problem must name, when there is one.
    field: Option<&'static str>,
}

fn json_case(
    name: &'static str,
    body: serde_json::Value,
    status: u16,
    field: &'static str,
) -> Case {
    Case {
        name,
        method: "POST",
        path: "/api/v1/links",
        content_type: Some("application/json"),
        body: body.to_string(),
        status,
        field: Some(field),
    }
}

/// A case outside the JSON-body table: any method, path, content type and body.
fn raw(
    name: &'static str,
    method: &'static str,
    path: &'static str,
    content_type: Option<&'static str>,
    body: impl Into<String>,
    status: u16,
    field: Option<&'static str>,
) -> Case {
    Case {
        name,
        method,
        path,
        content_type,
        body: body.into(),
        status,
        field,
    }
}

fn cases() -> Vec<Case> {
    let long = format!("https://example.com/{}", "a".repeat(2100));
    let mut cases = vec![
        json_case(
            "javascript scheme",
            json!({"url": "javascript:alert(1)"}),
            422,
            "url",
        ),
        json_case(
            "data scheme",
            json!({"url": "data:text/html,<b>hi</b>"}),
            422,
            "url",
        ),
        json_case(
            "file scheme",
            json!({"url": "file:///etc/passwd"}),
            422,
            "url",
        ),
        json_case(
            "ftp scheme",
            json!({"url": "ftp://example.com/x"}),
            422,
            "url",
        ),
        json_case("relative url", json!({"url": "/just/a/path"}), 422, "url"),
        json_case("no scheme", json!({"url": "example.com"}), 422, "url"),
        json_case(
            "userinfo",
            json!({"url": "https://user:pw@example.com/"}),
            422,
            "url",
        ),
        json_case(
            "whitespace",
            json!({"url": "https://exa mple.com/"}),
            422,
            "url",
        ),
        json_case(
            "control character",
            json!({"url": "https://example.com/\u{7}"}),
            422,
            "url",
        ),
        json_case("too long", json!({"url": long}), 422, "url"),
        json_case(
            "url host in a script the document does not list",
            json!({"url": "https://مثال.example/"}),
            422,
            "url",
        ),
        json_case(
            "url longer than allowed once percent-encoded",
            json!({"url": format!("https://example.com/{}", "ä".repeat(1100))}),
            422,
            "url",
        ),
        json_case(
            "url with an IPv6 host",
            json!({"url": "http://[::1]/"}),
            422,
            "url",
        ),
        json_case("empty url", json!({"url": ""}), 422, "url"),
        json_case("url not a string", json!({"url": 42}), 422, "url"),
        json_case("url missing", json!({"alias": "abc"}), 422, "url"),
        json_case("url null", json!({"url": null}), 422, "url"),
        json_case(
            "alias too short",
            json!({"url": "https://e.com/", "alias": "ab"}),
            422,
            "alias",
        ),
        json_case(
            "alias too long",
            json!({"url": "https://e.com/", "alias": "a".repeat(65)}),
            422,
            "alias",
        ),
        json_case(
            "alias bad characters",
            json!({"url": "https://e.com/", "alias": "has space"}),
            422,
            "alias",
        ),
        json_case(
            "alias with slash",
            json!({"url": "https://e.com/", "alias": "a/b/c"}),
            422,
            "alias",
        ),
        json_case(
            "alias reserved",
            json!({"url": "https://e.com/", "alias": "api"}),
            422,
            "alias",
        ),
        json_case(
            "alias reserved any case",
            json!({"url": "https://e.com/", "alias": "Health"}),
            422,
            "alias",
        ),
        json_case(
            "alias not a string",
            json!({"url": "https://e.com/", "alias": 123}),
            422,
            "alias",
        ),
        json_case(
            "expiry not a time",
            json!({"url": "https://e.com/", "expires_at": "tomorrow"}),
            422,
            "expires_at",
        ),
        json_case(
            "redirect type 303",
            json!({"url": "https://e.com/", "redirect_type": 303}),
            422,
            "redirect_type",
        ),
        json_case(
            "redirect type a string",
            json!({"url": "https://e.com/", "redirect_type": "301"}),
            422,
            "redirect_type",
        ),
        json_case(
            "unknown field",
            json!({"url": "https://e.com/", "target": "x"}),
            422,
            "target",
        ),
        json_case("body not an object", json!(["https://e.com/"]), 422, "body"),
        json_case(
            "title too long",
            json!({"url": "https://e.com/", "title": "t".repeat(201)}),
            422,
            "title",
        ),
        json_case(
            "title with a control character",
            json!({"url": "https://e.com/", "title": "a\u{7}b"}),
            422,
            "title",
        ),
        json_case(
            "tag with capitals",
            json!({"url": "https://e.com/", "tags": ["Docs"]}),
            422,
            "tags",
        ),
        json_case(
            "eleven tags",
            json!({"url": "https://e.com/", "tags": (0..11).map(|n| format!("t{n}")).collect::<Vec<_>>()}),
            422,
            "tags",
        ),
        json_case(
            "tags not an array",
            json!({"url": "https://e.com/", "tags": "docs"}),
            422,
            "tags",
        ),
    ];
    cases.extend([
        raw(
            "malformed json",
            "POST",
            "/api/v1/links",
            Some("application/json"),
            "{\"url\": ",
            400,
            None,
        ),
        raw(
            "trailing garbage",
            "POST",
            "/api/v1/links",
            Some("application/json"),
            "{\"url\": \"https://e.com/\"} x",
            400,
            None,
        ),
        raw(
            "wrong content type",
            "POST",
            "/api/v1/links",
            Some("text/plain"),
            "{\"url\": \"https://e.com/\"}",
            415,
            None,
        ),
        raw(
            "no content type",
            "POST",
            "/api/v1/links",
            None,
            "{\"url\": \"https://e.com/\"}",
            415,
            None,
        ),
        raw(
            "oversized body",
            "POST",
            "/api/v1/links",
            Some("application/json"),
            format!("{{\"url\": \"https://e.com/{}\"}}", "a".repeat(64 * 1024)),
            413,
            None,
        ),
        raw(
            "patch with nothing to change",
            "PATCH",
            "/api/v1/links/target",
            Some("application/json"),
            "{}",
            422,
            Some("body"),
        ),
        raw(
            "patch with a bad url",
            "PATCH",
            "/api/v1/links/target",
            Some("application/json"),
            json!({"url": "mailto:x@example.com"}).to_string(),
            422,
            Some("url"),
        ),
        raw(
            "patch with a null redirect type",
            "PATCH",
            "/api/v1/links/target",
            Some("application/json"),
            json!({"redirect_type": null}).to_string(),
            422,
            Some("redirect_type"),
        ),
        raw(
            "list with a bad limit",
            "GET",
            "/api/v1/links?limit=0",
            None,
            "",
            400,
            Some("limit"),
        ),
        raw(
            "list with a bad cursor",
            "GET",
            "/api/v1/links?cursor=zzz",
            None,
            "",
            400,
            Some("cursor"),
        ),
        raw(
            "list with an id that is none",
            "GET",
            "/api/v1/links?ids=0192b6a4-6f0e-7c3a-9a7e-1a2b3c4d5e6f,nope",
            None,
            "",
            400,
            Some("ids"),
        ),
        raw(
            "list with an unknown sort",
            "GET",
            "/api/v1/links?sort=title",
            None,
            "",
            400,
            Some("sort"),
        ),
        raw(
            "list with a bad tag",
            "GET",
            "/api/v1/links?tag=Not%20a%20tag",
            None,
            "",
            400,
            Some("tag"),
        ),
        raw(
            "list with a search text too long",
            "GET",
            format!("/api/v1/links?q={}", "a".repeat(201)).leak(),
            None,
            "",
            400,
            Some("q"),
        ),
        raw(
            "list by clicks with a cursor of the order by creation",
            "GET",
            "/api/v1/links?sort=clicks&cursor=0192b6a4-6f0e-7c3a-9a7e-1a2b3c4d5e6f",
            None,
            "",
            400,
            Some("cursor"),
        ),
        raw(
            "patch with a bad tag",
            "PATCH",
            "/api/v1/links/target",
            Some("application/json"),
            json!({"tags": ["ok", "not ok"]}).to_string(),
            422,
            Some("tags"),
        ),
        raw(
            "wrong method",
            "PUT",
            "/api/v1/links",
            Some("application/json"),
            "{}",
            405,
            None,
        ),
        raw(
            "unknown api route",
            "GET",
            "/api/v1/nothing/here",
            None,
            "",
            404,
            None,
        ),
    ]);
    cases
}

pub async fn every_bad_input_is_refused(app: &TestApp) {
    app.create_ok(json!({"url": "https://example.com/", "alias": "target"}))
        .await;
    let cases = cases();
    assert!(cases.len() >= 25);
    for case in cases {
        let method = reqwest::Method::from_bytes(case.method.as_bytes()).unwrap();
        let mut request = app
            .client
            .request(method, app.url(case.path))
            .body(case.body.clone());
        if let Some(content_type) = case.content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.unwrap();
        assert_eq!(
            response.status(),
            case.status,
            "{}: {:?}",
            case.name,
            response
        );
        let body = problem(response, case.status).await;
        if let Some(field) = case.field {
            assert_eq!(body["field"], field, "{}: {body}", case.name);
            assert!(
                body["detail"].as_str().unwrap().contains(field),
                "{}: {body}",
                case.name
            );
        }
    }
}
