//! The credential side of the strict endpoint, on the same port: STS (`AssumeRole`,
//! `AssumeRoleWithWebIdentity`, `GetCallerIdentity`, awsQuery/XML), ECS/EKS container
//! credentials (`GET /container-credentials`, optionally requiring an Authorization token) and
//! EC2 IMDSv2 (`PUT /latest/api/token`, `GET /latest/meta-data/iam/security-credentials/…`) and
//! the ECS task metadata endpoint v4 (`GET /v4/<id>/task`).
//!
//! Every credential it issues lives `lifetime` and can be revoked early; CloudWatch calls signed
//! with an issued key that has expired or was revoked get `ExpiredTokenException`. STS can be
//! taken down (503) to play an outage. Calls and rejections are counted.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The static keys of the "task account" principal the tests give the plugin.
pub const TASK_ACCESS_KEY: &str = "AKIDTASKSTRICT";
pub const TASK_PRINCIPAL: &str = "arn:aws:iam::111111111111:user/task";
/// What the ECS task metadata stand-in (`/v4/<id>/task`) answers.
pub const ECS_CLUSTER_ARN: &str = "arn:aws:ecs:us-east-1:111111111111:cluster/prod-cluster";
pub const ECS_TASK_ARN: &str = "arn:aws:ecs:us-east-1:111111111111:task/prod-cluster/0123456789abcdef0123456789abcdef";

struct Issued {
    secret: String,
    token: String,
    expiry: SystemTime,
    revoked: bool,
    /// the role assumed ("" for container / IMDS credentials)
    role: String,
}

pub struct Sts {
    lifetime_ms: AtomicU64,
    down: AtomicBool,
    issued: Mutex<HashMap<String, Issued>>,
    next: AtomicU64,
    container_token: Mutex<Option<String>>,
    pub assume_role_calls: AtomicU64,
    pub web_identity_calls: AtomicU64,
    pub caller_identity_calls: AtomicU64,
    pub container_calls: AtomicU64,
    pub imds_calls: AtomicU64,
    pub outage_refusals: AtomicU64,
    /// CloudWatch calls refused because their credentials had expired or were revoked.
    pub expired_token_rejections: AtomicU64,
    /// Accepted CloudWatch calls by access key.
    pub calls_by_key: Mutex<HashMap<String, u64>>,
    /// `DurationSeconds` of the last AssumeRole (0 when absent).
    pub last_duration_seconds: AtomicU64,
    /// AssumeRole calls by `RoleArn`, refused ones included.
    pub assume_role_by_role: Mutex<HashMap<String, u64>>,
}

impl Default for Sts {
    fn default() -> Self {
        Sts {
            lifetime_ms: AtomicU64::new(3_600_000),
            down: AtomicBool::new(false),
            issued: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
            container_token: Mutex::new(None),
            assume_role_calls: AtomicU64::new(0),
            web_identity_calls: AtomicU64::new(0),
            caller_identity_calls: AtomicU64::new(0),
            container_calls: AtomicU64::new(0),
            imds_calls: AtomicU64::new(0),
            outage_refusals: AtomicU64::new(0),
            expired_token_rejections: AtomicU64::new(0),
            calls_by_key: Mutex::new(HashMap::new()),
            last_duration_seconds: AtomicU64::new(0),
            assume_role_by_role: Mutex::new(HashMap::new()),
        }
    }
}

impl Sts {
    /// How long credentials issued from now on live.
    pub fn set_lifetime(&self, lifetime: Duration) {
        self.lifetime_ms.store(lifetime.as_millis() as u64, Relaxed);
    }

    /// STS answers 503 while down (container credentials and IMDS keep working).
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Relaxed);
    }

    /// The Authorization header container-credential requests must carry.
    pub fn require_container_token(&self, token: &str) {
        *self.container_token.lock().unwrap() = Some(token.to_string());
    }

    /// Revokes every credential issued so far, before its stated expiry.
    pub fn revoke_all(&self) {
        for c in self.issued.lock().unwrap().values_mut() {
            c.revoked = true;
        }
    }

    /// Every secret and session token issued, to check none of them was logged.
    pub fn secrets(&self) -> Vec<String> {
        self.issued.lock().unwrap().values().flat_map(|c| [c.secret.clone(), c.token.clone()]).collect()
    }

    /// AssumeRole calls by `RoleArn` so far.
    pub fn assume_role_calls_by_role(&self) -> HashMap<String, u64> {
        self.assume_role_by_role.lock().unwrap().clone()
    }

    /// Accepted CloudWatch calls by the role their credentials were issued for.
    pub fn calls_by_role(&self) -> HashMap<String, u64> {
        let mut out = HashMap::new();
        for (key, n) in self.keys_used() {
            *out.entry(self.role_of(&key).unwrap_or_default()).or_default() += n;
        }
        out
    }

    pub fn keys_used(&self) -> HashMap<String, u64> {
        self.calls_by_key.lock().unwrap().clone()
    }

    /// The role an issued key belongs to ("" for container / IMDS credentials); None if not issued here.
    pub fn role_of(&self, key: &str) -> Option<String> {
        self.issued.lock().unwrap().get(key).map(|i| i.role.clone())
    }

    fn issue(&self) -> (String, String, String, SystemTime) {
        self.issue_for("")
    }

    fn issue_for(&self, role: &str) -> (String, String, String, SystemTime) {
        let n = self.next.fetch_add(1, Relaxed);
        let key = format!("ASIASTRICT{n:010}");
        let secret = format!("issued-secret-{n}-{:x}", nanos());
        let token = format!("issued-token-{n}-{:x}", nanos().rotate_left(17));
        let expiry = SystemTime::now() + Duration::from_millis(self.lifetime_ms.load(Relaxed));
        self.issued.lock().unwrap().insert(
            key.clone(),
            Issued { secret: secret.clone(), token: token.clone(), expiry, revoked: false, role: role.to_string() },
        );
        (key, secret, token, expiry)
    }
}

fn nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64
}

fn iso8601(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap().as_secs();
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

fn form(body: &[u8]) -> HashMap<String, String> {
    let decode = |s: &str| {
        let s = s.replace('+', " ");
        let mut out = Vec::new();
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' && i + 2 < b.len() {
                if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                    out.push(v);
                    i += 3;
                    continue;
                }
            }
            out.push(b[i]);
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

type Answer = (u16, Option<&'static str>, String);

fn sts_error(status: u16, code: &'static str, message: &str) -> Answer {
    (
        status,
        None,
        format!(
            "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>{code}</Code>\
             <Message>{message}</Message></Error><RequestId>strict</RequestId></ErrorResponse>"
        ),
    )
}

/// The access key a SigV4-signed request names.
fn access_key(headers: &HashMap<String, String>) -> Option<String> {
    let auth = headers.get("authorization")?;
    let cred = auth.split("Credential=").nth(1)?;
    Some(cred.split('/').next()?.to_string())
}

/// For CloudWatch calls: refuses one signed with an expired or revoked issued credential.
pub fn check_signature(sts: &Sts, headers: &HashMap<String, String>) -> Option<Answer> {
    let key = access_key(headers).unwrap_or_default();
    if key.starts_with("ASIASTRICT") {
        let issued = sts.issued.lock().unwrap();
        let refusal = match issued.get(&key) {
            None => Some(("UnrecognizedClientException", "The security token included in the request is invalid.")),
            Some(c) if c.revoked || SystemTime::now() >= c.expiry => {
                Some(("ExpiredTokenException", "The security token included in the request is expired"))
            }
            Some(c) if headers.get("x-amz-security-token") != Some(&c.token) => {
                Some(("UnrecognizedClientException", "The security token included in the request is invalid."))
            }
            // a role whose name says so may not write logs
            Some(c) if c.role.contains("nowrite") => {
                let message = format!(
                    "User: arn:aws:sts::222222222222:assumed-role/nowrite/session is not authorized to perform: \
                     logs:PutLogEvents on resource: (role {})",
                    c.role
                );
                return Some((
                    400,
                    Some("AccessDeniedException"),
                    serde_json::json!({ "__type": "AccessDeniedException", "message": message }).to_string(),
                ));
            }
            _ => None,
        };
        if let Some((kind, message)) = refusal {
            if kind == "ExpiredTokenException" {
                sts.expired_token_rejections.fetch_add(1, Relaxed);
            }
            return Some((400, Some(kind), serde_json::json!({ "__type": kind, "message": message }).to_string()));
        }
    }
    *sts.calls_by_key.lock().unwrap().entry(key).or_default() += 1;
    None
}

/// STS, container credentials and IMDS.
pub fn handle(sts: &Sts, headers: &HashMap<String, String>, body: &[u8]) -> Answer {
    let method = headers.get(":method").map(String::as_str).unwrap_or("");
    let path = headers.get(":path").map(String::as_str).unwrap_or("");
    if path.starts_with("/container-credentials") {
        sts.container_calls.fetch_add(1, Relaxed);
        if let Some(want) = sts.container_token.lock().unwrap().clone() {
            if headers.get("authorization") != Some(&want) {
                return (401, None, "{\"message\":\"bad authorization token\"}".into());
            }
        }
        let (key, secret, token, expiry) = sts.issue();
        return (200, None, serde_json::json!({"AccessKeyId": key, "SecretAccessKey": secret, "Token": token, "Expiration": iso8601(expiry)}).to_string());
    }
    if path.starts_with("/v4/") && path.ends_with("/task") {
        // ECS task metadata endpoint v4 (`${ECS_CONTAINER_METADATA_URI_V4}/task`), the fields a name template reads
        return (
            200,
            None,
            serde_json::json!({"Cluster": ECS_CLUSTER_ARN, "TaskARN": ECS_TASK_ARN, "Family": "app", "Revision": "3"})
                .to_string(),
        );
    }
    if path == "/latest/api/token" && method == "PUT" {
        return (200, None, "imds-session-token".into());
    }
    if path.starts_with("/latest/meta-data/iam/security-credentials") {
        if headers.get("x-aws-ec2-metadata-token").map(String::as_str) != Some("imds-session-token") {
            return (401, None, String::new());
        }
        sts.imds_calls.fetch_add(1, Relaxed);
        let role = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
        if role == "security-credentials" {
            return (200, None, "strict-instance-role".into());
        }
        let (key, secret, token, expiry) = sts.issue();
        return (
            200,
            None,
            serde_json::json!({"Code": "Success", "LastUpdated": iso8601(SystemTime::now()), "Type": "AWS-HMAC",
                "AccessKeyId": key, "SecretAccessKey": secret, "Token": token, "Expiration": iso8601(expiry)})
            .to_string(),
        );
    }
    let params = form(body);
    let action = params.get("Action").map(String::as_str).unwrap_or("");
    if sts.down.load(Relaxed) {
        sts.outage_refusals.fetch_add(1, Relaxed);
        return sts_error(503, "ServiceUnavailable", "STS is down (stand-in outage)");
    }
    let caller = access_key(headers).unwrap_or_default();
    let caller_arn = if caller.starts_with("ASIASTRICT") {
        "arn:aws:sts::222222222222:assumed-role/strict/session".to_string()
    } else {
        TASK_PRINCIPAL.to_string()
    };
    match action {
        "GetCallerIdentity" => {
            sts.caller_identity_calls.fetch_add(1, Relaxed);
            (
                200,
                None,
                format!(
                    "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><GetCallerIdentityResult>\
                     <Arn>{caller_arn}</Arn><UserId>AIDASTRICT</UserId><Account>111111111111</Account></GetCallerIdentityResult>\
                     <ResponseMetadata><RequestId>strict</RequestId></ResponseMetadata></GetCallerIdentityResponse>"
                ),
            )
        }
        "AssumeRole" | "AssumeRoleWithWebIdentity" => {
            let role = params.get("RoleArn").cloned().unwrap_or_default();
            if action == "AssumeRole" {
                sts.assume_role_calls.fetch_add(1, Relaxed);
                *sts.assume_role_by_role.lock().unwrap().entry(role.clone()).or_default() += 1;
                let duration = params.get("DurationSeconds").and_then(|d| d.parse().ok()).unwrap_or(0);
                sts.last_duration_seconds.store(duration, Relaxed);
                if role.contains("denied") {
                    return sts_error(
                        403,
                        "AccessDenied",
                        &format!("User: {caller_arn} is not authorized to perform: sts:AssumeRole on resource: {role}"),
                    );
                }
            } else {
                sts.web_identity_calls.fetch_add(1, Relaxed);
                if params.get("WebIdentityToken").is_none_or(|t| t.is_empty()) {
                    return sts_error(400, "InvalidIdentityToken", "no web identity token");
                }
            }
            let session = params.get("RoleSessionName").cloned().unwrap_or_default();
            let (key, secret, token, expiry) = sts.issue_for(&role);
            (
                200,
                None,
                format!(
                    "<{action}Response xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><{action}Result><Credentials>\
                     <AccessKeyId>{key}</AccessKeyId><SecretAccessKey>{secret}</SecretAccessKey><SessionToken>{token}</SessionToken>\
                     <Expiration>{}</Expiration></Credentials><AssumedRoleUser><AssumedRoleId>AROASTRICT:{session}</AssumedRoleId>\
                     <Arn>arn:aws:sts::222222222222:assumed-role/strict/{session}</Arn></AssumedRoleUser></{action}Result>\
                     <ResponseMetadata><RequestId>strict</RequestId></ResponseMetadata></{action}Response>",
                    iso8601(expiry)
                ),
            )
        }
        other => sts_error(400, "InvalidAction", &format!("{other} is not served here")),
    }
}
