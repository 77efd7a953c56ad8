//! A path of map keys into a record, and the walk that finds its value in a msgpack body.
//!
//! Written the way Fluent Bit's record accessor writes it (`$kubernetes['labels']['app']`), or
//! taken literally as one top-level key (`log_key log`). The walk skips whole values with the
//! msgpack reader: no recursion, no allocation, and no decoding of what is not on the path.

use std::fmt;

use crate::core::msgpack::{MsgpackError, Reader, Token};

/// A path of map keys from the record's top level, e.g. `kubernetes` → `labels` → `app`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordPath {
    /// Never empty.
    keys: Vec<String>,
}

/// What a record accessor may look like; ends every parse error.
const ACCESSOR_FORMS: &str = "use $name (A-Z a-z 0-9 _), $name['key']['key'] or $['any key']";

impl RecordPath {
    /// One top-level key, taken literally (dots and all): how `log_key log` is read.
    pub fn key(k: &str) -> RecordPath {
        RecordPath { keys: vec![k.to_owned()] }
    }

    /// Fluent Bit record-accessor form: `$log`, `$kubernetes['labels']['app']`, `$a["b"]`, and `$['odd key']`.
    /// The bare first name is [A-Za-z0-9_]+ (other characters need the bracket form). Err = a short text saying
    /// what is allowed.
    pub fn parse_accessor(s: &str) -> Result<RecordPath, String> {
        let Some(rest) = s.strip_prefix('$') else {
            return Err(format!("a record accessor starts with '$': {ACCESSOR_FORMS}"));
        };
        let (path, used) = RecordPath::parse_prefix(rest)?;
        if used < rest.len() {
            return Err(format!("unexpected text '{}' after {path}: {ACCESSOR_FORMS}", &rest[used..]));
        }
        Ok(path)
    }

    /// Parses the longest accessor at the start of `s` (which starts right after the `$`), returning the path and
    /// the bytes consumed; used by the template parser for `$a['b']-rest`.
    pub fn parse_prefix(s: &str) -> Result<(RecordPath, usize), String> {
        let name_len = s.bytes().take_while(|&b| is_name_byte(b)).count();
        let mut keys = Vec::new();
        if name_len > 0 {
            keys.push(s[..name_len].to_owned());
        } else if !s.starts_with('[') {
            return Err(format!("'$' must be followed by a key: {ACCESSOR_FORMS}"));
        }
        let used = parse_subscripts(s, name_len, &mut keys)?;
        Ok((RecordPath { keys }, used))
    }

    /// A path from keys already parsed (never empty); for the template parser's `$(name['key'])` form.
    pub(crate) fn from_keys(keys: Vec<String>) -> Option<RecordPath> {
        (!keys.is_empty()).then_some(RecordPath { keys })
    }

    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    /// The raw msgpack bytes of the value at this path in `body` (a msgpack map), `Ok(None)` when any step is
    /// missing or not a map. Exact key match (not a prefix match!); Str or Bin keys compare by bytes; if a key
    /// repeats, the first wins. Walks with skip_value, no recursion, no allocation.
    ///
    /// Only what the walk reads is checked: damage after the found value is not seen.
    pub fn find<'a>(&self, body: &'a [u8]) -> Result<Option<&'a [u8]>, MsgpackError> {
        let mut reader = Reader::new(body);
        'keys: for key in &self.keys {
            let Token::Map(entries) = reader.next_token()? else {
                return Ok(None);
            };
            for _ in 0..entries {
                let matches = match reader.peek_token()? {
                    Token::Str(k) | Token::Bin(k) => k == key.as_bytes(),
                    // numbers, nil, containers as keys never match a text key
                    _ => false,
                };
                reader.skip_value()?;
                if matches {
                    // the reader now stands on this key's value: descend into it
                    continue 'keys;
                }
                reader.skip_value()?;
            }
            return Ok(None);
        }
        reader.raw_value().map(Some)
    }
}

/// A byte of a bare accessor name.
pub(crate) fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Reads `['key']` / `["key"]` subscripts from `s[pos..]` for as long as they follow one another, pushing each
/// key; returns the position after the last one. A `[` always starts a subscript, so a malformed one is an error
/// rather than literal text.
pub(crate) fn parse_subscripts(s: &str, mut pos: usize, keys: &mut Vec<String>) -> Result<usize, String> {
    const FORM: &str = "a key in brackets is quoted: ['key'] or [\"key\"]";
    while s[pos..].starts_with('[') {
        let quote = match s.as_bytes().get(pos + 1) {
            Some(&q @ (b'\'' | b'"')) => q as char,
            Some(_) => return Err(format!("unquoted key in '{}': {FORM}", short(&s[pos..]))),
            None => return Err(format!("unterminated '[': {FORM}")),
        };
        let start = pos + 2;
        let Some(len) = s[start..].find(quote) else {
            return Err(format!("unterminated key '{}': {FORM}", short(&s[pos..])));
        };
        if len == 0 {
            return Err(format!("empty key {quote}{quote}: {FORM}"));
        }
        let end = start + len;
        if !s[end + 1..].starts_with(']') {
            return Err(format!("expected ']' after {quote}{}{quote}: {FORM}", &s[start..end]));
        }
        keys.push(s[start..end].to_owned());
        pos = end + 2;
    }
    Ok(pos)
}

/// At most 20 characters of `s`, to quote in a one-line error.
fn short(s: &str) -> &str {
    s.char_indices().nth(20).map_or(s, |(i, _)| &s[..i])
}

/// Writes a key as a subscript, choosing a quote the key does not contain.
fn write_subscript(f: &mut fmt::Formatter<'_>, key: &str) -> fmt::Result {
    let q = if key.contains('\'') { '"' } else { '\'' };
    write!(f, "[{q}{key}{q}]")
}

impl fmt::Display for RecordPath {
    /// Back to the accessor form, `$a['b']`; a first key that is not a bare name is written `$['odd key']`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("$")?;
        for (i, key) in self.keys.iter().enumerate() {
            if i == 0 && !key.is_empty() && key.bytes().all(is_name_byte) {
                f.write_str(key)?;
            } else {
                write_subscript(f, key)?;
            }
        }
        Ok(())
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

    fn path(s: &str) -> RecordPath {
        RecordPath::parse_accessor(s).unwrap()
    }

    /// The value at `p` in `body`, decoded back to JSON.
    fn found(p: &RecordPath, body: &[u8]) -> Option<Value> {
        p.find(body).unwrap().map(|raw| rmp_serde::from_slice(raw).unwrap())
    }

    #[test]
    fn parses_every_accessor_form() {
        assert_eq!(path("$log").keys(), ["log"]);
        assert_eq!(path("$kubernetes['labels']['app']").keys(), ["kubernetes", "labels", "app"]);
        assert_eq!(path("$a[\"b\"]").keys(), ["a", "b"]);
        assert_eq!(path("$['odd key']").keys(), ["odd key"]);
        assert_eq!(path("$a[\"it's\"]").keys(), ["a", "it's"]);
        assert_eq!(path("$a['x.y]z']").keys(), ["a", "x.y]z"]);
    }

    #[test]
    fn parse_errors_say_what_is_allowed() {
        for bad in ["", "log", "$", "$a[", "$a['b'", "$a['b]", "$a[b]", "$a['']", "$['']", "$a-b", "$a['b']x", "$-"] {
            let err = RecordPath::parse_accessor(bad).expect_err(bad);
            assert!(err.contains("'key'") || err.contains("$name"), "{bad}: {err}");
            assert!(!err.contains('\n'));
        }
    }

    #[test]
    fn prefix_stops_at_the_first_byte_that_is_not_part_of_it() {
        let (p, used) = RecordPath::parse_prefix("a['b']-rest").unwrap();
        assert_eq!((p.keys(), used), (&["a".to_owned(), "b".to_owned()][..], 6));
        let (p, used) = RecordPath::parse_prefix("pod_name.x").unwrap();
        assert_eq!((p.keys(), used), (&["pod_name".to_owned()][..], 8));
        assert!(RecordPath::parse_prefix("a[0]").is_err());
    }

    #[test]
    fn display_round_trips() {
        for s in ["$log", "$kubernetes['labels']['app']", "$['odd key']", "$a[\"it's\"]"] {
            assert_eq!(path(s).to_string(), s);
            assert_eq!(path(&path(s).to_string()), path(s));
        }
        assert_eq!(RecordPath::key("a.b").to_string(), "$['a.b']");
        assert_eq!(path("$a[\"b\"]").to_string(), "$a['b']");
    }

    #[test]
    fn exact_match_not_prefix() {
        let body = msgpack(&json!({"l": 1, "log": "line", "logs": 2}));
        assert_eq!(found(&RecordPath::key("log"), &body), Some(json!("line")));
        assert_eq!(found(&RecordPath::key("lo"), &body), None);
        let only_long = msgpack(&json!({"log": "line"}));
        assert_eq!(found(&RecordPath::key("l"), &only_long), None);
        // a literal key keeps its dots
        let dotted = msgpack(&json!({"a": {"b": 1}, "a.b": 2}));
        assert_eq!(found(&RecordPath::key("a.b"), &dotted), Some(json!(2)));
        assert_eq!(found(&path("$a['b']"), &dotted), Some(json!(1)));
    }

    #[test]
    fn nested_missing_and_non_map_steps() {
        let body = msgpack(&json!({
            "kubernetes": {"pod": "p", "labels": {"app": "web", "tier": {"x": 1}}},
            "arr": [{"a": 1}],
            "s": "text",
        }));
        assert_eq!(found(&path("$kubernetes['labels']['app']"), &body), Some(json!("web")));
        assert_eq!(found(&path("$kubernetes['labels']['tier']"), &body), Some(json!({"x": 1})));
        assert_eq!(found(&path("$kubernetes['nope']['app']"), &body), None);
        assert_eq!(found(&path("$kubernetes['pod']['x']"), &body), None);
        assert_eq!(found(&path("$arr['a']"), &body), None);
        assert_eq!(found(&path("$s['a']"), &body), None);
        // a body that is not a map has no keys
        assert_eq!(found(&path("$a"), &msgpack(&json!([1, 2]))), None);
    }

    #[test]
    fn first_of_repeated_keys_and_odd_key_types() {
        // {1: "int key", "a": "first", [..]: 0, "a": "second", bin("b"): "bin key"}
        let body = [
            0x85, 0x01, 0xa7, b'i', b'n', b't', b' ', b'k', b'e', b'y', 0xa1, b'a', 0xa5, b'f', b'i', b'r', b's', b't',
            0x91, 0x80, 0x00, 0xa1, b'a', 0xa6, b's', b'e', b'c', b'o', b'n', b'd', 0xc4, 0x01, b'b', 0xa3, b'b', b'i',
            b'n',
        ];
        assert_eq!(found(&path("$a"), &body), Some(json!("first")));
        assert_eq!(found(&path("$b"), &body), Some(json!("bin")));
        assert_eq!(found(&path("$['1']"), &body), None);
    }

    #[test]
    fn damaged_msgpack_is_an_error() {
        let body = msgpack(&json!({"a": "x", "b": {"c": 1}}));
        for cut in 0..body.len() {
            let r = path("$b['c']").find(&body[..cut]);
            assert!(r.is_err(), "cut at {cut}: {r:?}");
        }
        assert_eq!(path("$a").find(&[0x81, 0xc1, 0x01]), Err(MsgpackError::ReservedByte));
        // a map header claiming more entries than there are bytes
        assert_eq!(path("$a").find(&[0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, b'b', 0x01]), Err(MsgpackError::Truncated));
    }

    #[test]
    fn deep_values_are_skipped_without_recursion() {
        let depth = 100_000;
        let mut body = vec![0x82, 0xa1, b'd'];
        body.extend(std::iter::repeat_n(0x91, depth));
        body.push(0x01);
        body.extend([0xa1, b'k', 0x07]);
        assert_eq!(found(&path("$k"), &body), Some(json!(7)));
    }

    /// Keys from a small alphabet, so random paths often hit and often nearly hit (`a` vs `ab`).
    fn key() -> impl Strategy<Value = String> {
        "[ab]{0,2}"
    }

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            (-1e9f64..1e9).prop_map(Value::from),
            ".{0,4}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 40, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
                prop::collection::vec((key(), inner), 0..5)
                    .prop_map(|entries| Value::Object(entries.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn find_agrees_with_json_navigation(
            entries in prop::collection::vec((key(), value()), 0..6),
            keys in prop::collection::vec(key(), 1..4),
        ) {
            let record = Value::Object(entries.into_iter().collect());
            let body = msgpack(&record);
            let mut expected = Some(&record);
            for k in &keys {
                expected = expected.and_then(|v| v.as_object()).and_then(|m| m.get(k));
            }
            let p = RecordPath::from_keys(keys).unwrap();
            prop_assert_eq!(found(&p, &body), expected.cloned());
        }
    }
}
