//! Local metadata services over plain HTTP: the ECS task metadata endpoint (v4, else v3) for the
//! `$(ecs_*)` name variables, and a `credentials_endpoint` (the container-credentials JSON).
//! Both live on a link-local or loopback address and speak plain HTTP, so a minimal HTTP/1.1
//! GET serves; it runs at Init or at a credential refresh, never per record.

use crate::aws::capped::{AnswerTooLarge, MAX_ANSWER_BYTES};
use crate::core::template::EcsMetadata;
use crate::core::url::split_http_url;
use aws_credential_types::provider::{self, error::CredentialsError, future, ProvideCredentials};
use aws_credential_types::Credentials;
use aws_smithy_json::deserialize::{json_token_iter, Token};
use std::collections::HashMap;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

/// Room for an answer's status line and headers, on top of the body's cap.
const MAX_HEAD_BYTES: usize = 16 << 10;

/// One GET; the body of a 200 answer, else an error saying what came back. An answer larger
/// than `MAX_ANSWER_BYTES` is refused, never cut and parsed.
pub async fn get(url: &str, headers: &[(&str, &str)], timeout: Duration) -> Result<String, String> {
    tokio::time::timeout(timeout, get_inner(url, headers))
        .await
        .unwrap_or_else(|_| Err(format!("GET {url}: no answer within {timeout:?}")))
}

async fn get_inner(url: &str, headers: &[(&str, &str)]) -> Result<String, String> {
    let (addr, host, path) = split_http_url(url).ok_or_else(|| format!("not an http:// URL: {url}"))?;
    let mut conn = tokio::net::TcpStream::connect(&addr).await.map_err(|e| format!("GET {url}: {e}"))?;
    let mut request =
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    conn.write_all(request.as_bytes()).await.map_err(|e| format!("GET {url}: {e}"))?;
    let answer = read_capped(&mut conn, url).await?;
    let (status, body) = parse_response(&answer).ok_or_else(|| format!("GET {url}: not an HTTP answer"))?;
    if status != 200 {
        return Err(format!("GET {url}: HTTP {status}: {}", crate::log::server_text(&body)));
    }
    Ok(body)
}

/// The whole answer, read until the server closes or its Content-Length is in; refused as soon
/// as its body (announced or received) passes `MAX_ANSWER_BYTES`.
async fn read_capped(conn: &mut (impl AsyncRead + Unpin), url: &str) -> Result<Vec<u8>, String> {
    let too_large = |seen: usize, announced: bool| {
        AnswerTooLarge { from: url.to_owned(), seen: seen as u64, announced }.to_string()
    };
    let mut answer = Vec::new();
    let mut buf = [0u8; 8192];
    let mut head: Option<(usize, Option<usize>)> = None;
    loop {
        let n = conn.read(&mut buf).await.map_err(|e| format!("GET {url}: {e}"))?;
        if n == 0 {
            return Ok(answer);
        }
        answer.extend_from_slice(&buf[..n]);
        if head.is_none() {
            let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4) else {
                if answer.len() > MAX_HEAD_BYTES {
                    return Err(format!("GET {url}: the answer's headers are larger than {MAX_HEAD_BYTES} bytes"));
                }
                continue;
            };
            head = Some((end, content_length(&answer[..end])));
        }
        let Some((head_end, announced)) = head else { continue };
        let received = answer.len() - head_end;
        match announced {
            Some(announced) if announced > MAX_ANSWER_BYTES => return Err(too_large(announced, true)),
            Some(announced) if received >= announced => return Ok(answer),
            _ if received > MAX_ANSWER_BYTES => return Err(too_large(received, false)),
            _ => {}
        }
    }
}

/// The Content-Length an answer's head announces.
fn content_length(head: &[u8]) -> Option<usize> {
    let head = std::str::from_utf8(head).ok()?;
    head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.trim().eq_ignore_ascii_case("content-length").then(|| value.trim().parse().ok())?
    })
}

/// Status and body of a whole HTTP/1.1 answer (identity or chunked).
fn parse_response(raw: &[u8]) -> Option<(u16, String)> {
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..head_end]).ok()?;
    let status: u16 = head.split_whitespace().nth(1)?.parse().ok()?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let mut body = &raw[head_end + 4..];
    let bytes = if chunked {
        let mut out = Vec::new();
        loop {
            let line_end = body.windows(2).position(|w| w == b"\r\n")?;
            let size_text = std::str::from_utf8(&body[..line_end]).ok()?.split(';').next()?.trim();
            let size = usize::from_str_radix(size_text, 16).ok()?;
            body = &body[line_end + 2..];
            if size == 0 {
                break;
            }
            out.extend_from_slice(body.get(..size)?);
            body = body.get(size + 2..).unwrap_or_default();
        }
        out
    } else {
        body.to_vec()
    };
    Some((status, String::from_utf8_lossy(&bytes).into_owned()))
}

/// The string values of `keys` at the top level of a JSON object; an error when the text is not
/// one whole JSON object, so a cut-off answer is refused rather than read in part.
pub fn top_level_strings(json: &str, keys: &[&str]) -> Result<HashMap<String, String>, String> {
    let not_json = || "the answer is not one whole JSON object".to_owned();
    let mut found = HashMap::new();
    let mut depth = 0usize;
    let mut tokens = 0usize;
    let mut current_key: Option<String> = None;
    for token in json_token_iter(json.as_bytes()) {
        let token = token.map_err(|_| not_json())?;
        tokens += 1;
        if tokens > 1 && depth == 0 {
            return Err(not_json());
        }
        match token {
            Token::StartObject { .. } => {
                depth += 1;
                current_key = None;
            }
            Token::StartArray { .. } if depth > 0 => {
                depth += 1;
                current_key = None;
            }
            Token::EndObject { .. } | Token::EndArray { .. } => depth = depth.saturating_sub(1),
            _ if depth == 0 => return Err(not_json()),
            Token::ObjectKey { key, .. } if depth == 1 => {
                current_key = key.to_unescaped().ok().map(|k| k.into_owned());
            }
            Token::ValueString { value, .. } if depth == 1 => {
                if let (Some(k), Ok(v)) = (current_key.take(), value.to_unescaped()) {
                    if keys.contains(&k.as_str()) {
                        found.insert(k, v.into_owned());
                    }
                }
            }
            _ => current_key = None,
        }
    }
    if tokens == 0 || depth != 0 {
        return Err(not_json());
    }
    Ok(found)
}

/// The task's cluster, ARN and id, from `ECS_CONTAINER_METADATA_URI_V4` (else `_URI`, v3).
pub async fn ecs_task(env: impl Fn(&str) -> Option<String>) -> Result<EcsMetadata, String> {
    let base = env("ECS_CONTAINER_METADATA_URI_V4")
        .or_else(|| env("ECS_CONTAINER_METADATA_URI"))
        .ok_or("neither ECS_CONTAINER_METADATA_URI_V4 nor ECS_CONTAINER_METADATA_URI is set (not on ECS?)")?;
    let body = get(&format!("{}/task", base.trim_end_matches('/')), &[], Duration::from_secs(5)).await?;
    ecs_from_task_json(&body)
}

/// `Cluster` may be a name or an ARN; the name is what `$(ecs_cluster)` gives (as the Go plugin).
pub fn ecs_from_task_json(body: &str) -> Result<EcsMetadata, String> {
    let fields = top_level_strings(body, &["Cluster", "TaskARN"]).map_err(|why| format!("ECS task metadata: {why}"))?;
    let (Some(cluster), Some(task_arn)) = (fields.get("Cluster"), fields.get("TaskARN")) else {
        return Err("the ECS task metadata has no Cluster or TaskARN".into());
    };
    let cluster = cluster.rsplit_once(":cluster/").map_or(cluster.as_str(), |(_, name)| name).to_owned();
    let task_id = task_arn.rsplit('/').next().unwrap_or(task_arn).to_owned();
    Ok(EcsMetadata { cluster, task_arn: task_arn.clone(), task_id })
}

/// Credentials from an HTTP endpoint answering the container-credentials JSON
/// (`AccessKeyId`, `SecretAccessKey`, `Token`, `Expiration`): the Go plugin's `credentials_endpoint`.
#[derive(Debug, Clone)]
pub struct EndpointCredentials {
    pub url: String,
}

impl EndpointCredentials {
    async fn fetch(&self) -> provider::Result {
        let body = get(&self.url, &[], Duration::from_secs(5))
            .await
            .map_err(|e| CredentialsError::provider_error(format!("credentials_endpoint: {e}")))?;
        parse_credentials(&body)
            .map_err(|e| CredentialsError::provider_error(format!("credentials_endpoint {}: {e}", self.url)))
    }
}

impl ProvideCredentials for EndpointCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.fetch())
    }
}

/// The container-credentials JSON: all four fields are required, and `Expiration` must be a
/// time, since credentials of unknown expiry would be used past it. Errors name the fields,
/// never their values (but for `Expiration`, which is no secret).
fn parse_credentials(body: &str) -> Result<Credentials, String> {
    let fields = top_level_strings(body, &CREDENTIAL_FIELDS)?;
    let missing: Vec<&str> =
        CREDENTIAL_FIELDS.into_iter().filter(|name| fields.get(*name).is_none_or(|v| v.is_empty())).collect();
    if !missing.is_empty() {
        return Err(format!("the answer lacks {} (it needs {})", missing.join(", "), CREDENTIAL_FIELDS.join(", ")));
    }
    let field = |name: &str| fields.get(name).cloned().unwrap_or_default();
    let expiration = field("Expiration");
    let expiry = aws_smithy_types::DateTime::from_str(&expiration, aws_smithy_types::date_time::Format::DateTime)
        .ok()
        .and_then(|t| SystemTime::try_from(t).ok())
        .ok_or_else(|| {
            let shown: String = expiration.chars().take(40).collect();
            format!("its Expiration {shown:?} is not an RFC 3339 time")
        })?;
    Ok(Credentials::new(
        field("AccessKeyId"),
        field("SecretAccessKey"),
        Some(field("Token")),
        Some(expiry),
        "credentials_endpoint",
    ))
}

/// What a container-credentials answer must hold.
const CREDENTIAL_FIELDS: [&str; 4] = ["AccessKeyId", "SecretAccessKey", "Token", "Expiration"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_and_plain_answers() {
        let plain = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
        assert_eq!(parse_response(plain), Some((200, "{}".into())));
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked), Some((200, "{\"a\":1}".into())));
    }

    #[test]
    fn ecs_task_fields_from_the_top_level_only() {
        let body = r#"{"Cluster":"arn:aws:ecs:us-east-1:1:cluster/prod","TaskARN":"arn:aws:ecs:us-east-1:1:task/prod/abc123",
            "Containers":[{"Name":"app","TaskARN":"nested","Cluster":"nested"}]}"#;
        let m = ecs_from_task_json(body).unwrap();
        assert_eq!((m.cluster.as_str(), m.task_id.as_str()), ("prod", "abc123"));
        assert!(ecs_from_task_json("{}").is_err());
    }

    const GOOD: &str =
        r#"{"AccessKeyId":"AKID","SecretAccessKey":"S3CR3T","Token":"T0K3N","Expiration":"2030-01-01T00:00:00Z"}"#;

    #[test]
    fn container_credentials_json() {
        let c = parse_credentials(GOOD).unwrap();
        assert_eq!((c.access_key_id(), c.session_token()), ("AKID", Some("T0K3N")));
        assert!(c.expiry().is_some());
    }

    #[test]
    fn container_credentials_need_every_field_and_say_which_is_missing_without_the_secrets() {
        for field in CREDENTIAL_FIELDS {
            let mut v: serde_json::Value = serde_json::from_str(GOOD).unwrap();
            v.as_object_mut().unwrap().remove(field);
            let err = parse_credentials(&v.to_string()).unwrap_err();
            assert!(err.contains(&format!("lacks {field} ")), "{field}: {err}");
            v[field] = "".into();
            let err = parse_credentials(&v.to_string()).unwrap_err();
            assert!(err.contains(&format!("lacks {field} ")), "{field} empty: {err}");
            assert!(!err.contains("S3CR3T") && !err.contains("T0K3N"), "{err}");
        }
    }

    #[test]
    fn a_cut_off_expiration_or_a_cut_off_answer_is_refused() {
        let cut_value = GOOD.replace("2030-01-01T00:00:00Z", "2030-01-01T0");
        let err = parse_credentials(&cut_value).unwrap_err();
        assert!(err.contains("Expiration \"2030-01-01T0\" is not an RFC 3339 time"), "{err}");
        for end in [GOOD.len() - 1, GOOD.find("Expiration").unwrap() + 16, 1] {
            let err = parse_credentials(&GOOD[..end]).unwrap_err();
            assert!(err.contains("not one whole JSON object"), "cut at {end}: {err}");
            assert!(!err.contains("S3CR3T") && !err.contains("T0K3N"), "{err}");
        }
        for not_one_object in ["", "[]", "\"x\"", "{} {}", "{\"AccessKeyId\":\"A\"}]"] {
            assert!(top_level_strings(not_one_object, &["AccessKeyId"]).is_err(), "{not_one_object}");
        }
    }

    /// A one-connection server on 127.0.0.1 answering `answer` (then filler forever when `endless`)
    /// to the first request; the URL, and how many bytes it wrote when the client hung up.
    fn serve_once(answer: Vec<u8>, endless: bool) -> (String, std::thread::JoinHandle<usize>) {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/creds", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut request = [0u8; 4096];
            let _ = conn.read(&mut request);
            let mut written = 0;
            let filler = vec![b'x'; 16 << 10];
            let mut next: &[u8] = &answer;
            while conn.write_all(next).is_ok() {
                written += next.len();
                if !endless {
                    break;
                }
                next = &filler;
            }
            written
        });
        (url, server)
    }

    fn get_now(url: &str) -> Result<String, String> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(get(url, &[], Duration::from_secs(5)))
    }

    #[test]
    fn an_answer_over_the_cap_is_refused_not_cut_and_parsed() {
        // announced: refused on its head
        let mut huge = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", 10 << 20).into_bytes();
        huge.extend_from_slice(GOOD.as_bytes());
        let (url, server) = serve_once(huge, false);
        let err = get_now(&url).unwrap_err();
        assert!(err.contains("10485760 bytes announced"), "{err}");
        server.join().unwrap();
        // not announced, never ending: refused just past the cap, and the client hangs up
        let (url, server) = serve_once(b"HTTP/1.1 200 OK\r\n\r\n{\"AccessKeyId\":\"".to_vec(), true);
        let err = get_now(&url).unwrap_err();
        assert!(err.contains("received before it was cut off"), "{err}");
        let written = server.join().unwrap();
        eprintln!("endless answer: the server wrote {written} bytes before the client hung up");
        // a whole answer up to the cap is read
        let mut fits = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", GOOD.len()).into_bytes();
        fits.extend_from_slice(GOOD.as_bytes());
        let (url, server) = serve_once(fits, false);
        assert_eq!(get_now(&url).unwrap(), GOOD);
        server.join().unwrap();
    }
}
