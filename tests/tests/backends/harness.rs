//! The harness itself: servers stop when dropped, also during a panic, and
//! only the process the harness started is touched.

use std::path::Path;

use system_tests::process::port_open;
use system_tests::{NatsServer, require};

fn alive(pid: u32) -> bool {
    // A zombie still has a /proc entry; its state letter is Z.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            !stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

#[test]
fn a_dropped_server_is_stopped_and_its_directory_removed() {
    let nats = require!(NatsServer::start());
    let (pid, port, dir) = (nats.pid().unwrap(), nats.port(), nats.data_dir().to_owned());
    assert!(alive(pid) && port_open(port));
    drop(nats);
    assert!(!alive(pid), "server {pid} survived its handle");
    assert!(!port_open(port));
    assert!(!Path::new(&dir).exists());
}

#[test]
fn a_server_is_stopped_when_its_test_panics() {
    let mut started = None;
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let nats = require!(NatsServer::start());
        started = nats.pid();
        panic!("the test failed while the server ran");
    }));
    let Some(pid) = started else { return }; // skipped: not installed
    assert!(outcome.is_err());
    assert!(!alive(pid), "server {pid} survived a panicking test");
}

#[test]
fn a_stopped_server_restarts_on_the_same_port() {
    let mut nats = require!(NatsServer::start());
    let port = nats.port();
    nats.stop();
    assert!(!port_open(port));
    nats.restart().unwrap();
    assert!(port_open(port));
    assert_eq!(nats.port(), port);
}

#[test]
fn ports_are_never_handed_out_twice_nor_from_the_ephemeral_range() {
    use std::collections::HashSet;
    let (low, high) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .map(|t| {
            let p: Vec<u16> = t.split_whitespace().map(|p| p.parse().unwrap()).collect();
            (p[0], p[1])
        })
        .unwrap_or((32768, 60999));
    let ports: Vec<u16> = (0..500)
        .map(|_| system_tests::process::free_port())
        .collect();
    assert_eq!(ports.iter().collect::<HashSet<_>>().len(), 500);
    assert!(ports.iter().all(|p| !(low..=high).contains(p)), "{ports:?}");
}
