//! The CloudWatch Logs client and the credentials it signs with: aws-config's default chain
//! (environment, profile, web identity, ECS/container, IMDS) as the base, and with `role_arn`
//! an STS AssumeRole provider on top of it. The client's identity cache keeps the assumed-role
//! credentials and refreshes them shortly before they expire; every worker of the instance
//! shares that one client.

use crate::config::Config;
use aws_config::retry::RetryConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_config::timeout::TimeoutConfig;
use aws_config::{AppName, BehaviorVersion, Region};
use aws_sdk_cloudwatchlogs::Client;
use std::time::Duration;

/// One attempt at any AWS call may take this long; the flush deadline bounds the sum.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds the client for one instance. Does no network I/O: credentials are resolved on the
/// first request.
pub async fn logs_client(config: &Config) -> Client {
    let mut loader =
        aws_config::defaults(BehaviorVersion::latest()).region(Region::new(config.region.clone())).timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .build(),
        );
    if let Ok(name) = AppName::new("cloudwatch_rs") {
        loader = loader.app_name(name);
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
    Client::from_conf(logs.build())
}
