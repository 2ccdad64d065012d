//! The analytics binary as a real process, killed with SIGKILL mid-stream.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use system_tests::process::{free_port, http_get_with_key};
use uuid::Uuid;

use super::helpers::{clicked, created, publish, Env};

const CLICKS: i64 = 20_000;
/// 2026-03-01T00:00:00Z.
const D0: i64 = 1_772_323_200;

/// Kills the child it guards when dropped (by PID).
struct Analytics(Child);

impl Drop for Analytics {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(env: &Env, port: u16) -> Analytics {
    let mut command = Command::new(env!("CARGO_BIN_EXE_analytics"));
    command
        .env("ANALYTICS_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("ANALYTICS_BATCH_SIZE", "500")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (name, value) in env.vars() {
        command.env(name, value);
    }
    Analytics(command.spawn().expect("the analytics binary starts"))
}

fn total(port: u16, code: &str) -> Option<u64> {
    let (status, body) = http_get_with_key(
        port,
        &format!("/api/v1/links/{code}/stats?from=2026-03-01T00:00:00Z&to=2026-03-02T00:00:00Z"),
        crate::helpers::TEST_KEY,
    )?;
    (status == 200).then(|| serde_json::from_str::<serde_json::Value>(&body).ok())??["total_clicks"]
        .as_u64()
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < limit,
            "{what} did not happen within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn kill_and_restart_mid_stream(env: Env) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let id = Uuid::now_v7();
    let code = "killed";
    let port = free_port();
    let mut analytics = start(&env, port);
    // The publisher keeps going while analytics is killed and restarted.
    let publisher = {
        let js = runtime.block_on(env.jetstream());
        runtime.spawn(async move {
            publish(&js, &[created(id, code, D0)]).await;
            for chunk in 0..CLICKS / 500 {
                let events: Vec<_> = (0..500)
                    .map(|k| clicked(id, code, D0 + (chunk * 500 + k) % 86_400))
                    .collect();
                publish(&js, &events).await;
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
        })
    };
    wait_until("some clicks stored", Duration::from_secs(60), || {
        total(port, code).is_some_and(|n| n >= 2_000)
    });
    analytics.0.kill().unwrap();
    analytics.0.wait().unwrap();
    let at_kill = CLICKS; // what the publisher will have sent in the end
    std::thread::sleep(Duration::from_millis(300));
    analytics = start(&env, port);
    runtime.block_on(publisher).unwrap();
    wait_until("every click stored", Duration::from_secs(90), || {
        total(port, code) == Some(at_kill as u64)
    });
    // Redeliveries of what was in flight at the kill (ack wait 2 s) are
    // absorbed: the total stays exact.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(total(port, code), Some(CLICKS as u64));
    drop(analytics);
}
