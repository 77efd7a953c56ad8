//! An idle plugin gives its memory back and runs nothing: once the start's leftovers have run,
//! and again once no flush has begun for 5 s, the plugin's code pages are unmapped and glibc's
//! free pages trimmed (`ffi::give_back_memory_later`); while idle no thread of the plugin wakes
//! up (no timers: the stop pipe, the idle release waiting on the next flush), so the pages stay
//! given back; and the next flush, which maps them again, is delivered as before.
//!
//! The plugin is loaded in this process as Fluent Bit loads it (one test function: no other
//! test's threads touch the plugin's code here). The figures this buys inside a real Fluent Bit
//! are `make bench-fluent-bit`'s idle workload (docs/PERFORMANCE.md).

mod support;

use cwrs_aws_standins::strict::{Faults, StrictEndpoint};
use cwrs_test_host::{chunk, record, FB_5_1_1};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use support::{Env, Plugin};

/// Past the start's give-back (1.5 s after Init) or the idle release (5 s after the last flush
/// began), each with the 50 ms it waits for the runtime to park.
const PAST_START: Duration = Duration::from_millis(2500);
const PAST_IDLE: Duration = Duration::from_millis(6500);
/// How long the plugin's threads are watched for wake-ups while idle.
const WATCH: Duration = Duration::from_secs(3);

/// Resident and total KiB of this process's executable mapping of the plugin.
fn plugin_code_kib() -> (u64, u64) {
    let so = std::fs::canonicalize(support::plugin()).unwrap();
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let (mut in_code, mut size, mut rss) = (false, 0, 0);
    for line in smaps.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.first().is_some_and(|f| f.contains('-') && !f.ends_with(':')) && fields.len() >= 5 {
            in_code = fields[1].contains('x') && fields.last().is_some_and(|p| std::path::Path::new(p) == so);
        } else if in_code && fields.first() == Some(&"Size:") {
            size += fields[1].parse::<u64>().unwrap();
        } else if in_code && fields.first() == Some(&"Rss:") {
            rss += fields[1].parse::<u64>().unwrap();
        }
    }
    assert!(size > 0, "no executable mapping of {} in this process", so.display());
    (rss, size)
}

/// Voluntary + involuntary context switches of every thread the plugin started.
fn plugin_thread_switches() -> (usize, u64) {
    let mut threads = 0;
    let mut switches = 0;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        if !status.lines().any(|l| l.starts_with("Name:") && l.contains("cloudwatch_rs")) {
            continue;
        }
        threads += 1;
        switches += status
            .lines()
            .filter(|l| l.contains("ctxt_switches:"))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum::<u64>();
    }
    (threads, switches)
}

fn one_chunk(n: u32) -> Vec<u8> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let recs =
        (0..100).map(|i| record(true, now.as_secs() as u32, i, &serde_json::json!({"chunk": n, "i": i, "pad": "x"})));
    chunk(recs, usize::MAX).remove(0)
}

/// What is resident of the plugin's code while idle, and whether anything of it ran.
fn idle_state(what: &str) -> u64 {
    let (rss, size) = plugin_code_kib();
    let (threads, before) = plugin_thread_switches();
    std::thread::sleep(WATCH);
    let (rss_after, _) = plugin_code_kib();
    let (_, after) = plugin_thread_switches();
    eprintln!(
        "[idle] {what}: plugin code resident {rss} KiB of {size} KiB, {rss_after} KiB {WATCH:?} later; \
         the plugin's {threads} thread(s) switched {} times meanwhile",
        after - before
    );
    assert!(rss * 10 < size, "{what}: {rss} KiB of the plugin's {size} KiB of code still resident");
    assert_eq!(after, before, "{what}: a plugin thread woke up while nothing was flushed");
    assert_eq!(rss_after, rss, "{what}: code was mapped again while nothing was flushed");
    rss
}

#[test]
fn an_idle_plugin_gives_its_code_back_and_runs_nothing_until_the_next_flush() {
    Env::new().keys("AKIDIDLETEST", "idle-secret").apply();
    let endpoint = StrictEndpoint::start(true, Faults::default(), 41);
    let ca = support::scratch("idle").join("ca.pem");
    std::fs::write(&ca, endpoint.ca_pem.as_deref().unwrap()).unwrap();
    let plugin = Plugin::start(
        FB_5_1_1,
        &[
            ("Name", "cloudwatch_rs"),
            ("Workers", "1"),
            ("region", "us-east-1"),
            ("log_group_name", "idle"),
            ("log_stream_name", "s"),
            ("auto_create_group", "on"),
            ("endpoint", &endpoint.url),
            ("sts_endpoint", &endpoint.url),
            ("ca_bundle", ca.to_str().unwrap()),
        ],
    );
    // Init ran the startup check: the whole request path, TLS included, is mapped now
    let (at_init, size) = plugin_code_kib();
    eprintln!("[idle] after Init: plugin code resident {at_init} KiB of {size} KiB");

    std::thread::sleep(PAST_START);
    idle_state("after the start");

    assert_eq!(plugin.flush(&one_chunk(1), "app"), 1, "first flush");
    assert_eq!(endpoint.counters().events_accepted.load(Relaxed), 100);
    let (after_flush, _) = plugin_code_kib();
    eprintln!("[idle] after a flush: plugin code resident {after_flush} KiB");

    std::thread::sleep(PAST_IDLE);
    idle_state("5 s after the last flush");

    // the pages come back with the next flush, which is delivered as any other
    assert_eq!(plugin.flush(&one_chunk(2), "app"), 1, "flush after the idle release");
    assert_eq!(endpoint.counters().events_accepted.load(Relaxed), 200);
    assert_eq!(endpoint.counters().rule_violations.load(Relaxed), 0);
    plugin.stop();
}
