//! What people write on a link to find it again: a title and tags. The
//! shortener's own data; no event carries them (analytics does not need
//! them, so the contracts stay as they are).

/// Longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// Most tags on one link.
pub const MAX_TAGS: usize = 10;
/// Longest tag, in characters.
pub const MAX_TAG_CHARS: usize = 32;
/// A tag as the OpenAPI document states it.
pub const TAG_PATTERN: &str = "^[a-z0-9-]{1,32}$";

/// A link's title: at most 200 characters, no control characters, trimmed.
/// A blank title is no title (`None` from [`Title::parse`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Title(String);

impl Title {
    /// The bounds apply to the title as given, before trimming: what the
    /// OpenAPI document states is exactly what is accepted.
    pub fn parse(raw: &str) -> Result<Option<Self>, String> {
        if raw.chars().count() > MAX_TITLE_CHARS {
            return Err(format!("must be at most {MAX_TITLE_CHARS} characters"));
        }
        if raw.chars().any(char::is_control) {
            return Err("must not contain control characters".into());
        }
        let title = raw.trim();
        Ok((!title.is_empty()).then(|| Self(title.to_owned())))
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// A title as a request gives it: a blank one is no title.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct GivenTitle(pub Option<Title>);

impl TryFrom<String> for GivenTitle {
    type Error = String;

    fn try_from(raw: String) -> Result<Self, String> {
        Title::parse(&raw).map(Self)
    }
}

/// A title as the document states it (no control characters: the `Cc`
/// category, which is what [`Title::parse`] refuses).
impl utoipa::PartialSchema for GivenTitle {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .max_length(Some(MAX_TITLE_CHARS))
            .pattern(Some("^[^\\u0000-\\u001F\\u007F-\\u009F]*$"))
            .description(Some(format!(
                "What the author calls the link: at most {MAX_TITLE_CHARS} characters, \
                 no control characters; trimmed, and blank or null means untitled."
            )))
            .examples(Some(serde_json::json!("Q3 launch docs")))
            .into()
    }
}

impl utoipa::ToSchema for GivenTitle {
    fn name() -> std::borrow::Cow<'static, str> {
        "Title".into()
    }
}

/// A link's tags: at most 10, each 1-32 of `[a-z0-9-]`, kept in the order
/// given; a repeated tag is kept once.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(try_from = "Vec<String>")]
pub struct Tags(Vec<String>);

impl TryFrom<Vec<String>> for Tags {
    type Error = String;

    fn try_from(raw: Vec<String>) -> Result<Self, String> {
        Self::parse(&raw)
    }
}

/// Tags as the document states them.
impl utoipa::PartialSchema for Tags {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
        ArrayBuilder::new()
            .items(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(TAG_PATTERN))
                    .max_length(Some(MAX_TAG_CHARS)),
            )
            .max_items(Some(MAX_TAGS))
            .description(Some(format!(
                "At most {MAX_TAGS} tags, each 1-{MAX_TAG_CHARS} of lower-case letters, digits \
                 and '-'; a repeated tag is kept once. Null or [] means none."
            )))
            .into()
    }
}

impl utoipa::ToSchema for Tags {}

impl Tags {
    pub fn parse<S: AsRef<str>>(raw: &[S]) -> Result<Self, String> {
        if raw.len() > MAX_TAGS {
            return Err(format!("must be at most {MAX_TAGS} tags"));
        }
        let mut tags: Vec<String> = Vec::with_capacity(raw.len());
        for tag in raw {
            let tag = Tag::parse(tag.as_ref())?;
            if !tags.contains(&tag.0) {
                tags.push(tag.0);
            }
        }
        Ok(Self(tags))
    }

    pub fn into_vec(self) -> Vec<String> {
        self.0
    }
}

/// One tag, as a filter takes it too.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct Tag(String);

impl Tag {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let valid = !raw.is_empty()
            && raw.len() <= MAX_TAG_CHARS
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(format!(
                "{raw:?} is not a tag: 1-{MAX_TAG_CHARS} of lower-case letters, digits and '-'"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_are_trimmed_bounded_and_printable() {
        assert_eq!(
            Title::parse("  Docs  ").unwrap().unwrap().into_string(),
            "Docs"
        );
        assert_eq!(Title::parse("   ").unwrap(), None);
        assert!(Title::parse(&"é".repeat(200)).unwrap().is_some());
        assert!(Title::parse(&"é".repeat(201)).is_err());
        assert!(Title::parse("a\u{0}b").is_err());
    }

    #[test]
    fn tags_follow_the_pattern_and_count_once() {
        let tags = Tags::parse(&["docs", "q3-launch", "docs"]).unwrap();
        assert_eq!(tags.into_vec(), ["docs", "q3-launch"]);
        for bad in ["", "Docs", "a b", "ünï", &"a".repeat(33)] {
            assert!(Tags::parse(&[bad]).is_err(), "{bad:?}");
        }
        let eleven: Vec<String> = (0..11).map(|i| format!("t{i}")).collect();
        assert!(Tags::parse(&eleven).is_err());
        assert!(Tags::parse(&eleven[..10]).is_ok());
    }
}
