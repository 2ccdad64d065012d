//! Short codes: generated ones (random base62) and custom aliases.

use std::fmt;

use rand::distr::{Alphanumeric, SampleString};

/// Paths the service itself serves, refused as aliases (case-insensitive) so
/// a link can never shadow them.
pub const RESERVED_WORDS: &[&str] = &[
    "api",
    "health",
    "ready",
    "metrics",
    "openapi",
    "docs",
    "swagger",
    "admin",
    "static",
    "assets",
    "favicon",
    "robots",
    "login",
    "logout",
    "links",
    "stats",
    "dashboard",
    "well-known",
];

const MAX_CODE_LENGTH: usize = 64;

/// An alias's characters and length, as the OpenAPI document states them
/// (the reserved words are stated beside it).
pub const ALIAS_PATTERN: &str = "^[A-Za-z0-9_-]{3,64}$";

fn is_code_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// Any code a link can have: what a redirect path or an API path is parsed
/// into. 1–64 characters of `[A-Za-z0-9_-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ShortCode(String);

impl ShortCode {
    pub fn parse(input: &str) -> Result<Self, String> {
        if input.is_empty() || input.chars().count() > MAX_CODE_LENGTH {
            return Err(format!("must be 1 to {MAX_CODE_LENGTH} characters"));
        }
        if !input.chars().all(is_code_char) {
            return Err("may only contain letters, digits, '_' and '-'".into());
        }
        Ok(Self(input.to_owned()))
    }

    /// A code as a store holds it: parsed once, when its link was made.
    pub fn from_store(code: String) -> Self {
        Self(code)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl PartialEq<&str> for ShortCode {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl fmt::Display for ShortCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A custom code chosen by the client: 3–64 characters of `[A-Za-z0-9_-]`,
/// not a reserved word.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct Alias(ShortCode);

/// A custom code as the document states it: the characters and length as
/// a pattern, the reserved words (any case) as a `not`, which utoipa's
/// model lacks (`routes::openapi` adds it).
impl utoipa::PartialSchema for Alias {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(ALIAS_PATTERN))
            .description(Some(format!(
                "Custom code: 3-64 of `[A-Za-z0-9_-]`, not a reserved word ({}, in any case).",
                RESERVED_WORDS.join(", ")
            )))
            .into()
    }
}

impl utoipa::ToSchema for Alias {}

impl Alias {
    pub const MIN_LENGTH: usize = 3;

    pub fn parse(input: &str) -> Result<Self, String> {
        let length = input.chars().count();
        if !(Self::MIN_LENGTH..=MAX_CODE_LENGTH).contains(&length) {
            return Err(format!(
                "must be {} to {MAX_CODE_LENGTH} characters, not {length}",
                Self::MIN_LENGTH
            ));
        }
        let code = ShortCode::parse(input)?;
        if RESERVED_WORDS.iter().any(|w| w.eq_ignore_ascii_case(input)) {
            return Err(format!("{input:?} is reserved"));
        }
        Ok(Self(code))
    }

    pub fn into_code(self) -> ShortCode {
        self.0
    }
}

/// Makes random, unguessable codes: base62 drawn uniformly from the thread's
/// CSPRNG. With the default 7 characters there are 62^7 ≈ 3.5e12 codes, so
/// neighbours of a known code tell nothing and collisions are rare; the store's
/// unique index catches the rare one and the caller retries.
#[derive(Debug, Clone, Copy)]
pub struct CodeGenerator {
    length: usize,
}

impl CodeGenerator {
    pub const DEFAULT_LENGTH: usize = 7;
    /// Below this the code space is small enough to guess or exhaust.
    pub const MIN_LENGTH: usize = 5;

    pub fn new(length: usize) -> Result<Self, String> {
        if !(Self::MIN_LENGTH..=MAX_CODE_LENGTH).contains(&length) {
            return Err(format!(
                "code length must be {} to {MAX_CODE_LENGTH}, not {length}",
                Self::MIN_LENGTH
            ));
        }
        Ok(Self { length })
    }

    pub fn generate(&self) -> ShortCode {
        ShortCode(Alphanumeric.sample_string(&mut rand::rng(), self.length))
    }
}

impl Default for CodeGenerator {
    fn default() -> Self {
        Self {
            length: Self::DEFAULT_LENGTH,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn generated_codes_are_base62_of_the_configured_length_and_do_not_repeat() {
        let generator = CodeGenerator::new(9).unwrap();
        let codes: HashSet<String> = (0..10_000).map(|_| generator.generate().0).collect();
        assert_eq!(codes.len(), 10_000);
        assert!(
            codes
                .iter()
                .all(|c| c.len() == 9 && c.chars().all(|c| c.is_ascii_alphanumeric()))
        );
    }

    #[test]
    fn generated_codes_use_the_whole_alphabet() {
        let generator = CodeGenerator::default();
        let seen: HashSet<char> = (0..2_000)
            .flat_map(|_| generator.generate().0.into_bytes())
            .map(char::from)
            .collect();
        assert_eq!(seen.len(), 62);
    }

    #[test]
    fn code_lengths_outside_the_safe_range_are_refused() {
        assert!(CodeGenerator::new(4).is_err());
        assert!(CodeGenerator::new(65).is_err());
        assert!(CodeGenerator::new(5).is_ok());
    }

    #[test]
    fn aliases_follow_the_rules() {
        for ok in ["abc", "Spring_Sale-2027", &"x".repeat(64)] {
            assert!(Alias::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ab",
            &"x".repeat(65),
            "has space",
            "slash/ed",
            "dot.ted",
            "ümlaut",
            "API",
            "health",
            "Metrics",
            "",
        ] {
            assert!(Alias::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn any_lookup_code_is_accepted_but_nothing_else() {
        assert!(ShortCode::parse("a").is_ok());
        assert!(ShortCode::parse("aZ3kP9q").is_ok());
        assert!(ShortCode::parse("").is_err());
        assert!(ShortCode::parse("a%20b").is_err());
    }
}
