//! Answers no AWS service gives, from every kind of endpoint the plugin reads: a 200 whose body
//! never ends and a 50 MB answer, from CloudWatch (`endpoint`), STS (`sts_endpoint` with
//! `role_arn`), `credentials_endpoint`, the SDK's container credentials
//! (`AWS_CONTAINER_CREDENTIALS_FULL_URI`), EC2 IMDS and the ECS task metadata endpoint — played by the
//! hostile stand-in (tests/aws-standins/src/hostile.rs) while the strict endpoint serves the
//! rest. Each answer is read with the plugin's cap: memory stays bounded, the stand-in writes
//! little more than the cap before the plugin hangs up, the flush answers RETRY; once the
//! endpoint behaves, every record is delivered exactly once.

mod support;

use cloudwatch_rs::aws::capped::MAX_ANSWER_BYTES;
use cwrs_aws_standins::hostile::{Answer, Hostile, SEND_BUFFER};
use cwrs_aws_standins::strict::{Faults, StrictEndpoint};
use cwrs_aws_standins::strict_sts::TASK_ACCESS_KEY;
use cwrs_test_host::{chunk, record, FB_5_1_1, FLB_OK, FLB_RETRY};
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use support::{serial, Env, Plugin};

/// How much the test process may grow while an endpoint misbehaves: generous (the plugin's own
/// code and first allocations count too); unbounded reading grew by gigabytes.
const MEMORY_GROWTH_LIMIT: u64 = 64 << 20;
const RECORDS: u64 = 20;
/// The ECS task id the strict endpoint's task metadata names.
const ECS_TASK_ID: &str = "0123456789abcdef0123456789abcdef";
static SEQ: AtomicU64 = AtomicU64::new(0);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    CloudWatch,
    Sts,
    CredentialsEndpoint,
    ContainerCredentials,
    Imds,
    EcsMetadata,
}

/// The test process's memory, from /proc/self/status: (VmRSS, VmHWM) in bytes.
fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Starts a new peak: VmHWM back to the current VmRSS (Linux ≥ 4.0); whether it worked.
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// What the client may have received beyond what it read: its receive buffer at most (the
/// kernel's ceiling for it) and the stand-in's own send buffer (which the kernel doubles).
fn socket_slack() -> u64 {
    let rmem_max = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_rmem")
        .ok()
        .and_then(|t| t.split_whitespace().nth(2).and_then(|v| v.parse().ok()))
        .unwrap_or(6 << 20);
    rmem_max + 2 * SEND_BUFFER as u64 + (64 << 10)
}

/// One chunk of `RECORDS` records with fresh sequence numbers.
fn one_chunk() -> (Vec<u8>, Vec<u64>) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as u32;
    let seqs: Vec<u64> = (0..RECORDS).map(|_| SEQ.fetch_add(1, Relaxed)).collect();
    let recs = seqs.iter().map(|seq| record(true, now, 0, &json!({ "seq": seq, "pad": "x".repeat(100) })));
    (chunk(recs, usize::MAX).remove(0), seqs)
}

/// The plugin's environment and properties for `kind` misbehaving at `hostile`.
fn setup(kind: Kind, hostile: &Hostile, strict: &StrictEndpoint, group: &str) -> (Env, Vec<(String, String)>) {
    let mut props: Vec<(String, String)> = [
        ("Name", "cloudwatch_rs"),
        ("region", "us-east-1"),
        ("log_group_name", group),
        ("log_stream_name", "s"),
        ("auto_create_group", "on"),
        ("flush_timeout", "3s"),
        // the startup check's own bounds are another test's subject
        ("startup_check", "off"),
        ("endpoint", &strict.url),
        ("sts_endpoint", &strict.url),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut set = |key: &str, value: String| {
        props.retain(|(k, _)| k != key);
        props.push((key.into(), value));
    };
    let base = Env::new()
        .var("AWS_CONTAINER_CREDENTIALS_FULL_URI", "")
        .var("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "")
        .var("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "")
        .var("ECS_CONTAINER_METADATA_URI_V4", "")
        .var("ECS_CONTAINER_METADATA_URI", "")
        .var("AWS_EC2_METADATA_SERVICE_ENDPOINT", "");
    let keys = base.clone().keys(TASK_ACCESS_KEY, "task-secret-never-logged");
    let env = match kind {
        Kind::CloudWatch => {
            set("endpoint", hostile.url.clone());
            keys
        }
        Kind::Sts => {
            set("sts_endpoint", hostile.url.clone());
            set("role_arn", "arn:aws:iam::222222222222:role/strict".into());
            keys
        }
        Kind::CredentialsEndpoint => {
            set("credentials_endpoint", format!("{}/container-credentials", hostile.url));
            base
        }
        Kind::ContainerCredentials => {
            base.var("AWS_CONTAINER_CREDENTIALS_FULL_URI", format!("{}/container-credentials", hostile.url))
        }
        Kind::Imds => base.var("AWS_EC2_METADATA_DISABLED", "").var("AWS_EC2_METADATA_SERVICE_ENDPOINT", &hostile.url),
        Kind::EcsMetadata => {
            set("log_stream_name", "$(ecs_task_id)".into());
            set("default_log_stream_name", "no-ecs".into());
            keys.var("ECS_CONTAINER_METADATA_URI_V4", format!("{}/v4/{ECS_TASK_ID}", hostile.url))
        }
    };
    (env, props)
}

fn start(props: &[(String, String)]) -> Plugin {
    let props: Vec<(&str, &str)> = props.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Plugin::start_logged(FB_5_1_1, &props)
}

/// Flushes `data` until Fluent Bit would stop retrying: OK, or `tries` RETRYs; the answers.
fn flush_until_ok(plugin: &Plugin, data: &[u8], tries: usize) -> Vec<i32> {
    let mut answers = Vec::new();
    for _ in 0..tries {
        let answer = plugin.flush(data, "app");
        answers.push(answer);
        if answer != FLB_RETRY {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    answers
}

/// Every record of `sent` delivered once to `group`, and nothing else: (delivered once, lost,
/// duplicated), printed.
fn delivery(strict: &StrictEndpoint, group: &str, sent: &[u64], what: &str) -> (u64, u64, u64) {
    let mut seen: HashMap<u64, u64> = HashMap::new();
    for a in strict.accepted().iter().filter(|a| a.group == group) {
        *seen.entry(a.seq.expect("seq in every message")).or_default() += 1;
    }
    let once = sent.iter().filter(|s| seen.get(s) == Some(&1)).count() as u64;
    let lost = sent.iter().filter(|s| !seen.contains_key(s)).count() as u64;
    let duplicated: u64 = seen.values().map(|c| c.saturating_sub(1)).sum();
    eprintln!("{what}: sent {}, delivered once {once}, lost {lost}, duplicated {duplicated}", sent.len());
    (once, lost, duplicated)
}

/// `kind` answers `answer` until the first flushes are done, then behaves.
fn misbehave_then_behave(kind: Kind, answer: Answer) {
    let _s = serial();
    let what = format!("{kind:?} answering {}", describe(&answer));
    let strict = StrictEndpoint::start(false, Faults::default(), 0x4057);
    let hostile = Hostile::start(answer);
    let group = format!("hostile-{}", SEQ.fetch_add(1, Relaxed));
    let (env, props) = setup(kind, &hostile, &strict, &group);
    env.apply();

    let peak_reset = reset_peak();
    let (rss_before, hwm_before) = memory();
    let plugin = start(&props);
    let (first, first_seqs) = one_chunk();
    let answer = plugin.flush(&first, "app");
    let (rss_after, hwm_after) = memory();
    let ended = hostile.wait_until_answers_end(Duration::from_secs(10));
    let connections = hostile.connections();
    let peak_growth = hwm_after.saturating_sub(if peak_reset { rss_before } else { hwm_before });
    let max_written = connections.iter().map(|c| c.written).max().unwrap_or(0);
    eprintln!(
        "{what}: flush answered {answer}; {} requests on {} connections, the most written on one {} bytes (cap {}, \
         slack {}), total {} bytes, every answer ended by the plugin hanging up: {}; memory: VmRSS {} -> {} MiB, \
         peak growth {} MiB{}",
        hostile.requests(),
        connections.len(),
        max_written,
        MAX_ANSWER_BYTES,
        socket_slack(),
        connections.iter().map(|c| c.written).sum::<u64>(),
        ended && connections.iter().filter(|c| c.written > 0).all(|c| c.client_hung_up),
        rss_before >> 20,
        rss_after >> 20,
        peak_growth >> 20,
        if peak_reset { "" } else { " (VmHWM could not be reset: growth over the earlier peak)" },
    );
    assert!(hostile.requests() > 0, "{what}: the hostile endpoint was never asked");
    assert!(ended, "{what}: the plugin is still reading an answer");
    assert!(connections.iter().filter(|c| c.written > 0).all(|c| c.client_hung_up), "{what}: {connections:?}");
    assert!(
        max_written <= MAX_ANSWER_BYTES as u64 + socket_slack(),
        "{what}: {max_written} bytes written on one connection"
    );
    assert!(peak_growth < MEMORY_GROWTH_LIMIT, "{what}: memory grew by {peak_growth} bytes");

    let (second, second_seqs) = one_chunk();
    let mut sent = first_seqs.clone();
    if kind == Kind::EcsMetadata {
        // read at Init only: the names fall back, and records flow meanwhile
        assert_eq!(answer, FLB_OK, "{what}");
        let log = plugin.stop();
        let line =
            log.lines().find(|l| l.contains("ECS task metadata unavailable")).expect("a line about the metadata");
        assert!(line.contains("was refused: larger than"), "{line}");
        eprintln!("{what}: {line}");
        hostile.behave(&strict.url);
        let plugin = start(&props);
        assert_eq!(flush_until_ok(&plugin, &second, 1), vec![FLB_OK], "{what}");
        plugin.stop();
        let streams: Vec<String> =
            strict.accepted().iter().filter(|a| a.group == group).map(|a| a.stream.clone()).collect();
        assert!(streams.iter().take(RECORDS as usize).all(|s| s == "no-ecs"), "{streams:?}");
        assert!(streams.iter().skip(RECORDS as usize).all(|s| s == ECS_TASK_ID), "{streams:?}");
    } else {
        assert_eq!(answer, FLB_RETRY, "{what}: the flush must answer RETRY while the endpoint misbehaves");
        hostile.behave(&strict.url);
        let answers = flush_until_ok(&plugin, &first, 20);
        assert_eq!(answers.last(), Some(&FLB_OK), "{what}: after the endpoint behaves: {answers:?}");
        assert_eq!(flush_until_ok(&plugin, &second, 1), vec![FLB_OK], "{what}");
        let log = plugin.stop();
        let refusals = log.lines().filter(|l| l.contains("was refused: larger than")).count();
        eprintln!("{what}: {refusals} log lines name the refused answer, e.g. {:?}", first_line(&log));
        assert!(refusals > 0, "{what}: no line says an answer was refused for its size:\n{log}");
        assert!(!log.contains("task-secret-never-logged"));
    }
    sent.extend(&second_seqs);
    let (once, lost, duplicated) = delivery(&strict, &group, &sent, &what);
    assert_eq!((once, lost, duplicated), (sent.len() as u64, 0, 0), "{what}");
    assert_eq!(strict.violations(), Vec::<String>::new());
}

fn first_line(log: &str) -> &str {
    log.lines().find(|l| l.contains("was refused: larger than")).unwrap_or("")
}

fn describe(answer: &Answer) -> String {
    match answer {
        Answer::HugeBody(n) => format!("a {} MB body", n / 1_000_000),
        Answer::EndlessBody => "an endless body".into(),
        Answer::EndlessChunked => "an endless chunked body".into(),
        other => format!("{other:?}"),
    }
}

const HUGE: Answer = Answer::HugeBody(50_000_000);

#[test]
fn cloudwatch_endless_body() {
    misbehave_then_behave(Kind::CloudWatch, Answer::EndlessBody);
}

#[test]
fn cloudwatch_endless_chunked_body() {
    misbehave_then_behave(Kind::CloudWatch, Answer::EndlessChunked);
}

#[test]
fn cloudwatch_huge_body() {
    misbehave_then_behave(Kind::CloudWatch, HUGE);
}

#[test]
fn sts_endless_body() {
    misbehave_then_behave(Kind::Sts, Answer::EndlessBody);
}

#[test]
fn sts_huge_body() {
    misbehave_then_behave(Kind::Sts, HUGE);
}

#[test]
fn credentials_endpoint_endless_body() {
    misbehave_then_behave(Kind::CredentialsEndpoint, Answer::EndlessBody);
}

#[test]
fn credentials_endpoint_huge_body() {
    misbehave_then_behave(Kind::CredentialsEndpoint, HUGE);
}

#[test]
fn container_credentials_endless_body() {
    misbehave_then_behave(Kind::ContainerCredentials, Answer::EndlessBody);
}

#[test]
fn container_credentials_huge_body() {
    misbehave_then_behave(Kind::ContainerCredentials, HUGE);
}

#[test]
fn imds_endless_body() {
    misbehave_then_behave(Kind::Imds, Answer::EndlessBody);
}

#[test]
fn imds_huge_body() {
    misbehave_then_behave(Kind::Imds, HUGE);
}

#[test]
fn ecs_task_metadata_endless_body() {
    misbehave_then_behave(Kind::EcsMetadata, Answer::EndlessBody);
}

#[test]
fn ecs_task_metadata_huge_body() {
    misbehave_then_behave(Kind::EcsMetadata, HUGE);
}
