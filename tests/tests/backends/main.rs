//! Smoke tests of every real backend, started by the harness: proof that the
//! servers CI installs work with the client crates the services use.

mod clickhouse;
mod harness;
mod mongo;
mod nats;
