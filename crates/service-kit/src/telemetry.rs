//! Logs and traces, set up the same way in every process.
//!
//! **Logs** go to stderr, as text for a person (`LOG_FORMAT=text`, the
//! default) or one JSON object per line for a collector (`LOG_FORMAT=json`),
//! filtered by `RUST_LOG`. A line written inside a traced span carries that
//! span's `trace_id` and `span_id`, so a log line leads to its trace and back.
//!
//! **Traces** are exported over OTLP/HTTP (protobuf) when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`)
//! is set, under `OTEL_SERVICE_NAME`. Unset, nothing is built: no layer, no
//! exporter thread, and the hot paths pay one relaxed atomic load to learn
//! that tracing is off. Spans are sent in batches from the SDK's own thread
//! (`OTEL_BSP_*` tune it); a collector that is slow or away costs dropped
//! spans, never a waiting request.
//!
//! What is traced:
//! - every API request, continuing an incoming W3C `traceparent`;
//! - a redirect (a click) only when sampled: when its `traceparent` says so
//!   (honoured only from a peer the service trusts, see
//!   [`Sampling::VisitorClick`]), or else at the ratio
//!   `OTEL_TRACES_SAMPLER_ARG` (default 0.01), so 50,000 redirects a second
//!   do not become 50,000 traces a second. An unsampled redirect creates no
//!   span at all;
//! - health, readiness and metrics requests never.
//!
//! Across NATS the context travels in the `traceparent` message header
//! (`contracts::headers::TRACEPARENT`): a span is only ever continued, so an
//! event published outside any trace creates none downstream.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing::field::Empty;
use tracing::{Instrument, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The share of redirects traced when `OTEL_TRACES_SAMPLER_ARG` is unset.
pub const DEFAULT_CLICK_RATIO: f64 = 0.01;

static ON: AtomicBool = AtomicBool::new(false);
/// The click ratio's bits (an `f64`).
static CLICK_RATIO: AtomicU64 = AtomicU64::new(0);

/// What the environment asks for; see the module documentation.
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetrySettings {
    /// Where spans are posted (the full URL, ending in `/v1/traces`), or
    /// `None` for no tracing.
    pub traces_endpoint: Option<String>,
    pub service_name: String,
    /// The share of unsampled-by-parent redirects that are traced.
    pub click_ratio: f64,
    pub json_logs: bool,
}

impl TelemetrySettings {
    /// Reads the standard OpenTelemetry variables (and `LOG_FORMAT`) from
    /// the process environment.
    pub fn from_env(default_service: &str) -> anyhow::Result<Self> {
        Self::from_lookup(default_service, |name| std::env::var(name).ok())
    }

    /// As [`Self::from_env`], with the variables from `get`. Every error
    /// names the variable at fault.
    pub fn from_lookup(
        default_service: &str,
        get: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Self> {
        let var = |name: &str| {
            get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let disabled = match var("OTEL_SDK_DISABLED").as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => anyhow::bail!("OTEL_SDK_DISABLED must be true or false, not {other:?}"),
        };
        if let Some(protocol) = var("OTEL_EXPORTER_OTLP_PROTOCOL") {
            anyhow::ensure!(
                protocol == "http/protobuf",
                "OTEL_EXPORTER_OTLP_PROTOCOL must be http/protobuf (the only protocol spoken here), not {protocol:?}"
            );
        }
        let traces_endpoint = match (
            var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
            var("OTEL_EXPORTER_OTLP_ENDPOINT"),
        ) {
            _ if disabled => None,
            (Some(traces), _) => Some(checked_endpoint(
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                traces,
            )?),
            (None, Some(base)) => {
                let base = checked_endpoint("OTEL_EXPORTER_OTLP_ENDPOINT", base)?;
                Some(format!("{}/v1/traces", base.trim_end_matches('/')))
            }
            (None, None) => None,
        };
        let click_ratio = match var("OTEL_TRACES_SAMPLER_ARG") {
            None => DEFAULT_CLICK_RATIO,
            Some(text) => text
                .parse::<f64>()
                .ok()
                .filter(|ratio| (0.0..=1.0).contains(ratio))
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "OTEL_TRACES_SAMPLER_ARG must be a ratio from 0 to 1 (the share of redirects traced), not {text:?}"
                    )
                })?,
        };
        let json_logs = match var("LOG_FORMAT").as_deref() {
            None | Some("text") => false,
            Some("json") => true,
            Some(other) => anyhow::bail!("LOG_FORMAT must be text or json, not {other:?}"),
        };
        Ok(Self {
            traces_endpoint,
            service_name: var("OTEL_SERVICE_NAME").unwrap_or_else(|| default_service.to_owned()),
            click_ratio,
            json_logs,
        })
    }
}

/// The collector is reached over plain HTTP: an agent or a sidecar beside
/// the process, as OTLP is usually deployed. Saying so at start beats
/// spans silently lost to a TLS handshake this build cannot make.
fn checked_endpoint(name: &str, value: String) -> anyhow::Result<String> {
    let parsed = url::Url::parse(&value)
        .map_err(|error| anyhow::anyhow!("{name} is not a URL ({error}): {value:?}"))?;
    anyhow::ensure!(
        parsed.scheme() == "http" && parsed.host().is_some(),
        "{name} must be an http:// URL of an OTLP/HTTP collector (https is not built in; run the collector beside the service), not {value:?}"
    );
    Ok(value)
}

/// Keeps the exporter alive; dropping it sends what is still buffered.
#[must_use = "dropping the guard shuts the exporter down"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            ON.store(false, Ordering::Relaxed);
            if let Err(error) = provider.shutdown() {
                eprintln!("traces not all exported at shutdown: {error}");
            }
        }
    }
}

/// Installs the global subscriber: logs always, traces when configured.
pub fn init(settings: &TelemetrySettings) -> anyhow::Result<Telemetry> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = if settings.json_logs {
        tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .boxed()
    };
    let Some(endpoint) = &settings.traces_endpoint else {
        tracing_subscriber::registry()
            .with(logs.with_filter(filter))
            .try_init()?;
        return Ok(Telemetry { provider: None });
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(endpoint.clone())
        .build()?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        // Which spans exist is decided here (see `Sampling`), so every span
        // that is made is kept, and a sampled parent's children with it.
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(settings.service_name.clone())
                .build(),
        )
        .build();
    let tracer = provider.tracer(settings.service_name.clone());
    // Only this project's spans (target `trace`, made where this module
    // decides) are exported; libraries' spans and every event stay out.
    let traces = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
            meta.is_span() && meta.target() == TRACE_TARGET
        }));
    tracing_subscriber::registry()
        .with(logs.with_filter(filter))
        .with(traces)
        .try_init()?;
    CLICK_RATIO.store(settings.click_ratio.to_bits(), Ordering::Relaxed);
    ON.store(true, Ordering::Relaxed);
    tracing::info!(endpoint = %endpoint, click_ratio = settings.click_ratio, "exporting traces");
    Ok(Telemetry {
        provider: Some(provider),
    })
}

/// The target of every span this project exports; spans of other targets
/// (libraries') stay out of the traces.
pub const TRACE_TARGET: &str = "trace";

/// Whether traces are exported at all.
#[inline]
pub fn is_on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// The W3C `traceparent` of the current span, when it is traced.
pub fn current_traceparent() -> Option<String> {
    if !is_on() {
        return None;
    }
    traceparent_of(&Span::current())
}

/// The W3C `traceparent` of `span`, when it is traced.
pub fn traceparent_of(span: &Span) -> Option<String> {
    if !is_on() || span.is_disabled() {
        return None;
    }
    span_context_of(span).map(|ids| {
        format!(
            "00-{}-{}-{:02x}",
            ids.trace_id(),
            ids.span_id(),
            ids.trace_flags().to_u8()
        )
    })
}

/// The OpenTelemetry ids of `span`, once it is built; `None` for a span
/// that is not exported.
fn span_context_of(span: &Span) -> Option<opentelemetry::trace::SpanContext> {
    let context = span.context();
    let ids = context.span().span_context().clone();
    ids.is_valid().then_some(ids)
}

/// Makes `span` the child of the span `traceparent` names and records its
/// ids for the logs. Call it before the span is first entered.
pub fn continue_trace(span: &Span, traceparent: Option<&str>) {
    if let Some(parent) = traceparent.and_then(parse_traceparent) {
        let _ = span.set_parent(parent);
    }
    record_ids(span);
}

/// The context a `traceparent` header carries, if it is well formed.
fn parse_traceparent(value: &str) -> Option<opentelemetry::Context> {
    let carrier = HashMap::from([("traceparent".to_owned(), value.to_owned())]);
    let context = TraceContextPropagator::new().extract(&carrier);
    context.span().span_context().is_valid().then_some(context)
}

/// Whether a `traceparent` asks for its trace to be sampled; `None` when
/// it is absent or malformed.
fn parent_sampled(value: &str) -> Option<bool> {
    parse_traceparent(value).map(|context| context.span().span_context().is_sampled())
}

/// Records the span's own `trace_id` and `span_id` fields (declared
/// `Empty` by the macros below), so log lines inside it carry them.
fn record_ids(span: &Span) {
    if let Some(ids) = span_context_of(span) {
        span.record("trace_id", ids.trace_id().to_string());
        span.record("span_id", ids.span_id().to_string());
    }
}

/// A span of this project's: exported when tracing is on, with `trace_id`
/// and `span_id` fields for the logs. `$name` is what a trace viewer shows;
/// `$kind` is `server`, `client`, `producer`, `consumer` or `internal`.
#[macro_export]
macro_rules! traced_span {
    ($name:expr, $kind:expr $(, $($field:tt)*)?) => {
        ::tracing::info_span!(
            target: $crate::telemetry::TRACE_TARGET,
            "span",
            otel.name = %$name,
            otel.kind = $kind,
            otel.status_code = ::tracing::field::Empty,
            trace_id = ::tracing::field::Empty,
            span_id = ::tracing::field::Empty
            $(, $($field)*)?
        )
    };
}

/// How a request is traced; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sampling {
    /// An API request: always traced.
    Always,
    /// A redirect from a trusted peer (a proxy or an edge that traces):
    /// traced when its parent is sampled, else at the ratio.
    Click,
    /// A redirect from anyone else: its `traceparent` is ignored (a visitor
    /// could otherwise have every click of theirs traced); traced at the
    /// ratio, as a trace of its own.
    VisitorClick,
    /// Health, readiness, metrics: never traced.
    Never,
}

/// The policy of a service without redirects: probes and scrapes are
/// never traced, everything else always.
pub fn api_sampling(request: &ServiceRequest) -> Sampling {
    match request.path() {
        "/health" | "/ready" | "/metrics" => Sampling::Never,
        _ => Sampling::Always,
    }
}

/// Whether a request under `sampling`, with this `traceparent`, is traced.
fn sampled(sampling: Sampling, traceparent: Option<&str>) -> bool {
    match sampling {
        Sampling::Never => false,
        Sampling::Always => traceparent.and_then(parent_sampled).unwrap_or(true),
        Sampling::Click => traceparent
            .and_then(parent_sampled)
            .unwrap_or_else(by_ratio),
        Sampling::VisitorClick => by_ratio(),
    }
}

/// One draw at the click ratio.
fn by_ratio() -> bool {
    let ratio = f64::from_bits(CLICK_RATIO.load(Ordering::Relaxed));
    ratio > 0.0 && rand::random::<f64>() < ratio
}

/// Middleware (`actix_web::middleware::from_fn`) that opens a server span
/// for each request `policy` says to trace, continuing its `traceparent`.
/// With tracing off it only passes the request on.
pub async fn trace_request<B: MessageBody>(
    request: ServiceRequest,
    next: Next<B>,
    policy: fn(&ServiceRequest) -> Sampling,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    if !is_on() {
        return next.call(request).await;
    }
    let sampling = policy(&request);
    let traceparent = request
        .headers()
        .get("traceparent")
        .and_then(|value| value.to_str().ok())
        .filter(|_| sampling != Sampling::VisitorClick);
    if !sampled(sampling, traceparent) {
        return next.call(request).await;
    }
    let route = request
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().as_str().to_owned();
    let span = traced_span!(
        format_args!("{method} {route}"),
        "server",
        http.request.method = %method,
        http.route = %route,
        http.response.status_code = Empty,
    );
    continue_trace(&span, traceparent);
    let response = next.call(request).instrument(span.clone()).await;
    match &response {
        Ok(response) => {
            let status = response.status();
            span.record("http.response.status_code", status.as_u16());
            if status.is_server_error() {
                span.record("otel.status_code", "error");
            }
        }
        Err(_) => {
            span.record("otel.status_code", "error");
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> anyhow::Result<TelemetrySettings> {
        TelemetrySettings::from_lookup("shortener", |name| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        })
    }

    #[test]
    fn unset_means_no_traces_and_text_logs() {
        let settings = settings(&[]).unwrap();
        assert_eq!(settings.traces_endpoint, None);
        assert_eq!(settings.service_name, "shortener");
        assert_eq!(settings.click_ratio, DEFAULT_CLICK_RATIO);
        assert!(!settings.json_logs);
    }

    #[test]
    fn the_base_endpoint_gets_the_traces_path_and_the_signal_endpoint_is_used_as_is() {
        let base = settings(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")]).unwrap();
        assert_eq!(
            base.traces_endpoint.as_deref(),
            Some("http://collector:4318/v1/traces")
        );
        let signal = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://other:9999/spans",
            ),
        ])
        .unwrap();
        assert_eq!(
            signal.traces_endpoint.as_deref(),
            Some("http://other:9999/spans")
        );
        let disabled = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_SDK_DISABLED", "true"),
        ])
        .unwrap();
        assert_eq!(disabled.traces_endpoint, None);
    }

    #[test]
    fn bad_values_are_refused_naming_the_variable() {
        for (name, value) in [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "not a url"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
            ("OTEL_TRACES_SAMPLER_ARG", "-0.1"),
            ("OTEL_TRACES_SAMPLER_ARG", "often"),
            ("OTEL_SDK_DISABLED", "yes"),
            ("LOG_FORMAT", "xml"),
        ] {
            let error = settings(&[(name, value)]).unwrap_err().to_string();
            assert!(error.contains(name), "{name}={value}: {error}");
        }
    }

    #[test]
    fn a_parent_decides_and_the_ratio_decides_only_for_clicks_without_one() {
        let yes = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let no = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
        CLICK_RATIO.store(0.0f64.to_bits(), Ordering::Relaxed);
        assert!(sampled(Sampling::Click, Some(yes)));
        assert!(!sampled(Sampling::Click, Some(no)));
        assert!(!sampled(Sampling::Click, None));
        assert!(!sampled(Sampling::Click, Some("garbage")));
        assert!(sampled(Sampling::Always, None));
        assert!(sampled(Sampling::Always, Some("garbage")));
        assert!(!sampled(Sampling::Always, Some(no)));
        assert!(!sampled(Sampling::Never, Some(yes)));
        assert!(!sampled(Sampling::VisitorClick, Some(yes)));
        CLICK_RATIO.store(1.0f64.to_bits(), Ordering::Relaxed);
        assert!(sampled(Sampling::Click, None));
    }
}
