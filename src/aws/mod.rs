//! The async shell over the AWS SDK: clients, credentials, and delivery of planned batches.
//! It uses the core; the core never uses it.

/// The shared credential cache per identity, AssumeRole on top of the default chain.
pub mod credentials;
/// PutLogEvents, create-on-missing, retries within the flush deadline.
pub mod delivery;
/// ECS task metadata and `credentials_endpoint` over plain HTTP.
pub mod metadata;
