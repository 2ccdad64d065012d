//! Runtime pieces both services need the same way. Nothing here knows
//! links, clicks or events: the services still depend on each other only
//! through `contracts`.

pub mod auth;
mod backoff;
pub mod openapi;
pub mod probes;
pub mod problem;
pub mod settings;
pub mod sqlite;
pub mod telemetry;

pub use backoff::Backoff;
