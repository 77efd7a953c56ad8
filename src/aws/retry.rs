//! The retry loop every AWS call of a flush goes through: transient failures retried with
//! exponential backoff and full jitter until the flush deadline, refused credentials retried
//! once they have been dropped, everything else returned at once. Once Fluent Bit is stopping
//! (`stop`), nothing is retried and a call gets `stop::WINDOW` to finish.

use crate::aws::errors::{classify, Failure};
use crate::log::log_debug;
use crate::stats::Stats;
use crate::stop;
use aws_sdk_cloudwatchlogs::error::{ProvideErrorMetadata, SdkError};
use futures_util::future::{select, Either};
use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::BuildHasher;
use std::pin::pin;
use std::time::{Duration, SystemTime};
use tokio::time::{sleep, timeout_at, Instant};

/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// The first attempt's cap; each later attempt doubles it, up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// How one call is retried.
pub struct RetryPolicy<'a, Refused> {
    /// No attempt starts after this, and one still running then is abandoned.
    pub deadline: Instant,
    /// Off: one attempt, and Fluent Bit's retry does the rest.
    pub auto_retry: bool,
    /// Instance name for log lines.
    pub label: &'a str,
    pub stats: &'a Stats,
    /// Called with an attempt's start when the service refused its credentials, so the next
    /// attempt is signed with fresh ones.
    pub credentials_refused: Refused,
    /// This endpoint's failures since Fluent Bit was asked to stop.
    pub since_stop: &'a stop::SinceStop,
}

impl<Refused: Fn(SystemTime)> RetryPolicy<'_, Refused> {
    /// Calls `call` until it succeeds, fails for good, or the deadline comes; transient
    /// failures wait a random time up to `min(5 s, 100 ms × 2^n)` (full jitter).
    pub async fn run<T, E, Fut>(&self, name: &str, mut call: impl FnMut() -> Fut) -> Result<T, Failure>
    where
        Fut: Future<Output = Result<T, SdkError<E>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let mut attempt: u32 = 0;
        let mut last = String::new();
        let began = Instant::now();
        if self.since_stop.given_up() {
            let detail = format!("{name} not tried: Fluent Bit is stopping and the endpoint failed since");
            return Err(Failure::Transient { throttled: false, detail });
        }
        loop {
            let started = SystemTime::now();
            let answer = match select(pin!(timeout_at(self.deadline, call())), pin!(stop::window_closed(began))).await {
                Either::Left((answer, _)) => answer,
                Either::Right(_) => {
                    self.since_stop.failed();
                    let detail = format!("{name} abandoned: Fluent Bit is stopping");
                    return Err(Failure::Transient { throttled: false, detail });
                }
            };
            let failure = match answer {
                Ok(Ok(out)) => return Ok(out),
                Ok(Err(err)) => {
                    self.since_stop.failed();
                    classify(&err)
                }
                Err(_) => {
                    let detail = if last.is_empty() {
                        format!("{name} still running at the flush deadline")
                    } else {
                        format!("{name} still running at the flush deadline, after {attempt} failed attempts (last: {last})")
                    };
                    return Err(Failure::Transient { throttled: false, detail });
                }
            };
            let (throttled, detail) = match &failure {
                Failure::Transient { throttled, detail } => (*throttled, detail),
                Failure::Misbehaving { detail, .. } => (false, detail),
                Failure::Credentials(detail) => {
                    (self.credentials_refused)(started);
                    (false, detail)
                }
                _ => return Err(failure),
            };
            if throttled {
                Stats::add(&self.stats.throttled, 1);
            }
            let wait = jittered_backoff(attempt);
            if !self.auto_retry || stop::requested() || Instant::now() + wait >= self.deadline {
                return Err(failure);
            }
            log_debug!(self.label, "{} failed ({}), retrying in {} ms", name, detail, wait.as_millis());
            last.clone_from(detail);
            Stats::add(&self.stats.retries, 1);
            if let Either::Right(_) = select(pin!(sleep(wait)), pin!(stop::noticed())).await {
                return Err(failure);
            }
            attempt += 1;
        }
    }
}

/// A random wait up to `min(MAX_BACKOFF, FIRST_BACKOFF × 2^attempt)`.
pub fn jittered_backoff(attempt: u32) -> Duration {
    let cap = backoff_cap(attempt).as_millis() as u64;
    let random = RandomState::new().hash_one(attempt);
    Duration::from_millis(random % (cap + 1))
}

fn backoff_cap(attempt: u32) -> Duration {
    FIRST_BACKOFF.saturating_mul(1 << attempt.min(16)).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_bounded_and_grows() {
        for attempt in 0..40 {
            let cap = 100u64.saturating_mul(1 << attempt.min(16)).min(5_000);
            assert!(jittered_backoff(attempt).as_millis() as u64 <= cap);
            assert_eq!(backoff_cap(attempt).as_millis() as u64, cap);
        }
    }
}
