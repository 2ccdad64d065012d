//! The shortener's integration tests: one binary, a module per feature
//! (keeps link time down), real servers from the harness.

mod api;
mod cache;
mod clicks;
mod outbox;
mod store;
mod stream;
