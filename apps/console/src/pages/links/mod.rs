//! Links: the list, a new link, a link's page (edit, delete, QR, stats).

use std::collections::HashMap;

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use maud::{Markup, html};
use serde::de::IgnoredAny;
use serde_json::{Value, json};

use super::{
    CsrfForm, Nav, PageError, SignedIn, State, csrf_field, query_string, render, see_other,
};
use crate::charts::{chart, count, top_list};
use crate::session::Session;
use crate::upstream::{CallError, Link, Problem, Stats, segment};

/// Links on one page of the list.
const PAGE_SIZE: &str = "25";

mod form;
mod stats;

use form::*;
use stats::*;

/// `GET /links`: a page of the links, searched, filtered and sorted.
pub async fn list(
    state: State,
    SignedIn { session, client }: SignedIn,
    web::Query(params): web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, PageError> {
    let param = |name: &str| params.get(name).cloned().unwrap_or_default();
    let search = Search {
        q: param("q"),
        tag: param("tag").trim().to_owned(),
        sort: param("sort"),
        cursor: param("cursor"),
    };
    let upstream_query = query_string([
        ("limit", PAGE_SIZE),
        ("q", &search.q),
        ("tag", &search.tag),
        ("sort", &search.sort),
        ("cursor", &search.cursor),
    ]);
    let (links, next, error) = match state
        .upstream
        .list_links(&session.data.key, &client, &upstream_query)
        .await
    {
        Ok(page) => (page.items, page.next_cursor, None),
        // A bad search (a tag with capitals, ...) is the user's to fix.
        Err(CallError::Problem(p)) if p.status == 400 => (Vec::new(), None, Some(p.detail)),
        Err(error) => return Err(PageError::from_call(error)),
    };
    let page = LinkList {
        deleted: params.get("deleted").cloned(),
        search,
        links,
        next,
        error,
    };
    Ok(render(
        Some(&session),
        "Links",
        Nav::Links,
        link_list(&page),
    ))
}

/// What the list was asked for.
struct Search {
    q: String,
    tag: String,
    sort: String,
    cursor: String,
}

impl Search {
    fn filtered(&self) -> bool {
        !self.q.is_empty() || !self.tag.is_empty()
    }

    /// The query of this search from its first page, or after `cursor`.
    fn query(&self, cursor: Option<&str>) -> String {
        let mut pairs = vec![
            ("q", self.q.as_str()),
            ("tag", self.tag.as_str()),
            ("sort", self.sort.as_str()),
        ];
        pairs.extend(cursor.map(|c| ("cursor", c)));
        query_string(pairs)
    }
}

/// The links page: one page of links, and how to get to the next.
struct LinkList {
    /// The code just deleted, to confirm.
    deleted: Option<String>,
    search: Search,
    links: Vec<Link>,
    next: Option<String>,
    /// Why the search was refused.
    error: Option<String>,
}

fn search_form(search: &Search) -> Markup {
    let (q, tag, sort) = (&search.q, &search.tag, search.sort.as_str());
    html! {
        form.inline.card method="get" action="/links" role="search" {
            div {
                label for="q" { "Search" }
                input #q type="search" name="q" value=(q) maxlength="200" placeholder="code, target or title";
            }
            div {
                label for="tag" { "Tag" }
                input #tag type="text" name="tag" value=(tag) maxlength="32" placeholder="any";
            }
            div {
                label for="sort" { "Sort by" }
                select #sort name="sort" {
                    option value="created" selected[sort != "clicks"] { "Newest" }
                    option value="clicks" selected[sort == "clicks"] { "Most clicks" }
                }
            }
            div { button type="submit" { "Search" } }
            @if search.filtered() { div { a href="/links" { "Clear" } } }
            div { a.button.secondary #export href={ "/links/export.csv?" (search.query(None)) } { "Export CSV" } }
            div { a.button.secondary href="/links/import" { "Import CSV" } }
        }
    }
}

fn link_list(page: &LinkList) -> Markup {
    let search = &page.search;
    html! {
        h1 { "Links" }
        @if let Some(code) = &page.deleted {
            p.flash role="status" { "Deleted /" (code) ". Its code now answers 410 Gone and is never reused." }
        }
        (search_form(search))
        @if let Some(error) = &page.error { p.error role="alert" { (error) } }
        div.card {
            @if page.links.is_empty() {
                p #no-links {
                    @if search.filtered() { "No links match." } @else { "No links yet. " a href="/links/new" { "Shorten your first one." } }
                }
            } @else {
                div.table-wrap {
                    table #links {
                        thead { tr {
                            th { "Code" } th { "Title" } th.wide { "Target" } th { "Tags" }
                            th.num { "Clicks" } th.wide { "Created" }
                        } }
                        tbody {
                            @for link in &page.links {
                                tr {
                                    td { a href={ "/links/" (segment(&link.code)) } { (link.code) } }
                                    td { (link.title.as_deref().unwrap_or("")) }
                                    td.target.wide { (link.url) }
                                    td { @for t in &link.tags { a.tag href={ "/links?" (query_string([("tag", t.as_str())])) } { (t) } } }
                                    td.num { (count(link.click_count)) }
                                    td.wide { (when(&link.created_at)) }
                                }
                            }
                        }
                    }
                }
                nav.pages aria-label="Pages" {
                    @if !search.cursor.is_empty() {
                        a #first-page href={ "/links?" (search.query(None)) } { "← First page" }
                    }
                    @if let Some(next) = &page.next {
                        a #next-page href={ "/links?" (search.query(Some(next))) } { "Next page →" }
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------- new link

fn new_page(session: &Session, form: &LinkForm) -> HttpResponse {
    let body = html! {
        h1 { "New link" }
        @if let Some(general) = &form.general { p.error role="alert" { (general) } }
        form.stack.card method="post" action="/links" {
            (csrf_field(session))
            (link_fields(form, true))
            div { button type="submit" { "Shorten" } }
        }
    };
    render(Some(session), "New link", Nav::New, body)
}

pub async fn new_form(SignedIn { session, .. }: SignedIn) -> Result<HttpResponse, PageError> {
    let mut form = LinkForm::default();
    form.values.insert("forward_query".into(), "on".into());
    Ok(new_page(&session, &form))
}

pub async fn create(state: State, form: CsrfForm) -> Result<HttpResponse, PageError> {
    let CsrfForm {
        signed_in: SignedIn { session, client },
        fields,
    } = form;
    let mut form = LinkForm {
        values: fields,
        ..LinkForm::default()
    };
    let refused = |form: &LinkForm| {
        let mut response = new_page(&session, form);
        *response.status_mut() = actix_web::http::StatusCode::UNPROCESSABLE_ENTITY;
        response
    };
    let Some(body) = form.body(true) else {
        return Ok(refused(&form));
    };
    match state
        .upstream
        .create_link(&session.data.key, &client, &body)
        .await
    {
        Ok(link) => Ok(see_other(&format!(
            "/links/{}?created=1",
            segment(&link.code)
        ))),
        Err(CallError::Problem(p)) if p.status == 409 || p.status == 422 => {
            let mut form = form.refused(&p, &LINK_FIELDS);
            if p.status == 409 {
                form.errors.insert("alias".into(), p.detail.clone());
                form.general = None;
            }
            Ok(refused(&form))
        }
        Err(error) => Err(PageError::from_call(error)),
    }
}

// ---------------------------------------------------------------- a link

fn link_page(
    session: &Session,
    link: &Link,
    form: &LinkForm,
    flash: Option<&str>,
    range: Result<&Range, &str>,
    stats: &StatsView,
) -> HttpResponse {
    let code = segment(&link.code);
    let body = html! {
        h1 { "/" (link.code) }
        @if let Some(title) = &link.title { p { b { (title) } } }
        @if let Some(flash) = flash { p.flash role="status" { (flash) } }
        section.card.summary #short aria-labelledby="short-title" {
            div {
            h2 #short-title { "Short URL" }
            div.short {
                label for="short-url" class="muted" { "Short URL" }
                input #short-url type="text" readonly value=(link.short_url);
                button.secondary type="button" hidden data-copy=(link.short_url) aria-controls="short-url" { "Copy" }
                a.button.secondary href=(link.short_url) target="_blank" rel="noopener noreferrer" { "Open" }
            }
            p.muted.target { "→ " (link.url) }
            p.muted {
                "Created " (when(&link.created_at))
                @if let Some(expires) = &link.expires_at { " · expires " (when(expires)) }
                " · " (link.redirect_type) " redirect · " (count(link.click_count)) " redirects served"
            }
            @if link.password_protected {
                p #protected { span.tag { "password protected" } " Visitors give the password before the redirect." }
            }
            @if !link.tags.is_empty() {
                p { @for t in &link.tags { a.tag href={ "/links?" (query_string([("tag", t.as_str())])) } { (t) } } }
            }
            }
            div.qr {
                img #qr src={ "/links/" (code) "/qr?format=svg" } alt={ "QR code of " (link.short_url) } width="200" height="200";
                p {
                    a #qr-svg href={ "/links/" (code) "/qr?format=svg&download=1" } download={ (link.code) ".svg" } { "Download SVG" }
                    " · "
                    a #qr-png href={ "/links/" (code) "/qr?format=png&size=1024&download=1" } download={ (link.code) ".png" } { "Download PNG" }
                }
            }
        }
        (stats_card(&link.code, range, stats))
        section.card #edit aria-labelledby="edit-title" {
            h2 #edit-title { "Edit" }
            @if let Some(general) = &form.general { p.error role="alert" { (general) } }
            form.stack method="post" action={ "/links/" (code) } {
                (csrf_field(session))
                (link_fields(form, false))
                div { button type="submit" { "Save" } }
            }
        }
        section.card #danger aria-labelledby="danger-title" {
            h2 #danger-title { "Delete" }
            p.muted { "The code stops redirecting (410 Gone) and is never handed out again. Its stats stay." }
            form method="get" action={ "/links/" (code) "/delete" } {
                button.danger type="submit" { "Delete" }
            }
        }
    };
    render(Some(session), &format!("/{}", link.code), Nav::Links, body)
}

/// The link with this code, as the signed-in key may read it: the gate
/// every link page passes, stats included.
pub(super) async fn readable_link(
    state: &State,
    session: &Session,
    client: &str,
    code: &str,
) -> Result<Link, PageError> {
    state
        .upstream
        .link(&session.data.key, client, code)
        .await
        .map_err(PageError::from_call)
}

pub async fn show(
    state: State,
    SignedIn { session, client }: SignedIn,
    web::Query(params): web::Query<HashMap<String, String>>,
    code: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let link = readable_link(&state, &session, &client, &code).await?;
    let flash = if params.contains_key("created") {
        Some("Created. Copy the short URL or download its QR code below.")
    } else if params.contains_key("saved") {
        Some("Saved.")
    } else {
        None
    };
    let range = range_of(&params, Utc::now());
    let stats = match &range {
        Ok(range) => stats_of(&state, &link, range).await,
        Err(_) => StatsView::Missing(String::new()),
    };
    Ok(link_page(
        &session,
        &link,
        &LinkForm::of_link(&link),
        flash,
        range.as_ref().map_err(String::as_str),
        &stats,
    ))
}

pub async fn update(
    state: State,
    code: web::Path<String>,
    form: CsrfForm,
) -> Result<HttpResponse, PageError> {
    let CsrfForm {
        signed_in: SignedIn { session, client },
        fields,
    } = form;
    let mut form = LinkForm {
        values: fields,
        ..LinkForm::default()
    };
    let outcome = match form.body(false) {
        Some(body) => state
            .upstream
            .update_link(&session.data.key, &client, &code, &body)
            .await
            .map(drop),
        None => Ok(()),
    };
    let problem = match outcome {
        Ok(()) if form.errors.is_empty() => {
            return Ok(see_other(&format!("/links/{}?saved=1", segment(&code))));
        }
        Ok(()) => None,
        Err(CallError::Problem(p)) if p.status == 409 || p.status == 422 => Some(p),
        Err(error) => return Err(PageError::from_call(error)),
    };
    // Refused: the page again, with what was typed and why.
    if let Some(problem) = problem {
        form = form.refused(&problem, &LINK_FIELDS);
    }
    let link = readable_link(&state, &session, &client, &code).await?;
    if link.password_protected {
        form.values.insert("protected".into(), "yes".into());
    }
    let range = range_of(&HashMap::new(), Utc::now()).map_err(PageError::BadRequest)?;
    let stats = stats_of(&state, &link, &range).await;
    let mut response = link_page(&session, &link, &form, None, Ok(&range), &stats);
    *response.status_mut() = actix_web::http::StatusCode::UNPROCESSABLE_ENTITY;
    Ok(response)
}

pub async fn confirm_delete(
    state: State,
    SignedIn { session, client }: SignedIn,
    code: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let link = readable_link(&state, &session, &client, &code).await?;
    let path = segment(&link.code);
    let body = html! {
        h1 { "Delete /" (link.code) "?" }
        div.card {
            p { (link.short_url) " → " (link.url) }
            p { "It stops redirecting at once (410 Gone), and the code is never handed out again. Its stats stay in analytics." }
            form.inline method="post" action={ "/links/" (path) "/delete" } {
                (csrf_field(&session))
                button.danger type="submit" { "Delete" }
                a href={ "/links/" (path) } { "Cancel" }
            }
        }
    };
    Ok(render(Some(&session), "Delete link", Nav::Links, body))
}

pub async fn delete(
    state: State,
    code: web::Path<String>,
    form: CsrfForm<IgnoredAny>,
) -> Result<HttpResponse, PageError> {
    let SignedIn { session, client } = form.signed_in;
    state
        .upstream
        .delete_link(&session.data.key, &client, &code)
        .await
        .map_err(PageError::from_call)?;
    Ok(see_other(&format!(
        "/links?{}",
        query_string([("deleted", code.as_str())])
    )))
}

/// The link's QR code, fetched with the user's key (a browser cannot send
/// it); `download=1` saves it as a file.
pub async fn qr(
    state: State,
    SignedIn { session, client }: SignedIn,
    web::Query(params): web::Query<HashMap<String, String>>,
    code: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let format = match params.get("format").map(String::as_str) {
        None | Some("svg") => "svg",
        Some("png") => "png",
        Some(other) => {
            return Err(PageError::BadRequest(format!(
                "{other:?} is not a QR format (svg or png)"
            )));
        }
    };
    let size = match params.get("size") {
        None => 256,
        Some(size) => size
            .parse::<u32>()
            .ok()
            .filter(|s| (64..=2048).contains(s))
            .ok_or_else(|| PageError::BadRequest("size must be 64 to 2048".into()))?,
    };
    let (content_type, bytes) = state
        .upstream
        .qr(&session.data.key, &client, &code, format, size)
        .await
        .map_err(PageError::from_call)?;
    let mut response = HttpResponse::Ok();
    response
        .content_type(content_type)
        .insert_header((header::CACHE_CONTROL, "private, no-store"));
    if params.get("download").map(String::as_str) == Some("1") {
        // The code is [A-Za-z0-9_-]: safe in a quoted file name.
        let name: String = code
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        response.insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}.{format}\""),
        ));
    }
    Ok(response.body(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_inputs_are_utc_and_refused_by_name() {
        assert_eq!(
            from_local_input("2026-12-24T18:30").unwrap().as_deref(),
            Some("2026-12-24T18:30:00Z")
        );
        assert_eq!(from_local_input(" ").unwrap(), None);
        assert!(
            from_local_input("tomorrow")
                .unwrap_err()
                .contains("tomorrow")
        );
        assert_eq!(local_input("2026-12-24T18:30:00Z"), "2026-12-24T18:30");
    }

    #[test]
    fn tags_are_split_on_commas_and_spaces() {
        assert_eq!(
            tags_of("Docs, q3-launch  blog,,"),
            ["docs", "q3-launch", "blog"]
        );
        assert!(tags_of("  ").is_empty());
    }

    #[test]
    fn ranges_default_to_a_week_by_hour_and_check_custom_dates() {
        let now = Utc::now();
        let params = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let week = range_of(&params(&[]), now).unwrap();
        assert_eq!((week.name, week.bucket), ("7d", "hour"));
        assert_eq!(week.to - week.from, Duration::days(7));
        let month = range_of(&params(&[("range", "30d")]), now).unwrap();
        assert_eq!(month.bucket, "day");
        let custom = range_of(
            &params(&[
                ("range", "custom"),
                ("from", "2026-11-01"),
                ("to", "2026-11-03"),
                ("bucket", "hour"),
            ]),
            now,
        )
        .unwrap();
        assert_eq!(custom.to - custom.from, Duration::days(3));
        assert_eq!(custom.bucket, "hour");
        assert!(
            range_of(
                &params(&[
                    ("range", "custom"),
                    ("from", "2026-11-03"),
                    ("to", "2026-11-01")
                ]),
                now
            )
            .is_err()
        );
        assert!(range_of(&params(&[("range", "custom")]), now).is_err());
        assert!(range_of(&params(&[("range", "1y")]), now).is_err());
    }
}
