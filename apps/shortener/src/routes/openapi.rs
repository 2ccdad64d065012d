//! The OpenAPI document, generated from the handlers and types themselves.

use actix_web::HttpResponse;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::links::{self, CreateLinkRequest, LinkPage, LinkResponse, UpdateLinkRequest};
use super::redirect;
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
        links::list_links,
        links::get_link,
        links::update_link,
        links::delete_link,
        redirect::redirect,
        redirect::redirect_head
    ),
    components(schemas(LinkResponse, LinkPage, CreateLinkRequest, UpdateLinkRequest, ProblemBody, InvalidParam)),
    modifiers(&ApiKeySecurity),
    tags(
        (name = "links", description = "Create and manage links"),
        (name = "redirect", description = "Follow a short link")
    )
)]
pub struct ApiDoc;

/// Declares the optional `X-Api-Key` scheme the write endpoints accept.
struct ApiKeySecurity;

impl Modify for ApiKeySecurity {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Api-Key",
                "Required on writes when the service is configured with SHORTENER_API_KEY",
            ))),
        );
    }
}

/// The document as JSON, built once.
pub fn openapi_json() -> &'static str {
    static DOCUMENT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        ApiDoc::openapi()
            .to_pretty_json()
            .expect("the OpenAPI document serialises")
    });
    &DOCUMENT
}

pub(super) async fn openapi_document() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(openapi_json())
}
