//! The console over raw HTTP: a session, its forms, an import. Shared by
//! the console's end-to-end tests and the import benchmark.

use system_tests::process::{HttpAnswer, http_exchange};

/// One raw request to the console; `cookies` as a `Cookie` header value.
pub fn console_call(
    port: u16,
    method: &str,
    path: &str,
    cookies: &str,
    extra: &str,
    form: &str,
) -> HttpAnswer {
    let cookie = if cookies.is_empty() {
        String::new()
    } else {
        format!("Cookie: {cookies}\r\n")
    };
    let content_type = if extra.to_ascii_lowercase().contains("content-type:") {
        ""
    } else {
        "Content-Type: application/x-www-form-urlencoded\r\n"
    };
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n{cookie}{extra}\
         {content_type}Content-Length: {}\r\n\r\n{form}",
        form.len()
    );
    http_exchange(port, &request).unwrap_or_else(|| panic!("{method} {path}: no answer"))
}

/// The `name=value` of the first `Set-Cookie` for `name`, and its attributes.
pub fn set_cookie<'a>(answer: &'a HttpAnswer, name: &str) -> Option<(&'a str, &'a str)> {
    answer
        .headers
        .iter()
        .filter(|(n, _)| n == "set-cookie")
        .map(|(_, v)| v.as_str())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split_once(';').unwrap_or((v, "")))
}

/// The hidden CSRF token of a page's forms.
pub fn csrf_in(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token");
    let rest = &page[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

/// Signs in over raw HTTP; the session's `Cookie` value.
pub fn sign_in(port: u16, key: &str) -> String {
    let login = console_call(port, "GET", "/login", "", "", "");
    let (cookie, _) = set_cookie(&login, "console_login").expect("a login cookie");
    let token = csrf_in(&login.body);
    let answer = console_call(
        port,
        "POST",
        "/login",
        cookie,
        "",
        &format!("csrf={token}&key={key}"),
    );
    assert_eq!(answer.status, 303, "{}", answer.body);
    set_cookie(&answer, "console_session")
        .expect("a session")
        .0
        .to_owned()
}

/// Uploads `csv` to the import form and runs the import; the preview and
/// the result pages.
pub fn import_csv(port: u16, session: &str, csv: &str) -> (HttpAnswer, HttpAnswer) {
    let form = console_call(port, "GET", "/links/import", session, "", "");
    assert_eq!(form.status, 200);
    let csrf = csrf_in(&form.body);
    let boundary = "----console-test-boundary";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"links.csv\"\r\n\
         Content-Type: text/csv\r\n\r\n{csv}\r\n--{boundary}--\r\n"
    );
    let preview = console_call(
        port,
        "POST",
        "/links/import",
        session,
        &format!("Content-Type: multipart/form-data; boundary={boundary}\r\n"),
        &body,
    );
    assert_eq!(preview.status, 200, "{}", preview.body);
    let action = preview
        .body
        .split("action=\"/links/import/")
        .nth(1)
        .map(|rest| rest[..rest.find('"').unwrap()].to_owned())
        .unwrap_or_else(|| panic!("no import button: {}", preview.body));
    let result = console_call(
        port,
        "POST",
        &format!("/links/import/{action}"),
        session,
        "",
        &format!("csrf={}", csrf_in(&preview.body)),
    );
    assert_eq!(result.status, 200, "{}", result.body);
    (preview, result)
}

/// The text of the element with this id.
pub fn text_by_id<'a>(html: &'a str, id: &str) -> &'a str {
    let at = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id}: {html}"));
    let rest = &html[at..];
    let start = rest.find('>').unwrap() + 1;
    &rest[start..start + rest[start..].find('<').unwrap()]
}
