//! End to end: the built `shortener` and `analytics` binaries and a real
//! `nats-server`, as separate processes talking only over HTTP and JetStream,
//! the way `make up` runs them.

mod contract;
mod dashboard;
mod flows;
mod system;
mod tls;
