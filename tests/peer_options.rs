//! Every option of the peer plugins, through the test host as each Fluent Bit version calls the
//! plugin, against the strict endpoint (which records what reached "CloudWatch": CreateLogGroup's
//! fields, PutRetentionPolicy, the PutLogEvents headers) and its STS / container-credentials /
//! ECS task metadata stand-ins.

mod support;

use cwrs_aws_standins::strict::{Faults, StrictEndpoint};
use cwrs_aws_standins::strict_sts::ECS_TASK_ARN;
use cwrs_test_host::{exit_counter, log_instance, record, Profile, FB_1_9_10, FB_4_2, FB_5_1_1};
use serde_json::json;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::{serial, Env, Plugin};

fn now_secs() -> u32 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as u32
}

/// No base credentials in the environment (they must come from `credentials_endpoint`), and
/// the ECS task metadata stand-in.
fn env_for(endpoint: &StrictEndpoint) -> Env {
    Env::new().var("ECS_CONTAINER_METADATA_URI_V4", format!("{}/v4/0123456789abcdef", endpoint.url))
}

/// Every key of the C and Go plugins (and ours), each with a valid value.
fn every_key(url: &str, creds: &str) -> Vec<(&'static str, String)> {
    [
        ("Name", "cloudwatch_rs"),
        ("Match", "*"),
        ("region", "us-east-1"),
        ("log_group_name", "static-group"),
        ("log_group_template", "/ecs/$(ecs_cluster)/$kubernetes['namespace_name']"),
        ("default_log_group_name", "fallback-group"),
        ("log_stream_name", "$(tag[1])-$(ecs_task_id)"),
        ("log_stream_template", "$TAG[0]-$kubernetes['pod_name'].$(ecs_task_id)"),
        ("default_log_stream_name", "fallback-stream"),
        ("auto_create_group", "On"),
        ("log_retention_days", "14"),
        ("new_log_group_tags", "team=logs,env=prod"),
        ("log_group_class", "INFREQUENT_ACCESS"),
        ("kms_key_id", "arn:aws:kms:us-east-1:222222222222:key/1234abcd-12ab-34cd-56ef-1234567890ab"),
        ("auto_create_stream", "true"),
        ("role_arn", "arn:aws:iam::222222222222:role/log-writer"),
        ("external_id", "ext-123"),
        ("role_session_name", "firelens"),
        ("role_session_duration", "1h"),
        ("profile", "default"),
        ("credentials_endpoint", creds),
        ("startup_check", "strict"),
        ("sts_endpoint", url),
        ("endpoint", url),
        ("log_key", "$log['message']"),
        ("log_key_missing", "record"),
        ("log_format", "json/emf"),
        ("metric_namespace", "fluent-bit-metrics"),
        ("metric_dimensions", "host"),
        ("extra_user_agent", "firelens"),
        ("auto_retry_requests", "true"),
        ("truncation_marker", "[cut]"),
        ("flush_timeout", "20s"),
        // batches of the new groups' streams in flight together: each group is still created once
        ("batches_in_flight", "4"),
        ("plugin_log_level", "debug"),
        ("stats_interval", "1s"),
        ("add_entity", "false"),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_string()))
    .collect()
}

fn every_key_in(profile: Profile) {
    let endpoint = StrictEndpoint::start(false, Faults::default(), 77);
    env_for(&endpoint).apply();
    let creds = format!("{}/container-credentials", endpoint.url);
    let props = every_key(&endpoint.url, &creds);
    let pairs: Vec<(&str, &str)> = props.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let plugin = Plugin::start_logged(profile, &pairs);

    let t = now_secs();
    let v2 = profile.v2_records;
    let mut chunk = Vec::new();
    let k8s = |ns: &str, pod: &str| json!({"namespace_name": ns, "pod_name": pod});
    chunk.extend(record(v2, t, 0, &json!({"log": {"message": "one"}, "kubernetes": k8s("prod", "web-1")})));
    chunk.extend(record(v2, t, 1000, &json!({"log": {"message": "two"}, "kubernetes": k8s("prod", "web-2")})));
    chunk.extend(record(
        v2,
        t + 1,
        0,
        &json!({"log": {"message": {"nested": true}}, "kubernetes": k8s("dev", "db-1")}),
    ));
    // no kubernetes fields: both templates fall back; no log key: the whole record is sent
    chunk.extend(record(v2, t + 2, 0, &json!({"other": "field"})));
    assert_eq!(plugin.flush(&chunk, "app.web"), 1);
    // the same fallback again in a later chunk: counted again, not logged again
    assert_eq!(plugin.flush(&record(v2, t + 3, 0, &json!({"other": "again"})), "app.web"), 1);
    // the retention policy is set in the background, and stats_interval is 1 s
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until && endpoint.calls().iter().filter(|c| c.op == "PutRetentionPolicy").count() < 3 {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(1200));
    let log = plugin.stop();
    let fb = profile.name;

    let mut got: Vec<(String, String, String)> =
        endpoint.accepted().into_iter().map(|a| (a.group, a.stream, a.head)).collect();
    got.sort();
    let want = [
        ("/ecs/prod-cluster/dev", "app-db-1.0123456789abcdef0123456789abcdef", r#"{"nested":true}"#),
        ("/ecs/prod-cluster/prod", "app-web-1.0123456789abcdef0123456789abcdef", "one"),
        ("/ecs/prod-cluster/prod", "app-web-2.0123456789abcdef0123456789abcdef", "two"),
        ("static-group", "fallback-stream", r#"{"other":"again"}"#),
        ("static-group", "fallback-stream", r#"{"other":"field"}"#),
    ];
    let want: Vec<(String, String, String)> =
        want.iter().map(|(g, s, m)| (g.to_string(), s.to_string(), m.to_string())).collect();
    assert_eq!(got, want, "Fluent Bit {fb}: {log}");
    assert!(endpoint.violations().is_empty(), "{:?}", endpoint.violations());

    // new groups: class, KMS key and tags on CreateLogGroup; retention afterwards
    let calls = endpoint.calls();
    let creates: Vec<_> = calls.iter().filter(|c| c.op == "CreateLogGroup").collect();
    assert_eq!(creates.len(), 3, "{calls:?}");
    for c in &creates {
        assert_eq!(c.body["logGroupClass"], "INFREQUENT_ACCESS");
        assert_eq!(c.body["kmsKeyId"], props.iter().find(|(k, _)| *k == "kms_key_id").unwrap().1.as_str());
        assert_eq!(c.body["tags"], json!({"team": "logs", "env": "prod"}));
        assert!(c.user_agent.contains("app/cloudwatch_rs-firelens"), "{}", c.user_agent);
    }
    let retention: Vec<_> = calls.iter().filter(|c| c.op == "PutRetentionPolicy").collect();
    assert_eq!(retention.len(), 3, "{calls:?}");
    assert!(retention.iter().all(|c| c.body["retentionInDays"] == 14));
    let (format, user_agent) = endpoint.last_put_headers();
    assert_eq!(format.as_deref(), Some("json/emf"));
    assert!(user_agent.contains("app/cloudwatch_rs-firelens"), "{user_agent}");

    // credentials: base from credentials_endpoint, then AssumeRole
    let sts = endpoint.sts();
    assert!(sts.container_calls.load(Relaxed) >= 1 && sts.assume_role_calls.load(Relaxed) >= 1);
    assert!(ECS_TASK_ARN.ends_with("/0123456789abcdef0123456789abcdef"), "the task id the streams carry");

    // observability: the fallback logged once, a periodic stats line, counters at exit
    let instance = log_instance(&log).unwrap();
    let fallback_lines = log.lines().filter(|l| l.contains("could not be resolved")).count();
    assert_eq!(fallback_lines, 1, "{log}");
    assert!(log.lines().any(|l| l.contains(&format!("[ info] [output:cloudwatch_rs:{instance}] stats: "))), "{log}");
    assert!(log.lines().any(|l| l.contains("[debug]")), "plugin_log_level debug: {log}");
    assert_eq!(exit_counter(&log, &instance, "events_sent"), 5);
    assert_eq!(exit_counter(&log, &instance, "name_fallbacks"), 2);
    assert_eq!(exit_counter(&log, &instance, "groups_created"), 3);
    assert!(!log.contains("add_entity"), "add_entity false must not warn: {log}");
}

#[test]
fn every_peer_key_set_starts_cleanly_and_works_in_fluent_bit_5_1_1() {
    let _serial = serial();
    every_key_in(FB_5_1_1);
}

#[test]
fn every_peer_key_set_starts_cleanly_and_works_in_fluent_bit_4_2() {
    let _serial = serial();
    every_key_in(FB_4_2);
}

#[test]
fn every_peer_key_set_starts_cleanly_and_works_in_fluent_bit_1_9_10() {
    let _serial = serial();
    every_key_in(FB_1_9_10);
}

/// EMF from metrics-style records (the `cpu` input's shape), plain JSON for the others; a peer
/// key that does nothing here is accepted with a warning; `auto_retry_requests off` hands a
/// throttled call straight back to Fluent Bit.
#[test]
fn emf_documents_warned_keys_and_no_auto_retry() {
    let _serial = serial();
    let endpoint = StrictEndpoint::start(false, Faults::default(), 78);
    env_for(&endpoint).keys("AKIDSTRICTTEST", "strict-secret-never-logged").apply();
    endpoint.create_group("metrics");
    let props = [
        ("Name", "cloudwatch_rs"),
        ("region", "us-east-1"),
        ("log_group_name", "metrics"),
        ("log_stream_name", "host-1"),
        ("metric_namespace", "fluent-bit-metrics"),
        ("metric_dimensions", "host;host,cpu"),
        ("auto_retry_requests", "off"),
        ("add_entity", "on"),
        ("startup_check", "off"),
        ("stats_interval", "off"),
        ("endpoint", endpoint.url.as_str()),
        ("sts_endpoint", endpoint.url.as_str()),
    ];
    let plugin = Plugin::start_logged(FB_5_1_1, &props);
    let t = now_secs();
    let mut chunk = record(true, t, 0, &json!({"cpu_p": 12.5, "user_p": 10, "system_p": 2.5, "host": "h1"}));
    chunk.extend(record(true, t, 1, &json!({"log": "not a metric"})));
    assert_eq!(plugin.flush(&chunk, "cpu.local"), 1);

    // one throttled answer: with auto_retry_requests off the flush answers RETRY at once
    endpoint.set_faults(Faults { throttle: 1.0, ..Faults::default() });
    let started = Instant::now();
    assert_eq!(plugin.flush(&record(true, t, 2, &json!({"log": "x"})), "cpu.local"), 2);
    let took = started.elapsed();
    endpoint.set_faults(Faults::default());
    let log = plugin.stop();

    let accepted = endpoint.accepted();
    assert_eq!(accepted.len(), 2, "{log}");
    let emf: serde_json::Value = serde_json::from_str(&accepted[0].head).unwrap_or_else(|_| {
        panic!("EMF document longer than the recorded head? {}", accepted[0].head);
    });
    assert_eq!(emf["_aws"]["Timestamp"], t as i64 * 1000);
    let directive = &emf["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], "fluent-bit-metrics");
    assert_eq!(directive["Dimensions"], json!([["host"]]), "the host,cpu set lacks a string 'cpu'");
    let names: Vec<&str> =
        directive["Metrics"].as_array().unwrap().iter().map(|m| m["Name"].as_str().unwrap()).collect();
    assert_eq!(names, ["cpu_p", "user_p", "system_p"]);
    assert_eq!((emf["cpu_p"].as_f64(), emf["host"].as_str()), (Some(12.5), Some("h1")));
    assert_eq!(accepted[1].head, r#"{"log":"not a metric"}"#);
    assert_eq!(endpoint.last_put_headers().0.as_deref(), Some("json/emf"), "log_format defaults to json/emf");
    assert!(log.contains("add_entity is on") && log.contains("[ warn]"), "{log}");
    assert!(took < Duration::from_secs(5), "no in-flush retry expected, took {took:?}");
    assert!(endpoint.counters().injected_throttle.load(Relaxed) == 1, "{}", endpoint.summary());
}
