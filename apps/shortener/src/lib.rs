//! The shortener service: owns links, serves redirects, and publishes link
//! events through a transactional outbox.
//!
//! A library with a thin binary (`main.rs`), so tests build the same
//! [`Application`] the binary runs, on port 0.

pub mod auth;
pub mod cache;
pub mod cli;
pub mod clicks;
pub mod client_addr;
pub mod configuration;
pub mod domain;
pub mod keys;
pub mod metrics;
pub mod outbox;
pub mod probes;
pub mod problem;
pub mod publish;
pub mod routes;
pub mod service;
pub mod startup;
pub mod store;

pub use configuration::Settings;
pub use startup::Application;
