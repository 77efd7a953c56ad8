//! The Go plugin's own test vectors (`amazon-cloudwatch-logs-for-fluent-bit`,
//! `cloudwatch/helpers_test.go` and `cloudwatch/cloudwatch_test.go`) that concern names,
//! messages, tags and sizes, each a test named after its source test, run through the same
//! config keys a Go user writes. Each asserts the Go result, or ours where we deliberately
//! differ (the README's "Coming from a peer plugin" lists why).

use serde::Serialize;
use serde_json::{json, Value};

use crate::core::batch::{batches, sort_events, LogEvent, MAX_BATCH_SPAN_MS};
use crate::core::config::{Config, ConfigError};
use crate::core::message::{Encoded, Encoder, MAX_MESSAGE_BYTES};
use crate::core::naming::NameRule;
use crate::core::template::{EcsMetadata, Vars};

/// A config from `[OUTPUT]` keys, region set.
fn config(keys: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let keys: Vec<(String, String)> =
        [("region", "us-west-2")].iter().chain(keys).map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Config::from_lookup(|k| keys.iter().rev().find(|(key, _)| key == k).map(|(_, v)| v.clone()), |_| None)
}

/// The Go test's ECS metadata and uuid.
fn task() -> EcsMetadata {
    EcsMetadata { cluster: "cluster".into(), task_arn: "taskARN".into(), task_id: "taskID".into() }
}

fn name(rule: &NameRule, tag: &str, body: &[u8]) -> String {
    let meta = task();
    let mut out = String::new();
    // a fallback is where Go lands too: the name is what counts
    let _ = rule.write(tag, body, &Vars { uuid: "123", ecs: Some(&meta) }, &mut out);
    out
}

fn msgpack(v: &impl Serialize) -> Vec<u8> {
    rmp_serde::to_vec_named(v).unwrap()
}

/// A msgpack bin value, as Go's test's `[]byte(...)`.
struct Bin(Vec<u8>);

impl Serialize for Bin {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

/// `{key: []byte(value)}`.
fn bin_record(key: &str, value: &[u8]) -> Vec<u8> {
    msgpack(&std::collections::BTreeMap::from([(key, Bin(value.to_vec()))]))
}

/// `TestParseDataMapTags`'s record.
fn pam() -> Vec<u8> {
    #[derive(Serialize)]
    struct Record {
        pam: Pam,
    }
    #[derive(Serialize)]
    struct Pam {
        item: &'static str,
        item2: Item2,
    }
    #[derive(Serialize)]
    struct Item2 {
        subitem: Bin,
        subitem2: Value,
    }
    msgpack(&Record {
        pam: Pam {
            item: "soup",
            item2: Item2 { subitem: Bin(b"SubIt3m".to_vec()), subitem2: json!({"more": "final"}) },
        },
    })
}

fn group_of(template: &str, tag: &str, body: &[u8]) -> String {
    name(&config(&[("log_group_name", template), ("log_stream_prefix", "p-")]).unwrap().group, tag, body)
}

fn stream_of(template: &str, tag: &str, body: &[u8]) -> String {
    name(&config(&[("log_group_name", "g"), ("log_stream_name", template)]).unwrap().stream, tag, body)
}

#[test]
fn go_test_tag_keys_to_map() {
    let values = " key1 =value , key2=value2, key3= value3 ,key4=, key5  = v5,,key7==value7, k8, k9,key1=value1,space key = space value";
    let c = config(&[("log_group_name", "g"), ("log_stream_prefix", "p-"), ("new_log_group_tags", values)]).unwrap();
    let mut tags: Vec<(&str, &str)> = c.new_group.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    tags.sort();
    let mut expect = vec![
        ("key1", "value1"),
        ("key2", "value2"),
        ("key3", "value3"),
        ("key4", ""),
        ("key5", "v5"),
        ("key7", "=value7"),
        ("k8", ""),
        ("k9", ""),
        ("space key", "space value"),
    ];
    expect.sort();
    assert_eq!(tags, expect);
    assert_eq!(c.warnings.len(), 1, "one line for the lenient reading: {:?}", c.warnings);
}

#[test]
fn go_test_parse_data_map_tags_headline() {
    let template = "$(ecs_task_id).$(ecs_cluster).$(ecs_task_arn).$(uuid).$(tag).$(pam['item2']['subitem2']['more']).$(pam['item']).$(pam['item2']).$(pam['item2']['subitem'])-$(pam['item2']['subitem2']['more'])-$(tag[1])";
    assert_eq!(
        group_of(template, "syslog.0", &pam()),
        "taskID.cluster.taskARN.123.syslog.0.final.soup..SubIt3m-final-0"
    );
}

#[test]
fn go_test_parse_data_map_tags_missing_variables() {
    // each falls back to default_log_group_name, as Go's error does
    for template in ["$(missing-variable).stuff", "$(pam['item6']).stuff", "$(tag[9]).stuff"] {
        assert_eq!(group_of(template, "syslog.0", &pam()), "fluentbit-default", "{template}");
    }
}

#[test]
fn go_test_sanitize_group() {
    for (send, expect) in [
        ("this.is.a.log.group.name", "this.is.a.log.group.name"),
        ("1234567890abcdefghijklmnopqrstuvwxyz", "1234567890abcdefghijklmnopqrstuvwxyz"),
        ("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
        (r#"!@#$%^&*()_+}{][=-';":/.?>,<~"']}"#, ".........._......-..../.........."),
    ] {
        assert_eq!(group_of(send, "t", &[]), expect, "{send}");
        // the same through a record value
        assert_eq!(group_of("$(v)", "t", &msgpack(&json!({"v": send}))), expect, "{send}");
    }
    // Go's `""` vector: an empty name is the default, and an empty value falls back to it
    assert_eq!(group_of("$(v)", "t", &msgpack(&json!({"v": ""}))), "fluentbit-default");
}

#[test]
fn go_test_sanitize_stream() {
    for (send, expect) in [
        ("this.is.a.log.group.name", "this.is.a.log.group.name"),
        ("1234567890abcdefghijklmnopqrstuvwxyz", "1234567890abcdefghijklmnopqrstuvwxyz"),
        ("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
        (r#"!@#$%^&*()_+}{][=-';":/.?>,<~"']}"#, r#"!@#$%^&.()_+}{][=-';"./.?>,<~"']}"#),
    ] {
        assert_eq!(stream_of(send, "t", &[]), expect, "{send}");
        assert_eq!(stream_of("$(v)", "t", &msgpack(&json!({"v": send}))), expect, "{send}");
    }
    assert_eq!(stream_of("$(v)", "t", &msgpack(&json!({"v": ""}))), "/fluentbit-default");
}

/// `TestSetGroupStreamNames`'s record.
fn cron() -> Vec<u8> {
    msgpack(&json!({"ident": "cron", "msg": "my cool log message", "details": {"region": "us-west-2", "az": "a"}}))
}

#[test]
fn go_test_set_group_stream_names_static_and_prefix() {
    assert_eq!(stream_of("/aws/ecs/test-stream-name", "syslog.0", &cron()), "/aws/ecs/test-stream-name");
    let c = config(&[("log_group_name", "g"), ("log_stream_prefix", "/aws/ecs/test-stream-prefix/")]).unwrap();
    assert_eq!(name(&c.stream, "syslog.0", &cron()), "/aws/ecs/test-stream-prefix/syslog.0");
    // Go's empty `log_stream_name` (the default) cannot be configured: Go's Validate refuses it, as we do
    assert!(config(&[("log_group_name", "g")]).is_err());
}

#[test]
fn go_test_set_group_stream_names_template() {
    let template = "/aws/ecs/$(tag[0])/$(tag[1])/$(details['region'])/$(details['az'])/$(ident)";
    assert_eq!(stream_of(template, "syslog.0", &cron()), "/aws/ecs/syslog/0/us-west-2/a/cron");
}

#[test]
fn go_test_set_group_stream_names_bad_template() {
    // `]` missing: Go writes the unclosed subscript as text
    assert_eq!(stream_of("/aws/ecs/$(details['region')", "syslog.0", &cron()), "/aws/ecs/['region'");
}

#[test]
fn go_test_set_group_stream_names_missing() {
    let c =
        config(&[("log_group_name", "$(details['activity'])"), ("log_stream_name", "/aws/ecs/$(details['activity'])")])
            .unwrap();
    assert_eq!(name(&c.stream, "syslog.0", &cron()), "/fluentbit-default");
    assert_eq!(name(&c.group, "syslog.0", &cron()), "fluentbit-default");
}

#[test]
fn go_test_set_group_stream_names_truncated() {
    let ident = "_".repeat(1024);
    let body = msgpack(&json!({ "ident": ident }));
    let c = config(&[("log_group_name", "/aws/ecs/$(ident)"), ("log_stream_name", "/aws/ecs/$(ident)")]).unwrap();
    let expect = format!("/aws/ecs/{}", &ident[..512 - "/aws/ecs/".len()]);
    assert_eq!(name(&c.stream, "syslog.0", &body), expect);
    assert_eq!(name(&c.group, "syslog.0", &body), expect);
}

/// The message `config` makes of `record`.
fn message(c: &Config, record: &[u8]) -> (Encoded, Vec<u8>) {
    let mut out = Vec::new();
    let encoded = Encoder::new().encode(record, 0, &c.message, &mut out).unwrap();
    (encoded, out)
}

fn prefix_config() -> Config {
    config(&[("log_group_name", "my-logs"), ("log_stream_prefix", "my-prefix")]).unwrap()
}

#[test]
fn go_test_add_event() {
    let c = prefix_config();
    assert_eq!(name(&c.group, "tag", &[]), "my-logs");
    assert_eq!(name(&c.stream, "tag", &[]), "my-prefixtag");
    let record = bin_record("somekey", b"some value");
    assert_eq!(message(&c, &record), (Encoded::Message { truncated: false }, br#"{"somekey":"some value"}"#.to_vec()));
}

#[test]
fn go_test_add_event_empty_record() {
    // `log_key somekey` with an empty value: nothing is sent, as in Go
    let c =
        config(&[("log_group_name", "my-logs"), ("log_stream_prefix", "my-prefix"), ("log_key", "somekey")]).unwrap();
    let record = bin_record("somekey", b"");
    assert_eq!(message(&c, &record).0, Encoded::Empty);
    // we differ: a value is sent as it is, where Go trims its whitespace
    let record = msgpack(&json!({"somekey": " x\n"}));
    assert_eq!(message(&c, &record).1, b" x\n");
    // and an empty record is not sent, where Go sends `{}`
    assert_eq!(message(&prefix_config(), &msgpack(&json!({}))).0, Encoded::Empty);
}

#[test]
fn go_test_add_event_create_log_group() {
    let c = config(&[("log_group_name", "my-logs"), ("log_stream_prefix", "p"), ("log_retention_days", "14")]).unwrap();
    assert_eq!(c.new_group.retention_days, Some(14));
    // we differ: Go passes any number to PutRetentionPolicy, which refuses 2 on every record;
    // we refuse it at startup
    let err = config(&[("log_group_name", "my-logs"), ("log_stream_prefix", "p"), ("log_retention_days", "2")]);
    assert_eq!(err.unwrap_err().key, "log_retention_days");
}

#[test]
fn go_test_truncate_large_log_event() {
    // we differ: Go cuts every message to 256 KiB − 26; CloudWatch takes 1 MiB − 26 now, and so do we
    let record = bin_record("somekey", &[0; 256 * 1024 + 100]);
    let (encoded, out) = message(&prefix_config(), &record);
    // 262,244 NULs are 6 bytes each as JSON: over our limit too, so cut there
    assert_eq!(encoded, Encoded::Message { truncated: true });
    assert!(out.len() <= MAX_MESSAGE_BYTES && out.len() > 256 * 1024, "{}", out.len());
    assert!(out.ends_with(b"[Truncated...]"));
}

/// Go's `TestTruncateLargeLogEventWithSpecialCharacter*TrailingFragments`: 262,095 − `fragments` + 1
/// `x` and a 4-byte character near Go's 256 KiB cut.
fn special_character(xs: usize) {
    let value = format!("{}𒁈zrgchimqigtm", "x".repeat(xs));
    let (encoded, out) = message(&prefix_config(), &msgpack(&json!({ "key": value })));
    // we differ: no 256 KiB cut; the whole message goes, the character intact
    assert_eq!(encoded, Encoded::Message { truncated: false });
    assert_eq!(out, format!(r#"{{"key":"{value}"}}"#).into_bytes());
}

#[test]
fn go_test_truncate_large_log_event_with_special_character_one_trailing_fragments() {
    special_character(262_095);
}

#[test]
fn go_test_truncate_large_log_event_with_special_character_two_trailing_fragments() {
    special_character(262_094);
}

#[test]
fn go_test_truncate_large_log_event_with_special_character_three_trailing_fragments() {
    special_character(262_093);
}

/// Batches of events at `timestamps` (ms), each message `len` bytes.
fn batch_sizes(timestamps: &[i64], len: u32) -> Vec<usize> {
    let mut events: Vec<LogEvent> =
        timestamps.iter().map(|&timestamp| LogEvent { timestamp, start: 0, stored: len, len, key: 0 }).collect();
    sort_events(&mut events);
    batches(&events).map(|b| b.len()).collect()
}

#[test]
fn go_test_add_event_and_batch_span_limit() {
    // start, end = start + 24 h − 1 ms, then before = start − 1 ms and after = start + 24 h:
    // Go flushes before each of the last two, as a batch may not span 24 hours
    let start = 1_700_000_000_000;
    let events = [start, start + MAX_BATCH_SPAN_MS - 1, start - 1, start + MAX_BATCH_SPAN_MS];
    assert_eq!(batch_sizes(&events, 24), [2, 2]);
}

#[test]
fn go_test_add_event_and_batch_span_limit_on_reverse_order() {
    let start = 1_700_000_000_000;
    let events = [start + MAX_BATCH_SPAN_MS - 1, start, start - 1, start + MAX_BATCH_SPAN_MS];
    assert_eq!(batch_sizes(&events, 24), [2, 2]);
}

#[test]
fn go_test_add_event_and_events_count_limit() {
    assert_eq!(batch_sizes(&[0; 10_001], 24), [10_000, 1]);
}

#[test]
fn go_test_add_event_and_batch_size_limit() {
    let record = msgpack(&json!({"somekey": "some value".repeat(100)}));
    let (_, out) = message(&prefix_config(), &record);
    assert_eq!(out.len(), 1014);
    // Go's 105th event is a day later: the span, not the size, starts a new batch
    let mut events = vec![0; 104];
    events.push(MAX_BATCH_SPAN_MS);
    assert_eq!(batch_sizes(&events, 1014), [104, 1]);
    // by size: 1,048,576 / (1014 + 26) = 1008 such events a batch
    assert_eq!(batch_sizes(&[0; 1010], 1014), [1008, 2]);
}

#[test]
fn go_test_validate() {
    let ok = |keys: &[(&str, &str)]| config(keys).map(|_| ()).map_err(|e| e.key);
    assert_eq!(ok(&[("log_group_name", "my-logs"), ("log_stream_prefix", "my-prefix")]), Ok(()));
    assert_eq!(ok(&[("log_group_name", "my-logs"), ("log_stream_name", "testLogStream")]), Ok(()));
    assert_eq!(ok(&[("log_stream_prefix", "my-prefix")]), Err("log_group_name"));
    assert_eq!(
        ok(&[("log_group_name", "my-logs"), ("log_stream_name", "s"), ("log_stream_prefix", "my-prefix")]),
        Err("log_stream_prefix")
    );
    assert_eq!(ok(&[("log_group_name", "my-logs")]), Err("log_stream_name"));
    let no_region =
        Config::from_lookup(|k| (k == "log_group_name" || k == "log_stream_prefix").then(|| "x".to_owned()), |_| None);
    assert_eq!(no_region.unwrap_err().key, "region");
}
