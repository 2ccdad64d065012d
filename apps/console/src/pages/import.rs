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
use actix_web::{HttpRequest, HttpResponse, web};
use futures::{StreamExt, TryStreamExt};
use maud::html;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

use super::{Fields, Nav, PageError, State, check_csrf, client_ip, csrf_field, render, signed_in};
use crate::import::{self, Row, RowError};
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

pub async fn form(state: State, request: HttpRequest) -> Result<HttpResponse, PageError> {
    let session = signed_in(&state, &request)?;
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
    request: HttpRequest,
    upload: Multipart,
) -> Result<HttpResponse, PageError> {
    let session = signed_in(&state, &request)?;
    let upload_path = TempFile(scratch_file("csv")?);
    let csrf = match receive(upload, &upload_path.0).await {
        Ok(csrf) => csrf,
        Err(reason) => return Ok(refused(&session, &reason)),
    };
    if !csrf.is_some_and(|token| tokens_match(&token, &session.csrf)) {
        return Err(PageError::Csrf);
    }
    let rows_path = scratch_file("jsonl")?;
    let pending_rows = rows_path.clone();
    let source = upload_path.0.clone();
    // Parsing is synchronous, a record at a time: off the async workers.
    let parsed = tokio::task::spawn_blocking(move || -> Result<_, String> {
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
    .map_err(|e| PageError::Upstream(format!("reading the file failed: {e}")))?;
    let (mut reading, count, aliases) = match parsed {
        Ok(parsed) => parsed,
        Err(reason) => {
            let _ = std::fs::remove_file(&rows_path);
            return Ok(refused(&session, &reason));
        }
    };
    // Aliases already taken (that this key can see) fail at import: say so now.
    let client = client_ip(&request).to_string();
    let key = session.data.key.clone();
    let taken: Vec<RowError> = futures::stream::iter(aliases)
        .map(|(line, alias)| {
            let (state, key, client) = (state.clone(), key.clone(), client.clone());
            async move {
                match state.upstream.link(&key, &client, &alias).await {
                    Ok(_)
                    | Err(CallError::Problem(crate::upstream::Problem { status: 410, .. })) => {
                        Some(RowError {
                            line,
                            field: "alias",
                            reason: format!("{alias:?} is taken"),
                        })
                    }
                    _ => None,
                }
            }
        })
        .buffer_unordered(ALIAS_CHECKS_AT_ONCE)
        .filter_map(|found| async move { found })
        .collect()
        .await;
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
    let refused_rows = reading.rows - count + taken_count;
    let body = html! {
        h1 { "Import preview" }
        div.card #preview {
            p { "Read as " b { (reading.format.name()) } ": " b #rows-read { (reading.rows) } " rows." }
            p {
                b #rows-valid { (count) } " can be imported"
                @if taken_count > 0 { " (of which " (taken_count) " will be refused: their alias is taken)" }
                "; " b #rows-refused { (reading.rows - count) } " cannot be."
            }
            @if !reading.errors.is_empty() {
                div.table-wrap {
                    table #row-errors {
                        thead { tr { th.num { "Line" } th { "Field" } th { "Problem" } } }
                        tbody {
                            @for error in &reading.errors {
                                tr { td.num { (error.line) } td { (error.field) } td { (error.reason) } }
                            }
                        }
                    }
                }
                @if refused_rows as usize > reading.errors.len() { p.muted { "The first " (MAX_LISTED) " problems are listed." } }
            }
            @if count > 0 {
                form method="post" action={ "/links/import/" (id) } {
                    (csrf_field(&session))
                    button type="submit" { "Import " (count) " links" }
                }
            }
            p { a href="/links/import" { "Choose another file" } }
        }
    };
    Ok(render(Some(&session), "Import preview", Nav::Import, body))
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

/// `POST /links/import/{id}`: the previewed rows, created 1,000 at a time.
pub async fn run(
    state: State,
    request: HttpRequest,
    id: web::Path<String>,
    fields: Fields,
) -> Result<HttpResponse, PageError> {
    let session = signed_in(&state, &request)?;
    check_csrf(&session, &fields)?;
    let pending = state
        .imports
        .get(id.as_str())
        .filter(|p| tokens_match(&p.session_id, &session.id))
        .ok_or_else(|| {
            PageError::NotFound("this import is done, or was never previewed here".into())
        })?;
    state.imports.invalidate(id.as_str());
    let client = client_ip(&request).to_string();
    let file = tokio::fs::File::open(&pending.rows)
        .await
        .map_err(|e| PageError::Upstream(format!("the previewed rows are gone: {e}")))?;
    let mut lines = tokio::io::BufReader::new(file).lines();
    let (mut created, mut refused) = (0u64, 0u64);
    let mut listed: Vec<Outcome> = Vec::new();
    let mut batch: Vec<Row> = Vec::with_capacity(BULK_ROWS);
    let mut done = false;
    while !done {
        match lines.next_line().await {
            Ok(Some(line)) => {
                if let Ok(row) = serde_json::from_str::<Row>(&line) {
                    batch.push(row);
                }
            }
            Ok(None) => done = true,
            Err(e) => {
                return Err(PageError::Upstream(format!(
                    "the previewed rows are unreadable: {e}"
                )));
            }
        }
        if batch.len() == BULK_ROWS || (done && !batch.is_empty()) {
            let bodies: Vec<serde_json::Value> = batch.iter().map(Row::body).collect();
            let items = state
                .upstream
                .bulk_create(&session.data.key, &client, &bodies)
                .await
                .map_err(PageError::from_call)?;
            for (row, item) in batch.drain(..).zip(items) {
                if item.status == 201 {
                    created += 1;
                } else {
                    refused += 1;
                    if listed.len() < MAX_LISTED {
                        let detail = item.problem.map(|p| p.detail).unwrap_or_default();
                        listed.push(Outcome {
                            line: row.line,
                            status: item.status,
                            detail,
                        });
                    }
                }
            }
        }
    }
    let body = html! {
        h1 { "Import done" }
        div.card #import-result {
            p.flash role="status" { "Created " b #created { (created) } " of " (pending.count) " links." }
            @if refused > 0 {
                p { b #refused { (refused) } " refused by the shortener:" }
                div.table-wrap {
                    table #refused-rows {
                        thead { tr { th.num { "Line" } th.num { "Status" } th { "Why" } } }
                        tbody {
                            @for outcome in &listed {
                                tr { td.num { (outcome.line) } td.num { (outcome.status) } td { (outcome.detail) } }
                            }
                        }
                    }
                }
            }
            p { a href="/links" { "See your links" } }
        }
    };
    Ok(render(Some(&session), "Import done", Nav::Import, body))
}
