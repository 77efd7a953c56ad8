//! Delivery under faults and at the API's limits, against the strict endpoint
//! (`tests/aws-standins/src/strict.rs`): a corpus of records with unique sequence numbers goes
//! through the test host with `Workers 4` and Fluent Bit's default `Retry_Limit 1`; every record
//! must be accepted exactly once, or counted by the plugin as dropped with its reason — and the
//! endpoint must never see a request that breaks a PutLogEvents rule.

mod support;

use cwrs_aws_standins::strict::{Faults, StrictEndpoint};
use cwrs_test_host::{chunk, exit_counter, log_instance, record, FB_5_1_1};
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use support::{serial, Env, Plugin};

const MAX_MESSAGE: usize = 1_048_550;

/// Record `i`'s body: `{"seq":i,"pad":"…"}` of a size class chosen by `i`: mostly tiny, every
/// 10th 1 KB, every 1000th 300 KB, and now and then exactly the maximum message size, or just
/// over it (which must arrive cut to the maximum).
fn body(i: u64, big_every: u64) -> serde_json::Value {
    let target = match i % big_every {
        0 => 300 << 10,
        1 => MAX_MESSAGE,
        2 => MAX_MESSAGE + 1 + (i as usize % 5000),
        _ if i % 10 == 3 => 1024,
        _ => 40,
    };
    let head = format!("{{\"seq\":{i},\"pad\":\"\"}}").len();
    json!({ "seq": i, "pad": "p".repeat(target.saturating_sub(head)) })
}

struct Corpus {
    chunks: Vec<(Vec<u8>, String)>,
    records: u64,
    truncated: u64,
}

/// `n` records over `streams` tags, times unsorted over 30 hours of the last 2 days.
fn corpus(n: u64, streams: u64, big_every: u64) -> Corpus {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let base = now - 40 * 3600;
    let mut per_tag: HashMap<u64, Vec<Vec<u8>>> = HashMap::new();
    let mut truncated = 0;
    for i in 0..n {
        let b = body(i, big_every);
        if serde_json::to_string(&b).unwrap().len() > MAX_MESSAGE {
            truncated += 1;
        }
        let secs = base + (i.wrapping_mul(2_654_435_761) % (30 * 3600));
        per_tag.entry(i % streams).or_default().push(record(i % 3 != 0, secs as u32, (i % 1000) as u32 * 1000, &b));
    }
    let mut chunks = Vec::new();
    let mut tags: Vec<_> = per_tag.into_iter().collect();
    tags.sort_by_key(|(t, _)| *t);
    for (tag, recs) in tags {
        chunks.extend(chunk(recs, 2 << 20).into_iter().map(|c| (c, format!("app.{tag}"))));
    }
    Corpus { chunks, records: n, truncated }
}

#[derive(Debug)]
struct Outcome {
    sent: u64,
    delivered_once: u64,
    duplicated: u64,
    missing: u64,
    dropped_counted: u64,
    truncated: u64,
    chunks_dropped_by_fluent_bit: usize,
    rule_violations: u64,
}

/// The plugin's environment in this process: static keys, no IMDS, no config files.
fn plugin_env() {
    Env::new().keys("AKIDSTRICTTEST", "strict-secret-never-logged").apply();
}

fn run(name: &str, faults: Faults, tls: bool, corpus: Corpus, extra: &[(&str, &str)]) -> Outcome {
    let _serial = serial();
    plugin_env();
    let endpoint = StrictEndpoint::start(tls, Faults::default(), 0x5eed ^ name.len() as u64);
    let dir = support::scratch(name);
    let ca = dir.join("ca.pem");
    if let Some(pem) = &endpoint.ca_pem {
        std::fs::write(&ca, pem).unwrap();
    }
    let group = format!("strict-{name}");
    let mut props: Vec<(&str, &str)> = vec![
        ("Name", "cloudwatch_rs"),
        ("Workers", "4"),
        ("region", "us-east-1"),
        ("log_group_name", &group),
        ("log_stream_prefix", "s-"),
        ("auto_create_group", "on"),
        ("endpoint", &endpoint.url),
        // the startup check's GetCallerIdentity goes to the stand-in STS on the same port
        ("sts_endpoint", &endpoint.url),
        ("flush_timeout", "10s"),
    ];
    let ca_path = ca.to_string_lossy().into_owned();
    if tls {
        props.push(("ca_bundle", &ca_path));
    }
    props.extend_from_slice(extra);
    endpoint.set_faults(faults);

    let plugin = Plugin::start_logged(FB_5_1_1, &props);
    let (records, truncated) = (corpus.records, corpus.truncated);
    let report = plugin.run(corpus.chunks, Duration::from_millis(300));
    let log = plugin.stop();

    let mut seen: HashMap<u64, u64> = HashMap::new();
    for a in endpoint.accepted() {
        *seen.entry(a.seq.expect("seq in every message")).or_default() += 1;
    }
    let instance = log_instance(&log).unwrap_or_else(|| "cloudwatch_rs.0".to_string());
    let dropped_counted = [
        "dropped_rejected_too_old",
        "dropped_rejected_too_new",
        "dropped_rejected_expired",
        "dropped_invalid",
        "dropped_empty",
        "dropped_bad_record",
        "dropped_bad_body",
        "dropped_missing_key",
    ]
    .iter()
    .map(|c| exit_counter(&log, &instance, c))
    .sum();
    assert!(!log.contains("strict-secret-never-logged"), "a secret in the log");
    let outcome = Outcome {
        sent: records,
        delivered_once: seen.values().filter(|&&c| c == 1).count() as u64,
        duplicated: seen.values().filter(|&&c| c > 1).map(|c| c - 1).sum(),
        missing: (0..records).filter(|s| !seen.contains_key(s)).count() as u64,
        dropped_counted,
        truncated: exit_counter(&log, &instance, "truncated"),
        chunks_dropped_by_fluent_bit: report.dropped_chunks,
        rule_violations: endpoint.counters().rule_violations.load(Relaxed),
    };
    eprintln!("[{name}] {outcome:?}\n[{name}] endpoint: {}\n[{name}] host: {report:?}", endpoint.summary());
    assert_eq!(outcome.rule_violations, 0, "{:?}", endpoint.violations());
    assert_eq!(outcome.duplicated, 0, "duplicates");
    assert_eq!(outcome.chunks_dropped_by_fluent_bit, 0, "chunks given up by Fluent Bit");
    assert_eq!(outcome.missing, outcome.dropped_counted, "every record not delivered is counted as dropped");
    let injected =
        endpoint.counters().injected_reject_old.load(Relaxed) + endpoint.counters().injected_reject_new.load(Relaxed);
    assert_eq!(outcome.delivered_once + outcome.missing, outcome.sent);
    assert_eq!(outcome.truncated, truncated, "every over-size record cut once");
    if injected == 0 {
        assert_eq!(outcome.missing, 0);
    }
    outcome
}

/// No faults yet, and slow answers held past the client's attempt timeout (10 s / 3 = 3.3 s).
fn no_faults() -> Faults {
    Faults { slow_for: Duration::from_millis(3500), ..Faults::default() }
}

macro_rules! fault_test {
    ($name:ident, $field:ident, $p:expr) => {
        #[test]
        fn $name() {
            let mut faults = no_faults();
            faults.$field = $p;
            run(stringify!($name), faults, false, corpus(3_000, 20, 500), &[]);
        }
    };
}

fault_test!(throttling, throttle, 0.3);
fault_test!(http_500, http500, 0.3);
fault_test!(http_503, http503, 0.3);
fault_test!(connection_reset_mid_request, reset, 0.3);
fault_test!(slow_answers_past_the_client_timeout, slow, 0.1);
fault_test!(stream_deleted_while_running, delete_stream, 0.2);
fault_test!(group_deleted_while_running, delete_group, 0.1);
fault_test!(expired_token, expired_token, 0.3);
fault_test!(rejected_too_old, reject_old, 0.3);
fault_test!(rejected_too_new, reject_new, 0.3);

#[test]
fn no_faults_over_tls_at_the_limits() {
    let o = run("tls-clean", Faults::default(), true, corpus(5_000, 50, 250), &[]);
    assert_eq!(o.delivered_once, 5_000);
}

#[test]
fn all_faults_mixed_over_tls() {
    run("mixed", Faults::mixed(0.03, Duration::from_millis(3500)), true, corpus(20_000, 100, 1000), &[]);
}

/// `make soak`: a million records, 1,000 streams, every fault mixed in.
#[test]
#[ignore]
fn soak_a_million_records_all_faults_mixed() {
    let n = std::env::var("SOAK_RECORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    run("soak", Faults::mixed(0.02, Duration::from_millis(3500)), false, corpus(n, 1000, 10_000), &[]);
}

/// One chunk of `n` records of ~400 KB (two to a batch), with sequence numbers from 0.
fn big_records_chunk(n: u64) -> Vec<(Vec<u8>, String)> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as u32;
    let recs = (0..n).map(|i| record(true, now, 0, &json!({ "seq": i, "pad": "q".repeat(400_000) })));
    vec![(chunk(recs, usize::MAX).remove(0), "t".to_string())]
}

/// The properties for one fixed stream of `group` at `endpoint`.
fn one_stream<'a>(
    endpoint: &'a StrictEndpoint,
    group: &'a str,
    flush_timeout: &'a str,
    batches_in_flight: &'a str,
) -> [(&'a str, &'a str); 10] {
    [
        ("Name", "cloudwatch_rs"),
        ("batches_in_flight", batches_in_flight),
        ("region", "us-east-1"),
        ("log_group_name", group),
        ("log_stream_name", "s"),
        ("auto_create_group", "on"),
        ("endpoint", endpoint.url.as_str()),
        ("sts_endpoint", endpoint.url.as_str()),
        ("flush_timeout", flush_timeout),
        ("startup_check", "off"),
    ]
}

#[test]
fn a_retried_chunk_skips_the_batches_already_accepted() {
    let _serial = serial();
    plugin_env();
    // the first accepted call gets through, then everything is throttled until cleared
    let endpoint = StrictEndpoint::start(false, Faults { throttle_after_puts: Some(1), ..no_faults() }, 23);
    // six records of ~400 KB: three batches of two
    let chunks = big_records_chunk(6);
    let plugin = Plugin::start_logged(FB_5_1_1, &one_stream(&endpoint, "progress", "2s", "2"));
    let clear = {
        let faults = no_faults();
        let ep = &endpoint;
        std::thread::scope(|s| {
            s.spawn(move || {
                std::thread::sleep(Duration::from_secs(3));
                ep.set_faults(faults);
            });
            // first attempt: batch 0 accepted, batch 1 throttled until the 2 s deadline -> RETRY;
            // Fluent Bit re-sends the whole chunk 2 s later, after the faults are gone
            plugin.run(chunks, Duration::from_secs(2))
        })
    };
    let log = plugin.stop();
    let instance = log_instance(&log).unwrap();
    let mut seen: HashMap<u64, u64> = HashMap::new();
    for a in endpoint.accepted() {
        *seen.entry(a.seq.unwrap()).or_default() += 1;
    }
    eprintln!("progress: {clear:?}, accepted {seen:?}, {}", endpoint.summary());
    assert_eq!((clear.retry, clear.ok, clear.dropped_chunks), (1, 1, 0), "{clear:?}");
    assert_eq!(seen.len(), 6);
    assert!(seen.values().all(|&c| c == 1), "a batch was sent twice: {seen:?}");
    assert_eq!(exit_counter(&log, &instance, "batches_skipped"), 1);
}

#[test]
fn a_missing_group_without_auto_create_answers_retry_and_says_what_is_missing() {
    let _serial = serial();
    plugin_env();
    let endpoint = StrictEndpoint::start(false, no_faults(), 29);
    let props = [
        ("Name", "cloudwatch_rs"),
        ("region", "us-east-1"),
        ("log_group_name", "not-created-yet"),
        ("log_stream_name", "s"),
        ("endpoint", endpoint.url.as_str()),
        ("sts_endpoint", endpoint.url.as_str()),
        ("startup_check", "off"),
    ];
    let plugin = Plugin::start_logged(FB_5_1_1, &props);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as u32;
    let small = |from: u64| {
        let recs = (from..from + 10).map(|i| record(true, now, 0, &json!({ "seq": i })));
        vec![(chunk(recs, usize::MAX).remove(0), "t".to_string())]
    };
    let first = plugin.run(small(0), Duration::from_millis(100));
    endpoint.create_group("not-created-yet"); // someone creates it: the next chunk goes through
    let second = plugin.run(small(10), Duration::from_millis(100));
    let log = plugin.stop();
    assert_eq!((first.retry, first.dropped_chunks), (2, 1), "{first:?}");
    assert_eq!((second.ok, second.retry), (1, 0), "{second:?}");
    assert!(
        log.lines().any(|l| l.contains("log group 'not-created-yet' does not exist and auto_create_group is off")),
        "{log}"
    );
}

/// `make soak`: 10,000 streams, one record each: no state is kept per stream.
#[test]
#[ignore]
fn soak_ten_thousand_streams() {
    run("streams", Faults::default(), false, corpus(10_000, 10_000, 1_000_000), &[]);
}

#[test]
fn exit_reports_chunks_left_partly_delivered() {
    let _serial = serial();
    plugin_env();
    // one call gets through, then everything is throttled for good
    let endpoint = StrictEndpoint::start(false, Faults { throttle_after_puts: Some(1), ..no_faults() }, 31);
    let chunks = big_records_chunk(4);
    let plugin = Plugin::start_logged(FB_5_1_1, &one_stream(&endpoint, "left-over", "1s", "1"));
    let report = plugin.run(chunks, Duration::from_millis(100));
    let log = plugin.stop();
    // Fluent Bit gave up after its retry; the plugin says at exit what was left half done
    assert_eq!(report.dropped_chunks, 1, "{report:?}");
    assert!(log.contains("exit with 1 partly delivered chunks still awaiting Fluent Bit's retry"), "{log}");
    let seen: Vec<u64> = endpoint.accepted().iter().filter_map(|a| a.seq).collect();
    assert_eq!(seen, vec![0, 1], "the first batch once, nothing twice");
}

#[test]
fn batches_of_one_chunk_are_in_flight_together_up_to_batches_in_flight() {
    let _serial = serial();
    plugin_env();
    // every answer held back 300 ms, so calls sent together overlap at the endpoint
    let slow = Faults { slow: 1.0, slow_for: Duration::from_millis(300), ..no_faults() };
    for (in_flight, expected) in [("1", 1), ("3", 3)] {
        let endpoint = StrictEndpoint::start(false, slow.clone(), 41);
        let plugin = Plugin::start(FB_5_1_1, &one_stream(&endpoint, "together", "20s", in_flight));
        // eight records of ~400 KB: four batches of two
        let report = plugin.run(big_records_chunk(8), Duration::from_secs(1));
        plugin.stop();
        let mut seen: Vec<u64> = endpoint.accepted().iter().filter_map(|a| a.seq).collect();
        seen.sort_unstable();
        eprintln!("batches_in_flight {in_flight}: {report:?}, {}", endpoint.summary());
        assert_eq!((report.ok, report.retry), (1, 0), "{report:?}");
        assert_eq!(seen, (0..8).collect::<Vec<_>>(), "every record once");
        assert_eq!(endpoint.counters().max_puts_in_flight.load(std::sync::atomic::Ordering::Relaxed), expected);
        // the group and stream were missing: the first batch went alone and created them once
        let calls = endpoint.calls();
        for op in ["CreateLogGroup", "CreateLogStream"] {
            assert_eq!(calls.iter().filter(|c| c.op == op).count(), 1, "{op}: {calls:?}");
        }
    }
}

#[test]
fn flushes_of_different_workers_are_in_flight_together() {
    let _serial = serial();
    plugin_env();
    // every answer held back 300 ms: four workers flushing at once must overlap at the endpoint,
    // although the plugin's runtime has a single thread
    let slow = Faults { slow: 1.0, slow_for: Duration::from_millis(300), ..no_faults() };
    let endpoint = StrictEndpoint::start(false, slow, 43);
    let props = [
        ("Name", "cloudwatch_rs"),
        ("Workers", "4"),
        ("region", "us-east-1"),
        ("log_group_name", "workers"),
        ("log_stream_prefix", "w-"),
        ("auto_create_group", "on"),
        ("endpoint", endpoint.url.as_str()),
        ("sts_endpoint", endpoint.url.as_str()),
        ("startup_check", "off"),
    ];
    let plugin = Plugin::start(FB_5_1_1, &props);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as u32;
    // one chunk per worker, each to its own stream (the tag names it)
    let chunks = (0..4u64)
        .map(|i| (chunk([record(true, now, 0, &json!({ "seq": i }))], usize::MAX).remove(0), format!("t{i}")))
        .collect();
    let report = plugin.run(chunks, Duration::from_secs(1));
    plugin.stop();
    eprintln!("{report:?}, {}", endpoint.summary());
    assert_eq!((report.ok, report.retry), (4, 0), "{report:?}");
    let mut seen: Vec<u64> = endpoint.accepted().iter().filter_map(|a| a.seq).collect();
    seen.sort_unstable();
    assert_eq!(seen, vec![0, 1, 2, 3], "every record once");
    assert_eq!(endpoint.counters().max_puts_in_flight.load(Relaxed), 4);
}
