//! A record body → the CloudWatch message bytes, in one pass from msgpack.
//!
//! Without `log_key` the message is the body as compact JSON, keys in record order. With
//! `log_key` it is the value at that key or path: a string as is, anything else as JSON. With
//! `metric_namespace`, the `cpu`/`mem` inputs' records (and `metric_fields` ones) become Embedded
//! Metric Format documents.
//! An empty message is not sent; one over the size limit is cut and ends with the truncation
//! marker. The JSON itself, and its text rules, are `json`'s.

use crate::core::emf::{encode_emf, MetricFormat};
use crate::core::json::{embed_lossy, truncate_utf8, Form, InBody, Plain, Writer};
use crate::core::msgpack::{MsgpackError, Reader, Token};
use crate::core::record_path::RecordPath;

/// The largest message that fits a PutLogEvents batch on its own: 1,048,576 − 26 bytes.
pub const MAX_MESSAGE_BYTES: usize = 1_048_576 - 26;

/// How a body becomes a message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageFormat {
    /// Send only this value of the record.
    pub log_key: Option<RecordPath>,
    pub missing_key: MissingKey,
    /// Ends a message that had to be cut; counted inside the size limit.
    pub truncation_marker: String,
    /// Metrics records become Embedded Metric Format documents (see `emf`).
    pub metrics: Option<MetricFormat>,
}

/// What becomes of a record without `log_key`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MissingKey {
    /// Not sent; counted as `dropped_missing_key`.
    #[default]
    Drop,
    /// The whole record is sent as JSON.
    SendRecord,
}

/// The outcome of encoding one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoded {
    /// A message was appended; `truncated` says it was cut to `MAX_MESSAGE_BYTES`.
    Message { truncated: bool },
    /// Nothing to send: an empty body or an empty `log_key` value.
    Empty,
    /// `log_key` is set and the record does not have it.
    MissingKey,
}

/// What `Encoder::encode_escaped` made of one body, and the message's own length.
pub type EscapedMessage = Result<(Encoded, usize), MsgpackError>;

/// Reusable scratch space, so encoding allocates nothing once warmed up.
#[derive(Debug, Default)]
pub struct Encoder {
    json: Writer,
    /// An EMF document before it is embedded.
    document: Vec<u8>,
}

impl Encoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends the message for `body` (a raw msgpack map) to `out`, as CloudWatch will store
    /// it. On error `out` is left as it was. `timestamp_ms` is the record's time (EMF
    /// documents carry it).
    pub fn encode(
        &mut self,
        body: &[u8],
        timestamp_ms: i64,
        format: &MessageFormat,
        out: &mut Vec<u8>,
    ) -> Result<Encoded, MsgpackError> {
        self.encode_as(Plain, body, timestamp_ms, format, out).map(|(encoded, _)| encoded)
    }

    /// `encode`, but the message is appended already escaped as the content of a JSON string
    /// (what goes between the quotes of `"message":"…"` in the request body), so the body is
    /// written in one pass from msgpack. Also returns the message's own length in bytes, which
    /// is what CloudWatch counts.
    pub fn encode_escaped(
        &mut self,
        body: &[u8],
        timestamp_ms: i64,
        format: &MessageFormat,
        out: &mut Vec<u8>,
    ) -> EscapedMessage {
        self.encode_as(InBody::default(), body, timestamp_ms, format, out)
    }

    /// `encode_escaped` of a body read straight from `reader`, which is left after it; also
    /// returns the body's bytes. Where the message is the whole body (no `log_key`, no
    /// metrics), the body is read once, in the same pass that finds its end. An error means
    /// the bytes are not msgpack (the body's end is unknown); with `log_key` or metrics a body
    /// that is intact msgpack but cannot be encoded is `Ok` with the error inside.
    pub fn encode_escaped_from<'a>(
        &mut self,
        reader: &mut Reader<'a>,
        timestamp_ms: i64,
        format: &MessageFormat,
        out: &mut Vec<u8>,
    ) -> Result<(EscapedMessage, &'a [u8]), MsgpackError> {
        if format.log_key.is_some() || format.metrics.is_some() {
            let body = reader.raw_value()?;
            return Ok((self.encode_escaped(body, timestamp_ms, format, out), body));
        }
        let (from, start) = (reader.position(), out.len());
        let mut f = InBody::default();
        let written = self.json.write_as(&mut f, reader, out).map(|()| Encoded::Message { truncated: false });
        let body = reader.since(from);
        Ok((Ok(self.finish(f, written, start, body, timestamp_ms, format, out)?), body))
    }

    fn encode_as<F: Form + Default>(
        &mut self,
        mut f: F,
        body: &[u8],
        timestamp_ms: i64,
        format: &MessageFormat,
        out: &mut Vec<u8>,
    ) -> Result<(Encoded, usize), MsgpackError> {
        let start = out.len();
        let written = self.write_message(&mut f, body, timestamp_ms, format, out);
        self.finish(f, written, start, body, timestamp_ms, format, out)
    }

    /// Applies the size limit and the empty rule to a message written from `start` on, or
    /// takes it back out on error.
    #[allow(clippy::too_many_arguments)]
    fn finish<F: Form + Default>(
        &mut self,
        f: F,
        written: Result<Encoded, MsgpackError>,
        start: usize,
        body: &[u8],
        timestamp_ms: i64,
        format: &MessageFormat,
        out: &mut Vec<u8>,
    ) -> Result<(Encoded, usize), MsgpackError> {
        match written {
            Ok(Encoded::Message { .. }) => {
                if out.len() == start || out[start..] == *b"{}" {
                    out.truncate(start);
                    return Ok((Encoded::Empty, 0));
                }
                let len = f.message_len(out.len() - start);
                if len <= MAX_MESSAGE_BYTES {
                    return Ok((Encoded::Message { truncated: false }, len));
                }
                // Rare (a message over 1 MB): cut the message form, then put it in this form.
                out.truncate(start);
                let mut message = Vec::with_capacity(len);
                self.write_message(&mut Plain, body, timestamp_ms, format, &mut message)?;
                let marker = format.truncation_marker.as_bytes();
                truncate_utf8(&mut message, 0, MAX_MESSAGE_BYTES - marker.len());
                message.extend_from_slice(marker);
                F::default().embed(&message, out);
                Ok((Encoded::Message { truncated: true }, message.len()))
            }
            Ok(other) => {
                out.truncate(start);
                Ok((other, 0))
            }
            Err(e) => {
                out.truncate(start);
                Err(e)
            }
        }
    }

    /// The message in form `F`, without the size limit.
    fn write_message<F: Form>(
        &mut self,
        f: &mut F,
        body: &[u8],
        timestamp_ms: i64,
        format: &MessageFormat,
        out: &mut Vec<u8>,
    ) -> Result<Encoded, MsgpackError> {
        match (&format.log_key, &format.metrics) {
            (Some(path), _) => match self.encode_key(f, body, path, out) {
                Ok(Encoded::MissingKey) if format.missing_key == MissingKey::SendRecord => {
                    self.encode_body(f, body, out)
                }
                other => other,
            },
            (None, Some(metrics)) => {
                // EMF is written in message form, then embedded: an opt-in path, two passes
                self.document.clear();
                let emf = encode_emf(&mut self.json, body, timestamp_ms, metrics, &mut self.document);
                if let Ok(true) = emf {
                    f.embed(&self.document, out);
                }
                match emf {
                    Ok(true) => Ok(Encoded::Message { truncated: false }),
                    Ok(false) => self.encode_body(f, body, out),
                    Err(e) => Err(e),
                }
            }
            (None, None) => self.encode_body(f, body, out),
        }
    }

    fn encode_body<F: Form>(&mut self, f: &mut F, body: &[u8], out: &mut Vec<u8>) -> Result<Encoded, MsgpackError> {
        let mut reader = Reader::new(body);
        self.json.write_as(f, &mut reader, out)?;
        Ok(Encoded::Message { truncated: false })
    }

    fn encode_key<F: Form>(
        &mut self,
        f: &mut F,
        body: &[u8],
        path: &RecordPath,
        out: &mut Vec<u8>,
    ) -> Result<Encoded, MsgpackError> {
        let Some(value) = path.find(body)? else {
            return Ok(Encoded::MissingKey);
        };
        let mut reader = Reader::new(value);
        match reader.peek_token()? {
            Token::Str(s) | Token::Bin(s) => embed_lossy(f, s, out),
            _ => self.json.write_as(f, &mut reader, out)?,
        }
        Ok(Encoded::Message { truncated: false })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::json::tests::unescape;
    use proptest::strategy::Strategy;

    fn msgpack(v: &serde_json::Value) -> Vec<u8> {
        rmp_serde::to_vec(v).unwrap()
    }

    /// `log_key` as the config reads it: a path when it starts with `$`, else a top-level key.
    fn log_key(k: &str) -> RecordPath {
        if k.starts_with('$') {
            RecordPath::parse_accessor(k).unwrap()
        } else {
            RecordPath::key(k)
        }
    }

    fn encode(body: &[u8], key: Option<&str>) -> (Encoded, String) {
        let mut out = Vec::new();
        let format =
            MessageFormat { log_key: key.map(log_key), truncation_marker: "[cut]".into(), ..Default::default() };
        let r = Encoder::new().encode(body, 0, &format, &mut out).unwrap();
        (r, String::from_utf8(out).unwrap())
    }

    #[test]
    fn body_is_compact_json_in_record_order() {
        let v = serde_json::json!({"z": 1, "a": [true, null, -5, 1.5, "x\n\"y\""], "m": {"k": {}}, "e": []});
        let body = msgpack(&v);
        let (r, s) = encode(&body, None);
        assert_eq!(r, Encoded::Message { truncated: false });
        assert_eq!(s, r#"{"z":1,"a":[true,null,-5,1.5,"x\n\"y\""],"m":{"k":{}},"e":[]}"#);
        // and it is valid JSON meaning the same thing
        let back: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn odd_values() {
        // {"b": bin(ff fe), "t": bin("ok"), "s": str(61 ff), 7: nan, "x": ext(5, 01 02 03)}
        let body = [
            0x85, 0xa1, b'b', 0xc4, 0x02, 0xff, 0xfe, 0xa1, b't', 0xc4, 0x02, b'o', b'k', 0xa1, b's', 0xa2, 0x61, 0xff,
            0x07, 0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0, 0xa1, b'x', 0xd6, 0x05, 1, 2, 3, 4,
        ];
        let (_, s) = encode(&body, None);
        assert_eq!(s, "{\"b\":\"//4=\",\"t\":\"ok\",\"s\":\"a\u{FFFD}\",\"7\":null,\"x\":\"AQIDBA==\"}");
    }

    #[test]
    fn log_key_exact_match_and_types() {
        let body = msgpack(&serde_json::json!({"l": "short", "log": "the line", "n": 5, "m": {"a": 1}}));
        assert_eq!(encode(&body, Some("log")).1, "the line");
        assert_eq!(encode(&body, Some("n")).1, "5");
        assert_eq!(encode(&body, Some("m")).1, r#"{"a":1}"#);
        assert_eq!(encode(&body, Some("lo")).0, Encoded::MissingKey);
        // nested paths, any value type
        let nested = msgpack(&serde_json::json!({"k": {"a": {"b": [1, true]}, "s": "x"}, "log": 1}));
        assert_eq!(encode(&nested, Some("$k['a']['b']")).1, "[1,true]");
        assert_eq!(encode(&nested, Some("$k['s']")).1, "x");
        assert_eq!(encode(&nested, Some("$k['nope']")).0, Encoded::MissingKey);
        assert_eq!(encode(&nested, Some("log")).1, "1");
        let empty = msgpack(&serde_json::json!({"log": ""}));
        assert_eq!(encode(&empty, Some("log")).0, Encoded::Empty);
        assert_eq!(encode(&msgpack(&serde_json::json!({})), None).0, Encoded::Empty);
    }

    #[test]
    fn missing_key_can_send_the_record() {
        let body = msgpack(&serde_json::json!({"other": 1}));
        let format = MessageFormat {
            log_key: Some(RecordPath::key("log")),
            missing_key: MissingKey::SendRecord,
            ..Default::default()
        };
        let mut out = Vec::new();
        assert_eq!(Encoder::new().encode(&body, 0, &format, &mut out), Ok(Encoded::Message { truncated: false }));
        assert_eq!(out, br#"{"other":1}"#);
    }

    #[test]
    fn metrics_records_become_emf_others_stay_json() {
        let format = MessageFormat {
            metrics: Some(MetricFormat {
                namespace: "ns".into(),
                dimensions: vec![vec!["host".into()]],
                fields: vec![],
            }),
            ..Default::default()
        };
        let mut out = Vec::new();
        let cpu = msgpack(&serde_json::json!({"cpu_p": 1.5, "user_p": 1, "system_p": 0.5, "host": "h1"}));
        Encoder::new().encode(&cpu, 1_700_000_000_000, &format, &mut out).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["_aws"]["Timestamp"], 1_700_000_000_000i64);
        assert_eq!(v["cpu_p"], 1.5);
        out.clear();
        Encoder::new().encode(&msgpack(&serde_json::json!({"log": "x", "n": 1})), 0, &format, &mut out).unwrap();
        assert_eq!(out, br#"{"log":"x","n":1}"#);
    }

    #[test]
    fn deep_nesting_uses_no_recursion() {
        let depth = 100_000;
        let mut body = vec![0x81, 0xa1, b'k'];
        body.extend(std::iter::repeat_n(0x91, depth));
        body.push(0x01);
        let (_, s) = encode(&body, None);
        assert_eq!(s.len(), r#"{"k":1}"#.len() + 2 * depth);
    }

    #[test]
    fn oversized_messages_are_cut_on_a_char_boundary() {
        let big = "é".repeat(MAX_MESSAGE_BYTES); // 2 bytes each
        let body = msgpack(&serde_json::json!({ "log": big }));
        let (r, s) = encode(&body, Some("log"));
        assert_eq!(r, Encoded::Message { truncated: true });
        assert!(s.len() <= MAX_MESSAGE_BYTES && s.len() >= MAX_MESSAGE_BYTES - 1);
        assert!(s.ends_with("é[cut]"));
        // exactly the maximum is sent whole
        let exact = "a".repeat(MAX_MESSAGE_BYTES);
        let (r, s) = encode(&msgpack(&serde_json::json!({ "log": exact })), Some("log"));
        assert_eq!((r, s.len()), (Encoded::Message { truncated: false }, MAX_MESSAGE_BYTES));
    }

    fn both_forms(body: &[u8], format: &MessageFormat) -> (Encoded, Vec<u8>, Vec<u8>, usize) {
        let (mut plain, mut escaped) = (Vec::new(), Vec::new());
        let a = Encoder::new().encode(body, 7, format, &mut plain).unwrap();
        let (b, len) = Encoder::new().encode_escaped(body, 7, format, &mut escaped).unwrap();
        assert_eq!(a, b);
        // read straight from a chunk: the same message, the body found, the reader after it
        let (mut from_chunk, chunk) = (b"kept".to_vec(), [body, &[0xc0]].concat());
        let mut reader = Reader::new(&chunk);
        let (encoded, found) = Encoder::new().encode_escaped_from(&mut reader, 7, format, &mut from_chunk).unwrap();
        assert_eq!((encoded.unwrap(), found, reader.remaining()), ((b, len), body, 1));
        assert_eq!(from_chunk, [&b"kept"[..], &escaped].concat());
        (a, plain, escaped, len)
    }

    #[test]
    fn the_escaped_form_stands_for_the_message_and_counts_its_length() {
        let v = serde_json::json!({"q": "a\"b\\c\n\u{1}\u{1f}é", "n": [1.5, null], "k\"": {"x": "\t"}});
        let body = msgpack(&v);
        for key in [None, Some("q"), Some("n"), Some("$['k\"']['x']")] {
            let format = MessageFormat { log_key: key.map(log_key), ..Default::default() };
            let (_, plain, escaped, len) = both_forms(&body, &format);
            assert_eq!(unescape(&escaped), plain, "{key:?}");
            assert_eq!(len, plain.len());
        }
        // a binary key, invalid UTF-8 in a raw log_key value, base64, an EMF document
        let odd = [0x82, 0xc4, 0x01, b'"', 0xa2, 0x61, 0xff, 0xa1, b'e', 0xd6, 0x05, 1, 2, 3, 4];
        let (_, plain, escaped, len) = both_forms(&odd, &MessageFormat::default());
        assert_eq!((unescape(&escaped), len), (plain.clone(), plain.len()));
        let raw = MessageFormat { log_key: Some(RecordPath::key("\"")), ..Default::default() };
        let (_, plain, escaped, len) = both_forms(&odd, &raw);
        assert_eq!((unescape(&escaped), len), (plain.clone(), plain.len()));
        let emf = MessageFormat {
            metrics: Some(MetricFormat { namespace: "n\"s".into(), dimensions: vec![], fields: vec!["m".into()] }),
            ..Default::default()
        };
        let (_, plain, escaped, len) = both_forms(&msgpack(&serde_json::json!({"m": 1, "s": "\""})), &emf);
        assert_eq!((unescape(&escaped), len), (plain.clone(), plain.len()));
    }

    #[test]
    fn the_escaped_form_is_cut_on_the_message_length() {
        // every '"' doubles when escaped: the cut must count the message, not the stored bytes
        let big = "\"é".repeat(MAX_MESSAGE_BYTES / 2);
        let body = msgpack(&serde_json::json!({ "log": big }));
        let format = MessageFormat {
            log_key: Some(RecordPath::key("log")),
            truncation_marker: "[cut]".into(),
            ..Default::default()
        };
        let (encoded, plain, escaped, len) = both_forms(&body, &format);
        assert_eq!(encoded, Encoded::Message { truncated: true });
        assert_eq!((unescape(&escaped), len), (plain.clone(), plain.len()));
        assert!((MAX_MESSAGE_BYTES - 3..=MAX_MESSAGE_BYTES).contains(&len));
        // just under the limit once unescaped, over it when stored: sent whole
        let fits = "\"".repeat(MAX_MESSAGE_BYTES);
        let (encoded, _, escaped, len) = both_forms(&msgpack(&serde_json::json!({ "log": fits })), &format);
        assert_eq!((encoded, len), (Encoded::Message { truncated: false }, MAX_MESSAGE_BYTES));
        assert_eq!(escaped.len(), 2 * MAX_MESSAGE_BYTES);
    }

    proptest::proptest! {
        #[test]
        fn escaped_and_plain_forms_agree(
            fields in proptest::collection::vec(("\\PC{0,6}", proptest::prop_oneof![
                proptest::strategy::Just(serde_json::Value::Null),
                proptest::prelude::any::<i64>().prop_map(serde_json::Value::from),
                proptest::prelude::any::<f64>().prop_map(serde_json::Value::from),
                "(\\PC|[\"\\\\\u{0}-\u{1f}]){0,30}".prop_map(serde_json::Value::from),
            ]), 0..6),
            log_key in proptest::option::of("\\PC{0,3}"),
        ) {
            let map: serde_json::Map<String, serde_json::Value> = fields.into_iter().collect();
            let body = msgpack(&serde_json::Value::Object(map));
            let format = MessageFormat { log_key: log_key.map(|k| RecordPath::key(&k)), ..Default::default() };
            let (_, plain, escaped, len) = both_forms(&body, &format);
            proptest::prop_assert_eq!(unescape(&escaped), plain.clone());
            proptest::prop_assert_eq!(len, plain.len());
        }
    }

    #[test]
    fn damaged_body_leaves_output_untouched() {
        let mut out = b"keep".to_vec();
        let r = Encoder::new().encode(&[0x82, 0xa1, b'a'], 0, &MessageFormat::default(), &mut out);
        assert!(r.is_err());
        assert_eq!(out, b"keep");
        // read from a chunk, a body cut short is damage, not a message
        let mut reader = Reader::new(&[0x82, 0xa1, b'a', 0xa1]);
        let r = Encoder::new().encode_escaped_from(&mut reader, 0, &MessageFormat::default(), &mut out);
        assert_eq!(r, Err(MsgpackError::Truncated));
        assert_eq!(out, b"keep");
    }
}
