//! Contract tests: one binary, one module per concern (keeps link time down).

mod asyncapi;
mod drift;
mod evolution;
mod fixtures;
mod properties;
mod support;
