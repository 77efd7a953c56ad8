//! The AWS clients of an instance: the default chain's configuration (region, profile, user
//! agent, timeouts), the HTTPS client every call goes through, and the CloudWatch Logs client
//! that signs with the shared credential cache.

use crate::aws::capped::capped;
use crate::aws::credentials::CredentialCache;
use crate::aws::metadata::EndpointCredentials;
use crate::core::config::{Config, ConfigError};
use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::identity::IdentityCache;
use aws_config::provider_config::ProviderConfig;
use aws_config::retry::RetryConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_config::timeout::TimeoutConfig;
use aws_config::{AppName, BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_cloudwatchlogs::Client;
use std::sync::Arc;
use std::time::Duration;

/// One attempt at an AWS call may take a third of the flush deadline (1 s to 10 s), so a slow
/// answer still leaves time to retry within the flush.
pub fn attempt_timeout(flush_timeout: Duration) -> Duration {
    (flush_timeout / 3).clamp(Duration::from_secs(1), Duration::from_secs(10))
}

/// What an instance talks to AWS with.
pub struct Clients {
    /// The instance's own writer: `role_arn`, else the base credentials.
    pub own: Arc<Writer>,
    /// How a writer for a role chosen per record is built.
    pub roles: RoleFactory,
}

/// A CloudWatch Logs client and the credential cache it signs with.
pub struct Writer {
    pub logs: Client,
    pub credentials: Arc<CredentialCache>,
}

/// Builds the writer of a role chosen per record: AssumeRole of it on top of the base
/// credentials, through the cache shared per (base identity, role), and a client signing with it.
#[derive(Clone)]
pub struct RoleFactory {
    base: SdkConfig,
    sts_conf: SdkConfig,
    sts: aws_sdk_sts::Client,
    config: Arc<Config>,
}

impl RoleFactory {
    /// No network I/O: the role is assumed on the writer's first request.
    pub async fn writer(&self, role: &str) -> Writer {
        let provider = assume_role_provider(&self.config, role, &self.sts_conf).await;
        let cache = CredentialCache::new(provider, format!("role {role}"), Some(role.to_owned()), self.sts.clone());
        let credentials = CredentialCache::share_role(&self.config, role, cache);
        Writer { logs: logs_client(&self.base, &self.config, &credentials), credentials }
    }
}

/// Builds the clients for one instance. Network I/O happens on the first request only; the
/// only I/O here is reading `ca_bundle`.
pub async fn clients(config: &Config) -> Result<Clients, ConfigError> {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .operation_attempt_timeout(attempt_timeout(config.flush_timeout))
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(config.region.clone()))
        .timeout_config(timeouts);
    let app = match &config.extra_user_agent {
        Some(extra) => format!("cloudwatch_rs-{extra}"),
        None => "cloudwatch_rs".to_owned(),
    };
    if let Ok(name) = AppName::new(app) {
        loader = loader.app_name(name);
    }
    if let Some(url) = &config.credentials_endpoint {
        loader = loader.credentials_provider(SharedCredentialsProvider::new(EndpointCredentials { url: url.clone() }));
    }
    let http = https_client(config.ca_bundle.as_deref())?;
    loader = loader.http_client(http.clone());
    if let Some(profile) = &config.profile {
        loader = loader.profile_name(profile);
    }
    let base = loader.load().await;
    let sts_conf = match &config.sts_endpoint {
        Some(url) => base.to_builder().endpoint_url(url).build(),
        None => base.clone(),
    };
    let sts = aws_sdk_sts::Client::new(&sts_conf);

    let credentials = match CredentialCache::shared(config) {
        Some(shared) => shared,
        None => {
            let (provider, describe) = match &config.role_arn {
                Some(role_arn) => (assume_role_provider(config, role_arn, &sts_conf).await, format!("role {role_arn}")),
                None => {
                    let p = match base.credentials_provider() {
                        Some(p) => p,
                        None => SharedCredentialsProvider::new(
                            DefaultCredentialsChain::builder()
                                .configure(ProviderConfig::default().with_http_client(http))
                                .build()
                                .await,
                        ),
                    };
                    (p, "base credentials".to_string())
                }
            };
            let cache = CredentialCache::new(provider, describe, config.role_arn.clone(), sts.clone());
            CredentialCache::share(config, cache)
        }
    };
    let own = Arc::new(Writer { logs: logs_client(&base, config, &credentials), credentials });
    Ok(Clients { own, roles: RoleFactory { base, sts_conf, sts, config: Arc::new(config.clone()) } })
}

/// AssumeRole of `role` on top of the base credentials, with the instance's session settings.
async fn assume_role_provider(config: &Config, role: &str, sts_conf: &SdkConfig) -> SharedCredentialsProvider {
    let mut p = AssumeRoleProvider::builder(role)
        .session_name(&config.role_session_name)
        .session_length(config.role_session_duration);
    if let Some(external_id) = &config.external_id {
        p = p.external_id(external_id);
    }
    SharedCredentialsProvider::new(p.configure(sts_conf).build().await)
}

/// The CloudWatch Logs client signing with `credentials`. Delivery retries itself, within the
/// flush deadline; the SDK's own retries would stack. Credentials come from the shared cache on
/// every request (a clone of an Arc).
fn logs_client(base: &SdkConfig, config: &Config, credentials: &Arc<CredentialCache>) -> Client {
    let mut logs = aws_sdk_cloudwatchlogs::config::Builder::from(base)
        .retry_config(RetryConfig::disabled())
        .identity_cache(IdentityCache::no_cache())
        .credentials_provider(credentials.provider());
    if let Some(url) = &config.endpoint {
        logs = logs.endpoint_url(url);
    }
    Client::from_conf(logs.build())
}

/// The HTTPS client every AWS call goes through: rustls with ring, the system's roots, and the
/// CA certificates in `ca_bundle` when set; every answer read with a cap (`capped`). Built here rather than taken from the SDK's default
/// (rustls with aws-lc) because ring is much less code than aws-lc, and the plugin's resident
/// code is most of its memory at steady state (docs/PERFORMANCE.md).
fn https_client(ca_bundle: Option<&str>) -> Result<aws_sdk_cloudwatchlogs::config::SharedHttpClient, ConfigError> {
    use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
    let bad = |why: String| ConfigError {
        key: "ca_bundle",
        value: ca_bundle.map(str::to_owned),
        allowed: format!("a readable PEM file of CA certificates ({why})"),
    };
    let mut trust = TrustStore::default();
    if let Some(path) = ca_bundle {
        let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
            return Err(bad("no certificate in it".into()));
        }
        trust = trust.with_pem_certificate(pem);
    }
    let context = TlsContext::builder().with_trust_store(trust).build().map_err(|e| bad(e.to_string()))?;
    // Built connector by connector (as the SDK's default client is) so that HTTPS_PROXY /
    // HTTP_PROXY / NO_PROXY keep applying.
    Ok(capped(aws_smithy_http_client::Builder::new().build_with_connector_fn(move |settings, components| {
        let mut builder = aws_smithy_http_client::Connector::builder();
        builder.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            builder.set_sleep_impl(components.sleep_impl());
        }
        builder
            .proxy_config(aws_smithy_http_client::proxy::ProxyConfig::from_env())
            .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
            .tls_context(context.clone())
            .build()
    })))
}

impl std::fmt::Debug for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clients").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The core checks `extra_user_agent` with its own copy of the SDK's `AppName` rule: the two
    /// must agree, so an SDK upgrade that changes the rule is caught here.
    #[test]
    fn extra_user_agent_is_checked_as_the_sdk_checks_an_app_name() {
        let chars = (0u8..128).map(char::from).chain(['é', 'ü', '€', '\u{200b}']);
        for c in chars {
            let extra = format!("a{c}");
            let ours = Config::from_lookup(
                |k| match k {
                    "log_group_name" => Some("g".into()),
                    "log_stream_name" => Some("s".into()),
                    "extra_user_agent" => Some(extra.clone()),
                    _ => None,
                },
                |k| (k == "AWS_REGION").then(|| "us-east-1".into()),
            )
            .is_ok();
            let sdk = AppName::new(format!("cloudwatch_rs-{extra}")).is_ok();
            assert_eq!(ours, sdk, "extra_user_agent {extra:?}");
        }
    }
}
