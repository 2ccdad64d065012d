//! Link expiry.

use chrono::{DateTime, SubsecRound, Utc};

/// An expiry instant that was in the future when the link was written, to
/// the millisecond: the precision every store keeps, so the time a client
/// reads back (and the one in the events) is the one it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpiresAt(DateTime<Utc>);

impl ExpiresAt {
    pub fn parse(at: DateTime<Utc>, now: DateTime<Utc>) -> Result<Self, String> {
        let at = at.trunc_subsecs(3);
        if at <= now {
            return Err(format!("must be in the future, not {}", at.to_rfc3339()));
        }
        Ok(Self(at))
    }

    pub fn get(self) -> DateTime<Utc> {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;

    #[test]
    fn only_future_instants_are_expiries() {
        let now = Utc::now();
        assert!(ExpiresAt::parse(now + Duration::seconds(1), now).is_ok());
        assert!(ExpiresAt::parse(now, now).is_err());
        assert!(ExpiresAt::parse(now - Duration::days(1), now).is_err());
    }

    #[test]
    fn expiries_keep_milliseconds_only() {
        let now = DateTime::from_timestamp(1_000, 0).unwrap();
        let at = DateTime::from_timestamp(2_000, 123_456_789).unwrap();
        let parsed = ExpiresAt::parse(at, now).unwrap().get();
        assert_eq!(parsed.timestamp_subsec_nanos(), 123_000_000);
    }
}
