//! Event contracts between the shortener and the analytics service.
//!
//! This crate is the only thing the two services share. The JSON Schemas under
//! `contracts/schemas/` are the source of truth; the Rust types here mirror them
//! and tests prove the two cannot drift apart. Producers call [`encode`], which
//! validates before anything reaches the wire; consumers call [`decode`] or
//! [`decode_any`], which validate, upcast older versions to the latest one, and
//! report failures with the JSON path at fault (ready to be put on a dead letter).
//!
//! Subjects, the stream definitions and the header names live here too, so both
//! services create the same stream and neither depends on the other.

mod click;
mod codec;
mod error;
mod events;
pub mod headers;
pub mod schema;
pub mod stream;
pub mod subjects;

pub use click::{ClickEvent, ClickFacts, MAX_REFERRER_CHARS, MAX_USER_AGENT_CHARS, VisitorKey};
pub use codec::{decode, decode_any, encode, upcast_to_latest};
pub use error::{ContractError, ErrorKind, Violation};
pub use events::{
    AnyEvent, Envelope, Event, RedirectType, UrlClicked, UrlCreated, UrlCreatedV1, UrlDeleted,
    UrlUpdated, present,
};
