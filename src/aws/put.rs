//! PutLogEvents with a body written by the core (`core::batch::request_body`), and what its
//! answer says about events CloudWatch rejected one by one.

use crate::aws::errors::ExpectCloudWatchAnswer;
use crate::core::batch::LogEvent;
use crate::sync::lock;
use aws_sdk_cloudwatchlogs::config::interceptors::BeforeTransmitInterceptorContextMut;
use aws_sdk_cloudwatchlogs::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_cloudwatchlogs::error::{BoxError, SdkError};
use aws_sdk_cloudwatchlogs::operation::put_log_events::{PutLogEventsError, PutLogEventsOutput};
use aws_sdk_cloudwatchlogs::Client;
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;
use std::sync::Mutex;

/// CloudWatch refuses events older than this (and moto's index needs it, see `Rejected`).
const MAX_EVENT_AGE_MS: i64 = 14 * 24 * 3600 * 1000;

/// One PutLogEvents call sending `body` (a clone of the batch's buffer) to `group`/`stream`.
pub async fn put_log_events(
    client: &Client,
    group: &str,
    stream: &str,
    body: Bytes,
    log_format: Option<String>,
) -> Result<PutLogEventsOutput, SdkError<PutLogEventsError>> {
    client
        .put_log_events()
        .log_group_name(group)
        .log_stream_name(stream)
        .set_log_events(Some(Vec::new()))
        .customize()
        .interceptor(PreEncodedBody { body: Mutex::new(Some(body)), log_format })
        .interceptor(ExpectCloudWatchAnswer)
        .send()
        .await
}

/// Replaces the SDK's serialisation of a PutLogEvents request (here: group, stream and no
/// events) with the pre-encoded body, before signing, so SigV4 hashes the real body.
/// Interceptors are the SDK's supported hook for this; one is used per attempt.
/// It also sets `x-amzn-logs-format` (`log_format`).
#[derive(Debug)]
struct PreEncodedBody {
    body: Mutex<Option<Bytes>>,
    log_format: Option<String>,
}

impl Intercept for PreEncodedBody {
    fn name(&self) -> &'static str {
        "cloudwatch_rs::PreEncodedBody"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let body = lock(&self.body).take();
        let request = context.request_mut();
        if let Some(body) = body {
            request.headers_mut().insert("content-length", body.len().to_string());
            *request.body_mut() = SdkBody::from(body);
        }
        if let Some(format) = &self.log_format {
            request.headers_mut().insert("x-amzn-logs-format", format.clone());
        }
        Ok(())
    }
}

/// Events of one accepted batch that CloudWatch rejected, by reason. The old ones are at the
/// start of the (sorted) batch, the too-new ones at its end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rejected {
    pub too_old: usize,
    pub expired: usize,
    pub too_new: usize,
}

impl Rejected {
    /// AWS documents the too-old and expired end indexes as exclusive and the too-new start
    /// index as inclusive. moto sends the index of the *last* too-old event instead, so an event
    /// at the end index that is itself more than 14 days old is counted as well.
    pub fn from_indexes(
        too_old_end: Option<i32>,
        expired_end: Option<i32>,
        too_new_start: Option<i32>,
        events: &[LogEvent],
        now_ms: i64,
    ) -> Rejected {
        let n = events.len();
        let bound = |i: Option<i32>| i.map_or(0, |i| (i.max(0) as usize).min(n));
        let mut too_old = bound(too_old_end);
        if too_old_end.is_some() && too_old < n && events[too_old].timestamp < now_ms - MAX_EVENT_AGE_MS {
            too_old += 1;
        }
        let expired = bound(expired_end);
        let old = too_old.max(expired);
        let new_start = too_new_start.map_or(n, |i| (i.max(0) as usize).clamp(old, n));
        Rejected { too_old: old - expired, expired, too_new: n - new_start }
    }

    pub fn total(&self) -> usize {
        self.too_old + self.expired + self.too_new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejected_events_by_index_aws_and_moto_style() {
        let now = 2_000_000_000_000;
        let day = 24 * 3600 * 1000;
        let ev = |t| LogEvent { timestamp: t, start: 0, stored: 1, len: 1, key: 0 };
        let events = [ev(now - 20 * day), ev(now - 15 * day), ev(now), ev(now + 3 * 3600 * 1000)];
        // AWS: exclusive end index 2 = two too old; too-new from index 3
        assert_eq!(
            Rejected::from_indexes(Some(2), None, Some(3), &events, now),
            Rejected { too_old: 2, expired: 0, too_new: 1 }
        );
        // moto: index of the last too-old event (1)
        assert_eq!(Rejected::from_indexes(Some(1), None, None, &events, now).too_old, 2);
        // moto with one too-old event: index 0
        assert_eq!(Rejected::from_indexes(Some(0), None, None, &events[1..], now).too_old, 1);
        assert_eq!(
            Rejected::from_indexes(None, Some(1), None, &events, now),
            Rejected { too_old: 0, expired: 1, too_new: 0 }
        );
        assert_eq!(Rejected::from_indexes(Some(99), None, Some(-5), &events, now).total(), 4);
    }
}
