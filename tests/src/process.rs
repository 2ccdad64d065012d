//! Child processes that cannot outlive the test that started them.
//!
//! `PR_SET_PDEATHSIG` fires when the *thread* that forked the child exits, not
//! the process. Test threads come and go, so every child is forked by one
//! dedicated spawner thread that never exits: a child then dies with the test
//! process, however that process ends, and only then if no handle stopped it
//! earlier.

#![allow(unsafe_code)] // prctl and kill, on processes this harness started

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{LazyLock, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Why a server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("{server} is not installed ({hint})")]
    NotInstalled { server: &'static str, hint: String },
    #[error("{server} did not become ready within {waited:?}; last log lines:\n{log}")]
    NotReady {
        server: &'static str,
        waited: Duration,
        log: String,
    },
    #[error("{server} exited during start-up ({status}); last log lines:\n{log}")]
    Exited {
        server: &'static str,
        status: String,
        log: String,
    },
    #[error("failed to {action}: {source}")]
    Io {
        action: String,
        #[source]
        source: io::Error,
    },
}

impl HarnessError {
    /// True when the server's binary is missing (a skip outside CI).
    pub fn is_not_installed(&self) -> bool {
        matches!(self, HarnessError::NotInstalled { .. })
    }

    pub(crate) fn io(action: impl Into<String>) -> impl FnOnce(io::Error) -> HarnessError {
        let action = action.into();
        move |source| HarnessError::Io { action, source }
    }
}

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

static SPAWNER: LazyLock<Mutex<mpsc::Sender<SpawnRequest>>> = LazyLock::new(|| {
    let (tx, rx) = mpsc::channel::<SpawnRequest>();
    thread::Builder::new()
        .name("harness-spawner".into())
        .spawn(move || {
            for (mut command, reply) in rx {
                // SAFETY: prctl is async-signal-safe and touches no memory of
                // the parent; this runs between fork and exec.
                unsafe {
                    command.pre_exec(|| {
                        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                            return Err(io::Error::last_os_error());
                        }
                        Ok(())
                    });
                }
                let _ = reply.send(command.spawn());
            }
        })
        .expect("spawn the harness spawner thread");
    Mutex::new(tx)
});

fn spawn(command: Command) -> io::Result<Child> {
    let (tx, rx) = mpsc::channel();
    SPAWNER
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((command, tx))
        .map_err(|_| io::Error::other("harness spawner thread is gone"))?;
    rx.recv()
        .map_err(|_| io::Error::other("harness spawner thread is gone"))?
}

/// Ports this process has handed out; never handed out again, so a stopped
/// server's port is still its own when it restarts.
static HANDED_OUT: LazyLock<Mutex<HashSet<u16>>> = LazyLock::new(Default::default);

/// The kernel's range of ephemeral ports (outgoing connections get these).
fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| {
            let mut parts = text.split_whitespace().map(|p| p.parse::<u16>().ok());
            Some((parts.next()??, parts.next()??))
        })
        .unwrap_or((32768, 60999))
}

/// A random number without a dependency: std's hasher keys are random.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

/// A free TCP port on 127.0.0.1 for a server to listen on.
///
/// Servers are stopped and restarted on the same port, so a port must stay
/// theirs while they are down: it is taken from outside the kernel's
/// ephemeral range (no outgoing connection is ever given it) and never handed
/// out twice by this process.
pub fn free_port() -> u16 {
    let (low, high) = ephemeral_range();
    let (from, to) = if low > 12_000 {
        (10_000, low - 1)
    } else {
        (high.saturating_add(1), 65_535)
    };
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..10_000 {
        let port = from + (random_u64() % u64::from(to - from + 1)) as u16;
        if !handed_out.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            handed_out.insert(port);
            return port;
        }
    }
    // Practically unreachable; fall back to a port the kernel picks.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port on 127.0.0.1");
    handed_out.insert(port);
    port
}

/// Finds an executable: the override variable, then `PATH`, then the sbin
/// directories Debian packages install servers into, then `extra`.
pub fn find_executable(name: &str, override_var: &str, extra: &[PathBuf]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(override_var) {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .chain(extra.iter().cloned())
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// A running server process whose output goes to a log file.
pub struct Supervised {
    server: &'static str,
    program: PathBuf,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    log_path: PathBuf,
    child: Option<Child>,
}

impl Supervised {
    /// Starts `program args`, appending its stdout and stderr to `log_path`.
    pub fn start(
        server: &'static str,
        program: &Path,
        args: Vec<String>,
        log_path: PathBuf,
    ) -> Result<Self, HarnessError> {
        Self::start_with_env(server, program, args, Vec::new(), log_path)
    }

    /// Like [`Supervised::start`], with these environment variables set.
    pub fn start_with_env(
        server: &'static str,
        program: &Path,
        args: Vec<String>,
        envs: Vec<(String, String)>,
        log_path: PathBuf,
    ) -> Result<Self, HarnessError> {
        let mut supervised = Supervised {
            server,
            program: program.to_owned(),
            args,
            envs,
            log_path,
            child: None,
        };
        supervised.spawn()?;
        Ok(supervised)
    }

    fn spawn(&mut self) -> Result<(), HarnessError> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .map_err(HarnessError::io(format!(
                "open {}",
                self.log_path.display()
            )))?;
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(
                log.try_clone()
                    .map_err(HarnessError::io("clone a log handle"))?,
            )
            .stderr(log);
        let child = spawn(command).map_err(HarnessError::io(format!(
            "start {}",
            self.program.display()
        )))?;
        self.child = Some(child);
        Ok(())
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Polls `ready` until it answers true; fails early if the process exits.
    pub fn wait_until(
        &mut self,
        timeout: Duration,
        mut ready: impl FnMut() -> bool,
    ) -> Result<(), HarnessError> {
        let started = Instant::now();
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(HarnessError::Exited {
                        server: self.server,
                        status: status.to_string(),
                        log: self.log_tail(),
                    });
                }
            }
            if ready() {
                return Ok(());
            }
            if started.elapsed() > timeout {
                return Err(HarnessError::NotReady {
                    server: self.server,
                    waited: timeout,
                    log: self.log_tail(),
                });
            }
            thread::sleep(Duration::from_millis(25));
        }
    }

    /// Asks the server to stop (SIGTERM) and waits for it, killing it after
    /// `grace` if it has not exited.
    pub fn stop(&mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SAFETY: plain kill(2) on a pid we own and have not reaped yet.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the same command again (same ports, same data directory).
    pub fn restart(&mut self) -> Result<(), HarnessError> {
        self.kill();
        self.spawn()
    }

    /// The last lines the server logged, for error messages.
    pub fn log_tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = File::open(&self.log_path) {
            let len = file.metadata().map(|m| m.len()).unwrap_or(0);
            let _ = file.seek(SeekFrom::Start(len.saturating_sub(4096)));
            let _ = file.read_to_string(&mut text);
        }
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The value of the first series in Prometheus text that starts with
/// `series` (a metric name, with its labels as the service writes them).
pub fn metric_value(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// Scrapes `/metrics` on 127.0.0.1:`port` for one series ([`metric_value`]).
pub fn scrape_metric(port: u16, series: &str) -> Option<f64> {
    metric_value(&http_get(port, "/metrics")?.1, series)
}

/// A memory field of `/proc/<pid>/status` (`VmRSS:` now, `VmHWM:` the peak)
/// in MB; NaN when the process is gone.
pub fn memory_mb(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// A minimal HTTP/1.0 GET on 127.0.0.1, for readiness probes: the status code
/// and body, or `None` when nothing answers.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    http_request(
        port,
        &format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"),
    )
}

/// Like [`http_get`], presenting an API key (`X-Api-Key`).
pub fn http_get_with_key(port: u16, path: &str, key: &str) -> Option<(u16, String)> {
    http_request(
        port,
        &format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nX-Api-Key: {key}\r\n\r\n"),
    )
}

/// Sends a raw HTTP/1.0 request to 127.0.0.1 and returns the status code and
/// body, or `None` when nothing answers.
pub fn http_request(port: u16, request: &str) -> Option<(u16, String)> {
    http_exchange(port, request).map(|r| (r.status, r.body))
}

/// An answer read by [`http_exchange`].
#[derive(Debug, Clone)]
pub struct HttpAnswer {
    pub status: u16,
    /// Header names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpAnswer {
    /// The first header of this (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends a raw HTTP/1.0 request to 127.0.0.1 and reads the whole answer
/// (the server closes the connection), or `None` when nothing answers.
pub fn http_exchange(port: u16, request: &str) -> Option<HttpAnswer> {
    use std::io::Write;
    let mut stream =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(500))
            .ok()?;
    // Longer than any bound the services put on their own answers (the
    // shortener's store calls give up after 5 s with a 503): a slow answer
    // is still an answer.
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .ok()?;
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or((response.as_str(), ""));
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Some(HttpAnswer {
        status,
        headers,
        body: body.to_owned(),
    })
}

/// True when something accepts TCP connections on the port.
pub fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok()
}
