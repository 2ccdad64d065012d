//! The analytics binary as a real process, killed with SIGKILL mid-stream.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use analytics::domain::{LinkChange, LinkCopy};
use analytics::startup::open_store;
use contracts::{Envelope, UrlDeleted, UrlUpdated};
use system_tests::process::{free_port, http_get, http_get_with_key, scrape_metric};
use uuid::Uuid;

use super::helpers::{Env, at, clicked, created, publish};

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
    start_with(env, port, &[("ANALYTICS_BATCH_SIZE", "500")])
}

fn start_with(env: &Env, port: u16, extra: &[(&str, &str)]) -> Analytics {
    let mut command = Command::new(env!("CARGO_BIN_EXE_analytics"));
    command
        .env("ANALYTICS_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (name, value) in env.vars() {
        command.env(name, value);
    }
    command.envs(extra.iter().copied());
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

/// The link's creation, then `CLICKS` clicks over one day, 500 at a time
/// with `pause` in between.
async fn publish_link_and_clicks(
    js: &async_nats::jetstream::Context,
    id: Uuid,
    code: &str,
    pause: Duration,
) {
    publish(js, &[created(id, code, D0)]).await;
    for chunk in 0..CLICKS / 500 {
        let events: Vec<_> = (0..500)
            .map(|k| clicked(id, code, D0 + (chunk * 500 + k) % 86_400))
            .collect();
        publish(js, &events).await;
        tokio::time::sleep(pause).await;
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
            publish_link_and_clicks(&js, id, code, Duration::from_millis(40)).await
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

/// A fixed shuffle (xorshift), so a failure can be run again as it was.
fn shuffle<T>(items: &mut [T], mut seed: u64) {
    for i in (1..items.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        items.swap(i, (seed % (i as u64 + 1)) as usize);
    }
}

/// 200 links, each created, updated three times and deleted: 1,000 events.
fn link_history() -> Vec<LinkChange> {
    let mut events = Vec::new();
    for n in 0..200_i64 {
        let id = Uuid::now_v7();
        let code = format!("twin{n}");
        events.push(LinkChange::Created(created(id, &code, D0 + n)));
        for k in 1..=3 {
            let when = D0 + n + k * 60;
            events.push(LinkChange::Updated(Envelope::new(
                "shortener",
                at(when),
                UrlUpdated {
                    url_id: id,
                    short_code: code.clone(),
                    original_url: Some(format!("https://v{k}.example/{n}")),
                    expires_at: (k % 2 == 1).then_some(Some(at(when + 86_400 * k))),
                    redirect_type: None,
                    updated_at: at(when),
                },
            )));
        }
        events.push(LinkChange::Deleted(Envelope::new(
            "shortener",
            at(D0 + n + 1_000),
            UrlDeleted {
                url_id: id,
                short_code: code,
                deleted_at: at(D0 + n + 1_000),
            },
        )));
    }
    events
}

async fn publish_change(js: &async_nats::jetstream::Context, change: &LinkChange) {
    match change {
        LinkChange::Created(e) => publish(js, std::slice::from_ref(e)).await,
        LinkChange::Updated(e) => publish(js, std::slice::from_ref(e)).await,
        LinkChange::Deleted(e) => publish(js, std::slice::from_ref(e)).await,
        other => unreachable!("not an event: {other:?}"),
    }
}

/// Two analytics processes share the durable consumers and one store while
/// 1,000 link events arrive shuffled; the copies end exactly as one
/// instance folding every event would make them, versions included.
pub fn two_instances_on_one_store_lose_no_link_change(env: Env) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let ports = [free_port(), free_port()];
    let mut twins: Vec<Analytics> = ports
        .iter()
        .map(|&port| start_with(&env, port, &[("ANALYTICS_BATCH_SIZE", "10")]))
        .collect();
    for port in ports {
        wait_until("the instance answers", Duration::from_secs(60), || {
            http_get(port, "/ready").is_some_and(|(status, _)| status == 200)
        });
    }
    let mut events = link_history();
    shuffle(&mut events, 0x9e37_79b9_7f4a_7c15);
    let js = runtime.block_on(env.jetstream());
    runtime.block_on(async {
        for chunk in events.chunks(25) {
            for change in chunk {
                publish_change(&js, change).await;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });

    let mut by_link: HashMap<Uuid, Vec<LinkChange>> = HashMap::new();
    for change in &events {
        by_link
            .entry(change.url_id())
            .or_default()
            .push(change.clone());
    }
    let expected: HashMap<Uuid, LinkCopy> = by_link
        .into_iter()
        .map(|(id, changes)| (id, LinkCopy::fold(id, changes)))
        .collect();
    let ids: Vec<Uuid> = expected.keys().copied().collect();
    let store = runtime.block_on(open_store(&env.settings().store)).unwrap();
    let mut stored: HashMap<Uuid, LinkCopy> = HashMap::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(90) {
        stored = runtime
            .block_on(store.links(&ids))
            .unwrap()
            .into_iter()
            .map(|l| (l.shortener_url_id, l))
            .collect();
        if stored == expected {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let wrong: Vec<_> = ids
        .iter()
        .filter(|id| stored.get(id) != expected.get(id))
        .map(|id| (stored.get(id), &expected[id]))
        .take(3)
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of 200 copies differ from one instance's fold, e.g. (stored, expected): {wrong:#?}",
        ids.iter()
            .filter(|id| stored.get(id) != expected.get(id))
            .count()
    );
    // Both instances took part (each stored some of every link subject).
    for port in ports {
        for subject in [
            "shortener.url.created",
            "shortener.url.updated",
            "shortener.url.deleted",
        ] {
            let processed = scrape_metric(
                port,
                &format!("analytics_events_processed_total{{subject=\"{subject}\"}}"),
            )
            .unwrap_or(0.0);
            assert!(
                processed > 0.0,
                "the instance on {port} stored no {subject}"
            );
        }
    }
    twins.clear();
}

fn stats_body(port: u16, code: &str) -> String {
    let (status, body) = http_get_with_key(
        port,
        &format!("/api/v1/links/{code}/stats?from=2026-03-01T00:00:00Z&to=2026-03-02T00:00:00Z"),
        crate::helpers::TEST_KEY,
    )
    .expect("the service answers");
    assert_eq!(status, 200, "{body}");
    body
}

fn replay_command(env: &Env) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_analytics"));
    command
        .arg("replay")
        .env("RUST_LOG", "warn")
        .env("ANALYTICS_BATCH_SIZE", "200")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    command.envs(env.vars());
    command
}

/// `analytics replay` SIGKILLed while it builds: the running service and
/// its store answer exactly as before; the next replay completes, and the
/// answers are still the same.
pub fn a_replay_killed_midway_changes_nothing(env: Env) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let id = Uuid::now_v7();
    let code = "replayed";
    let port = free_port();
    let mut service = start(&env, port);
    let js = runtime.block_on(env.jetstream());
    runtime.block_on(publish_link_and_clicks(&js, id, code, Duration::ZERO));
    wait_until("every click stored", Duration::from_secs(90), || {
        total(port, code) == Some(CLICKS as u64)
    });
    let before = stats_body(port, code);

    let mut replay = replay_command(&env).spawn().expect("replay starts");
    let stream = runtime.block_on(js.get_stream("SHORTENER")).unwrap();
    let consumer = format!(
        "{}-shortener-url-clicked",
        analytics::replay::REPLAY_CONSUMERS
    );
    wait_until("the replay half-way", Duration::from_secs(60), || {
        assert!(
            replay.try_wait().unwrap().is_none(),
            "the replay ended before it could be killed"
        );
        runtime
            .block_on(stream.consumer_info(&consumer))
            .is_ok_and(|info| info.delivered.stream_sequence > 2_000 && info.num_pending > 2_000)
    });
    replay.kill().unwrap();
    replay.wait().unwrap();
    assert_eq!(stats_body(port, code), before, "the running service");
    drop(service);
    service = start(&env, port);
    wait_until("the service answers again", Duration::from_secs(60), || {
        total(port, code).is_some()
    });
    assert_eq!(stats_body(port, code), before, "the service restarted");

    let done = replay_command(&env).output().expect("replay runs");
    assert!(done.status.success(), "the next replay completes");
    let said = String::from_utf8_lossy(&done.stdout);
    assert!(
        said.contains(&format!("{} clicks stored", CLICKS)),
        "{said}"
    );
    assert_eq!(stats_body(port, code), before, "after the replay");
    drop(service);
}
