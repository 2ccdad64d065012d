//! The shortener service: owns links: creates them, redirects, and publishes their events.
//!
//! A library with a thin binary (`main.rs`), so tests build the same
//! [`Application`] the binary runs, on port 0.

pub mod configuration;
pub mod domain;
pub mod outbox;
pub mod startup;
pub mod store;

pub use configuration::Settings;
pub use startup::Application;
