//! Where the plugin may talk in cleartext, and how long its start may wait: an `http://`
//! endpoint that may leave the host stops Init with one line naming the key (unless
//! `allow_cleartext_endpoints` is on, which warns at every start); the startup check never holds
//! Fluent Bit's start more than its bound, and asks STS nothing without a role to assume.

mod support;

use cwrs_aws_standins::strict::{Faults, StrictEndpoint};
use cwrs_test_host::FB_5_1_1;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{run_host, scratch, serial, Env, Plugin};

/// The startup check's bound is 5 s; Init must be back well within this.
const INIT_UPPER_BOUND: Duration = Duration::from_secs(8);

#[test]
fn a_cleartext_endpoint_that_may_leave_the_host_stops_startup_with_one_line() {
    let dir = scratch("cleartext");
    let cases = [
        ("endpoint", "http://localstack:4566"),
        ("endpoint", "http://10.0.0.1"),
        ("endpoint", "http://127.0.0.1.nip.io:4566"),
        ("sts_endpoint", "http://my-host.local:4566"),
        ("sts_endpoint", "http://[::ffff:127.0.0.1]:4566"),
        ("credentials_endpoint", "http://10.0.0.1/creds"),
        ("credentials_endpoint", "http://169.254.169.254/latest/meta-data"),
    ];
    for (key, value) in cases {
        let conf = dir.join(format!("{key}.conf"));
        std::fs::write(
            &conf,
            format!(
                "[OUTPUT]\n    Name cloudwatch_rs\n    Match *\n    region us-east-1\n    log_group_name g\n    \
                 log_stream_name s\n    {key} {value}\n"
            ),
        )
        .unwrap();
        let (code, _out, err) = run_host(&conf, &Env::empty().var("AWS_EC2_METADATA_DISABLED", "true"), &[]);
        assert_eq!(code, 1, "{key} {value}: {err}");
        let lines: Vec<&str> = err.lines().filter(|l| l.contains("[error] [output:cloudwatch_rs:")).collect();
        assert_eq!(lines.len(), 1, "{key} {value}: {err}");
        let line = lines[0];
        assert!(line.contains(&format!("'{key}': '{value}'")), "{line}");
        assert!(line.contains("http:// only to this host") && line.contains("allow_cleartext_endpoints"), "{line}");
        eprintln!("{line}");
    }
}

#[test]
fn the_opt_in_starts_and_warns_naming_the_cleartext_endpoints() {
    let _serial = serial();
    Env::new().keys("AKIDCLEARTEXT", "cleartext-secret").apply();
    let props = [
        ("Name", "cloudwatch_rs"),
        ("region", "us-east-1"),
        ("log_group_name", "g"),
        ("log_stream_name", "s"),
        ("endpoint", "http://localstack:4566"),
        ("sts_endpoint", "http://localstack:4566"),
        ("allow_cleartext_endpoints", "on"),
        ("startup_check", "off"),
    ];
    for start in 0..2 {
        let log = Plugin::start_logged(FB_5_1_1, &props).stop();
        let warnings: Vec<&str> = log.lines().filter(|l| l.contains("allow_cleartext_endpoints is on")).collect();
        assert_eq!(warnings.len(), 1, "start {start}: {log}");
        assert!(warnings[0].contains("[ warn]"), "{}", warnings[0]);
        assert!(
            warnings[0].contains("endpoint http://localstack:4566, sts_endpoint http://localstack:4566"),
            "{}",
            warnings[0]
        );
        eprintln!("{}", warnings[0]);
    }
}

/// A listener on 127.0.0.1 that accepts connections and never answers; its URL.
fn silent_endpoint() -> (String, Arc<Mutex<Vec<TcpStream>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = held.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            keep.lock().unwrap().push(conn);
        }
    });
    (url, held)
}

/// Starts one instance with `props` and times Init; the captured log.
fn timed_start(props: &[(&str, &str)]) -> (Duration, String) {
    let started = Instant::now();
    let plugin = Plugin::start_logged(FB_5_1_1, props);
    let took = started.elapsed();
    (took, plugin.stop())
}

#[test]
fn the_startup_check_never_holds_the_start_beyond_its_bound() {
    let _serial = serial();
    Env::new().keys("AKIDSILENT", "silent-secret").apply();
    let (url, held) = silent_endpoint();
    let base = [
        ("Name", "cloudwatch_rs"),
        ("region", "us-east-1"),
        ("log_group_name", "g"),
        ("log_stream_name", "s"),
        ("endpoint", url.as_str()),
        ("sts_endpoint", url.as_str()),
        // one attempt could take 10 s: the check's own bound must cut it
        ("flush_timeout", "60s"),
        ("startup_check", "warn"),
    ];
    // without a role: the PutLogEvents probe never answers
    let (took, log) = timed_start(&base);
    eprintln!("no role: Init took {took:?}");
    assert!(took < INIT_UPPER_BOUND, "Init took {took:?}");
    let line = log.lines().find(|l| l.contains("startup check")).expect("a startup check line");
    assert!(line.contains("no answer within 5s (PutLogEvents probe)") && line.contains("starting anyway"), "{line}");
    // with a role: STS never answers AssumeRole
    let mut with_role = base.to_vec();
    with_role.push(("role_arn", "arn:aws:iam::222222222222:role/strict"));
    let (took, log) = timed_start(&with_role);
    eprintln!("role: Init took {took:?}");
    assert!(took < INIT_UPPER_BOUND, "Init took {took:?}");
    let line = log.lines().find(|l| l.contains("startup check")).expect("a startup check line");
    assert!(line.contains("no answer within 5s (AssumeRole)") && line.contains("starting anyway"), "{line}");
    assert!(!held.lock().unwrap().is_empty(), "the silent endpoint was never reached");
}

#[test]
fn without_a_role_the_startup_check_asks_sts_nothing() {
    let _serial = serial();
    Env::new().keys(cwrs_aws_standins::strict_sts::TASK_ACCESS_KEY, "task-secret").apply();
    let endpoint = StrictEndpoint::start(false, Faults::default(), 5);
    endpoint.create_group("checked");
    let props = [
        ("Name", "cloudwatch_rs"),
        ("region", "us-east-1"),
        ("log_group_name", "checked"),
        ("log_stream_name", "s"),
        ("endpoint", endpoint.url.as_str()),
        ("sts_endpoint", endpoint.url.as_str()),
        ("startup_check", "strict"),
    ];
    let log = Plugin::start_logged(FB_5_1_1, &props).stop();
    let sts = endpoint.sts();
    let calls = (sts.caller_identity_calls.load(Relaxed), sts.assume_role_calls.load(Relaxed));
    eprintln!("STS calls during Init without role_arn (GetCallerIdentity, AssumeRole): {calls:?}");
    assert_eq!(calls, (0, 0));
    let line = log.lines().find(|l| l.contains("startup check passed")).expect("the check passed");
    assert!(line.contains("base credentials from the default chain (no role_arn: STS not asked)"), "{line}");
    // with a role, STS is asked who assumes it, once
    let mut with_role = props.to_vec();
    with_role.push(("role_arn", "arn:aws:iam::222222222222:role/strict"));
    let log = Plugin::start_logged(FB_5_1_1, &with_role).stop();
    assert_eq!(sts.caller_identity_calls.load(Relaxed), 1);
    assert!(sts.assume_role_calls.load(Relaxed) >= 1);
    assert!(log.contains("startup check passed: base identity arn:aws:iam::111111111111:user/task"), "{log}");
}
