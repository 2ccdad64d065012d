//! The two services, as the console reaches them: over their HTTP APIs
//! only, like any other client. The types here are the console's reading
//! of their documents (each service's `/api/v1/openapi.json`); the contract
//! tests check every answer the console receives against those documents.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use service_kit::settings::{ExposeSecret, SecretString};
use service_kit::telemetry;
use tracing::Instrument;
use url::Url;

/// How long one call to a service may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// An RFC 7807 problem a service answered with.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct Problem {
    pub status: u16,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub detail: String,
    #[serde(default)]
    pub field: Option<String>,
    #[serde(default, rename = "invalid-params")]
    pub invalid_params: Vec<InvalidParam>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct InvalidParam {
    pub name: String,
    pub reason: String,
}

impl Problem {
    /// The reason given for `field`, if it is at fault.
    pub fn reason_for(&self, field: &str) -> Option<&str> {
        self.invalid_params
            .iter()
            .find(|p| p.name == field)
            .map(|p| p.reason.as_str())
            .or_else(|| (self.field.as_deref() == Some(field)).then_some(self.detail.as_str()))
    }
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The service answered with a problem (4xx, or a 5xx it explained).
    #[error("{} {}: {}", .0.status, .0.title, .0.detail)]
    Problem(Problem),
    /// The service did not answer, or not in a form it documents.
    #[error("{service} is unreachable or answered unexpectedly: {reason}")]
    Unavailable {
        service: &'static str,
        reason: String,
    },
}

impl CallError {
    /// Which service failed (`shortener` or `analytics`); a problem names
    /// no service, since it was an answer.
    pub fn service(&self) -> &'static str {
        match self {
            CallError::Problem(_) => "service",
            CallError::Unavailable { service, .. } => service,
        }
    }
}

/// A link as the shortener shows it.
#[derive(Debug, Clone, Deserialize)]
pub struct Link {
    pub id: String,
    pub code: String,
    pub short_url: String,
    pub url: String,
    pub created_at: String,
    /// When the link last changed (any field, titles and tags included).
    pub updated_at: String,
    pub expires_at: Option<String>,
    pub redirect_type: u16,
    pub click_count: u64,
    pub forward_query: bool,
    #[serde(default)]
    pub password_protected: bool,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LinkPage {
    pub items: Vec<Link>,
    pub next_cursor: Option<String>,
}

/// One item's answer in a bulk create.
#[derive(Debug, Clone, Deserialize)]
pub struct BulkItem {
    pub status: u16,
    #[serde(default)]
    pub link: Option<Link>,
    #[serde(default)]
    pub problem: Option<Problem>,
}

#[derive(Debug, Clone, Deserialize)]
struct BulkResult {
    items: Vec<BulkItem>,
}

/// A key as the shortener lists it (never the key itself).
#[derive(Debug, Clone, Deserialize)]
pub struct ApiKey {
    pub name: String,
    pub role: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

/// A new key, shown once.
#[derive(Debug, Clone, Deserialize)]
pub struct NewApiKey {
    pub name: String,
    pub key: String,
}

/// A link's statistics as analytics answers them.
#[derive(Debug, Clone, Deserialize)]
pub struct Stats {
    pub from: String,
    pub to: String,
    pub bucket: String,
    pub total_clicks: u64,
    pub unique_visitors: u64,
    pub bot_clicks: u64,
    pub human_clicks: u64,
    pub series: Vec<SeriesPoint>,
    pub top_referrers: Vec<TopItem>,
    pub browsers: Vec<TopItem>,
    pub os: Vec<TopItem>,
    pub devices: Vec<TopItem>,
    pub countries: Vec<TopItem>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SeriesPoint {
    pub t: String,
    pub clicks: u64,
    pub unique_visitors: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TopItem {
    pub value: String,
    pub clicks: u64,
}

/// Analytics' copy of a link (`GET /api/v1/links` on analytics).
#[derive(Debug, Clone, Deserialize)]
pub struct Copy {
    pub shortener_url_id: uuid::Uuid,
    pub short_code: String,
    /// `active`, `expired`, `deleted`, or `unknown` (clicks arrived, the
    /// creation not yet).
    pub status: String,
    pub target: Option<String>,
    pub expires_at: Option<String>,
    pub deleted_at: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CopyPage {
    pub items: Vec<Copy>,
    pub next_cursor: Option<String>,
}

/// `GET /api/v1/status` of the shortener: one instance's readiness and
/// click pipeline.
#[derive(Debug, Clone, Deserialize)]
pub struct ShortenerStatus {
    pub version: String,
    pub ready: bool,
    pub not_ready: Vec<String>,
    pub nats_connected: bool,
    pub outbox_depth: Option<u64>,
    pub click_spool_depth: Option<u64>,
    pub click_spool_oldest_age_seconds: Option<f64>,
    pub clicks_queued: u64,
    pub clicks_dropped: std::collections::BTreeMap<String, u64>,
}

/// `GET /api/v1/status` of analytics: its readiness and consumers.
#[derive(Debug, Clone, Deserialize)]
pub struct AnalyticsStatus {
    pub version: String,
    pub ready: bool,
    pub not_ready: Vec<String>,
    pub store: String,
    pub consumers: Vec<ConsumerStatus>,
    pub dead_letters: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ConsumerStatus {
    pub subject: String,
    pub up: bool,
    pub lag: u64,
    pub answered_seconds_ago: f64,
}

/// Both services.
#[derive(Clone)]
pub struct Upstream {
    http: reqwest::Client,
    shortener: Url,
    analytics: Url,
    analytics_key: SecretString,
}

fn join(base: &Url, path_and_query: &str) -> String {
    format!("{}{path_and_query}", base.as_str().trim_end_matches('/'))
}

/// One path segment, percent-encoded.
pub fn segment(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

impl Upstream {
    pub fn new(
        shortener: Url,
        analytics: Url,
        analytics_key: SecretString,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .connect_timeout(Duration::from_secs(3))
            // The services never redirect their API; a redirect would be
            // followed with the key.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("url-shortener-console/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            shortener,
            analytics,
            analytics_key,
        })
    }

    async fn call(
        &self,
        service: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<(StatusCode, bytes_body::Body), CallError> {
        let unavailable = |reason: String| CallError::Unavailable { service, reason };
        let mut request = request.build().map_err(|e| unavailable(e.to_string()))?;
        // In a traced request, the call is a client span whose context the
        // service continues.
        let span = telemetry::is_on().then(|| {
            let span = service_kit::traced_span!(
                format_args!("{service} {}", request.method()),
                "client",
                http.request.method = %request.method(),
                server.address = request.url().host_str().unwrap_or_default(),
                url.path = request.url().path(),
                http.response.status_code = tracing::field::Empty,
            );
            telemetry::continue_trace(&span, None);
            if let Some(value) = telemetry::traceparent_of(&span)
                .and_then(|value| reqwest::header::HeaderValue::from_str(&value).ok())
            {
                request.headers_mut().insert("traceparent", value);
            }
            span
        });
        let sent = self.http.execute(request);
        let response = match &span {
            Some(span) => sent.instrument(span.clone()).await,
            None => sent.await,
        };
        let response = response.map_err(|e| {
            if let Some(span) = &span {
                span.record("otel.status_code", "error");
            }
            unavailable(e.to_string())
        })?;
        if let Some(span) = &span {
            span.record("http.response.status_code", response.status().as_u16());
            if response.status().is_server_error() {
                span.record("otel.status_code", "error");
            }
        }
        let status = response.status();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = response
            .bytes()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        if status.is_success() {
            return Ok((status, bytes_body::Body { content_type, body }));
        }
        match serde_json::from_slice::<Problem>(&body) {
            Ok(problem) if content_type.starts_with("application/problem+json") => {
                Err(CallError::Problem(problem))
            }
            _ => Err(unavailable(format!("{status} without a problem body"))),
        }
    }

    async fn json<T: DeserializeOwned>(
        &self,
        service: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<T, CallError> {
        let (_, body) = self.call(service, request).await?;
        serde_json::from_slice(&body.body).map_err(|e| CallError::Unavailable {
            service,
            reason: format!("an answer the console cannot read: {e}"),
        })
    }

    /// A request to the shortener with the user's key; `client` (the
    /// browser's address) is passed on, so the shortener throttles failed
    /// keys per visitor where it trusts the console as a proxy.
    fn shortener(
        &self,
        method: Method,
        path: &str,
        key: &str,
        client: &str,
    ) -> reqwest::RequestBuilder {
        self.http
            .request(method, join(&self.shortener, path))
            .header("X-Api-Key", key)
            .header("X-Forwarded-For", client)
    }

    pub async fn list_links(
        &self,
        key: &str,
        client: &str,
        query: &str,
    ) -> Result<LinkPage, CallError> {
        let path = format!("/api/v1/links?{query}");
        self.json("shortener", self.shortener(Method::GET, &path, key, client))
            .await
    }

    pub async fn link(&self, key: &str, client: &str, code: &str) -> Result<Link, CallError> {
        let path = format!("/api/v1/links/{}", segment(code));
        self.json("shortener", self.shortener(Method::GET, &path, key, client))
            .await
    }

    pub async fn create_link(
        &self,
        key: &str,
        client: &str,
        body: &Value,
    ) -> Result<Link, CallError> {
        let request = self
            .shortener(Method::POST, "/api/v1/links", key, client)
            .json(body);
        self.json("shortener", request).await
    }

    /// Creates up to 1,000 links in one request; one answer per item.
    pub async fn bulk_create(
        &self,
        key: &str,
        client: &str,
        bodies: &[Value],
    ) -> Result<Vec<BulkItem>, CallError> {
        let request = self
            .shortener(Method::POST, "/api/v1/links/bulk", key, client)
            // A thousand rows take longer than one link.
            .timeout(Duration::from_secs(60))
            .json(bodies);
        let result: BulkResult = self.json("shortener", request).await?;
        if result.items.len() != bodies.len() {
            return Err(CallError::Unavailable {
                service: "shortener",
                reason: format!("{} answers for {} links", result.items.len(), bodies.len()),
            });
        }
        Ok(result.items)
    }

    pub async fn update_link(
        &self,
        key: &str,
        client: &str,
        code: &str,
        body: &Value,
    ) -> Result<Link, CallError> {
        let path = format!("/api/v1/links/{}", segment(code));
        let request = self.shortener(Method::PATCH, &path, key, client).json(body);
        self.json("shortener", request).await
    }

    pub async fn delete_link(&self, key: &str, client: &str, code: &str) -> Result<(), CallError> {
        let path = format!("/api/v1/links/{}", segment(code));
        self.call(
            "shortener",
            self.shortener(Method::DELETE, &path, key, client),
        )
        .await
        .map(drop)
    }

    /// The link's QR code: its content type and bytes.
    pub async fn qr(
        &self,
        key: &str,
        client: &str,
        code: &str,
        format: &str,
        size: u32,
    ) -> Result<(String, Vec<u8>), CallError> {
        let path = format!(
            "/api/v1/links/{}/qr?format={format}&size={size}",
            segment(code)
        );
        let (_, body) = self
            .call("shortener", self.shortener(Method::GET, &path, key, client))
            .await?;
        Ok((body.content_type, body.body.to_vec()))
    }

    pub async fn keys(&self, key: &str, client: &str) -> Result<Vec<ApiKey>, CallError> {
        self.json(
            "shortener",
            self.shortener(Method::GET, "/api/v1/keys", key, client),
        )
        .await
    }

    pub async fn create_key(
        &self,
        key: &str,
        client: &str,
        name: &str,
        role: &str,
    ) -> Result<NewApiKey, CallError> {
        let request = self
            .shortener(Method::POST, "/api/v1/keys", key, client)
            .json(&serde_json::json!({ "name": name, "role": role }));
        self.json("shortener", request).await
    }

    pub async fn revoke_key(&self, key: &str, client: &str, name: &str) -> Result<(), CallError> {
        let path = format!("/api/v1/keys/{}", segment(name));
        self.call(
            "shortener",
            self.shortener(Method::DELETE, &path, key, client),
        )
        .await
        .map(drop)
    }

    /// Stats of the link with this shortener id, with the console's own
    /// analytics key. Call it only for a link the user's key could read.
    pub async fn stats(&self, link_id: &str, query: &str) -> Result<Stats, CallError> {
        let path = format!("/api/v1/urls/{}/stats?{query}", segment(link_id));
        let request = self
            .http
            .get(join(&self.analytics, &path))
            .header("X-Api-Key", self.analytics_key.expose_secret());
        self.json("analytics", request).await
    }

    /// A page of analytics' copies of links (`query` as the API takes it:
    /// `limit` and `cursor`, or `ids`), with the console's analytics key.
    pub async fn copies(&self, query: &str) -> Result<CopyPage, CallError> {
        let request = self
            .http
            .get(join(&self.analytics, &format!("/api/v1/links?{query}")))
            .header("X-Api-Key", self.analytics_key.expose_secret());
        self.json("analytics", request).await
    }

    /// Whether the service's `/health` answers 200.
    pub async fn probe_health(&self, service: &'static str) -> bool {
        let base = if service == "shortener" {
            &self.shortener
        } else {
            &self.analytics
        };
        matches!(self.http.get(join(base, "/health")).send().await, Ok(r) if r.status().is_success())
    }

    /// The shortener's status, with the user's key.
    pub async fn shortener_status(
        &self,
        key: &str,
        client: &str,
    ) -> Result<ShortenerStatus, CallError> {
        self.json(
            "shortener",
            self.shortener(Method::GET, "/api/v1/status", key, client),
        )
        .await
    }

    /// Analytics' status, with the console's analytics key.
    pub async fn analytics_status(&self) -> Result<AnalyticsStatus, CallError> {
        let request = self
            .http
            .get(join(&self.analytics, "/api/v1/status"))
            .header("X-Api-Key", self.analytics_key.expose_secret());
        self.json("analytics", request).await
    }
}

mod bytes_body {
    /// A successful answer's body and its content type.
    pub struct Body {
        pub content_type: String,
        pub body: actix_web::web::Bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(segment("a b/c?d"), "a%20b%2Fc%3Fd");
        assert_eq!(segment("my-link_1"), "my-link_1");
    }
}
