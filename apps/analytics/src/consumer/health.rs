//! Whether each subject's durable consumer answers, for `/ready`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::SUBJECTS;

/// How long a subject's consumer may go without answering before `/ready`
/// fails; `analytics_consumer_up` drops to 0 at the first unanswered probe.
pub const CONSUMER_SILENCE_LIMIT: Duration = Duration::from_secs(30);

/// When each subject's consumer last answered (its info is fetched every
/// 2 s by the lag reporter), for `/ready`.
pub struct ConsumerHealth {
    /// Unix milliseconds of the last answer; the start counts as one.
    last_answer: Vec<(&'static str, AtomicU64)>,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Default for ConsumerHealth {
    fn default() -> Self {
        let now = unix_ms();
        Self {
            last_answer: SUBJECTS
                .iter()
                .map(|&subject| (subject, AtomicU64::new(now)))
                .collect(),
        }
    }
}

impl ConsumerHealth {
    /// The consumer of `subject` answered just now.
    pub fn answered(&self, subject: &str) {
        if let Some((_, at)) = self.last_answer.iter().find(|(s, _)| *s == subject) {
            at.store(unix_ms(), Ordering::Relaxed);
        }
    }

    /// Per subject, how long since its consumer last answered.
    pub fn silences(&self) -> Vec<(&'static str, Duration)> {
        let now = unix_ms();
        self.last_answer
            .iter()
            .map(|(subject, at)| {
                let since = now.saturating_sub(at.load(Ordering::Relaxed));
                (*subject, Duration::from_millis(since))
            })
            .collect()
    }
}
