//! The AWS clients of an instance and the credentials they sign with.
//!
//! The base is aws-config's default chain (environment, shared files with `profile` and
//! `credential_process`, web identity, ECS/EKS container credentials, IMDSv2); with `role_arn`,
//! STS AssumeRole on top of it. Either way the credentials go through a `CredentialCache`,
//! one per identity (role, external id, session, region, STS endpoint, profile) shared by every
//! instance and worker in the process:
//!
//! - refreshed ahead of time, at three quarters of their lifetime, in the background while the
//!   current ones stay in use; used only until a margin before they expire;
//! - one refresh in flight at a time; every caller that needs credentials waits for it instead
//!   of failing;
//! - STS throttling, 5xx and network errors retried with jittered backoff (up to a minute per
//!   refresh); refusals (access denied, no base credentials) reported at once, clearly;
//! - invalidated when CloudWatch refuses the credentials (ExpiredToken, UnrecognizedClient), so
//!   the retried request is signed with fresh ones.

use crate::aws::delivery::error_chain;
use crate::core::config::{Config, ConfigError, StartupCheck};
use crate::log::{log_error, log_info, log_warn};
use aws_config::identity::IdentityCache;
use aws_config::retry::RetryConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_config::timeout::TimeoutConfig;
use aws_config::{AppName, BehaviorVersion, Region};
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{future, ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_sdk_cloudwatchlogs::Client;
use once_cell::sync::Lazy;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};
use tokio::sync::watch;

/// One attempt at an AWS call may take a third of the flush deadline (1 s to 10 s), so a slow
/// answer still leaves time to retry within the flush.
pub fn attempt_timeout(flush_timeout: Duration) -> Duration {
    (flush_timeout / 3).clamp(Duration::from_secs(1), Duration::from_secs(10))
}

/// What an instance talks to AWS with.
pub struct Clients {
    pub logs: Client,
    pub credentials: Arc<CredentialCache>,
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
        loader =
            loader.credentials_provider(SharedCredentialsProvider::new(crate::aws::metadata::EndpointCredentials {
                url: url.clone(),
            }));
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

    let key = IdentityKey::of(config);
    let credentials = match registry_get(&key) {
        Some(shared) => shared,
        None => {
            let (provider, describe) = match &config.role_arn {
                Some(role_arn) => {
                    let mut p = AssumeRoleProvider::builder(role_arn)
                        .session_name(&config.role_session_name)
                        .session_length(config.role_session_duration);
                    if let Some(external_id) = &config.external_id {
                        p = p.external_id(external_id);
                    }
                    let p = SharedCredentialsProvider::new(p.configure(&sts_conf).build().await);
                    (p, format!("role {role_arn}"))
                }
                None => {
                    let p = match base.credentials_provider() {
                        Some(p) => p,
                        None => SharedCredentialsProvider::new(
                            aws_config::default_provider::credentials::DefaultCredentialsChain::builder()
                                .configure(
                                    aws_config::provider_config::ProviderConfig::default().with_http_client(http),
                                )
                                .build()
                                .await,
                        ),
                    };
                    (p, "base credentials".to_string())
                }
            };
            registry_put(key, CredentialCache::new(provider, describe, config.role_arn.clone(), sts.clone()))
        }
    };

    // Delivery retries itself, within the flush deadline; the SDK's own retries would stack.
    // Credentials come from the shared cache on every request (a clone of an Arc).
    let mut logs = aws_sdk_cloudwatchlogs::config::Builder::from(&base)
        .retry_config(RetryConfig::disabled())
        .identity_cache(IdentityCache::no_cache())
        .credentials_provider(SharedCredentialsProvider::new(FromCache(credentials.clone())));
    if let Some(url) = &config.endpoint {
        logs = logs.endpoint_url(url);
    }
    Ok(Clients { logs: Client::from_conf(logs.build()), credentials })
}

/// The HTTPS client every AWS call goes through: rustls with ring, the system's roots, and the
/// CA certificates in `ca_bundle` when set. Built here rather than taken from the SDK's default
/// (rustls with aws-lc) because ring is a fifth of aws-lc's code: the plugin's resident code
/// is most of its memory at steady state (README, Performance).
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
    Ok(aws_smithy_http_client::Builder::new().build_with_connector_fn(move |settings, components| {
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
    }))
}

/// Which credentials an instance needs; instances with equal keys share one cache.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct IdentityKey {
    role_arn: Option<String>,
    external_id: Option<String>,
    session_name: String,
    session_secs: u64,
    region: String,
    sts_endpoint: Option<String>,
    profile: Option<String>,
    ca_bundle: Option<String>,
    credentials_endpoint: Option<String>,
}

impl IdentityKey {
    fn of(c: &Config) -> IdentityKey {
        IdentityKey {
            role_arn: c.role_arn.clone(),
            external_id: c.external_id.clone(),
            session_name: c.role_session_name.clone(),
            session_secs: c.role_session_duration.as_secs(),
            region: c.region.clone(),
            sts_endpoint: c.sts_endpoint.clone(),
            profile: c.profile.clone(),
            ca_bundle: c.ca_bundle.clone(),
            credentials_endpoint: c.credentials_endpoint.clone(),
        }
    }
}

/// Live caches by identity; an entry goes when the last instance using it exits.
static REGISTRY: Lazy<Mutex<HashMap<IdentityKey, Weak<CredentialCache>>>> = Lazy::new(Default::default);

fn registry_get(key: &IdentityKey) -> Option<Arc<CredentialCache>> {
    let mut map = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
    map.retain(|_, weak| weak.strong_count() > 0);
    map.get(key).and_then(Weak::upgrade)
}

fn registry_put(key: IdentityKey, cache: CredentialCache) -> Arc<CredentialCache> {
    let cache = Arc::new(cache);
    REGISTRY.lock().unwrap_or_else(|p| p.into_inner()).insert(key, Arc::downgrade(&cache));
    cache
}

/// When cached credentials should be refreshed, and until when they may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub refresh_at: Option<SystemTime>,
    pub usable_until: Option<SystemTime>,
}

impl Schedule {
    /// Refresh at 3/4 of the lifetime; stop using them a tenth of the lifetime (at most a
    /// minute) before they expire, to allow for clock skew and the request's own duration.
    pub fn of(fetched: SystemTime, expiry: Option<SystemTime>) -> Schedule {
        let Some(expiry) = expiry else { return Schedule { refresh_at: None, usable_until: None } };
        let lifetime = expiry.duration_since(fetched).unwrap_or_default();
        Schedule {
            refresh_at: Some(fetched + lifetime * 3 / 4),
            usable_until: Some(expiry - (lifetime / 10).min(Duration::from_secs(60))),
        }
    }
}

struct Cached {
    credentials: Credentials,
    fetched: SystemTime,
    schedule: Schedule,
}

#[derive(Default)]
struct CacheState {
    current: Option<Cached>,
    refreshing: bool,
    /// The last refresh's refusal, for the callers that waited on it.
    error: Option<String>,
    /// When that refusal came: for a few seconds later callers get it without asking STS again.
    error_at: Option<std::time::Instant>,
    /// The refusal last logged, and when (one line per distinct refusal a minute).
    logged: Option<(String, std::time::Instant)>,
}

/// Credentials shared by every instance and worker with the same identity.
pub struct CredentialCache {
    provider: SharedCredentialsProvider,
    describe: String,
    role_arn: Option<String>,
    sts: aws_sdk_sts::Client,
    state: Mutex<CacheState>,
    changed: watch::Sender<u64>,
    pub refreshes: AtomicU64,
    pub refresh_failures: AtomicU64,
    pub invalidations: AtomicU64,
}

impl std::fmt::Debug for CredentialCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // never the credentials themselves
        f.debug_struct("CredentialCache").field("identity", &self.describe).finish()
    }
}

/// How long one refresh keeps retrying STS errors before it reports them to its waiters.
const REFRESH_PATIENCE: Duration = Duration::from_secs(60);
/// A refusal (access denied, no base credentials) is answered from memory this long.
const REFUSAL_HOLD: Duration = Duration::from_secs(5);
const LOG: &str = "cloudwatch_rs";

impl CredentialCache {
    fn new(
        provider: SharedCredentialsProvider,
        describe: String,
        role_arn: Option<String>,
        sts: aws_sdk_sts::Client,
    ) -> Self {
        CredentialCache {
            provider,
            describe,
            role_arn,
            sts,
            state: Mutex::new(CacheState::default()),
            changed: watch::channel(0).0,
            refreshes: AtomicU64::new(0),
            refresh_failures: AtomicU64::new(0),
            invalidations: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Credentials to sign with now, waiting for a refresh when there are none usable.
    pub async fn get(self: &Arc<Self>) -> Result<Credentials, CredentialsError> {
        let mut changed = self.changed.subscribe();
        let mut waited = false;
        loop {
            {
                let mut s = self.lock();
                let now = SystemTime::now();
                if let Some(c) = &s.current {
                    if c.schedule.usable_until.is_none_or(|t| now < t) {
                        let credentials = c.credentials.clone();
                        if c.schedule.refresh_at.is_some_and(|t| now >= t) && !s.refreshing {
                            s.refreshing = true;
                            self.spawn_refresh();
                        }
                        return Ok(credentials);
                    }
                }
                let fresh_refusal = s.error_at.is_some_and(|t| t.elapsed() < REFUSAL_HOLD);
                if waited || fresh_refusal {
                    if let Some(e) = s.error.clone() {
                        return Err(CredentialsError::provider_error(e));
                    }
                }
                if !s.refreshing {
                    s.refreshing = true;
                    s.error = None;
                    self.spawn_refresh();
                }
            }
            if changed.changed().await.is_err() {
                return Err(CredentialsError::provider_error("credential cache closed"));
            }
            waited = true;
        }
    }

    /// CloudWatch refused credentials used by a request that started at `started`: drop them,
    /// unless they were replaced since.
    pub fn invalidate(&self, started: SystemTime) {
        let mut s = self.lock();
        if s.current.as_ref().is_some_and(|c| c.fetched <= started) {
            s.current = None;
            self.invalidations.fetch_add(1, Relaxed);
        }
    }

    fn spawn_refresh(self: &Arc<Self>) {
        let this = self.clone();
        // Runs on its own, so a caller giving up (its attempt timed out) never cancels it.
        tokio::spawn(async move { this.refresh().await });
    }

    async fn refresh(self: Arc<Self>) {
        let started = tokio::time::Instant::now();
        let mut attempt = 0u32;
        let outcome = loop {
            match self.provider.provide_credentials().await {
                Ok(credentials) => break Ok(credentials),
                Err(e) => {
                    self.refresh_failures.fetch_add(1, Relaxed);
                    let detail = error_chain(&e);
                    if let Some(refusal) = self.refusal(&detail).await {
                        break Err(refusal);
                    }
                    if started.elapsed() >= REFRESH_PATIENCE {
                        break Err(format!(
                            "could not get credentials for {} within {:?}: {}",
                            self.describe, REFRESH_PATIENCE, detail
                        ));
                    }
                    if attempt == 0 {
                        log_warn!(LOG, "getting credentials for {} failed, retrying: {}", self.describe, detail);
                    }
                    tokio::time::sleep(crate::aws::delivery::jittered_backoff(attempt + 3)).await;
                    attempt += 1;
                }
            }
        };
        let mut s = self.lock();
        s.refreshing = false;
        match outcome {
            Ok(credentials) => {
                self.refreshes.fetch_add(1, Relaxed);
                let fetched = SystemTime::now();
                let schedule = Schedule::of(fetched, credentials.expiry());
                if attempt > 0 {
                    log_info!(LOG, "credentials for {} obtained after {} retries", self.describe, attempt);
                }
                s.current = Some(Cached { credentials, fetched, schedule });
                s.error = None;
                s.error_at = None;
            }
            Err(message) => {
                let repeat =
                    s.logged.as_ref().is_some_and(|(m, t)| *m == message && t.elapsed() < Duration::from_secs(60));
                if !repeat {
                    log_error!(LOG, "{}", message);
                    s.logged = Some((message.clone(), std::time::Instant::now()));
                }
                s.error = Some(message);
                s.error_at = Some(std::time::Instant::now());
            }
        }
        drop(s);
        self.changed.send_modify(|g| *g += 1);
    }

    /// A failure no retry will fix, explained; `None` for one worth retrying.
    async fn refusal(&self, detail: &str) -> Option<String> {
        if detail.contains("AccessDenied") || detail.contains("not authorized") {
            let role = self.role_arn.as_deref().unwrap_or("(none)");
            let principal = self.principal().await;
            return Some(format!(
                "AssumeRole of {role} denied for {principal}: check that the role's trust policy allows this principal \
                 (and the ExternalId, if set) and that the principal's own policy allows sts:AssumeRole on the role ({detail})"
            ));
        }
        if ["no credentials found in chain", "no providers in chain", "CredentialsNotLoaded"]
            .iter()
            .any(|m| detail.contains(m))
        {
            let imds = if std::env::var("AWS_EC2_METADATA_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true")) {
                "EC2 IMDS (disabled by AWS_EC2_METADATA_DISABLED)"
            } else {
                "EC2 IMDS"
            };
            return Some(format!(
                "no base AWS credentials found; tried: environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), shared \
                 config and credentials files (profile, credential_process), web identity (AWS_WEB_IDENTITY_TOKEN_FILE \
                 with AWS_ROLE_ARN), container credentials (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI / _FULL_URI), {imds}"
            ));
        }
        if ["InvalidClientTokenId", "SignatureDoesNotMatch", "UnrecognizedClient"].iter().any(|c| detail.contains(c)) {
            return Some(format!(
                "the base credentials were refused by STS (check the access key and secret): {detail}"
            ));
        }
        None
    }

    /// Who the base credentials belong to, for error messages.
    pub async fn principal(&self) -> String {
        match tokio::time::timeout(Duration::from_secs(5), self.sts.get_caller_identity().send()).await {
            Ok(Ok(id)) => id.arn().unwrap_or("an unknown principal").to_string(),
            Ok(Err(e)) => format!("an unidentified principal (GetCallerIdentity: {})", error_chain(&e)),
            Err(_) => "an unidentified principal (GetCallerIdentity timed out)".to_string(),
        }
    }

    pub fn describe(&self) -> &str {
        &self.describe
    }
}

/// The cache as the SDK's credentials provider.
#[derive(Debug)]
struct FromCache(Arc<CredentialCache>);

impl ProvideCredentials for FromCache {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.0.get())
    }
}

impl std::fmt::Debug for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clients").finish_non_exhaustive()
    }
}

/// `startup_check`: before the first record is at stake, resolve the base identity, get the
/// credentials to write with (AssumeRole), and ask CloudWatch whether the log group may be
/// written, with an empty PutLogEvents to a stream that does not exist (nothing is written).
/// Returns one line saying what is wrong, or `Ok` with what was found.
pub async fn startup_check(config: &Config, clients: &Clients) -> Result<String, String> {
    let group = config.probe_group();
    let cache = &clients.credentials;
    if let Err(e) = cache.get().await {
        return Err(format!("startup check: {}", error_chain(&e)));
    }
    let principal = cache.principal().await;
    if principal.starts_with("an unidentified") {
        return Err(format!("startup check: STS does not answer for the base credentials: {principal}"));
    }
    let probe = clients
        .logs
        .put_log_events()
        .log_group_name(&group)
        .log_stream_name(format!("cloudwatch_rs-startup-check-{}", std::process::id()))
        .set_log_events(Some(Vec::new()))
        .send()
        .await;
    let writer = if config.role_arn.is_some() { cache.describe().to_string() } else { principal.clone() };
    let verdict = match probe {
        Ok(_) => Ok(()),
        Err(e) => match crate::aws::delivery::classify(&e) {
            crate::aws::delivery::Failure::StreamMissing | crate::aws::delivery::Failure::Invalid(_) => Ok(()),
            crate::aws::delivery::Failure::GroupMissing if config.auto_create_group => Ok(()),
            crate::aws::delivery::Failure::GroupMissing => {
                Err(format!("log group '{}' does not exist and auto_create_group is off", group))
            }
            crate::aws::delivery::Failure::Denied(d) => {
                Err(format!("{writer} may not write to log group '{}' (needs logs:PutLogEvents): {d}", group))
            }
            other => Err(format!("CloudWatch Logs unreachable or refusing: {other:?}")),
        },
    };
    match verdict {
        Ok(()) => {
            Ok(format!("startup check passed: base identity {principal}, writing as {writer} to log group '{}'", group))
        }
        Err(why) => Err(format!("startup check: {why}")),
    }
}

/// What Init does with the check's answer.
pub fn report_startup_check(label: &str, mode: StartupCheck, result: Result<String, String>) -> Result<(), String> {
    match (mode, result) {
        (_, Ok(line)) => {
            log_info!(label, "{}", line);
            Ok(())
        }
        (StartupCheck::Strict, Err(line)) => Err(line),
        (_, Err(line)) => {
            log_warn!(label, "{} (startup_check is warn: starting anyway)", line);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_at_three_quarters_and_stop_before_expiry() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let s = Schedule::of(t0, Some(t0 + Duration::from_secs(3600)));
        assert_eq!(s.refresh_at, Some(t0 + Duration::from_secs(2700)));
        assert_eq!(s.usable_until, Some(t0 + Duration::from_secs(3540)));
        let short = Schedule::of(t0, Some(t0 + Duration::from_secs(10)));
        assert_eq!(short.refresh_at, Some(t0 + Duration::from_millis(7500)));
        assert_eq!(short.usable_until, Some(t0 + Duration::from_secs(9)));
        assert_eq!(Schedule::of(t0, None), Schedule { refresh_at: None, usable_until: None });
    }
}
