//! A metrics record → a CloudWatch Embedded Metric Format (EMF) document, in place of plain JSON.
//!
//! Which records, and which of their fields, are metrics follows the C `cloudwatch_logs` plugin
//! (`cloudwatch_api.c`, `should_add_to_emf`/`pack_emf_payload`), which makes EMF only from the
//! `cpu` and `mem` inputs' records. A proxy plugin is never told a record's input, so the shape
//! decides:
//!
//! - `cpu`: `cpu_p`, `user_p` and `system_p` all numbers → those three, `Unit` `Percent` (the
//!   per-CPU `cpuN.p_*` fields stay plain members, as in C);
//! - `mem`: `Mem.total`, `Mem.used` and `Mem.free` all numbers → those and whichever of
//!   `Swap.total`, `Swap.used`, `Swap.free` are numbers, `Unit` `Bytes` (C's unit);
//! - any other record: the top-level fields named in `metric_fields` that are numbers, no `Unit`;
//!   without `metric_fields`, or none of them present, the record stays plain JSON.
//!
//! The document is the record's own top-level entries, in record order, behind one `_aws` member:
//!
//! ```text
//! {"_aws":{"Timestamp":1700000000123,"CloudWatchMetrics":[{"Namespace":"fluent-bit-metrics",
//!   "Dimensions":[["hostname"]],"Metrics":[{"Name":"cpu_p","Unit":"Percent"},...]}]},
//!  "cpu_p":1.5,"user_p":1,"system_p":0.5,"cpu0.p_cpu":2.0,...,"hostname":"h1"}
//! ```
//!
//! `Timestamp` is the record's time in milliseconds, as the EMF specification asks (C sends whole
//! seconds × 1000). A dimension set is listed only when the record carries every one of its keys
//! as a valid dimension value, so a document never points at a member CloudWatch would refuse
//! (C lists the configured sets whatever the record holds); with none, `[[]]` (the specification's
//! "no dimensions"; C writes `[]`). The limits come from the EMF specification (at most 100
//! metrics per directive, 30 keys per dimension set, string dimension targets of at most 1024
//! characters) and from the CloudWatch API's `Dimension`, `MetricDatum` and `PutMetricData` rules.
//! Like `json`, this walks the body without recursion and allocates only `out`.

use crate::core::json::{push_escaped_quoted, push_i64, push_json_string, write_scalar, Writer};
use crate::core::msgpack::{MsgpackError, Reader, Token};

/// EMF: a MetricDirective's `Metrics` holds at most 100 definitions.
pub const MAX_METRICS: usize = 100;
/// EMF: a DimensionSet holds at most 30 keys.
pub const MAX_DIMENSIONS_PER_SET: usize = 30;

/// `MetricDatum.MetricName`: 1–255 characters.
const MAX_METRIC_NAME_CHARS: usize = 255;
/// The EMF schema's `DimensionReference` (250) is tighter than `Dimension.Name` (255).
const MAX_DIMENSION_NAME_CHARS: usize = 250;
/// EMF and `Dimension.Value`: at most 1024 characters.
const MAX_DIMENSION_VALUE_CHARS: usize = 1024;
/// `PutMetricData.Namespace`: 1–255 characters.
const MAX_NAMESPACE_CHARS: usize = 255;
/// `MetricDatum.Value`: CloudWatch refuses magnitudes above 2^360 and (zero aside) below 2^-360.
const MAX_MAGNITUDE: f64 = f64::from_bits((1023 + 360) << 52);
const MIN_MAGNITUDE: f64 = f64::from_bits((1023 - 360) << 52);
/// Our metadata member; a record's own `_aws` is dropped so the document has one.
const AWS_KEY: &[u8] = b"_aws";

const DIMENSIONS_ALLOWED: &str = "dimension sets separated by ';', names within a set by ',' (e.g. `a,b;c`); \
     each name 1-250 printable ASCII characters, not starting with ':', not `_aws`, at most once per set; \
     1 to 30 names per set";
const NAMESPACE_ALLOWED: &str =
    "1-255 printable ASCII characters, not starting with ':' or `AWS/` (reserved for AWS services)";

/// How metrics records become EMF documents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricFormat {
    /// Written as given: check it once with [`check_namespace`].
    pub namespace: String,
    /// Dimension sets, each a list of top-level keys; see [`parse_dimensions`].
    pub dimensions: Vec<Vec<String>>,
    /// `metric_fields`: top-level fields that are metrics in records not shaped like the `cpu`
    /// or `mem` inputs'; see [`parse_fields`].
    pub fields: Vec<String>,
}

/// The `cpu` input's record (plugins/in_cpu): its three totals are C's metrics.
const CPU_METRICS: [&[u8]; 3] = [b"cpu_p", b"user_p", b"system_p"];
/// The `mem` input's record (plugins/in_mem): these three mark it; all six are C's metrics.
const MEM_REQUIRED: [&[u8]; 3] = [b"Mem.total", b"Mem.used", b"Mem.free"];
const MEM_METRICS: [&[u8]; 6] = [b"Mem.total", b"Mem.used", b"Mem.free", b"Swap.total", b"Swap.used", b"Swap.free"];
/// C's units (`flb_intermediate_metric.h`). The `mem` input counts in KiB; C calls it `Bytes`,
/// kept so a metric has one unit whichever plugin published it.
const UNIT_PERCENT: &str = "Percent";
const UNIT_BYTES: &str = "Bytes";

const FIELDS_ALLOWED: &str = "top-level field names separated by ',' (e.g. `latency_ms,bytes`); \
     each 1-255 characters, not `_aws`, at most once; at most 100";

/// `a, b` → `[a, b]`; blanks around names are trimmed. `Err` holds what is allowed.
pub fn parse_fields(s: &str) -> Result<Vec<String>, String> {
    let mut fields: Vec<String> = Vec::new();
    for name in s.split(',').map(str::trim) {
        let ok = !name.is_empty()
            && name.chars().count() <= MAX_METRIC_NAME_CHARS
            && name.as_bytes() != AWS_KEY
            && !fields.iter().any(|f| f == name);
        if !ok || fields.len() == MAX_METRICS {
            return Err(FIELDS_ALLOWED.to_owned());
        }
        fields.push(name.to_owned());
    }
    Ok(fields)
}

/// `a,b;c` → `[[a,b],[c]]`; blanks around names are trimmed. `Err` holds what is allowed, on an
/// empty set or name, a name CloudWatch refuses, a name twice in a set, or a set over 30 names.
pub fn parse_dimensions(s: &str) -> Result<Vec<Vec<String>>, String> {
    let mut sets = Vec::new();
    for set in s.split(';') {
        let mut names: Vec<String> = Vec::new();
        for name in set.split(',').map(str::trim) {
            if !valid_dimension_name(name) || names.iter().any(|n| n == name) {
                return Err(DIMENSIONS_ALLOWED.to_owned());
            }
            names.push(name.to_owned());
        }
        if names.len() > MAX_DIMENSIONS_PER_SET {
            return Err(DIMENSIONS_ALLOWED.to_owned());
        }
        sets.push(names);
    }
    Ok(sets)
}

/// Checks a namespace against the `PutMetricData` rules (1–255 printable ASCII characters, no
/// leading ':', no `AWS/` prefix). `Err` holds what is allowed.
pub fn check_namespace(s: &str) -> Result<(), String> {
    let ok = (1..=MAX_NAMESPACE_CHARS).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii() && !b.is_ascii_control())
        && !s.starts_with(':')
        && !s.starts_with("AWS/")
        && s.bytes().any(|b| !b.is_ascii_whitespace());
    if ok {
        Ok(())
    } else {
        Err(NAMESPACE_ALLOWED.to_owned())
    }
}

/// Appends one EMF document for `body` (a msgpack map) to `out` and returns `Ok(true)`.
///
/// Returns `Ok(false)` with `out` unchanged when the record is not a metrics record (see the
/// module notes: the caller sends it as plain JSON), and `Err` with `out` unchanged when the body
/// is damaged. A field counts only as a string key whose first occurrence is an integer or a
/// finite float CloudWatch accepts; a key also occurring with a non-number is not a metric (JSON
/// readers keep the last member), nor is a dimension key. The document is not cut to any size
/// limit: a cut one would not be JSON, so the caller decides what to do with a large one.
pub fn encode_emf(
    json: &mut Writer,
    body: &[u8],
    timestamp_ms: i64,
    format: &MetricFormat,
    out: &mut Vec<u8>,
) -> Result<bool, MsgpackError> {
    let mut reader = Reader::new(body);
    let Token::Map(entries) = reader.next_token()? else {
        return Ok(false);
    };
    let top = TopLevel { reader, entries };
    let Some((metrics, unit)) = select_metrics(&top, format)? else {
        return Ok(false);
    };
    let start = out.len();
    match write_document(json, &top, &metrics, unit, timestamp_ms, format, out) {
        Ok(()) => Ok(true),
        Err(e) => {
            out.truncate(start);
            Err(e)
        }
    }
}

/// The metrics of a record, in record order, and their unit; `None` when it has none.
fn select_metrics<'a>(
    top: &TopLevel<'a>,
    format: &MetricFormat,
) -> Result<Option<(Metrics<'a>, Option<&'static str>)>, MsgpackError> {
    let wanted = |name: &[u8]| {
        CPU_METRICS.contains(&name) || MEM_METRICS.contains(&name) || format.fields.iter().any(|f| f.as_bytes() == name)
    };
    // Pass 1: the wanted fields holding numbers, first occurrence of each, in record order.
    let mut found = Metrics::default();
    let mut reader = top.reader.clone();
    for _ in 0..top.entries {
        let (key, value) = next_entry(&mut reader)?;
        if found.count < MAX_METRICS && is_metric_value(value) {
            if let Some(name) = metric_name(key, format).filter(|n| wanted(n)) {
                found.push(name);
            }
        }
    }
    if found.count == 0 {
        return Ok(None);
    }
    // Pass 2: a key repeated with a non-number would make its root member something else.
    let mut reader = top.reader.clone();
    for _ in 0..top.entries {
        let (key, value) = next_entry(&mut reader)?;
        if let (Some(key), false) = (key_bytes(key), is_metric_value(value)) {
            if found.contains(key) {
                found.remove(key);
            }
        }
    }
    let selected = if CPU_METRICS.iter().all(|m| found.contains(m)) {
        (found.only(|n| CPU_METRICS.contains(&n)), Some(UNIT_PERCENT))
    } else if MEM_REQUIRED.iter().all(|m| found.contains(m)) {
        (found.only(|n| MEM_METRICS.contains(&n)), Some(UNIT_BYTES))
    } else {
        (found.only(|n| format.fields.iter().any(|f| f.as_bytes() == n)), None)
    };
    Ok((selected.0.count > 0).then_some(selected))
}

/// Up to 100 distinct metric names, in record order, without allocating.
#[derive(Clone, Copy)]
struct Metrics<'a> {
    names: [&'a [u8]; MAX_METRICS],
    count: usize,
}

impl Default for Metrics<'_> {
    fn default() -> Self {
        Metrics { names: [&[]; MAX_METRICS], count: 0 }
    }
}

impl<'a> Metrics<'a> {
    fn as_slice(&self) -> &[&'a [u8]] {
        &self.names[..self.count]
    }

    fn contains(&self, name: &[u8]) -> bool {
        self.as_slice().contains(&name)
    }

    fn push(&mut self, name: &'a [u8]) {
        if self.count < MAX_METRICS && !self.contains(name) {
            self.names[self.count] = name;
            self.count += 1;
        }
    }

    fn remove(&mut self, name: &[u8]) {
        *self = self.only(|n| n != name);
    }

    fn only(&self, keep: impl Fn(&[u8]) -> bool) -> Metrics<'a> {
        let mut kept = Metrics::default();
        for name in self.as_slice().iter().filter(|n| keep(n)) {
            kept.push(name);
        }
        kept
    }
}

/// The body's entries: a reader just past the map header, and how many there are.
struct TopLevel<'a> {
    reader: Reader<'a>,
    entries: u32,
}

fn write_document<'a>(
    json: &mut Writer,
    top: &TopLevel<'a>,
    metrics: &Metrics<'a>,
    unit: Option<&str>,
    timestamp_ms: i64,
    format: &MetricFormat,
    out: &mut Vec<u8>,
) -> Result<(), MsgpackError> {
    out.extend_from_slice(b"{\"_aws\":{\"Timestamp\":");
    push_i64(timestamp_ms, out);
    out.extend_from_slice(b",\"CloudWatchMetrics\":[{\"Namespace\":");
    push_escaped_quoted(format.namespace.as_bytes(), out);
    out.extend_from_slice(b",\"Dimensions\":[");
    let mut any_set = false;
    for set in &format.dimensions {
        if !dimension_set_applies(top, set)? {
            continue;
        }
        if any_set {
            out.push(b',');
        }
        any_set = true;
        out.push(b'[');
        for (i, name) in set.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            push_escaped_quoted(name.as_bytes(), out);
        }
        out.push(b']');
    }
    if !any_set {
        // The schema wants at least one set; an empty one (allowed) means "no dimensions".
        out.extend_from_slice(b"[]");
    }
    out.extend_from_slice(b"],\"Metrics\":[");
    for (i, name) in metrics.as_slice().iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"Name\":");
        // Valid UTF-8 (checked when chosen), so this is the same text as its root member's key.
        push_escaped_quoted(name, out);
        if let Some(unit) = unit {
            out.extend_from_slice(b",\"Unit\":");
            push_escaped_quoted(unit.as_bytes(), out);
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"]}]}");

    let mut reader = top.reader.clone();
    for _ in 0..top.entries {
        let key = reader.peek_token()?;
        reader.skip_value()?;
        if key_bytes(key) == Some(AWS_KEY) {
            reader.skip_value()?;
            continue;
        }
        out.push(b',');
        write_key(key, out);
        out.push(b':');
        json.write(&mut reader, out)?;
    }
    out.push(b'}');
    Ok(())
}

/// Whether every key of `set` is in the record, each occurrence a valid dimension value. One walk
/// per name: the cost grows with the configured names, never with the record's key count squared.
fn dimension_set_applies(top: &TopLevel<'_>, set: &[String]) -> Result<bool, MsgpackError> {
    if set.len() > MAX_DIMENSIONS_PER_SET {
        return Ok(false);
    }
    for name in set {
        // Guards a hand-built `MetricFormat`; `parse_dimensions` already refuses these names.
        if !valid_dimension_name(name) {
            return Ok(false);
        }
        let mut reader = top.reader.clone();
        let mut found = false;
        for _ in 0..top.entries {
            let (key, value) = next_entry(&mut reader)?;
            if key_bytes(key) == Some(name.as_bytes()) {
                if !is_dimension_value(value) {
                    return Ok(false);
                }
                found = true;
            }
        }
        if !found {
            return Ok(false);
        }
    }
    Ok(true)
}

/// One entry's key and value headers, both consumed whole (a container's contents skipped).
fn next_entry<'a>(reader: &mut Reader<'a>) -> Result<(Token<'a>, Token<'a>), MsgpackError> {
    let key = reader.peek_token()?;
    reader.skip_value()?;
    let value = reader.peek_token()?;
    reader.skip_value()?;
    Ok((key, value))
}

/// A key's bytes when it is a string (a binary key is written as the same string).
fn key_bytes<'a>(key: Token<'a>) -> Option<&'a [u8]> {
    match key {
        Token::Str(s) | Token::Bin(s) => Some(s),
        _ => None,
    }
}

/// A key that may name a metric: valid UTF-8 (so the name is the key's exact text), 1–255
/// characters, not `_aws`, not a dimension key.
fn metric_name<'a>(key: Token<'a>, format: &MetricFormat) -> Option<&'a [u8]> {
    let name = key_bytes(key)?;
    let text = std::str::from_utf8(name).ok()?;
    let chars_ok =
        !text.is_empty() && (text.len() <= MAX_METRIC_NAME_CHARS || text.chars().count() <= MAX_METRIC_NAME_CHARS);
    let is_dimension = format.dimensions.iter().flatten().any(|d| d.as_bytes() == name);
    (chars_ok && name != AWS_KEY && !is_dimension).then_some(name)
}

/// An integer, or a float CloudWatch accepts (finite, magnitude 0 or within 2^-360..=2^360).
fn is_metric_value(value: Token<'_>) -> bool {
    let accepted = |f: f64| {
        let m = f.abs();
        m == 0.0 || (MIN_MAGNITUDE..=MAX_MAGNITUDE).contains(&m)
    };
    match value {
        Token::UInt(_) | Token::Int(_) => true,
        Token::F32(f) => accepted(f as f64),
        Token::F64(f) => accepted(f),
        _ => false,
    }
}

/// `Dimension.Value`: 1–1024 printable ASCII characters, at least one not blank.
fn is_dimension_value(value: Token<'_>) -> bool {
    match value {
        Token::Str(s) | Token::Bin(s) => {
            (1..=MAX_DIMENSION_VALUE_CHARS).contains(&s.len())
                && s.iter().all(|b| b.is_ascii() && !b.is_ascii_control())
                && s.iter().any(|b| !b.is_ascii_whitespace())
        }
        _ => false,
    }
}

/// `Dimension.Name` and the EMF schema: 1–250 printable ASCII characters, not starting with ':',
/// at least one not blank; and not `_aws`, which the document replaces.
fn valid_dimension_name(name: &str) -> bool {
    (1..=MAX_DIMENSION_NAME_CHARS).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii() && !b.is_ascii_control())
        && name.bytes().any(|b| !b.is_ascii_whitespace())
        && !name.starts_with(':')
        && name.as_bytes() != AWS_KEY
}

/// A key as `json` writes it: strings as strings, scalars quoted, containers by kind.
fn write_key(key: Token<'_>, out: &mut Vec<u8>) {
    match key {
        Token::Str(s) => push_json_string(s, out),
        // binaries and ext payloads are already written as JSON strings
        Token::Bin(_) | Token::Ext(..) => write_scalar(key, out),
        Token::Array(_) => out.extend_from_slice(b"\"(array)\""),
        Token::Map(_) => out.extend_from_slice(b"\"(map)\""),
        scalar => {
            out.push(b'"');
            write_scalar(scalar, out);
            out.push(b'"');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{json, Value};

    fn msgpack(v: &Value) -> Vec<u8> {
        rmp_serde::to_vec(v).unwrap()
    }

    /// `metric_dimensions` as given; `metric_fields` empty.
    fn format(dimensions: &str) -> MetricFormat {
        with_fields(dimensions, "")
    }

    fn with_fields(dimensions: &str, fields: &str) -> MetricFormat {
        let dimensions = if dimensions.is_empty() { Vec::new() } else { parse_dimensions(dimensions).unwrap() };
        let fields = if fields.is_empty() { Vec::new() } else { parse_fields(fields).unwrap() };
        MetricFormat { namespace: "fluent-bit-metrics".into(), dimensions, fields }
    }

    /// Every record field may be a metric (the old behaviour, now the `metric_fields` opt-in).
    fn all(dimensions: &str, keys: &[&str]) -> MetricFormat {
        let mut f = format(dimensions);
        f.fields = keys.iter().map(|k| k.to_string()).collect();
        f
    }

    /// The document as JSON, or `None` for `Ok(false)` (after checking `out` was left alone).
    fn emf(body: &[u8], format: &MetricFormat) -> Option<Value> {
        let mut out = b"keep".to_vec();
        let written = encode_emf(&mut Writer::new(), body, 1_700_000_000_123, format, &mut out).unwrap();
        if !written {
            assert_eq!(out, b"keep");
            return None;
        }
        assert_eq!(&out[..4], b"keep");
        Some(serde_json::from_slice(&out[4..]).unwrap())
    }

    fn metric_names(doc: &Value) -> Vec<&str> {
        let metrics = doc["_aws"]["CloudWatchMetrics"][0]["Metrics"].as_array().unwrap();
        metrics.iter().map(|m| m["Name"].as_str().unwrap()).collect()
    }

    /// A msgpack map with the entries as given (duplicates, NaN and all), for what `json!` can't say.
    fn raw_map(entries: &[(&str, Raw)]) -> Vec<u8> {
        let mut out = vec![0xde];
        out.extend_from_slice(&(entries.len() as u16).to_be_bytes());
        for (key, value) in entries {
            push_str(key, &mut out);
            match value {
                Raw::Nil => out.push(0xc0),
                Raw::Bool(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
                Raw::Int(n) => {
                    out.push(0xd3);
                    out.extend_from_slice(&n.to_be_bytes());
                }
                Raw::Float(f) => {
                    out.push(0xcb);
                    out.extend_from_slice(&f.to_be_bytes());
                }
                Raw::Str(s) => push_str(s, &mut out),
            }
        }
        out
    }

    fn push_str(s: &str, out: &mut Vec<u8>) {
        out.push(0xda);
        out.extend_from_slice(&(s.len() as u16).to_be_bytes());
        out.extend_from_slice(s.as_bytes());
    }

    #[derive(Debug, Clone)]
    enum Raw {
        Nil,
        Bool(bool),
        Int(i64),
        Float(f64),
        Str(String),
    }

    /// A record as the `cpu` input makes it on a 2-CPU host, plus `hostname` (a filter's).
    fn cpu_input_record() -> Value {
        json!({
            "cpu_p": 1.5, "user_p": 1.0, "system_p": 0.5,
            "cpu0.p_cpu": 2.0, "cpu0.p_user": 1.0, "cpu0.p_system": 1.0,
            "cpu1.p_cpu": 1.0, "cpu1.p_user": 1.0, "cpu1.p_system": 0.0,
            "hostname": "h1"
        })
    }

    /// Ported from the C plugin's `pack_emf_payload` on the `cpu` input's record
    /// (cloudwatch_api.c): three metrics, `Unit` Percent, the configured dimension set, every
    /// record member kept. Our `Timestamp` keeps the record's milliseconds (C: whole seconds).
    #[test]
    fn pack_emf_payload_cpu_input_record() {
        let body = msgpack(&cpu_input_record());
        let mut out = Vec::new();
        assert_eq!(encode_emf(&mut Writer::new(), &body, 1_700_000_000_123, &format("hostname"), &mut out), Ok(true));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            concat!(
                r#"{"_aws":{"Timestamp":1700000000123,"CloudWatchMetrics":[{"Namespace":"fluent-bit-metrics","#,
                r#""Dimensions":[["hostname"]],"Metrics":[{"Name":"cpu_p","Unit":"Percent"},"#,
                r#"{"Name":"user_p","Unit":"Percent"},{"Name":"system_p","Unit":"Percent"}]}]},"#,
                r#""cpu_p":1.5,"user_p":1.0,"system_p":0.5,"cpu0.p_cpu":2.0,"cpu0.p_user":1.0,"cpu0.p_system":1.0,"#,
                r#""cpu1.p_cpu":1.0,"cpu1.p_user":1.0,"cpu1.p_system":0.0,"hostname":"h1"}"#
            )
        );
    }

    /// Ported from `pack_emf_payload` on the `mem` input's record: six metrics, `Unit` Bytes.
    #[test]
    fn pack_emf_payload_mem_input_record() {
        let record = json!({"Mem.total": 8000000, "Mem.used": 6000000, "Mem.free": 2000000,
            "Swap.total": 0, "Swap.used": 0, "Swap.free": 0});
        let doc = emf(&msgpack(&record), &format("")).unwrap();
        let metrics = &doc["_aws"]["CloudWatchMetrics"][0]["Metrics"];
        let names = ["Mem.total", "Mem.used", "Mem.free", "Swap.total", "Swap.used", "Swap.free"];
        assert_eq!(*metrics, Value::Array(names.iter().map(|n| json!({"Name": n, "Unit": "Bytes"})).collect()));
        assert_eq!(doc["Mem.used"], 6000000);
        // no dimension set configured or applicable: the specification's "no dimensions"
        assert_eq!(doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([[]]));
    }

    /// Ported from `should_add_to_emf` and the `cpu`/`mem` choice of `process_log_events`: only
    /// the two inputs' records are metrics; an app log with numbers stays plain JSON.
    #[test]
    fn should_add_to_emf_only_cpu_and_mem_records() {
        let plain = |v: Value| emf(&msgpack(&v), &format("hostname"));
        assert_eq!(plain(json!({"log": "GET /", "status": 200, "bytes": 512, "latency_ms": 3.5})), None);
        // a partial shape is not the input's record
        assert_eq!(plain(json!({"cpu_p": 1.5, "user_p": 1.0})), None);
        assert_eq!(plain(json!({"cpu_p": "1.5", "user_p": 1.0, "system_p": 0.5})), None);
        assert_eq!(plain(json!({"Mem.total": 1, "Mem.used": 1})), None);
        // mem without swap fields: the three it has
        let doc = plain(json!({"Mem.total": 3, "Mem.used": 2, "Mem.free": 1})).unwrap();
        assert_eq!(metric_names(&doc), ["Mem.total", "Mem.used", "Mem.free"]);
        // the per-CPU fields and any other number in a cpu record stay plain members
        let mut cpu = cpu_input_record();
        cpu["extra"] = json!(7);
        let doc = emf(&msgpack(&cpu), &format("")).unwrap();
        assert_eq!(metric_names(&doc), ["cpu_p", "user_p", "system_p"]);
        assert_eq!((&doc["extra"], &doc["cpu1.p_cpu"]), (&json!(7), &json!(1.0)));
    }

    /// Our opt-in for other records: the fields `metric_fields` names, no `Unit`.
    #[test]
    fn metric_fields_make_other_records_metrics() {
        let format = with_fields("service", "latency_ms, bytes");
        let doc = emf(&msgpack(&json!({"log": "GET /", "latency_ms": 3.5, "status": 200, "service": "api"})), &format)
            .unwrap();
        assert_eq!(doc["_aws"]["CloudWatchMetrics"][0]["Metrics"], json!([{"Name": "latency_ms"}]));
        assert_eq!(doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([["service"]]));
        assert_eq!(emf(&msgpack(&json!({"log": "x", "status": 200})), &format), None);
        // a cpu record keeps C's metric set even with metric_fields
        assert_eq!(
            metric_names(&emf(&msgpack(&cpu_input_record()), &format).unwrap()),
            ["cpu_p", "user_p", "system_p"]
        );
    }

    #[test]
    fn parse_fields_cases() {
        assert_eq!(parse_fields(" a , b.c "), Ok(vec!["a".to_owned(), "b.c".to_owned()]));
        let hundred: Vec<String> = (0..100).map(|i| format!("f{i}")).collect();
        assert_eq!(parse_fields(&hundred.join(",")), Ok(hundred.clone()));
        for bad in ["", "a,,b", "a,a", "_aws", &"n".repeat(256), &format!("{},x", hundred.join(","))] {
            assert!(parse_fields(bad).unwrap_err().contains("at most once"), "{bad:?}");
        }
    }

    #[test]
    fn records_without_numbers_are_not_metrics() {
        assert_eq!(
            emf(&msgpack(&json!({"log": "hello", "n": null, "ok": true, "nested": {"x": 1}})), &format("")),
            None
        );
        assert_eq!(emf(&msgpack(&json!({})), &format("")), None);
        // only the dimension key is numeric: nothing to publish
        assert_eq!(emf(&msgpack(&json!({"port": 8080})), &all("port", &["port"])), None);
        // not a map
        assert_eq!(emf(&msgpack(&json!([1, 2])), &format("")), None);
    }

    #[test]
    fn a_set_with_a_missing_or_invalid_key_is_left_out() {
        let body = msgpack(&json!({"v": 2, "host": "h1", "port": 8080, "empty": "", "name": "é"}));
        let dims = |d: &str| {
            emf(&body, &all(d, &["v", "port"])).unwrap()["_aws"]["CloudWatchMetrics"][0]["Dimensions"].clone()
        };
        assert_eq!(dims("host;host,missing;missing"), json!([["host"]]));
        assert_eq!(dims("missing"), json!([[]]));
        assert_eq!(dims(""), json!([[]]));
        // a dimension target must be a string CloudWatch accepts: 1-1024 printable ASCII characters
        assert_eq!(dims("port;empty;name;host"), json!([["host"]]));
        // and a numeric dimension key is not a metric either
        assert_eq!(metric_names(&emf(&body, &all("port", &["v", "port"])).unwrap()), ["v"]);
    }

    #[test]
    fn the_records_own_aws_member_is_replaced() {
        let body = msgpack(&json!({"_aws": {"CloudWatchMetrics": "bogus"}, "v": 1, "k": "x"}));
        let doc = emf(&body, &all("", &["v", "_aws"])).unwrap();
        let text = serde_json::to_string(&doc).unwrap();
        assert!(!text.contains("bogus"));
        assert_eq!(doc["_aws"]["CloudWatchMetrics"][0]["Metrics"], json!([{"Name": "v"}]));
        assert_eq!(doc.as_object().unwrap().keys().collect::<Vec<_>>(), ["_aws", "v", "k"]);
        // a numeric `_aws` is dropped too, and is no metric
        assert_eq!(emf(&msgpack(&json!({"_aws": 5})), &all("", &["_aws"])), None);
    }

    #[test]
    fn only_numbers_cloudwatch_accepts_are_metrics() {
        let body = raw_map(&[
            ("nan", Raw::Float(f64::NAN)),
            ("inf", Raw::Float(f64::INFINITY)),
            ("ninf", Raw::Float(f64::NEG_INFINITY)),
            ("huge", Raw::Float(1e200)),
            ("tiny", Raw::Float(1e-200)),
            ("zero", Raw::Float(-0.0)),
            ("big", Raw::Int(i64::MIN)),
            ("b", Raw::Bool(true)),
            ("s", Raw::Str("1".into())),
            ("ok", Raw::Float(2.5)),
        ]);
        let fields = ["nan", "inf", "ninf", "huge", "tiny", "zero", "big", "b", "s", "ok"];
        let doc = emf(&body, &all("", &fields)).unwrap();
        assert_eq!(metric_names(&doc), ["zero", "big", "ok"]);
        // NaN and ±Inf are still members, as null
        assert_eq!((&doc["nan"], &doc["inf"], &doc["huge"]), (&Value::Null, &Value::Null, &json!(1e200)));
        assert_eq!(emf(&raw_map(&[("nan", Raw::Float(f64::NAN))]), &all("", &fields)), None);
    }

    #[test]
    fn at_most_100_metrics() {
        let mut record = serde_json::Map::new();
        for i in 0..150 {
            record.insert(format!("m{i:03}"), json!(i));
        }
        let keys: Vec<String> = record.keys().cloned().collect();
        let doc = emf(&msgpack(&Value::Object(record)), &all("", &keys.iter().map(|k| k.as_str()).collect::<Vec<_>>()))
            .unwrap();
        let names = metric_names(&doc);
        assert_eq!(names.len(), MAX_METRICS);
        assert_eq!((names[0], names[99]), ("m000", "m099"));
        // the rest stay plain members
        assert_eq!(doc["m149"], 149);
        assert_eq!(doc.as_object().unwrap().len(), 151);
    }

    #[test]
    fn repeated_keys() {
        // numeric twice: one metric
        let ab = all("", &["a", "b"]);
        let doc = emf(&raw_map(&[("a", Raw::Int(1)), ("a", Raw::Int(2)), ("b", Raw::Int(3))]), &ab).unwrap();
        assert_eq!(metric_names(&doc), ["a", "b"]);
        // also a string, before or after: not a metric
        for entries in [[("a", Raw::Int(1)), ("a", Raw::Str("x".into()))], [("a", Raw::Nil), ("a", Raw::Int(1))]] {
            assert_eq!(emf(&raw_map(&entries), &ab), None);
        }
        // a dimension key repeated with a number does not qualify its set
        let body = raw_map(&[("v", Raw::Int(1)), ("host", Raw::Str("h".into())), ("host", Raw::Int(2))]);
        let doc = emf(&body, &all("host", &["v", "host"])).unwrap();
        assert_eq!(doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([[]]));
    }

    #[test]
    fn metric_names_follow_metric_datum() {
        let long = "k".repeat(256);
        let max = "é".repeat(255); // 510 bytes, 255 characters
        let body = msgpack(&json!({ "": 1, long.clone(): 2, max.clone(): 3 }));
        let doc = emf(&body, &all("", &["", &long, &max])).unwrap();
        assert_eq!(metric_names(&doc), [max.as_str()]);
        assert_eq!((&doc[""], &doc[long.as_str()]), (&json!(1), &json!(2)));
    }

    #[test]
    fn odd_keys_are_written_like_message_does() {
        // {"v": 1, 7: 2, bin("b"): 3, [1]: 4}
        let body = [0x84, 0xa1, b'v', 0x01, 0x07, 0x02, 0xc4, 0x01, b'b', 0x03, 0x91, 0x01, 0x04];
        let mut out = Vec::new();
        assert_eq!(encode_emf(&mut Writer::new(), &body, 0, &all("", &["v", "7", "b"]), &mut out), Ok(true));
        let text = String::from_utf8(out).unwrap();
        // a binary key that is text may be a metric: it is written as the same string
        assert!(text.contains(r#""Metrics":[{"Name":"v"},{"Name":"b"}]"#), "{text}");
        assert!(text.ends_with(r#""v":1,"7":2,"b":3,"(array)":4}"#), "{text}");
    }

    #[test]
    fn damaged_body_leaves_output_untouched() {
        let mut out = b"keep".to_vec();
        // {"v": 1, "s": <cut short>}
        let body = [0x82, 0xa1, b'v', 0x01, 0xa1, b's', 0xa5, b'x'];
        assert_eq!(encode_emf(&mut Writer::new(), &body, 0, &format(""), &mut out), Err(MsgpackError::Truncated));
        assert_eq!(out, b"keep");
        // a map claiming more entries than it has
        assert!(encode_emf(
            &mut Writer::new(),
            &[0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, b'v', 0x01],
            0,
            &format(""),
            &mut out
        )
        .is_err());
        assert_eq!(out, b"keep");
    }

    #[test]
    fn namespace_and_dimension_names_are_escaped() {
        let format = MetricFormat {
            namespace: "a\"b".into(),
            dimensions: parse_dimensions("k\\").unwrap(),
            fields: vec!["v".into()],
        };
        let doc = emf(&msgpack(&json!({"v": 1, "k\\": "x"})), &format).unwrap();
        assert_eq!(doc["_aws"]["CloudWatchMetrics"][0]["Namespace"], "a\"b");
        assert_eq!(doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([["k\\"]]));
    }

    #[test]
    fn parse_dimensions_cases() {
        let sets = |v: &[&[&str]]| -> Vec<Vec<String>> {
            v.iter().map(|s| s.iter().map(|n| n.to_string()).collect()).collect()
        };
        assert_eq!(parse_dimensions("a,b;c"), Ok(sets(&[&["a", "b"], &["c"]])));
        assert_eq!(parse_dimensions(" a , b ;\tc "), Ok(sets(&[&["a", "b"], &["c"]])));
        assert_eq!(parse_dimensions("host"), Ok(sets(&[&["host"]])));
        assert_eq!(parse_dimensions("a b;a"), Ok(sets(&[&["a b"], &["a"]])));
        let thirty: Vec<String> = (0..30).map(|i| format!("d{i}")).collect();
        assert_eq!(parse_dimensions(&thirty.join(",")), Ok(vec![thirty.clone()]));
        assert_eq!(parse_dimensions(&"n".repeat(250)), Ok(sets(&[&["n".repeat(250).as_str()]])));
        let thirty_one = format!("{},d30", thirty.join(","));
        for bad in [
            "",
            " ",
            ";",
            "a;",
            ";a",
            "a,,b",
            "a,",
            "a, ;b",
            "a,a",
            ":a",
            "_aws",
            "é",
            "a\u{1}",
            &thirty_one,
            &"n".repeat(251),
        ] {
            let err = parse_dimensions(bad).unwrap_err();
            assert!(err.contains("at most once per set"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn check_namespace_cases() {
        for ok in ["fluent-bit-metrics", "My/App", "a:b", "x", &"n".repeat(255)] {
            assert_eq!(check_namespace(ok), Ok(()), "{ok:?}");
        }
        for bad in ["", ":a", "AWS/EC2", " ", "é", "a\nb", &"n".repeat(256)] {
            assert!(check_namespace(bad).unwrap_err().contains("printable ASCII"), "{bad:?}");
        }
    }

    fn raw_value() -> impl Strategy<Value = Raw> {
        prop_oneof![
            Just(Raw::Nil),
            any::<bool>().prop_map(Raw::Bool),
            any::<i64>().prop_map(Raw::Int),
            any::<f64>().prop_map(Raw::Float),
            prop_oneof![Just(f64::NAN), Just(f64::INFINITY), Just(1e300), Just(0.25)].prop_map(Raw::Float),
            "[a-z\u{e9} ]{0,4}".prop_map(Raw::Str),
        ]
    }

    proptest! {
        #[test]
        fn any_flat_body_gives_plain_json_or_a_valid_document(
            entries in prop::collection::vec(("[a-e_]{0,2}|_aws", raw_value()), 0..40),
            dims in prop::collection::vec(prop::collection::vec("[a-e]{1,2}", 1..3), 0..3),
        ) {
            let entries: Vec<(&str, Raw)> = entries.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
            let body = raw_map(&entries);
            let mut dims = dims;
            for set in &mut dims {
                set.dedup();
            }
            let fields = entries.iter().map(|(k, _)| k.to_string()).collect();
            let format = MetricFormat { namespace: "ns".into(), dimensions: dims.clone(), fields };
            let mut out = b"keep".to_vec();
            let written = encode_emf(&mut Writer::new(), &body, 42, &format, &mut out).unwrap();
            prop_assert_eq!(&out[..4], b"keep");
            if !written {
                prop_assert_eq!(out.len(), 4);
                return Ok(());
            }
            let doc: Value = serde_json::from_slice(&out[4..]).unwrap();
            prop_assert_eq!(&doc["_aws"]["Timestamp"], &json!(42));
            let names = metric_names(&doc);
            prop_assert!(!names.is_empty() && names.len() <= MAX_METRICS);
            for (i, name) in names.iter().enumerate() {
                prop_assert!(doc[*name].is_number(), "{} is not a number", name);
                prop_assert!(!names[..i].contains(name));
                prop_assert!(!dims.iter().flatten().any(|d| d == name));
            }
            for set in doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"].as_array().unwrap() {
                for key in set.as_array().unwrap() {
                    prop_assert!(doc[key.as_str().unwrap()].is_string());
                }
            }
        }
    }
}
