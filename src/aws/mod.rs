//! The async shell over the AWS SDK: clients, credentials, and delivery of planned batches.
//! It uses the core; the core never uses it. Imports run one way:
//! `delivery` → `put` → `signing`, `credentials`; `delivery`, `put`, `signing` → `body`; `delivery`, `body` → `payload_hashes`; `retry` → `errors`; `client` → `capped`, `trust`,
//! `credentials` → `errors`, `retry`; `metadata` → `capped`; `startup_check` → `client`,
//! `errors`; `roles` → `client`, `startup_check`; `delivery` → `roles`.

/// A PutLogEvents body in parts (head, the arena's run of events, tail), hashed and sent as one.
pub mod body;
/// Every answer read with a cap: the HTTPS client's answer bodies, counted as they arrive.
pub mod capped;
/// The CloudWatch Logs client of an instance: configuration, HTTPS, timeouts.
pub mod client;
/// The shared credential cache per identity, AssumeRole on top of the default chain.
pub mod credentials;
/// Sending one batch, creating a missing group/stream, retention.
pub mod delivery;
/// The failure taxonomy: what an answer means for the batch.
pub mod errors;
/// ECS task metadata and `credentials_endpoint` over plain HTTP.
pub mod metadata;
/// SigV4's payload hashes of a flush's bodies, several computed side by side.
pub mod payload_hashes;
/// PutLogEvents with a pre-encoded body, without the SDK's orchestrator; events rejected one by one.
pub mod put;
/// The retry loop and its backoff, within the flush deadline.
pub mod retry;
/// The writers of roles chosen per record: built on first use, least recently used dropped.
pub mod roles;
/// The endpoint, user agent, SigV4 signature and clock skew of a PutLogEvents request.
pub mod signing;
/// The startup check: identity, AssumeRole, may the group be written.
pub mod startup_check;
/// The CA certificates connections trust: the system's and `ca_bundle`'s, each once.
pub mod trust;
