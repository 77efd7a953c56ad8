//! The credentials every call signs with.
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
//!
//! Roles chosen per record (`role_arn_template` / `role_arn_map`) get a cache each, keyed the
//! same way with the chosen role in place of `role_arn`, so they are shared alike.

use crate::aws::errors::{error_chain, CredentialsRefused, Refusal, ACCESS_DENIED};
use crate::aws::retry::jittered_backoff;
use crate::core::config::Config;
use crate::log::{log_error, log_info, log_warn, server_text};
use crate::sync::lock;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{future, ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use once_cell::sync::Lazy;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};
use tokio::sync::watch;

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
        IdentityKey::with_role(c, c.role_arn.as_deref())
    }

    /// `c`'s identity with `role` assumed on top of the base credentials instead of `role_arn`.
    fn with_role(c: &Config, role: Option<&str>) -> IdentityKey {
        IdentityKey {
            role_arn: role.map(str::to_owned),
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

fn registry() -> std::sync::MutexGuard<'static, HashMap<IdentityKey, Weak<CredentialCache>>> {
    lock(&REGISTRY)
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
    /// The last refresh's failure, for the callers that waited on it.
    error: Option<RefreshFailure>,
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
/// The same refusal is logged at most once in this long.
const REFUSAL_LOGGED_EVERY: Duration = Duration::from_secs(60);
const LOG: &str = "cloudwatch_rs";

/// Why a refresh ended without credentials.
#[derive(Debug, Clone)]
enum RefreshFailure {
    /// A refusal no retry fixes now (see `CredentialsRefused`).
    Refused(CredentialsRefused),
    /// Retried for `REFRESH_PATIENCE` without an answer.
    GaveUp(String),
}

impl RefreshFailure {
    fn message(&self) -> &str {
        match self {
            RefreshFailure::Refused(r) => &r.message,
            RefreshFailure::GaveUp(m) => m,
        }
    }

    /// As the SDK's error: a refusal stays findable by type among its sources.
    fn to_sdk(&self) -> CredentialsError {
        match self {
            RefreshFailure::Refused(r) => CredentialsError::provider_error(r.clone()),
            RefreshFailure::GaveUp(m) => CredentialsError::provider_error(m.clone()),
        }
    }
}

/// Who the base credentials belong to could not be learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalUnknown {
    /// GetCallerIdentity failed; the error chain.
    Failed(String),
    TimedOut,
}

impl std::fmt::Display for PrincipalUnknown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PrincipalUnknown::Failed(why) => write!(f, "GetCallerIdentity: {why}"),
            PrincipalUnknown::TimedOut => f.write_str("GetCallerIdentity timed out"),
        }
    }
}

impl std::error::Error for PrincipalUnknown {}

/// How long GetCallerIdentity may take when an error message wants the principal.
const PRINCIPAL_TIMEOUT: Duration = Duration::from_secs(5);

impl CredentialCache {
    /// The live cache for `config`'s identity, if an instance already made one.
    pub fn shared(config: &Config) -> Option<Arc<CredentialCache>> {
        let mut map = registry();
        map.retain(|_, weak| weak.strong_count() > 0);
        map.get(&IdentityKey::of(config)).and_then(Weak::upgrade)
    }

    /// Makes `cache` the one shared by every instance with `config`'s identity.
    pub fn share(config: &Config, cache: CredentialCache) -> Arc<CredentialCache> {
        let cache = Arc::new(cache);
        registry().insert(IdentityKey::of(config), Arc::downgrade(&cache));
        cache
    }

    /// The live cache of `role` assumed with `config`'s base identity, else `cache`, made the
    /// shared one. One lock decides, so instances and workers racing to a role they all just
    /// saw end with one cache, and one AssumeRole.
    pub fn share_role(config: &Config, role: &str, cache: CredentialCache) -> Arc<CredentialCache> {
        let mut map = registry();
        map.retain(|_, weak| weak.strong_count() > 0);
        let key = IdentityKey::with_role(config, Some(role));
        if let Some(live) = map.get(&key).and_then(Weak::upgrade) {
            return live;
        }
        let cache = Arc::new(cache);
        map.insert(key, Arc::downgrade(&cache));
        cache
    }

    /// The cache as the SDK's credentials provider.
    pub fn provider(self: &Arc<Self>) -> SharedCredentialsProvider {
        SharedCredentialsProvider::new(FromCache(self.clone()))
    }

    pub fn new(
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
        lock(&self.state)
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
                    if let Some(e) = &s.error {
                        return Err(e.to_sdk());
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
                    if let Some(refusal) = self.refusal(&e, &detail).await {
                        break Err(RefreshFailure::Refused(refusal));
                    }
                    if started.elapsed() >= REFRESH_PATIENCE {
                        break Err(RefreshFailure::GaveUp(format!(
                            "could not get credentials for {} within {:?}: {}",
                            self.describe, REFRESH_PATIENCE, detail
                        )));
                    }
                    if attempt == 0 {
                        log_warn!(LOG, "getting credentials for {} failed, retrying: {}", self.describe, detail);
                    }
                    tokio::time::sleep(jittered_backoff(attempt + 3)).await;
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
            Err(failure) => {
                let message = failure.message();
                let repeat = s.logged.as_ref().is_some_and(|(m, t)| m == message && t.elapsed() < REFUSAL_LOGGED_EVERY);
                if !repeat {
                    log_error!(LOG, "{}", message);
                    s.logged = Some((message.to_owned(), std::time::Instant::now()));
                }
                s.error = Some(failure);
                s.error_at = Some(std::time::Instant::now());
            }
        }
        drop(s);
        self.changed.send_modify(|g| *g += 1);
    }

    /// A failure no retry will fix, explained; `None` for one worth retrying. Decided on the
    /// error's types and STS's error code, never on its text.
    async fn refusal(&self, err: &CredentialsError, detail: &str) -> Option<CredentialsRefused> {
        let kind = refusal_kind(err)?;
        let message = match kind {
            Refusal::RoleDenied if self.role_arn.is_none() => {
                // the base chain's own role (web identity, a profile's role_arn) was refused
                format!(
                    "the base credentials' role was refused by STS: check the role named by AWS_ROLE_ARN or the \
                     profile, and its trust policy (for web identity: the OIDC provider and the token's audience) ({detail})"
                )
            }
            Refusal::RoleDenied => {
                let role = self.role_arn.as_deref().unwrap_or_default();
                let principal = match self.principal().await {
                    Ok(arn) => arn,
                    Err(why) => format!("an unidentified principal ({why})"),
                };
                format!(
                    "AssumeRole of {role} denied for {principal}: check that the role's trust policy allows this principal \
                     (and the ExternalId, if set) and that the principal's own policy allows sts:AssumeRole on the role ({detail})"
                )
            }
            Refusal::NoBaseCredentials => {
                let imds = if std::env::var("AWS_EC2_METADATA_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true")) {
                    "EC2 IMDS (disabled by AWS_EC2_METADATA_DISABLED)"
                } else {
                    "EC2 IMDS"
                };
                format!(
                    "no base AWS credentials found; tried: environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), shared \
                     config and credentials files (profile, credential_process), web identity (AWS_WEB_IDENTITY_TOKEN_FILE \
                     with AWS_ROLE_ARN), container credentials (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI / _FULL_URI), {imds}"
                )
            }
            Refusal::BaseRefused => {
                format!("the base credentials were refused by STS (check the access key and secret): {detail}")
            }
        };
        Some(CredentialsRefused { kind, message })
    }

    /// Who the base credentials belong to (GetCallerIdentity), for messages and the startup check.
    pub async fn principal(&self) -> Result<String, PrincipalUnknown> {
        match tokio::time::timeout(PRINCIPAL_TIMEOUT, self.sts.get_caller_identity().send()).await {
            Ok(Ok(id)) => Ok(id.arn().map_or_else(|| "an unknown principal".to_string(), server_text)),
            Ok(Err(e)) => Err(PrincipalUnknown::Failed(error_chain(&e))),
            Err(_) => Err(PrincipalUnknown::TimedOut),
        }
    }

    pub fn describe(&self) -> &str {
        &self.describe
    }
}

/// STS error codes of base credentials refused as such.
const BASE_REFUSED: &[&str] =
    &["InvalidClientTokenId", "SignatureDoesNotMatch", "UnrecognizedClient", "UnrecognizedClientException"];

/// What a credential provider's failure is, when it is a refusal: STS's error code on
/// AssumeRole / AssumeRoleWithWebIdentity, or the chain's own "no credentials" variant.
fn refusal_kind(err: &CredentialsError) -> Option<Refusal> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(code) = sts_code(e) {
            if ACCESS_DENIED.contains(&code) {
                return Some(Refusal::RoleDenied);
            }
            if BASE_REFUSED.contains(&code) {
                return Some(Refusal::BaseRefused);
            }
        }
        if let Some(CredentialsError::CredentialsNotLoaded(_)) = e.downcast_ref::<CredentialsError>() {
            return Some(Refusal::NoBaseCredentials);
        }
        current = e.source();
    }
    None
}

/// The error code of a failed STS call that provides credentials.
fn sts_code<'e>(e: &'e (dyn std::error::Error + 'static)) -> Option<&'e str> {
    use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
    use aws_sdk_sts::operation::assume_role::AssumeRoleError;
    use aws_sdk_sts::operation::assume_role_with_web_identity::AssumeRoleWithWebIdentityError;
    if let Some(e) = e.downcast_ref::<SdkError<AssumeRoleError>>() {
        return e.code();
    }
    e.downcast_ref::<SdkError<AssumeRoleWithWebIdentityError>>().and_then(|e| e.code())
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
