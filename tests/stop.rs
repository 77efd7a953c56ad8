//! Fluent Bit's stop: SIGTERM to the test host, which stops the way Fluent Bit does (its
//! handlers only record the signal, a main loop that wakes once a second stops the engine, the
//! chunks under way get `Grace`, then the exit callbacks run). With an endpoint that fails every
//! call, the plugin must not hold the stop up: the host exits within Grace plus a second (the
//! main loop's). With a healthy endpoint, everything read before the stop is delivered, once.

mod support;

use cwrs_aws_standins::strict::{Faults, StrictEndpoint};
use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use support::{serial, Env};

/// Lines the tail input reads: `{"seq":N,...}`, sent as they are (`log_key log`).
const LINES: u64 = 40_000;
/// The slack the bound allows on top of Grace and the main loop's second, for a loaded machine.
const SLACK: Duration = Duration::from_millis(1500);

struct Case {
    name: &'static str,
    fb: &'static str,
    workers: u32,
    /// `[SERVICE] Grace`; `None`: Fluent Bit's default, 5 s.
    grace: Option<u64>,
}

fn config(dir: &Path, case: &Case, endpoint: &StrictEndpoint) -> std::path::PathBuf {
    let lines = dir.join("app.log");
    let mut f = std::fs::File::create(&lines).unwrap();
    for seq in 0..LINES {
        writeln!(f, r#"{{"seq":{seq},"pad":"{}"}}"#, "p".repeat(64)).unwrap();
    }
    let service = case.grace.map(|g| format!("[SERVICE]\n    Grace {g}\n")).unwrap_or_default();
    let conf = format!(
        "{service}[INPUT]\n    Name tail\n    Path {}\n    Tag app\n    Interval_Ms 200\n\
         [OUTPUT]\n    Name cloudwatch_rs\n    Match *\n    Workers {}\n    region us-east-1\n\
         log_group_name stop-{}\n    log_stream_name s\n    auto_create_group on\n    log_key log\n\
         endpoint {}\n    sts_endpoint {}\n    startup_check off\n",
        lines.display(),
        case.workers,
        case.name,
        endpoint.url,
        endpoint.url
    );
    let path = dir.join("fluent-bit.conf");
    std::fs::write(&path, conf).unwrap();
    path
}

fn spawn(conf: &Path, fb: &str) -> Child {
    let env = Env::new().keys("AKIDSTOPTEST", "stop-secret-never-logged");
    Command::new(support::host_bin())
        .arg("-e")
        .arg(support::plugin())
        .arg("-c")
        .arg(conf)
        .args(["--fb", fb, "--retry-wait-ms", "300", "--signal-after-unload"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.vars())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the test host")
}

fn signal(child: &Child, signal: libc::c_int) {
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, signal) }, 0);
}

/// Waits (up to a minute) until `ready` holds.
fn wait_until(what: &str, ready: impl Fn() -> bool) {
    let until = Instant::now() + Duration::from_secs(60);
    while !ready() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What a stopped run left: how long the exit took after SIGTERM, the host's report line and
/// the plugin's log.
struct Stopped {
    took: Duration,
    report: String,
    log: String,
}

fn sigterm_and_wait(child: Child) -> Stopped {
    signal(&child, libc::SIGTERM);
    let sent = Instant::now();
    let out = child.wait_with_output().unwrap();
    let took = sent.elapsed();
    let (report, log) =
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    assert!(out.status.code().is_some(), "the host died of a signal: {:?}\n{log}", out.status);
    assert!(log.contains("survived a signal after unload"), "{log}");
    assert!(log.contains("exit: events_sent="), "ExitCtx did not run\n{log}");
    Stopped { took, report, log }
}

/// Every PutLogEvents refused with a 500.
fn refusing() -> Faults {
    Faults { http500: 1.0, ..Faults::default() }
}

/// Every PutLogEvents left unanswered.
fn hanging() -> Faults {
    Faults { slow: 1.0, slow_for: Duration::from_secs(600), ..Faults::default() }
}

fn failing(case: Case) {
    failing_with(case, refusing(), 3);
}

/// `faults` on every call; SIGTERM once the endpoint has seen `calls` of them.
fn failing_with(case: Case, faults: Faults, calls: u64) {
    let _serial = serial();
    let dir = support::scratch(case.name);
    let endpoint = StrictEndpoint::start(false, faults, 7);
    let child = spawn(&config(&dir, &case, &endpoint), case.fb);
    wait_until("failing calls", || endpoint.counters().requests.load(Relaxed) >= calls);
    // chunks queue up behind the calls under way
    std::thread::sleep(Duration::from_secs(2));
    let stopped = sigterm_and_wait(child);
    let grace = Duration::from_secs(case.grace.unwrap_or(5));
    eprintln!(
        "[{}] Fluent Bit {} Workers {} Grace {:?}: exit {:?} after SIGTERM; {}",
        case.name,
        case.fb,
        case.workers,
        grace,
        stopped.took,
        stopped.report.trim()
    );
    assert!(
        stopped.took <= grace + Duration::from_secs(1) + SLACK,
        "[{}] exit took {:?}\n{}",
        case.name,
        stopped.took,
        stopped.log
    );
    assert!(stopped.report.contains("stopped=true"), "{}", stopped.report);
}

#[test]
fn sigterm_while_every_call_fails_exits_within_grace_without_workers() {
    failing(Case { name: "fail-w0", fb: "5.1.1", workers: 0, grace: None });
}

#[test]
fn sigterm_while_every_call_fails_exits_within_grace_with_workers() {
    failing(Case { name: "fail-w1", fb: "5.1.1", workers: 1, grace: Some(2) });
}

#[test]
fn sigterm_while_every_call_fails_exits_within_grace_in_1_9_10() {
    failing(Case { name: "fail-19-w0", fb: "1.9.10", workers: 0, grace: Some(2) });
    failing(Case { name: "fail-19-w2", fb: "1.9.10", workers: 2, grace: Some(2) });
}

/// A worker's queue of flushes behind a call that hangs: once one call was abandoned for the
/// stop, the rest answer at once (each waiting its own window would hold the worker's join).
#[test]
fn sigterm_while_calls_hang_answers_the_queued_flushes_at_once() {
    failing_with(Case { name: "hang-w1", fb: "5.1.1", workers: 1, grace: Some(2) }, hanging(), 1);
}

/// Fluent Bit's SIGCONT handler puts its own SIGTERM handler back in front of ours; the plugin
/// takes its place again within a second.
#[test]
fn the_stop_is_still_seen_after_fluent_bit_reinstalls_its_handlers() {
    let _serial = serial();
    let case = Case { name: "reinstalled", fb: "5.1.1", workers: 0, grace: Some(2) };
    let dir = support::scratch(case.name);
    let endpoint = StrictEndpoint::start(false, refusing(), 9);
    let child = spawn(&config(&dir, &case, &endpoint), case.fb);
    wait_until("failing calls", || endpoint.counters().injected_500.load(Relaxed) >= 3);
    signal(&child, libc::SIGCONT);
    std::thread::sleep(Duration::from_millis(1500));
    let stopped = sigterm_and_wait(child);
    eprintln!("[{}] exit {:?} after SIGTERM; {}", case.name, stopped.took, stopped.report.trim());
    assert!(stopped.took <= Duration::from_secs(3) + SLACK, "exit took {:?}\n{}", stopped.took, stopped.log);
}

fn healthy(case: Case) {
    let _serial = serial();
    let dir = support::scratch(case.name);
    let endpoint = StrictEndpoint::start(false, Faults::default(), 11);
    let child = spawn(&config(&dir, &case, &endpoint), case.fb);
    wait_until("accepted events", || endpoint.counters().events_accepted.load(Relaxed) >= 1000);
    let stopped = sigterm_and_wait(child);
    let seqs: Vec<u64> = endpoint.accepted().iter().filter_map(|a| a.seq).collect();
    let unique: BTreeSet<u64> = seqs.iter().copied().collect();
    let delivered = unique.len() as u64;
    let duplicated = seqs.len() as u64 - delivered;
    let gaps = unique.last().map_or(0, |last| last + 1 - delivered);
    eprintln!(
        "[{}] Fluent Bit {} Workers {}: exit {:?} after SIGTERM; read {} of {} lines before the stop, delivered once {}, duplicated {}, lost {}; {}",
        case.name, case.fb, case.workers, stopped.took, delivered + gaps, LINES, delivered, duplicated, gaps, stopped.report.trim()
    );
    assert!(
        stopped.report.contains("pending_at_exit=0") && stopped.report.contains("dropped_chunks=0"),
        "{}",
        stopped.report
    );
    assert!(delivered < LINES, "the run ended before the stop: nothing was under way");
    assert_eq!((duplicated, gaps), (0, 0), "{}", stopped.log);
    assert_eq!(endpoint.counters().rule_violations.load(Relaxed), 0);
}

#[test]
fn sigterm_with_a_healthy_endpoint_delivers_everything_read_before_it() {
    healthy(Case { name: "healthy-w1", fb: "5.1.1", workers: 1, grace: Some(2) });
    healthy(Case { name: "healthy-19-w0", fb: "1.9.10", workers: 0, grace: Some(2) });
}
