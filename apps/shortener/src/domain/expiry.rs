//! Link expiry.

use chrono::{DateTime, SubsecRound, Utc};

/// When a link stops redirecting, to the millisecond: the precision every
/// store keeps, so the time a client reads back (and the one in the events)
/// is the one it was given. An instant already past is a valid expiry: the
/// link is expired at once (its redirect answers 410), which is how a client
/// retires a link without deleting its history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpiresAt(DateTime<Utc>);

impl ExpiresAt {
    pub fn new(at: DateTime<Utc>) -> Self {
        Self(at.trunc_subsecs(3))
    }

    pub fn get(self) -> DateTime<Utc> {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiries_keep_milliseconds_only() {
        let at = DateTime::from_timestamp(2_000, 123_456_789).unwrap();
        assert_eq!(
            ExpiresAt::new(at).get().timestamp_subsec_nanos(),
            123_000_000
        );
    }
}
