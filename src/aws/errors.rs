//! The failure taxonomy: what an answer (or the lack of one) means for the batch that asked.
//! Every decision is made on types — the SDK's error variants, the answer's status, content
//! type and error code, our own `CredentialsRefused` and `NotCloudWatch` found by walking the
//! error's sources — never on message text (one exception, kept here: CloudWatch's documented
//! ResourceNotFound message tells a missing group from a missing stream).
//!
//! Only CloudWatch Logs' own refusal of a request as bad drops a batch: its JSON error shape,
//! status 400, a documented type (`REQUEST_REFUSED`). An answer in no AWS shape — a redirect, an
//! HTML page, a 413, a 2xx that is not its JSON — is `Misbehaving`, retried like a 5xx.

use crate::log::server_text;
use aws_sdk_cloudwatchlogs::config::http::HttpResponse;
use aws_sdk_cloudwatchlogs::config::interceptors::AfterDeserializationInterceptorContextRef;
use aws_sdk_cloudwatchlogs::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_cloudwatchlogs::error::{BoxError, ProvideErrorMetadata, SdkError};
use aws_smithy_json::deserialize::token::skip_value;
use aws_smithy_json::deserialize::{json_token_iter, Token};
use std::error::Error;
use std::fmt;

/// Why a call failed, as far as what to do next is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    GroupMissing,
    StreamMissing,
    /// A create call lost a race with another worker (or another Fluent Bit): fine.
    AlreadyExists,
    /// Throttling, 5xx, network, timeouts: worth retrying soon.
    Transient {
        throttled: bool,
        detail: String,
    },
    /// An answer CloudWatch Logs never gives (a redirect, a proxy's HTML page, a 2xx that is
    /// not its JSON, an error outside its documented types): something in the way is
    /// misbehaving. Nothing says the batch was bad, so it is retried like a 5xx.
    Misbehaving {
        status: u16,
        detail: String,
    },
    /// AccessDenied and friends: the principal lacks a permission or the role's trust.
    Denied(String),
    /// Credentials CloudWatch refused (expired, revoked): worth retrying with fresh ones.
    Credentials(String),
    /// No credentials to be had: the base chain found none, or AssumeRole was refused.
    NoCredentials(String),
    /// CloudWatch Logs itself refused the request as bad, in its own error shape with one of
    /// its documented types (InvalidParameterException…): retrying cannot help. The only
    /// failure that drops a batch.
    Invalid(String),
    /// The request could not even be built (no answer was asked for): kept for Fluent Bit's retry.
    NotSent(String),
}

/// Credentials the shared cache could not get, for a reason a retry right now will not fix.
/// The cache hands it to the SDK as the source of its `CredentialsError`; `classify` finds it
/// by walking the failed call's sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialsRefused {
    pub kind: Refusal,
    /// One line for the operator: what was tried, what to check.
    pub message: String,
}

/// What kind of refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// STS refused AssumeRole (the role's trust policy, the principal's policy, ExternalId).
    RoleDenied,
    /// The default chain found no base credentials anywhere.
    NoBaseCredentials,
    /// STS refused the base credentials themselves (unknown key, bad secret).
    BaseRefused,
}

impl fmt::Display for CredentialsRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Error for CredentialsRefused {}

/// The first error of type `T` in `err` and its chain of sources.
pub fn find_in_chain<'e, T: Error + 'static>(err: &'e (dyn Error + 'static)) -> Option<&'e T> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}

/// Error codes of throttling, across AWS services and protocols.
const THROTTLING: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "LimitExceededException",
];
/// Error codes of a service having trouble: worth retrying soon. `InvalidSequenceTokenException`
/// is documented for PutLogEvents but no longer given (sequence tokens are ignored): should it
/// come, the same body is accepted on a retry.
const UNAVAILABLE: &[&str] =
    &["ServiceUnavailableException", "InternalFailure", "OperationAbortedException", "InvalidSequenceTokenException"];
/// Error codes of credentials refused as such: expired, unknown, or signed wrong.
const CREDENTIALS_REFUSED: &[&str] = &[
    "ExpiredTokenException",
    "ExpiredToken",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
];
/// Error codes of a principal lacking a permission.
pub const ACCESS_DENIED: &[&str] = &["AccessDeniedException", "AccessDenied"];
/// CloudWatch Logs' documented refusals of a request as bad (PutLogEvents, CreateLogGroup,
/// CreateLogStream, PutRetentionPolicy): the only answers that drop a batch, and only in
/// CloudWatch's own JSON error shape with status 400. `DataAlreadyAcceptedException` says the
/// events are already stored.
const REQUEST_REFUSED: &[&str] = &["InvalidParameterException", "DataAlreadyAcceptedException"];

/// Content types of CloudWatch Logs' JSON answers (moto answers `application/json`).
const JSON_TYPES: &[&str] = &["application/x-amz-json-1.1", "application/x-amz-json-1.0", "application/json"];
/// Content types of AWS's XML error shape (STS's authentication errors; moto sends it as text/html).
const XML_TYPES: &[&str] = &["text/xml", "application/xml"];

/// Sorts an SDK error into what delivery does next.
pub fn classify<E>(err: &SdkError<E>) -> Failure
where
    E: ProvideErrorMetadata + Error + Send + Sync + 'static,
{
    match err {
        SdkError::ServiceError(service) => answer_failure(service.raw()),
        SdkError::DispatchFailure(_) => {
            let detail = error_chain(err);
            match find_in_chain::<CredentialsRefused>(err).map(|r| r.kind) {
                // no retry can help now; the cache has logged why, once
                Some(Refusal::RoleDenied | Refusal::NoBaseCredentials) => Failure::NoCredentials(detail),
                // worth one more try with credentials fetched again
                Some(Refusal::BaseRefused) => Failure::Credentials(detail),
                // network trouble, including on the way to STS: worth retrying
                None => Failure::Transient { throttled: false, detail },
            }
        }
        SdkError::ResponseError(_) => match find_in_chain::<NotCloudWatch>(err) {
            Some(odd) => Failure::Misbehaving { status: odd.status, detail: odd.detail.clone() },
            // the answer broke off or could not be read: worth retrying
            None => Failure::Transient { throttled: false, detail: error_chain(err) },
        },
        SdkError::TimeoutError(_) => Failure::Transient { throttled: false, detail: error_chain(err) },
        _ => Failure::NotSent(error_chain(err)),
    }
}

/// What an error answer (status not 2xx, or a 2xx the SDK could not read) means.
fn answer_failure(raw: &HttpResponse) -> Failure {
    let status = raw.status().as_u16();
    if (200..300).contains(&status) {
        // a success the SDK could not read
        return Failure::Misbehaving { status, detail: not_cloudwatch(raw, NOT_A_SUCCESS) };
    }
    let Some(AwsError { code, message, from_cloudwatch }) = aws_error(raw) else {
        return Failure::Misbehaving { status, detail: not_cloudwatch(raw, "not CloudWatch Logs' error shape") };
    };
    // the server's words, redacted, escaped and cut, for the log; decisions use the raw code
    let detail = format!("{}: {}", server_text(&code), server_text(&message));
    match code.as_str() {
        // CloudWatch's documented message tells a missing group from a missing stream
        "ResourceNotFoundException" if message.contains("log group") => Failure::GroupMissing,
        "ResourceNotFoundException" => Failure::StreamMissing,
        "ResourceAlreadyExistsException" => Failure::AlreadyExists,
        c if THROTTLING.contains(&c) => Failure::Transient { throttled: true, detail },
        c if UNAVAILABLE.contains(&c) => Failure::Transient { throttled: false, detail },
        c if CREDENTIALS_REFUSED.contains(&c) => Failure::Credentials(detail),
        c if ACCESS_DENIED.contains(&c) => Failure::Denied(server_text(&message)),
        c if REQUEST_REFUSED.contains(&c) && from_cloudwatch && status == 400 => Failure::Invalid(detail),
        _ if status == 429 => Failure::Transient { throttled: true, detail },
        _ if status >= 500 => Failure::Transient { throttled: false, detail },
        _ if status == 403 => Failure::Denied(server_text(&message)),
        _ => Failure::Misbehaving {
            status,
            detail: format!("HTTP {status} {detail}: not an answer CloudWatch Logs documents for this call"),
        },
    }
}

/// An error in one of AWS's shapes.
struct AwsError {
    code: String,
    message: String,
    /// CloudWatch Logs' own JSON shape (not the XML one of authentication errors).
    from_cloudwatch: bool,
}

/// The error an answer states in AWS's shapes: CloudWatch Logs' JSON (a JSON content type, an
/// object body, the type in `x-amzn-ErrorType` or `__type`), or the XML `<Error><Code>` of
/// authentication errors. `None` for anything else (HTML, empty, foreign JSON).
fn aws_error(raw: &HttpResponse) -> Option<AwsError> {
    let content_type = media_type(raw);
    let body = raw.body().bytes().unwrap_or_default();
    if JSON_TYPES.contains(&content_type.as_str()) {
        let fields = json_object_strings(body, &["__type", "message", "Message"])?;
        let header = raw.headers().get("x-amzn-errortype");
        let code = header.or(fields[0].as_deref()).map(sanitize_code)?;
        let message = fields[1].clone().or_else(|| fields[2].clone()).unwrap_or_default();
        return Some(AwsError { code: code.to_owned(), message, from_cloudwatch: true });
    }
    if XML_TYPES.contains(&content_type.as_str()) || looks_like_xml_error(body) {
        let code = tag_text(body, "Code")?;
        let message = tag_text(body, "Message").unwrap_or_default();
        return Some(AwsError { code, message, from_cloudwatch: false });
    }
    None
}

/// AWS's XML error document whatever its content type (moto sends it as `text/html`).
fn looks_like_xml_error(body: &[u8]) -> bool {
    let text = body.trim_ascii_start();
    ["<?xml".as_bytes(), b"<ErrorResponse", b"<Error>", b"<Response>"].iter().any(|start| text.starts_with(start))
}

/// `aws.protocol#Type:http://…` → `Type`, as the SDK reads error codes.
fn sanitize_code(code: &str) -> &str {
    let code = code.split(':').next().unwrap_or(code);
    code.rsplit('#').next().unwrap_or(code)
}

/// The media type of an answer, lower case, without parameters.
fn media_type(raw: &HttpResponse) -> String {
    let value = raw.headers().get("content-type").unwrap_or("");
    value.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

/// The string values of `keys` in a body that is exactly one JSON object; `None` when the
/// body is anything else.
fn json_object_strings<const N: usize>(body: &[u8], keys: &[&str; N]) -> Option<[Option<String>; N]> {
    let mut found: [Option<String>; N] = std::array::from_fn(|_| None);
    let mut tokens = json_token_iter(body).peekable();
    if !matches!(tokens.next(), Some(Ok(Token::StartObject { .. }))) {
        return None;
    }
    loop {
        match tokens.next()?.ok()? {
            Token::EndObject { .. } => break,
            Token::ObjectKey { key, .. } => {
                if let Some(Ok(Token::ValueString { value, .. })) = tokens.peek() {
                    if let Some(i) = keys.iter().position(|k| *k == key.as_escaped_str()) {
                        found[i] = value.to_unescaped().ok().map(|v| v.into_owned());
                    }
                }
                skip_value(&mut tokens).ok()?;
            }
            _ => return None,
        }
    }
    tokens.next().is_none().then_some(found)
}

const NOT_A_SUCCESS: &str = "a success that is not CloudWatch Logs' JSON answer";

/// An answer that is not CloudWatch Logs', said without its body (which may be a whole page).
fn not_cloudwatch(raw: &HttpResponse, what: &str) -> String {
    let content_type = server_text(raw.headers().get("content-type").unwrap_or("none"));
    let length = raw.body().bytes().map_or(0, <[u8]>::len);
    let location = raw.headers().get("location").map(|l| format!(", location {}", server_text(l))).unwrap_or_default();
    format!(
        "HTTP {} (content-type {content_type}, {length} bytes{location}): {what}; a proxy or load balancer in the way?",
        raw.status().as_u16()
    )
}

/// A 2xx answer that is not CloudWatch Logs' (see `ExpectCloudWatchAnswer`), as the source of the
/// call's `ResponseError`; `classify` finds it by type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotCloudWatch {
    pub status: u16,
    pub detail: String,
}

impl fmt::Display for NotCloudWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

impl Error for NotCloudWatch {}

/// Checks a 2xx answer before the call counts as done: CloudWatch Logs answers PutLogEvents with
/// a JSON object. The SDK takes an empty or `null` body for an empty answer, and moto answers
/// with `text/html`; so the body must be a JSON object, or empty with CloudWatch's content
/// type. Anything else (a captive portal's page, a proxy's `OK`) fails the attempt as
/// `NotCloudWatch`, retried like a 5xx, so records are never counted as delivered on it.
#[derive(Debug)]
pub struct ExpectCloudWatchAnswer;

impl Intercept for ExpectCloudWatchAnswer {
    fn name(&self) -> &'static str {
        "cloudwatch_rs::ExpectCloudWatchAnswer"
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let raw = context.response();
        if context.output_or_error().is_err() || is_cloudwatch_success(raw) {
            return Ok(());
        }
        let detail = not_cloudwatch(raw, NOT_A_SUCCESS);
        Err(Box::new(NotCloudWatch { status: raw.status().as_u16(), detail }))
    }
}

/// A 2xx answer in CloudWatch Logs' shape (see `ExpectCloudWatchAnswer`).
pub fn is_cloudwatch_success(raw: &HttpResponse) -> bool {
    let body = raw.body().bytes().unwrap_or_default();
    if body.iter().all(u8::is_ascii_whitespace) {
        return JSON_TYPES.contains(&media_type(raw).as_str());
    }
    json_object_strings(body, &[]).is_some()
}

/// An error and its sources as one line, without the Debug dumps of `DisplayErrorContext`.
/// Each part may hold a server's words (an SDK error's message, a credential provider's body),
/// so each goes through `server_text`: redacted, escaped, cut.
pub fn error_chain(err: &(dyn Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut last = String::new();
    let mut current = Some(err);
    while let Some(e) = current {
        let text = e.to_string();
        if parts.is_empty() || !last.contains(&text) {
            parts.push(server_text(&text));
            last = text;
        }
        current = e.source();
    }
    parts.join(": ")
}

/// `<Tag>text</Tag>` from an XML error body (moto and STS answer authentication errors in XML).
fn tag_text(body: &[u8], tag: &str) -> Option<String> {
    let body = std::str::from_utf8(body).ok()?;
    let open = format!("<{tag}>");
    let rest = &body[body.find(&open)? + open.len()..];
    rest.find(&format!("</{tag}>")).map(|end| rest[..end].trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::provider::error::CredentialsError;
    use aws_sdk_cloudwatchlogs::error::ConnectorError;
    use aws_sdk_cloudwatchlogs::operation::put_log_events::PutLogEventsError;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    #[test]
    fn error_text_from_xml_bodies() {
        let xml = b"<ErrorResponse><Errors><Error><Code>AccessDenied</Code><Message>User: arn:aws:iam::111111111111:user/task is not authorized</Message></Error></Errors></ErrorResponse>";
        assert_eq!(tag_text(xml, "Code").as_deref(), Some("AccessDenied"));
        assert!(tag_text(xml, "Message").unwrap().contains("111111111111"));
    }

    /// A call that failed before it was sent because credentials could not be had, wrapped as
    /// the SDK's orchestrator wraps it.
    fn credentials_failure(source: CredentialsError) -> SdkError<PutLogEventsError> {
        SdkError::dispatch_failure(ConnectorError::other(Box::new(source), None))
    }

    #[test]
    fn the_caches_refusals_are_found_by_type_whatever_their_text() {
        let refused = |kind, message: &str| {
            classify(&credentials_failure(CredentialsError::provider_error(CredentialsRefused {
                kind,
                message: message.into(),
            })))
        };
        // texts that say nothing a text match could go by
        assert!(matches!(refused(Refusal::RoleDenied, "x"), Failure::NoCredentials(_)));
        assert!(matches!(refused(Refusal::NoBaseCredentials, "y"), Failure::NoCredentials(_)));
        assert!(matches!(refused(Refusal::BaseRefused, "z"), Failure::Credentials(_)));
        // and a refusal's words in an error that is not one do not make it one
        let text_only = classify(&credentials_failure(CredentialsError::provider_error(
            "AccessDenied: not authorized; no base AWS credentials found; InvalidClientTokenId",
        )));
        assert!(matches!(text_only, Failure::Transient { throttled: false, .. }), "{text_only:?}");
    }

    /// An answer as the SDK hands it to `classify`: status, headers, body.
    fn answer(status: u16, headers: &[(&str, &str)], body: &str) -> HttpResponse {
        let mut raw = HttpResponse::new(status.try_into().unwrap(), SdkBody::from(body.to_owned()));
        for (k, v) in headers {
            raw.headers_mut().insert(k.to_string(), v.to_string());
        }
        raw
    }

    fn classified(status: u16, headers: &[(&str, &str)], body: &str) -> Failure {
        let err = PutLogEventsError::generic(ErrorMetadata::builder().build());
        classify(&SdkError::service_error(err, answer(status, headers, body)))
    }

    const AMZ_JSON: (&str, &str) = ("content-type", "application/x-amz-json-1.1");
    const HTML: (&str, &str) = ("content-type", "text/html; charset=utf-8");

    #[test]
    fn only_cloudwatchs_own_refusal_drops_a_batch() {
        let invalid = r#"{"__type":"InvalidParameterException","message":"Log events in a single PutLogEvents request must be in chronological order."}"#;
        assert!(
            matches!(classified(400, &[AMZ_JSON], invalid), Failure::Invalid(d) if d.starts_with("InvalidParameterException: Log events"))
        );
        // the type in the header only, with a namespace, as some AWS front ends send it
        let header = ("x-amzn-ErrorType", "InvalidParameterException:http://internal.amazon.com/coral/");
        assert!(matches!(classified(400, &[AMZ_JSON, header], r#"{"message":"bad"}"#), Failure::Invalid(_)));
        assert!(matches!(
            classified(400, &[AMZ_JSON], r#"{"__type":"com.amazonaws.logs#InvalidParameterException"}"#),
            Failure::Invalid(_)
        ));
        let already = r#"{"__type":"DataAlreadyAcceptedException","message":"already"}"#;
        assert!(matches!(classified(400, &[("content-type", "application/json")], already), Failure::Invalid(_)));
        // the same words in any other shape, or with another status, are not CloudWatch's refusal
        for (status, headers, body) in [
            (400, &[HTML][..], invalid),
            (400, &[][..], invalid),
            (413, &[AMZ_JSON][..], invalid),
            (400, &[("content-type", "text/xml")][..], "<Error><Code>InvalidParameterException</Code></Error>"),
            (400, &[AMZ_JSON][..], "{\"__type\":\"InvalidParameterException\"} trailing"),
        ] {
            let f = classified(status, headers, body);
            assert!(
                matches!(f, Failure::Misbehaving { status: s, .. } if s == status),
                "{status} {headers:?} {body}: {f:?}"
            );
        }
    }

    #[test]
    fn what_proxies_and_load_balancers_answer_is_misbehaving_and_retried() {
        let page = "<html><head><title>404 Not Found</title></head><body>nginx</body></html>";
        type Case<'a> = (u16, &'a [(&'a str, &'a str)], &'a str);
        let cases: &[Case] = &[
            (302, &[("location", "https://portal.example/login")], ""),
            (301, &[HTML], page),
            (404, &[HTML], page),
            (413, &[HTML], "<html><body>413 Request Entity Too Large</body></html>"),
            (400, &[("content-type", "application/json")], r#"{"error":"Bad Request","status":400}"#),
            (400, &[("content-type", "application/json")], r#"{"code":"InvalidParameterException"}"#),
            (400, &[AMZ_JSON], ""),
            (502, &[HTML], "<html><body>502 Bad Gateway</body></html>"),
            (504, &[HTML], "<html><body>504 Gateway Time-out</body></html>"),
            (503, &[("content-type", "text/plain")], "upstream connect error"),
            // a 2xx the SDK could not read comes as a service error with its status
            (200, &[AMZ_JSON], "OK"),
            (200, &[HTML], page),
            // an AWS shape with a type CloudWatch does not document for these calls
            (400, &[AMZ_JSON], r#"{"__type":"UnknownOperationException"}"#),
        ];
        for (status, headers, body) in cases {
            let f = classified(*status, headers, body);
            let Failure::Misbehaving { status: s, detail } = &f else { panic!("{status} {body}: {f:?}") };
            assert_eq!(s, status);
            assert!(detail.contains(&format!("HTTP {status}")), "{detail}");
            assert!(!detail.contains("nginx"), "the page itself is not repeated: {detail}");
        }
        let redirect = classified(302, &[("location", "https://portal.example/login")], "");
        assert!(
            matches!(&redirect, Failure::Misbehaving { detail, .. } if detail.contains("location https://portal.example/login"))
        );
    }

    #[test]
    fn cloudwatchs_other_answers_keep_their_meaning() {
        let json = |t: &str, m: &str| format!(r#"{{"__type":"{t}","message":"{m}"}}"#);
        let c = |status, t: &str, m: &str| classified(status, &[AMZ_JSON], &json(t, m));
        assert_eq!(
            c(400, "ResourceNotFoundException", "The specified log group does not exist."),
            Failure::GroupMissing
        );
        assert_eq!(
            c(400, "ResourceNotFoundException", "The specified log stream does not exist."),
            Failure::StreamMissing
        );
        assert_eq!(c(400, "ResourceAlreadyExistsException", "x"), Failure::AlreadyExists);
        assert!(matches!(c(400, "ThrottlingException", "Rate exceeded"), Failure::Transient { throttled: true, .. }));
        assert!(matches!(c(503, "ServiceUnavailableException", "x"), Failure::Transient { throttled: false, .. }));
        assert!(matches!(c(500, "InternalFailure", "x"), Failure::Transient { throttled: false, .. }));
        assert!(matches!(c(400, "InvalidSequenceTokenException", "x"), Failure::Transient { .. }));
        assert!(matches!(c(400, "UnrecognizedClientException", "x"), Failure::Credentials(_)));
        assert!(matches!(c(400, "ExpiredTokenException", "x"), Failure::Credentials(_)));
        assert!(matches!(c(400, "AccessDeniedException", "no"), Failure::Denied(m) if m == "no"));
        // AWS's XML shape of authentication errors (moto, STS)
        let xml =
            "<ErrorResponse><Error><Code>AccessDenied</Code><Message>not authorized</Message></Error></ErrorResponse>";
        assert!(
            matches!(classified(403, &[("content-type", "text/xml")], xml), Failure::Denied(m) if m == "not authorized")
        );
        let moto = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>{xml}");
        assert!(matches!(classified(403, &[HTML], &moto), Failure::Denied(_)));
        // a proxy's 403 page is not an AWS refusal
        assert!(matches!(classified(403, &[HTML], "<html>Forbidden</html>"), Failure::Misbehaving { .. }));
        assert!(matches!(
            classified(403, &[HTML], "<!DOCTYPE html><html><Code>AccessDenied</Code></html>"),
            Failure::Misbehaving { .. }
        ));
    }

    #[test]
    fn network_timeouts_and_unreadable_answers_are_retried() {
        let network: SdkError<PutLogEventsError> =
            SdkError::dispatch_failure(ConnectorError::io("connection reset".into()));
        assert!(matches!(classify(&network), Failure::Transient { throttled: false, .. }));
        let timeout: SdkError<PutLogEventsError> = SdkError::timeout_error("attempt timed out");
        assert!(matches!(classify(&timeout), Failure::Transient { .. }));
        let broken: SdkError<PutLogEventsError> = SdkError::response_error("body cut off", answer(200, &[], "{"));
        assert!(matches!(classify(&broken), Failure::Transient { .. }));
        let odd = NotCloudWatch { status: 200, detail: "HTTP 200 (text/html)".into() };
        let odd: SdkError<PutLogEventsError> = SdkError::response_error(odd, answer(200, &[HTML], "<html/>"));
        assert_eq!(classify(&odd), Failure::Misbehaving { status: 200, detail: "HTTP 200 (text/html)".into() });
        let unsent: SdkError<PutLogEventsError> = SdkError::construction_failure("no endpoint");
        assert!(matches!(classify(&unsent), Failure::NotSent(_)));
    }

    #[test]
    fn a_success_counts_only_as_cloudwatchs_json() {
        let ok = |headers: &[(&str, &str)], body: &str| is_cloudwatch_success(&answer(200, headers, body));
        assert!(ok(&[AMZ_JSON], "{}"));
        assert!(ok(&[AMZ_JSON], r#"{"rejectedLogEventsInfo":{"tooOldLogEventEndIndex":2}}"#));
        assert!(ok(&[AMZ_JSON], ""));
        // moto answers its JSON as text/html
        assert!(ok(&[HTML], r#"{"nextSequenceToken": "1"}"#));
        assert!(!ok(&[HTML], ""));
        assert!(!ok(&[HTML], "<html><body>Welcome to the hotel network</body></html>"));
        assert!(!ok(&[AMZ_JSON], "null"));
        assert!(!ok(&[AMZ_JSON], "[]"));
        assert!(!ok(&[("content-type", "text/plain")], "OK"));
        assert!(!ok(&[AMZ_JSON], "{} {}"));
    }
}
