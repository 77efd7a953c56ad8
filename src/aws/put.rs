//! PutLogEvents with a body written by the core (`core::batch::body_parts`), sent without the
//! SDK's orchestrator (`signing`), and what its answer says about events CloudWatch rejected
//! one by one.

use crate::aws::body::PutBody;
use crate::aws::credentials::CredentialCache;
use crate::aws::errors::is_cloudwatch_success;
use crate::aws::signing::{signed_put_request, ClockSkew, NoEndpoint, Target, UserAgent};
use crate::core::batch::LogEvent;
use aws_sdk_cloudwatchlogs::error::{ConnectorError, SdkError};
use aws_sdk_cloudwatchlogs::operation::put_log_events::PutLogEventsError;
use aws_smithy_json::deserialize::error::DeserializeError;
use aws_smithy_json::deserialize::token::{expect_number_or_null, expect_start_object, skip_value};
use aws_smithy_json::deserialize::{json_token_iter, Token};
use aws_smithy_runtime_api::client::http::{HttpConnector, SharedHttpConnector};
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::error::ErrorMetadata;
use bytes::{Bytes, BytesMut};
use http_body::Body;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// CloudWatch refuses events older than this (and moto's index needs it, see `Rejected`).
const MAX_EVENT_AGE_MS: i64 = 14 * 24 * 3600 * 1000;

/// A PutLogEvents call's outcome as the SDK would report it: the same `SdkError` variants for
/// the same causes, so `errors::classify` and the retry loop treat both paths alike.
pub type PutResult = Result<Accepted, SdkError<PutLogEventsError>>;

/// What an accepted PutLogEvents answer says: `rejectedLogEventsInfo`'s indexes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Accepted {
    pub too_old_end: Option<i32>,
    pub expired_end: Option<i32>,
    pub too_new_start: Option<i32>,
}

/// Sends PutLogEvents of one instance: where and how resolved once, the HTTPS connector every
/// AWS call goes through (proxy, `ca_bundle`, answer cap), the shared credential cache.
pub struct PutSender {
    /// An endpoint the rules refuse fails every call as the SDK's would, after the credentials.
    pub target: Result<Target, NoEndpoint>,
    pub user_agent: UserAgent,
    pub connector: SharedHttpConnector,
    /// One attempt's bound, from credentials to the answer's last byte (`attempt_timeout`).
    pub attempt_timeout: Duration,
    pub credentials: Arc<CredentialCache>,
    pub skew: ClockSkew,
}

impl fmt::Debug for PutSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PutSender").field("target", &self.target).finish_non_exhaustive()
    }
}

/// An attempt that ran past `attempt_timeout`.
#[derive(Debug)]
struct AttemptTimedOut(Duration);

impl fmt::Display for AttemptTimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the attempt timed out after {:?}", self.0)
    }
}

impl std::error::Error for AttemptTimedOut {}

impl PutSender {
    /// One PutLogEvents call sending `body` (a clone of the batch's parts).
    pub async fn put_log_events(&self, body: PutBody, log_format: Option<&str>) -> PutResult {
        match tokio::time::timeout(self.attempt_timeout, self.attempt(body, log_format)).await {
            Ok(result) => result,
            Err(_) => Err(SdkError::timeout_error(AttemptTimedOut(self.attempt_timeout))),
        }
    }

    async fn attempt(&self, body: PutBody, log_format: Option<&str>) -> PutResult {
        // as the orchestrator wraps what fails before a request is sent: a dispatch failure
        // whose source is the credential cache's error (`CredentialsRefused` stays findable)
        let not_sent =
            |e: Box<dyn std::error::Error + Send + Sync>| SdkError::dispatch_failure(ConnectorError::other(e, None));
        let credentials = self.credentials.get().await.map_err(|e| not_sent(Box::new(e)))?;
        let target = self.target.as_ref().map_err(|e| not_sent(Box::new(e.clone())))?;
        let user_agent = self.user_agent.value(&credentials);
        let now = SystemTime::now();
        let request =
            signed_put_request(target, body, log_format, &user_agent, credentials, self.skew.signing_time(now))
                .map_err(not_sent)?;
        let sent = SystemTime::now();
        let mut response = self.connector.call(request).await.map_err(SdkError::dispatch_failure)?;
        self.skew.observe(response.headers(), sent, SystemTime::now());
        match read_body(response.take_body()).await {
            Ok(bytes) => *response.body_mut() = SdkBody::from(bytes),
            Err(e) => return Err(SdkError::response_error(e, response)),
        }
        if response.status().is_success() && is_cloudwatch_success(&response) {
            if let Some(accepted) = accepted(response.body().bytes().unwrap_or_default()) {
                return Ok(accepted);
            }
        }
        // an error answer, or a success that is not CloudWatch's: classified on the raw answer
        // (`errors::answer_failure`), as the SDK's service errors are
        Err(SdkError::service_error(PutLogEventsError::generic(ErrorMetadata::builder().build()), response))
    }
}

/// The whole answer body (already capped by the connector).
async fn read_body(mut body: SdkBody) -> Result<Bytes, Box<dyn std::error::Error + Send + Sync>> {
    let mut first: Option<Bytes> = None;
    let mut more = BytesMut::new();
    while let Some(frame) = std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await {
        let Ok(data) = frame?.into_data() else { continue };
        match &first {
            None => first = Some(data),
            Some(f) => {
                if more.is_empty() {
                    more.extend_from_slice(f);
                }
                more.extend_from_slice(&data);
            }
        }
    }
    Ok(if more.is_empty() { first.unwrap_or_default() } else { more.freeze() })
}

/// `rejectedLogEventsInfo` of a PutLogEvents answer (a JSON object, `is_cloudwatch_success`),
/// read as the SDK's deserialiser reads it; `None` when the SDK would fail the call on it.
fn accepted(body: &[u8]) -> Option<Accepted> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Some(Accepted::default());
    }
    read_accepted(body).ok()
}

fn read_accepted(body: &[u8]) -> Result<Accepted, DeserializeError> {
    let mut out = Accepted::default();
    let mut tokens = json_token_iter(body).peekable();
    expect_start_object(tokens.next())?;
    loop {
        match tokens.next().transpose()? {
            Some(Token::EndObject { .. }) => return Ok(out),
            Some(Token::ObjectKey { key, .. }) => match key.to_unescaped()?.as_ref() {
                "rejectedLogEventsInfo" => match tokens.next().transpose()? {
                    Some(Token::ValueNull { .. }) => {}
                    Some(Token::StartObject { .. }) => loop {
                        match tokens.next().transpose()? {
                            Some(Token::EndObject { .. }) => break,
                            Some(Token::ObjectKey { key, .. }) => {
                                let slot = match key.to_unescaped()?.as_ref() {
                                    "tooOldLogEventEndIndex" => &mut out.too_old_end,
                                    "tooNewLogEventStartIndex" => &mut out.too_new_start,
                                    "expiredLogEventEndIndex" => &mut out.expired_end,
                                    _ => {
                                        skip_value(&mut tokens)?;
                                        continue;
                                    }
                                };
                                *slot = expect_number_or_null(tokens.next())?.map(i32::try_from).transpose()?;
                            }
                            _ => return Err(DeserializeError::custom("expected object key or end object")),
                        }
                    },
                    _ => return Err(DeserializeError::custom("expected start object or null")),
                },
                _ => skip_value(&mut tokens)?,
            },
            _ => return Err(DeserializeError::custom("expected object key or end object")),
        }
    }
}

/// Events of one accepted batch that CloudWatch rejected, by reason. The old ones are at the
/// start of the (sorted) batch, the too-new ones at its end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rejected {
    pub too_old: usize,
    pub expired: usize,
    pub too_new: usize,
}

impl Rejected {
    /// AWS documents the too-old and expired end indexes as exclusive and the too-new start
    /// index as inclusive. moto sends the index of the *last* too-old event instead, so an event
    /// at the end index that is itself more than 14 days old is counted as well.
    pub fn from_indexes(
        too_old_end: Option<i32>,
        expired_end: Option<i32>,
        too_new_start: Option<i32>,
        events: &[LogEvent],
        now_ms: i64,
    ) -> Rejected {
        let n = events.len();
        let bound = |i: Option<i32>| i.map_or(0, |i| (i.max(0) as usize).min(n));
        let mut too_old = bound(too_old_end);
        if too_old_end.is_some() && too_old < n && events[too_old].timestamp < now_ms - MAX_EVENT_AGE_MS {
            too_old += 1;
        }
        let expired = bound(expired_end);
        let old = too_old.max(expired);
        let new_start = too_new_start.map_or(n, |i| (i.max(0) as usize).clamp(old, n));
        Rejected { too_old: old - expired, expired, too_new: n - new_start }
    }

    pub fn total(&self) -> usize {
        self.too_old + self.expired + self.too_new
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::errors::{classify, Failure};
    use crate::aws::signing::{EndpointSettings, UserAgent};
    use aws_credential_types::provider::SharedCredentialsProvider;
    use aws_credential_types::Credentials;
    use aws_sdk_cloudwatchlogs::config::http::{HttpRequest, HttpResponse};
    use aws_smithy_runtime_api::client::http::HttpConnectorFuture;

    #[test]
    fn rejected_indexes_are_read_as_the_sdk_reads_them() {
        let read = |b: &str| accepted(b.as_bytes());
        assert_eq!(read(""), Some(Accepted::default()));
        assert_eq!(read("{}"), Some(Accepted::default()));
        assert_eq!(read(r#"{"nextSequenceToken":"49","rejectedLogEventsInfo":null}"#), Some(Accepted::default()));
        assert_eq!(
            read(
                r#"{"rejectedLogEventsInfo":{"tooOldLogEventEndIndex":2,"tooNewLogEventStartIndex":5,"x":[1]},"y":{}}"#
            ),
            Some(Accepted { too_old_end: Some(2), expired_end: None, too_new_start: Some(5) })
        );
        assert_eq!(
            read(r#"{"rejectedLogEventsInfo":{"expiredLogEventEndIndex":1,"tooOldLogEventEndIndex":null}}"#),
            Some(Accepted { too_old_end: None, expired_end: Some(1), too_new_start: None })
        );
        // shapes the SDK's deserialiser refuses
        for bad in [
            r#"{"rejectedLogEventsInfo":5}"#,
            r#"{"rejectedLogEventsInfo":{"tooOldLogEventEndIndex":"2"}}"#,
            r#"{"rejectedLogEventsInfo":{"tooOldLogEventEndIndex":1.5}}"#,
            r#"{"rejectedLogEventsInfo":{"tooOldLogEventEndIndex":4294967296}}"#,
            r#"{"rejectedLogEventsInfo":{"#,
        ] {
            assert_eq!(read(bad), None, "{bad}");
        }
    }

    /// A server in-process: answers every request with `.0()`, or never (`.1`).
    #[derive(Debug)]
    struct Answers(fn() -> Result<HttpResponse, ConnectorError>, bool);

    impl HttpConnector for Answers {
        fn call(&self, _: HttpRequest) -> HttpConnectorFuture {
            let (answer, hangs) = ((self.0)(), self.1);
            HttpConnectorFuture::new(async move {
                if hangs {
                    std::future::pending::<()>().await;
                }
                answer
            })
        }
    }

    fn sender(provider: SharedCredentialsProvider, answers: Answers) -> PutSender {
        let sts = aws_sdk_sts::Client::from_conf(
            aws_sdk_sts::Config::builder().behavior_version(aws_sdk_sts::config::BehaviorVersion::latest()).build(),
        );
        let cache = CredentialCache::new(provider, "test".into(), None, sts);
        let settings = EndpointSettings {
            region: "us-east-1".into(),
            url: Some("http://127.0.0.1:9".into()),
            ..Default::default()
        };
        PutSender {
            target: Target::resolve(&settings),
            user_agent: UserAgent::new(None, true, None),
            connector: SharedHttpConnector::new(answers),
            attempt_timeout: Duration::from_millis(200),
            credentials: Arc::new(cache),
            skew: ClockSkew::default(),
        }
    }

    fn put_with(provider: SharedCredentialsProvider, answers: Answers) -> Result<Accepted, Failure> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let sender = sender(provider, answers);
        rt.block_on(sender.put_log_events(PutBody::whole(Bytes::from_static(b"{}")), Some("json/emf")))
            .map_err(|e| classify(&e))
    }

    fn outcome(answers: fn() -> Result<HttpResponse, ConnectorError>) -> Result<Accepted, Failure> {
        let credentials = Credentials::new("AKID", "secret", Some("token".into()), None, "test");
        put_with(SharedCredentialsProvider::new(credentials), Answers(answers, false))
    }

    fn answer(status: u16, content_type: &str, body: &'static str) -> HttpResponse {
        let mut a = HttpResponse::new(status.try_into().unwrap(), SdkBody::from(body));
        a.headers_mut().insert("content-type", content_type.to_owned());
        a
    }

    /// Every kind of answer (and of no answer) leads to the failure the SDK path led to.
    #[test]
    fn answers_and_their_absence_are_classified_as_through_the_sdk() {
        const AMZ: &str = "application/x-amz-json-1.1";
        assert_eq!(outcome(|| Ok(answer(200, AMZ, "{}"))), Ok(Accepted::default()));
        assert_eq!(
            outcome(|| Ok(answer(200, "text/html", r#"{"rejectedLogEventsInfo":{"tooNewLogEventStartIndex":0}}"#))),
            Ok(Accepted { too_new_start: Some(0), ..Accepted::default() })
        );
        let misbehaving = |f: Result<Accepted, Failure>| matches!(f, Err(Failure::Misbehaving { status: 200, .. }));
        assert!(misbehaving(outcome(|| Ok(answer(200, "text/html", "")))));
        assert!(misbehaving(outcome(|| Ok(answer(200, AMZ, "OK")))));
        assert!(misbehaving(outcome(|| Ok(answer(200, AMZ, r#"{"rejectedLogEventsInfo":7}"#)))));
        assert!(matches!(
            outcome(|| Ok(answer(400, AMZ, r#"{"__type":"ExpiredTokenException","message":"expired"}"#))),
            Err(Failure::Credentials(_))
        ));
        assert!(matches!(
            outcome(|| Ok(answer(
                400,
                AMZ,
                r#"{"__type":"ResourceNotFoundException","message":"The specified log stream does not exist."}"#
            ))),
            Err(Failure::StreamMissing)
        ));
        assert!(matches!(
            outcome(|| Ok(answer(400, AMZ, r#"{"__type":"InvalidParameterException","message":"bad"}"#))),
            Err(Failure::Invalid(_))
        ));
        assert!(matches!(
            outcome(|| Ok(answer(400, AMZ, r#"{"__type":"ThrottlingException"}"#))),
            Err(Failure::Transient { throttled: true, .. })
        ));
        assert!(matches!(outcome(|| Ok(answer(302, "text/html", ""))), Err(Failure::Misbehaving { status: 302, .. })));
        // no connection, and an answer that never comes: retried
        assert!(matches!(
            outcome(|| Err(ConnectorError::io("connection refused".into()))),
            Err(Failure::Transient { throttled: false, .. })
        ));
        let credentials = Credentials::new("AKID", "secret", None, None, "test");
        let hung = put_with(SharedCredentialsProvider::new(credentials), Answers(|| Ok(answer(200, AMZ, "{}")), true));
        assert!(
            matches!(&hung, Err(Failure::Transient { throttled: false, detail }) if detail.contains("timed out")),
            "{hung:?}"
        );
        // no credentials anywhere: the credential cache's refusal, found by type
        let none = SharedCredentialsProvider::new(NoCredentials);
        assert!(matches!(
            put_with(none, Answers(|| Ok(answer(200, AMZ, "{}")), false)),
            Err(Failure::NoCredentials(_))
        ));
    }

    /// Endpoint rules that refuse the settings (FIPS where the partition has none): every call
    /// fails as the SDK's did, a dispatch failure retried within the flush, then by Fluent Bit.
    #[test]
    fn an_endpoint_the_rules_refuse_fails_each_call_as_through_the_sdk() {
        let settings =
            EndpointSettings { region: "us-east-1".into(), url: Some("not a url".into()), ..Default::default() };
        let refused = Target::resolve(&settings);
        assert!(refused.is_err(), "{refused:?}");
        let credentials = Credentials::new("AKID", "secret", None, None, "test");
        let mut sender =
            sender(SharedCredentialsProvider::new(credentials), Answers(|| Ok(answer(200, "", "{}")), false));
        sender.target = refused;
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let failure = rt
            .block_on(sender.put_log_events(PutBody::whole(Bytes::from_static(b"{}")), None))
            .map_err(|e| classify(&e));
        assert!(
            matches!(&failure, Err(Failure::Transient { throttled: false, detail }) if detail.contains("no CloudWatch Logs endpoint")),
            "{failure:?}"
        );
    }

    #[derive(Debug)]
    struct NoCredentials;

    impl aws_credential_types::provider::ProvideCredentials for NoCredentials {
        fn provide_credentials<'a>(&'a self) -> aws_credential_types::provider::future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            aws_credential_types::provider::future::ProvideCredentials::ready(Err(
                aws_credential_types::provider::error::CredentialsError::not_loaded("none anywhere"),
            ))
        }
    }

    #[test]
    fn rejected_events_by_index_aws_and_moto_style() {
        let now = 2_000_000_000_000;
        let day = 24 * 3600 * 1000;
        let ev = |t| LogEvent { timestamp: t, start: 0, stored: 1, len: 1, key: 0 };
        let events = [ev(now - 20 * day), ev(now - 15 * day), ev(now), ev(now + 3 * 3600 * 1000)];
        // AWS: exclusive end index 2 = two too old; too-new from index 3
        assert_eq!(
            Rejected::from_indexes(Some(2), None, Some(3), &events, now),
            Rejected { too_old: 2, expired: 0, too_new: 1 }
        );
        // moto: index of the last too-old event (1)
        assert_eq!(Rejected::from_indexes(Some(1), None, None, &events, now).too_old, 2);
        // moto with one too-old event: index 0
        assert_eq!(Rejected::from_indexes(Some(0), None, None, &events[1..], now).too_old, 1);
        assert_eq!(
            Rejected::from_indexes(None, Some(1), None, &events, now),
            Rejected { too_old: 0, expired: 1, too_new: 0 }
        );
        assert_eq!(Rejected::from_indexes(Some(99), None, Some(-5), &events, now).total(), 4);
    }
}
