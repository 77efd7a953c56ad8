//! The failure taxonomy: what an answer (or the lack of one) means for the batch that asked.
//! Every decision is made on types — the SDK's error variants and codes, our own
//! `CredentialsRefused` found by walking the error's sources — never on message text.

use crate::log::server_text;
use aws_sdk_cloudwatchlogs::error::{ProvideErrorMetadata, SdkError};
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
    /// AccessDenied and friends: the principal lacks a permission or the role's trust.
    Denied(String),
    /// Credentials CloudWatch refused (expired, revoked): worth retrying with fresh ones.
    Credentials(String),
    /// No credentials to be had: the base chain found none, or AssumeRole was refused.
    NoCredentials(String),
    /// The request itself was refused (InvalidParameter…): retrying cannot help.
    Invalid(String),
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
/// Error codes of a service having trouble: worth retrying soon.
const UNAVAILABLE: &[&str] = &["ServiceUnavailableException", "InternalFailure", "OperationAbortedException"];
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

/// Sorts an SDK error into what delivery does next.
pub fn classify<E>(err: &SdkError<E>) -> Failure
where
    E: ProvideErrorMetadata + Error + Send + Sync + 'static,
{
    match err {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let body = service.raw().body().bytes().unwrap_or_default();
            let code = service.err().code().map(str::to_owned).or_else(|| tag_text(body, "Code"));
            let message = service
                .err()
                .message()
                .map(str::to_owned)
                .or_else(|| tag_text(body, "Message"))
                .unwrap_or_else(|| format!("HTTP {status}"));
            // the server's words, redacted, escaped and cut, for the log; decisions use the raw code
            let detail = format!("{}: {}", server_text(code.as_deref().unwrap_or("error")), server_text(&message));
            match code.as_deref().unwrap_or("") {
                "ResourceNotFoundException" if message.contains("log group") => Failure::GroupMissing,
                "ResourceNotFoundException" => Failure::StreamMissing,
                "ResourceAlreadyExistsException" => Failure::AlreadyExists,
                c if THROTTLING.contains(&c) => Failure::Transient { throttled: true, detail },
                c if UNAVAILABLE.contains(&c) => Failure::Transient { throttled: false, detail },
                c if CREDENTIALS_REFUSED.contains(&c) => Failure::Credentials(detail),
                c if ACCESS_DENIED.contains(&c) => Failure::Denied(server_text(&message)),
                _ if status == 429 => Failure::Transient { throttled: true, detail },
                _ if status >= 500 => Failure::Transient { throttled: false, detail },
                _ if status == 403 => Failure::Denied(server_text(&message)),
                _ => Failure::Invalid(detail),
            }
        }
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
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
            Failure::Transient { throttled: false, detail: error_chain(err) }
        }
        _ => Failure::Invalid(error_chain(err)),
    }
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

/// `<Tag>text</Tag>` from an XML error body (moto and STS answer auth errors in XML), or the
/// same key from a JSON body.
fn tag_text(body: &[u8], tag: &str) -> Option<String> {
    let body = std::str::from_utf8(body).ok()?;
    let open = format!("<{tag}>");
    if let Some(start) = body.find(&open) {
        let rest = &body[start + open.len()..];
        return rest.find(&format!("</{tag}>")).map(|end| rest[..end].trim().to_owned());
    }
    let key = format!("\"{}\"", tag.to_ascii_lowercase());
    let start = body.to_ascii_lowercase().find(&key)? + key.len();
    let rest = body[start..].trim_start().strip_prefix(':')?.trim_start().strip_prefix('"')?;
    rest.find('"').map(|end| rest[..end].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::provider::error::CredentialsError;
    use aws_sdk_cloudwatchlogs::error::ConnectorError;
    use aws_sdk_cloudwatchlogs::operation::put_log_events::PutLogEventsError;

    #[test]
    fn error_text_from_xml_and_json_bodies() {
        let xml = b"<ErrorResponse><Errors><Error><Code>AccessDenied</Code><Message>User: arn:aws:iam::111111111111:user/task is not authorized</Message></Error></Errors></ErrorResponse>";
        assert_eq!(tag_text(xml, "Code").as_deref(), Some("AccessDenied"));
        assert!(tag_text(xml, "Message").unwrap().contains("111111111111"));
        let json = br#"{"__type": "X", "message": "The specified log group does not exist."}"#;
        assert_eq!(tag_text(json, "Message").as_deref(), Some("The specified log group does not exist."));
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
}
