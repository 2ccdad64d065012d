//! Parsed domain values: once you hold one, it is valid.
//!
//! Each `parse` returns the reason on failure. The values a request carries
//! also read themselves from it (`serde(try_from)`, through `parse`) and
//! state their rules in the OpenAPI document (`utoipa::ToSchema`), so each
//! rule is written once: the HTTP layer only adds the name of the field it
//! came from, so a problem response names the field at fault.

/// `TryFrom<String>` through `parse`, for `serde(try_from = "String")`.
macro_rules! parsed_from_string {
    ($($value:ty),*) => {$(
        impl TryFrom<String> for $value {
            type Error = String;

            fn try_from(raw: String) -> Result<Self, String> {
                Self::parse(&raw)
            }
        }
    )*};
}

parsed_from_string!(TargetUrl, Alias, Password, Tag);

mod expiry;
mod labels;
pub mod password;
mod short_code;
mod target_url;

pub use contracts::RedirectType;
pub use expiry::ExpiresAt;
pub use labels::{
    GivenTitle, MAX_TAG_CHARS, MAX_TAGS, MAX_TITLE_CHARS, TAG_PATTERN, Tag, Tags, Title,
};
pub use password::{MAX_SUBMITTED_CHARS, Password, SubmittedPassword};
pub use short_code::{ALIAS_PATTERN, Alias, CodeGenerator, RESERVED_WORDS, ShortCode};
pub use target_url::{MAX_URL_LENGTH, TargetUrl, URL_PATTERN};
