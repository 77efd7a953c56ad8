//! Credentials that never wedge: every base source, AssumeRole on top, one shared cache
//! refreshed ahead of time, STS outages ridden out inside the flush, early expiry replaced on
//! the first ExpiredToken, and clear failures — against the strict endpoint's STS, container
//! credentials and IMDS stand-ins on 127.0.0.1 (tests/aws-standins/src/strict_sts.rs).

mod support;

use cwrs_aws_standins::strict::{Faults, StrictEndpoint};
use cwrs_aws_standins::strict_sts::TASK_ACCESS_KEY;
use cwrs_test_host::{chunk, record, RunReport, FB_5_1_1};
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::{serial, strict_role_output, Env, Plugin};

const TASK_SECRET: &str = "task-secret-never-logged";
static SEQ: AtomicU64 = AtomicU64::new(0);

/// The task account's static keys, as the plugin's base credentials.
fn task_env() -> Env {
    Env::new().keys(TASK_ACCESS_KEY, TASK_SECRET)
}

/// `n` chunks of `per_chunk` records with fresh sequence numbers, for `tag`.
fn chunks(n: usize, per_chunk: usize, tag: &str) -> Vec<(Vec<u8>, String)> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as u32;
    (0..n)
        .map(|_| {
            let recs = (0..per_chunk).map(|_| {
                let seq = SEQ.fetch_add(1, Relaxed);
                record(true, now, 0, &json!({ "seq": seq, "pad": "x".repeat(200) }))
            });
            (chunk(recs, usize::MAX).remove(0), tag.to_string())
        })
        .collect()
}

fn exactly_once(endpoint: &StrictEndpoint, group: &str, sent: u64) {
    let mut seen: HashMap<u64, u64> = HashMap::new();
    for a in endpoint.accepted().iter().filter(|a| a.group == group) {
        *seen.entry(a.seq.unwrap()).or_default() += 1;
    }
    let dups: u64 = seen.values().map(|c| c - 1).sum();
    assert_eq!(dups, 0, "{group}: duplicates");
    assert_eq!(seen.len() as u64, sent, "{group}: records delivered");
}

fn no_secret_in(log: &str, endpoint: &StrictEndpoint) {
    assert!(!log.contains(TASK_SECRET), "the base secret key appears in the output");
    for secret in endpoint.sts().secrets() {
        assert!(!log.contains(&secret), "an issued secret or session token appears in the output");
    }
}

fn role_props<'a>(endpoint: &'a StrictEndpoint, group: &'a str) -> Vec<(&'a str, &'a str)> {
    let mut props = strict_role_output(&endpoint.url, group);
    props.push(("external_id", "ext-123"));
    props
}

#[test]
fn steady_traffic_two_instances_share_one_role_refreshed_ahead() {
    let _s = serial();
    task_env().apply();
    let secs: u64 = std::env::var("CRED_TRAFFIC_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(180);
    let lifetime = Duration::from_secs(8);
    let endpoint = StrictEndpoint::start(false, Faults::default(), 7);
    endpoint.sts().set_lifetime(lifetime);
    let plugin =
        Plugin::with(FB_5_1_1, true, &[&role_props(&endpoint, "steady-a"), &role_props(&endpoint, "steady-b")]);
    let (host, a, b) = (&plugin.host, &plugin.outs[0], &plugin.outs[1]);
    let calls_after_init = endpoint.sts().assume_role_calls.load(Relaxed);

    let started = Instant::now();
    let (mut sent_a, mut sent_b) = (0, 0);
    let (mut ra, mut rb) = (RunReport::default(), RunReport::default());
    while started.elapsed() < Duration::from_secs(secs) {
        let tick = Instant::now();
        let (ca, cb) = (chunks(8, 20, "app"), chunks(8, 20, "app"));
        sent_a += 160;
        sent_b += 160;
        let (h1, h2, o1, o2) = (host.clone(), host.clone(), a.clone(), b.clone());
        let t1 = std::thread::spawn(move || h1.run(&o1, ca, Duration::from_millis(500)));
        let t2 = std::thread::spawn(move || h2.run(&o2, cb, Duration::from_millis(500)));
        let (x, y) = (t1.join().unwrap(), t2.join().unwrap());
        ra.retry += x.retry;
        rb.retry += y.retry;
        ra.dropped_chunks += x.dropped_chunks;
        rb.dropped_chunks += y.dropped_chunks;
        std::thread::sleep(Duration::from_secs(1).saturating_sub(tick.elapsed()));
    }
    let elapsed = started.elapsed();
    let log = plugin.stop();

    let sts = endpoint.sts();
    let calls = sts.assume_role_calls.load(Relaxed);
    let per_minute = calls as f64 * 60.0 / elapsed.as_secs_f64();
    eprintln!(
        "steady: {:.0} s, credentials living {:?}: AssumeRole {} calls ({} at Init) = {:.1}/min, expired-token rejections {}, \
         records {} + {}, FLB retries {} + {}",
        elapsed.as_secs_f64(),
        lifetime,
        calls,
        calls_after_init,
        per_minute,
        sts.expired_token_rejections.load(Relaxed),
        sent_a,
        sent_b,
        ra.retry,
        rb.retry
    );
    exactly_once(&endpoint, "steady-a", sent_a);
    exactly_once(&endpoint, "steady-b", sent_b);
    assert_eq!(sts.expired_token_rejections.load(Relaxed), 0, "a request was signed with expired credentials");
    assert_eq!((ra.dropped_chunks, rb.dropped_chunks, ra.retry, rb.retry), (0, 0, 0, 0));
    // refreshed at 3/4 of the lifetime: about one AssumeRole per lifetime, for both instances
    // and all 8 workers together — not per request, not per worker
    let lifetimes = elapsed.as_secs_f64() / lifetime.as_secs_f64();
    assert!((calls as f64) < lifetimes * 1.6 + 3.0, "{calls} AssumeRole calls over {lifetimes:.1} lifetimes");
    assert!((calls as f64) > lifetimes * 0.8, "{calls} AssumeRole calls over {lifetimes:.1} lifetimes");
    no_secret_in(&log, &endpoint);
}

#[test]
fn sts_outage_of_30_seconds_with_retry_limit_1() {
    let _s = serial();
    task_env().apply();
    let endpoint = StrictEndpoint::start(false, Faults::default(), 11);
    endpoint.sts().set_lifetime(Duration::from_secs(10));
    // default flush_timeout (30 s), Fluent Bit's default Retry_Limit (1)
    let plugin = Plugin::start_logged(FB_5_1_1, &role_props(&endpoint, "outage"));

    let total_secs = 80;
    let all = chunks(total_secs * 4, 25, "app");
    let sent = (all.len() * 25) as u64;
    let start = Instant::now();
    let (h, o) = (plugin.host.clone(), plugin.out().clone());
    // Fluent Bit's first retry comes after about 5 s (scheduler base)
    let runner = std::thread::spawn(move || h.run_paced(&o, all, Duration::from_millis(250), Duration::from_secs(5)));
    std::thread::sleep(Duration::from_secs(10));
    endpoint.sts().set_down(true);
    let down_at = SystemTime::now();
    std::thread::sleep(Duration::from_secs(30));
    endpoint.sts().set_down(false);
    let up_at = SystemTime::now();
    let report = runner.join().unwrap();
    let log = plugin.stop();

    let accepted = endpoint.accepted();
    let last_before = accepted.iter().filter(|a| a.at < up_at).map(|a| a.at).max();
    let first_after = accepted.iter().filter(|a| a.at >= up_at).map(|a| a.at).min().expect("delivery resumed");
    let recovery = first_after.duration_since(up_at).unwrap_or_default();
    eprintln!(
        "outage: STS down {:?} for 30 s; last delivery before recovery {:?} after it went down; first delivery {:?} after it \
         came back; STS refusals {}; host {:?}; run {:?}",
        down_at.duration_since(SystemTime::UNIX_EPOCH).map(|_| ()).ok(),
        last_before.and_then(|t| t.duration_since(down_at).ok()),
        recovery,
        endpoint.sts().outage_refusals.load(Relaxed),
        report,
        start.elapsed()
    );
    assert!(endpoint.sts().outage_refusals.load(Relaxed) > 0, "the outage was never felt");
    assert_eq!(report.dropped_chunks, 0, "Fluent Bit gave up on chunks: {report:?}");
    exactly_once(&endpoint, "outage", sent);
    assert!(recovery < Duration::from_secs(10), "recovery took {recovery:?}");
    no_secret_in(&log, &endpoint);
}

#[test]
fn credentials_revoked_before_their_expiry_are_replaced_on_the_first_refusal() {
    let _s = serial();
    task_env().apply();
    let endpoint = StrictEndpoint::start(false, Faults::default(), 13);
    endpoint.sts().set_lifetime(Duration::from_secs(3600));
    let plugin = Plugin::start_logged(FB_5_1_1, &role_props(&endpoint, "revoked"));
    let r1 = plugin.run(chunks(8, 10, "app"), Duration::from_millis(200));
    let before = endpoint.sts().assume_role_calls.load(Relaxed);
    endpoint.sts().revoke_all(); // clock skew or revocation: "expired" long before the stated expiry
    let r2 = plugin.run(chunks(8, 10, "app"), Duration::from_millis(200));
    let log = plugin.stop();
    let sts = endpoint.sts();
    eprintln!(
        "revoked: ExpiredToken answers {}, AssumeRole {} -> {}, runs {r1:?} {r2:?}",
        sts.expired_token_rejections.load(Relaxed),
        before,
        sts.assume_role_calls.load(Relaxed)
    );
    assert!(sts.expired_token_rejections.load(Relaxed) >= 1);
    assert!(sts.assume_role_calls.load(Relaxed) > before, "no fresh credentials were fetched");
    assert_eq!(sts.last_duration_seconds.load(Relaxed), 3600, "an hour unless set: safe for role chaining");
    assert_eq!(r2.retry + r2.error, 0, "the refused requests succeeded on their in-flush retry");
    exactly_once(&endpoint, "revoked", 160);
    no_secret_in(&log, &endpoint);
}

/// One subprocess run of the test host with `env`, a 20-line tail input and `keys`.
fn host_run(
    endpoint: &StrictEndpoint,
    name: &str,
    keys: &[(&str, &str)],
    env: &[(&str, String)],
) -> (i32, String, String) {
    let dir = support::scratch(name);
    let input = dir.join("in.log");
    std::fs::write(&input, (0..20).map(|i| format!("{name} line {i}\n")).collect::<String>()).unwrap();
    let mut conf = format!(
        "[INPUT]\n    Name tail\n    Path {}\n    Tag app\n[OUTPUT]\n    Name cloudwatch_rs\n    Match *\n    region us-east-1\n    \
         log_group_name {name}\n    log_stream_name s\n    auto_create_group on\n    flush_timeout 5s\n",
        input.display()
    );
    for (k, v) in keys {
        conf.push_str(&format!("    {k} {v}\n"));
    }
    let path = dir.join("fluent-bit.conf");
    std::fs::write(&path, conf).unwrap();
    let mut full = Env::new().var("AWS_ENDPOINT_URL_STS", &endpoint.url).var("HOME", dir.to_string_lossy());
    for (k, v) in env {
        full = full.var(k, v);
    }
    let (code, out, err) = support::run_host(&path, &full, &["--debug"]);
    let delivered = endpoint.accepted().iter().filter(|a| a.group == name).count();
    eprintln!("{name}: exit {code}, {delivered} events delivered\n{err}");
    no_secret_in(&err, endpoint);
    no_secret_in(&out, endpoint);
    (code, out, err)
}

fn delivered(endpoint: &StrictEndpoint, group: &str) -> usize {
    endpoint.accepted().iter().filter(|a| a.group == group).count()
}

#[test]
fn every_base_credential_source_with_and_without_a_role_on_top() {
    let endpoint = StrictEndpoint::start(false, Faults::default(), 17);
    let url = endpoint.url.clone();
    let dir = support::scratch("sources");
    let used = |key: &str| endpoint.sts().keys_used().get(key).copied().unwrap_or(0);

    // environment
    let env_keys =
        vec![("AWS_ACCESS_KEY_ID", TASK_ACCESS_KEY.to_string()), ("AWS_SECRET_ACCESS_KEY", TASK_SECRET.to_string())];
    let (code, ..) = host_run(&endpoint, "src-env", &[("endpoint", &url)], &env_keys);
    assert_eq!((code, delivered(&endpoint, "src-env")), (0, 20));
    assert!(used(TASK_ACCESS_KEY) > 0);

    // shared credentials file, chosen with `profile`
    let creds = dir.join("credentials");
    std::fs::write(&creds, "[cwtest]\naws_access_key_id = AKIDPROFILEKEY\naws_secret_access_key = profile-secret\n")
        .unwrap();
    let env = vec![("AWS_SHARED_CREDENTIALS_FILE", creds.to_string_lossy().into_owned())];
    let (code, ..) = host_run(&endpoint, "src-profile", &[("endpoint", &url), ("profile", "cwtest")], &env);
    assert_eq!((code, delivered(&endpoint, "src-profile")), (0, 20));
    assert!(used("AKIDPROFILEKEY") > 0);

    // credential_process in the shared config file
    let script = dir.join("creds.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\necho '{\"Version\": 1, \"AccessKeyId\": \"AKIDPROCESSKEY\", \"SecretAccessKey\": \"process-secret\"}'\n",
    )
    .unwrap();
    std::process::Command::new("chmod").arg("+x").arg(&script).status().unwrap();
    let config = dir.join("config");
    std::fs::write(&config, format!("[profile cwproc]\ncredential_process = {}\n", script.display())).unwrap();
    let env = vec![("AWS_CONFIG_FILE", config.to_string_lossy().into_owned())];
    let (code, ..) = host_run(&endpoint, "src-process", &[("endpoint", &url), ("profile", "cwproc")], &env);
    assert_eq!((code, delivered(&endpoint, "src-process")), (0, 20));
    assert!(used("AKIDPROCESSKEY") > 0);

    // EKS web identity (IRSA), then AssumeRole of the log role on top (a chain)
    let token = dir.join("token");
    std::fs::write(&token, "eyJ.web-identity.token").unwrap();
    let env = vec![
        ("AWS_WEB_IDENTITY_TOKEN_FILE", token.to_string_lossy().into_owned()),
        ("AWS_ROLE_ARN", "arn:aws:iam::111111111111:role/irsa".to_string()),
    ];
    let (code, ..) = host_run(
        &endpoint,
        "src-irsa-chain",
        &[("endpoint", &url), ("sts_endpoint", &url), ("role_arn", "arn:aws:iam::222222222222:role/strict")],
        &env,
    );
    assert_eq!((code, delivered(&endpoint, "src-irsa-chain")), (0, 20));
    assert!(endpoint.sts().web_identity_calls.load(Relaxed) > 0);
    assert!(endpoint.sts().assume_role_calls.load(Relaxed) > 0);

    // ECS / EKS Pod Identity: full URI with an authorization token file
    endpoint.sts().require_container_token("pod-identity-token");
    let token_file = dir.join("pod-token");
    std::fs::write(&token_file, "pod-identity-token").unwrap();
    let env = vec![
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI", format!("{url}/container-credentials")),
        ("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", token_file.to_string_lossy().into_owned()),
    ];
    let (code, ..) = host_run(&endpoint, "src-container", &[("endpoint", &url)], &env);
    assert_eq!((code, delivered(&endpoint, "src-container")), (0, 20));
    assert!(endpoint.sts().container_calls.load(Relaxed) > 0);

    // EC2 IMDSv2
    let env = vec![("AWS_EC2_METADATA_DISABLED", String::new()), ("AWS_EC2_METADATA_SERVICE_ENDPOINT", url.clone())];
    let (code, ..) = host_run(&endpoint, "src-imds", &[("endpoint", &url)], &env);
    assert_eq!((code, delivered(&endpoint, "src-imds")), (0, 20));
    assert!(endpoint.sts().imds_calls.load(Relaxed) > 0);

    // through a forward proxy (HTTP_PROXY), and around it (NO_PROXY)
    let proxy = cwrs_aws_standins::proxy::ForwardProxy::start();
    let mut env = env_keys.clone();
    env.push(("HTTP_PROXY", proxy.url.clone()));
    let (code, ..) = host_run(&endpoint, "src-proxy", &[("endpoint", &url), ("sts_endpoint", &url)], &env);
    assert_eq!((code, delivered(&endpoint, "src-proxy")), (0, 20));
    let through = proxy.requests.load(Relaxed);
    assert!(through > 0, "nothing went through the proxy");
    env.push(("NO_PROXY", "127.0.0.1".into()));
    let (code, ..) = host_run(&endpoint, "src-no-proxy", &[("endpoint", &url), ("sts_endpoint", &url)], &env);
    assert_eq!((code, delivered(&endpoint, "src-no-proxy")), (0, 20));
    assert_eq!(proxy.requests.load(Relaxed), through, "NO_PROXY was not honoured");

    // endpoints from AWS_ENDPOINT_URL_STS / AWS_ENDPOINT_URL_CLOUDWATCH_LOGS, no keys
    let mut env = env_keys.clone();
    env.push(("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", url.clone()));
    let (code, ..) =
        host_run(&endpoint, "src-env-endpoints", &[("role_arn", "arn:aws:iam::222222222222:role/strict")], &env);
    assert_eq!((code, delivered(&endpoint, "src-env-endpoints")), (0, 20));
}

#[test]
fn failures_say_who_tried_what_and_where_to_look() {
    let endpoint = StrictEndpoint::start(false, Faults::default(), 19);
    let url = endpoint.url.clone();
    let env_keys =
        vec![("AWS_ACCESS_KEY_ID", TASK_ACCESS_KEY.to_string()), ("AWS_SECRET_ACCESS_KEY", TASK_SECRET.to_string())];
    let denied_role = "arn:aws:iam::222222222222:role/denied";

    // AssumeRole refused: the flushes answer RETRY and say which principal tried which role
    let (code, _, err) = host_run(
        &endpoint,
        "fail-denied",
        &[("endpoint", &url), ("sts_endpoint", &url), ("role_arn", denied_role)],
        &env_keys,
    );
    assert_eq!(code, 3);
    let line = err.lines().find(|l| l.contains("AssumeRole of")).expect("a line about AssumeRole");
    assert!(
        line.contains(denied_role)
            && line.contains("arn:aws:iam::111111111111:user/task")
            && line.contains("trust policy"),
        "{line}"
    );

    // the same with startup_check strict: Fluent Bit stops at startup, with one line
    let (code, _, err) = host_run(
        &endpoint,
        "fail-denied-strict",
        &[("endpoint", &url), ("sts_endpoint", &url), ("role_arn", denied_role), ("startup_check", "strict")],
        &env_keys,
    );
    assert_eq!(code, 1);
    let lines: Vec<&str> =
        err.lines().filter(|l| l.contains("[error] [output:cloudwatch_rs:") && l.contains("startup check")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].contains("trust policy") && lines[0].contains(denied_role), "{}", lines[0]);

    // startup_check warn (the default) logs the same and starts anyway
    let (_, _, err) = host_run(
        &endpoint,
        "fail-denied-warn",
        &[("endpoint", &url), ("sts_endpoint", &url), ("role_arn", denied_role)],
        &env_keys,
    );
    assert!(
        err.lines().any(|l| l.contains("[ warn]") && l.contains("startup check") && l.contains("starting anyway")),
        "{err}"
    );

    // the role may be assumed but may not write: the check says which permission is missing
    let (code, _, err) = host_run(
        &endpoint,
        "fail-nowrite",
        &[
            ("endpoint", &url),
            ("sts_endpoint", &url),
            ("role_arn", "arn:aws:iam::222222222222:role/nowrite"),
            ("startup_check", "strict"),
        ],
        &env_keys,
    );
    assert_eq!(code, 1);
    let line = err.lines().find(|l| l.contains("startup check")).expect("a startup check line");
    assert!(line.contains("may not write to log group 'fail-nowrite'") && line.contains("logs:PutLogEvents"), "{line}");

    // no base credentials anywhere: the line lists the sources tried
    let (code, _, err) = host_run(
        &endpoint,
        "fail-nocreds",
        &[("endpoint", &url), ("sts_endpoint", &url), ("role_arn", "arn:aws:iam::222222222222:role/strict")],
        &[],
    );
    assert_eq!(code, 3);
    let line =
        err.lines().find(|l| l.contains("no base AWS credentials found")).expect("a line about base credentials");
    for source in ["environment", "profile", "web identity", "container credentials", "IMDS"] {
        assert!(line.contains(source), "{line}");
    }

    // a healthy setup passes the check and says who writes
    let (code, _, err) = host_run(
        &endpoint,
        "check-ok",
        &[
            ("endpoint", &url),
            ("sts_endpoint", &url),
            ("role_arn", "arn:aws:iam::222222222222:role/strict"),
            ("startup_check", "strict"),
        ],
        &env_keys,
    );
    assert_eq!(code, 0);
    assert!(err.contains("startup check passed: base identity arn:aws:iam::111111111111:user/task"), "{err}");
}
