//! Import: upload a CSV, see what will happen row by row, then create the
//! links through the shortener's bulk API.
//!
//! Memory stays bounded whatever the file's size: the upload is written to
//! a temporary file as it arrives, read back a record at a time, the rows
//! to import are kept in a second temporary file (JSON lines), and the
//! import sends them 1,000 at a time. The files go when the import is done
//! or abandoned (after an hour).

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;

use actix_multipart::Multipart;
use actix_web::{HttpResponse, web};
use futures::{StreamExt, TryStreamExt};
use maud::{Markup, html};
use serde::de::IgnoredAny;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

use super::{CsrfForm, Nav, PageError, SignedIn, State, csrf_field, render};
use crate::import::{self, Reading, Row, RowError};
use crate::session::{Session, random_token, tokens_match};
use crate::upstream::CallError;

/// Largest upload.
const MAX_UPLOAD_BYTES: usize = 32 * 1024 * 1024;
/// Errors listed on a page (all are counted).
const MAX_LISTED: usize = 500;
/// Rows per bulk request.
const BULK_ROWS: usize = 1000;
/// Alias checks at the shortener at once, for the preview.
const ALIAS_CHECKS_AT_ONCE: usize = 16;

/// An import between its preview and its run.
pub struct PendingImport {
    /// The session that uploaded it; no other may run it.
    session_id: String,
    /// The rows to create, one JSON object per line.
    rows: PathBuf,
    count: u64,
}

impl Drop for PendingImport {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.rows);
    }
}

/// Where the console keeps its temporary files.
pub fn scratch_dir() -> PathBuf {
    std::env::temp_dir().join(format!("url-shortener-console-{}", std::process::id()))
}

fn scratch_file(suffix: &str) -> Result<PathBuf, PageError> {
    let dir = scratch_dir();
    std::fs::create_dir_all(&dir)
        .map_err(|e| PageError::Upstream(format!("no room for the upload: {e}")))?;
    Ok(dir.join(format!("{}.{suffix}", random_token())))
}

/// Removes a file when dropped.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn import_form(session: &Session, error: Option<&str>) -> HttpResponse {
    let body = html! {
        h1 { "Import links" }
        p.muted {
            "A CSV export of this console, YOURLS, Kutt, Shlink or Bitly, or any CSV with a "
            code { "url" } " column (and optionally " code { "alias" } ", " code { "title" } ", "
            code { "tags" } ", " code { "expires_at" } "). You see every row's problem before anything is created."
        }
        @if let Some(error) = error { p.error role="alert" { (error) } }
        form.stack.card method="post" action="/links/import" enctype="multipart/form-data" {
            (csrf_field(session))
            div {
                label for="file" { "CSV file" }
                input #file type="file" name="file" accept=".csv,text/csv" required;
            }
            div { button type="submit" { "Preview" } }
        }
    };
    render(Some(session), "Import links", Nav::Import, body)
}

pub async fn form(SignedIn { session, .. }: SignedIn) -> Result<HttpResponse, PageError> {
    Ok(import_form(&session, None))
}

/// Writes the multipart upload's `file` to `path`; the CSRF field's value.
async fn receive(mut upload: Multipart, path: &PathBuf) -> Result<Option<String>, String> {
    let mut csrf = None;
    let mut written = 0usize;
    let mut got_file = false;
    while let Some(mut field) = upload.try_next().await.map_err(|e| e.to_string())? {
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "csrf" => {
                let mut value = Vec::new();
                while let Some(chunk) = field.try_next().await.map_err(|e| e.to_string())? {
                    value.extend_from_slice(&chunk);
                    if value.len() > 256 {
                        return Err("the form is malformed".into());
                    }
                }
                csrf = Some(String::from_utf8_lossy(&value).into_owned());
            }
            "file" => {
                got_file = true;
                let mut file = tokio::fs::File::create(path)
                    .await
                    .map_err(|e| e.to_string())?;
                while let Some(chunk) = field.try_next().await.map_err(|e| e.to_string())? {
                    written += chunk.len();
                    if written > MAX_UPLOAD_BYTES {
                        return Err(format!(
                            "the file is larger than {} MiB; split it",
                            MAX_UPLOAD_BYTES / 1024 / 1024
                        ));
                    }
                    file.write_all(&chunk).await.map_err(|e| e.to_string())?;
                }
                file.flush().await.map_err(|e| e.to_string())?;
            }
            _ => {
                // Drained and ignored.
                while field.try_next().await.map_err(|e| e.to_string())?.is_some() {}
            }
        }
    }
    if !got_file {
        return Err("choose a CSV file".into());
    }
    Ok(csrf)
}

/// `POST /links/import`: the upload, read and checked; the preview.
pub async fn preview(
    state: State,
    SignedIn { session, client }: SignedIn,
    upload: Multipart,
) -> Result<HttpResponse, PageError> {
    let upload_path = TempFile(scratch_file("csv")?);
    let csrf = match receive(upload, &upload_path.0).await {
        Ok(csrf) => csrf,
        Err(reason) => return Ok(refused(&session, &reason)),
    };
    if !csrf.is_some_and(|token| tokens_match(&token, &session.csrf)) {
        return Err(PageError::Csrf);
    }
    let rows_path = scratch_file("jsonl")?;
    let (mut reading, count, aliases) = match parse_upload(&upload_path.0, &rows_path).await? {
        Ok(parsed) => parsed,
        Err(reason) => {
            let _ = std::fs::remove_file(&rows_path);
            return Ok(refused(&session, &reason));
        }
    };
    let taken = taken_aliases(&state, &session.data.key, &client, aliases).await;
    let taken_count = taken.len() as u64;
    reading.errors.extend(taken);
    reading.errors.sort_by_key(|e| e.line);
    reading.errors.truncate(MAX_LISTED);
    let id = random_token();
    state.imports.insert(
        id.clone(),
        Arc::new(PendingImport {
            session_id: session.id.clone(),
            rows: rows_path,
            count,
        }),
    );
    let preview = Preview {
        format: reading.format.name(),
        rows: reading.rows,
        valid: count,
        taken: taken_count,
        errors: reading.errors,
        id,
    };
    Ok(render(
        Some(&session),
        "Import preview",
        Nav::Import,
        preview_card(&session, &preview),
    ))
}

/// What an upload's preview shows.
struct Preview {
    format: &'static str,
    rows: u64,
    /// Rows that can be imported (some may still meet a taken alias).
    valid: u64,
    /// Of those, the rows whose alias is taken already.
    taken: u64,
    /// The first problems, by line.
    errors: Vec<RowError>,
    /// The pending import the preview's button runs.
    id: String,
}

/// Reads the uploaded CSV into one JSON row a line at `rows_path`; the
/// reading (format, rows, problems), the rows kept, and each row's alias.
/// Parsing is synchronous, a record at a time: off the async workers.
async fn parse_upload(
    upload: &std::path::Path,
    rows_path: &std::path::Path,
) -> Result<Result<(Reading, u64, Vec<(u64, String)>), String>, PageError> {
    let (source, pending_rows) = (upload.to_owned(), rows_path.to_owned());
    tokio::task::spawn_blocking(move || -> Result<_, String> {
        let input = std::fs::File::open(&source).map_err(|e| e.to_string())?;
        let mut out =
            BufWriter::new(std::fs::File::create(&pending_rows).map_err(|e| e.to_string())?);
        let mut count = 0u64;
        let mut aliases = Vec::new();
        let reading = import::read(std::io::BufReader::new(input), MAX_LISTED, |row: Row| {
            if let Some(alias) = &row.alias {
                aliases.push((row.line, alias.clone()));
            }
            count += 1;
            serde_json::to_writer(&mut out, &row)?;
            out.write_all(b"\n")
        })?;
        out.flush().map_err(|e| e.to_string())?;
        Ok((reading, count, aliases))
    })
    .await
    .map_err(|e| PageError::Upstream(format!("reading the file failed: {e}")))
}

/// Aliases already taken (that this key can see) fail at import: say so now.
async fn taken_aliases(
    state: &State,
    key: &str,
    client: &str,
    aliases: Vec<(u64, String)>,
) -> Vec<RowError> {
    futures::stream::iter(aliases)
        .map(|(line, alias)| async move {
            match state.upstream.link(key, client, &alias).await {
                Ok(_) | Err(CallError::Problem(crate::upstream::Problem { status: 410, .. })) => {
                    Some(RowError {
                        line,
                        field: "alias",
                        reason: format!("{alias:?} is taken"),
                    })
                }
                _ => None,
            }
        })
        .buffer_unordered(ALIAS_CHECKS_AT_ONCE)
        .filter_map(|found| async move { found })
        .collect()
        .await
}

fn preview_card(session: &Session, preview: &Preview) -> Markup {
    let cannot = preview.rows - preview.valid;
    let refused_rows = cannot + preview.taken;
    html! {
        h1 { "Import preview" }
        div.card #preview {
            p { "Read as " b { (preview.format) } ": " b #rows-read { (preview.rows) } " rows." }
            p {
                b #rows-valid { (preview.valid) } " can be imported"
                @if preview.taken > 0 { " (of which " (preview.taken) " will be refused: their alias is taken)" }
                "; " b #rows-refused { (cannot) } " cannot be."
            }
            @if !preview.errors.is_empty() {
                div.table-wrap {
                    table #row-errors {
                        thead { tr { th.num { "Line" } th { "Field" } th { "Problem" } } }
                        tbody {
                            @for error in &preview.errors {
                                tr { td.num { (error.line) } td { (error.field) } td { (error.reason) } }
                            }
                        }
                    }
                }
                @if refused_rows as usize > preview.errors.len() { p.muted { "The first " (MAX_LISTED) " problems are listed." } }
            }
            @if preview.valid > 0 {
                form method="post" action={ "/links/import/" (preview.id) } {
                    (csrf_field(session))
                    button type="submit" { "Import " (preview.valid) " links" }
                }
            }
            p { a href="/links/import" { "Choose another file" } }
        }
    }
}

fn refused(session: &Session, reason: &str) -> HttpResponse {
    let mut response = import_form(session, Some(reason));
    *response.status_mut() = actix_web::http::StatusCode::UNPROCESSABLE_ENTITY;
    response
}

/// One row's outcome.
struct Outcome {
    line: u64,
    status: u16,
    detail: String,
}

/// What an import did.
#[derive(Default)]
struct Done {
    created: u64,
    refused: u64,
    /// The first refused rows, with the shortener's reason.
    listed: Vec<Outcome>,
}

impl Done {
    fn count(&mut self, row: &Row, status: u16, detail: impl FnOnce() -> String) {
        if status == 201 {
            self.created += 1;
            return;
        }
        self.refused += 1;
        if self.listed.len() < MAX_LISTED {
            self.listed.push(Outcome {
                line: row.line,
                status,
                detail: detail(),
            });
        }
    }
}

/// `POST /links/import/{id}`: the previewed rows, created 1,000 at a time.
pub async fn run(
    state: State,
    id: web::Path<String>,
    form: CsrfForm<IgnoredAny>,
) -> Result<HttpResponse, PageError> {
    let SignedIn { session, client } = form.signed_in;
    let pending = state
        .imports
        .get(id.as_str())
        .filter(|p| tokens_match(&p.session_id, &session.id))
        .ok_or_else(|| {
            PageError::NotFound("this import is done, or was never previewed here".into())
        })?;
    state.imports.invalidate(id.as_str());
    let done = create_rows(&state, &session.data.key, &client, &pending.rows).await?;
    Ok(render(
        Some(&session),
        "Import done",
        Nav::Import,
        done_card(pending.count, &done),
    ))
}

/// Creates the rows previewed at `rows`, `BULK_ROWS` per bulk request.
async fn create_rows(
    state: &State,
    key: &str,
    client: &str,
    rows: &std::path::Path,
) -> Result<Done, PageError> {
    let file = tokio::fs::File::open(rows)
        .await
        .map_err(|e| PageError::Upstream(format!("the previewed rows are gone: {e}")))?;
    let mut lines = tokio::io::BufReader::new(file).lines();
    let mut done = Done::default();
    let mut batch: Vec<Row> = Vec::with_capacity(BULK_ROWS);
    let mut ended = false;
    while !ended {
        match lines.next_line().await {
            Ok(Some(line)) => {
                if let Ok(row) = serde_json::from_str::<Row>(&line) {
                    batch.push(row);
                }
            }
            Ok(None) => ended = true,
            Err(e) => {
                return Err(PageError::Upstream(format!(
                    "the previewed rows are unreadable: {e}"
                )));
            }
        }
        if batch.len() == BULK_ROWS || (ended && !batch.is_empty()) {
            let bodies: Vec<serde_json::Value> = batch.iter().map(Row::body).collect();
            let items = state
                .upstream
                .bulk_create(key, client, &bodies)
                .await
                .map_err(PageError::from_call)?;
            for (row, item) in batch.drain(..).zip(items) {
                done.count(&row, item.status, || {
                    item.problem.map(|p| p.detail).unwrap_or_default()
                });
            }
        }
    }
    Ok(done)
}

fn done_card(previewed: u64, done: &Done) -> Markup {
    html! {
        h1 { "Import done" }
        div.card #import-result {
            p.flash role="status" { "Created " b #created { (done.created) } " of " (previewed) " links." }
            @if done.refused > 0 {
                p { b #refused { (done.refused) } " refused by the shortener:" }
                div.table-wrap {
                    table #refused-rows {
                        thead { tr { th.num { "Line" } th.num { "Status" } th { "Why" } } }
                        tbody {
                            @for outcome in &done.listed {
                                tr { td.num { (outcome.line) } td.num { (outcome.status) } td { (outcome.detail) } }
                            }
                        }
                    }
                }
            }
            p { a href="/links" { "See your links" } }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(line: u64) -> Row {
        Row {
            line,
            url: "https://example.com/".into(),
            alias: None,
            title: None,
            tags: Vec::new(),
            expires_at: None,
        }
    }

    #[test]
    fn an_import_counts_every_row_and_lists_the_first_refusals() {
        let mut done = Done::default();
        done.count(&row(2), 201, || unreachable!("a created row has no reason"));
        for line in 3..(4 + MAX_LISTED as u64) {
            done.count(&row(line), 409, || format!("line {line} is taken"));
        }
        assert_eq!((done.created, done.refused), (1, 1 + MAX_LISTED as u64));
        assert_eq!(done.listed.len(), MAX_LISTED);
        assert_eq!(done.listed[0].line, 3);
        let page = done_card(3 + MAX_LISTED as u64, &done).into_string();
        assert!(page.contains("<b id=\"created\">1</b>"), "{page}");
        assert!(page.contains("line 3 is taken"));
    }
}
