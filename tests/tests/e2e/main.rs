//! End to end: the built `shortener`, `analytics` and `console` binaries, a
//! real `nats-server` and a real browser, as separate processes talking only over HTTP and JetStream,
//! the way `make up` runs them.

mod alerts;
mod cluster;
mod consistency;
mod console;
mod console_http;
mod contract;
mod flows;
mod openapi_proxy;
mod system;
mod tls;
mod traces;
