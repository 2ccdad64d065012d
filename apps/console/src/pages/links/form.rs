//! The link form: its fields, their values as typed, and their errors.

use super::*;

/// "2026-11-30 07:45 UTC" from an RFC 3339 time; the text itself otherwise.
pub(super) fn when(rfc3339: &str) -> String {
    DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| {
            t.with_timezone(&Utc)
                .format("%Y-%m-%d %H:%M UTC")
                .to_string()
        })
        .unwrap_or_else(|_| rfc3339.to_owned())
}

/// A `datetime-local` value (UTC) from an RFC 3339 time.
pub(super) fn local_input(rfc3339: &str) -> String {
    DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| t.with_timezone(&Utc).format("%Y-%m-%dT%H:%M").to_string())
        .unwrap_or_default()
}

/// An RFC 3339 time from a `datetime-local` value, read as UTC.
pub(super) fn from_local_input(value: &str) -> Result<Option<String>, String> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(value, format).ok())
        .map(|t| Some(t.and_utc().to_rfc3339_opts(SecondsFormat::Secs, true)))
        .ok_or_else(|| format!("{value:?} is not a date and time (YYYY-MM-DDTHH:MM, UTC)"))
}

/// Tags as typed: separated by commas or spaces, in lower case.
pub(super) fn tags_of(value: &str) -> Vec<String> {
    value
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// A form's values and the reasons its fields were refused.
#[derive(Default)]
pub(super) struct LinkForm {
    pub(super) values: HashMap<String, String>,
    pub(super) errors: HashMap<String, String>,
    /// A refusal that names no field of the form.
    pub(super) general: Option<String>,
}

impl LinkForm {
    pub(super) fn of_link(link: &Link) -> Self {
        let mut values = HashMap::new();
        values.insert("url".into(), link.url.clone());
        values.insert("title".into(), link.title.clone().unwrap_or_default());
        values.insert("tags".into(), link.tags.join(", "));
        values.insert(
            "expires_at".into(),
            link.expires_at
                .as_deref()
                .map(local_input)
                .unwrap_or_default(),
        );
        values.insert("redirect_type".into(), link.redirect_type.to_string());
        if link.forward_query {
            values.insert("forward_query".into(), "on".into());
        }
        if link.password_protected {
            // Not a form field: tells the form to offer removal.
            values.insert("protected".into(), "yes".into());
        }
        Self {
            values,
            ..Self::default()
        }
    }

    pub(super) fn value(&self, name: &str) -> &str {
        self.values
            .get(name)
            .map(String::as_str)
            .unwrap_or_default()
    }

    /// Takes a refusal of the shortener apart into the fields at fault.
    pub(super) fn refused(mut self, problem: &Problem, fields: &[&str]) -> Self {
        let mut named = false;
        for field in fields {
            if let Some(reason) = problem.reason_for(field) {
                self.errors.insert((*field).to_owned(), reason.to_owned());
                named = true;
            }
        }
        if !named {
            self.general = Some(problem.detail.clone());
        }
        self
    }

    /// The JSON body of a create or a change; a field the console itself
    /// cannot read (the expiry) is refused here, named.
    pub(super) fn body(&mut self, creating: bool) -> Option<Value> {
        let mut body = serde_json::Map::new();
        body.insert("url".into(), json!(self.value("url").trim()));
        let title = self.value("title").trim().to_owned();
        body.insert(
            "title".into(),
            if title.is_empty() {
                Value::Null
            } else {
                json!(title)
            },
        );
        body.insert("tags".into(), json!(tags_of(self.value("tags"))));
        match from_local_input(self.value("expires_at")) {
            Ok(Some(at)) => {
                body.insert("expires_at".into(), json!(at));
            }
            Ok(None) if !creating => {
                body.insert("expires_at".into(), Value::Null);
            }
            Ok(None) => {}
            Err(reason) => {
                self.errors.insert("expires_at".into(), reason);
            }
        }
        match self.value("redirect_type").parse::<u16>() {
            Ok(status) => {
                body.insert("redirect_type".into(), json!(status));
            }
            Err(_) => {
                self.errors
                    .insert("redirect_type".into(), "choose 301, 302, 307 or 308".into());
            }
        }
        body.insert(
            "forward_query".into(),
            json!(self.values.contains_key("forward_query")),
        );
        if creating {
            let alias = self.value("alias").trim().to_owned();
            if !alias.is_empty() {
                body.insert("alias".into(), json!(alias));
            }
        }
        // A password is sent only when typed (it is never shown back);
        // removal only when asked for.
        let password = self.value("password").to_owned();
        if self.values.contains_key("remove_password") {
            body.insert("password".into(), Value::Null);
        } else if !password.is_empty() {
            body.insert("password".into(), json!(password));
        }
        self.errors.is_empty().then_some(Value::Object(body))
    }
}

pub(super) const LINK_FIELDS: [&str; 8] = [
    "url",
    "alias",
    "title",
    "tags",
    "expires_at",
    "redirect_type",
    "forward_query",
    "password",
];

pub(super) fn field_error(form: &LinkForm, name: &str) -> Markup {
    html! {
        @if let Some(reason) = form.errors.get(name) {
            span.field-error id={ (name) "-error" } role="alert" { (reason) }
        }
    }
}

/// The fields a new link and a change share.
pub(super) fn link_fields(form: &LinkForm, creating: bool) -> Markup {
    let redirect = match form.value("redirect_type") {
        "" => "302",
        other => other,
    };
    html! {
        div {
            label for="url" { "Target URL" }
            input #url type="url" name="url" required maxlength="2048" value=(form.value("url"))
                placeholder="https://example.com/page";
            (field_error(form, "url"))
        }
        @if creating {
            div {
                label for="alias" { "Alias " span.hint { "(optional: your own code, 3-64 of letters, digits, - and _)" } }
                input #alias type="text" name="alias" maxlength="64" value=(form.value("alias"))
                    pattern="[A-Za-z0-9_-]{3,64}" autocomplete="off";
                (field_error(form, "alias"))
            }
        }
        div {
            label for="title" { "Title " span.hint { "(optional)" } }
            input #title type="text" name="title" maxlength="200" value=(form.value("title"));
            (field_error(form, "title"))
        }
        div {
            label for="tags" { "Tags " span.hint { "(optional: up to 10, separated by commas; a-z, 0-9 and -)" } }
            input #tags type="text" name="tags" value=(form.value("tags")) autocomplete="off";
            (field_error(form, "tags"))
        }
        div {
            label for="expires_at" { "Expires " span.hint { "(optional, UTC)" } }
            input #expires_at type="datetime-local" name="expires_at" value=(form.value("expires_at"));
            (field_error(form, "expires_at"))
        }
        div {
            label for="redirect_type" { "Redirect type" }
            select #redirect_type name="redirect_type" {
                @for (status, text) in [("302", "302 Found (default)"), ("301", "301 Moved Permanently"), ("307", "307 Temporary Redirect"), ("308", "308 Permanent Redirect")] {
                    option value=(status) selected[redirect == status] { (text) }
                }
            }
            (field_error(form, "redirect_type"))
        }
        div {
            label.check for="forward_query" {
                input #forward_query type="checkbox" name="forward_query" checked[form.values.contains_key("forward_query")];
                "Forward the visitor's query string to the target"
            }
        }
        @let protected = form.values.contains_key("protected");
        div {
            label for="password" {
                @if protected { "New password " span.hint { "(the link has one; leave empty to keep it)" } }
                @else { "Password " span.hint { "(optional: visitors must give it before the redirect)" } }
            }
            input #password type="password" name="password" minlength="4" maxlength="128" autocomplete="new-password";
            (field_error(form, "password"))
        }
        @if protected {
            div {
                label.check for="remove_password" {
                    input #remove_password type="checkbox" name="remove_password";
                    "Remove the password"
                }
            }
        }
    }
}

// ---------------------------------------------------------------- the list
