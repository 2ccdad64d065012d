//! The OpenAPI document, generated from the handlers and types themselves.

use actix_web::HttpResponse;
use service_kit::openapi::KeySecurity;
use utoipa::{Modify, OpenApi};

use super::keys::{self, CreateKeyRequest, KeyResponse, NewKeyResponse};
use super::links::{
    self, BulkCreateBody, BulkItem, BulkResult, CreateLinkRequest, LinkPage, LinkResponse,
    UpdateLinkRequest,
};
use super::{qr, redirect};
use crate::domain::RESERVED_WORDS;
use crate::keys::{Caller, Role};
use crate::probes::StatusResponse;
use crate::problem::{InvalidParam, ProblemBody};

/// The OpenAPI document of this API, generated from the handlers and types
/// themselves so it cannot drift from them.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "URL shortener",
        version = "1.0.0",
        description = "Short links with redirects. Errors are RFC 7807 application/problem+json."
    ),
    paths(
        links::create_link,
        links::bulk_create,
        links::list_links,
        links::get_link,
        links::update_link,
        links::delete_link,
        qr::link_qr,
        redirect::redirect,
        redirect::redirect_head,
        redirect::unlock,
        keys::list_keys,
        keys::create_key_handler,
        keys::revoke_key_handler,
        crate::probes::status
    ),
    components(schemas(
        LinkResponse,
        LinkPage,
        BulkCreateBody,
        BulkItem,
        BulkResult,
        CreateLinkRequest,
        UpdateLinkRequest,
        KeyResponse,
        NewKeyResponse,
        CreateKeyRequest,
        Role,
        StatusResponse,
        ProblemBody,
        InvalidParam
    )),
    modifiers(&KEY_SECURITY, &UpdateNeedsAChange),
    tags(
        (name = "links", description = "Create and manage links (an author key: its own links only)"),
        (name = "keys", description = "API keys (admin keys only)"),
        (name = "redirect", description = "Follow a short link (no key needed)"),
        (name = "operations", description = "How this instance is doing (any key)")
    )
)]
pub struct ApiDoc;

const KEY_SECURITY: KeySecurity = KeySecurity {
    description: "An API key; every endpoint but the redirects, health, readiness and metrics needs one",
};

/// A change must change something.
struct UpdateNeedsAChange;

impl Modify for UpdateNeedsAChange {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        // A change must change something; utoipa's attribute for this
        // writes maxProperties, so it is set here.
        if let Some(utoipa::openapi::RefOr::T(utoipa::openapi::schema::Schema::Object(update))) =
            components.schemas.get_mut("UpdateLink")
        {
            update.min_properties = Some(1);
        }
    }
}

/// The document as JSON, built once.
pub fn openapi_json() -> &'static str {
    static DOCUMENT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let mut document =
            serde_json::to_value(ApiDoc::openapi()).expect("the OpenAPI document serialises");
        refuse_reserved_aliases(&mut document);
        serde_json::to_string_pretty(&document).expect("the OpenAPI document serialises")
    });
    &DOCUMENT
}

/// States the reserved words an alias may not be, as a `not` (which utoipa's
/// model lacks): any case of each, so the document refuses exactly what the
/// service does.
fn refuse_reserved_aliases(document: &mut serde_json::Value) {
    let any_case = |word: &str| -> String {
        word.chars()
            .map(|c| match c.is_ascii_alphabetic() {
                true => format!("[{}{}]", c.to_ascii_uppercase(), c.to_ascii_lowercase()),
                false => c.to_string(),
            })
            .collect()
    };
    let words: Vec<String> = RESERVED_WORDS.iter().map(|w| any_case(w)).collect();
    let alias = &mut document["components"]["schemas"]["Alias"];
    assert!(alias.is_object(), "the document describes an alias");
    alias["not"] = serde_json::json!({
        "type": "string",
        "pattern": format!("^(?:{})$", words.join("|")),
    });
}

/// `GET /api/v1/openapi.json`, for any valid key (`shortener openapi`
/// prints it without one).
pub(super) async fn openapi_document(_: Caller) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(openapi_json())
}
