//! The CloudWatch Logs client and the credentials it signs with: aws-config's default chain
//! (environment, profile, web identity, ECS/container, IMDS) as the base, and with `role_arn`
//! an STS AssumeRole provider on top of it. The client's identity cache keeps the assumed-role
//! credentials and refreshes them shortly before they expire; every worker of the instance
//! shares that one client.

use crate::config::{Config, ConfigError};
use aws_config::retry::RetryConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_config::timeout::TimeoutConfig;
use aws_config::{AppName, BehaviorVersion, Region};
use aws_sdk_cloudwatchlogs::Client;
use std::time::Duration;

/// One attempt at an AWS call may take a third of the flush deadline (1 s to 10 s), so a slow
/// answer still leaves time to retry within the flush.
pub fn attempt_timeout(flush_timeout: Duration) -> Duration {
    (flush_timeout / 3).clamp(Duration::from_secs(1), Duration::from_secs(10))
}

/// Builds the client for one instance. Network I/O happens only on the first request; the
/// only I/O here is reading `ca_bundle`.
pub async fn logs_client(config: &Config) -> Result<Client, ConfigError> {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .operation_attempt_timeout(attempt_timeout(config.flush_timeout))
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(config.region.clone()))
        .timeout_config(timeouts);
    if let Ok(name) = AppName::new("cloudwatch_rs") {
        loader = loader.app_name(name);
    }
    if let Some(path) = &config.ca_bundle {
        loader = loader.http_client(https_client_trusting(path)?);
    }
    let base = loader.load().await;

    // Delivery retries itself, within the flush deadline; the SDK's own retries would stack.
    let mut logs = aws_sdk_cloudwatchlogs::config::Builder::from(&base).retry_config(RetryConfig::disabled());
    if let Some(role_arn) = &config.role_arn {
        let sts = match &config.sts_endpoint {
            Some(url) => base.to_builder().endpoint_url(url).build(),
            None => base.clone(),
        };
        let mut provider = AssumeRoleProvider::builder(role_arn).session_name(&config.role_session_name);
        if let Some(external_id) = &config.external_id {
            provider = provider.external_id(external_id);
        }
        logs = logs.credentials_provider(provider.configure(&sts).build().await);
    }
    if let Some(url) = &config.endpoint {
        logs = logs.endpoint_url(url);
    }
    Ok(Client::from_conf(logs.build()))
}

/// An HTTPS client that trusts the system's roots and the CA certificates in `path`.
fn https_client_trusting(path: &str) -> Result<aws_sdk_cloudwatchlogs::config::SharedHttpClient, ConfigError> {
    use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
    let bad = |why: &str| ConfigError {
        key: "ca_bundle",
        value: Some(path.to_owned()),
        allowed: format!("a readable PEM file of CA certificates ({why})"),
    };
    let pem = std::fs::read(path).map_err(|e| bad(&e.to_string()))?;
    if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
        return Err(bad("no certificate in it"));
    }
    let context = TlsContext::builder()
        .with_trust_store(TrustStore::default().with_pem_certificate(pem))
        .build()
        .map_err(|e| bad(&e.to_string()))?;
    Ok(aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(context)
        .build_https())
}
