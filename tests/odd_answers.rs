//! Answers that are not CloudWatch Logs' own — what a proxy, load balancer or captive portal
//! sends instead (`OddAnswer` of the strict endpoint: a 302, HTML pages with 404/413/502/504, a
//! 200 that is not JSON, is HTML or is empty, a 400 in someone else's JSON) — never drop a record: the
//! endpoint misbehaves for a while, then behaves, and every record arrives exactly once. Only
//! CloudWatch's own InvalidParameterException drops a batch, and it is counted.

mod support;

use cwrs_aws_standins::strict::{Faults, OddAnswer, StrictEndpoint};
use cwrs_test_host::{chunk, exit_counter, log_instance, record, RunReport, FB_5_1_1};
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use support::{serial, Env, Plugin};

const SECRET: &str = "odd-answers-secret-never-logged";
/// Records per run, in chunks of `PER_CHUNK`.
const RECORDS: u64 = 120;
const PER_CHUNK: u64 = 40;
/// PutLogEvents calls answered oddly before the endpoint behaves again: more than one flush
/// retries within `flush_timeout`, so Fluent Bit's retry is needed too.
const ODD_CALLS: u64 = 8;

/// What became of the records of one run.
#[derive(Debug)]
struct Tally {
    sent: u64,
    delivered_once: u64,
    lost: u64,
    duplicated: u64,
    dropped_invalid: u64,
    odd_answers: u64,
}

/// `RECORDS` records `{"seq":i}` in chunks of one tag.
fn chunks() -> Vec<(Vec<u8>, String)> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as u32;
    (0..RECORDS / PER_CHUNK)
        .map(|c| {
            let recs = (c * PER_CHUNK..(c + 1) * PER_CHUNK).map(|i| record(true, now, 0, &json!({ "seq": i })));
            (chunk(recs, usize::MAX).remove(0), "app".to_string())
        })
        .collect()
}

/// Sends `chunks()` through the plugin while the endpoint answers the next `ODD_CALLS`
/// PutLogEvents with `odd` (or meets `faults`), and tallies what arrived.
fn run(name: &str, odd: Option<OddAnswer>, faults: Faults) -> (Tally, RunReport, String) {
    let _serial = serial();
    Env::new().keys("AKIDODDANSWERS", SECRET).apply();
    let endpoint = StrictEndpoint::start(false, faults, 0x0dd ^ name.len() as u64);
    let group = format!("odd-{name}");
    let props = [
        ("Name", "cloudwatch_rs"),
        ("region", "us-east-1"),
        ("log_group_name", group.as_str()),
        ("log_stream_name", "s"),
        ("auto_create_group", "on"),
        ("endpoint", endpoint.url.as_str()),
        ("sts_endpoint", endpoint.url.as_str()),
        ("flush_timeout", "3s"),
        ("startup_check", "off"),
    ];
    if let Some(odd) = odd {
        endpoint.odd_answers_for_next(odd, ODD_CALLS);
    }
    let plugin = Plugin::start_logged(FB_5_1_1, &props);
    let report = plugin.run(chunks(), Duration::from_millis(500));
    let log = plugin.stop();
    let mut seen: HashMap<u64, u64> = HashMap::new();
    for a in endpoint.accepted() {
        *seen.entry(a.seq.expect("seq in every message")).or_default() += 1;
    }
    let instance = log_instance(&log).unwrap_or_else(|| "cloudwatch_rs.0".to_string());
    let tally = Tally {
        sent: RECORDS,
        delivered_once: seen.values().filter(|&&c| c == 1).count() as u64,
        lost: (0..RECORDS).filter(|s| !seen.contains_key(s)).count() as u64,
        duplicated: seen.values().filter(|&&c| c > 1).map(|c| c - 1).sum(),
        dropped_invalid: exit_counter(&log, &instance, "dropped_invalid"),
        odd_answers: endpoint.counters().injected_odd.load(Relaxed),
    };
    eprintln!("[{name}] {tally:?}\n[{name}] host: {report:?}\n[{name}] endpoint: {}", endpoint.summary());
    assert!(!log.contains(SECRET), "a secret in the log");
    assert_eq!(tally.delivered_once + tally.lost, tally.sent);
    assert_eq!(endpoint.counters().rule_violations.load(Relaxed), 0, "{:?}", endpoint.violations());
    (tally, report, log)
}

fn misbehaves_then_behaves(name: &str, odd: OddAnswer) {
    let (tally, report, log) = run(name, Some(odd), Faults::default());
    assert_eq!(tally.odd_answers, ODD_CALLS, "every odd answer was met");
    assert_eq!((tally.lost, tally.duplicated, tally.delivered_once), (0, 0, RECORDS), "{tally:?}");
    assert_eq!(tally.dropped_invalid, 0);
    assert_eq!((report.dropped_chunks, report.error), (0, 0), "{report:?}");
    assert!(!log.contains("dropping"), "{log}");
    // the operator learns what stood in the way
    let line = log.lines().find(|l| l.contains("gave up")).map(str::to_owned).unwrap_or_default();
    eprintln!("[{name}] {line}");
}

/// One test per odd answer: `$name`, its label in the output, the answer.
macro_rules! odd_answer_test {
    ($($name:ident: $label:literal, $odd:ident;)+) => {
        $(
            #[test]
            fn $name() {
                misbehaves_then_behaves($label, OddAnswer::$odd);
            }
        )+
    };
}

odd_answer_test! {
    a_302_redirect: "302", Redirect302;
    a_404_html_page: "404", Html404;
    a_413_with_an_html_body: "413", Html413;
    a_200_whose_body_is_not_json: "200-not-json", NotJson200;
    a_200_html_page: "200-html", Html200;
    an_empty_200_html_answer: "200-empty", Empty200;
    a_400_in_someone_elses_json: "400-foreign-json", ForeignJson400;
    a_502_from_a_load_balancer: "502", Html502;
    a_504_from_a_load_balancer: "504", Html504;
}

#[test]
fn every_odd_answer_now_and_then_among_good_ones() {
    for odd in OddAnswer::ALL {
        let faults = Faults { odd: Some((odd, 0.3)), ..Faults::default() };
        let (tally, report, log) = run(&format!("mixed-{odd:?}"), None, faults);
        assert_eq!((tally.lost, tally.duplicated), (0, 0), "{odd:?}: {tally:?}");
        assert_eq!(report.dropped_chunks, 0, "{odd:?}: {report:?}");
        assert!(tally.odd_answers > 0 && !log.contains("dropping"), "{odd:?}: {tally:?}");
    }
}

#[test]
fn cloudwatchs_own_invalid_parameter_still_drops_the_batch_and_counts_it() {
    let (tally, report, log) = run("genuine-invalid", None, Faults { invalid_parameter: 1.0, ..Faults::default() });
    assert_eq!((tally.delivered_once, tally.lost, tally.dropped_invalid), (0, RECORDS, RECORDS), "{tally:?}");
    // every batch refused as invalid: ERROR, and Fluent Bit does not retry it
    assert_eq!((report.error, report.retry), ((RECORDS / PER_CHUNK) as usize, 0), "{report:?}");
    let line = log.lines().find(|l| l.contains("dropping")).expect("a line saying the batch is dropped");
    assert!(line.contains("InvalidParameterException"), "{line}");
}
