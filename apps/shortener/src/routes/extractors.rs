//! The edges of the handlers: who is calling (`require_key`, then
//! [`Caller`], [`Admin`], [`Creator`]), the code in the path, and the query
//! bodies read into typed values ([`ValidJson`], [`Form`]; query strings
//! are `service_kit::extract::Query`'s); and the rate limits.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap};
use actix_web::middleware::Next;
use actix_web::web::{self, Bytes};
use actix_web::{FromRequest, HttpMessage, HttpRequest, ResponseError};
use futures::future::LocalBoxFuture;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::de::DeserializeOwned;
use service_kit::extract::{self, BodyError};
use std::future::{Ready, ready};
use validator::{Validate, ValidationErrors};

use super::ApiState;
use crate::domain::ShortCode;
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
                    .map_or_else(|| format!("is invalid ({})", e.code), ToString::to_string);
                // A rule of the whole request (`validate(schema)`) is the body's.
                let field = match field.as_ref() {
                    "__all__" => "body",
                    field => field,
                };
                InvalidParam::new(field, reason)
            })
        })
        .collect();
    params.sort_by(|a, b| a.name.cmp(&b.name));
    ApiError::InvalidBody(params)
}

impl From<BodyError> for ApiError {
    fn from(error: BodyError) -> Self {
        match error {
            BodyError::UnsupportedMediaType => ApiError::UnsupportedMediaType,
            BodyError::Malformed(message) => ApiError::MalformedJson(message),
            BodyError::Invalid(param) => ApiError::InvalidBody(vec![param]),
        }
    }
}

/// Reads and validates one JSON value (an item of a bulk body) as `T`;
/// the problem names the field at fault, as for a whole body.
pub(super) fn json_value<T: DeserializeOwned + Validate>(
    value: serde_json::Value,
) -> Result<T, ApiError> {
    let parsed: T =
        extract::json_value(value).map_err(|param| ApiError::InvalidBody(vec![param]))?;
    parsed.validate().map_err(validation_errors)?;
    Ok(parsed)
}

/// A JSON body read as `T` and checked by `T`'s `validator` rules: 415
/// when it is not JSON, 400 when it does not parse, 422 naming the field
/// at fault. The body's size limit is the route's `PayloadConfig` (413).
pub(super) struct ValidJson<T>(pub T);

impl<T: DeserializeOwned + Validate + 'static> FromRequest for ValidJson<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = read_body(request, payload, extract::json::<T>);
        Box::pin(async move {
            let value = body.await?;
            value.validate().map_err(validation_errors)?;
            Ok(Self(value))
        })
    }
}

/// An HTML form's body read as `T`: 415 when it is not a form, 422 naming
/// the field at fault.
pub(super) struct Form<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for Form<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = read_body(request, payload, extract::form::<T>);
        Box::pin(async move { Ok(Self(body.await?)) })
    }
}

/// The body (within the route's `PayloadConfig` limit: 413), then `read`
/// over it and the request's `Content-Type`.
fn read_body<T: 'static>(
    request: &HttpRequest,
    payload: &mut Payload,
    read: fn(&HeaderMap, &[u8]) -> Result<T, BodyError>,
) -> LocalBoxFuture<'static, Result<T, actix_web::Error>> {
    let body = Bytes::from_request(request, payload);
    let mut headers = HeaderMap::new();
    if let Some(value) = request.headers().get(header::CONTENT_TYPE) {
        headers.insert(header::CONTENT_TYPE, value.clone());
    }
    Box::pin(async move { Ok(read(&headers, &body.await?).map_err(ApiError::from)?) })
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

/// The key check in front of `/api/v1`: every request there, unknown
/// paths included, is authenticated once, before its route or its body is
/// looked at (401 without a valid key, 429 after too many failures). The
/// caller waits in the request's extensions for [`Caller`].
pub(super) async fn require_key(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let state = request
        .app_data::<web::Data<ApiState>>()
        .expect("the API state is registered")
        .clone();
    let (ip, _) = client(&state, request.request());
    let key = service_kit::auth::presented_key(request.headers());
    match state.auth.authenticate(key, ip).await {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.call(request)
                .await
                .map(ServiceResponse::map_into_boxed_body)
        }
        Err(error) => Ok(request.into_response(ApiError::from(error).error_response())),
    }
}

/// Who is calling, as [`require_key`] found.
impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            request
                .extensions()
                .get::<Caller>()
                .copied()
                .ok_or(ApiError::Unauthorized),
        )
    }
}

/// A caller with an admin key (403 for other keys).
pub(super) struct Admin;

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        ready(
            Caller::from_request(request, payload)
                .into_inner()
                .and_then(|caller| match caller.role {
                    Role::Admin => Ok(Admin),
                    Role::Author => Err(ApiError::Forbidden),
                }),
        )
    }
}

/// The caller of a create, within the per-address creation limit (429).
pub(super) struct Creator(pub Caller);

impl FromRequest for Creator {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let state = request
            .app_data::<web::Data<ApiState>>()
            .expect("the API state is registered");
        ready(
            Caller::from_request(request, payload)
                .into_inner()
                .and_then(|caller| {
                    if let Some(limit) = &state.create_limit {
                        limit.check(client(state, request).0)?;
                    }
                    Ok(Creator(caller))
                }),
        )
    }
}

/// The `{code}` of the path; a path that cannot be a code is unknown (404).
impl FromRequest for ShortCode {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let raw = request.match_info().get("code").unwrap_or_default();
        ready(ShortCode::parse(raw).map_err(|_| ApiError::NotFound(raw.to_owned())))
    }
}
