//! Metrics: which Fluent Bit versions are told we take metrics events (the `event_type` field of
//! the registration block, written only where the allocator says the block holds it), a metrics
//! chunk (cmetrics msgpack) delivered as EMF documents, and the `cpu`/`mem` records' EMF.

mod support;

use cwrs_aws_standins::strict::{Faults, StrictEndpoint};
use cwrs_test_host::{record, FB_1_9_10, FB_4_2, FB_5_0, FB_5_1_1};
use serde_json::{json, Value};
use std::time::{SystemTime, UNIX_EPOCH};
use support::{serial, Env, Plugin};

fn now() -> SystemTime {
    SystemTime::now()
}

/// The strict endpoint with group `fluent-health`, and its credentials in the environment.
fn endpoint_with_group(seed: u64) -> StrictEndpoint {
    let endpoint = StrictEndpoint::start(false, Faults::default(), seed);
    Env::new().keys("AKIDSTRICTTEST", "strict-secret-never-logged").apply();
    endpoint.create_group("fluent-health");
    endpoint
}

fn props(url: &str) -> Vec<(&'static str, String)> {
    [
        ("Name", "cloudwatch_rs"),
        ("region", "us-east-1"),
        ("log_group_name", "fluent-health"),
        ("log_stream_prefix", "from-cmetrics-"),
        ("auto_retry_requests", "off"),
        ("startup_check", "off"),
        ("stats_interval", "off"),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_owned()))
    .chain([("endpoint", url.to_owned()), ("sts_endpoint", url.to_owned())])
    .collect()
}

/// A `fluentbit_metrics`-like cmetrics context: a counter per input and an uptime gauge.
fn fluentbit_metrics_payload(ts_ns: u64) -> Vec<u8> {
    let family = |kind: u64, ss: &str, name: &str, labels: &[&str], values: Value| {
        json!({"meta": {"ver": 2, "type": kind,
                        "opts": {"ns": "fluentbit", "ss": ss, "name": name, "desc": "d", "unit": ""},
                        "labels": labels},
               "values": values})
    };
    let context = json!({
        "meta": {"cmetrics": {}, "external": {}, "processing": {"static_labels": [["hostname", "h1"]]}},
        "metrics": [
            family(0, "input", "records_total", &["name"],
                   json!([{"ts": ts_ns, "value": 42.0, "labels": ["cpu.0"], "hash": 1},
                          {"ts": ts_ns, "value": 7.0, "labels": ["mem.1"], "hash": 2}])),
            family(1, "", "uptime", &[], json!([{"ts": ts_ns, "value": 12.0, "hash": 3}])),
        ]
    });
    rmp_serde::to_vec(&context).unwrap()
}

/// Ported from fluent-bit's tests/runtime/out_cloudwatch.c `success_with_metrics` (a
/// `fluentbit_metrics` input, `log_stream_prefix from-cmetrics-`): in 5.1.1 the plugin declares
/// logs and metrics, and a metrics chunk lands as one EMF document per value.
#[test]
fn success_with_metrics() {
    let _serial = serial();
    let endpoint = endpoint_with_group(91);
    let props = props(&endpoint.url);
    let props: Vec<(&str, &str)> = props.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let plugin = Plugin::start_logged(FB_5_1_1, &props);
    assert_eq!(plugin.host.declared_event_type(plugin.reg), 3, "FLB_OUTPUT_LOGS | FLB_OUTPUT_METRICS");

    let ts = now().duration_since(UNIX_EPOCH).unwrap();
    let ts_ns = ts.as_nanos() as u64;
    assert_eq!(plugin.flush(&fluentbit_metrics_payload(ts_ns), "test"), 1);
    // a logs chunk on the same instance still goes the logs way
    assert_eq!(plugin.flush(&record(true, ts.as_secs() as u32, 0, &json!({"log": "x"})), "test"), 1);
    let log = plugin.stop();

    let accepted = endpoint.accepted();
    assert_eq!(accepted.len(), 4, "{log}");
    assert!(accepted.iter().all(|a| a.group == "fluent-health" && a.stream == "from-cmetrics-test"));
    let docs: Vec<Value> = accepted[..3].iter().map(|a| serde_json::from_str(&a.head).unwrap()).collect();
    assert_eq!(
        docs[0],
        json!({
            "_aws": {"Timestamp": (ts_ns / 1_000_000), "CloudWatchMetrics": [{
                "Namespace": "fluentbit", "Dimensions": [["name", "hostname"]],
                "Metrics": [{"Name": "fluentbit_input_records_total", "Unit": "Count", "StorageResolution": 60}]}]},
            "name": "cpu.0", "hostname": "h1",
            "prom_metric_type": "counter",
            "fluentbit_input_records_total": 42.0
        })
    );
    assert_eq!((&docs[1]["name"], &docs[1]["fluentbit_input_records_total"]), (&json!("mem.1"), &json!(7.0)));
    assert_eq!(docs[2]["fluentbit_uptime"], 12.0);
    assert_eq!(accepted[0].timestamp, (ts_ns / 1_000_000) as i64, "the metric's own time");
    assert_eq!(accepted[3].head, r#"{"log":"x"}"#);
    assert!(log.contains("accepting logs and metrics events"), "{log}");
}

/// Before 5.0 the block is 32 bytes with no `event_type`; 5.0–5.1.0 calloc 40, which glibc
/// cannot tell apart from 4.x's 32: the plugin writes nothing there and says so. The host fails
/// Register if anything lands in the block's slack.
#[test]
fn older_fluent_bit_gets_logs_only_and_a_line_saying_so() {
    let _serial = serial();
    for profile in [FB_5_0, FB_4_2, FB_1_9_10] {
        let plugin = Plugin::start_logged(
            profile,
            &[
                ("Name", "cloudwatch_rs"),
                ("region", "us-east-1"),
                ("log_group_name", "g"),
                ("log_stream_name", "s"),
                ("startup_check", "off"),
            ],
        );
        assert_eq!(plugin.host.declared_event_type(plugin.reg), 0, "Fluent Bit {}", profile.name);
        let log = plugin.stop();
        assert!(
            log.contains("accepting logs events only: metrics events need Fluent Bit >= 5.0")
                && log.contains("route metrics to the built-in cloudwatch_logs"),
            "Fluent Bit {}: {log}",
            profile.name
        );
    }
}

/// The `cpu` input's record with `metric_namespace` and `metric_dimensions hostname`: the C
/// plugin's document (three metrics, `Unit` Percent, `[["hostname"]]`); an app log beside it
/// with numbers stays plain JSON.
#[test]
fn cpu_input_records_become_the_c_plugins_emf() {
    let _serial = serial();
    let endpoint = endpoint_with_group(92);
    let mut props = props(&endpoint.url);
    props.push(("metric_namespace", "fluent-bit-metrics".into()));
    props.push(("metric_dimensions", "hostname".into()));
    let props: Vec<(&str, &str)> = props.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let plugin = Plugin::start_logged(FB_5_1_1, &props);
    let secs = now().duration_since(UNIX_EPOCH).unwrap().as_secs() as u32;
    let cpu = json!({"cpu_p": 2.5, "user_p": 1.5, "system_p": 1.0, "cpu0.p_cpu": 2.5, "cpu0.p_user": 1.5,
                     "cpu0.p_system": 1.0, "hostname": "h1"});
    let mut chunk = record(true, secs, 250_000_000, &cpu);
    chunk.extend(record(true, secs, 0, &json!({"log": "GET /", "status": 200, "latency_ms": 3.5})));
    assert_eq!(plugin.flush(&chunk, "cpu.local"), 1);
    let log = plugin.stop();
    let accepted = endpoint.accepted();
    assert_eq!(accepted.len(), 2, "{log}");
    // sorted by time: the app log (…000) first
    assert_eq!(accepted[0].head, r#"{"log":"GET /","status":200,"latency_ms":3.5}"#);
    let doc: Value = serde_json::from_str(&accepted[1].head).unwrap();
    assert_eq!(
        doc["_aws"],
        json!({"Timestamp": secs as u64 * 1000 + 250, "CloudWatchMetrics": [{
            "Namespace": "fluent-bit-metrics", "Dimensions": [["hostname"]],
            "Metrics": [{"Name": "cpu_p", "Unit": "Percent"}, {"Name": "user_p", "Unit": "Percent"},
                        {"Name": "system_p", "Unit": "Percent"}]}]})
    );
    assert_eq!((&doc["cpu0.p_cpu"], &doc["hostname"]), (&json!(2.5), &json!("h1")));
}
