//! End to end against moto_server (IAM authentication on) as two accounts: the plugin, loaded
//! by the test host as Fluent Bit loads it, assumes the log account's role with the task
//! account's keys and writes; a log-account reader reads back and compares one by one.

mod support;

use cwrs_test_host::{chunk, record, FB_1_9_10, FB_5_1_1};
use serde_json::json;
use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use support::{run_host, scratch, serial, Env, Moto, Plugin};

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn output_block<'a>(moto: &'a Moto, group: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("Name", "cloudwatch_rs"),
        ("Match", "*"),
        ("region", "us-east-1"),
        ("Log_Group_Name", group),
        ("Log_Stream_Prefix", "example-"),
        ("Auto_Create_Group", "On"),
        ("Role_Arn", "arn:aws:iam::222222222222:role/cross-account-log-role"),
        ("endpoint", &moto.endpoint),
        ("sts_endpoint", &moto.endpoint),
    ]
}

struct Sent {
    stream: String,
    timestamp: i64,
    message: String,
}

/// Records with unique `seq`, three tags, both record forms, unsorted times over 3 hours,
/// escapes and non-ASCII text; group markers in between.
/// Chunks with their tags, as Fluent Bit would flush them.
type Chunks = Vec<(Vec<u8>, String)>;

fn corpus(n: usize) -> (Chunks, HashMap<u64, Sent>) {
    let base = now_secs() - 3 * 3600;
    let mut per_tag: HashMap<String, Vec<Vec<u8>>> = HashMap::new();
    let mut sent = HashMap::new();
    for i in 0..n as u64 {
        let tag = format!("app.{}", i % 3);
        let secs = base + (i * 7919) % 10_800;
        let nanos = ((i % 1000) * 1_000_000 + 123) as u32;
        let body = json!({
            "seq": i,
            "msg": format!("record {i} ünïcödé \"quoted\"\ttab\n"),
            "nested": {"a": [1, 2.5, null, true], "empty": {}},
            "level": if i % 2 == 0 { "info" } else { "warn" },
        });
        let recs = per_tag.entry(tag.clone()).or_default();
        if i % 500 == 0 {
            recs.push(vec![0x92, 0x92, 0xd7, 0x00, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0x81, 0xa1, b'g', 0x01, 0x80]);
        }
        recs.push(record(i % 2 == 0, secs as u32, nanos, &body));
        if i % 500 == 0 {
            recs.push(vec![0x92, 0x92, 0xd7, 0x00, 0xff, 0xff, 0xff, 0xfe, 0, 0, 0, 0, 0x80, 0x80]);
        }
        sent.insert(
            i,
            Sent {
                stream: format!("example-{tag}"),
                timestamp: (secs * 1000 + nanos as u64 / 1_000_000) as i64,
                message: serde_json::to_string(&body).unwrap(),
            },
        );
    }
    let mut chunks = Vec::new();
    for (tag, recs) in per_tag {
        chunks.extend(chunk(recs, 64 << 10).into_iter().map(|c| (c, tag.clone())));
    }
    (chunks, sent)
}

fn compare_one_by_one(moto: &Moto, group: &str, sent: &HashMap<u64, Sent>) {
    let events = moto.read(group);
    let mut seen = HashMap::new();
    for e in &events {
        let v: serde_json::Value = serde_json::from_str(&e.message).expect("message is JSON");
        let seq = v["seq"].as_u64().expect("seq");
        *seen.entry(seq).or_insert(0) += 1;
        let want = &sent[&seq];
        assert_eq!(e.stream, want.stream, "seq {seq}");
        assert_eq!(e.timestamp, want.timestamp, "seq {seq}");
        assert_eq!(e.message, want.message, "seq {seq}");
    }
    assert_eq!(events.len(), sent.len(), "events received vs records sent");
    assert!(seen.values().all(|&c| c == 1), "duplicates");
    assert_eq!(seen.len(), sent.len());
    eprintln!("{group}: sent {}, received {}, compared {} one by one", sent.len(), events.len(), seen.len());
}

#[test]
fn cross_account_records_land_one_by_one_with_workers_and_two_instances() {
    let _s = serial();
    let moto = Moto::start();
    moto.task_env().apply();
    let mut a = output_block(&moto, "cross-account-example");
    a.push(("Workers", "3"));
    let mut b = output_block(&moto, "second-instance");
    b.push(("workers", "2"));
    let plugin = Plugin::with(FB_5_1_1, false, &[&a, &b]);

    let (chunks_a, sent_a) = corpus(3000);
    let (chunks_b, sent_b) = corpus(900);
    let (ha, hb) = (plugin.host.clone(), plugin.host.clone());
    let (oa, ob) = (plugin.outs[0].clone(), plugin.outs[1].clone());
    let ta = std::thread::spawn(move || ha.run(&oa, chunks_a, Duration::from_millis(200)));
    let tb = std::thread::spawn(move || hb.run(&ob, chunks_b, Duration::from_millis(200)));
    let (ra, rb) = (ta.join().unwrap(), tb.join().unwrap());
    assert_eq!((ra.retry, ra.error, rb.retry, rb.error), (0, 0, 0, 0), "{ra:?} {rb:?}");

    plugin.stop();
    compare_one_by_one(&moto, "cross-account-example", &sent_a);
    compare_one_by_one(&moto, "second-instance", &sent_b);
}

#[test]
fn fluent_bit_1_9_profile_with_legacy_records() {
    let moto = Moto::start();
    let dir = scratch("legacy");
    let lines: Vec<String> = (0..500).map(|i| format!("legacy line {i}")).collect();
    std::fs::write(dir.join("in.log"), lines.join("\n")).unwrap();
    let conf = dir.join("fluent-bit.conf");
    std::fs::write(
        &conf,
        format!(
            "[INPUT]\n    Name tail\n    Path {}\n    Tag legacy\n[OUTPUT]\n    Name cloudwatch_rs\n    Match *\n    \
             region us-east-1\n    log_group_name legacy-group\n    log_stream_name fixed\n    auto_create_group on\n    \
             role_arn {}\n    endpoint {}\n    sts_endpoint {}\n    Workers 2\n",
            dir.join("in.log").display(),
            moto.role_arn,
            moto.endpoint,
            moto.endpoint
        ),
    )
    .unwrap();
    let (code, out, err) = run_host(&conf, &moto.task_env(), &["--fb", "1.9.10", "--debug"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(!err.contains(&moto.task_key.1) && !out.contains(&moto.task_key.1), "a secret in the output");
    let events = moto.read("legacy-group");
    let got: Vec<String> = events.iter().map(|e| e.message.clone()).collect();
    let want: Vec<String> = lines.iter().map(|l| json!({ "log": l }).to_string()).collect();
    assert_eq!(got, want);
    assert!(events.iter().all(|e| e.stream == "fixed"));
    let _ = FB_1_9_10;
}

#[test]
fn without_role_arn_access_is_denied_for_the_task_principal_and_the_flush_retries() {
    let moto = Moto::start();
    let dir = scratch("denied");
    std::fs::write(dir.join("in.log"), "one\ntwo\n").unwrap();
    let conf = dir.join("fluent-bit.conf");
    std::fs::write(
        &conf,
        format!(
            "[INPUT]\n    Name tail\n    Path {}\n    Tag app\n[OUTPUT]\n    Name cloudwatch_rs\n    Match *\n    \
             region us-east-1\n    Log_Group_Name cross-account-example\n    Log_Stream_Prefix example-\n    \
             Auto_Create_Group On\n    endpoint {}\n    sts_endpoint {}\n",
            dir.join("in.log").display(),
            moto.endpoint,
            moto.endpoint
        ),
    )
    .unwrap();
    let (code, out, err) = run_host(&conf, &moto.task_env(), &["--debug"]);
    // Fluent Bit's default Retry_Limit 1: the first try and one retry, both RETRY, then dropped.
    assert!(out.contains("ok=0 retry=2 error=0 dropped_chunks=1"), "{out}\n{err}");
    assert_eq!(code, 3);
    assert!(!err.contains(&moto.task_key.1) && !out.contains(&moto.task_key.1), "a secret in the output");
    let denied: Vec<&str> = err.lines().filter(|l| l.contains("access denied")).collect();
    assert!(!denied.is_empty(), "{err}");
    assert!(denied.iter().all(|l| l.contains(&moto.task_arn) && l.contains("[error] [output:cloudwatch_rs:")), "{err}");
    assert!(moto.read("cross-account-example").is_empty());
}

#[test]
fn a_bad_key_stops_startup_with_one_line_naming_it() {
    let dir = scratch("badkey");
    let base = [("region", "us-east-1"), ("log_group_name", "g"), ("log_stream_prefix", "p-")];
    type Pairs<'a> = &'a [(&'a str, &'a str)];
    let cases: &[(Pairs, &str, &str)] = &[
        (&[("log_stream_name", "s")], "log_stream_prefix", "p-"),
        (&[("auto_create_group", "maybe")], "auto_create_group", "maybe"),
        (&[("role_arn", "arn:aws:iam::12:role/x")], "role_arn", "arn:aws:iam::12:role/x"),
        (&[("endpoint", "localhost:4566")], "endpoint", "localhost:4566"),
        (&[("region", "US-EAST")], "region", "US-EAST"),
        (&[("log_retention_days", "2")], "log_retention_days", "2"),
        (&[("log_group_class", "BOGUS")], "log_group_class", "BOGUS"),
        (&[("kms_key_id", "arn:aws:kms:us-east-1:2222:key/x")], "kms_key_id", "arn:aws:kms:us-east-1:2222:key/x"),
        (&[("auto_create_stream", "yep")], "auto_create_stream", "yep"),
        (&[("auto_retry_requests", "2")], "auto_retry_requests", "2"),
        (&[("sts_endpoint", "https://sts host")], "sts_endpoint", "https://sts host"),
        (&[("credentials_endpoint", "169.254.170.2/creds")], "credentials_endpoint", "169.254.170.2/creds"),
        (&[("new_log_group_tags", "aws:team=logs")], "new_log_group_tags", "aws:team=logs"),
        (&[("log_group_template", "$(upper(tag))")], "log_group_template", "$(upper(tag))"),
        (&[("log_group_name", "aws/app x")], "log_group_name", "aws/app x"),
        (&[("metric_dimensions", "a;;b"), ("metric_namespace", "ns")], "metric_dimensions", "a;;b"),
        (&[("extra_user_agent", "a b")], "extra_user_agent", "a b"),
        (&[("plugin_log_level", "loud")], "plugin_log_level", "loud"),
        (&[("log_key_missing", "keep")], "log_key_missing", "keep"),
    ];
    for (overrides, key, value) in cases {
        let mut pairs: Vec<(&str, &str)> =
            base.iter().filter(|(k, _)| !overrides.iter().any(|(o, _)| o == k)).copied().collect();
        pairs.extend(overrides.iter().filter(|(_, v)| !v.is_empty()).copied());
        let body: String = pairs.iter().map(|(k, v)| format!("    {k} {v}\n")).collect();
        let conf = dir.join(format!("{key}.conf"));
        std::fs::write(&conf, format!("[OUTPUT]\n    Name cloudwatch_rs\n    Match *\n{body}")).unwrap();
        let (code, _out, err) = run_host(&conf, &Env::empty().var("AWS_EC2_METADATA_DISABLED", "true"), &[]);
        assert_eq!(code, 1, "{key}: {err}");
        let lines: Vec<&str> = err.lines().filter(|l| l.contains("[error] [output:cloudwatch_rs:")).collect();
        assert_eq!(lines.len(), 1, "{key}: {err}");
        assert!(lines[0].contains(&format!("'{key}'")) && lines[0].contains("allowed"), "{}", lines[0]);
        assert!(lines[0].contains(value), "{}", lines[0]);
    }
    // no region anywhere
    let conf = dir.join("noregion.conf");
    std::fs::write(&conf, "[OUTPUT]\n    Name cloudwatch_rs\n    log_group_name g\n    log_stream_name s\n").unwrap();
    let (code, _, err) = run_host(&conf, &Env::empty(), &[]);
    assert_eq!(code, 1);
    assert!(err.contains("missing 'region'"), "{err}");
}

#[test]
fn damaged_chunk_odd_and_oversized_records() {
    let _s = serial();
    let moto = Moto::start();
    moto.task_env().apply();
    let mut props = output_block(&moto, "odd-records");
    props.retain(|(k, _)| *k != "Log_Stream_Prefix");
    props.push(("log_stream_name", "odd"));
    let plugin = Plugin::start(FB_5_1_1, &props);
    let t = now_secs() as u32;

    // five good records, then bytes that are not msgpack: the five are delivered, FLB_OK
    let mut damaged = Vec::new();
    for i in 0..5 {
        damaged.extend(record(true, t, 0, &json!({ "n": i })));
    }
    damaged.extend([0x92, 0x92, 0xd7, 0x00, 0x01, 0xc1, 0xc1]);
    assert_eq!(plugin.flush(&damaged, "x"), 1);

    // empty body skipped; 1.5 MB message cut to fit; a float timestamp; binary values
    let big = "x".repeat(1_500_000);
    let mut odd = record(true, t, 0, &json!({}));
    odd.extend(record(true, t + 1, 0, &json!({ "big": big })));
    odd.extend([0x92, 0xcb]);
    odd.extend((t as f64 + 2.25).to_be_bytes());
    odd.extend(rmp_serde::to_vec(&json!({"float_time": true})).unwrap());
    odd.extend([0x92, 0x02, 0x81, 0xa1, b'b', 0xc4, 0x03, 0xff, 0x00, 0x01]); // time 2 (1970), bin
    assert_eq!(plugin.flush(&odd, "x"), 1);

    plugin.stop();
    let events = moto.read("odd-records");
    let messages: Vec<&str> = events.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(&messages[..5], &[r#"{"n":0}"#, r#"{"n":1}"#, r#"{"n":2}"#, r#"{"n":3}"#, r#"{"n":4}"#]);
    let big_event = events.iter().find(|e| e.message.starts_with(r#"{"big":"#)).expect("big event");
    assert_eq!(big_event.message.len(), 1_048_550);
    let float = events.iter().find(|e| e.message == r#"{"float_time":true}"#).expect("float time");
    assert_eq!(float.timestamp, (t as i64 + 2) * 1000 + 250);
    // the 1970 event is rejected by CloudWatch (too old) and counted, not sent twice
    assert!(!events.iter().any(|e| e.message.contains("\"b\"")));
    assert_eq!(events.len(), 7);
}

/// Names from records (both template syntaxes) and the new-group settings against moto, with
/// the FireLens kit's role policy: the groups are created with their tags, the events land in
/// the streams their records name, and PutRetentionPolicy, which the kit's policy does not
/// grant, is refused without holding up delivery and is logged naming the permission.
#[test]
fn templated_names_and_new_group_settings_against_moto() {
    let _s = serial();
    let moto = Moto::start();
    moto.task_env().apply();
    let mut props = output_block(&moto, "tmpl-static");
    props.retain(|(k, _)| *k != "Log_Stream_Prefix");
    props.extend([
        ("log_group_template", "tmpl-$kubernetes['namespace_name']"),
        ("log_stream_name", "$(tag[1])/$(kubernetes['pod_name'])"),
        ("new_log_group_tags", "team=logs,env=test"),
        ("log_retention_days", "7"),
        ("log_group_class", "STANDARD"),
        ("stats_interval", "off"),
    ]);
    let plugin = Plugin::start_logged(FB_5_1_1, &props);
    let t = now_secs() as u32;
    let mut chunk = Vec::new();
    for (i, (ns, pod)) in [("prod", "web-1"), ("prod", "web-2"), ("dev", "web-1"), ("prod", "web-1")].iter().enumerate()
    {
        chunk.extend(record(
            true,
            t,
            i as u32,
            &json!({"seq": i, "kubernetes": {"namespace_name": ns, "pod_name": pod}}),
        ));
    }
    assert_eq!(plugin.flush(&chunk, "kube.app"), 1);
    std::thread::sleep(Duration::from_millis(500));
    let log = plugin.stop();

    let streams = |group: &str| {
        let mut v: Vec<(String, u64)> = moto
            .read(group)
            .into_iter()
            .map(|e| {
                (e.stream, serde_json::from_str::<serde_json::Value>(&e.message).unwrap()["seq"].as_u64().unwrap())
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(streams("tmpl-prod"), vec![("app/web-1".into(), 0), ("app/web-1".into(), 3), ("app/web-2".into(), 1)]);
    assert_eq!(streams("tmpl-dev"), vec![("app/web-1".into(), 2)]);
    let tags = moto.describe_group("tmpl-prod");
    assert_eq!(tags["tags"], json!({"team": "logs", "env": "test"}), "{tags}");
    assert!(tags["retentionInDays"].is_null(), "the kit's policy does not allow PutRetentionPolicy: {tags}");
    assert!(log.contains("logs:PutRetentionPolicy"), "{log}");
}
