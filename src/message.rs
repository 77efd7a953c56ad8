//! A record body → the CloudWatch message bytes, in one pass from msgpack.
//!
//! Without `log_key` the message is the body as compact JSON, keys in record order. With
//! `log_key` it is the value at that key or path: a string as is, anything else as JSON. With
//! `metric_namespace`, records with numeric fields become Embedded Metric Format documents.
//! Text rules: invalid UTF-8 is replaced by U+FFFD; binary values are text when they are valid
//! UTF-8, else base64; ext values are the base64 of their payload; NaN and ±Inf are `null`;
//! a map key that is itself a map or array becomes the string `"(map)"` / `"(array)"`.
//! Nesting is walked with an explicit stack, never with recursion.

use crate::emf::{encode_emf, MetricFormat};
use crate::msgpack::{MsgpackError, Reader, Token};
use crate::record_path::RecordPath;
use std::io::Write as _;

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
    /// Records with numeric fields become Embedded Metric Format documents.
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

/// Reusable scratch space, so encoding allocates nothing once warmed up.
#[derive(Debug, Default)]
pub struct Encoder {
    stack: Vec<Frame>,
}

#[derive(Debug, Clone, Copy)]
struct Frame {
    /// Items (array) or entries (map) still to finish.
    remaining: u64,
    is_map: bool,
    /// Map only: the key of the current entry has been written.
    in_value: bool,
}

impl Encoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends the message for `body` (a raw msgpack map) to `out`. On error `out` is left as
    /// it was.
    /// `timestamp_ms` is the record's time (EMF documents carry it).
    pub fn encode(
        &mut self,
        body: &[u8],
        timestamp_ms: i64,
        format: &MessageFormat,
        out: &mut Vec<u8>,
    ) -> Result<Encoded, MsgpackError> {
        let start = out.len();
        let result = match (&format.log_key, &format.metrics) {
            (Some(path), _) => match self.encode_key(body, path, out) {
                Ok(Encoded::MissingKey) if format.missing_key == MissingKey::SendRecord => self.encode_body(body, out),
                other => other,
            },
            (None, Some(metrics)) => match encode_emf(self, body, timestamp_ms, metrics, out) {
                Ok(true) => Ok(Encoded::Message { truncated: false }),
                Ok(false) => self.encode_body(body, out),
                Err(e) => Err(e),
            },
            (None, None) => self.encode_body(body, out),
        };
        match result {
            Ok(Encoded::Message { .. }) => {
                if out.len() == start || out[start..] == *b"{}" {
                    out.truncate(start);
                    return Ok(Encoded::Empty);
                }
                let marker = format.truncation_marker.as_bytes();
                let truncated = out.len() - start > MAX_MESSAGE_BYTES;
                if truncated {
                    truncate_utf8(out, start, MAX_MESSAGE_BYTES - marker.len());
                    out.extend_from_slice(marker);
                }
                Ok(Encoded::Message { truncated })
            }
            Ok(other) => {
                out.truncate(start);
                Ok(other)
            }
            Err(e) => {
                out.truncate(start);
                Err(e)
            }
        }
    }

    fn encode_body(&mut self, body: &[u8], out: &mut Vec<u8>) -> Result<Encoded, MsgpackError> {
        let mut reader = Reader::new(body);
        self.write_json(&mut reader, out)?;
        Ok(Encoded::Message { truncated: false })
    }

    fn encode_key(&mut self, body: &[u8], path: &RecordPath, out: &mut Vec<u8>) -> Result<Encoded, MsgpackError> {
        let Some(value) = path.find(body)? else {
            return Ok(Encoded::MissingKey);
        };
        let mut reader = Reader::new(value);
        match reader.peek_token()? {
            Token::Str(s) | Token::Bin(s) => push_lossy(s, out),
            _ => self.write_json(&mut reader, out)?,
        }
        Ok(Encoded::Message { truncated: false })
    }

    /// Transcodes one msgpack object to compact JSON.
    pub(crate) fn write_json(&mut self, reader: &mut Reader<'_>, out: &mut Vec<u8>) -> Result<(), MsgpackError> {
        let stack = &mut self.stack;
        stack.clear();
        loop {
            let token = reader.next_token()?;
            if let Some(top) = stack.last_mut() {
                if top.is_map && !top.in_value {
                    write_key(reader, token, out)?;
                    out.push(b':');
                    top.in_value = true;
                    continue;
                }
            }
            match token {
                Token::Array(n) if n > 0 => {
                    out.push(b'[');
                    stack.push(Frame { remaining: n as u64, is_map: false, in_value: false });
                    continue;
                }
                Token::Map(n) if n > 0 => {
                    out.push(b'{');
                    stack.push(Frame { remaining: n as u64, is_map: true, in_value: false });
                    continue;
                }
                scalar => write_scalar(scalar, out),
            }
            // A value is complete: close every container it completes.
            loop {
                let Some(top) = stack.last_mut() else {
                    return Ok(());
                };
                top.remaining -= 1;
                top.in_value = false;
                if top.remaining > 0 {
                    out.push(b',');
                    break;
                }
                out.push(if top.is_map { b'}' } else { b']' });
                stack.pop();
            }
        }
    }
}

fn skip_contents(reader: &mut Reader<'_>, header: Token<'_>) -> Result<(), MsgpackError> {
    let items = match header {
        Token::Array(n) => n as u64,
        Token::Map(n) => 2 * n as u64,
        _ => 0,
    };
    for _ in 0..items {
        reader.skip_value()?;
    }
    Ok(())
}

fn write_key(reader: &mut Reader<'_>, token: Token<'_>, out: &mut Vec<u8>) -> Result<(), MsgpackError> {
    match token {
        Token::Str(s) => push_json_string(s, out),
        Token::Bin(b) => push_binary(b, out),
        Token::Array(_) => {
            skip_contents(reader, token)?;
            out.extend_from_slice(b"\"(array)\"");
        }
        Token::Map(_) => {
            skip_contents(reader, token)?;
            out.extend_from_slice(b"\"(map)\"");
        }
        Token::Ext(_, data) => push_base64_string(data, out),
        scalar => {
            // numbers, booleans, nil: their JSON text, quoted
            out.push(b'"');
            write_scalar(scalar, out);
            out.push(b'"');
        }
    }
    Ok(())
}

pub(crate) fn write_scalar(token: Token<'_>, out: &mut Vec<u8>) {
    match token {
        Token::Nil => out.extend_from_slice(b"null"),
        Token::Bool(true) => out.extend_from_slice(b"true"),
        Token::Bool(false) => out.extend_from_slice(b"false"),
        Token::UInt(n) => push_u64(n, out),
        Token::Int(n) => {
            if n < 0 {
                out.push(b'-');
            }
            push_u64(n.unsigned_abs(), out)
        }
        Token::F32(f) => push_float(f as f64, f.is_finite(), |out| write!(out, "{f}"), out),
        Token::F64(f) => push_float(f, f.is_finite(), |out| write!(out, "{f}"), out),
        Token::Str(s) => push_json_string(s, out),
        Token::Bin(b) => push_binary(b, out),
        Token::Ext(_, data) => push_base64_string(data, out),
        // empty containers (non-empty ones are opened by the caller)
        Token::Array(_) => out.extend_from_slice(b"[]"),
        Token::Map(_) => out.extend_from_slice(b"{}"),
    }
}

/// `text` writes the shortest round-trip form straight into `out` (no String per value).
fn push_float(f: f64, finite: bool, text: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>, out: &mut Vec<u8>) {
    if !finite {
        out.extend_from_slice(b"null");
    } else if f == f.trunc() && f.abs() < 1e15 {
        // integral floats: exact and cheap, without the formatter
        if f < 0.0 || (f == 0.0 && f.is_sign_negative()) {
            out.push(b'-');
        }
        push_u64(f.abs() as u64, out);
        out.extend_from_slice(b".0");
    } else {
        let _ = text(out); // writing into a Vec cannot fail
    }
}

/// An integer's decimal text, without the formatter (and without allocating).
pub fn push_i64(n: i64, out: &mut Vec<u8>) {
    if n < 0 {
        out.push(b'-');
    }
    push_u64(n.unsigned_abs(), out);
}

fn push_u64(mut n: u64, out: &mut Vec<u8>) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

fn push_binary(b: &[u8], out: &mut Vec<u8>) {
    if std::str::from_utf8(b).is_ok() {
        push_escaped_quoted(b, out);
    } else {
        push_base64_string(b, out);
    }
}

/// A msgpack string as a JSON string, invalid UTF-8 replaced by U+FFFD.
pub(crate) fn push_json_string(s: &[u8], out: &mut Vec<u8>) {
    if std::str::from_utf8(s).is_ok() {
        push_escaped_quoted(s, out);
        return;
    }
    out.push(b'"');
    for chunk in s.utf8_chunks() {
        push_escaped(chunk.valid().as_bytes(), out);
        if !chunk.invalid().is_empty() {
            out.extend_from_slice("\u{FFFD}".as_bytes());
        }
    }
    out.push(b'"');
}

/// A raw string value (the `log_key` case): bytes as they are, invalid UTF-8 replaced.
fn push_lossy(s: &[u8], out: &mut Vec<u8>) {
    if std::str::from_utf8(s).is_ok() {
        out.extend_from_slice(s);
        return;
    }
    for chunk in s.utf8_chunks() {
        out.extend_from_slice(chunk.valid().as_bytes());
        if !chunk.invalid().is_empty() {
            out.extend_from_slice("\u{FFFD}".as_bytes());
        }
    }
}

/// `s` (valid UTF-8) as a quoted JSON string.
pub fn push_escaped_quoted(s: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    push_escaped(s, out);
    out.push(b'"');
}

/// JSON-escapes valid UTF-8, copying unescaped runs whole.
fn push_escaped(s: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut run = 0;
    for (i, &b) in s.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&s[run..i]);
        run = i + 1;
        if escape.is_empty() {
            out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
        } else {
            out.extend_from_slice(escape);
        }
    }
    out.extend_from_slice(&s[run..]);
}

fn push_base64_string(data: &[u8], out: &mut Vec<u8>) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    out.push(b'"');
    for group in data.chunks(3) {
        let b = [group[0], *group.get(1).unwrap_or(&0), *group.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        let symbols = [(n >> 18) & 63, (n >> 12) & 63, (n >> 6) & 63, n & 63];
        for (i, s) in symbols.iter().enumerate() {
            out.push(if i <= group.len() { ALPHABET[*s as usize] } else { b'=' });
        }
    }
    out.push(b'"');
}

/// Cuts the message that starts at `start` to at most `max` bytes on a UTF-8 boundary.
/// Returns whether anything was cut.
pub fn truncate_utf8(out: &mut Vec<u8>, start: usize, max: usize) -> bool {
    if out.len() - start <= max {
        return false;
    }
    let mut cut = start + max;
    // step back over continuation bytes (10xxxxxx) to the start of a character
    while cut > start && (out[cut] & 0xC0) == 0x80 {
        cut -= 1;
    }
    out.truncate(cut);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgpack(v: &serde_json::Value) -> Vec<u8> {
        rmp_serde::to_vec(v).unwrap()
    }

    fn encode(body: &[u8], log_key: Option<&str>) -> (Encoded, String) {
        let mut out = Vec::new();
        let format = MessageFormat {
            log_key: log_key.map(|k| {
                if k.starts_with('$') {
                    RecordPath::parse_accessor(k).unwrap()
                } else {
                    RecordPath::key(k)
                }
            }),
            truncation_marker: "[cut]".into(),
            ..Default::default()
        };
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
            metrics: Some(MetricFormat { namespace: "ns".into(), dimensions: vec![vec!["host".into()]] }),
            ..Default::default()
        };
        let mut out = Vec::new();
        let cpu = msgpack(&serde_json::json!({"cpu_p": 1.5, "host": "h1"}));
        Encoder::new().encode(&cpu, 1_700_000_000_000, &format, &mut out).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["_aws"]["Timestamp"], 1_700_000_000_000i64);
        assert_eq!(v["cpu_p"], 1.5);
        out.clear();
        Encoder::new().encode(&msgpack(&serde_json::json!({"log": "x"})), 0, &format, &mut out).unwrap();
        assert_eq!(out, br#"{"log":"x"}"#);
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

    #[test]
    fn damaged_body_leaves_output_untouched() {
        let mut out = b"keep".to_vec();
        let r = Encoder::new().encode(&[0x82, 0xa1, b'a'], 0, &MessageFormat::default(), &mut out);
        assert!(r.is_err());
        assert_eq!(out, b"keep");
    }
}
