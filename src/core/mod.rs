//! The pure core: plain functions over data. No I/O, no globals, no AWS SDK, no tokio, and
//! nothing of the edge or the async shell: everything here is unit- and property-tested alone.
//!
//! The data's path through it: `chunk` (a flush buffer → records, with `msgpack` tokens) →
//! `message` (a record body → the message, written by `json`, or as `emf`) and `naming` (the
//! record's group and stream, from `template`s and `names`' rules) → `plan` (sorted events cut
//! into `batch`es) → `progress` (what a retried chunk already delivered). `config` is the
//! `[OUTPUT]` keys, parsed.

/// Events → PutLogEvents batches (bytes + 26, 10,000 events, 24 h, order) and the request body.
pub mod batch;
/// A flush buffer → records (both record forms, EventTime, group markers, damage).
pub mod chunk;
/// `[OUTPUT]` keys → `Config`; `KEYS`, the one table of keys.
pub mod config;
/// A `cpu`/`mem` input record → an Embedded Metric Format document (`metric_namespace`, …).
pub mod emf;
/// The Go plugin's own test vectors, ported.
#[cfg(test)]
mod go_plugin_vectors;
/// `log_group_name` / `log_stream_name` with `$(...)`, read exactly as the Go plugin reads them.
pub mod go_template;
/// msgpack → compact JSON, as is or already escaped for the request body; escaping, numbers.
pub mod json;
/// A record body → the message bytes (JSON or `log_key`), size limit.
pub mod message;
/// A metrics chunk (cmetrics msgpack) → EMF documents as log records, as the C plugin writes them.
pub mod metrics;
/// Zero-copy msgpack tokens.
pub mod msgpack;
/// CloudWatch's log group / stream name rules: length, characters, checks, sanitising.
pub mod names;
/// Log group / stream names per record: fixed, tag prefix or template with a fallback.
pub mod naming;
/// One chunk → sorted events, batches and counted drops.
pub mod plan;
/// What of a chunk was delivered, across Fluent Bit's retries.
pub mod progress;
/// Fluent Bit's record accessor as templates use it: parse (`$key-dash[0]`), lookup, values.
pub mod record_accessor;
/// A path of map keys into a record (`$kubernetes['labels']['app']`) and its value in a body.
pub mod record_path;
/// The role a record is written with: role ARN syntax, `role_arn_allowed`, `role_arn_map` files.
pub mod role;
/// Log group / stream name templates (`$(tag[1])`, `$kubernetes['pod_name']`) and their rendering.
pub mod template;
/// `http://` URLs split for one GET (metadata services, `credentials_endpoint`).
pub mod url;
