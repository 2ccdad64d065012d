//! Settings from the environment (`ANALYTICS_*`), over defaults in code.

use std::net::SocketAddr;

/// Everything the service needs to start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where the HTTP API listens (`ANALYTICS_HTTP_ADDR`).
    pub http_addr: SocketAddr,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8081)),
        }
    }
}

impl Settings {
    /// Defaults overridden by environment variables; a variable that is set
    /// but does not parse is an error naming it, never silently ignored.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`Settings::from_env`] over any source of variables, for tests.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let mut settings = Self::default();
        if let Some(addr) = lookup("ANALYTICS_HTTP_ADDR") {
            settings.http_addr = addr.parse().map_err(|e| {
                anyhow::anyhow!("ANALYTICS_HTTP_ADDR={addr:?} is not a socket address: {e}")
            })?;
        }
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_listen_on_loopback_port_8081() {
        let settings = Settings::from_lookup(|_| None).unwrap();
        assert_eq!(settings.http_addr.to_string(), "127.0.0.1:8081");
    }

    #[test]
    fn a_malformed_address_names_the_variable() {
        let error = Settings::from_lookup(|_| Some("not an address".into())).unwrap_err();
        assert!(error.to_string().contains("ANALYTICS_HTTP_ADDR"), "{error}");
    }
}
