//! Sending batches: PutLogEvents first; on ResourceNotFound create the group/stream (when
//! allowed) and put again; throttling, 5xx and network errors retried with exponential backoff
//! and full jitter until the flush deadline. Every outcome is counted, every failure logged
//! with what to do about it.

use crate::core::batch::{request_body, LogEvent};
use crate::core::config::NewGroup;
use crate::core::naming::StreamKey;
use crate::log::{log_debug, log_error, log_info, log_warn};
use crate::stats::Stats;
use aws_sdk_cloudwatchlogs::config::interceptors::BeforeTransmitInterceptorContextMut;
use aws_sdk_cloudwatchlogs::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_cloudwatchlogs::error::BoxError;
use aws_sdk_cloudwatchlogs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_cloudwatchlogs::types::{LogGroupClass, RejectedLogEventsInfo};
use aws_sdk_cloudwatchlogs::Client;
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;
use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{sleep, timeout_at, Instant};

/// How many times one batch may create its missing group/stream and replay.
const MAX_CREATIONS: u32 = 5;

/// What became of one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchOutcome {
    /// Accepted (events CloudWatch rejected one by one are counted as dropped).
    Delivered,
    /// Refused for good; counted and logged.
    Dropped,
    /// May pass later: Fluent Bit should retry the chunk.
    Retry,
}

/// Why a call failed, as far as what to do next is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    GroupMissing,
    StreamMissing,
    /// A create call lost a race with another worker (or another Fluent Bit): fine.
    AlreadyExists,
    /// Throttling, 5xx, network, timeouts: worth retrying soon.
    Transient {
        throttled: bool,
        detail: String,
    },
    /// AccessDenied and friends: the principal lacks a permission or the role's trust.
    Denied(String),
    /// Credentials CloudWatch refused (expired, revoked): worth retrying with fresh ones.
    Credentials(String),
    /// No credentials to be had: the base chain found none, or AssumeRole was refused.
    NoCredentials(String),
    /// The request itself was refused (InvalidParameter…): retrying cannot help.
    Invalid(String),
}

/// The client, and the rules for sending and for creating what is missing.
pub struct Delivery {
    pub client: Client,
    pub auto_create_group: bool,
    /// What a group the plugin creates gets.
    pub new_group: NewGroup,
    pub auto_create_stream: bool,
    /// `x-amzn-logs-format` of every PutLogEvents.
    pub log_format: Option<String>,
    /// Off: one attempt per call, and Fluent Bit's retry does the rest.
    pub auto_retry: bool,
    /// Instance name for log lines, e.g. `cloudwatch_rs.0`.
    pub label: String,
    pub stats: Arc<Stats>,
    /// Dropped when CloudWatch refuses the credentials it signed with.
    pub credentials: Arc<crate::aws::credentials::CredentialCache>,
}

impl Delivery {
    /// Sends one batch (sorted events whose messages live in `arena`) to its group and stream.
    /// `buf` is a reusable body buffer, given back with the outcome (empty if a request still
    /// holds it).
    pub async fn send(
        &self,
        to: &StreamKey,
        arena: &[u8],
        events: &[LogEvent],
        deadline: Instant,
        mut buf: Vec<u8>,
    ) -> (BatchOutcome, Vec<u8>) {
        request_body(&to.group, &to.stream, arena, events, &mut buf);
        let body = Bytes::from(buf);
        let outcome = self.send_body(to, &body, events, deadline).await;
        // every attempt's clone is gone once the calls have finished: take the buffer back
        (outcome, body.try_into_mut().map(Vec::from).unwrap_or_default())
    }

    async fn send_body(&self, to: &StreamKey, body: &Bytes, events: &[LogEvent], deadline: Instant) -> BatchOutcome {
        let (group, stream) = (to.group.as_str(), to.stream.as_str());
        // Group or stream can vanish again while we replay (deleted by someone else): recreate
        // a few times, within the deadline, before handing the chunk back to Fluent Bit.
        let mut creations = 0;
        // The body was written once, straight from the arena; every attempt gets a clone of it.
        loop {
            let put = self
                .retrying("PutLogEvents", deadline, || {
                    self.client
                        .put_log_events()
                        .log_group_name(group)
                        .log_stream_name(stream)
                        .set_log_events(Some(Vec::new()))
                        .customize()
                        .interceptor(PreEncodedBody::new(body.clone(), self.log_format.clone()))
                        .send()
                })
                .await;
            let failure = match put {
                Ok(out) => {
                    let rejected = out.rejected_log_events_info().map_or(0, |info| self.count_rejected(info, events));
                    Stats::add(&self.stats.events_sent, events.len() as u64 - rejected);
                    Stats::add(&self.stats.bytes_sent, events.iter().map(|e| e.len as u64).sum());
                    Stats::add(&self.stats.batches_sent, 1);
                    return BatchOutcome::Delivered;
                }
                Err(f) => f,
            };
            match failure {
                Failure::GroupMissing | Failure::StreamMissing if creations < MAX_CREATIONS => {
                    if let Err(outcome) = self.create_missing(to, failure == Failure::GroupMissing, deadline).await {
                        return outcome;
                    }
                    creations += 1;
                }
                Failure::GroupMissing | Failure::StreamMissing => {
                    log_warn!(
                        &self.label,
                        "log group '{}' / stream '{}' missing again after creating it {} times; will retry",
                        group,
                        stream,
                        creations
                    );
                    return BatchOutcome::Retry;
                }
                Failure::Transient { detail, .. } => {
                    log_warn!(
                        &self.label,
                        "PutLogEvents to '{}'/'{}' gave up: {}; the chunk will be retried",
                        group,
                        stream,
                        detail
                    );
                    return BatchOutcome::Retry;
                }
                Failure::Denied(detail) => {
                    log_error!(&self.label, "access denied: PutLogEvents on log group '{}': {}; check that principal's policy (and role_arn and the role's trust policy)", group, detail);
                    return BatchOutcome::Retry;
                }
                Failure::Credentials(detail) => {
                    log_error!(
                        &self.label,
                        "no usable AWS credentials for PutLogEvents on log group '{}': {}",
                        group,
                        detail
                    );
                    return BatchOutcome::Retry;
                }
                Failure::NoCredentials(_) => {
                    // the credential cache has logged why, once
                    return BatchOutcome::Retry;
                }
                Failure::AlreadyExists => {
                    log_warn!(&self.label, "PutLogEvents answered ResourceAlreadyExists; will retry");
                    return BatchOutcome::Retry;
                }
                Failure::Invalid(detail) => {
                    log_error!(
                        &self.label,
                        "CloudWatch refused a batch of {} events for '{}'/'{}' as invalid, dropping it: {}",
                        events.len(),
                        group,
                        stream,
                        detail
                    );
                    Stats::add(&self.stats.dropped_invalid, events.len() as u64);
                    return BatchOutcome::Dropped;
                }
            }
        }
    }

    /// Creates the group (when it is missing and allowed) and the stream.
    async fn create_missing(&self, to: &StreamKey, group_missing: bool, deadline: Instant) -> Result<(), BatchOutcome> {
        let (group, stream) = (to.group.as_str(), to.stream.as_str());
        if group_missing {
            self.create_group(group, deadline).await?;
        }
        if !self.auto_create_stream {
            log_error!(&self.label, "log stream '{}' does not exist in log group '{}' and auto_create_stream is off: create it, or turn auto_create_stream on", stream, group);
            return Err(BatchOutcome::Retry);
        }
        let created = self
            .retrying("CreateLogStream", deadline, || {
                self.client.create_log_stream().log_group_name(group).log_stream_name(stream).send()
            })
            .await;
        match created.map(Some).or_else(|f| if f == Failure::AlreadyExists { Ok(None) } else { Err(f) }) {
            Ok(None) => Ok(()),
            Ok(Some(_)) => {
                Stats::add(&self.stats.streams_created, 1);
                log_debug!(&self.label, "created log stream '{}' in '{}'", stream, group);
                Ok(())
            }
            Err(Failure::GroupMissing | Failure::StreamMissing) if !group_missing => {
                // the group went missing too: create it, then the stream
                Box::pin(self.create_missing(to, true, deadline)).await
            }
            Err(f) => Err(self.creation_failed("CreateLogStream", &format!("log stream '{stream}'"), f)),
        }
    }

    /// CreateLogGroup with the configured class, KMS key and tags; the retention policy is set
    /// in the background, so the batch waiting for the group is not held up by it.
    async fn create_group(&self, group: &str, deadline: Instant) -> Result<(), BatchOutcome> {
        if !self.auto_create_group {
            log_error!(
                &self.label,
                "log group '{}' does not exist and auto_create_group is off: create it, or turn auto_create_group on",
                group
            );
            return Err(BatchOutcome::Retry);
        }
        let settings = &self.new_group;
        let created = self
            .retrying("CreateLogGroup", deadline, || {
                let mut call = self
                    .client
                    .create_log_group()
                    .log_group_name(group)
                    .set_kms_key_id(settings.kms_key_id.clone())
                    .set_log_group_class(settings.class.as_deref().map(LogGroupClass::from));
                for (k, v) in &settings.tags {
                    call = call.tags(k, v);
                }
                call.send()
            })
            .await;
        match created.map(Some).or_else(|f| if f == Failure::AlreadyExists { Ok(None) } else { Err(f) }) {
            Ok(created) => {
                if created.is_some() {
                    Stats::add(&self.stats.groups_created, 1);
                    log_info!(&self.label, "created log group '{}'", group);
                }
                // also after AlreadyExists: another worker may have created it a moment ago
                if let Some(days) = settings.retention_days {
                    self.spawn_retention(group, days);
                }
                Ok(())
            }
            Err(f) => Err(self.creation_failed("CreateLogGroup", &format!("log group '{group}'"), f)),
        }
    }

    /// PutRetentionPolicy on a new group, retried for up to a minute off the flush path.
    fn spawn_retention(&self, group: &str, days: i32) {
        let (client, label, stats, group) =
            (self.client.clone(), self.label.clone(), self.stats.clone(), group.to_owned());
        tokio::spawn(async move {
            for attempt in 0..8u32 {
                let call = client.put_retention_policy().log_group_name(&group).retention_in_days(days).send().await;
                let failure = match call {
                    Ok(_) => {
                        log_debug!(&label, "log group '{}': retention set to {} days", group, days);
                        return;
                    }
                    Err(e) => classify(&e),
                };
                let why = match failure {
                    Failure::Transient { .. } | Failure::Credentials(_) | Failure::NoCredentials(_) => None,
                    Failure::Denied(detail) => {
                        Some(format!("access denied (the principal needs logs:PutRetentionPolicy): {detail}"))
                    }
                    other => Some(format!("{other:?}")),
                };
                if let Some(why) = why {
                    Stats::add(&stats.retention_failures, 1);
                    log_error!(&label, "PutRetentionPolicy ({} days) on log group '{}' failed: {}; the group keeps its events until retention is set", days, group, why);
                    return;
                }
                sleep(jittered_backoff(attempt + 3)).await;
            }
            Stats::add(&stats.retention_failures, 1);
            log_error!(
                &label,
                "PutRetentionPolicy ({} days) on log group '{}' kept failing; set it by hand",
                days,
                group
            );
        });
    }

    fn creation_failed(&self, call: &str, what: &str, failure: Failure) -> BatchOutcome {
        match failure {
            Failure::Denied(detail) => log_error!(
                &self.label,
                "access denied: {} for {} (the principal needs logs:{}): {}",
                call,
                what,
                call,
                detail
            ),
            other => log_error!(&self.label, "{} for {} failed: {:?}", call, what, other),
        }
        BatchOutcome::Retry
    }

    /// Calls `call` until it succeeds, fails for good, or the deadline comes; transient
    /// failures wait `min(5 s, 100 ms × 2^n)` × a uniform random factor (full jitter).
    async fn retrying<T, E, Fut>(
        &self,
        name: &str,
        deadline: Instant,
        mut call: impl FnMut() -> Fut,
    ) -> Result<T, Failure>
    where
        Fut: Future<Output = Result<T, SdkError<E>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let mut attempt: u32 = 0;
        let mut last = String::new();
        loop {
            let started = std::time::SystemTime::now();
            let failure = match timeout_at(deadline, call()).await {
                Ok(Ok(out)) => return Ok(out),
                Ok(Err(err)) => classify(&err),
                Err(_) => {
                    let detail = if last.is_empty() {
                        format!("{name} still running at the flush deadline")
                    } else {
                        format!("{name} still running at the flush deadline, after {attempt} failed attempts (last: {last})")
                    };
                    return Err(Failure::Transient { throttled: false, detail });
                }
            };
            // Credentials CloudWatch refused (expired, revoked) are retried too: the next
            // attempt may be signed with refreshed ones.
            let (throttled, detail) = match &failure {
                Failure::Transient { throttled, detail } => (*throttled, detail),
                Failure::Credentials(detail) => {
                    self.credentials.invalidate(started);
                    (false, detail)
                }
                _ => return Err(failure),
            };
            if throttled {
                Stats::add(&self.stats.throttled, 1);
            }
            let wait = jittered_backoff(attempt);
            if !self.auto_retry || Instant::now() + wait >= deadline {
                return Err(failure);
            }
            log_debug!(&self.label, "{} failed ({}), retrying in {} ms", name, detail, wait.as_millis());
            last.clone_from(detail);
            Stats::add(&self.stats.retries, 1);
            sleep(wait).await;
            attempt += 1;
        }
    }

    /// Counts and logs events CloudWatch rejected one by one; returns how many.
    fn count_rejected(&self, info: &RejectedLogEventsInfo, events: &[LogEvent]) -> u64 {
        let r = Rejected::from_indexes(
            info.too_old_log_event_end_index(),
            info.expired_log_event_end_index(),
            info.too_new_log_event_start_index(),
            events,
            now_millis(),
        );
        let (n, old) = (events.len(), r.too_old + r.expired);
        if r.total() > 0 {
            let span = |r: &[LogEvent]| r.first().zip(r.last()).map(|(a, b)| (a.timestamp, b.timestamp));
            log_warn!(
                &self.label,
                "CloudWatch rejected {} of {} events: {} too old, {} past retention, {} too new (time ranges ms: old {:?}, new {:?})",
                r.total(), n, r.too_old, r.expired, r.too_new, span(&events[..old]), span(&events[n - r.too_new..])
            );
            Stats::add(&self.stats.dropped_rejected_too_old, r.too_old as u64);
            Stats::add(&self.stats.dropped_rejected_expired, r.expired as u64);
            Stats::add(&self.stats.dropped_rejected_too_new, r.too_new as u64);
        }
        r.total() as u64
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
        let fourteen_days_ago = now_ms - 14 * 24 * 3600 * 1000;
        let mut too_old = bound(too_old_end);
        if too_old_end.is_some() && too_old < n && events[too_old].timestamp < fourteen_days_ago {
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

/// Replaces the SDK's serialisation of a PutLogEvents request (here: group, stream and no
/// events) with the body `request_body` wrote, before signing, so SigV4 hashes the real body.
/// Interceptors are the SDK's supported hook for this; one is used per attempt.
/// It also sets `x-amzn-logs-format` (`log_format`).
#[derive(Debug)]
struct PreEncodedBody {
    body: std::sync::Mutex<Option<Bytes>>,
    log_format: Option<String>,
}

impl PreEncodedBody {
    fn new(body: Bytes, log_format: Option<String>) -> Self {
        PreEncodedBody { body: std::sync::Mutex::new(Some(body)), log_format }
    }
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
        let body = self.body.lock().map_err(|_| "pre-encoded body lock poisoned")?.take();
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

fn now_millis() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

pub fn jittered_backoff(attempt: u32) -> Duration {
    let cap_ms = 100u64.saturating_mul(1 << attempt.min(16)).min(5_000);
    let random = RandomState::new().hash_one(attempt);
    Duration::from_millis(random % (cap_ms + 1))
}

/// Sorts an SDK error into what delivery does next.
pub fn classify<E>(err: &SdkError<E>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let text = || error_chain(err);
    match err {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let body = service.raw().body().bytes().unwrap_or_default();
            let code = service.err().code().map(str::to_owned).or_else(|| tag_text(body, "Code"));
            let message = service
                .err()
                .message()
                .map(str::to_owned)
                .or_else(|| tag_text(body, "Message"))
                .unwrap_or_else(|| format!("HTTP {status}"));
            let detail = format!("{}: {}", code.as_deref().unwrap_or("error"), message);
            match code.as_deref().unwrap_or("") {
                "ResourceNotFoundException" if message.contains("log group") => Failure::GroupMissing,
                "ResourceNotFoundException" => Failure::StreamMissing,
                "ResourceAlreadyExistsException" => Failure::AlreadyExists,
                "ThrottlingException"
                | "Throttling"
                | "ThrottledException"
                | "RequestLimitExceeded"
                | "TooManyRequestsException"
                | "LimitExceededException" => Failure::Transient { throttled: true, detail },
                "ServiceUnavailableException" | "InternalFailure" | "OperationAbortedException" => {
                    Failure::Transient { throttled: false, detail }
                }
                "ExpiredTokenException"
                | "ExpiredToken"
                | "UnrecognizedClientException"
                | "InvalidClientTokenId"
                | "InvalidSignatureException"
                | "SignatureDoesNotMatch"
                | "IncompleteSignature" => Failure::Credentials(detail),
                "AccessDeniedException" | "AccessDenied" => Failure::Denied(message),
                _ if status == 429 => Failure::Transient { throttled: true, detail },
                _ if status >= 500 => Failure::Transient { throttled: false, detail },
                _ if status == 403 => Failure::Denied(message),
                _ => Failure::Invalid(detail),
            }
        }
        SdkError::DispatchFailure(_) => {
            let detail = error_chain(err);
            // the credential cache's own refusals (see credentials.rs): retrying cannot help now
            if detail.contains("no base AWS credentials found") || detail.contains("AssumeRole of") {
                Failure::NoCredentials(detail)
            } else if detail.contains("AccessDenied") || detail.contains("not authorized") {
                Failure::Denied(detail)
            } else if ["InvalidClientTokenId", "SignatureDoesNotMatch", "ExpiredToken", "no providers in chain"]
                .iter()
                .any(|code| detail.contains(code))
            {
                // the base credentials themselves are missing or refused
                Failure::Credentials(detail)
            } else {
                // network trouble, including on the way to STS: worth retrying
                Failure::Transient { throttled: false, detail }
            }
        }
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
            Failure::Transient { throttled: false, detail: text() }
        }
        _ => Failure::Invalid(text()),
    }
}

/// An error and its sources as one line, without the Debug dumps of `DisplayErrorContext`.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(err);
    while let Some(e) = current {
        let text = e.to_string();
        if !parts.last().is_some_and(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = e.source();
    }
    parts.join(": ")
}

/// `<Tag>text</Tag>` from an XML error body (moto and STS answer auth errors in XML), or the
/// same key from a JSON body.
fn tag_text(body: &[u8], tag: &str) -> Option<String> {
    let body = std::str::from_utf8(body).ok()?;
    let open = format!("<{tag}>");
    if let Some(start) = body.find(&open) {
        let rest = &body[start + open.len()..];
        return rest.find(&format!("</{tag}>")).map(|end| rest[..end].trim().to_owned());
    }
    let key = format!("\"{}\"", tag.to_ascii_lowercase());
    let start = body.to_ascii_lowercase().find(&key)? + key.len();
    let rest = body[start..].trim_start().strip_prefix(':')?.trim_start().strip_prefix('"')?;
    rest.find('"').map(|end| rest[..end].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_text_from_xml_and_json_bodies() {
        let xml = b"<ErrorResponse><Errors><Error><Code>AccessDenied</Code><Message>User: arn:aws:iam::111111111111:user/task is not authorized</Message></Error></Errors></ErrorResponse>";
        assert_eq!(tag_text(xml, "Code").as_deref(), Some("AccessDenied"));
        assert!(tag_text(xml, "Message").unwrap().contains("111111111111"));
        let json = br#"{"__type": "X", "message": "The specified log group does not exist."}"#;
        assert_eq!(tag_text(json, "Message").as_deref(), Some("The specified log group does not exist."));
    }

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

    #[test]
    fn backoff_is_bounded_and_grows() {
        for attempt in 0..40 {
            let cap = 100u64.saturating_mul(1 << attempt.min(16)).min(5_000);
            assert!(jittered_backoff(attempt).as_millis() as u64 <= cap);
        }
    }
}
