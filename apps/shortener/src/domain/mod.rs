//! Parsed domain values: once you hold one, it is valid.
//!
//! Each `parse` returns the reason on failure; the HTTP layer adds the name of
//! the field it came from, so a problem response names the field at fault.

mod expiry;
mod labels;
pub mod password;
mod short_code;
mod target_url;

pub use contracts::RedirectType;
pub use expiry::ExpiresAt;
pub use labels::{Tag, Tags, Title, MAX_TAGS, MAX_TAG_CHARS, MAX_TITLE_CHARS, TAG_PATTERN};
pub use password::{Password, MAX_SUBMITTED_CHARS};
pub use short_code::{Alias, CodeGenerator, ShortCode, ALIAS_PATTERN, RESERVED_WORDS};
pub use target_url::{TargetUrl, MAX_URL_LENGTH, URL_PATTERN};
