//! cloudwatch_rs: a Fluent Bit output plugin (proxy ABI) that ships logs to Amazon CloudWatch
//! Logs, across accounts with STS AssumeRole.
//!
//! The data's path, one module per step:
//!
//! ```text
//! Fluent Bit ─FlushCtx─▶ ffi ─▶ instance ─▶ plan (chunk → message → batch) ─▶ delivery ─▶ CloudWatch Logs
//!                                                                  credentials (STS) ┘
//! ```

// The edge: the only unsafe code; Fluent Bit's structs stay in here.
mod ffi;

// The pure core: plain functions over data, no I/O, no globals.
/// Events → PutLogEvents batches (bytes + 26, 10,000 events, 24 h, order).
pub mod batch;
/// A flush buffer → records (both record forms, EventTime, group markers, damage).
pub mod chunk;
/// `[OUTPUT]` keys → `Config`; `KEYS`, the one list of keys.
pub mod config;
/// A metrics record → an Embedded Metric Format document (`metric_namespace`, `metric_dimensions`).
pub mod emf;
/// A record body → the message bytes (JSON or `log_key`), size limit.
pub mod message;
/// Zero-copy msgpack tokens.
pub mod msgpack;
/// Log group / stream names.
pub mod naming;
/// One chunk → sorted events, batches and counted drops.
pub mod plan;
/// What of a chunk was delivered, across Fluent Bit's retries.
pub mod progress;
/// A path of map keys into a record (`$kubernetes['labels']['app']`) and its value in a body.
pub mod record_path;
/// Log group / stream name templates (`$(tag[1])`, `$kubernetes['pod_name']`) and their rendering.
pub mod template;

// The async shell around the core.
/// The CloudWatch Logs client: default credential chain, AssumeRole on top.
pub mod credentials;
/// PutLogEvents, create-on-missing, retries within the flush deadline.
pub mod delivery;
/// One `[OUTPUT]` instance and its flush.
pub mod instance;
/// Log lines in Fluent Bit's format.
pub mod log;
/// ECS task metadata and `credentials_endpoint` over plain HTTP.
pub mod metadata;
/// The tokio runtime's life across Register/Init/Unregister.
pub mod runtime;
/// Per-instance counters.
pub mod stats;

pub use ffi::{FLB_ERROR, FLB_OK, FLB_RETRY};
