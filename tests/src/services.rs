//! The services' own binaries (`shortener`, `analytics`) as real processes,
//! for the end-to-end and fault tests.
//!
//! The binaries are the workspace's build of them: `make test` builds them
//! (`cargo build --workspace --bins`) before the tests run. They are looked
//! up in `URL_SHORTENER_BIN_DIR` when set, else next to the running test
//! (`target/<profile>/`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::process::{HarnessError, Supervised, free_port, http_get};

const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Path of a service binary of this workspace.
pub fn service_binary(name: &str) -> PathBuf {
    let dir = match std::env::var_os("URL_SHORTENER_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let test = std::env::current_exe().expect("the test binary's path");
            // target/<profile>/deps/<test> -> target/<profile>
            test.parent()
                .and_then(Path::parent)
                .expect("the test binary lives in target/<profile>/deps")
                .to_owned()
        }
    };
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: build the services first (cargo build --workspace --bins; make test does)",
        path.display()
    );
    path
}

/// A service process on a free port, logging to `<log_dir>/<name>.log`.
pub struct Service {
    process: Supervised,
    port: u16,
}

impl Service {
    /// Starts `name` with `envs` (plus `<NAME>_HTTP_ADDR` on a free port) and
    /// waits for its `/ready`.
    pub fn start(
        name: &'static str,
        envs: &[(&str, String)],
        log_dir: &Path,
    ) -> Result<Self, HarnessError> {
        let port = free_port();
        let mut envs: Vec<(String, String)> = envs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        envs.push((
            format!("{}_HTTP_ADDR", name.to_ascii_uppercase()),
            format!("127.0.0.1:{port}"),
        ));
        if !envs.iter().any(|(k, _)| k == "RUST_LOG") {
            envs.push(("RUST_LOG".into(), "info".into()));
        }
        let process = Supervised::start_with_env(
            name,
            &service_binary(name),
            Vec::new(),
            envs,
            log_dir.join(format!("{name}.log")),
        )?;
        let mut service = Service { process, port };
        service.wait_ready()?;
        Ok(service)
    }

    /// Waits until `/ready` answers 200.
    pub fn wait_ready(&mut self) -> Result<(), HarnessError> {
        let port = self.port;
        self.process.wait_until(READY_TIMEOUT, || {
            matches!(http_get(port, "/ready"), Some((200, _)))
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// SIGTERM, then SIGKILL after `grace`.
    pub fn stop(&mut self, grace: Duration) {
        self.process.stop(grace);
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Starts it again on the same port with the same environment.
    pub fn restart(&mut self) -> Result<(), HarnessError> {
        self.process.restart()?;
        self.wait_ready()
    }

    pub fn log_tail(&self) -> String {
        self.process.log_tail()
    }
}
