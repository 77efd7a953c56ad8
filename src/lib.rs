//! cloudwatch_rs: a Fluent Bit output plugin (proxy ABI) that ships logs to Amazon CloudWatch
//! Logs, across accounts with STS AssumeRole.
//!
//! ```text
//! Fluent Bit ─FlushCtx─▶ ffi ─▶ instance ─▶ core::plan (chunk → message → batch)
//!                                   └──────▶ aws::delivery ─▶ CloudWatch Logs
//!                                              aws::credentials (STS) ┘
//! ```

#![deny(unsafe_code)]

/// The edge: the `FLBPlugin*` exports, the only `unsafe` in the crate but for one call in
/// `aws::payload_hashes`, made once the CPU features it needs are detected.
#[allow(unsafe_code)]
mod ffi;

/// The pure core: plain functions over data, no I/O.
pub mod core;

/// The async shell over the AWS SDK.
pub mod aws;

/// A planned chunk's batches in flight.
pub mod dispatch;
/// One `[OUTPUT]` instance: start, the flush hand-off, exit.
pub mod instance;
/// Log lines in Fluent Bit's format.
pub mod log;
/// Secrets out of server text before it is logged.
pub mod redact;
/// The `role_arn_map` file: read at Init, re-read when it changes, the last good map kept.
pub mod role_map;
/// The tokio runtime's life across Register/Init/Unregister.
pub mod runtime;
/// Per-instance counters.
pub mod stats;
/// Fluent Bit is stopping: no more retries, a short window for calls under way.
pub mod stop;
/// Locks that survive a panic elsewhere.
mod sync;
