//! Settings from the environment, read the same way by every service: a
//! variable that is set but does not parse is an error naming it (a typo in
//! production configuration must stop the service, not be ignored), and
//! secrets are [`SecretString`]s, which never print.

use std::fmt::Display;
use std::str::FromStr;

use anyhow::anyhow;
pub use secrecy::{ExposeSecret, SecretString};

/// The most servers JetStream keeps a stream on.
pub const MAX_STREAM_REPLICAS: usize = 5;

/// The variable `name`, when it is set to something.
pub fn from_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// A lookup over fixed variables, for tests of settings.
pub fn lookup_in(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

/// `value` of variable `name`, parsed; the error names both.
pub fn parsed<T: FromStr>(name: &str, value: &str) -> anyhow::Result<T>
where
    T::Err: Display,
{
    value
        .trim()
        .parse()
        .map_err(|e| anyhow!("{name}={value:?} is invalid: {e}"))
}

/// A connection URL, or a comma-separated list of them, as it may be
/// logged: every password masked.
pub fn masked(urls: &str) -> String {
    urls.split(',')
        .map(|one| match url::Url::parse(one.trim()) {
            Ok(mut parsed) if parsed.password().is_some() => {
                let _ = parsed.set_password(Some("***"));
                parsed.to_string()
            }
            Ok(_) => one.trim().to_owned(),
            Err(_) => "(unparsable URL)".to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// A stream's replica count (`SHORTENER_STREAM_REPLICAS`, ...): 1 on a
/// single nats-server, 3 in a cluster (a stream on 3 servers survives
/// losing one), at most [`MAX_STREAM_REPLICAS`].
pub fn stream_replicas(name: &str, value: &str) -> anyhow::Result<usize> {
    match value.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_STREAM_REPLICAS).contains(&n) => Ok(n),
        _ => Err(anyhow!(
            "{name}={value:?} must be a whole number from 1 to {MAX_STREAM_REPLICAS}"
        )),
    }
}

/// The servers of a comma-separated list of NATS URLs (`nats://a:4222,
/// nats://b:4222`): the client connects to any of them and moves to another
/// when one goes away. Errors name the entry at fault.
pub fn nats_servers(name: &str, list: &str) -> anyhow::Result<Vec<async_nats::ServerAddr>> {
    let entries: Vec<&str> = list
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect();
    if entries.is_empty() {
        return Err(anyhow!("{name} names no NATS server"));
    }
    entries
        .into_iter()
        .map(|entry| {
            entry
                .parse::<async_nats::ServerAddr>()
                .map_err(|e| anyhow!("{name}: {entry:?} is not a NATS URL: {e}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_are_one_to_five() {
        assert_eq!(stream_replicas("R", "1").unwrap(), 1);
        assert_eq!(stream_replicas("R", " 3 ").unwrap(), 3);
        for bad in ["0", "6", "-1", "three", ""] {
            let error = stream_replicas("SHORTENER_STREAM_REPLICAS", bad)
                .unwrap_err()
                .to_string();
            assert!(error.starts_with("SHORTENER_STREAM_REPLICAS="), "{error}");
        }
    }

    #[test]
    fn a_server_list_is_comma_separated_and_names_the_bad_entry() {
        let servers = nats_servers(
            "X_NATS_URL",
            "nats://127.0.0.1:4222, nats://127.0.0.1:4223,127.0.0.1:4224",
        )
        .unwrap();
        assert_eq!(servers.len(), 3);
        assert_eq!(servers[1].port(), 4223);
        let error = nats_servers("X_NATS_URL", "nats://127.0.0.1:4222,http://[bad")
            .unwrap_err()
            .to_string();
        assert!(error.contains("\"http://[bad\""), "{error}");
        assert!(nats_servers("X_NATS_URL", " , ").is_err());
    }

    #[test]
    fn a_value_that_does_not_parse_is_an_error_naming_the_variable() {
        assert_eq!(parsed::<u32>("N", " 7 ").unwrap(), 7);
        let error = parsed::<u32>("N", "seven").unwrap_err().to_string();
        assert!(error.starts_with("N=\"seven\" is invalid"), "{error}");
    }

    #[test]
    fn a_logged_url_hides_its_password() {
        assert_eq!(masked("http://u:secret@h:8123/"), "http://u:***@h:8123/");
        assert_eq!(masked("nats://h:4222"), "nats://h:4222");
        assert_eq!(
            masked("nats://u:pw@a:1, nats://b:2"),
            "nats://u:***@a:1,nats://b:2"
        );
    }

    #[test]
    fn a_secret_never_prints() {
        let secret = SecretString::from("hunter2");
        assert!(!format!("{secret:?}").contains("hunter2"));
        assert_eq!(secret.expose_secret(), "hunter2");
    }
}
