//! The one retry policy of every call `upl` makes: what is worth another try, how many, and how long to
//! wait (exponential, capped, with jitter, honouring Retry-After).

use std::time::{Duration, SystemTime};

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts after the first one.
    pub retries: u32,
    pub base: Duration,
    pub cap: Duration,
}

impl RetryPolicy {
    pub fn new(retries: u32) -> Self {
        Self { retries, base: Duration::from_millis(250), cap: Duration::from_secs(15) }
    }

    /// How long to wait before retry number `attempt` (1-based): base * 2^(attempt-1), capped, +-25 % jitter
    /// so that many clients cut off at once do not come back in lockstep; never less than the server's
    /// `Retry-After` (itself capped, so a confused server cannot park the client for an hour).
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exponential = self.base.saturating_mul(1 << attempt.saturating_sub(1).min(16)).min(self.cap);
        let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().subsec_nanos();
        let jitter = 0.75 + f64::from(nanos % 1000) / 2000.0;
        exponential.mul_f64(jitter).max(retry_after.unwrap_or_default().min(self.cap))
    }
}

/// Something that may be worth trying again.
pub trait Transient {
    fn is_transient(&self) -> bool;
    /// How long the other side asked us to wait (`Retry-After`).
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

/// Runs `attempt` until it succeeds, fails for good, or the retries are spent; `on_retry` hears each failure
/// that will be tried again. `attempt` may change what it captures (a renewed URL, a restarted file), so a
/// retry can be more than a repeat.
pub async fn retrying<T, E: Transient>(
    policy: RetryPolicy,
    mut on_retry: impl FnMut(&E),
    mut attempt: impl AsyncFnMut() -> Result<T, E>,
) -> Result<T, E> {
    let mut failures = 0;
    loop {
        match attempt().await {
            Err(err) if err.is_transient() && failures < policy.retries => {
                failures += 1;
                on_retry(&err);
                tokio::time::sleep(policy.delay(failures, err.retry_after())).await;
            }
            result => return result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    enum Failure {
        Again,
        ForGood,
    }

    impl Transient for Failure {
        fn is_transient(&self) -> bool {
            *self == Failure::Again
        }
    }

    #[test]
    fn delays_grow_and_stay_capped() {
        let policy = RetryPolicy::new(10);
        let first = policy.delay(1, None);
        assert!(first >= Duration::from_millis(187) && first <= Duration::from_millis(313), "{first:?}");
        let fourth = policy.delay(4, None);
        assert!(fourth >= Duration::from_millis(1500) && fourth <= Duration::from_millis(2500), "{fourth:?}");
        assert!(policy.delay(30, None) <= Duration::from_secs(15).mul_f64(1.25));
        assert!(policy.delay(1, Some(Duration::from_secs(3))) >= Duration::from_secs(3));
        assert!(policy.delay(1, Some(Duration::from_secs(3600))) <= Duration::from_secs(15));
    }

    #[tokio::test]
    async fn retries_transient_failures_within_the_budget_only() {
        let fast = RetryPolicy { retries: 2, base: Duration::from_millis(1), cap: Duration::from_millis(1) };
        let (mut calls, mut heard) = (0, 0);
        let result: Result<(), Failure> = retrying(
            fast,
            |_| heard += 1,
            async || {
                calls += 1;
                Err(Failure::Again)
            },
        )
        .await;
        assert_eq!((result, calls, heard), (Err(Failure::Again), 3, 2));

        let mut calls = 0;
        let result: Result<(), Failure> = retrying(
            fast,
            |_| {},
            async || {
                calls += 1;
                Err(Failure::ForGood)
            },
        )
        .await;
        assert_eq!((result, calls), (Err(Failure::ForGood), 1), "a definitive failure is not retried");

        let mut calls = 0;
        let result = retrying(
            fast,
            |_: &Failure| {},
            async || {
                calls += 1;
                if calls < 3 { Err(Failure::Again) } else { Ok(calls) }
            },
        )
        .await;
        assert_eq!(result, Ok(3));
    }
}
