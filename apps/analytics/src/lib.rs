//! The analytics service: owns clicks. It consumes the shortener's events
//! into its own store and serves statistics.
//!
//! A library with a thin binary (`main.rs`), so tests build the same
//! [`Application`] the binary runs, on port 0.

pub mod configuration;
pub mod consumer;
pub mod domain;
pub mod enrich;
pub mod keys;
pub mod links;
pub mod metrics;
pub mod probes;
pub mod problem;
pub mod replay;
pub mod routes;
pub mod startup;
pub mod stats;
pub mod store;

pub use configuration::Settings;
pub use startup::Application;
