//! Sending one batch: PutLogEvents first; on ResourceNotFound create the group/stream (when
//! allowed) and put again. Every outcome is counted, every failure logged with what to do about
//! it. Retries within the flush are `retry`'s; what an answer means is `errors`'.

use crate::aws::body::{reclaim, PutBody};
use crate::aws::client::Writer;
use crate::aws::errors::{classify, Failure};
use crate::aws::payload_hashes::{sha256_each, Digest};
use crate::aws::put::{Accepted, Rejected};
use crate::aws::retry::{jittered_backoff, RetryPolicy};
use crate::aws::roles::RoleWriters;
use crate::core::batch::{body_parts, framed_run, write_body_head, LogEvent, BODY_TAIL};
use crate::core::config::NewGroup;
use crate::core::naming::StreamKey;
use crate::log::{log_debug, log_error, log_info, log_warn};
use crate::stats::Stats;
use crate::stop::SinceStop;
use aws_sdk_cloudwatchlogs::types::LogGroupClass;
use aws_sdk_cloudwatchlogs::Client;
use bytes::Bytes;
use std::ops::Range;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::time::{sleep, Instant};

/// How many times one batch may create its missing group/stream and replay.
const MAX_CREATIONS: u32 = 5;
/// How many times PutRetentionPolicy on a new group is tried, off the flush path.
const RETENTION_ATTEMPTS: u32 = 8;

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

/// The writers, and the rules for sending and for creating what is missing.
pub struct Delivery {
    /// The instance's own client and credentials (`role_arn`, else the base credentials);
    /// the credentials are dropped when CloudWatch refuses them.
    pub own: Arc<Writer>,
    /// The writers of roles chosen per record, when `role_arn_template` / `role_arn_map` is set.
    pub roles: Option<RoleWriters>,
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
    /// Once Fluent Bit is stopping: whether this endpoint failed since.
    pub since_stop: SinceStop,
}

impl Delivery {
    /// Sends one batch (sorted events whose messages live in `arena`, framed) to its group and
    /// stream. `buf` is a reusable buffer for the body's head (or the whole body when the
    /// events are not one run of the arena), given back with the outcome (empty if a request
    /// still holds it). `sha256` is the body's hash when it was computed ahead
    /// (`framed_body_hashes`).
    pub async fn send(
        &self,
        to: &StreamKey,
        arena: &Bytes,
        events: &[LogEvent],
        deadline: Instant,
        mut buf: Vec<u8>,
        sha256: Option<Digest>,
    ) -> (BatchOutcome, Vec<u8>) {
        let body = match body_parts(&to.group, &to.stream, arena, events, &mut buf) {
            // the events are sent from the arena itself: no copy
            Some(run) => {
                let body = PutBody::parts(Bytes::from(buf), arena.slice(run), Bytes::from_static(BODY_TAIL));
                match sha256 {
                    Some(digest) => body.with_sha256(digest),
                    None => body,
                }
            }
            None => PutBody::whole(Bytes::from(buf)),
        };
        let writer = self.writer(to).await;
        let outcome = self.send_body(&writer, to, &body, events, deadline).await;
        // every attempt's clone is gone once the calls have finished: take the buffer back
        (outcome, reclaim(body.into_head()).unwrap_or_default())
    }

    /// The SHA-256 of the body `send` makes for each batch (`to` and its events) whose events
    /// are one run of the arena (head, run, tail, as `body_parts` makes them), all computed side
    /// by side (`payload_hashes`); `None` for the others (their body is a copy, hashed when
    /// signed).
    pub fn framed_body_hashes(arena: &[u8], batches: &[(&StreamKey, &[LogEvent])]) -> Vec<Option<Digest>> {
        let heads: Vec<Option<(Vec<u8>, Range<usize>)>> = batches
            .iter()
            .map(|(to, events)| {
                framed_run(events).map(|run| {
                    let mut head = Vec::new();
                    write_body_head(&to.group, &to.stream, &mut head);
                    (head, run)
                })
            })
            .collect();
        let parts: Vec<[&[u8]; 3]> =
            heads.iter().flatten().map(|(head, run)| [&head[..], &arena[run.clone()], BODY_TAIL]).collect();
        let mut digests = sha256_each(&parts).into_iter();
        heads.iter().map(|head| head.as_ref().and_then(|_| digests.next())).collect()
    }

    /// Who writes to `to`: the writer of its role, else the instance's own.
    async fn writer(&self, to: &StreamKey) -> Arc<Writer> {
        match (&to.role, &self.roles) {
            (Some(role), Some(roles)) => roles.get(role, &to.group).await,
            _ => self.own.clone(),
        }
    }

    /// How the calls of a flush with this deadline are retried, `writer`'s credentials dropped
    /// when CloudWatch refuses them.
    fn retry<'a>(&'a self, writer: &'a Writer, deadline: Instant) -> RetryPolicy<'a, impl Fn(SystemTime) + 'a> {
        RetryPolicy {
            deadline,
            auto_retry: self.auto_retry,
            label: &self.label,
            stats: &self.stats,
            credentials_refused: move |started| writer.credentials.invalidate(started),
            since_stop: &self.since_stop,
        }
    }

    async fn send_body(
        &self,
        writer: &Writer,
        to: &StreamKey,
        body: &PutBody,
        events: &[LogEvent],
        deadline: Instant,
    ) -> BatchOutcome {
        let (group, stream) = (to.group.as_str(), to.stream.as_str());
        // Group or stream can vanish again while we replay (deleted by someone else): recreate
        // a few times, within the deadline, before handing the chunk back to Fluent Bit.
        let mut creations = 0;
        loop {
            // The body was made once, from the arena; every attempt gets a clone of its parts.
            let put = self
                .retry(writer, deadline)
                .run("PutLogEvents", || writer.put.put_log_events(body.clone(), self.log_format.as_deref()))
                .await;
            let failure = match put {
                Ok(out) => {
                    let rejected = self.count_rejected(&out, events);
                    Stats::add(&self.stats.events_sent, events.len() as u64 - rejected);
                    Stats::add(&self.stats.bytes_sent, events.iter().map(|e| e.len as u64).sum());
                    Stats::add(&self.stats.batches_sent, 1);
                    return BatchOutcome::Delivered;
                }
                Err(f) => f,
            };
            match failure {
                Failure::GroupMissing | Failure::StreamMissing if creations < MAX_CREATIONS => {
                    if let Err(outcome) =
                        self.create_missing(writer, to, failure == Failure::GroupMissing, deadline).await
                    {
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
                // an endpoint that does not answer as CloudWatch says nothing about the batch
                Failure::Transient { detail, .. } | Failure::Misbehaving { detail, .. } => {
                    log_warn!(
                        &self.label,
                        "PutLogEvents to '{}'/'{}' gave up: {}; the chunk will be retried",
                        group,
                        stream,
                        detail
                    );
                    return BatchOutcome::Retry;
                }
                Failure::NotSent(detail) => {
                    log_error!(
                        &self.label,
                        "PutLogEvents to '{}'/'{}' could not be sent: {}; the chunk will be retried",
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
    async fn create_missing(
        &self,
        writer: &Writer,
        to: &StreamKey,
        group_missing: bool,
        deadline: Instant,
    ) -> Result<(), BatchOutcome> {
        let (group, stream) = (to.group.as_str(), to.stream.as_str());
        if group_missing {
            self.create_group(writer, group, deadline).await?;
        }
        if !self.auto_create_stream {
            log_error!(&self.label, "log stream '{}' does not exist in log group '{}' and auto_create_stream is off: create it, or turn auto_create_stream on", stream, group);
            return Err(BatchOutcome::Retry);
        }
        let created = self
            .retry(writer, deadline)
            .run("CreateLogStream", || {
                writer.logs.create_log_stream().log_group_name(group).log_stream_name(stream).send()
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
                Box::pin(self.create_missing(writer, to, true, deadline)).await
            }
            Err(f) => Err(self.creation_failed("CreateLogStream", &format!("log stream '{stream}'"), f)),
        }
    }

    /// CreateLogGroup with the configured class, KMS key and tags; the retention policy is set
    /// in the background, so the batch waiting for the group is not held up by it.
    async fn create_group(&self, writer: &Writer, group: &str, deadline: Instant) -> Result<(), BatchOutcome> {
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
            .retry(writer, deadline)
            .run("CreateLogGroup", || {
                let mut call = writer
                    .logs
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
                    self.spawn_retention(&writer.logs, group, days);
                }
                Ok(())
            }
            Err(f) => Err(self.creation_failed("CreateLogGroup", &format!("log group '{group}'"), f)),
        }
    }

    /// PutRetentionPolicy on a new group, retried for up to a minute off the flush path.
    fn spawn_retention(&self, client: &Client, group: &str, days: i32) {
        let (client, label, stats, group) = (client.clone(), self.label.clone(), self.stats.clone(), group.to_owned());
        tokio::spawn(async move {
            for attempt in 0..RETENTION_ATTEMPTS {
                let call = client.put_retention_policy().log_group_name(&group).retention_in_days(days).send().await;
                let failure = match call {
                    Ok(_) => {
                        log_debug!(&label, "log group '{}': retention set to {} days", group, days);
                        return;
                    }
                    Err(e) => classify(&e),
                };
                let why = match failure {
                    Failure::Transient { .. }
                    | Failure::Misbehaving { .. }
                    | Failure::Credentials(_)
                    | Failure::NoCredentials(_) => None,
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

    /// Counts and logs events CloudWatch rejected one by one; returns how many.
    fn count_rejected(&self, info: &Accepted, events: &[LogEvent]) -> u64 {
        let r = Rejected::from_indexes(info.too_old_end, info.expired_end, info.too_new_start, events, now_millis());
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

fn now_millis() -> i64 {
    SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::message::{Encoder, MessageFormat};
    use crate::core::names::NameKind;
    use crate::core::naming::NameRule;
    use crate::core::plan::{Naming, Plan};
    use crate::core::template::{Template, Vars};

    /// The hashes computed ahead are those of the bodies `send` makes: one for every batch sent
    /// from the arena, none for a batch whose body is a copy (its records out of time order).
    #[test]
    fn hashes_computed_ahead_are_of_the_bodies_sent() {
        let group = NameRule::Fixed("g".into());
        let stream = NameRule::Template {
            template: Template::parse("$app", NameKind::Stream).unwrap().into(),
            fallback: Box::new(NameRule::Fixed("f".into())),
        };
        let vars = Vars { uuid: "u", ecs: None };
        let naming = Naming { group: &group, stream: &stream, vars: &vars, roles: None, role_map: None };
        let mut chunk = Vec::new();
        // "web" in time order, a large batch and the rest; "db" out of order
        for i in 0..3000u32 {
            let body = serde_json::json!({"app": "web", "n": i, "pad": "x".repeat(400)});
            chunk.extend(cwrs_test_host::record(true, 100 + i, 0, &body));
        }
        for secs in [9, 5, 7] {
            chunk.extend(cwrs_test_host::record(true, secs, 0, &serde_json::json!({"app": "db", "n": secs})));
        }
        let mut plan = Plan::default();
        plan.build(&chunk, "t", naming, &MessageFormat::default(), &mut Encoder::new());
        let arena = Bytes::from(plan.arena.clone());
        let batches: Vec<(&StreamKey, &[LogEvent])> =
            (0..plan.batches.len()).map(|i| (plan.key_of(i).unwrap(), &plan.events[plan.batches[i].clone()])).collect();
        let hashes = Delivery::framed_body_hashes(&arena, &batches);
        assert_eq!(hashes.len(), batches.len());
        for (&(to, events), digest) in batches.iter().zip(&hashes) {
            let mut buf = Vec::new();
            let body = match body_parts(&to.group, &to.stream, &arena, events, &mut buf) {
                Some(run) => PutBody::parts(Bytes::from(buf), arena.slice(run), Bytes::from_static(BODY_TAIL)),
                None => PutBody::whole(Bytes::from(buf)),
            };
            assert_eq!(digest.is_some(), framed_run(events).is_some(), "{to:?}");
            if let Some(digest) = digest {
                assert_eq!(hex::encode(digest), body.sha256_hex());
            }
        }
        let framed = hashes.iter().filter(|h| h.is_some()).count();
        assert!(framed >= 2 && framed < hashes.len(), "{framed} of {}", hashes.len());
    }
}
