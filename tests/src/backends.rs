//! The three real backends the system runs against.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tempfile::TempDir;

use crate::process::{HarnessError, Supervised, find_executable, free_port, http_get, port_open};

const READY_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Start-up is retried on fresh ports: a port picked as free may be taken by
/// another test's server before ours binds it.
const START_ATTEMPTS: usize = 3;

fn retry<S>(mut attempt: impl FnMut() -> Result<S, HarnessError>) -> Result<S, HarnessError> {
    let mut last = None;
    for _ in 0..START_ATTEMPTS {
        match attempt() {
            Ok(server) => return Ok(server),
            Err(e @ HarnessError::NotInstalled { .. }) => return Err(e),
            Err(e) => last = Some(e),
        }
    }
    Err(last.expect("at least one attempt"))
}

fn temp_dir(prefix: &str) -> Result<TempDir, HarnessError> {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .map_err(HarnessError::io("create a temporary directory"))
}

fn write(path: &Path, text: &str) -> Result<(), HarnessError> {
    std::fs::write(path, text).map_err(HarnessError::io(format!("write {}", path.display())))
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_owned()).collect()
}

/// How to tell that a server is ready to serve.
#[derive(Debug, Clone, Copy)]
enum Probe {
    /// An HTTP GET on 127.0.0.1 answers 200 with a body starting with the prefix.
    Http(u16, &'static str, &'static str),
    /// Something accepts TCP connections on the port.
    Tcp(u16),
}

impl Probe {
    fn ready(self) -> bool {
        match self {
            Probe::Http(port, path, prefix) => {
                matches!(http_get(port, path), Some((200, body)) if body.starts_with(prefix))
            }
            Probe::Tcp(port) => port_open(port),
        }
    }
}

/// What every server handle has: the process, its readiness probe, and its
/// temporary directory. The server types deref to it.
pub struct Running {
    process: Supervised,
    probe: Probe,
    // Dropped after `process` (fields drop in order), so the server is gone
    // before its files are removed.
    dir: TempDir,
}

impl Running {
    fn start(
        server: &'static str,
        program: &Path,
        args: Vec<String>,
        probe: Probe,
        dir: TempDir,
    ) -> Result<Self, HarnessError> {
        let process = Supervised::start(server, program, args, dir.path().join("server.log"))?;
        let mut running = Running {
            process,
            probe,
            dir,
        };
        running.wait_ready()?;
        Ok(running)
    }

    fn wait_ready(&mut self) -> Result<(), HarnessError> {
        let probe = self.probe;
        self.process.wait_until(READY_TIMEOUT, || probe.ready())
    }

    /// The server's temporary directory (data, config, `server.log`).
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// Graceful stop (SIGTERM, then SIGKILL after a grace period);
    /// [`Running::restart`] brings it back with its data.
    pub fn stop(&mut self) {
        self.process.stop(STOP_GRACE);
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Starts it again on the same ports with the same data, and waits.
    pub fn restart(&mut self) -> Result<(), HarnessError> {
        self.process.restart()?;
        self.wait_ready()
    }
}

macro_rules! deref_to_running {
    ($server:ty) => {
        impl std::ops::Deref for $server {
            type Target = Running;
            fn deref(&self) -> &Running {
                &self.running
            }
        }
        impl std::ops::DerefMut for $server {
            fn deref_mut(&mut self) -> &mut Running {
                &mut self.running
            }
        }
    };
}

fn nats_program() -> Result<PathBuf, HarnessError> {
    find_executable("nats-server", "NATS_SERVER_BIN", &[]).ok_or_else(|| {
        HarnessError::NotInstalled {
            server: "nats-server",
            hint: "apt-get install nats-server, or set NATS_SERVER_BIN".into(),
        }
    })
}

/// A JetStream server on 127.0.0.1 with its store under `dir`.
fn nats_args(port: u16, monitor_port: u16, dir: &Path) -> Vec<String> {
    let store = dir.join("jetstream");
    strings(&[
        "-a",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-m",
        &monitor_port.to_string(),
        "-js",
        "-sd",
        &store.to_string_lossy(),
    ])
}

/// `nats-server` with JetStream, file storage in a temporary directory.
pub struct NatsServer {
    running: Running,
    port: u16,
    monitor_port: u16,
}

deref_to_running!(NatsServer);

impl NatsServer {
    pub fn start() -> Result<Self, HarnessError> {
        let program = nats_program()?;
        retry(|| {
            let dir = temp_dir("nats-")?;
            let (port, monitor_port) = (free_port(), free_port());
            let args = nats_args(port, monitor_port, dir.path());
            // /healthz answers 200 only once JetStream is up.
            let probe = Probe::Http(monitor_port, "/healthz", "");
            Ok(NatsServer {
                running: Running::start("nats-server", &program, args, probe, dir)?,
                port,
                monitor_port,
            })
        })
    }

    /// Client URL, `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Port of the HTTP monitoring endpoint (`/varz`, `/jsz`, ...).
    pub fn monitor_port(&self) -> u16 {
        self.monitor_port
    }
}

/// nats-servers in one JetStream cluster: routes on loopback ports, each
/// node with its own name, ports and store. A stream with 3 replicas keeps
/// serving while one node is down.
pub struct NatsCluster {
    pub nodes: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts `size` nodes and waits until each accepts clients (JetStream
    /// elects its leaders once enough of them see each other; clients retry
    /// until then).
    pub fn start(size: usize) -> Result<Self, HarnessError> {
        let program = nats_program()?;
        retry(|| {
            let ports: Vec<(u16, u16, u16)> = (0..size)
                .map(|_| (free_port(), free_port(), free_port()))
                .collect();
            let routes = ports
                .iter()
                .map(|(_, _, route)| format!("nats-route://127.0.0.1:{route}"))
                .collect::<Vec<_>>()
                .join(",");
            let mut nodes = Vec::with_capacity(size);
            for (n, (port, monitor_port, route)) in ports.into_iter().enumerate() {
                let dir = temp_dir("nats-node-")?;
                let mut args = nats_args(port, monitor_port, dir.path());
                args.extend(strings(&[
                    "--server_name",
                    &Self::node_name(n),
                    "--cluster_name",
                    "shortener-test",
                    "--cluster",
                    &format!("nats://127.0.0.1:{route}"),
                    "--routes",
                    &routes,
                ]));
                // /healthz waits for JetStream, which waits for the other
                // nodes: a node is up once it takes connections.
                let probe = Probe::Tcp(port);
                nodes.push(NatsServer {
                    running: Running::start("nats-server", &program, args, probe, dir)?,
                    port,
                    monitor_port,
                });
            }
            Ok(NatsCluster { nodes })
        })
    }

    /// The server name of node `n` (what JetStream names a leader by).
    pub fn node_name(n: usize) -> String {
        format!("node-{n}")
    }

    /// Every node's client URL, comma-separated, as the services take them.
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(NatsServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// `clickhouse-server` as a plain process with its own config, users and data
/// under a temporary directory.
pub struct ClickHouseServer {
    running: Running,
    http_port: u16,
    tcp_port: u16,
}

deref_to_running!(ClickHouseServer);

impl ClickHouseServer {
    pub fn start() -> Result<Self, HarnessError> {
        let program = find_executable("clickhouse-server", "CLICKHOUSE_SERVER_BIN", &[])
            .ok_or_else(|| HarnessError::NotInstalled {
                server: "clickhouse-server",
                hint: "apt-get install clickhouse-server, or set CLICKHOUSE_SERVER_BIN".into(),
            })?;
        retry(|| {
            let dir = temp_dir("clickhouse-")?;
            let (http_port, tcp_port) = (free_port(), free_port());
            let config = dir.path().join("config.xml");
            write(&config, &clickhouse_config(dir.path(), http_port, tcp_port))?;
            write(&dir.path().join("users.xml"), CLICKHOUSE_USERS)?;
            let args = vec![format!("--config-file={}", config.display())];
            let probe = Probe::Http(http_port, "/ping", "Ok.");
            Ok(ClickHouseServer {
                running: Running::start("clickhouse-server", &program, args, probe, dir)?,
                http_port,
                tcp_port,
            })
        })
    }

    /// HTTP interface URL, what the `clickhouse` crate connects to.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    pub fn http_port(&self) -> u16 {
        self.http_port
    }

    /// Native protocol port, for `clickhouse-client`.
    pub fn tcp_port(&self) -> u16 {
        self.tcp_port
    }
}

/// Works on 18.16 (Debian) and on current releases, which still accept the
/// `<yandex>` root element.
fn clickhouse_config(dir: &Path, http_port: u16, tcp_port: u16) -> String {
    let d = dir.display();
    format!(
        r#"<?xml version="1.0"?>
<yandex>
    <logger>
        <level>warning</level>
        <log>{d}/clickhouse.log</log>
        <errorlog>{d}/error.log</errorlog>
        <console>0</console>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <http_port>{http_port}</http_port>
    <tcp_port>{tcp_port}</tcp_port>
    <path>{d}/data/</path>
    <tmp_path>{d}/tmp/</tmp_path>
    <user_files_path>{d}/user_files/</user_files_path>
    <format_schema_path>{d}/format_schemas/</format_schema_path>
    <users_config>{d}/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mark_cache_size>268435456</mark_cache_size>
</yandex>
"#
    )
}

const CLICKHOUSE_USERS: &str = r#"<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <max_memory_usage>4000000000</max_memory_usage>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks>
                <ip>127.0.0.1</ip>
                <ip>::1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
"#;

/// The MongoDB-wire test server (`secantusd-py` from the pinned SecantusDB
/// package; GPL, so it is only ever run as a separate process, never linked).
/// It presents itself as a one-node replica set, so transactions work.
pub struct MongoServer {
    running: Running,
    port: u16,
}

deref_to_running!(MongoServer);

/// Where `.ci/run` and `make test` install the Python tools.
pub fn tools_venv() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    cache.join("url-shortener").join("venv")
}

impl MongoServer {
    pub fn start() -> Result<Self, HarnessError> {
        let venv_binary = tools_venv().join("bin").join("secantusd-py");
        let program = find_executable("secantusd-py", "MONGO_WIRE_SERVER_BIN", &[venv_binary])
            .ok_or_else(|| HarnessError::NotInstalled {
                server: "MongoDB-wire test server (secantusd-py)",
                hint: "run `make backends`, or set MONGO_WIRE_SERVER_BIN".into(),
            })?;
        retry(|| {
            let dir = temp_dir("mongo-")?;
            let port = free_port();
            // An explicit (empty) config file turns off the server's search of
            // ./secantusd.toml and ~/.secantus, so nothing outside the test leaks in.
            let config = dir.path().join("secantusd.toml");
            write(&config, "")?;
            let args = vec![
                "--config".into(),
                config.display().to_string(),
                "--host".into(),
                "127.0.0.1".into(),
                "--port".into(),
                port.to_string(),
                "--storage-path".into(),
                dir.path().join("data").display().to_string(),
                "--log-level".into(),
                "WARNING".into(),
            ];
            Ok(MongoServer {
                running: Running::start("secantusd-py", &program, args, Probe::Tcp(port), dir)?,
                port,
            })
        })
    }

    /// Connection string for the `mongodb` driver.
    pub fn uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}/?directConnection=true", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}
