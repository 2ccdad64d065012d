//! Settings from the environment, checked once at start-up.

use std::net::SocketAddr;

use anyhow::{Context, anyhow, bail};
use secrecy::SecretSlice;
use service_kit::settings::{SecretString, from_env};
use url::Url;

/// Shortest accepted session secret, in bytes.
const MIN_SECRET_BYTES: usize = 32;

#[derive(Debug, Clone)]
pub struct Settings {
    /// Where the console listens (`CONSOLE_HTTP_ADDR`, default 127.0.0.1:8082).
    pub http_addr: SocketAddr,
    /// The shortener's base URL (`CONSOLE_SHORTENER_URL`).
    pub shortener_url: Url,
    /// Analytics' base URL (`CONSOLE_ANALYTICS_URL`).
    pub analytics_url: Url,
    /// The console's own analytics key (`CONSOLE_ANALYTICS_API_KEY`):
    /// stats are read with it, and only for links the signed-in key can
    /// read on the shortener.
    pub analytics_key: SecretString,
    /// Derives the forms' CSRF tokens (`CONSOLE_SESSION_SECRET`, at least
    /// 32 bytes). Unset, a random one is drawn: sessions then end with the
    /// process, as they do anyway (they live in its memory).
    pub session_secret: SecretSlice<u8>,
    /// How long a session lasts without a request (`CONSOLE_SESSION_IDLE_MINUTES`, default 480).
    pub session_idle_minutes: u64,
    /// A shortener admin key for the consistency monitor to run on its own
    /// (`CONSOLE_MONITOR_API_KEY`), its findings then on `/metrics` for
    /// alerts. Unset, the monitor runs only when asked.
    pub monitor_key: Option<SecretString>,
    /// Seconds between the monitor's own runs (`CONSOLE_MONITOR_INTERVAL_SECONDS`,
    /// default 60).
    pub monitor_interval_seconds: u64,
}

fn base_url(name: &str, value: &str) -> anyhow::Result<Url> {
    let url =
        Url::parse(value.trim_end_matches('/')).with_context(|| format!("{name}={value:?}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        bail!("{name}={value:?} must be an http(s) URL");
    }
    Ok(url)
}

impl Settings {
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(from_env)
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let http_addr = match lookup("CONSOLE_HTTP_ADDR") {
            Some(v) => v
                .parse()
                .map_err(|e| anyhow!("CONSOLE_HTTP_ADDR={v:?}: {e}"))?,
            None => SocketAddr::from(([127, 0, 0, 1], 8082)),
        };
        let shortener_url = base_url(
            "CONSOLE_SHORTENER_URL",
            &lookup("CONSOLE_SHORTENER_URL").unwrap_or_else(|| "http://127.0.0.1:8080".into()),
        )?;
        let analytics_url = base_url(
            "CONSOLE_ANALYTICS_URL",
            &lookup("CONSOLE_ANALYTICS_URL").unwrap_or_else(|| "http://127.0.0.1:8081".into()),
        )?;
        let analytics_key = lookup("CONSOLE_ANALYTICS_API_KEY")
            .filter(|k| !k.trim().is_empty())
            .map(SecretString::from)
            .ok_or_else(|| {
                anyhow!(
                    "CONSOLE_ANALYTICS_API_KEY is not set: the console reads stats with an \
                     analytics key of its own"
                )
            })?;
        let session_secret = match lookup("CONSOLE_SESSION_SECRET") {
            Some(secret) if secret.len() >= MIN_SECRET_BYTES => secret.into_bytes().into(),
            Some(_) => bail!("CONSOLE_SESSION_SECRET must be at least {MIN_SECRET_BYTES} bytes"),
            None => {
                tracing::warn!(
                    "CONSOLE_SESSION_SECRET is not set; using a random one (sessions end when \
                     the console stops)"
                );
                rand::random::<[u8; 32]>().to_vec().into()
            }
        };
        let session_idle_minutes = match lookup("CONSOLE_SESSION_IDLE_MINUTES") {
            Some(v) => v
                .parse::<u64>()
                .ok()
                .filter(|&m| (1..=7 * 24 * 60).contains(&m))
                .ok_or_else(|| anyhow!("CONSOLE_SESSION_IDLE_MINUTES={v:?}: must be 1 to 10080"))?,
            None => 480,
        };
        let monitor_key = lookup("CONSOLE_MONITOR_API_KEY")
            .filter(|k| !k.trim().is_empty())
            .map(SecretString::from);
        let monitor_interval_seconds = match lookup("CONSOLE_MONITOR_INTERVAL_SECONDS") {
            Some(v) => v
                .parse::<u64>()
                .ok()
                .filter(|&s| (5..=86_400).contains(&s))
                .ok_or_else(|| {
                    anyhow!("CONSOLE_MONITOR_INTERVAL_SECONDS={v:?}: must be 5 to 86400")
                })?,
            None => 60,
        };
        Ok(Self {
            http_addr,
            shortener_url,
            analytics_url,
            analytics_key,
            session_secret,
            session_idle_minutes,
            monitor_key,
            monitor_interval_seconds,
        })
    }
}

#[cfg(test)]
mod tests {
    use service_kit::settings::ExposeSecret;

    use super::*;

    fn settings(vars: &[(&str, &str)]) -> anyhow::Result<Settings> {
        Settings::from_lookup(service_kit::settings::lookup_in(vars))
    }

    #[test]
    fn defaults_reach_the_services_of_make_up() {
        let s = settings(&[("CONSOLE_ANALYTICS_API_KEY", "k")]).unwrap();
        assert_eq!(s.http_addr.to_string(), "127.0.0.1:8082");
        assert_eq!(s.shortener_url.as_str(), "http://127.0.0.1:8080/");
        assert_eq!(s.analytics_url.as_str(), "http://127.0.0.1:8081/");
        assert_eq!(s.session_secret.expose_secret().len(), 32);
        assert!(
            !format!("{s:?}").contains("\"k\""),
            "the key is never logged"
        );
    }

    #[test]
    fn bad_settings_name_the_variable() {
        for (vars, name) in [
            (vec![], "CONSOLE_ANALYTICS_API_KEY"),
            (
                vec![("CONSOLE_SHORTENER_URL", "ftp://x")],
                "CONSOLE_SHORTENER_URL",
            ),
            (vec![("CONSOLE_HTTP_ADDR", "nowhere")], "CONSOLE_HTTP_ADDR"),
            (
                vec![("CONSOLE_SESSION_SECRET", "short")],
                "CONSOLE_SESSION_SECRET",
            ),
            (
                vec![("CONSOLE_MONITOR_INTERVAL_SECONDS", "1")],
                "CONSOLE_MONITOR_INTERVAL_SECONDS",
            ),
            (
                vec![("CONSOLE_MONITOR_INTERVAL_SECONDS", "often")],
                "CONSOLE_MONITOR_INTERVAL_SECONDS",
            ),
        ] {
            let mut vars = vars;
            if name != "CONSOLE_ANALYTICS_API_KEY" {
                vars.push(("CONSOLE_ANALYTICS_API_KEY", "k"));
            }
            let error = settings(&vars).unwrap_err().to_string();
            assert!(error.contains(name), "{error}");
        }
    }
}
