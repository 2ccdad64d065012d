//! Link passwords: what a valid one is, and its argon2id hash.
//!
//! Only the hash is stored (the PHC string: algorithm, parameters, salt and
//! hash), and only the hash sits in the redirect cache. Hashing and
//! checking cost tens of milliseconds of CPU on purpose, so callers run
//! them off the async workers (`tokio::task::spawn_blocking`).

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// Shortest and longest password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 4;
pub const MAX_PASSWORD_CHARS: usize = 128;
/// Longest password a visitor may submit (anything longer is simply wrong).
pub const MAX_SUBMITTED_CHARS: usize = 1024;

/// A password to set on a link: 4-128 characters, no control characters.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct Password(String);

/// A password as the document states it.
impl utoipa::PartialSchema for Password {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(MIN_PASSWORD_CHARS))
            .max_length(Some(MAX_PASSWORD_CHARS))
            .pattern(Some("^[^\\u0000-\\u001F\\u007F-\\u009F]*$"))
            .description(Some(
                "A password visitors must give before the redirect: 4-128 characters, no \
                 control characters. Stored as an argon2id hash and never returned.",
            ))
            .into()
    }
}

impl utoipa::ToSchema for Password {}

/// A password as a visitor submits it: anything up to
/// [`MAX_SUBMITTED_CHARS`] (no password is longer, so nothing longer is
/// checked).
#[derive(serde::Deserialize)]
#[serde(try_from = "String")]
pub struct SubmittedPassword(pub String);

impl TryFrom<String> for SubmittedPassword {
    type Error = String;

    fn try_from(raw: String) -> Result<Self, String> {
        match raw.chars().count() > MAX_SUBMITTED_CHARS {
            true => Err(format!("must be at most {MAX_SUBMITTED_CHARS} characters")),
            false => Ok(Self(raw)),
        }
    }
}

impl utoipa::PartialSchema for SubmittedPassword {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .max_length(Some(MAX_SUBMITTED_CHARS))
            .description(Some("The link's password."))
            .into()
    }
}

impl utoipa::ToSchema for SubmittedPassword {}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl Password {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let chars = raw.chars().count();
        if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&chars) {
            return Err(format!(
                "must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters"
            ));
        }
        if raw.chars().any(char::is_control) {
            return Err("must not contain control characters".into());
        }
        Ok(Self(raw.to_owned()))
    }

    /// The argon2id hash to store (blocking: call it off the async workers).
    pub fn hash(&self) -> Result<String, String> {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(self.0.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|e| format!("hashing failed: {e}"))
    }
}

/// A hash of no password anyone knows, checked against when a request
/// names no protected link, so its answer takes as long as a wrong guess.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        Password(format!("{:032x}", rand::random::<u128>()))
            .hash()
            .expect("the decoy hashes")
    })
}

/// Whether `submitted` is the password of `hash` (blocking). With no hash,
/// the same work is done against a decoy, and the answer is false.
pub fn verify(hash: Option<&str>, submitted: &str) -> bool {
    let (hash, real) = match hash {
        Some(hash) => (hash, true),
        None => (decoy_hash(), false),
    };
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let matches = Argon2::default()
        .verify_password(submitted.as_bytes(), &parsed)
        .is_ok();
    real && matches
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_bounded_and_hashed_with_a_salt() {
        assert!(Password::parse("abc").is_err());
        assert!(Password::parse(&"x".repeat(129)).is_err());
        assert!(Password::parse("tab\there").is_err());
        let password = Password::parse("correct horse").unwrap();
        let (a, b) = (password.hash().unwrap(), password.hash().unwrap());
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b, "a fresh salt each time");
        assert!(verify(Some(&a), "correct horse"));
        assert!(!verify(Some(&a), "correct horse "));
        assert!(!verify(None, "correct horse"));
        assert!(!format!("{password:?}").contains("horse"));
    }
}
