//! What every service's OpenAPI document says the same way.

use utoipa::Modify;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};

/// Declares the two ways to present a key, `api_key` (`X-Api-Key`) and
/// `bearer` (`Authorization: Bearer`); operations name them in their
/// `security`.
pub struct KeySecurity {
    /// What the `X-Api-Key` header takes, for the reader of the document.
    pub description: &'static str,
}

impl Modify for KeySecurity {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Api-Key",
                self.description,
            ))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}
