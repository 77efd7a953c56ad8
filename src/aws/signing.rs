//! What the SDK's orchestrator would do for one PutLogEvents request, done once where it can be:
//! the endpoint resolved (with the SDK's own resolver) and the user agent built when the
//! instance starts; per request only the headers, the SigV4 signature (`aws-sigv4`, as the SDK
//! signs) and the clock skew the SDK would correct for. PutLogEvents is the only call made at
//! the rate of the logs; the orchestrator's per-call machinery (config bag, interceptors,
//! endpoint rules, user agent) cost more CPU than the signature itself (docs/DESIGN.md).

use crate::aws::body::PutBody;
use aws_credential_types::credential_feature::AwsCredentialFeature;
use aws_credential_types::Credentials;
use aws_runtime::user_agent::{AdditionalMetadata, ApiMetadata, AwsUserAgent, BusinessMetric};
use aws_sdk_cloudwatchlogs::config::endpoint::{DefaultResolver, Params, ResolveEndpoint};
use aws_sdk_cloudwatchlogs::config::http::HttpRequest;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningParams, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::date_time::Format;
use aws_smithy_types::endpoint::Endpoint;
use aws_smithy_types::{DateTime, Document};
use aws_types::app_name::AppName;
use aws_types::os_shim_internal::Env;
use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// The name CloudWatch Logs is signed for (the SDK's `signing_name()`).
const SIGNING_NAME: &str = "logs";
const TARGET: &str = "Logs_20140328.PutLogEvents";
const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// The endpoint settings of the client, as `client.rs` configures it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointSettings {
    pub region: String,
    /// `endpoint`, or the environment's / profile's `AWS_ENDPOINT_URL[_CLOUDWATCH_LOGS]`.
    pub url: Option<String>,
    pub use_fips: bool,
    pub use_dual_stack: bool,
}

/// Where PutLogEvents goes and how it is signed: resolved once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `POST` to this URI (the endpoint's URL with the path `/`, merged as the SDK merges it).
    pub uri: String,
    pub signing_region: String,
    pub signing_name: String,
}

/// The endpoint could not be resolved (a bad region or URL): the client could not send either.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoEndpoint(pub String);

impl std::fmt::Display for NoEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no CloudWatch Logs endpoint: {}", self.0)
    }
}

impl std::error::Error for NoEndpoint {}

impl Target {
    /// The SDK's endpoint rules for `settings`, run once.
    pub fn resolve(settings: &EndpointSettings) -> Result<Target, NoEndpoint> {
        let params = Params::builder()
            .region(settings.region.clone())
            .use_fips(settings.use_fips)
            .use_dual_stack(settings.use_dual_stack)
            .set_endpoint(settings.url.clone())
            .build()
            .map_err(|e| NoEndpoint(e.to_string()))?;
        let endpoint = resolve_now(&params)?;
        let mut request = HttpRequest::new(SdkBody::empty());
        request.set_uri("/").map_err(|e| NoEndpoint(e.to_string()))?;
        request.uri_mut().set_endpoint(endpoint.url()).map_err(|e| NoEndpoint(e.to_string()))?;
        let (region, name) = sigv4_overrides(&endpoint);
        Ok(Target {
            uri: request.uri().to_owned(),
            signing_region: region.unwrap_or_else(|| settings.region.clone()),
            signing_name: name.unwrap_or_else(|| SIGNING_NAME.to_owned()),
        })
    }
}

/// The default resolver's future is ready at once (the rules are plain code); polled once here.
fn resolve_now(params: &Params) -> Result<Endpoint, NoEndpoint> {
    let resolver = DefaultResolver::new();
    let future = resolver.resolve_endpoint(params);
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut future = std::pin::pin!(future);
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(endpoint) => endpoint.map_err(|e| NoEndpoint(e.to_string())),
        std::task::Poll::Pending => Err(NoEndpoint("the endpoint resolver did not answer at once".into())),
    }
}

/// The signing region and name an endpoint's `authSchemes` property sets for SigV4, as the
/// SDK's signer reads them.
fn sigv4_overrides(endpoint: &Endpoint) -> (Option<String>, Option<String>) {
    let Some(Document::Array(schemes)) = endpoint.properties().get("authSchemes") else { return (None, None) };
    for scheme in schemes {
        let Document::Object(scheme) = scheme else { continue };
        if !matches!(scheme.get("name"), Some(Document::String(n)) if n == "sigv4") {
            continue;
        }
        let text = |key: &str| match scheme.get(key) {
            Some(Document::String(s)) => Some(s.clone()),
            _ => None,
        };
        return (text("signingRegion"), text("signingName"));
    }
    (None, None)
}

/// The `user-agent` / `x-amz-user-agent` value the SDK's `UserAgentInterceptor` writes for this
/// client: built once, then per distinct set of credential features (the SDK adds those of the
/// credentials it signs with).
#[derive(Debug)]
pub struct UserAgent {
    base: AwsUserAgent,
    /// The value for the last credentials' features.
    last: Mutex<(Vec<AwsCredentialFeature>, bool, String)>,
}

impl UserAgent {
    /// `endpoint_override`: an endpoint URL was configured (the SDK's `EndpointOverride`
    /// metric); `connector`: the HTTP client's `connector_metadata`, as text.
    pub fn new(app_name: Option<&AppName>, endpoint_override: bool, connector: Option<String>) -> UserAgent {
        let api = ApiMetadata::new("cloudwatchlogs", aws_sdk_cloudwatchlogs::meta::PKG_VERSION);
        let mut base = AwsUserAgent::new_from_environment(Env::real(), api);
        if let Some(app) = app_name {
            base.set_app_name(app.clone());
        }
        // the SDK's order: its Smithy features (retries are "disabled": standard mode, one
        // attempt), then its AWS features, then the credentials'
        base.add_business_metric(BusinessMetric::RetryModeStandard);
        if endpoint_override {
            base.add_business_metric(BusinessMetric::EndpointOverride);
        }
        if let Some(metadata) = connector.and_then(|c| AdditionalMetadata::new(c).ok()) {
            base.add_additional_metadata(metadata);
        }
        let value = base.ua_header();
        UserAgent { base, last: Mutex::new((Vec::new(), false, value)) }
    }

    /// The header value for requests signed with `credentials`.
    pub fn value(&self, credentials: &Credentials) -> String {
        let features = credentials.get_property::<Vec<AwsCredentialFeature>>().map_or(&[][..], Vec::as_slice);
        let account = credentials.account_id().is_some();
        let mut last = crate::sync::lock(&self.last);
        if last.0 != features || last.1 != account {
            let mut ua = self.base.clone();
            let mut added: Vec<BusinessMetric> =
                vec![BusinessMetric::RetryModeStandard, BusinessMetric::EndpointOverride];
            let account_feature = account.then_some(&AwsCredentialFeature::ResolvedAccountId);
            for metric in features.iter().chain(account_feature).filter_map(credential_metric) {
                if !added.contains(&metric) {
                    added.push(metric.clone());
                    ua.add_business_metric(metric);
                }
            }
            *last = (features.to_vec(), account, ua.ua_header());
        }
        last.2.clone()
    }
}

/// The metric the SDK reports for a credential feature (aws-runtime's own table, which it does
/// not export).
fn credential_metric(feature: &AwsCredentialFeature) -> Option<BusinessMetric> {
    use AwsCredentialFeature as F;
    use BusinessMetric as M;
    Some(match feature {
        F::ResolvedAccountId => M::ResolvedAccountId,
        F::CredentialsCode => M::CredentialsCode,
        F::CredentialsEnvVars => M::CredentialsEnvVars,
        F::CredentialsEnvVarsStsWebIdToken => M::CredentialsEnvVarsStsWebIdToken,
        F::CredentialsStsAssumeRole => M::CredentialsStsAssumeRole,
        F::CredentialsStsAssumeRoleSaml => M::CredentialsStsAssumeRoleSaml,
        F::CredentialsStsAssumeRoleWebId => M::CredentialsStsAssumeRoleWebId,
        F::CredentialsStsFederationToken => M::CredentialsStsFederationToken,
        F::CredentialsStsSessionToken => M::CredentialsStsSessionToken,
        F::CredentialsProfile => M::CredentialsProfile,
        F::CredentialsProfileSourceProfile => M::CredentialsProfileSourceProfile,
        F::CredentialsProfileNamedProvider => M::CredentialsProfileNamedProvider,
        F::CredentialsProfileStsWebIdToken => M::CredentialsProfileStsWebIdToken,
        F::CredentialsProfileSso => M::CredentialsProfileSso,
        F::CredentialsSso => M::CredentialsSso,
        F::CredentialsProfileProcess => M::CredentialsProfileProcess,
        F::CredentialsProcess => M::CredentialsProcess,
        F::CredentialsHttp => M::CredentialsHttp,
        F::CredentialsImds => M::CredentialsImds,
        F::BearerServiceEnvVars => M::BearerServiceEnvVars,
        F::S3ExpressBucket => M::S3ExpressBucket,
        F::CredentialsProfileLogin => M::CredentialsProfileLogin,
        F::CredentialsLogin => M::CredentialsLogin,
        _ => return None,
    })
}

/// The difference between the service's clock and ours, learned from answers' `Date` header and
/// added to the signing time, as the SDK's `ServiceClockSkewInterceptor` does: a host whose
/// clock drifted still signs requests CloudWatch accepts.
#[derive(Debug, Default)]
pub struct ClockSkew {
    millis: AtomicI64,
}

/// Answers slower than this say too little about the server's clock (the SDK's bound).
const MAX_TRUSTED_REQUEST_DURATION: Duration = Duration::from_secs(15 * 60);

impl ClockSkew {
    /// The time to sign at.
    pub fn signing_time(&self, now: SystemTime) -> SystemTime {
        let skew = self.millis.load(Relaxed);
        let shifted = if skew >= 0 {
            now.checked_add(Duration::from_millis(skew as u64))
        } else {
            now.checked_sub(Duration::from_millis(skew.unsigned_abs()))
        };
        shifted.unwrap_or(now)
    }

    /// Learns from an answer sent at `sent` whose head arrived at `received`: the server's time
    /// against the midpoint of the round trip. Cached answers (`age`) and those without a
    /// readable `Date` are ignored.
    pub fn observe(&self, headers: &aws_smithy_runtime_api::http::Headers, sent: SystemTime, received: SystemTime) {
        if headers.get("age").is_some() {
            return;
        }
        let Some(server) = headers
            .get("date")
            .and_then(|d| DateTime::from_str(d, Format::HttpDate).ok())
            .and_then(|d| SystemTime::try_from(d).ok())
        else {
            return;
        };
        let elapsed = received.duration_since(sent).unwrap_or_default();
        if elapsed > MAX_TRUSTED_REQUEST_DURATION {
            return;
        }
        let midpoint = sent + elapsed / 2;
        let skew = match server.duration_since(midpoint) {
            Ok(d) => d.as_millis() as i64,
            Err(e) => -(e.duration().as_millis() as i64),
        };
        self.millis.store(skew, Relaxed);
    }
}

/// A PutLogEvents request for `body`, signed with `credentials` at `time`; `user_agent` is the
/// value for both user-agent headers. The payload hash is taken over the body's parts in turn
/// (`PutBody::sha256_hex`): the same as the signer's hash of their concatenation.
pub fn signed_put_request(
    target: &Target,
    body: PutBody,
    log_format: Option<&str>,
    user_agent: &str,
    credentials: Credentials,
    time: SystemTime,
) -> Result<HttpRequest, Box<dyn std::error::Error + Send + Sync>> {
    let mut request = HttpRequest::new(SdkBody::empty());
    request.set_method("POST")?;
    request.set_uri(target.uri.as_str())?;
    let headers = request.headers_mut();
    headers.try_insert("content-type", CONTENT_TYPE)?;
    headers.try_insert("x-amz-target", TARGET)?;
    headers.try_insert("content-length", body.len().to_string())?;
    if let Some(format) = log_format {
        headers.try_insert("x-amzn-logs-format", format.to_owned())?;
    }
    headers.try_insert("user-agent", user_agent.to_owned())?;
    headers.try_insert("x-amz-user-agent", user_agent.to_owned())?;
    let identity = Identity::new(credentials, None);
    // the SDK's SigV4 settings for CloudWatch Logs are the signer's defaults: double URI
    // encoding, no x-amz-content-sha256 header, normalised path, session token signed
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&target.signing_region)
        .name(&target.signing_name)
        .time(time)
        .settings(SigningSettings::default())
        .build()?;
    let signable = SignableRequest::new(
        request.method(),
        request.uri(),
        request.headers().iter(),
        SignableBody::Precomputed(body.sha256_hex()),
    )?;
    let (instructions, _signature) = sign(signable, &SigningParams::V4(params))?.into_parts();
    let (headers, _query) = instructions.into_parts();
    for header in headers {
        request.headers_mut().try_insert(header.name(), header.value().to_owned())?;
    }
    *request.body_mut() = body.into_sdk_body();
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_cloudwatchlogs::config::interceptors::BeforeTransmitInterceptorContextMut;
    use aws_sdk_cloudwatchlogs::config::{
        BehaviorVersion, ConfigBag, IdentityCache, Intercept, Region, RuntimeComponents, SharedHttpClient,
    };
    use aws_sdk_cloudwatchlogs::error::BoxError;
    use aws_sdk_cloudwatchlogs::types::InputLogEvent;
    use aws_smithy_async::time::TimeSource;
    use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
    use aws_smithy_runtime_api::client::http::{
        HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
    };
    use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
    use bytes::Bytes;
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::time::UNIX_EPOCH;

    /// A request as sent: method, URI, headers (lower-case names), body.
    #[derive(Debug, Clone, PartialEq)]
    struct Sent {
        method: String,
        uri: String,
        headers: BTreeMap<String, String>,
        body: Vec<u8>,
    }

    /// The request as sent, its body read to the end as the HTTP client reads it.
    fn sent(request: HttpRequest) -> Sent {
        use http_body::Body;
        let (method, uri) = (request.method().to_owned(), request.uri().to_owned());
        let headers = request.headers().iter().map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned())).collect();
        let mut body = request.into_body();
        let announced = body.content_length();
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let mut bytes = Vec::new();
        while let std::task::Poll::Ready(Some(frame)) = std::pin::Pin::new(&mut body).poll_frame(&mut cx) {
            bytes.extend_from_slice(&frame.unwrap().into_data().unwrap());
        }
        assert_eq!(announced, Some(bytes.len() as u64));
        Sent { method, uri, headers, body: bytes }
    }

    /// An HTTP client that records the request the SDK would send and answers 200 `{}`; it
    /// says it is the connector `.1` (which the SDK names in its user agent).
    #[derive(Debug, Clone, Default)]
    struct Capture(Arc<Mutex<Option<Sent>>>, Option<ConnectorMetadata>);

    impl HttpClient for Capture {
        fn http_connector(&self, _: &HttpConnectorSettings, _: &RuntimeComponents) -> SharedHttpConnector {
            SharedHttpConnector::new(self.clone())
        }

        fn connector_metadata(&self) -> Option<ConnectorMetadata> {
            self.1.clone()
        }
    }

    impl HttpConnector for Capture {
        fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
            *self.0.lock().unwrap() = Some(sent(request));
            let mut answer = HttpResponse::new(200.try_into().unwrap(), SdkBody::from("{}"));
            answer.headers_mut().insert("content-type", CONTENT_TYPE);
            HttpConnectorFuture::ready(Ok(answer))
        }
    }

    fn capture_metadata() -> ConnectorMetadata {
        ConnectorMetadata::new("capture", Some("1.0".into()))
    }

    #[derive(Debug)]
    struct Fixed(SystemTime);

    impl TimeSource for Fixed {
        fn now(&self) -> SystemTime {
            self.0
        }
    }

    /// `x-amzn-logs-format` set as the plugin's SDK path set it: before signing.
    #[derive(Debug)]
    struct LogsFormat(&'static str);

    impl Intercept for LogsFormat {
        fn name(&self) -> &'static str {
            "LogsFormat"
        }

        fn modify_before_signing(
            &self,
            context: &mut BeforeTransmitInterceptorContextMut<'_>,
            _: &RuntimeComponents,
            _: &mut ConfigBag,
        ) -> Result<(), BoxError> {
            context.request_mut().headers_mut().insert("x-amzn-logs-format", self.0);
            Ok(())
        }
    }

    /// The request the SDK sends for one PutLogEvents with these settings, signed at `time`.
    fn sdk_request(settings: &EndpointSettings, app: &AppName, credentials: &Credentials, time: SystemTime) -> Sent {
        let mut conf = aws_sdk_cloudwatchlogs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(settings.region.clone()))
            .use_fips(settings.use_fips)
            .use_dual_stack(settings.use_dual_stack)
            .app_name(app.clone())
            .credentials_provider(credentials.clone())
            .identity_cache(IdentityCache::no_cache())
            .retry_config(aws_sdk_cloudwatchlogs::config::retry::RetryConfig::disabled());
        if let Some(url) = &settings.url {
            conf = conf.endpoint_url(url);
        }
        captured(conf, time, Some(capture_metadata()))
    }

    /// The request the SDK client configured by `conf` sends for one PutLogEvents, signed at
    /// `time`, its HTTP client naming itself `connector`.
    fn captured(
        conf: aws_sdk_cloudwatchlogs::config::Builder,
        time: SystemTime,
        connector: Option<ConnectorMetadata>,
    ) -> Sent {
        let capture = Capture(Arc::default(), connector);
        let conf = conf.time_source(Fixed(time)).http_client(SharedHttpClient::new(capture.clone()));
        let client = aws_sdk_cloudwatchlogs::Client::from_conf(conf.build());
        let event = InputLogEvent::builder().timestamp(1_700_000_000_000).message("a message, \"quoted\" é").build();
        let call = client
            .put_log_events()
            .log_group_name("group/a")
            .log_stream_name("stream 1")
            .log_events(event.unwrap())
            .customize()
            .interceptor(LogsFormat("json/emf"))
            .send();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(call).unwrap();
        let sent = capture.0.lock().unwrap().take();
        sent.unwrap()
    }

    /// Headers the SDK sends that the lean path leaves out. None is signed (SigV4 signs only
    /// the headers it lists in `SignedHeaders`, checked equal below) and CloudWatch needs none:
    /// - `amz-sdk-invocation-id`: a random id per operation, for the SDK's retry bookkeeping;
    /// - `amz-sdk-request`: `attempt=1; max=1`, the SDK's retry counter (its retries are off);
    /// - `x-amzn-trace-id` (only inside AWS Lambda, from `_X_AMZN_TRACE_ID`): not a place
    ///   Fluent Bit runs.
    const SDK_ONLY: &[&str] = &["amz-sdk-invocation-id", "amz-sdk-request", "x-amzn-trace-id"];

    fn signed_headers(authorization: &str) -> &str {
        let start = authorization.find("SignedHeaders=").map_or(0, |i| i + "SignedHeaders=".len());
        authorization[start..].split(',').next().unwrap_or_default()
    }

    /// The same PutLogEvents (fixed time, credentials with a session token and credential
    /// features, fixed body, whole or in parts) through the SDK and through the lean path: the same method, URI,
    /// headers, signed headers, payload hash (CloudWatch's SigV4 sends no
    /// `x-amz-content-sha256`: the hash is in the canonical request, so equal signatures over
    /// equal headers and URI mean equal payload hashes) and signature.
    #[test]
    fn the_lean_request_is_the_request_the_sdk_sends() {
        let time = UNIX_EPOCH + Duration::from_secs(1_700_000_123);
        let mut credentials = Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            Some("session/token+with=odd chars".into()),
            Some(time + Duration::from_secs(3600)),
            "test",
        );
        credentials.set_property(vec![
            AwsCredentialFeature::CredentialsStsAssumeRole,
            AwsCredentialFeature::CredentialsEnvVars,
        ]);
        let app = AppName::new("cloudwatch_rs-firelens").unwrap();
        let cases = [
            EndpointSettings {
                region: "eu-west-3".into(),
                url: Some("http://127.0.0.1:4566".into()),
                ..Default::default()
            },
            EndpointSettings {
                region: "us-east-1".into(),
                url: Some("https://logs.example/base/".into()),
                ..Default::default()
            },
            EndpointSettings { region: "us-west-2".into(), ..Default::default() },
            EndpointSettings { region: "us-gov-west-1".into(), use_fips: true, ..Default::default() },
            EndpointSettings { region: "ap-southeast-2".into(), use_dual_stack: true, ..Default::default() },
        ];
        for settings in cases {
            let sdk = sdk_request(&settings, &app, &credentials, time);
            let target = Target::resolve(&settings).unwrap();
            let user_agent = UserAgent::new(Some(&app), settings.url.is_some(), Some(capture_metadata().to_string()));
            let lean = signed_put_request(
                &target,
                PutBody::whole(Bytes::from(sdk.body.clone())),
                Some("json/emf"),
                &user_agent.value(&credentials),
                credentials.clone(),
                time,
            )
            .unwrap();
            let lean = sent(lean);
            let mut sdk_headers = sdk.headers.clone();
            sdk_headers.retain(|k, _| !SDK_ONLY.contains(&k.as_str()));
            eprintln!("{settings:?}\n  sdk:  {sdk:?}\n  lean: {lean:?}");
            assert_eq!(lean.method, sdk.method);
            assert_eq!(lean.uri, sdk.uri, "{settings:?}");
            assert_eq!(lean.body, sdk.body);
            let (a, b) = (&lean.headers["authorization"], &sdk.headers["authorization"]);
            assert_eq!(signed_headers(a), signed_headers(b));
            assert!(signed_headers(a).contains("x-amz-security-token"), "{a}");
            assert!(
                !lean.headers.contains_key("x-amz-content-sha256") && !sdk.headers.contains_key("x-amz-content-sha256")
            );
            assert_eq!(a, b, "{settings:?}");
            assert!(lean.headers["user-agent"].contains("app/cloudwatch_rs-firelens"));
            assert_eq!(lean.headers, sdk_headers, "{settings:?}");
            // the same body in parts, cut anywhere (`core::batch::body_parts` cuts it into the
            // head, the arena's run of events and `]}`): hashed part after part, the same
            // request (content-length, payload hash, signature) with the same bytes
            let whole = Bytes::from(sdk.body.clone());
            let (n, events) = (whole.len(), sdk.body.iter().position(|&b| b == b'[').unwrap() + 1);
            for (a, b) in [(events, n - 2), (0, n), (0, 0), (n, n), (1, n - 1), (events, events)] {
                let body = PutBody::parts(whole.slice(..a), whole.slice(a..b), whole.slice(b..));
                let ua = user_agent.value(&credentials);
                let parts = signed_put_request(&target, body, Some("json/emf"), &ua, credentials.clone(), time);
                assert_eq!(sent(parts.unwrap()), lean, "{settings:?} {a}..{b}");
            }
        }
    }

    /// The same through the SDK client and the lean sender `client::clients` builds for a
    /// configuration: what the instance really sends with.
    #[test]
    fn the_instances_lean_sender_sends_what_its_sdk_client_sends() {
        use crate::core::config::Config;
        let config = Config::from_lookup(
            |k| match k {
                "log_group_name" => Some("g".into()),
                "log_stream_name" => Some("s".into()),
                "extra_user_agent" => Some("firelens".into()),
                "endpoint" => Some("http://127.0.0.1:9".into()),
                "flush_timeout" => Some("30s".into()),
                _ => None,
            },
            |k| (k == "AWS_REGION").then(|| "eu-central-1".into()),
        )
        .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let clients = rt.block_on(crate::aws::client::clients(&config)).unwrap();
        let time = UNIX_EPOCH + Duration::from_secs(1_750_000_000);
        let credentials = Credentials::new("AKIDEXAMPLE", "secret", Some("token".into()), None, "test");
        let sdk_conf = clients.own.logs.config();
        let connector = sdk_conf.http_client().and_then(|h| h.connector_metadata());
        let conf = sdk_conf.to_builder().credentials_provider(credentials.clone());
        let sdk = captured(conf, time, connector);
        let put = &clients.own.put;
        assert_eq!(put.attempt_timeout, Duration::from_secs(10));
        let user_agent = put.user_agent.value(&credentials);
        let lean = signed_put_request(
            put.target.as_ref().unwrap(),
            PutBody::whole(Bytes::from(sdk.body.clone())),
            Some("json/emf"),
            &user_agent,
            credentials,
            time,
        );
        let lean = sent(lean.unwrap());
        let mut sdk_headers = sdk.headers.clone();
        sdk_headers.retain(|k, _| !SDK_ONLY.contains(&k.as_str()));
        assert_eq!((lean.method.as_str(), lean.uri.as_str()), ("POST", "http://127.0.0.1:9/"));
        assert_eq!(lean.uri, sdk.uri);
        assert!(lean.headers["user-agent"].contains("app/cloudwatch_rs-firelens"), "{lean:?}");
        assert_eq!(lean.headers, sdk_headers);
    }

    #[test]
    fn the_user_agent_follows_the_credentials_features() {
        let ua = UserAgent::new(None, false, None);
        let plain = Credentials::new("a", "b", None, None, "t");
        let mut assumed = plain.clone();
        assumed.set_property(vec![AwsCredentialFeature::CredentialsStsAssumeRole]);
        let (p, a) = (ua.value(&plain), ua.value(&assumed));
        assert_ne!(p, a);
        assert_eq!(ua.value(&plain), p);
    }

    #[test]
    fn the_clock_skew_is_learned_from_the_date_and_applied() {
        let skew = ClockSkew::default();
        let sent = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut headers = aws_smithy_runtime_api::http::Headers::new();
        // the server is 10 minutes ahead; the answer took 2 s
        let server = DateTime::from(sent + Duration::from_secs(601)).fmt(Format::HttpDate).unwrap();
        headers.insert("date", server);
        skew.observe(&headers, sent, sent + Duration::from_secs(2));
        assert_eq!(skew.signing_time(sent), sent + Duration::from_secs(600));
        // a cached answer says nothing about the clock
        headers.insert("age", "3");
        headers.insert("date", DateTime::from(sent).fmt(Format::HttpDate).unwrap());
        skew.observe(&headers, sent, sent);
        assert_eq!(skew.signing_time(sent), sent + Duration::from_secs(600));
    }
}
