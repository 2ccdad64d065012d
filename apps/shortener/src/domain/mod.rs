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
pub use labels::{MAX_TAG_CHARS, MAX_TAGS, MAX_TITLE_CHARS, TAG_PATTERN, Tag, Tags, Title};
pub use password::{MAX_SUBMITTED_CHARS, Password};
pub use short_code::{ALIAS_PATTERN, Alias, CodeGenerator, RESERVED_WORDS, ShortCode};
pub use target_url::{MAX_URL_LENGTH, TargetUrl, URL_PATTERN};
