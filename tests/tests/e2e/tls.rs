//! Analytics reaches ClickHouse over https: the real server behind a
//! TLS-terminating proxy (`tests/tools/tls_proxy.py`) with a certificate
//! signed by a CA made here, which the analytics binary trusts through
//! `SSL_CERT_FILE` (read by the system trust store loader, as a private CA an
//! operator adds).

use std::path::Path;
use std::process::Command;

use system_tests::process::{Supervised, find_executable, free_port, http_get_with_key};
use system_tests::{ClickHouseServer, NatsServer, Service};

#[test]
fn analytics_uses_clickhouse_over_https() {
    let Some(openssl) = find_executable("openssl", "OPENSSL_BIN", &[]) else {
        assert!(
            !system_tests::backends_required(),
            "openssl is not installed"
        );
        eprintln!("SKIPPED: openssl is not installed");
        return;
    };
    let clickhouse = system_tests::require!(ClickHouseServer::start());
    let nats = system_tests::require!(NatsServer::start());
    let dir = tempfile::tempdir().expect("a temporary directory");
    // A CA and a server certificate it signed (a self-signed certificate
    // is a CA certificate, which rustls refuses as a server's).
    std::fs::write(
        dir.path().join("server.ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    let steps: [&[&str]; 3] = [
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-subj",
            "/CN=test-ca",
        ],
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-out",
            "cert.pem",
            "-extfile",
            "server.ext",
        ],
    ];
    for args in steps {
        let made = Command::new(&openssl)
            .current_dir(dir.path())
            .args(args)
            .output()
            .expect("openssl runs");
        assert!(
            made.status.success(),
            "{}",
            String::from_utf8_lossy(&made.stderr)
        );
    }

    let proxy_port = free_port();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/tls_proxy.py");
    let python = find_executable("python3", "PYTHON3_BIN", &[]).expect("python3");
    let _proxy = Supervised::start(
        "tls-proxy",
        &python,
        vec![
            script.display().to_string(),
            proxy_port.to_string(),
            clickhouse.http_port().to_string(),
            dir.path().display().to_string(),
        ],
        dir.path().join("proxy.log"),
    )
    .expect("the proxy starts");
    let listening = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", proxy_port)).is_err() {
        assert!(
            listening.elapsed() < std::time::Duration::from_secs(10),
            "the TLS proxy never listened"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    let key = "tls-test-key-0123456789abcdef0123456789";
    let analytics = Service::start(
        "analytics",
        &[
            ("ANALYTICS_API_KEY", key.to_owned()),
            ("ANALYTICS_NATS_URL", nats.url()),
            (
                "ANALYTICS_CLICKHOUSE_URL",
                format!("https://localhost:{proxy_port}"),
            ),
            (
                "SSL_CERT_FILE",
                dir.path().join("ca.pem").display().to_string(),
            ),
        ],
        dir.path(),
    )
    .unwrap_or_else(|e| panic!("analytics on https ClickHouse: {e}"));
    // Ready means its migrations ran over TLS; a query goes through it too.
    let (status, body) =
        http_get_with_key(analytics.port(), "/api/v1/reconciliation", key).expect("an answer");
    assert_eq!(status, 200, "{body}");
    let (_, ready) = http_get_with_key(analytics.port(), "/ready", key).expect("an answer");
    assert!(ready.contains("clickhouse"), "{ready}");
}
