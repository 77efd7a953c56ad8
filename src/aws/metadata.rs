//! Local metadata services over plain HTTP: the ECS task metadata endpoint (v4, else v3) for the
//! `$(ecs_*)` name variables, and a `credentials_endpoint` (the container-credentials JSON).
//! Both live on a link-local or loopback address and speak plain HTTP, so a minimal HTTP/1.1
//! GET serves; it runs at Init or at a credential refresh, never per record.

use crate::core::template::EcsMetadata;
use crate::core::url::split_http_url;
use aws_credential_types::provider::{self, error::CredentialsError, future, ProvideCredentials};
use aws_credential_types::Credentials;
use aws_smithy_json::deserialize::{json_token_iter, Token};
use std::collections::HashMap;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Largest answer read from a metadata service.
const MAX_ANSWER: usize = 1 << 20;

/// One GET; the body of a 200 answer, else an error saying what came back.
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
    let mut answer = Vec::new();
    (&mut conn).take(MAX_ANSWER as u64 + 1).read_to_end(&mut answer).await.map_err(|e| format!("GET {url}: {e}"))?;
    let (status, body) = parse_response(&answer).ok_or_else(|| format!("GET {url}: not an HTTP answer"))?;
    if status != 200 {
        return Err(format!("GET {url}: HTTP {status}: {}", crate::log::server_text(&body)));
    }
    Ok(body)
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

/// The string values of `keys` at the top level of a JSON object.
pub fn top_level_strings(json: &str, keys: &[&str]) -> HashMap<String, String> {
    let mut found = HashMap::new();
    let mut depth = 0usize;
    let mut current_key: Option<String> = None;
    for token in json_token_iter(json.as_bytes()) {
        let Ok(token) = token else { break };
        match token {
            Token::StartObject { .. } | Token::StartArray { .. } => {
                depth += 1;
                current_key = None;
            }
            Token::EndObject { .. } | Token::EndArray { .. } => depth = depth.saturating_sub(1),
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
    found
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
    let fields = top_level_strings(body, &["Cluster", "TaskARN"]);
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
        let body = get(&self.url, &[], Duration::from_secs(5)).await.map_err(CredentialsError::provider_error)?;
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

fn parse_credentials(body: &str) -> Result<Credentials, String> {
    let f = top_level_strings(body, &["AccessKeyId", "SecretAccessKey", "Token", "Expiration"]);
    let (Some(key), Some(secret)) = (f.get("AccessKeyId"), f.get("SecretAccessKey")) else {
        return Err("the answer has no AccessKeyId/SecretAccessKey".into());
    };
    let expiry = match f.get("Expiration") {
        Some(text) => Some(
            aws_smithy_types::DateTime::from_str(text, aws_smithy_types::date_time::Format::DateTime)
                .ok()
                .and_then(|t| SystemTime::try_from(t).ok())
                .ok_or_else(|| format!("Expiration '{text}' is not an RFC 3339 time"))?,
        ),
        None => None,
    };
    Ok(Credentials::new(key, secret, f.get("Token").cloned(), expiry, "credentials_endpoint"))
}

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

    #[test]
    fn container_credentials_json() {
        let c = parse_credentials(
            r#"{"AccessKeyId":"AKID","SecretAccessKey":"S","Token":"T","Expiration":"2030-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!((c.access_key_id(), c.session_token()), ("AKID", Some("T")));
        assert!(c.expiry().is_some());
        assert!(parse_credentials(r#"{"AccessKeyId":"AKID"}"#).is_err());
    }
}
