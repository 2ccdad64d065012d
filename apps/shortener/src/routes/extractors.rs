//! What the handlers share: JSON bodies parsed into validated values, the
//! code in the path, the API key, and the rate limits.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::HttpRequest;
use actix_web::http::header;
use actix_web::web::Bytes;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::de::DeserializeOwned;
use validator::{Validate, ValidationErrors};

use super::ApiState;
use crate::domain::{MAX_URL_LENGTH, ShortCode};
use crate::keys::{Caller, Role};
use crate::problem::{ApiError, InvalidParam};

/// So many events per key and minute; beyond, 429 with the wait.
pub struct KeyedLimit<K: std::hash::Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
    checks: AtomicU64,
}

impl<K: std::hash::Hash + Eq + Clone> KeyedLimit<K> {
    /// `None` when `rate` is 0 (no limit).
    pub fn per_minute(rate: u32) -> Option<Self> {
        NonZeroU32::new(rate).map(|rate| Self {
            limiter: RateLimiter::keyed(Quota::per_minute(rate)),
            checks: AtomicU64::new(0),
        })
    }

    /// Counts one event of `key`.
    pub(super) fn check_key(&self, key: K) -> Result<(), ApiError> {
        // Forget idle keys now and then, so memory stays bounded.
        if self.checks.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(&key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            ApiError::RateLimited {
                retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
            }
        })
    }
}

/// Link creations per client IP per minute.
pub type CreateRateLimit = KeyedLimit<IpAddr>;

impl KeyedLimit<IpAddr> {
    /// Counts an event of `ip` (an IPv6 client per /64).
    pub(super) fn check(&self, ip: IpAddr) -> Result<(), ApiError> {
        self.check_key(crate::auth::client_bucket(ip))
    }
}

fn validation_errors(errors: ValidationErrors) -> ApiError {
    let mut params: Vec<InvalidParam> = errors
        .field_errors()
        .into_iter()
        .flat_map(|(field, errors)| {
            errors.iter().map(move |e| {
                let reason = e
                    .message
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_else(|| match e.code.as_ref() {
                        "length" => format!("must be at most {MAX_URL_LENGTH} characters"),
                        other => format!("is invalid ({other})"),
                    });
                InvalidParam::new(field.to_string(), reason)
            })
        })
        .collect();
    params.sort_by(|a, b| a.name.cmp(&b.name));
    ApiError::InvalidBody(params)
}

/// The field a serde error is about: its path, or the name quoted in
/// "missing field `x`" / "unknown field `x`" errors, which are reported at
/// the enclosing object.
fn field_of(path: &str, message: &str) -> String {
    if path != "." && !path.is_empty() {
        return path.to_owned();
    }
    message
        .split('`')
        .nth(1)
        .filter(|_| message.starts_with("missing field") || message.starts_with("unknown field"))
        .unwrap_or("body")
        .to_owned()
}

/// Reads and validates one JSON value (an item of a bulk body) as `T`;
/// the problem names the field at fault, as for a whole body.
pub(super) fn json_value<T: DeserializeOwned + Validate>(
    value: serde_json::Value,
) -> Result<T, ApiError> {
    let parsed: T = serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let message = error.into_inner().to_string();
        ApiError::invalid(field_of(&path, &message), message)
    })?;
    parsed.validate().map_err(validation_errors)?;
    Ok(parsed)
}

/// Parses and validates a JSON request body.
pub(super) fn json_body<T: DeserializeOwned + Validate>(
    request: &HttpRequest,
    body: &Bytes,
) -> Result<T, ApiError> {
    let is_json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<actix_web::mime::Mime>().ok())
        .is_some_and(|m| {
            use actix_web::mime;
            m.type_() == mime::APPLICATION
                && (m.subtype() == mime::JSON || m.suffix() == Some(mime::JSON))
        });
    if !is_json {
        return Err(ApiError::UnsupportedMediaType);
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let message = inner.to_string();
                let message = message
                    .split(" at line ")
                    .next()
                    .unwrap_or(&message)
                    .to_owned();
                ApiError::invalid(field_of(&path, &message), message)
            }
            _ => ApiError::MalformedJson(inner.to_string()),
        }
    })?;
    deserializer
        .end()
        .map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    value.validate().map_err(validation_errors)?;
    Ok(value)
}

/// The client's address (see `client_addr`) and whether the TCP peer is
/// a trusted proxy.
pub(super) fn client(state: &ApiState, request: &HttpRequest) -> (IpAddr, bool) {
    let peer = request
        .peer_addr()
        .map_or(IpAddr::from([0, 0, 0, 0]), |peer| peer.ip());
    let headers = request.headers();
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    state
        .proxies
        .client(peer, text("x-forwarded-for"), text("forwarded"))
}

/// Who is calling: 401 without a valid key, 429 after too many failures.
pub(super) async fn caller(state: &ApiState, request: &HttpRequest) -> Result<Caller, ApiError> {
    let (client, _) = client(state, request);
    state
        .auth
        .authenticate(service_kit::auth::presented_key(request.headers()), client)
        .await
        .map_err(ApiError::from)
}

/// Like [`caller`], and only for admins (403 for other keys).
pub(super) async fn admin(state: &ApiState, request: &HttpRequest) -> Result<Caller, ApiError> {
    let caller = caller(state, request).await?;
    match caller.role {
        Role::Admin => Ok(caller),
        Role::Author => Err(ApiError::Forbidden),
    }
}

pub(super) fn code_in_path(request: &HttpRequest) -> Result<ShortCode, ApiError> {
    let raw = request.match_info().get("code").unwrap_or_default();
    ShortCode::parse(raw).map_err(|_| ApiError::NotFound(raw.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
