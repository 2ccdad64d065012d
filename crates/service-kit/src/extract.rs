//! What a request carries, read into a typed value: a query string, a JSON
//! body or a form body. When it does not read, the error names the field
//! at fault (its path in the body, or the parameter), so the service can
//! answer problem+json with `field` set. Rules that belong to a value live
//! in its type (`serde(try_from)`); these functions only drive serde.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError};
use serde::de::DeserializeOwned;

use crate::problem::{InvalidParam, ProblemBody};

/// Why a body was not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// Not the media type the endpoint takes (415).
    UnsupportedMediaType,
    /// Not JSON at all: the parser's message (400).
    Malformed(String),
    /// Well-formed, but a field does not read (422).
    Invalid(InvalidParam),
}

/// Reads a query string (without the `?`) as `T`. An unknown parameter is
/// refused when `T` denies unknown fields. Every parameter at fault is
/// named, not only the first.
pub fn query<T: DeserializeOwned>(query: &str) -> Result<T, Vec<InvalidParam>> {
    read_query(query).map_err(|first| {
        // Each parameter alone: those that do not read are at fault. (Only
        // errors about the parameter itself count; alone, it may lack a
        // companion another field needs.)
        let each: Vec<InvalidParam> = url::form_urlencoded::parse(query.as_bytes())
            .filter_map(|(name, value)| {
                let alone = url::form_urlencoded::Serializer::new(String::new())
                    .append_pair(&name, &value)
                    .finish();
                read_query::<T>(&alone).err().filter(|e| e.name == name)
            })
            .collect();
        match each.is_empty() {
            true => vec![first],
            false => each,
        }
    })
}

/// The query string of a request read as `T`; when it does not read, 400
/// problem+json (`invalid_query`) naming every parameter at fault.
pub struct Query<T>(pub T);

/// Why a query string was refused: its parameters at fault.
#[derive(Debug, thiserror::Error)]
#[error("the query string has invalid parameters")]
pub struct InvalidQuery(pub Vec<InvalidParam>);

impl ResponseError for InvalidQuery {
    fn status_code(&self) -> StatusCode {
        StatusCode::BAD_REQUEST
    }

    fn error_response(&self) -> HttpResponse {
        ProblemBody::of_error(self.status_code(), "invalid_query", self, self.0.clone()).response()
    }
}

impl<T: DeserializeOwned> FromRequest for Query<T> {
    type Error = InvalidQuery;
    type Future = Ready<Result<Self, InvalidQuery>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            query(request.query_string())
                .map(Self)
                .map_err(InvalidQuery),
        )
    }
}

fn read_query<T: DeserializeOwned>(query: &str) -> Result<T, InvalidParam> {
    let deserializer =
        serde_urlencoded::Deserializer::new(url::form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        invalid(&path, error.into_inner().to_string())
    })
}

/// Reads a JSON body as `T`; the request must say it is JSON
/// (`application/json`, or any `+json` type).
pub fn json<T: DeserializeOwned>(headers: &HeaderMap, body: &[u8]) -> Result<T, BodyError> {
    let is_json = media_type(headers).is_some_and(|m| {
        use actix_web::mime;
        m.type_() == mime::APPLICATION
            && (m.subtype() == mime::JSON || m.suffix() == Some(mime::JSON))
    });
    if !is_json {
        return Err(BodyError::UnsupportedMediaType);
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                BodyError::Invalid(invalid(&path, without_position(&inner)))
            }
            _ => BodyError::Malformed(inner.to_string()),
        }
    })?;
    deserializer
        .end()
        .map_err(|e| BodyError::Malformed(e.to_string()))?;
    Ok(value)
}

/// Reads one JSON value (an item of a bulk body, say) as `T`.
pub fn json_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, InvalidParam> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        invalid(&path, error.into_inner().to_string())
    })
}

/// Reads an HTML form's body (`application/x-www-form-urlencoded`) as `T`.
pub fn form<T: DeserializeOwned>(headers: &HeaderMap, body: &[u8]) -> Result<T, BodyError> {
    let is_form = media_type(headers).is_some_and(|m| {
        m.essence_str()
            .eq_ignore_ascii_case("application/x-www-form-urlencoded")
    });
    if !is_form {
        return Err(BodyError::UnsupportedMediaType);
    }
    let deserializer = serde_urlencoded::Deserializer::new(url::form_urlencoded::parse(body));
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        BodyError::Invalid(invalid(&path, error.into_inner().to_string()))
    })
}

fn media_type(headers: &HeaderMap) -> Option<actix_web::mime::Mime> {
    headers
        .get(header::CONTENT_TYPE)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// serde_json's message without " at line 1 column 7": the field is named.
fn without_position(error: &serde_json::Error) -> String {
    let message = error.to_string();
    message
        .split(" at line ")
        .next()
        .unwrap_or(&message)
        .to_owned()
}

fn invalid(path: &str, message: String) -> InvalidParam {
    InvalidParam::new(field_of(path, &message), message)
}

/// The field a serde error is about: its path, or the name quoted in
/// "missing field `x`" / "unknown field `x`" / "duplicate field `x`"
/// errors, which are reported at the enclosing object.
fn field_of(path: &str, message: &str) -> String {
    if path != "." && !path.is_empty() && path != "?" {
        return path.to_owned();
    }
    let about_a_field = ["missing field", "unknown field", "duplicate field"]
        .iter()
        .any(|start| message.starts_with(start));
    message
        .split('`')
        .nth(1)
        .filter(|_| about_a_field)
        .unwrap_or("body")
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(unused)]
    struct Page {
        limit: Option<u32>,
        q: Option<String>,
    }

    fn headers(content_type: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(content_type).unwrap(),
        );
        headers
    }

    #[test]
    fn serde_errors_are_attributed_to_their_field() {
        assert_eq!(
            field_of("url", "invalid type: integer `5`, expected a string"),
            "url"
        );
        assert_eq!(field_of(".", "missing field `url`"), "url");
        assert_eq!(
            field_of(".", "unknown field `target`, expected one of `url`"),
            "target"
        );
        assert_eq!(
            field_of(".", "invalid type: sequence, expected struct"),
            "body"
        );
    }

    #[test]
    fn a_query_names_the_parameter_at_fault() {
        let page: Page = query("limit=5&q=a%20b").unwrap();
        assert_eq!((page.limit, page.q.as_deref()), (Some(5), Some("a b")));
        let names = |query_string| -> Vec<String> {
            query::<Page>(query_string)
                .unwrap_err()
                .into_iter()
                .map(|p| p.name)
                .collect()
        };
        assert_eq!(names("limit=x"), ["limit"]);
        assert_eq!(names("size=5"), ["size"]);
        assert_eq!(names("limit=x&q=ok&size=5"), ["limit", "size"]);
    }

    #[test]
    fn a_body_must_say_what_it_is() {
        let json_headers = headers("application/merge-patch+json; charset=utf-8");
        assert!(json::<Page>(&json_headers, br#"{"limit": 5}"#).is_ok());
        assert_eq!(
            json::<Page>(&headers("text/plain"), b"{}").unwrap_err(),
            BodyError::UnsupportedMediaType
        );
        assert!(matches!(
            json::<Page>(&json_headers, b"{"),
            Err(BodyError::Malformed(_))
        ));
        match json::<Page>(&json_headers, br#"{"limit": "5"}"#) {
            Err(BodyError::Invalid(param)) => {
                assert_eq!(param.name, "limit");
                assert!(!param.reason.contains("line"), "{}", param.reason);
            }
            other => panic!("{other:?}"),
        }
        let form_headers = headers("application/x-www-form-urlencoded");
        assert!(form::<Page>(&form_headers, b"q=x").is_ok());
        assert_eq!(
            form::<Page>(&json_headers, b"q=x").unwrap_err(),
            BodyError::UnsupportedMediaType
        );
    }
}
