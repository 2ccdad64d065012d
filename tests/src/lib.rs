//! Test harness: real backend servers on free 127.0.0.1 ports, each with its
//! own temporary data directory, stopped reliably.
//!
//! * [`NatsServer`]: `nats-server` with JetStream.
//! * [`ClickHouseServer`]: `clickhouse-server` as a plain process.
//! * [`MongoServer`]: the MongoDB-wire test server (SecantusDB's `secantusd-py`).
//! * [`otlp::OtlpReceiver`]: an OTLP/HTTP trace receiver, the services' collector.
//!
//! A server is stopped when its handle is dropped, including while a test
//! panics. If the test process itself dies (SIGKILL, abort), the kernel kills
//! the servers too: they are spawned with `PR_SET_PDEATHSIG` from a thread
//! that lives as long as the process (see [`process`]).
//!
//! A test that needs a server starts it with [`require!`]: where the server is
//! not installed the test is skipped with a message, except when `CI` is set
//! (or `REQUIRE_BACKENDS=1`), where a missing server is a failure.

mod backends;
pub mod otlp;
pub mod process;
pub mod proxy;
pub mod services;
pub mod upgrade;

pub use backends::{ClickHouseServer, MongoServer, NatsCluster, NatsServer, tools_venv};
pub use process::HarnessError;
pub use services::{Service, service_binary};

/// Whether a missing server fails the test instead of skipping it.
pub fn backends_required() -> bool {
    let set = |name: &str| {
        std::env::var(name)
            .map(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
            .unwrap_or(false)
    };
    set("CI") || set("REQUIRE_BACKENDS")
}

/// The server, or `None` when it is not installed and backends are not
/// required (the caller skips); any other failure panics.
pub fn started<S>(start: Result<S, HarnessError>) -> Option<S> {
    match start {
        Ok(server) => Some(server),
        Err(error) if error.is_not_installed() && !backends_required() => {
            eprintln!("SKIPPED: {error}");
            None
        }
        Err(error) => panic!("{error}"),
    }
}

/// Starts a server or, where it is not installed and backends are not
/// required, skips the calling test (which must return `()`).
///
/// ```ignore
/// let nats = system_tests::require!(NatsServer::start());
/// ```
#[macro_export]
macro_rules! require {
    ($start:expr) => {
        match $crate::started($start) {
            Some(server) => server,
            None => return,
        }
    };
}
