//! The system on a 3-node JetStream cluster (`*_NATS_URL` listing every
//! node, `*_STREAM_REPLICAS=3`): the stream's leader SIGKILLed while
//! redirects keep coming, then brought back. Nothing served is lost or
//! counted twice. The stream starts on one server and the services move it
//! to three. The long form, with every other node and service killed
//! in turn, is `make cluster-faults`.

use std::time::{Duration, Instant};

use system_tests::NatsCluster;

use crate::system::System;

/// Redirects a second, and how long before, during and after the outage.
const RATE: u64 = 100;
const BEFORE: Duration = Duration::from_secs(3);
/// Longer than the shortener's publish deadline (2 s) and JetStream's
/// leader election, so clicks meet the election, not only a slow publish.
const OUTAGE: Duration = Duration::from_secs(8);
const AFTER: Duration = Duration::from_secs(3);

/// Runs `work` with a JetStream context on the cluster; `None` if it fails.
fn on_cluster<T>(
    urls: &str,
    work: impl AsyncFnOnce(async_nats::jetstream::Context) -> Option<T>,
) -> Option<T> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let servers = service_kit::settings::nats_servers("urls", urls).ok()?;
        let client = async_nats::connect(servers).await.ok()?;
        work(async_nats::jetstream::new(client)).await
    })
}

/// The stream's info, once it exists.
fn stream_info(urls: &str) -> Option<async_nats::jetstream::stream::Info> {
    on_cluster(urls, async |js| {
        let mut stream = js.get_stream(contracts::stream::STREAM_NAME).await.ok()?;
        stream.info().await.ok().cloned()
    })
}

/// Creates the stream on one server, as a deployment that grew into a
/// cluster would have it; retried while the cluster elects its leaders.
fn stream_on_one_server(urls: &str) {
    let started = Instant::now();
    while on_cluster(urls, async |js| {
        contracts::stream::ensure_stream(&js, contracts::stream::shortener_stream_config(1))
            .await
            .ok()
    })
    .is_none()
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the cluster never took the stream"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `GET /{code}` for `length` at `RATE`; the redirects answered 302.
fn redirects(system: &System, code: &str, length: Duration) -> u64 {
    let started = Instant::now();
    let mut served = 0;
    let mut sent = 0;
    while started.elapsed() < length {
        let answer = system.follow(code, "");
        if answer.status == 302 {
            served += 1;
        }
        sent += 1;
        let due = Duration::from_millis(sent * 1_000 / RATE);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    served
}

#[test]
fn the_stream_leader_killed_under_redirects_loses_no_click() {
    let Some(mut cluster) = system_tests::started(NatsCluster::start(3)) else {
        return;
    };
    let urls = cluster.urls();
    // The stream starts on one server; the services, configured for 3,
    // move it to 3 at start.
    stream_on_one_server(&urls);
    assert_eq!(stream_info(&urls).map(|i| i.config.num_replicas), Some(1));
    // The system's own nats-server stays idle: both services are pointed
    // at the cluster instead.
    let Some(system) = System::start_custom(
        &[
            ("SHORTENER_NATS_URL", urls.clone()),
            ("SHORTENER_STREAM_REPLICAS", "3".into()),
        ],
        &[
            ("ANALYTICS_NATS_URL", urls.clone()),
            ("ANALYTICS_STREAM_REPLICAS", "3".into()),
        ],
    ) else {
        return;
    };
    let code = system.create("https://example.org/on-a-cluster")["code"]
        .as_str()
        .expect("a code")
        .to_owned();
    let info = system.eventually("the stream moved to 3 servers, with a leader", || {
        stream_info(&urls).filter(|info| {
            info.config.num_replicas == 3
                && info.cluster.as_ref().is_some_and(|c| c.leader.is_some())
        })
    });
    let leader = info.cluster.and_then(|c| c.leader).expect("a leader");

    let mut served = redirects(&system, &code, BEFORE);
    let node = (0..cluster.nodes.len())
        .find(|n| NatsCluster::node_name(*n) == leader)
        .expect("the leader is one of the nodes");
    cluster.nodes[node].kill();
    served += redirects(&system, &code, OUTAGE);
    let elected = stream_info(&urls)
        .and_then(|info| info.cluster.and_then(|c| c.leader))
        .unwrap_or_default();
    cluster.nodes[node]
        .restart()
        .expect("the killed node starts again");
    served += redirects(&system, &code, AFTER);

    let counted = system.eventually("analytics counts every served redirect", || {
        system
            .stats(&code)
            .and_then(|s| s["total_clicks"].as_u64())
            .filter(|n| *n >= served)
    });
    // A little longer: a click counted twice would show up now.
    std::thread::sleep(Duration::from_secs(2));
    let counted_later = system
        .stats(&code)
        .and_then(|s| s["total_clicks"].as_u64())
        .unwrap_or(0);
    eprintln!(
        "cluster: {served} served, {counted_later} counted; leader {leader} killed, {elected} elected"
    );
    assert_eq!(counted, served, "nothing lost or counted twice");
    assert_eq!(counted_later, served, "nothing counted twice later");
    assert_ne!(elected, leader, "another node took the lead");
    assert!(served > RATE * 10, "the load ran: {served} served");
}
