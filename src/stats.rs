//! Per-instance counters, summed over the instance's life, logged every `stats_interval` and at exit.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

macro_rules! counters {
    ($($name:ident: $what:literal),* $(,)?) => {
        /// What an instance did; every event not delivered is in one of the `dropped_*` fields.
        #[derive(Debug, Default)]
        pub struct Stats { $(#[doc = $what] pub $name: AtomicU64,)* }

        impl fmt::Display for Stats {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut parts = Vec::new();
                $(
                    let v = self.$name.load(Relaxed);
                    if v > 0 || matches!(stringify!($name), "events_sent" | "bytes_sent") {
                        parts.push(format!("{}={}", stringify!($name), v));
                    }
                )*
                f.write_str(&parts.join(" "))
            }
        }
    };
}

counters! {
    events_sent: "events CloudWatch accepted",
    bytes_sent: "message bytes CloudWatch accepted",
    batches_sent: "PutLogEvents calls that succeeded",
    flushes: "chunks Fluent Bit handed over (each attempt of a retried chunk counts)",
    chunk_bytes: "bytes of those chunks: with `flushes`, the chunk size Fluent Bit really hands over",
    truncated: "events cut to the maximum event size",
    retries: "in-flush retries of a failed call",
    batches_skipped: "batches of a retried chunk not sent again: an earlier attempt delivered them",
    throttled: "calls answered with throttling",
    groups_created: "log groups created",
    streams_created: "log streams created",
    retention_failures: "groups created whose retention policy could not be set",
    name_fallbacks: "events sent to a fallback name: a template variable could not be resolved",
    role_unresolved: "events written with role_arn (or the base credentials): their role_arn_template / role_arn_map_key had no value, or role_arn_map no entry",
    role_denied: "events written with role_arn (or the base credentials): the role they chose is not a valid role ARN or not in role_arn_allowed, so it was never assumed",
    roles_evicted: "roles chosen by records dropped from the instance's cache (role_cache_size) as least recently used",
    dropped_bad_record: "records skipped: not a [time, body] record",
    dropped_bad_body: "records skipped: body could not be decoded",
    dropped_damaged_chunk: "chunks whose tail was not msgpack (its records are lost)",
    dropped_empty: "records skipped: empty message",
    dropped_metrics: "metric values not written as EMF: exponential histograms, unknown types, values cmetrics overwrites",
    dropped_missing_key: "records skipped: log_key absent",
    dropped_rejected_too_old: "events CloudWatch rejected as too old",
    dropped_rejected_too_new: "events CloudWatch rejected as too new",
    dropped_rejected_expired: "events CloudWatch rejected as past retention",
    dropped_invalid: "events in batches CloudWatch refused as invalid",
    flushes_retry: "flushes answered RETRY",
}

impl Stats {
    pub fn add(counter: &AtomicU64, n: u64) {
        if n > 0 {
            counter.fetch_add(n, Relaxed);
        }
    }
}
