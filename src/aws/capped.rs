//! Every answer a server sends is read with a cap: the HTTPS client every AWS call goes through
//! (CloudWatch, STS, the default chain's container and IMDS providers) hands the SDK answer
//! bodies that fail once they pass `MAX_ANSWER_BYTES`, counted as the bytes arrive. The SDK
//! collects a body whole before it parses it, so without the cap a server that never ends its
//! answer (or sends a huge one) would grow memory until the attempt's deadline. A refused
//! answer fails the attempt as a response error: retried like a 5xx.

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::runtime_components::{RuntimeComponents, RuntimeComponentsBuilder};
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The largest answer read from any server: AWS API answers, credentials and metadata are a
/// few KiB; this leaves room for the largest of them (an error listing rejected events) and
/// bounds the memory of one call whatever the server sends.
pub const MAX_ANSWER_BYTES: usize = 256 << 10;

/// An answer refused for its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerTooLarge {
    /// Where the answer came from (scheme, host, path; never the query).
    pub from: String,
    /// Bytes received when it was refused, or the length its Content-Length announced.
    pub seen: u64,
    pub announced: bool,
}

impl fmt::Display for AnswerTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let how = if self.announced { "announced by its Content-Length" } else { "received before it was cut off" };
        write!(
            f,
            "the answer from {} was refused: larger than the {} bytes an answer may have ({} bytes {})",
            self.from, MAX_ANSWER_BYTES, self.seen, how
        )
    }
}

impl std::error::Error for AnswerTooLarge {}

/// A body that fails once more than `cap` bytes of it arrived (or were announced).
#[derive(Debug)]
pub struct CappedBody<B> {
    inner: B,
    cap: u64,
    received: u64,
    announced: Option<u64>,
    from: String,
    refused: bool,
}

impl<B> CappedBody<B> {
    /// `announced`: the answer's Content-Length, when it has one; over the cap it is refused
    /// before a byte of it is read.
    pub fn new(inner: B, cap: usize, announced: Option<u64>, from: String) -> Self {
        CappedBody { inner, cap: cap as u64, received: 0, announced, from, refused: false }
    }

    fn refuse(&mut self, seen: u64, announced: bool) -> AnswerTooLarge {
        self.refused = true;
        AnswerTooLarge { from: std::mem::take(&mut self.from), seen, announced }
    }
}

impl<B> Body for CappedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if this.refused {
            return Poll::Ready(None);
        }
        if let Some(announced) = this.announced.filter(|&n| n > this.cap) {
            return Poll::Ready(Some(Err(this.refuse(announced, true).into())));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received += data.len() as u64;
                    if this.received > this.cap {
                        let seen = this.received;
                        return Poll::Ready(Some(Err(this.refuse(seen, false).into())));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.refused || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        // never more than the cap, whatever the server announced: nothing reserves beyond it
        let hint = self.inner.size_hint();
        let mut capped = SizeHint::new();
        capped.set_lower(hint.lower().min(self.cap));
        if let Some(upper) = hint.upper() {
            capped.set_upper(upper.min(self.cap.saturating_add(1)).max(capped.lower()));
        }
        capped
    }
}

/// `client` with every answer body capped at `MAX_ANSWER_BYTES`.
pub fn capped(client: SharedHttpClient) -> SharedHttpClient {
    SharedHttpClient::new(CappedClient(client))
}

/// `connector` with every answer body capped at `MAX_ANSWER_BYTES`.
pub fn capped_connector(connector: SharedHttpConnector) -> SharedHttpConnector {
    SharedHttpConnector::new(CappedConnector(connector))
}

#[derive(Debug)]
struct CappedClient(SharedHttpClient);

impl HttpClient for CappedClient {
    fn http_connector(&self, settings: &HttpConnectorSettings, components: &RuntimeComponents) -> SharedHttpConnector {
        SharedHttpConnector::new(CappedConnector(self.0.http_connector(settings, components)))
    }

    fn validate_base_client_config(
        &self,
        components: &RuntimeComponentsBuilder,
        cfg: &ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        self.0.validate_base_client_config(components, cfg)
    }

    fn validate_final_config(
        &self,
        components: &RuntimeComponents,
        cfg: &ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        self.0.validate_final_config(components, cfg)
    }

    fn connector_metadata(&self) -> Option<aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata> {
        self.0.connector_metadata()
    }
}

#[derive(Debug)]
struct CappedConnector(SharedHttpConnector);

impl HttpConnector for CappedConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let from = request.uri().split('?').next().unwrap_or_default().to_owned();
        let answer = self.0.call(request);
        HttpConnectorFuture::new(async move { answer.await.map(|response| cap_response(response, from)) })
    }
}

/// The response with its body capped.
fn cap_response(mut response: HttpResponse, from: String) -> HttpResponse {
    let announced = response.headers().get("content-length").and_then(|v| v.trim().parse::<u64>().ok());
    let body = response.take_body();
    *response.body_mut() = SdkBody::from_body_1_x(CappedBody::new(body, MAX_ANSWER_BYTES, announced, from));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;

    /// Frames of `frame` bytes, forever.
    struct Endless {
        frame: Bytes,
        sent: u64,
    }

    impl Body for Endless {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            self.sent += self.frame.len() as u64;
            Poll::Ready(Some(Ok(Frame::data(self.frame.clone()))))
        }
    }

    /// Reads `body` to its end: the bytes, or the error.
    fn read_all<B>(mut body: B) -> Result<Vec<u8>, String>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: fmt::Display,
    {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let mut out = Vec::new();
            while let Some(frame) = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
                let frame = frame.map_err(|e| e.to_string())?;
                if let Some(data) = frame.data_ref() {
                    out.extend_from_slice(data);
                }
            }
            Ok(out)
        })
    }

    #[test]
    fn an_answer_up_to_the_cap_is_read_whole() {
        let answer = vec![b'x'; 1000];
        let body = CappedBody::new(SdkBody::from(answer.clone()), 1000, Some(1000), "http://x/".into());
        assert_eq!(read_all(body).unwrap(), answer);
    }

    #[test]
    fn an_endless_answer_fails_just_past_the_cap_and_is_read_no_further() {
        let mut body =
            CappedBody::new(Endless { frame: Bytes::from(vec![b'a'; 4096]), sent: 0 }, 10_000, None, "u".into());
        let err = read_all(&mut body).unwrap_err();
        assert!(err.contains("12288 bytes received"), "{err}");
        assert!(body.inner.sent <= 10_000 + 4096, "read {} bytes", body.inner.sent);
        assert!(body.is_end_stream());
    }

    #[test]
    fn an_announced_length_over_the_cap_is_refused_before_reading() {
        let mut body =
            CappedBody::new(Endless { frame: Bytes::from_static(b"{}"), sent: 0 }, 100, Some(50 << 20), "u".into());
        let err = read_all(&mut body).unwrap_err();
        assert!(err.contains("52428800 bytes announced"), "{err}");
        assert_eq!(body.inner.sent, 0);
    }

    #[test]
    fn a_server_that_announces_less_than_it_sends_is_still_cut_at_the_cap() {
        let body = CappedBody::new(SdkBody::from(vec![b'y'; 5000]), 4999, Some(10), "u".into());
        assert!(read_all(body).unwrap_err().contains("5000 bytes received"));
    }

    #[test]
    fn the_size_hint_never_exceeds_the_cap() {
        let body = CappedBody::new(SdkBody::from(vec![0u8; 5000]), 100, None, "u".into());
        assert!(body.size_hint().upper().unwrap() <= 101);
        assert!(body.size_hint().lower() <= 100);
    }

    /// A client whose every answer is a 200 with an endless body.
    #[derive(Debug)]
    struct EndlessServer;

    impl HttpClient for EndlessServer {
        fn http_connector(&self, _: &HttpConnectorSettings, _: &RuntimeComponents) -> SharedHttpConnector {
            SharedHttpConnector::new(EndlessServer)
        }
    }

    impl HttpConnector for EndlessServer {
        fn call(&self, _: HttpRequest) -> HttpConnectorFuture {
            let body = SdkBody::from_body_1_x(Endless { frame: Bytes::from(vec![b'{'; 8192]), sent: 0 });
            HttpConnectorFuture::ready(Ok(HttpResponse::new(200.try_into().unwrap(), body)))
        }
    }

    /// Through the SDK's own orchestrator (which collects the body before parsing it): the
    /// endless answer fails the attempt as a response error, which the taxonomy retries.
    #[test]
    fn through_the_sdk_an_endless_answer_is_a_transient_failure_naming_its_size() {
        use crate::aws::errors::{classify, Failure};
        let config = aws_sdk_cloudwatchlogs::Config::builder()
            .behavior_version(aws_sdk_cloudwatchlogs::config::BehaviorVersion::latest())
            .region(aws_sdk_cloudwatchlogs::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_cloudwatchlogs::config::Credentials::new("AKID", "s", None, None, "test"))
            .endpoint_url("http://127.0.0.1:9")
            .retry_config(aws_sdk_cloudwatchlogs::config::retry::RetryConfig::disabled())
            .http_client(capped(SharedHttpClient::new(EndlessServer)))
            .build();
        let client = aws_sdk_cloudwatchlogs::Client::from_conf(config);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let err = rt.block_on(client.describe_log_groups().send()).unwrap_err();
        match classify(&err) {
            Failure::Transient { throttled: false, detail } => {
                assert!(detail.contains("the answer from http://127.0.0.1:9/ was refused"), "{detail}");
                assert!(detail.contains(&format!("{} bytes received", MAX_ANSWER_BYTES + 8192)), "{detail}");
            }
            other => panic!("{other:?}"),
        }
    }
}
