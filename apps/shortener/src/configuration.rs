//! Settings from the environment (`SHORTENER_*`), over defaults in code.
//!
//! A variable that is set but does not parse is an error naming it: a typo in
//! production configuration must stop the service, not be silently ignored.

use std::net::SocketAddr;
use std::path::PathBuf;

use actix_web::http::header::HeaderName;
use anyhow::{Context, anyhow};
use service_kit::settings::{SecretString, from_env, nats_servers, parsed, stream_replicas};

use crate::client_addr::TrustedProxies;
use crate::domain::CodeGenerator;

/// Where links are stored.
#[derive(Debug, Clone)]
pub enum StoreSettings {
    /// Embedded default: a SQLite file.
    Sqlite { path: PathBuf },
    /// Production: MongoDB (a replica set, for transactions).
    Mongo { uri: SecretString, database: String },
}

/// Everything the service needs to start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where the HTTP API listens (`SHORTENER_HTTP_ADDR`).
    pub http_addr: SocketAddr,
    /// Base of every `short_url` (`SHORTENER_PUBLIC_URL`), without a trailing
    /// slash. Defaults to `http://` + the listen address.
    pub public_url: String,
    /// JetStream servers (`SHORTENER_NATS_URL`): one URL, or several
    /// separated by commas (the nodes of a cluster).
    pub nats_url: String,
    /// Servers the `SHORTENER` stream is kept on
    /// (`SHORTENER_STREAM_REPLICAS`, 1 to 5; 3 in a cluster).
    pub stream_replicas: usize,
    /// `SHORTENER_MONGODB_URI` (+ `SHORTENER_MONGODB_DATABASE`) selects
    /// MongoDB; otherwise `SHORTENER_SQLITE_PATH`.
    pub store: StoreSettings,
    /// An extra admin key (`SHORTENER_API_KEY`, at least 32 characters),
    /// for bootstrapping and for `make up`; stored keys are managed with
    /// `shortener api-key`.
    pub api_key: Option<SecretString>,
    /// Failed key checks per client per minute before it gets 429
    /// (`SHORTENER_AUTH_FAILURES_PER_MINUTE`).
    pub auth_failures_per_minute: std::num::NonZeroU32,
    /// Makes codes of the length `SHORTENER_CODE_LENGTH` asks for.
    pub codes: CodeGenerator,
    /// Link creations per client IP per minute (`SHORTENER_CREATE_RATE_PER_MINUTE`); 0 turns it off.
    pub create_rate_per_minute: u32,
    /// Secret behind the daily visitor keys (`SHORTENER_VISITOR_KEY_SECRET`).
    /// Set it to the same value on every instance; unset, each process draws
    /// its own and unique visitors are only comparable within it.
    pub visitor_key_secret: Option<SecretString>,
    /// Request header carrying the visitor's country as ISO 3166-1 alpha-2,
    /// set by a trusted proxy or CDN (`SHORTENER_COUNTRY_HEADER`, e.g.
    /// `CF-IPCountry`); unset, clicks carry no country.
    pub country_header: Option<HeaderName>,
    /// Reverse proxies whose `X-Forwarded-For`/`Forwarded` and country
    /// headers are believed (`SHORTENER_TRUSTED_PROXIES`, comma-separated
    /// CIDRs); empty by default: every peer is the client itself.
    pub trusted_proxies: TrustedProxies,
    /// HTTP worker threads (`SHORTENER_WORKERS`); defaults to one per core.
    pub workers: Option<usize>,
}

impl Default for Settings {
    fn default() -> Self {
        let http_addr = SocketAddr::from(([127, 0, 0, 1], 8080));
        Self {
            http_addr,
            public_url: format!("http://{http_addr}"),
            nats_url: "nats://127.0.0.1:4222".into(),
            stream_replicas: 1,
            store: StoreSettings::Sqlite {
                path: PathBuf::from(".data/shortener/links.db"),
            },
            api_key: None,
            auth_failures_per_minute: std::num::NonZeroU32::new(30).expect("non-zero"),
            codes: CodeGenerator::default(),
            create_rate_per_minute: 600,
            visitor_key_secret: None,
            country_header: None,
            trusted_proxies: TrustedProxies::default(),
            workers: None,
        }
    }
}

pub use service_kit::settings::masked;

/// The shortest configured key accepted: 32 characters.
pub const MIN_KEY_CHARS: usize = 32;

impl Settings {
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(from_env)
    }

    /// [`Settings::from_env`] over any source of variables, for tests.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let mut settings = Self::default();
        if let Some(v) = lookup("SHORTENER_HTTP_ADDR") {
            settings.http_addr = parsed("SHORTENER_HTTP_ADDR", &v)?;
        }
        settings.public_url = match lookup("SHORTENER_PUBLIC_URL") {
            Some(v) => {
                let url = url::Url::parse(&v)
                    .with_context(|| format!("SHORTENER_PUBLIC_URL={v:?} is not a URL"))?;
                if !matches!(url.scheme(), "http" | "https") {
                    return Err(anyhow!("SHORTENER_PUBLIC_URL={v:?} must be http or https"));
                }
                v.trim_end_matches('/').to_owned()
            }
            None => format!("http://{}", settings.http_addr),
        };
        if let Some(v) = lookup("SHORTENER_NATS_URL") {
            nats_servers("SHORTENER_NATS_URL", &v)?;
            settings.nats_url = v;
        }
        if let Some(v) = lookup("SHORTENER_STREAM_REPLICAS") {
            settings.stream_replicas = stream_replicas("SHORTENER_STREAM_REPLICAS", &v)?;
        }
        settings.store = match lookup("SHORTENER_MONGODB_URI") {
            Some(uri) => StoreSettings::Mongo {
                uri: SecretString::from(uri),
                database: lookup("SHORTENER_MONGODB_DATABASE")
                    .unwrap_or_else(|| "shortener".into()),
            },
            None => StoreSettings::Sqlite {
                path: lookup("SHORTENER_SQLITE_PATH")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from(".data/shortener/links.db")),
            },
        };
        if let Some(key) = lookup("SHORTENER_API_KEY") {
            if key.chars().count() < MIN_KEY_CHARS {
                return Err(anyhow!(
                    "SHORTENER_API_KEY must be at least {MIN_KEY_CHARS} characters (it is an admin key)"
                ));
            }
            settings.api_key = Some(SecretString::from(key));
        }
        if let Some(v) = lookup("SHORTENER_AUTH_FAILURES_PER_MINUTE") {
            settings.auth_failures_per_minute = parsed("SHORTENER_AUTH_FAILURES_PER_MINUTE", &v)?;
        }
        if let Some(v) = lookup("SHORTENER_CODE_LENGTH") {
            let length = parsed("SHORTENER_CODE_LENGTH", &v)?;
            settings.codes = CodeGenerator::new(length)
                .map_err(|e| anyhow!("SHORTENER_CODE_LENGTH={v:?}: {e}"))?;
        }
        if let Some(v) = lookup("SHORTENER_CREATE_RATE_PER_MINUTE") {
            settings.create_rate_per_minute = parsed("SHORTENER_CREATE_RATE_PER_MINUTE", &v)?;
        }
        settings.visitor_key_secret =
            lookup("SHORTENER_VISITOR_KEY_SECRET").map(SecretString::from);
        if let Some(v) = lookup("SHORTENER_COUNTRY_HEADER") {
            let name = HeaderName::from_bytes(v.as_bytes())
                .map_err(|e| anyhow!("SHORTENER_COUNTRY_HEADER={v:?} is not a header name: {e}"))?;
            settings.country_header = Some(name);
        }
        if let Some(v) = lookup("SHORTENER_TRUSTED_PROXIES") {
            settings.trusted_proxies = TrustedProxies::parse(&v)
                .map_err(|e| anyhow!("SHORTENER_TRUSTED_PROXIES={v:?}: {e}"))?;
        }
        if let Some(v) = lookup("SHORTENER_WORKERS") {
            let workers: usize = parsed("SHORTENER_WORKERS", &v)?;
            if workers == 0 {
                return Err(anyhow!("SHORTENER_WORKERS must be at least 1"));
            }
            settings.workers = Some(workers);
        }
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use service_kit::settings::ExposeSecret;

    use super::*;

    fn from(vars: &[(&str, &str)]) -> anyhow::Result<Settings> {
        Settings::from_lookup(service_kit::settings::lookup_in(vars))
    }

    #[test]
    fn defaults_are_a_local_embedded_setup() {
        let settings = from(&[]).unwrap();
        assert_eq!(settings.http_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(settings.public_url, "http://127.0.0.1:8080");
        assert!(matches!(settings.store, StoreSettings::Sqlite { .. }));
        assert!(settings.api_key.is_none());
        assert_eq!(settings.create_rate_per_minute, 600);
    }

    #[test]
    fn a_mongodb_uri_selects_mongodb_and_stays_secret() {
        let settings = from(&[(
            "SHORTENER_MONGODB_URI",
            "mongodb://user:pw@db/?replicaSet=rs0",
        )])
        .unwrap();
        let StoreSettings::Mongo { uri, database } = &settings.store else {
            panic!("not mongo")
        };
        assert_eq!(database, "shortener");
        assert_eq!(uri.expose_secret(), "mongodb://user:pw@db/?replicaSet=rs0");
        assert!(!format!("{settings:?}").contains("pw"));
    }

    #[test]
    fn malformed_values_name_their_variable() {
        for (name, value) in [
            ("SHORTENER_HTTP_ADDR", "not an address"),
            ("SHORTENER_PUBLIC_URL", "ftp://example.com"),
            ("SHORTENER_CODE_LENGTH", "3"),
            ("SHORTENER_CREATE_RATE_PER_MINUTE", "-1"),
            ("SHORTENER_WORKERS", "0"),
            ("SHORTENER_WORKERS", "many"),
            ("SHORTENER_API_KEY", "too-short"),
            ("SHORTENER_TRUSTED_PROXIES", "10.0.0.0/8,not-a-cidr"),
            ("SHORTENER_AUTH_FAILURES_PER_MINUTE", "0"),
            ("SHORTENER_NATS_URL", "nats://127.0.0.1:4222,,http://[bad"),
            ("SHORTENER_STREAM_REPLICAS", "0"),
            ("SHORTENER_STREAM_REPLICAS", "three"),
        ] {
            let error = from(&[(name, value)]).unwrap_err();
            assert!(error.to_string().contains(name), "{error}");
        }
    }

    #[test]
    fn the_public_url_loses_its_trailing_slash() {
        let settings = from(&[("SHORTENER_PUBLIC_URL", "https://sho.rt/")]).unwrap();
        assert_eq!(settings.public_url, "https://sho.rt");
    }
}
