//! No secret in any log line, ever; and every line one clean line under 4 KiB (issue 15, points
//! 4 and 6). Every credential source the plugin can use is driven into its error paths against
//! a hostile stand-in on 127.0.0.1 whose every error answer echoes secrets in every shape (JSON
//! values, XML elements, form fields, a bare key-shaped string, the very secret the plugin was
//! given); the captured log must hold none of them, no raw CR or ESC, no forged line, and no
//! line of 4 KiB or more.
//!
//! The stand-in (`Hostile`, below) is a scripted plain-HTTP/1.1 server: one answer per kind of
//! request (CloudWatch, STS by action, container credentials, IMDS), the same port for all.

mod support;

use cwrs_test_host::{chunk, record, FB_5_1_1};
use serde_json::json;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use support::{serial, Env, Plugin};

/// Secrets the stand-in echoes in its error answers, each in its own shape.
const JSON_SECRET: &str = "hostile-json-secret-1";
const JSON_TOKEN: &str = "hostile-json-token-2";
const XML_SECRET: &str = "hostile-xml-secret-3";
const XML_TOKEN: &str = "hostile-xml-token-4";
const FORM_SECRET: &str = "hostile-form-secret-5";
/// Key-shaped (40 characters of the base64 alphabet, both cases), echoed bare.
const BARE_KEY: &str = "Hq7vX2mP9wRtYz4K/bN8cJ3fL6sD1gA5eU0iO+Wk";
/// In the answer's body but outside its message.
const BODY_SECRET: &str = "hostile-body-secret-6";

/// The secret of the credentials the plugin is given (environment, files, process): key-shaped,
/// as AWS secret keys are, and echoed bare by the stand-in.
const GIVEN_SECRET: &str = "Zk3pQ8vN2xR7tY1wB6mC4jH9sL0dF5gA/uE+iOrT";

const ALL_SECRETS: &[&str] =
    &[JSON_SECRET, JSON_TOKEN, XML_SECRET, XML_TOKEN, FORM_SECRET, BARE_KEY, BODY_SECRET, GIVEN_SECRET];

/// A server's echo of what it holds, every secret in its shape.
fn echo() -> String {
    format!(
        "hostile echo: {{\"SecretAccessKey\": \"{JSON_SECRET}\", \"token\":\"{JSON_TOKEN}\"}} \
         <SecretAccessKey>{XML_SECRET}</SecretAccessKey><SessionToken>{XML_TOKEN}</SessionToken> \
         Action=AssumeRole&SecretAccessKey={FORM_SECRET}&Version=2011-06-15 key {BARE_KEY} given {GIVEN_SECRET}"
    )
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// STS's error shape, the echo as its message and a secret elsewhere in the body.
fn sts_error(code: &str, message: &str) -> Answer {
    let body = format!(
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>{code}</Code>\
         <Message>{}</Message></Error><Debug><SecretAccessKey>{BODY_SECRET}</SecretAccessKey></Debug>\
         <RequestId>hostile</RequestId></ErrorResponse>",
        xml_escape(message)
    );
    Answer::new(403, "text/xml", body.into_bytes())
}

/// A credentials service failing with the credentials in its body.
fn credentials_500() -> Answer {
    let body = json!({
        "AccessKeyId": "ASIAHOSTILEEXAMPLE01", "SecretAccessKey": BODY_SECRET, "Token": JSON_TOKEN,
        "Expiration": "2030-01-01T00:00:00Z", "Code": "Failure", "Message": echo(),
    });
    Answer::new(500, "application/json", body.to_string().into_bytes())
}

/// How the stand-in's CloudWatch answers every call.
#[derive(Clone)]
enum CloudWatch {
    /// 400 with this error type and the echo as its message.
    Refuses(&'static str),
    /// 400 InvalidParameterException with this message.
    Message(Arc<String>),
}

/// The hostile stand-in's answer to `req`.
fn hostile(req: &Request, cloudwatch: &CloudWatch) -> Answer {
    let path = req.path.as_str();
    if req.method == "PUT" && path == "/latest/api/token" {
        let mut token = Answer::new(200, "text/plain", b"imds-session-token".to_vec());
        token.headers.push(("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", "21600"));
        return token;
    }
    if path.trim_end_matches('/') == "/latest/meta-data/iam/security-credentials" {
        return Answer::new(200, "text/plain", b"hostile-role".to_vec());
    }
    if path.starts_with("/latest/") {
        // IMDS's own failure shape: a 200 whose Code is not Success (a 500 is retried inside
        // the SDK's IMDS client for longer than a flush)
        let mut failure = credentials_500();
        failure.status = 200;
        return failure;
    }
    if path.starts_with("/container") || path.starts_with("/credentials-endpoint") {
        return credentials_500();
    }
    if req.headers.contains_key("x-amz-target") {
        let (kind, message) = match cloudwatch {
            CloudWatch::Refuses(kind) => (*kind, echo()),
            CloudWatch::Message(m) => ("InvalidParameterException", m.to_string()),
        };
        let body = json!({ "__type": kind, "message": message, "Token": BODY_SECRET }).to_string();
        return Answer::new(400, "application/x-amz-json-1.1", body.into_bytes());
    }
    let body = String::from_utf8_lossy(&req.body);
    let action = body.split('&').find_map(|kv| kv.strip_prefix("Action=")).unwrap_or("").to_string();
    match action.as_str() {
        "GetCallerIdentity" => sts_error("InvalidClientTokenId", &echo()),
        _ => sts_error("AccessDenied", &format!("not authorized to perform {action}; {}", echo())),
    }
}

/// What one scenario's log must show, and what the stand-in saw.
struct Seen {
    log: String,
    requests: Vec<String>,
}

/// One scenario: the stand-in answering as `cloudwatch` says, the environment `env` (given the
/// stand-in's URL), the plugin with `props` flushing one chunk; the log checked.
fn scenario(
    name: &str,
    cloudwatch: CloudWatch,
    env: impl FnOnce(&str) -> Env,
    props: impl FnOnce(&str) -> Vec<(String, String)>,
) -> Seen {
    let server = Hostile::start(move |req| hostile(req, &cloudwatch));
    // what an earlier scenario set and `Env::apply` does not clear
    let others = ["AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_EC2_METADATA_SERVICE_ENDPOINT", "AWS_ENDPOINT_URL_STS"];
    for var in others {
        std::env::remove_var(var);
    }
    env(&server.url).apply();
    let mut all = vec![
        ("Name".to_string(), "cloudwatch_rs".to_string()),
        ("region".into(), "us-east-1".into()),
        ("log_group_name".into(), format!("redaction-{name}")),
        ("log_stream_name".into(), "s".into()),
        ("plugin_log_level".into(), "debug".into()),
        ("startup_check".into(), "off".into()),
        ("flush_timeout".into(), "3s".into()),
        ("endpoint".into(), server.url.clone()),
        // an identity of its own: a cache still retrying for an earlier scenario (whose
        // stand-in is gone) is not shared with this one
        ("role_session_name".into(), format!("redaction-{name}")),
    ];
    for (k, v) in props(&server.url) {
        all.retain(|(key, _)| *key != k);
        all.push((k, v));
    }
    let props: Vec<(&str, &str)> = all.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let plugin = Plugin::start_logged(FB_5_1_1, &props);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as u32;
    let data = chunk((0..3).map(|i| record(true, now, 0, &json!({ "log": format!("{name} {i}") }))), usize::MAX);
    let code = plugin.flush(&data[0], "app");
    let log = plugin.stop();
    let requests = server.requests();
    eprintln!("--- {name}: flush answered {code}; {} requests: {:?}\n{log}", requests.len(), requests);
    check_clean(name, &log);
    Seen { log, requests }
}

/// No secret, no raw control character, no forged line, no line of 4 KiB or more.
fn check_clean(name: &str, log: &str) {
    for secret in ALL_SECRETS {
        assert!(!log.contains(secret), "{name}: the log holds the secret {secret}");
    }
    assert!(!log.contains('\r') && !log.contains('\x1b'), "{name}: a raw CR or ESC in the log");
    assert!(!log.lines().any(|l| l.starts_with("[2001/")), "{name}: a forged line");
    let longest = log.lines().map(str::len).max().unwrap_or(0);
    assert!(longest < 4096, "{name}: a line of {longest} bytes");
}

/// The plugin's lines that carry what the stand-in said.
fn redacted_lines(log: &str) -> Vec<&str> {
    log.lines().filter(|l| l.contains("[output:cloudwatch_rs") && l.contains("[redacted]")).collect()
}

/// The stand-in was asked `request`, and a line carried (redacted) what it answered.
fn answered_and_logged(seen: &Seen, request: &str) {
    assert!(seen.requests.iter().any(|r| r.contains(request)), "no {request} request: {:?}", seen.requests);
    assert!(!redacted_lines(&seen.log).is_empty(), "no line carried the answer to {request}");
}

fn keys_env(base: Env) -> Env {
    base.keys("AKIAHOSTILEEXAMPLE01", GIVEN_SECRET)
}

#[test]
fn environment_keys_refused_by_cloudwatch_with_an_echo() {
    let _s = serial();
    let seen =
        scenario("env", CloudWatch::Refuses("UnrecognizedClientException"), |_| keys_env(Env::new()), |_| vec![]);
    answered_and_logged(&seen, "Logs_20140328.PutLogEvents");
}

#[test]
fn a_shared_files_profile_refused_by_sts_and_cloudwatch() {
    let _s = serial();
    let dir = support::scratch("redaction-files");
    let creds = dir.join("credentials");
    std::fs::write(
        &creds,
        format!("[hostile]\naws_access_key_id = AKIAHOSTILEEXAMPLE02\naws_secret_access_key = {GIVEN_SECRET}\n"),
    )
    .unwrap();
    let seen = scenario(
        "files",
        CloudWatch::Refuses("InvalidSignatureException"),
        |_| Env::new().var("AWS_SHARED_CREDENTIALS_FILE", creds.to_string_lossy()),
        |url| vec![("profile".into(), "hostile".into()), ("sts_endpoint".into(), url.into())],
    );
    answered_and_logged(&seen, "Logs_20140328.PutLogEvents");
}

#[test]
fn credential_process_printing_secrets_in_its_error_and_in_invalid_json() {
    let _s = serial();
    let dir = support::scratch("redaction-process");
    let failing = dir.join("failing.sh");
    let invalid = dir.join("invalid.sh");
    std::fs::write(&failing, format!("#!/bin/sh\necho 'cannot refresh: {}' >&2\nexit 1\n", echo().replace('\'', "")))
        .unwrap();
    std::fs::write(
        &invalid,
        format!(
            "#!/bin/sh\necho '{{\"Version\": 1, \"AccessKeyId\": \"AKIAHOSTILEEXAMPLE03\", \"SecretAccessKey\": \"{GIVEN_SECRET}\", \
             \"SessionToken\": \"{JSON_TOKEN}\" {BARE_KEY} broken'\n"
        ),
    )
    .unwrap();
    for script in [&failing, &invalid] {
        std::process::Command::new("chmod").arg("+x").arg(script).status().unwrap();
    }
    let config = dir.join("config");
    std::fs::write(
        &config,
        format!(
            "[profile failing]\ncredential_process = {}\n[profile invalid]\ncredential_process = {}\n",
            failing.display(),
            invalid.display()
        ),
    )
    .unwrap();
    for profile in ["failing", "invalid"] {
        let seen = scenario(
            &format!("process-{profile}"),
            CloudWatch::Refuses("UnrecognizedClientException"),
            |_| Env::new().var("AWS_CONFIG_FILE", config.to_string_lossy()),
            |_| vec![("profile".into(), profile.into())],
        );
        assert!(seen.log.lines().any(|l| l.contains("external process")), "no line about the process's failure");
        if profile == "failing" {
            assert!(!redacted_lines(&seen.log).is_empty(), "no line carried the process's stderr");
        }
    }
}

#[test]
fn web_identity_refused_with_an_echo() {
    let _s = serial();
    let dir = support::scratch("redaction-irsa");
    let token = dir.join("token");
    std::fs::write(&token, "eyJ.hostile.web-identity-token").unwrap();
    let seen = scenario(
        "web-identity",
        CloudWatch::Refuses("UnrecognizedClientException"),
        |url| {
            Env::new()
                .var("AWS_WEB_IDENTITY_TOKEN_FILE", token.to_string_lossy())
                .var("AWS_ROLE_ARN", "arn:aws:iam::111111111111:role/irsa")
                .var("AWS_ENDPOINT_URL_STS", url)
        },
        |_| vec![],
    );
    answered_and_logged(&seen, "Action=AssumeRoleWithWebIdentity");
}

#[test]
fn container_credentials_answering_500_with_the_credentials() {
    let _s = serial();
    let seen = scenario(
        "container",
        CloudWatch::Refuses("UnrecognizedClientException"),
        |url| Env::new().var("AWS_CONTAINER_CREDENTIALS_FULL_URI", format!("{url}/container-credentials")),
        |_| vec![],
    );
    // the SDK's container provider says only the status, not the body
    assert!(seen.requests.iter().any(|r| r.contains("/container-credentials")), "{:?}", seen.requests);
}

#[test]
fn imds_answering_a_failure_with_the_credentials() {
    let _s = serial();
    let seen = scenario(
        "imds",
        CloudWatch::Refuses("UnrecognizedClientException"),
        // IMDS on, toward the stand-in only, for this test only (`Env::new` turns it off again)
        |url| Env::new().var("AWS_EC2_METADATA_DISABLED", "false").var("AWS_EC2_METADATA_SERVICE_ENDPOINT", url),
        |_| vec![],
    );
    answered_and_logged(&seen, "/latest/meta-data/iam/security-credentials/hostile-role");
    assert!(redacted_lines(&seen.log).iter().any(|l| l.contains("IMDS")), "no line carried IMDS's answer");
}

#[test]
fn sts_assume_role_refused_with_secrets_in_its_error() {
    let _s = serial();
    let seen = scenario(
        "sts",
        CloudWatch::Refuses("UnrecognizedClientException"),
        |_| keys_env(Env::new()),
        |url| {
            vec![
                ("role_arn".into(), "arn:aws:iam::222222222222:role/hostile".into()),
                ("sts_endpoint".into(), url.into()),
                ("startup_check".into(), "warn".into()),
            ]
        },
    );
    answered_and_logged(&seen, "Action=AssumeRole&");
    let lines = redacted_lines(&seen.log);
    assert!(lines.iter().any(|l| l.contains("AssumeRole of")), "no line about the refused AssumeRole");
}

#[test]
fn credentials_endpoint_answering_500_with_the_credentials() {
    let _s = serial();
    let seen = scenario(
        "credentials-endpoint",
        CloudWatch::Refuses("UnrecognizedClientException"),
        |_| Env::new(),
        |url| vec![("credentials_endpoint".into(), format!("{url}/credentials-endpoint"))],
    );
    answered_and_logged(&seen, "/credentials-endpoint");
    let lines = redacted_lines(&seen.log);
    assert!(lines.iter().any(|l| l.contains("HTTP 500")), "no line carried the endpoint's answer");
}

/// An error message with carriage returns, terminal escapes, a forged log line and secrets.
fn hostile_message(size: usize) -> String {
    let mut m = format!(
        "bad batch\r\n[2001/01/01 00:00:00] [error] [output:cloudwatch_rs:cloudwatch_rs.0] forged line\r\n\
         \x1b[2J\x1b]0;owned\x07 {}\n",
        echo()
    );
    while m.len() < size {
        m.push_str("padding \x1b[31mred\x1b[0m\r ");
    }
    m.truncate(size);
    m
}

#[test]
fn a_hostile_error_message_is_escaped_cut_and_sized() {
    let _s = serial();
    // under any cap on the answer's size: the message itself reaches the log, cut
    let message = Arc::new(hostile_message(100_000));
    let seen = scenario("message-100k", CloudWatch::Message(message.clone()), |_| keys_env(Env::new()), |_| vec![]);
    let sized = "(100,000 bytes, cut)";
    assert!(seen.log.lines().any(|l| l.contains(sized)), "no line says {sized}");

    // 5 MB of it: whatever the plugin makes of it, the log stays clean and bounded
    let message = Arc::new(hostile_message(5_243_060));
    let seen = scenario("message-5mb", CloudWatch::Message(message), |_| keys_env(Env::new()), |_| vec![]);
    let total: usize = seen.log.len();
    eprintln!("5 MB message: {total} bytes of log");
    assert!(total < 64 << 10, "{total} bytes of log for one refused batch");
    assert!(seen.log.contains("bytes"), "no line says the size");
}

// ---- the scripted stand-in ----

struct Request {
    method: String,
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

struct Answer {
    status: u16,
    headers: Vec<(&'static str, &'static str)>,
    body: Vec<u8>,
}

impl Answer {
    fn new(status: u16, content_type: &'static str, body: Vec<u8>) -> Answer {
        Answer { status, headers: vec![("Content-Type", content_type)], body }
    }
}

/// A plain-HTTP/1.1 server on 127.0.0.1 answering every request with `answer`, one connection
/// per request; stopped on drop.
struct Hostile {
    url: String,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Hostile {
    fn start(answer: impl Fn(&Request) -> Answer + Send + Sync + 'static) -> Hostile {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let answer = Arc::new(answer);
        let (stop2, seen2) = (stop.clone(), seen.clone());
        std::thread::spawn(move || {
            while !stop2.load(Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (answer, seen) = (answer.clone(), seen2.clone());
                        std::thread::spawn(move || serve(conn, &*answer, &seen));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Hostile { url, stop, seen }
    }

    /// Each request as `METHOD path target-or-form`.
    fn requests(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
    }
}

fn serve(mut conn: TcpStream, answer: &dyn Fn(&Request) -> Answer, seen: &Mutex<Vec<String>>) {
    conn.set_nonblocking(false).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 << 10];
    let head_end = loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
    let mut lines = head.lines();
    let mut first = lines.next().unwrap_or("").split_whitespace();
    let (method, path) = (first.next().unwrap_or("").to_string(), first.next().unwrap_or("").to_string());
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut body = raw[head_end + 4..].to_vec();
    while body.len() < length {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&buf[..n]),
        }
    }
    let what = headers.get("x-amz-target").cloned().unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
    seen.lock().unwrap().push(format!("{method} {path} {what}"));
    let request = Request { method, path, headers, body };
    let a = answer(&request);
    let mut head =
        format!("HTTP/1.1 {} Hostile\r\nContent-Length: {}\r\nConnection: close\r\n", a.status, a.body.len());
    for (name, value) in &a.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.write_all(&a.body);
}
