//! The plumbing every service needs the same way, so a new service starts
//! from it rather than from a copy of another. Nothing here knows links,
//! clicks or events: the services still depend on each other only through
//! `contracts`.
//!
//! - [`problem`]: RFC 7807 problem+json, for a service's errors and the
//!   framework's own;
//! - [`extract`]: query strings and bodies read into typed values;
//! - [`auth`]: API keys (digests, cache, throttling) over a [`auth::KeyStore`];
//! - [`settings`]: environment variables and secrets;
//! - [`sqlite`]: the embedded store's file and its SQL migrations;
//! - [`probes`]: `/health`, `/ready`, `/metrics`;
//! - [`openapi`]: the key schemes of the OpenAPI documents;
//! - [`telemetry`]: logs and traces; [`Backoff`]: retry delays.

pub mod auth;
mod backoff;
pub mod extract;
pub mod openapi;
pub mod probes;
pub mod problem;
pub mod settings;
pub mod sqlite;
pub mod telemetry;

pub use backoff::Backoff;
