//! A Fluent Bit metrics chunk (cmetrics msgpack) → EMF documents, as log records.
//!
//! Since 5.0 a proxy output that declares metrics (see `ffi`) is handed the chunks of metrics
//! inputs (`fluentbit_metrics`, `prometheus_scrape`, `node_exporter_metrics`, …) through the same
//! flush call as logs; nothing says which it is. A logs chunk is a run of records, each an array;
//! a metrics chunk is a run of cmetrics contexts, each a map (`cmt_encode_msgpack.c`):
//!
//! ```text
//! {"meta": {"cmetrics": {..}, "external": {..}, "processing": {"static_labels": [[k, v], ..]}},
//!  "metrics": [{"meta": {"ver", "type", "opts": {"ns", "ss", "name", "desc", "unit"},
//!                        "labels": [key, ..], "buckets"/"quantiles": [..]},
//!               "values": [{"ts": ns, "value": f64, "labels": [value, ..],
//!                           "histogram": {"buckets", "sum", "count"},
//!                           "summary": {"quantiles", "count", "sum"}, "hash"}, ..]}, ..]}
//! ```
//!
//! Each value becomes one document, as the C plugin writes them (`process_metric_events` →
//! `cmt_encode_cloudwatch_emf.c`): `_aws` (`Timestamp` the value's time in ms, `Namespace` the
//! cmetrics namespace, one dimension set of the label keys then the static label keys, one metric
//! with `StorageResolution` 60), the labels and static labels as members, `prom_metric_type`, and
//! the value under the metric's full name — a number, or `{Min, Max, Sum, Count}` for histograms
//! and summaries, computed as C does. Where C writes what CloudWatch refuses we write what it
//! accepts: `Unit` `Count` for counters (C: `Counter`, not a CloudWatch unit) and, for an empty
//! namespace, C's own default `cmetrics-metrics`. Exponential histograms are not converted.
//!
//! The documents come out as a logs chunk (`[[time, {}], document]` records), so naming, batching
//! and delivery are the logs path's. The event's time is the value's own (C stamps the flush
//! time): the same chunk then gives the same events on Fluent Bit's retry, so what an earlier
//! attempt delivered is recognised and not sent twice. A value without a time (cmetrics' 0) gets
//! `now`, in the event and in `Timestamp` (C writes `Timestamp` 0, which CloudWatch refuses).

use crate::core::msgpack::{MsgpackError, Reader, Token};

/// `CMT_COUNTER` … `CMT_EXP_HISTOGRAM` (cmetrics.h).
const COUNTER: u64 = 0;
const GAUGE: u64 = 1;
const HISTOGRAM: u64 = 2;
const SUMMARY: u64 = 3;
const UNTYPED: u64 = 4;

/// C's namespace when a context has none.
const DEFAULT_NAMESPACE: &[u8] = b"cmetrics-metrics";

/// Whether a flush buffer holds metrics (cmetrics maps), not log records (arrays).
pub fn is_metrics_chunk(chunk: &[u8]) -> bool {
    matches!(chunk.first(), Some(0x80..=0x8f | 0xde | 0xdf))
}

/// What a metrics chunk became.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Converted {
    /// Documents written (one per metric value).
    pub documents: u64,
    /// Values not written: exponential histograms and metric types this does not know.
    pub skipped: u64,
    /// Set when the chunk stops being a cmetrics payload; what came before is written.
    pub damage: Option<MsgpackError>,
}

/// Appends one log record per metric value of `chunk` to `out` (a logs chunk for `Plan::build`).
pub fn to_log_records(chunk: &[u8], now_secs: u32, now_nanos: u32, out: &mut Vec<u8>) -> Converted {
    let mut converted = Converted::default();
    let mut reader = Reader::new(chunk);
    while !reader.is_empty() {
        let context = match reader.raw_value() {
            Ok(context) => context,
            Err(e) => {
                converted.damage = Some(e);
                break;
            }
        };
        if let Err(e) = write_context(context, (now_secs, now_nanos), out, &mut converted) {
            converted.damage = Some(e);
            break;
        }
    }
    converted
}

/// The value of `key` in the map at the start of `map` (the last one, as cmetrics' decoder
/// would overwrite), or `None`.
fn field<'a>(map: &'a [u8], key: &[u8]) -> Result<Option<&'a [u8]>, MsgpackError> {
    let mut reader = Reader::new(map);
    let Token::Map(entries) = reader.next_token()? else {
        return Ok(None);
    };
    let mut found = None;
    for _ in 0..entries {
        let k = reader.next_token()?;
        let value = reader.raw_value()?;
        if matches!(k, Token::Str(s) if s == key) {
            found = Some(value);
        }
    }
    Ok(found)
}

/// The elements of the array at the start of `raw` (nothing when it is not an array).
fn elements(raw: &[u8]) -> Result<Vec<&[u8]>, MsgpackError> {
    let mut reader = Reader::new(raw);
    let Token::Array(n) = reader.next_token()? else {
        return Ok(Vec::new());
    };
    (0..n).map(|_| reader.raw_value()).collect()
}

fn token(raw: Option<&[u8]>) -> Result<Option<Token<'_>>, MsgpackError> {
    raw.map(|r| Reader::new(r).next_token()).transpose()
}

/// A string, or `""` for nil or anything else (C writes `""` for a NULL label).
fn text(raw: Option<&[u8]>) -> Result<&[u8], MsgpackError> {
    Ok(match token(raw)? {
        Some(Token::Str(s)) => s,
        _ => b"",
    })
}

fn unsigned(raw: Option<&[u8]>) -> Result<u64, MsgpackError> {
    Ok(match token(raw)? {
        Some(Token::UInt(n)) => n,
        Some(Token::Int(n)) => n.max(0) as u64,
        Some(Token::F64(f)) => f as u64,
        _ => 0,
    })
}

fn float(raw: Option<&[u8]>) -> Result<f64, MsgpackError> {
    Ok(match token(raw)? {
        Some(Token::F64(f)) => f,
        Some(Token::F32(f)) => f as f64,
        Some(Token::UInt(n)) => n as f64,
        Some(Token::Int(n)) => n as f64,
        _ => 0.0,
    })
}

/// One metric family's description.
struct Family<'a> {
    kind: u64,
    namespace: &'a [u8],
    full_name: Vec<u8>,
    label_keys: Vec<&'a [u8]>,
}

fn write_context(
    context: &[u8],
    now: (u32, u32),
    out: &mut Vec<u8>,
    converted: &mut Converted,
) -> Result<(), MsgpackError> {
    let mut static_labels = Vec::new();
    let processing = field(context, b"meta")?.map(|m| field(m, b"processing")).transpose()?.flatten();
    if let Some(list) = processing.map(|p| field(p, b"static_labels")).transpose()?.flatten() {
        for pair in elements(list)? {
            let pair = elements(pair)?;
            if let [k, v] = pair[..] {
                static_labels.push((text(Some(k))?, text(Some(v))?));
            }
        }
    }
    let Some(metrics) = field(context, b"metrics")? else {
        return Ok(());
    };
    for family in elements(metrics)? {
        let meta = field(family, b"meta")?.unwrap_or(&[0x80]);
        let opts = field(meta, b"opts")?.unwrap_or(&[0x80]);
        let (ns, ss, name) = (text(field(opts, b"ns")?)?, text(field(opts, b"ss")?)?, text(field(opts, b"name")?)?);
        let family_info = Family {
            kind: unsigned(field(meta, b"type")?)?,
            namespace: if ns.is_empty() { DEFAULT_NAMESPACE } else { ns },
            full_name: full_name(ns, ss, name),
            label_keys: match field(meta, b"labels")? {
                Some(keys) => elements(keys)?.into_iter().map(|k| text(Some(k))).collect::<Result<_, _>>()?,
                None => Vec::new(),
            },
        };
        let values = match field(family, b"values")? {
            Some(values) => elements(values)?,
            None => Vec::new(),
        };
        // cmetrics keeps one value without labels (the last read; earlier ones it overwrites,
        // counted here as skipped) and writes it first
        let labelled = |v: &[u8]| !matches!(field(v, b"labels"), Ok(None));
        let unlabelled = values.iter().rposition(|v| !labelled(v));
        let overwritten = values.iter().filter(|v| !labelled(v)).count().saturating_sub(1);
        converted.skipped += overwritten as u64;
        let ordered = unlabelled.into_iter().chain((0..values.len()).filter(|&i| labelled(values[i])));
        for i in ordered {
            if ![COUNTER, GAUGE, UNTYPED, HISTOGRAM, SUMMARY].contains(&family_info.kind) {
                converted.skipped += 1;
                continue;
            }
            write_record(&family_info, values[i], &static_labels, now, out)?;
            converted.documents += 1;
        }
    }
    Ok(())
}

/// `ns_ss_name`, as `cmt_opts_init` builds it.
fn full_name(ns: &[u8], ss: &[u8], name: &[u8]) -> Vec<u8> {
    let mut fq = ns.to_vec();
    if !ns.is_empty() {
        fq.push(b'_');
    }
    if !ss.is_empty() {
        fq.extend_from_slice(ss);
        if fq.last() != Some(&b'_') {
            fq.push(b'_');
        }
    }
    fq.extend_from_slice(name);
    fq
}

/// One `[[now, {}], document]` record.
fn write_record(
    family: &Family<'_>,
    value: &[u8],
    static_labels: &[(&[u8], &[u8])],
    now: (u32, u32),
    out: &mut Vec<u8>,
) -> Result<(), MsgpackError> {
    let label_values = match field(value, b"labels")? {
        Some(labels) => elements(labels)?.into_iter().map(|v| text(Some(v))).collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    let labels: Vec<(&[u8], &[u8])> = family.label_keys.iter().copied().zip(label_values.iter().copied()).collect();
    // computed before anything is written, so a damaged value leaves `out` as it was
    let number = match family.kind {
        HISTOGRAM => Number::Stats(histogram_stats(field(value, b"histogram")?)?),
        SUMMARY => Number::Stats(summary_stats(field(value, b"summary")?)?),
        _ => Number::Plain(float(field(value, b"value")?)?),
    };
    let ts = unsigned(field(value, b"ts")?)?;
    let (secs, nanos) = match u32::try_from(ts / 1_000_000_000) {
        Ok(secs) if ts > 0 => (secs, (ts % 1_000_000_000) as u32),
        _ => now,
    };
    // C writes 0 for a value never set (a 1970 metric CloudWatch refuses): the event's time here
    let timestamp_ms = secs as u64 * 1000 + (nanos / 1_000_000) as u64;

    // [[EventTime, {}], {...}]
    out.extend_from_slice(&[0x92, 0x92, 0xd7, 0x00]);
    out.extend_from_slice(&secs.to_be_bytes());
    out.extend_from_slice(&nanos.to_be_bytes());
    out.push(0x80);
    map(3 + labels.len() + static_labels.len(), out);

    str(b"_aws", out);
    map(2, out);
    str(b"Timestamp", out);
    unsigned_int(timestamp_ms, out);
    str(b"CloudWatchMetrics", out);
    array(1, out);
    map(3, out);
    str(b"Namespace", out);
    str(family.namespace, out);
    str(b"Dimensions", out);
    array(1, out);
    array(family.label_keys.len() + static_labels.len(), out);
    for key in family.label_keys.iter().chain(static_labels.iter().map(|(k, _)| k)) {
        str(key, out);
    }
    str(b"Metrics", out);
    array(1, out);
    if family.kind == COUNTER {
        map(3, out);
        str(b"Name", out);
        str(&family.full_name, out);
        str(b"Unit", out);
        str(b"Count", out);
    } else {
        map(2, out);
        str(b"Name", out);
        str(&family.full_name, out);
    }
    str(b"StorageResolution", out);
    unsigned_int(60, out);

    for (k, v) in labels.iter().chain(static_labels) {
        str(k, out);
        str(v, out);
    }
    str(b"prom_metric_type", out);
    str(
        match family.kind {
            COUNTER => b"counter",
            GAUGE => b"gauge",
            UNTYPED => b"untyped",
            SUMMARY => b"summary",
            _ => b"histogram",
        },
        out,
    );
    str(&family.full_name, out);
    match number {
        Number::Plain(v) => double(v, out),
        Number::Stats([min, max, sum, count]) => {
            map(4, out);
            for (name, v) in [(&b"Min"[..], min), (b"Max", max), (b"Sum", sum), (b"Count", count)] {
                str(name, out);
                double(v, out);
            }
        }
    }
    Ok(())
}

enum Number {
    Plain(f64),
    /// Min, Max, Sum, Count.
    Stats([f64; 4]),
}

/// As `cmt_encode_cloudwatch_emf.c` computes them: the bucket counts sorted, `Min` the smallest,
/// `Max` the one at the bucket count's index less one (C reads index −1 with no buckets; here
/// index 0), `Sum` and `Count` the histogram's.
fn histogram_stats(histogram: Option<&[u8]>) -> Result<[f64; 4], MsgpackError> {
    let Some(histogram) = histogram else {
        return Ok([0.0; 4]);
    };
    let mut counts = match field(histogram, b"buckets")? {
        Some(b) => elements(b)?.into_iter().map(|c| unsigned(Some(c))).collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    counts.sort_unstable();
    // `counts` holds the bucket count plus one (the +Inf bucket)
    let max_index = counts.len().saturating_sub(2);
    let at = |i: usize| counts.get(i).copied().unwrap_or(0) as f64;
    Ok([at(0), at(max_index), float(field(histogram, b"sum")?)?, unsigned(field(histogram, b"count")?)? as f64])
}

/// `Min` the first quantile's value, `Max` the last's, `Sum` and `Count` the summary's; quantiles
/// and the sum travel as the bits of a double.
fn summary_stats(summary: Option<&[u8]>) -> Result<[f64; 4], MsgpackError> {
    let Some(summary) = summary else {
        return Ok([0.0; 4]);
    };
    let quantiles = match field(summary, b"quantiles")? {
        Some(q) => elements(q)?.into_iter().map(|c| unsigned(Some(c))).collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    let bits = |b: Option<&u64>| f64::from_bits(b.copied().unwrap_or(0));
    Ok([
        bits(quantiles.first()),
        bits(quantiles.last()),
        f64::from_bits(unsigned(field(summary, b"sum")?)?),
        unsigned(field(summary, b"count")?)? as f64,
    ])
}

fn map(n: usize, out: &mut Vec<u8>) {
    out.push(0xdf);
    out.extend_from_slice(&(n as u32).to_be_bytes());
}

fn array(n: usize, out: &mut Vec<u8>) {
    out.push(0xdd);
    out.extend_from_slice(&(n as u32).to_be_bytes());
}

fn str(s: &[u8], out: &mut Vec<u8>) {
    out.push(0xdb);
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s);
}

fn unsigned_int(n: u64, out: &mut Vec<u8>) {
    out.push(0xcf);
    out.extend_from_slice(&n.to_be_bytes());
}

fn double(v: f64, out: &mut Vec<u8>) {
    out.push(0xcb);
    out.extend_from_slice(&v.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::chunk::Chunk;
    use crate::core::json::Writer;
    use serde_json::{json, Value};

    fn msgpack(v: &Value) -> Vec<u8> {
        rmp_serde::to_vec(v).unwrap()
    }

    /// The documents of a converted chunk as JSON, each with its record time in seconds.
    fn documents(chunk: &[u8]) -> (Vec<(u64, Value)>, Converted) {
        let mut out = Vec::new();
        let converted = to_log_records(chunk, 1_800_000_000, 5, &mut out);
        let mut docs = Vec::new();
        for record in Chunk::new(&out) {
            let crate::core::chunk::Entry::Record(record) = record.unwrap() else { panic!("not a record") };
            let mut json = Vec::new();
            Writer::new().write(&mut Reader::new(record.body), &mut json).unwrap();
            docs.push((record.time.secs, serde_json::from_slice(&json).unwrap()));
        }
        (docs, converted)
    }

    fn family(kind: u64, ns: &str, ss: &str, name: &str, labels: &[&str], values: Value) -> Value {
        json!({
            "meta": {"ver": 2, "type": kind,
                     "opts": {"ns": ns, "ss": ss, "name": name, "desc": "d", "unit": ""},
                     "labels": labels},
            "values": values
        })
    }

    fn context(static_labels: Value, families: Vec<Value>) -> Value {
        json!({
            "meta": {"cmetrics": {}, "external": {}, "processing": {"static_labels": static_labels}},
            "metrics": families
        })
    }

    const TS: u64 = 1_700_000_000_123_456_789;

    /// Ported from fluent-bit's tests/runtime/out_cloudwatch.c `success_with_metrics`: the
    /// `fluentbit_metrics` input's payload (a counter per input, a gauge) becomes one EMF document
    /// per value, as `cmt_encode_cloudwatch_emf.c` writes them.
    #[test]
    fn success_with_metrics() {
        let payload = context(
            json!([]),
            vec![
                family(
                    COUNTER,
                    "fluentbit",
                    "input",
                    "records_total",
                    &["name"],
                    json!([{"ts": TS, "value": 42.0, "labels": ["cpu.0"], "hash": 1},
                           {"ts": TS, "value": 7.0, "labels": ["mem.1"], "hash": 2}]),
                ),
                family(GAUGE, "fluentbit", "", "uptime", &[], json!([{"ts": TS, "value": 12.0, "hash": 3}])),
            ],
        );
        let (docs, converted) = documents(&msgpack(&payload));
        assert_eq!(converted, Converted { documents: 3, skipped: 0, damage: None });
        // stamped with the value's time (C: the flush time)
        assert!(docs.iter().all(|(secs, _)| *secs == 1_700_000_000));
        assert_eq!(
            docs[0].1,
            json!({
                "_aws": {"Timestamp": 1_700_000_000_123u64, "CloudWatchMetrics": [{
                    "Namespace": "fluentbit", "Dimensions": [["name"]],
                    "Metrics": [{"Name": "fluentbit_input_records_total", "Unit": "Count", "StorageResolution": 60}]}]},
                "name": "cpu.0",
                "prom_metric_type": "counter",
                "fluentbit_input_records_total": 42.0
            })
        );
        assert_eq!(docs[1].1["name"], "mem.1");
        assert_eq!(
            docs[2].1,
            json!({
                "_aws": {"Timestamp": 1_700_000_000_123u64, "CloudWatchMetrics": [{
                    "Namespace": "fluentbit", "Dimensions": [[]],
                    "Metrics": [{"Name": "fluentbit_uptime", "StorageResolution": 60}]}]},
                "prom_metric_type": "gauge",
                "fluentbit_uptime": 12.0
            })
        );
        // key order as C writes it
        let keys: Vec<&String> = docs[0].1.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["_aws", "name", "prom_metric_type", "fluentbit_input_records_total"]);
    }

    /// `cmt_encode_cloudwatch_emf.c` `pack_basic_header`/`pack_metric`: static labels follow the
    /// label keys in the dimension set and the labels in the members; a missing namespace is C's
    /// default; several contexts in one chunk are all read.
    #[test]
    fn static_labels_and_empty_namespace() {
        let one = context(
            json!([["host", "h1"], ["env", "prod"]]),
            vec![family(UNTYPED, "", "node", "load1", &["cpu"], json!([{"ts": TS, "value": 0.5, "labels": ["0"]}]))],
        );
        let mut chunk = msgpack(&one);
        chunk.extend(msgpack(&one));
        let (docs, converted) = documents(&chunk);
        assert_eq!((converted.documents, docs.len()), (2, 2));
        let doc = &docs[0].1;
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "cmetrics-metrics");
        assert_eq!(directive["Dimensions"], json!([["cpu", "host", "env"]]));
        assert_eq!(directive["Metrics"][0]["Name"], "node_load1");
        let keys: Vec<&String> = doc.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["_aws", "cpu", "host", "env", "prom_metric_type", "node_load1"]);
        assert_eq!((&doc["host"], &doc["prom_metric_type"]), (&json!("h1"), &json!("untyped")));
    }

    /// `pack_histogram_metric` and `pack_summary_metric`: C's Min/Max/Sum/Count.
    #[test]
    fn histogram_and_summary_stats_as_c_computes_them() {
        let bits = |f: f64| f.to_bits();
        let payload = context(
            json!([]),
            vec![
                family(
                    HISTOGRAM,
                    "app",
                    "",
                    "latency",
                    &[],
                    json!([{"ts": TS, "histogram": {"buckets": [5, 1, 9, 3], "sum": 12.5, "count": 9}}]),
                ),
                family(
                    SUMMARY,
                    "app",
                    "",
                    "size",
                    &[],
                    json!([{"ts": TS, "summary": {"quantiles_set": 1, "quantiles": [bits(0.1), bits(0.5), bits(0.9)],
                                                   "count": 4, "sum": bits(2.5)}}]),
                ),
            ],
        );
        let (docs, _) = documents(&msgpack(&payload));
        // 3 buckets + Inf; sorted 1,3,5,9: Min 1, Max at index 3 - 1 = 5
        assert_eq!(docs[0].1["app_latency"], json!({"Min": 1.0, "Max": 5.0, "Sum": 12.5, "Count": 9.0}));
        assert_eq!(docs[0].1["prom_metric_type"], "histogram");
        assert_eq!(docs[1].1["app_size"], json!({"Min": 0.1, "Max": 0.9, "Sum": 2.5, "Count": 4.0}));
    }

    #[test]
    fn unknown_types_and_overwritten_values_are_counted() {
        let payload = context(
            json!([]),
            vec![
                family(5, "x", "", "exp", &[], json!([{"ts": TS, "exp_histogram": {}}])),
                // two values without labels: cmetrics keeps the last
                family(GAUGE, "x", "", "g", &[], json!([{"ts": TS, "value": 1.0}, {"ts": TS, "value": 2.0}])),
            ],
        );
        let (docs, converted) = documents(&msgpack(&payload));
        assert_eq!(converted, Converted { documents: 1, skipped: 2, damage: None });
        assert_eq!(docs[0].1["x_g"], 2.0);
        // no time (cmetrics writes 0): stamped now, event and document
        let untimed = context(json!([]), vec![family(GAUGE, "x", "", "g", &[], json!([{"ts": 0, "value": 1.0}]))]);
        let (secs, doc) = &documents(&msgpack(&untimed)).0[0];
        assert_eq!((*secs, &doc["_aws"]["Timestamp"]), (1_800_000_000, &json!(1_800_000_000_000u64)));
    }

    #[test]
    fn damage_ends_the_chunk_after_what_was_written() {
        let good =
            msgpack(&context(json!([]), vec![family(GAUGE, "x", "", "g", &[], json!([{"ts": TS, "value": 1.0}]))]));
        let mut chunk = good.clone();
        chunk.extend_from_slice(&good[..good.len() - 3]);
        let (docs, converted) = documents(&chunk);
        assert_eq!((docs.len(), converted.damage), (1, Some(MsgpackError::Truncated)));
    }

    #[test]
    fn metrics_chunks_are_maps_log_chunks_arrays() {
        assert!(is_metrics_chunk(&msgpack(&json!({"meta": {}}))));
        assert!(is_metrics_chunk(&[0xde, 0, 0]));
        assert!(!is_metrics_chunk(&[0x92, 0xd7, 0]));
        assert!(!is_metrics_chunk(&[]));
    }
}
