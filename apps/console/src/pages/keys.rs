//! Keys (admins only): create author (or admin) keys and revoke them. A
//! new key is shown once, on the page that answers its creation; it is in
//! no URL, no log and no later page.

use actix_web::{HttpResponse, web};
use maud::html;
use serde::Deserialize;
use serde::de::IgnoredAny;
use std::collections::HashMap;

use super::{Admin, CsrfForm, Nav, PageError, SignedIn, State, csrf_field, render, see_other};
use crate::session::Session;
use crate::upstream::{ApiKey, CallError, NewApiKey, segment};

fn when(value: &Option<String>) -> String {
    value
        .as_deref()
        .map(|t| t.get(..16).unwrap_or(t).replace('T', " ") + " UTC")
        .unwrap_or_else(|| "—".into())
}

fn keys_page(
    session: &Session,
    keys: &[ApiKey],
    created: Option<&NewApiKey>,
    error: Option<(&str, &str)>,
    flash: Option<String>,
) -> HttpResponse {
    let body = html! {
        h1 { "Keys" }
        p.muted { "An author key sees and changes only its own links; an admin key sees all and manages keys. Keys are stored as digests: a key is shown once, when it is made." }
        @if let Some(flash) = flash { p.flash role="status" { (flash) } }
        @if let Some(new) = created {
            div.flash #new-key role="status" {
                p { "Key " b { (new.name) } " created. Copy it now: it is not shown again." }
                div.short {
                    label for="new-key-value" { "Key" }
                    input #new-key-value type="text" readonly value=(new.key);
                    button.secondary type="button" hidden data-copy=(new.key) aria-controls="new-key-value" { "Copy" }
                }
            }
        }
        form.inline.card method="post" action="/keys" {
            (csrf_field(session))
            div {
                label for="name" { "Name" }
                input #name type="text" name="name" required maxlength="64" pattern="[A-Za-z0-9_.@-]{1,64}" placeholder="alice";
                @if let Some(("name", reason)) = error { span.field-error role="alert" { (reason) } }
            }
            div {
                label for="role" { "Role" }
                select #role name="role" {
                    option value="author" selected { "author" }
                    option value="admin" { "admin" }
                }
            }
            div { button type="submit" { "Create key" } }
        }
        @if let Some((field, reason)) = error {
            @if field != "name" { p.error role="alert" { (reason) } }
        }
        div.card.table-wrap {
            table #keys {
                thead { tr { th { "Name" } th { "Role" } th.wide { "Created" } th { "Last used" } th { "Status" } th {} } }
                tbody {
                    @for key in keys {
                        tr {
                            td { (key.name) }
                            td { (key.role) }
                            td.wide { (when(&Some(key.created_at.clone()))) }
                            td { (when(&key.last_used_at)) }
                            td {
                                @if key.revoked_at.is_some() { span.status.down { "revoked" } } @else { span.status { "live" } }
                            }
                            td {
                                @if key.revoked_at.is_none() {
                                    form method="post" action={ "/keys/" (segment(&key.name)) "/revoke" }
                                        data-confirm={ "Revoke the key " (key.name) "? Whoever uses it is signed out." } {
                                        (csrf_field(session))
                                        button.link type="submit" { "Revoke" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    render(Some(session), "Keys", Nav::Keys, body)
}

pub async fn list(
    state: State,
    Admin(SignedIn { session, client }): Admin,
    web::Query(params): web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, PageError> {
    let keys = state
        .upstream
        .keys(&session.data.key, &client)
        .await
        .map_err(PageError::from_call)?;
    let flash = params
        .get("revoked")
        .map(|name| format!("Revoked {name}. It stops working within seconds everywhere."));
    Ok(keys_page(&session, &keys, None, None, flash))
}

/// The new key form's fields.
#[derive(Deserialize)]
pub struct NewKey {
    #[serde(default)]
    name: String,
    #[serde(default = "author")]
    role: String,
}

fn author() -> String {
    "author".to_owned()
}

pub async fn create(state: State, form: CsrfForm<NewKey>) -> Result<HttpResponse, PageError> {
    let CsrfForm {
        signed_in: SignedIn { session, client },
        fields,
    } = form.of_admin()?;
    let created = state
        .upstream
        .create_key(&session.data.key, &client, fields.name.trim(), &fields.role)
        .await;
    let keys = state
        .upstream
        .keys(&session.data.key, &client)
        .await
        .map_err(PageError::from_call)?;
    match created {
        Ok(new) => Ok(keys_page(&session, &keys, Some(&new), None, None)),
        Err(CallError::Problem(p)) if p.status == 409 || p.status == 422 => {
            let field = if p.reason_for("role").is_some() {
                "role"
            } else {
                "name"
            };
            let reason = p.reason_for(field).unwrap_or(&p.detail).to_owned();
            let mut response = keys_page(&session, &keys, None, Some((field, &reason)), None);
            *response.status_mut() = actix_web::http::StatusCode::UNPROCESSABLE_ENTITY;
            Ok(response)
        }
        Err(error) => Err(PageError::from_call(error)),
    }
}

pub async fn revoke(
    state: State,
    name: web::Path<String>,
    form: CsrfForm<IgnoredAny>,
) -> Result<HttpResponse, PageError> {
    let SignedIn { session, client } = form.of_admin()?.signed_in;
    state
        .upstream
        .revoke_key(&session.data.key, &client, &name)
        .await
        .map_err(PageError::from_call)?;
    Ok(see_other(&format!(
        "/keys?{}",
        super::query_string([("revoked", name.as_str())])
    )))
}
