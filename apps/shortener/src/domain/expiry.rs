//! Link expiry.

use chrono::{DateTime, Utc};

/// An expiry instant that was in the future when the link was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpiresAt(DateTime<Utc>);

impl ExpiresAt {
    pub fn parse(at: DateTime<Utc>, now: DateTime<Utc>) -> Result<Self, String> {
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
}
