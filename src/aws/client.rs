//! The AWS clients of an instance: the default chain's configuration (region, profile, user
//! agent, timeouts), the HTTPS client every call goes through, and the CloudWatch Logs client
//! that signs with the shared credential cache.

use crate::aws::capped::{capped, capped_connector};
use crate::aws::credentials::CredentialCache;
use crate::aws::metadata::EndpointCredentials;
use crate::aws::put::PutSender;
use crate::aws::signing::{ClockSkew, EndpointSettings, Target, UserAgent};
use crate::aws::trust;
use crate::core::config::{Config, ConfigError};
use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::identity::IdentityCache;
use aws_config::provider_config::ProviderConfig;
use aws_config::retry::RetryConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_config::timeout::TimeoutConfig;
use aws_config::{AppName, BehaviorVersion, Region};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_cloudwatchlogs::Client;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::http::{HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector};
use aws_smithy_runtime_api::client::runtime_components::{RuntimeComponents, RuntimeComponentsBuilder};
use aws_smithy_types::config_bag::ConfigBag;
use aws_types::sdk_config::SdkConfig;
use aws_types::service_config::ServiceConfigKey;
use std::sync::Arc;
use std::time::Duration;

/// One attempt at an AWS call may take a third of the flush deadline (1 s to 10 s), so a slow
/// answer still leaves time to retry within the flush.
pub fn attempt_timeout(flush_timeout: Duration) -> Duration {
    (flush_timeout / 3).clamp(Duration::from_secs(1), Duration::from_secs(10))
}

/// Every connection attempt's bound.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// What an instance talks to AWS with.
pub struct Clients {
    /// The instance's own writer: `role_arn`, else the base credentials.
    pub own: Arc<Writer>,
    /// How a writer for a role chosen per record is built.
    pub roles: RoleFactory,
}

/// What one identity writes with: PutLogEvents without the SDK's orchestrator, the SDK's
/// client for every other CloudWatch Logs call, and the credential cache both sign with.
pub struct Writer {
    pub put: PutSender,
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
    http: SharedHttpClient,
    /// Every role's PutLogEvents shares the instance's connection pool.
    put_connector: SharedHttpConnector,
}

impl RoleFactory {
    /// No network I/O: the role is assumed on the writer's first request.
    pub async fn writer(&self, role: &str) -> Writer {
        let provider = assume_role_provider(&self.config, role, &self.sts_conf).await;
        let cache = CredentialCache::new(provider, format!("role {role}"), Some(role.to_owned()), self.sts.clone());
        let credentials = CredentialCache::share_role(&self.config, role, cache);
        writer(&self.base, &self.config, credentials, &self.http, self.put_connector.clone())
    }
}

/// Builds the clients for one instance. Network I/O happens on the first request only; the
/// only I/O here is reading `ca_bundle`.
pub async fn clients(config: &Config) -> Result<Clients, ConfigError> {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
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
    let (http, put_connector) = https_client(config.ca_bundle.as_deref())?;
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
                                .configure(ProviderConfig::default().with_http_client(http.clone()))
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
    let own = Arc::new(writer(&base, config, credentials, &http, put_connector.clone()));
    let config = Arc::new(config.clone());
    Ok(Clients { own, roles: RoleFactory { base, sts_conf, sts, config, http, put_connector } })
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

/// The writer signing with `credentials`: the SDK's CloudWatch Logs client and the lean
/// PutLogEvents sender, both for the same endpoint. Delivery retries itself, within the flush
/// deadline; the SDK's own retries would stack. Credentials come from the shared cache on every
/// request (a clone of an Arc).
fn writer(
    base: &SdkConfig,
    config: &Config,
    credentials: Arc<CredentialCache>,
    http: &SharedHttpClient,
    put_connector: SharedHttpConnector,
) -> Writer {
    let mut logs = aws_sdk_cloudwatchlogs::config::Builder::from(base)
        .retry_config(RetryConfig::disabled())
        .identity_cache(IdentityCache::no_cache())
        .credentials_provider(credentials.provider());
    if let Some(url) = &config.endpoint {
        logs = logs.endpoint_url(url);
    }
    let endpoint = EndpointSettings {
        region: config.region.clone(),
        url: endpoint_url(config, base),
        use_fips: base.use_fips().unwrap_or(false),
        use_dual_stack: base.use_dual_stack().unwrap_or(false),
    };
    let logs = logs.build();
    let put = PutSender {
        target: Target::resolve(&endpoint),
        user_agent: UserAgent::new(
            logs.app_name(),
            endpoint.url.is_some(),
            http.connector_metadata().map(|m| m.to_string()),
        ),
        connector: put_connector,
        attempt_timeout: attempt_timeout(config.flush_timeout),
        credentials: credentials.clone(),
        skew: ClockSkew::default(),
    };
    Writer { put, logs: Client::from_conf(logs), credentials }
}
/// The endpoint URL the SDK's client for `config` uses, as its config builder picks it from
/// `base`: ours, else `AWS_ENDPOINT_URL_CLOUDWATCH_LOGS` / the profile's service section, else
/// `AWS_ENDPOINT_URL` / the profile's `endpoint_url`.
fn endpoint_url(config: &Config, base: &SdkConfig) -> Option<String> {
    if let Some(url) = &config.endpoint {
        return Some(url.clone());
    }
    if base.get_origin("endpoint_url").is_client_config() {
        return base.endpoint_url().map(str::to_owned);
    }
    let key = ServiceConfigKey::builder().service_id("CloudWatch Logs").env("AWS_ENDPOINT_URL").profile("endpoint_url");
    base.service_config()
        .zip(key.build().ok())
        .and_then(|(service, key)| service.load_config(key))
        .or_else(|| base.endpoint_url().map(str::to_owned))
}

/// The HTTPS client every AWS call goes through: rustls with ring, the system's roots, and the
/// CA certificates in `ca_bundle` when set; every answer read with a cap (`capped`). Built here
/// rather than taken from the SDK's default (rustls with aws-lc) because ring is much less code
/// than aws-lc, and the plugin's resident code is most of its memory at steady state
/// (docs/PERFORMANCE.md).
/// Also its connector with PutLogEvents' settings (`CONNECT_TIMEOUT`, no read timeout: the
/// attempt timeout bounds the rest), which the client's calls with the same settings share.
fn https_client(
    ca_bundle: Option<&str>,
) -> Result<(aws_sdk_cloudwatchlogs::config::SharedHttpClient, SharedHttpConnector), ConfigError> {
    use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
    let bad = |why: &dyn std::fmt::Display| ConfigError {
        key: "ca_bundle",
        value: ca_bundle.map(str::to_owned),
        allowed: format!("a readable PEM file of CA certificates ({why})"),
    };
    let mut trusted = TrustStore::default();
    if let Some(path) = ca_bundle {
        let certs = std::fs::read(path)
            .map_err(|e| trust::BundleError::Unreadable(e.to_string()))
            .and_then(|pem| trust::read_bundle(&pem))
            .map_err(|why| bad(&why))?;
        trusted = trusted.with_pem_certificate(trust::pem_of(&certs));
    }
    // (building a context fails only for other TLS providers)
    let context = TlsContext::builder().with_trust_store(trusted).build().map_err(|e| bad(&e))?;
    // Built connector by connector (as the SDK's default client is) so that HTTPS_PROXY /
    // HTTP_PROXY / NO_PROXY keep applying.
    let connector = move |settings: Option<&HttpConnectorSettings>, sleep| {
        let mut builder = aws_smithy_http_client::Connector::builder();
        builder.set_connector_settings(settings.cloned());
        builder.set_sleep_impl(sleep);
        builder
            .proxy_config(aws_smithy_http_client::proxy::ProxyConfig::from_env())
            .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
            .tls_context(context.clone())
            .build()
    };
    // without a sleep implementation the connector takes tokio's, as the SDK's components give
    let put_settings = HttpConnectorSettings::builder().connect_timeout(CONNECT_TIMEOUT).build();
    let put = SharedHttpConnector::new(connector(Some(&put_settings), None));
    let rest = aws_smithy_http_client::Builder::new().build_with_connector_fn(move |settings, components| {
        connector(settings, components.and_then(|c| c.sleep_impl()))
    });
    let client = SharedHttpClient::new(SharingPut { settings: put_settings, put: put.clone(), rest });
    Ok((capped(client), capped_connector(put)))
}

/// The SDK's HTTPS client, except that calls with PutLogEvents' settings (every CloudWatch Logs
/// and STS call: the same timeouts) go through PutLogEvents' connector. One connection pool and
/// one root store per instance rather than two: each connector parses the system's CA
/// certificates into its own store (some 100 KiB, held for the connector's life) and keeps its
/// own idle connection.
#[derive(Debug)]
struct SharingPut {
    settings: HttpConnectorSettings,
    put: SharedHttpConnector,
    rest: SharedHttpClient,
}

impl HttpClient for SharingPut {
    fn http_connector(&self, settings: &HttpConnectorSettings, components: &RuntimeComponents) -> SharedHttpConnector {
        let same = settings.connect_timeout() == self.settings.connect_timeout()
            && settings.read_timeout() == self.settings.read_timeout();
        if same {
            self.put.clone()
        } else {
            self.rest.http_connector(settings, components)
        }
    }

    fn validate_base_client_config(
        &self,
        components: &RuntimeComponentsBuilder,
        cfg: &ConfigBag,
    ) -> Result<(), BoxError> {
        self.rest.validate_base_client_config(components, cfg)
    }

    fn validate_final_config(&self, components: &RuntimeComponents, cfg: &ConfigBag) -> Result<(), BoxError> {
        self.rest.validate_final_config(components, cfg)
    }

    fn connector_metadata(&self) -> Option<aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata> {
        self.rest.connector_metadata()
    }
}

impl std::fmt::Debug for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clients").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connector that fails every call with its name, to tell connectors apart.
    #[derive(Debug)]
    struct Named(&'static str);

    impl aws_smithy_runtime_api::client::http::HttpConnector for Named {
        fn call(
            &self,
            _: aws_smithy_runtime_api::client::orchestrator::HttpRequest,
        ) -> aws_smithy_runtime_api::client::http::HttpConnectorFuture {
            let err = aws_smithy_runtime_api::client::result::ConnectorError::other(self.0.into(), None);
            aws_smithy_runtime_api::client::http::HttpConnectorFuture::ready(Err(err))
        }
    }

    #[derive(Debug)]
    struct Rest;

    impl HttpClient for Rest {
        fn http_connector(&self, _: &HttpConnectorSettings, _: &RuntimeComponents) -> SharedHttpConnector {
            SharedHttpConnector::new(Named("rest"))
        }
    }

    fn which(connector: SharedHttpConnector) -> String {
        use aws_smithy_runtime_api::client::http::HttpConnector;
        let request = aws_smithy_runtime_api::client::orchestrator::HttpRequest::empty();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let err = rt.block_on(connector.call(request)).unwrap_err();
        std::error::Error::source(&err).map(|e| e.to_string()).unwrap_or_default()
    }

    /// Every call with PutLogEvents' settings (the SDK's CloudWatch Logs and STS calls) goes
    /// through PutLogEvents' connector; others (the metadata credential sources' shorter
    /// timeouts) through the SDK's.
    #[test]
    fn calls_with_the_put_settings_share_its_connector() {
        let settings = HttpConnectorSettings::builder().connect_timeout(CONNECT_TIMEOUT).build();
        let client = SharingPut {
            settings: settings.clone(),
            put: SharedHttpConnector::new(Named("put")),
            rest: SharedHttpClient::new(Rest),
        };
        let components = RuntimeComponentsBuilder::for_tests().build().unwrap();
        assert_eq!(which(client.http_connector(&settings, &components)), "put");
        let shorter = HttpConnectorSettings::builder().connect_timeout(Duration::from_secs(1)).build();
        assert_eq!(which(client.http_connector(&shorter, &components)), "rest");
        let read = HttpConnectorSettings::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(Duration::from_secs(1))
            .build();
        assert_eq!(which(client.http_connector(&read, &components)), "rest");
    }

    /// A `ca_bundle` with a certificate the TLS client cannot use fails Init naming the key, the
    /// file and which certificate, instead of panicking in the client at the first connection.
    #[test]
    fn a_bad_ca_bundle_fails_with_the_certificate_named() {
        let dir = std::env::temp_dir().join(format!("cwrs-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = cwrs_aws_standins::strict::new_ca_pem();
        let path = dir.join("bundle.pem");
        std::fs::write(&path, format!("{good}-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")).unwrap();
        let path = path.to_str().unwrap();
        let err = https_client(Some(path)).map(|_| ()).unwrap_err();
        assert_eq!((err.key, err.value.as_deref()), ("ca_bundle", Some(path)));
        assert!(err.allowed.contains("certificate 2"), "{}", err.allowed);
        std::fs::write(path, &good).unwrap();
        assert!(https_client(Some(path)).is_ok());
        let err = https_client(Some("/nonexistent/ca.pem")).map(|_| ()).unwrap_err();
        assert_eq!(err.key, "ca_bundle");
        let _ = std::fs::remove_dir_all(&dir);
    }

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
