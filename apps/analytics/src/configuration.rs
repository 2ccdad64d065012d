//! Settings from the environment (`ANALYTICS_*`), over defaults in code.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::anyhow;
use service_kit::settings::{SecretString, from_env, nats_servers, parsed, stream_replicas};

use crate::consumer::ConsumerSettings;
use crate::store::ClickHouseSettings;

/// Which store holds the clicks.
#[derive(Debug, Clone)]
pub enum StoreSettings {
    /// Embedded default: one SQLite file.
    Sqlite { path: PathBuf },
    /// Production: ClickHouse over HTTP.
    ClickHouse(ClickHouseSettings),
}

/// Everything the service needs to start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where the HTTP API listens (`ANALYTICS_HTTP_ADDR`).
    pub http_addr: SocketAddr,
    /// JetStream servers (`ANALYTICS_NATS_URL`): one URL, or several
    /// separated by commas (the nodes of a cluster).
    pub nats_url: String,
    /// `ANALYTICS_CLICKHOUSE_URL` (one server, or several replicas separated
    /// by commas; + `_DATABASE`, `_USER`, `_PASSWORD`, `_REPLICATED`)
    /// selects ClickHouse; otherwise `ANALYTICS_SQLITE_PATH`.
    pub store: StoreSettings,
    /// `ANALYTICS_BATCH_SIZE`, `ANALYTICS_ACK_WAIT_SECONDS`, `ANALYTICS_MAX_DELIVER`,
    /// `ANALYTICS_STREAM_REPLICAS`.
    pub consumers: ConsumerSettings,
    /// An extra key (`ANALYTICS_API_KEY`, at least 32 characters); stored
    /// keys are managed with `analytics api-key`.
    pub api_key: Option<SecretString>,
    /// Failed key checks per client per minute before it gets 429
    /// (`ANALYTICS_AUTH_FAILURES_PER_MINUTE`).
    pub auth_failures_per_minute: std::num::NonZeroU32,
}

/// The shortest configured key accepted.
pub const MIN_KEY_CHARS: usize = 32;

pub use service_kit::settings::masked;

impl Default for Settings {
    fn default() -> Self {
        Self {
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8081)),
            nats_url: "nats://127.0.0.1:4222".into(),
            store: StoreSettings::Sqlite {
                path: PathBuf::from(".data/analytics/analytics.db"),
            },
            consumers: ConsumerSettings::default(),
            api_key: None,
            auth_failures_per_minute: std::num::NonZeroU32::new(30).expect("non-zero"),
        }
    }
}

impl Settings {
    /// Defaults overridden by environment variables; a variable that is set
    /// but does not parse is an error naming it, never silently ignored.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(from_env)
    }

    /// [`Settings::from_env`] over any source of variables, for tests.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let mut settings = Self::default();
        if let Some(v) = lookup("ANALYTICS_HTTP_ADDR") {
            settings.http_addr = parsed("ANALYTICS_HTTP_ADDR", &v)?;
        }
        if let Some(v) = lookup("ANALYTICS_NATS_URL") {
            nats_servers("ANALYTICS_NATS_URL", &v)?;
            settings.nats_url = v;
        }
        if let Some(v) = lookup("ANALYTICS_STREAM_REPLICAS") {
            settings.consumers.stream_replicas = stream_replicas("ANALYTICS_STREAM_REPLICAS", &v)?;
        }
        settings.store = store_from(&lookup)?;
        consumers_from(&lookup, &mut settings.consumers)?;
        if let Some(key) = lookup("ANALYTICS_API_KEY") {
            if key.chars().count() < MIN_KEY_CHARS {
                return Err(anyhow!(
                    "ANALYTICS_API_KEY must be at least {MIN_KEY_CHARS} characters"
                ));
            }
            settings.api_key = Some(SecretString::from(key));
        }
        if let Some(v) = lookup("ANALYTICS_AUTH_FAILURES_PER_MINUTE") {
            settings.auth_failures_per_minute = parsed("ANALYTICS_AUTH_FAILURES_PER_MINUTE", &v)?;
        }
        Ok(settings)
    }
}

/// `ANALYTICS_CLICKHOUSE_*` when the URL is set, `ANALYTICS_SQLITE_PATH` otherwise.
fn store_from(lookup: &impl Fn(&str) -> Option<String>) -> anyhow::Result<StoreSettings> {
    Ok(match lookup("ANALYTICS_CLICKHOUSE_URL") {
        Some(url) => {
            let mut servers = 0;
            for entry in url.split(',').map(str::trim).filter(|u| !u.is_empty()) {
                let parsed_url = url::Url::parse(entry).map_err(|e| {
                    anyhow!("ANALYTICS_CLICKHOUSE_URL: {entry:?} is not a URL: {e}")
                })?;
                if !matches!(parsed_url.scheme(), "http" | "https") {
                    return Err(anyhow!(
                        "ANALYTICS_CLICKHOUSE_URL: {entry:?} must be the HTTP interface (http or https)"
                    ));
                }
                servers += 1;
            }
            if servers == 0 {
                return Err(anyhow!("ANALYTICS_CLICKHOUSE_URL names no server"));
            }
            let replicated = match lookup("ANALYTICS_CLICKHOUSE_REPLICATED").as_deref() {
                None | Some("false" | "0" | "") => false,
                Some("true" | "1") => true,
                Some(other) => {
                    return Err(anyhow!(
                        "ANALYTICS_CLICKHOUSE_REPLICATED={other:?} must be true or false"
                    ));
                }
            };
            if servers > 1 && !replicated {
                // Unreplicated servers would each hold part of the data.
                return Err(anyhow!(
                    "ANALYTICS_CLICKHOUSE_URL lists {servers} servers: set \
                         ANALYTICS_CLICKHOUSE_REPLICATED=true, they must be replicas of one another"
                ));
            }
            StoreSettings::ClickHouse(ClickHouseSettings {
                url,
                database: lookup("ANALYTICS_CLICKHOUSE_DATABASE")
                    .unwrap_or_else(|| "analytics".into()),
                user: lookup("ANALYTICS_CLICKHOUSE_USER"),
                password: lookup("ANALYTICS_CLICKHOUSE_PASSWORD"),
                replicated,
            })
        }
        None => StoreSettings::Sqlite {
            path: lookup("ANALYTICS_SQLITE_PATH")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(".data/analytics/analytics.db")),
        },
    })
}

/// The consumers' batch, ack wait, deliveries and raw retention.
fn consumers_from(
    lookup: &impl Fn(&str) -> Option<String>,
    consumers: &mut ConsumerSettings,
) -> anyhow::Result<()> {
    if let Some(v) = lookup("ANALYTICS_BATCH_SIZE") {
        let size: usize = parsed("ANALYTICS_BATCH_SIZE", &v)?;
        if size == 0 {
            return Err(anyhow!("ANALYTICS_BATCH_SIZE must be at least 1"));
        }
        consumers.batch_size = size;
    }
    if let Some(v) = lookup("ANALYTICS_ACK_WAIT_SECONDS") {
        let secs: f64 = parsed("ANALYTICS_ACK_WAIT_SECONDS", &v)?;
        if !(0.5..=3_600.0).contains(&secs) {
            return Err(anyhow!(
                "ANALYTICS_ACK_WAIT_SECONDS={v:?} must be between 0.5 and 3600"
            ));
        }
        consumers.ack_wait = Duration::from_secs_f64(secs);
    }
    if let Some(v) = lookup("ANALYTICS_MAX_DELIVER") {
        let n: i64 = parsed("ANALYTICS_MAX_DELIVER", &v)?;
        if n < 2 {
            return Err(anyhow!("ANALYTICS_MAX_DELIVER must be at least 2"));
        }
        consumers.max_deliver = n;
    }
    if let Some(v) = lookup("ANALYTICS_RAW_RETENTION_DAYS") {
        let days: u32 = parsed("ANALYTICS_RAW_RETENTION_DAYS", &v)?;
        if days == 0 {
            return Err(anyhow!(
                "ANALYTICS_RAW_RETENTION_DAYS must be at least 1 (unset keeps every click)"
            ));
        }
        consumers.raw_retention_days = Some(days);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(vars: &[(&str, &str)]) -> anyhow::Result<Settings> {
        Settings::from_lookup(service_kit::settings::lookup_in(vars))
    }

    #[test]
    fn defaults_are_a_local_embedded_setup() {
        let settings = from(&[]).unwrap();
        assert_eq!(settings.http_addr.to_string(), "127.0.0.1:8081");
        assert_eq!(settings.nats_url, "nats://127.0.0.1:4222");
        assert!(matches!(settings.store, StoreSettings::Sqlite { .. }));
        assert_eq!(settings.consumers.stream_replicas, 1);
    }

    #[test]
    fn a_cluster_is_several_nats_urls_and_three_replicas() {
        let settings = from(&[
            (
                "ANALYTICS_NATS_URL",
                "nats://127.0.0.1:4222,nats://127.0.0.1:4223,nats://127.0.0.1:4224",
            ),
            ("ANALYTICS_STREAM_REPLICAS", "3"),
        ])
        .unwrap();
        assert_eq!(settings.consumers.stream_replicas, 3);
    }

    #[test]
    fn a_clickhouse_url_selects_clickhouse_and_hides_the_password() {
        let settings = from(&[
            ("ANALYTICS_CLICKHOUSE_URL", "http://127.0.0.1:8123"),
            ("ANALYTICS_CLICKHOUSE_PASSWORD", "hunter2"),
        ])
        .unwrap();
        let StoreSettings::ClickHouse(ch) = &settings.store else {
            panic!("not clickhouse")
        };
        assert_eq!(ch.database, "analytics");
        assert!(!ch.replicated);
        assert!(!format!("{settings:?}").contains("hunter2"));
    }

    #[test]
    fn several_clickhouse_servers_and_the_replicated_schema() {
        let settings = from(&[
            (
                "ANALYTICS_CLICKHOUSE_URL",
                "http://127.0.0.1:8123,http://127.0.0.1:8124",
            ),
            ("ANALYTICS_CLICKHOUSE_REPLICATED", "true"),
        ])
        .unwrap();
        let StoreSettings::ClickHouse(ch) = &settings.store else {
            panic!("not clickhouse")
        };
        assert!(ch.replicated);
        assert_eq!(ch.urls().count(), 2);
        for (url, replicated) in [
            ("http://127.0.0.1:8123,ftp://127.0.0.1:21", "true"),
            ("http://127.0.0.1:8123,http://127.0.0.1:8124", "false"),
            (" , ", "false"),
            ("http://127.0.0.1:8123", "sometimes"),
        ] {
            let error = from(&[
                ("ANALYTICS_CLICKHOUSE_URL", url),
                ("ANALYTICS_CLICKHOUSE_REPLICATED", replicated),
            ])
            .unwrap_err();
            assert!(
                error.to_string().contains("ANALYTICS_CLICKHOUSE_"),
                "{error}"
            );
        }
    }

    #[test]
    fn malformed_values_name_their_variable() {
        for (name, value) in [
            ("ANALYTICS_HTTP_ADDR", "not an address"),
            ("ANALYTICS_CLICKHOUSE_URL", "tcp://127.0.0.1:9000"),
            ("ANALYTICS_BATCH_SIZE", "0"),
            ("ANALYTICS_ACK_WAIT_SECONDS", "soon"),
            ("ANALYTICS_MAX_DELIVER", "1"),
            ("ANALYTICS_API_KEY", "short"),
            ("ANALYTICS_AUTH_FAILURES_PER_MINUTE", "0"),
            ("ANALYTICS_RAW_RETENTION_DAYS", "0"),
            ("ANALYTICS_RAW_RETENTION_DAYS", "a month"),
            ("ANALYTICS_NATS_URL", "nats://127.0.0.1:4222,http://[bad"),
            ("ANALYTICS_STREAM_REPLICAS", "0"),
            ("ANALYTICS_STREAM_REPLICAS", "7"),
        ] {
            let error = from(&[(name, value)]).unwrap_err();
            assert!(error.to_string().contains(name), "{name}: {error}");
        }
    }
}
