//! Fluent Bit's record accessor as the C plugin's `log_group_template` / `log_stream_template`
//! read it (`flb_record_accessor.c`, the `ra_parser` lexer and grammar, `flb_ra_key.c`), so a
//! template means here what it meant there, quirks included:
//!
//! - A variable runs from `$` to the next `.`, ` `, `,` or `"` (a `.` inside quotes excepted),
//!   so `$key-dash` and `$app/logs` are keys, and `$a-$b` is one variable (a syntax error).
//! - Inside it: `$` + a key of `[_A-Za-z][A-Za-z0-9_.-/]*`, then `['sub']` (single quotes,
//!   `''` for a quote) or `[n]` subscripts. Other characters are skipped, as Fluent Bit's lexer
//!   skips them (it logs them and starts).
//! - `$TAG` is the tag, `$TAG[n]` its n-th `.`-part (empty when out of range); the character
//!   right after either is never a variable. `$0`…`$9` are regex captures, which have no value
//!   in an output (a template starting with one never resolves).
//! - Values: the last of repeated keys; a scalar ignores its subscripts; strings as they are,
//!   binary as hex, integers as `%ld`, floats as C's `%f`, `true`/`false`, `null`; an array, a
//!   missing key or a wrong step has no value (the C plugin then falls back to the static name).
//!
//! Differences, where CloudWatch would refuse the C plugin's name, are the caller's (`template`):
//! a map value falls back instead of becoming JSON, and names are sanitised.

use std::fmt;
use std::ops::Range;

use crate::core::msgpack::{Reader, Token};

/// One piece of a template, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece<G> {
    /// A range of the template's text.
    Literal(Range<usize>),
    /// A record-accessor variable and its text's range.
    Accessor(Variable, Range<usize>),
    /// A `$(` variable, parsed by the caller's own parser.
    Other(G, Range<usize>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Variable {
    Tag,
    /// The index as C's `atoi` reads it: a negative one never matches.
    TagPart(i32),
    /// `$0`…`$9`: no regex ran, so no value. `first`: it opens the template, and Fluent Bit's
    /// translation then fails as a whole.
    Capture {
        first: bool,
    },
    Key(Accessor),
}

/// `$key['sub'][0]…`: a top-level key and the steps below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Accessor {
    root: String,
    steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    /// `None`: an index no array has (negative, or `INT_MAX`, after C's conversion).
    Index(Option<u32>),
}

/// A value found by an accessor, before it is written as text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Value<'a> {
    Str(&'a [u8]),
    Bin(&'a [u8]),
    Int(i64),
    Float(f64),
    Bool(bool),
    Null,
}

/// What a variable may look like, for error texts.
const FORMS: &str =
    "use $key, $key['sub'], $key[0], $TAG or $TAG[n]; a variable runs up to the next '.', ' ', ',' or '\"'";

/// What `split` read: the pieces, and one line for each place read leniently, as Fluent Bit
/// reads it (skipped characters, dropped text, a capture that never has a value).
pub(crate) type Split<G> = (Vec<Piece<G>>, Vec<String>);

/// Splits `text` as Fluent Bit's `ra_parse_buffer` does, handing each `$(` to `other`, which
/// returns its variable and the position after it. Err: one line naming the variable.
///
/// A variable also ends at any of `ends` (outside quotes; empty for names, as in Fluent Bit):
/// a role ARN's `:`, which names never hold, so `$acct:role/x` reads as a variable and text.
pub(crate) fn split<G>(
    text: &str,
    ends: &[u8],
    mut other: impl FnMut(usize) -> Result<(G, usize), String>,
) -> Result<Split<G>, String> {
    let buf = text.as_bytes();
    let len = buf.len();
    let mut pieces = Vec::new();
    let mut notes = Vec::new();
    // The loop mirrors the C one, its `i`, `pre` and `end` included: which trailing text survives
    // depends on them (`$a.` drops the `.`, `ab$` the `$`, `x$` keeps it).
    let (mut i, mut pre, mut end) = (0usize, 0usize, 0isize);
    while i < len {
        if buf[i] != b'$' {
            i += 1;
            continue;
        }
        if i > pre {
            pieces.push(Piece::Literal(pre..i));
        }
        pre = i;
        let n = i + 1;
        if n >= len {
            if i != 1 {
                notes.push(format!("the '$' at byte {i} ends the template and is dropped, as in Fluent Bit"));
            }
            break;
        }
        if buf[n] == b'(' {
            let (var, after) = other(i)?;
            pieces.push(Piece::Other(var, i..after));
            (pre, i) = (after, after);
            continue;
        }
        if buf[n].is_ascii_digit() {
            notes.push(format!(
                "'{}' at byte {i} is a regex capture, which has no value in an output{}",
                &text[i..n + 1],
                if pieces.is_empty() { ": as in Fluent Bit, the template never resolves" } else { "" }
            ));
            pieces.push(Piece::Accessor(Variable::Capture { first: pieces.is_empty() }, i..n + 1));
            (pre, i) = (n + 1, n + 1);
            continue;
        }
        if n + 2 < len && &buf[n..n + 3] == b"TAG" {
            if n + 4 < len {
                end = -1;
                if buf[n + 3] == b'[' {
                    let t = n + 3;
                    let close = buf[t..].iter().position(|&b| b == b']');
                    let after = close.map_or(t, |c| t + c + 1);
                    end = close.map_or(-1, |c| c as isize);
                    pieces.push(Piece::Accessor(Variable::TagPart(c_atoi(&buf[t + 1..])), i..after));
                    // the character after the variable is skipped by the C loop's `i++`
                    (pre, i) = (after, after + 1);
                    continue;
                }
            }
            pieces.push(Piece::Accessor(Variable::Tag, i..n + 3));
            (pre, i) = (n + 3, n + 4);
            continue;
        }
        let mut stop = i + 1;
        let mut quotes = 0u32;
        while stop < len {
            match buf[stop] {
                b'\'' => quotes += 1,
                b'.' if quotes % 2 == 1 => {}
                b'.' | b' ' | b',' | b'"' => break,
                b if quotes.is_multiple_of(2) && ends.contains(&b) => break,
                _ => {}
            }
            stop += 1;
        }
        let meta = &text[i..stop];
        let (accessor, skipped) = parse_accessor(meta).map_err(|why| {
            let hint = if meta[1..].contains('$') {
                " ('-', '/' and '$' do not end a variable, as in Fluent Bit)"
            } else {
                ""
            };
            format!("variable '{}' at byte {i}: {why}{hint}: {FORMS}", short(meta))
        })?;
        if !skipped.is_empty() {
            notes.push(format!("in '{}' at byte {i}, {skipped:?} skipped, as Fluent Bit skips them", short(meta)));
        }
        pieces.push(Piece::Accessor(Variable::Key(accessor), i..stop));
        end = stop as isize;
        (pre, i) = (stop, stop + 1);
    }
    if ((i as isize - 1 > end && pre < i) || i == 1) && pre < len {
        pieces.push(Piece::Literal(pre..len));
    } else if pre < len && i < len + 1 && buf[pre] != b'$' {
        notes.push(format!("'{}' after the last variable is dropped, as in Fluent Bit", &text[pre..len]));
    }
    Ok((pieces, notes))
}

/// At most 40 characters of `s`, to quote in a one-line error.
fn short(s: &str) -> &str {
    s.char_indices().nth(40).map_or(s, |(i, _)| &s[..i])
}

/// C's `atoi` on x86-64 Linux: leading space, a sign, digits; `strtol`'s clamp to the `long`
/// range, then the `int` conversion keeps the low 32 bits.
fn c_atoi(s: &[u8]) -> i32 {
    let mut pos = s.iter().take_while(|&&b| matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')).count();
    let negative = s.get(pos) == Some(&b'-');
    if matches!(s.get(pos), Some(b'-' | b'+')) {
        pos += 1;
    }
    let mut value: i64 = 0;
    for &b in s[pos..].iter().take_while(|b| b.is_ascii_digit()) {
        let digit = i64::from(b - b'0');
        value = if negative {
            value.saturating_mul(10).saturating_sub(digit)
        } else {
            value.saturating_mul(10).saturating_add(digit)
        };
    }
    value as i32
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Lexeme {
    Dollar,
    Open,
    Close,
    /// `.`, `,` or `;`: tokens the grammar never accepts.
    Punct,
    Integer(i32),
    Str(String),
    Ident(String),
}

/// The `ra.l` lexer: longest match, whitespace ignored, any other character skipped (returned
/// second).
fn lex(s: &str) -> (Vec<Lexeme>, String) {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut skipped = String::new();
    let mut pos = 0;
    while pos < b.len() {
        let c = b[pos];
        let start = pos;
        pos += 1;
        match c {
            b'0' => out.push(Lexeme::Integer(0)),
            b'1'..=b'9' => {
                while pos < b.len() && b[pos].is_ascii_digit() {
                    pos += 1;
                }
                out.push(Lexeme::Integer(c_atoi(&b[start..pos])));
            }
            // a lone quote is a bad character
            b'\'' => match quoted_end(b, start) {
                Some(close) => {
                    out.push(Lexeme::Str(s[start + 1..close].replace("''", "'")));
                    pos = close + 1;
                }
                None => skipped.push('\''),
            },
            b'_' | b'A'..=b'Z' | b'a'..=b'z' => {
                while pos < b.len() && (b[pos].is_ascii_alphanumeric() || matches!(b[pos], b'_' | b'.' | b'-' | b'/')) {
                    pos += 1;
                }
                out.push(Lexeme::Ident(s[start..pos].to_owned()));
            }
            b'$' => out.push(Lexeme::Dollar),
            b'[' => out.push(Lexeme::Open),
            b']' => out.push(Lexeme::Close),
            b'.' | b',' | b';' => out.push(Lexeme::Punct),
            b' ' | b'\t' | b'\n' => {}
            _ => {
                // byte by byte, as the lexer reads them; whole characters for the note
                if s.is_char_boundary(start) {
                    skipped.extend(s[start..].chars().next());
                }
            }
        }
    }
    (out, skipped)
}

/// The closing quote of the longest `'([^']|'')*'` starting at `b[start]` (a quote): pairs of
/// quotes are escaped quotes for as long as they can be, so the match closes at the first lone
/// quote, or, at the end of the text, at the first quote of the last pair.
fn quoted_end(b: &[u8], start: usize) -> Option<usize> {
    let mut pos = start + 1;
    let mut last_pair = None;
    while pos < b.len() {
        if b[pos] == b'\'' {
            if b.get(pos + 1) != Some(&b'\'') {
                return Some(pos);
            }
            last_pair = Some(pos);
            pos += 2;
            continue;
        }
        pos += 1;
    }
    last_pair
}

/// The `ra.y` grammar: `'$' IDENTIFIER ( '[' STRING ']' | '[' INTEGER ']' )*`.
fn parse_accessor(meta: &str) -> Result<(Accessor, String), &'static str> {
    let (tokens, skipped) = lex(meta);
    let mut tokens = tokens.into_iter();
    if tokens.next() != Some(Lexeme::Dollar) {
        return Err("not a key");
    }
    let Some(Lexeme::Ident(root)) = tokens.next() else {
        return Err("a key starts with a letter or '_'");
    };
    let mut steps = Vec::new();
    while let Some(token) = tokens.next() {
        if token != Lexeme::Open {
            return Err("unexpected text after the key");
        }
        let step = match tokens.next() {
            Some(Lexeme::Str(key)) => Step::Key(key),
            Some(Lexeme::Integer(id)) => Step::Index(u32::try_from(id).ok().filter(|&id| id != i32::MAX as u32)),
            _ => return Err("a subscript is a quoted key or an index"),
        };
        if tokens.next() != Some(Lexeme::Close) {
            return Err("a subscript ends with ']'");
        }
        steps.push(step);
    }
    Ok((Accessor { root, steps }, skipped))
}

impl Accessor {
    /// The value in `body` (a msgpack map) as `flb_ra_key_to_value_ext` finds it; `None` where
    /// it finds none, and for damaged msgpack. Walks with the reader: no allocation.
    pub(crate) fn value<'a>(&self, body: &'a [u8]) -> Option<Value<'a>> {
        let mut reader = Reader::new(body);
        let top = last_entry(&mut reader, &self.root)?;
        reader.seek(top);
        let mut token = reader.peek_token().ok()?;
        if matches!(token, Token::Map(_) | Token::Array(_)) && !self.steps.is_empty() {
            for step in &self.steps {
                let at = match (step, token) {
                    (Step::Index(Some(id)), Token::Array(n)) if *id < n => {
                        reader.next_token().ok()?;
                        for _ in 0..*id {
                            reader.skip_value().ok()?;
                        }
                        reader.position()
                    }
                    (Step::Key(key), Token::Map(_)) => last_entry(&mut reader, key)?,
                    _ => return None,
                };
                reader.seek(at);
                token = reader.peek_token().ok()?;
            }
        }
        // a scalar ignores the subscripts after it, as in Fluent Bit
        Some(match token {
            Token::Str(s) => Value::Str(s),
            Token::Bin(b) => Value::Bin(b),
            // msgpack-c reads every integer through `via.i64`
            Token::UInt(n) => Value::Int(n as i64),
            Token::Int(n) => Value::Int(n),
            Token::F32(f) => Value::Float(f64::from(f)),
            Token::F64(f) => Value::Float(f),
            Token::Bool(b) => Value::Bool(b),
            Token::Nil => Value::Null,
            // a map is JSON text in Fluent Bit, refused by CloudWatch as a name: the caller falls back
            Token::Map(_) | Token::Array(_) | Token::Ext(..) => return None,
        })
    }
}

/// The position of the value of the last entry keyed (as a string) `key` in the map at the
/// reader, which is left after the map.
fn last_entry(reader: &mut Reader<'_>, key: &str) -> Option<usize> {
    let Ok(Token::Map(entries)) = reader.next_token() else {
        return None;
    };
    let mut found = None;
    for _ in 0..entries {
        let matches = matches!(reader.next_token().ok()?, Token::Str(k) if k == key.as_bytes());
        if matches {
            found = Some(reader.position());
        }
        reader.skip_value().ok()?;
    }
    found
}

/// The `n`-th `.`-separated part of the tag, empty when there is none.
pub(crate) fn tag_part(tag: &str, n: i32) -> &str {
    usize::try_from(n).ok().and_then(|n| tag.split('.').nth(n)).unwrap_or("")
}

/// C's `%f` into a 32-byte buffer: six decimals, `nan`/`-nan`/`inf`, at most 30 characters.
pub(crate) fn write_c_float(f: f64, out: &mut impl fmt::Write) -> fmt::Result {
    if f.is_nan() {
        return out.write_str(if f.is_sign_negative() { "-nan" } else { "nan" });
    }
    let mut capped = Capped { out, left: 30 };
    fmt::write(&mut capped, format_args!("{f:.6}"))
}

/// Writes at most `left` bytes (the text is ASCII), dropping the rest.
struct Capped<'o, W> {
    out: &'o mut W,
    left: usize,
}

impl<W: fmt::Write> fmt::Write for Capped<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let take = s.len().min(self.left);
        self.left -= take;
        self.out.write_str(&s[..take])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atoi_like_c() {
        assert_eq!(c_atoi(b"12]"), 12);
        assert_eq!(c_atoi(b" -3"), -3);
        assert_eq!(c_atoi(b"x]"), 0);
        assert_eq!(c_atoi(b"+7"), 7);
        // strtol clamps to LONG_MAX, the int conversion keeps 0xffffffff
        assert_eq!(c_atoi(b"99999999999999999999999"), -1);
        assert_eq!(c_atoi(b"4294967296"), 0);
    }

    #[test]
    fn lexer_like_ra_l() {
        use Lexeme::*;
        let lex = |s| lex(s).0;
        assert_eq!(lex("$key-dash"), [Dollar, Ident("key-dash".into())]);
        assert_eq!(
            lex("$a['it''s'][07]"),
            [Dollar, Ident("a".into()), Open, Str("it's".into()), Close, Open, Integer(0), Integer(7), Close]
        );
        assert_eq!(lex("$é:x"), [Dollar, Ident("x".into())]);
        assert_eq!(lex("$a[''][']"), [Dollar, Ident("a".into()), Open, Str(String::new()), Close, Open, Close]);
        assert_eq!(lex("'a''b' 'c'"), [Str("a'b".into()), Str("c".into())]);
    }

    #[test]
    fn floats_like_printf() {
        let f = |x: f64| {
            let mut s = String::new();
            write_c_float(x, &mut s).unwrap();
            s
        };
        assert_eq!(f(1.5), "1.500000");
        assert_eq!(f(0.123456789), "0.123457");
        assert_eq!(f(0.125), "0.125000");
        assert_eq!(f(2.0), "2.000000");
        assert_eq!(f(-0.0), "-0.000000");
        assert_eq!(f(f64::INFINITY), "inf");
        assert_eq!(f(f64::NEG_INFINITY), "-inf");
        assert_eq!(f(f64::NAN), "nan");
        assert_eq!(f(-f64::NAN), "-nan");
        assert_eq!(f(1e22), "10000000000000000000000.000000");
        // snprintf into 31 bytes keeps 30 characters
        assert_eq!(f(1e23), "99999999999999991611392.000000");
        assert_eq!(f(1e24), "999999999999999983222784.00000");
        assert_eq!(f(1e300).len(), 30);
    }

    // ---- Fluent Bit's vectors, through the whole template (`tests/internal/record_accessor.c`,
    // ---- and what the C plugin's `get_log_stream` in `cloudwatch_api.c` does with the result).

    use crate::core::names::NameKind;
    use crate::core::template::{Template, Unresolved, Vars};
    use serde_json::{json, Value as Json};

    /// The stream name `template` gives for `body` under `tag`; Err = the unresolved variable (the
    /// C plugin's `flb_ra_translate_check` returning NULL: the static name is used).
    fn render_tagged(template: &str, tag: &str, body: &[u8]) -> Result<String, String> {
        let t = Template::parse(template, NameKind::Stream).unwrap_or_else(|e| panic!("{template}: {e}"));
        let mut out = String::new();
        t.render(tag, body, &Vars::default(), &mut out).map(|()| out).map_err(|Unresolved { variable }| variable.into())
    }

    fn render(template: &str, body: &Json) -> Result<String, String> {
        render_tagged(template, "app.web.1", &rmp_serde::to_vec(body).unwrap())
    }

    fn pieces(template: &str) -> Result<usize, String> {
        split(template, b"", |_| Err::<((), usize), _>("no $( here".to_owned())).map(|(p, _)| p.len())
    }

    /// `cb_translate`'s record.
    fn translate_record() -> Json {
        json!({"k1": "string", "k2": true, "k3": false, "k4": 0.123456789, "k5": 123456789,
               "k6": {"s1": {"s2": "nested"}}})
    }

    #[test]
    fn ra_keys() {
        // cb_keys
        assert_eq!(pieces("$aaa['a'] extra $bbb['b'] final access"), Ok(4));
        assert_eq!(pieces("$b['x']['y']"), Ok(1));
        assert_eq!(pieces("$z"), Ok(1));
        assert_eq!(pieces("abc"), Ok(1));
        assert!(pieces("$abc['a'").is_err());
        // an empty template: Fluent Bit makes an empty accessor; a name template here must not be empty
        assert!(Template::parse("", NameKind::Stream).is_err());
    }

    #[test]
    fn ra_translate() {
        // cb_translate, without `${FLB_ENV}` (Fluent Bit expands it before a proxy plugin sees the value)
        let fmt = "START k1 => \"$k1\", k2 => $k2 (bool), k3 => $k3 (bool), k4 => $k4 (float), k5 => $k5 (int),\
                   k6 => $k6['s1']['s2'] (nested), translated END";
        let expected = "START k1 => \"string\", k2 => true (bool), k3 => false (bool), k4 => 0.123457 (float), \
                        k5 => 123456789 (int),k6 => nested (nested), translated END";
        assert_eq!(render(fmt, &translate_record()).as_deref(), Ok(expected));
        // `k8 => $k8 (nothing)` renders empty in flb_ra_translate; the C plugin translates with the check on,
        // so the missing key makes the whole name fall back
        assert_eq!(render("k8 => $k8 (nothing)", &translate_record()), Err("$k8".into()));
    }

    #[test]
    fn ra_translate_tag() {
        // cb_translate_tag
        let body = rmp_serde::to_vec(&translate_record()).unwrap();
        assert_eq!(render_tagged("$TAG", "testapp", &body).as_deref(), Ok("testapp"));
    }

    #[test]
    fn ra_dots_subkeys() {
        // cb_dots_subkeys
        let body = json!({"key1": "something", "kubernetes": {"annotations": {"fluentbit.io/tag": "thetag"}}});
        assert_eq!(render("$kubernetes['annotations']['fluentbit.io/tag']", &body).as_deref(), Ok("thetag"));
    }

    #[test]
    fn ra_array_id() {
        // cb_array_id
        let body = json!({"key1": "something",
                          "kubernetes": [true, false, {"a": false, "annotations": {"fluentbit.io/tag": "thetag"}}]});
        assert_eq!(render("$kubernetes[2]['annotations']['fluentbit.io/tag']", &body).as_deref(), Ok("thetag"));
    }

    #[test]
    fn ra_dash_key() {
        // cb_dash_key; and `/` runs on the same way (the lexer's key is [_A-Za-z][A-Za-z0-9_.-/]*)
        assert_eq!(render("$key-dash", &json!({"key-dash": "something"})).as_deref(), Ok("something"));
        assert_eq!(render("$app/logs", &json!({"app/logs": "x", "app": "y"})).as_deref(), Ok("x"));
        // so a C user's `$service-logs` reads the key `service-logs`, and without it falls back, as in C
        assert_eq!(render("$service-logs", &json!({"service": "web"})), Err("$service-logs".into()));
    }

    #[test]
    fn ra_dot_slash_key() {
        // cb_dot_and_slash_key is disabled in Fluent Bit (#4370): a variable stops at '.', so this is
        // `$root` (missing) and the text `.with/symbols`; the C plugin falls back
        assert_eq!(render("$root.with/symbols", &json!({"root.with/symbols": "something"})), Err("$root".into()));
        assert_eq!(render("$root.with/symbols", &json!({"root": "r"})).as_deref(), Ok("r.with/symbols"));
    }

    #[test]
    fn ra_key_order_lookup() {
        // cb_key_order_lookup: {"key": "abc", "bool": false, "bool": true, "str": "bad", "str": "good",
        // "num": 0, "num": 1}: the last of repeated keys
        let mut body = vec![0x87, 0xa3, b'k', b'e', b'y', 0xa3, b'a', b'b', b'c'];
        body.extend([0xa4, b'b', b'o', b'o', b'l', 0xc2, 0xa4, b'b', b'o', b'o', b'l', 0xc3]);
        body.extend([
            0xa3, b's', b't', b'r', 0xa3, b'b', b'a', b'd', 0xa3, b's', b't', b'r', 0xa4, b'g', b'o', b'o', b'd',
        ]);
        body.extend([0xa3, b'n', b'u', b'm', 0x00, 0xa3, b'n', b'u', b'm', 0x01]);
        for (template, expected) in [("$bool", "true"), ("$str", "good"), ("$num", "1")] {
            assert_eq!(render_tagged(template, "t", &body).as_deref(), Ok(expected), "{template}");
        }
    }

    #[test]
    fn ra_issue_4917() {
        // cb_issue_4917
        let body = json!({"tool": "fluent", "sub": {"s1": {"s2": "bit"}}});
        assert_eq!(render("from.new.$tool.$sub['s1']['s2'].out", &body).as_deref(), Ok("from.new.fluent.bit.out"));
    }

    #[test]
    fn ra_flb_ra_translate_check() {
        // cb_ra_translate_check: the check fails, the C plugin uses the static name
        assert_eq!(render("$root", &json!({"root.with/symbols": "something"})), Err("$root".into()));
    }

    #[test]
    fn ra_issue_5936_last_array() {
        // cb_issue_5936_last_array
        let body = json!({"key": {"nested": ["val0", "val1"]}});
        assert_eq!(render("$key['nested'][1]", &body).as_deref(), Ok("val1"));
    }

    #[test]
    fn ra_issue_7330_single_character() {
        // cb_issue_7330_single_char
        assert_eq!(render("b", &json!({"tool": "fluent"})).as_deref(), Ok("b"));
    }

    #[test]
    fn ra_direct_array_access() {
        // cb_direct_array_access, cb_direct_array_element_access
        let body = json!({"array": ["a", "b", "c"]});
        assert_eq!(render("$array[0]", &body).as_deref(), Ok("a"));
        assert_eq!(render("$array[1]", &body).as_deref(), Ok("b"));
    }

    #[test]
    fn ra_nested_array_access() {
        // cb_nested_array_access
        let body = json!({"matrix": [[1, 2, 3], [4, 5, 6], [7, 8, 9]]});
        assert_eq!(render("$matrix[1][2]", &body).as_deref(), Ok("6"));
    }

    #[test]
    fn ra_mixed_array_map_access() {
        // cb_mixed_array_map_access
        let body = json!({"records": [{"name": "John", "age": 30}, {"name": "Jane", "age": 25}]});
        assert_eq!(render("$records[1]['name']", &body).as_deref(), Ok("Jane"));
    }

    #[test]
    fn ra_array_index_overflow() {
        // cb_array_index_overflow: no value (empty in flb_ra_translate, the static name in the C plugin)
        let body = json!({"array": ["a", "b", "c"]});
        assert_eq!(render("$array[99]", &body), Err("$array[99]".into()));
        // indices C's atoi turns negative (or INT_MAX) match no element either
        assert_eq!(render("$array[99999999999999999999]", &body), Err("$array[99999999999999999999]".into()));
        // the array itself has no text
        assert_eq!(render("$array", &body), Err("$array".into()));
    }

    #[test]
    fn ra_nonexistent_key_access() {
        // cb_nonexistent_key_access
        let body = json!({"key1": "value1", "key2": {"nested": "value2"}});
        assert_eq!(render("$nonexistent_key", &body), Err("$nonexistent_key".into()));
    }

    #[test]
    fn ra_wrong_type_access() {
        // cb_wrong_type_access: a scalar ignores its subscripts
        let body = json!({"string": "text", "number": 123, "bool": true, "array": [1, 2, 3]});
        assert_eq!(render("$string[0]", &body).as_deref(), Ok("text"));
        assert_eq!(render("$number['key']", &body).as_deref(), Ok("123"));
        // but a container must hold the path
        assert_eq!(render("$array['key']", &body), Err("$array['key']".into()));
    }

    #[test]
    fn ra_nested_failure_recovery() {
        // cb_nested_failure_recovery
        let body = json!({"level1": {"level2": {"valid": "found"}}});
        assert_eq!(render("$level1['nonexistent']['key']", &body), Err("$level1['nonexistent']['key']".into()));
        assert_eq!(render("$level1['level2']['valid']", &body).as_deref(), Ok("found"));
    }

    #[test]
    fn ra_binary_and_string() {
        // cb_ra_binary_copy/_ref, cb_ra_string_copy/_ref: {"bin": bin(01 02 03 04), "str": "abc"};
        // ra_translate_keymap writes binary as hex
        let body = [0x82, 0xa3, b'b', b'i', b'n', 0xc4, 4, 1, 2, 3, 4, 0xa3, b's', b't', b'r', 0xa3, b'a', b'b', b'c'];
        assert_eq!(render_tagged("$bin.$str", "t", &body).as_deref(), Ok("01020304.abc"));
    }

    #[test]
    fn cw_api_values_render_as_c_does() {
        // what cloudwatch_api.c's get_log_stream receives from flb_ra_translate_check for each value type
        let body = json!({"e": "", "n": null, "f": 1.5, "g": 2.0, "i": -7, "u": 42, "t": true, "b": false,
                          "m": {"x": 1}, "big": u64::MAX});
        assert_eq!(render("a-$e.b", &body).as_deref(), Ok("a-.b"));
        assert_eq!(render("a-$n", &body).as_deref(), Ok("a-null"));
        assert_eq!(render("$f,$g", &body).as_deref(), Ok("1.500000,2.000000"));
        assert_eq!(render("$i,$u", &body).as_deref(), Ok("-7,42"));
        assert_eq!(render("$t.$b", &body).as_deref(), Ok("true.false"));
        // msgpack-c prints every integer through via.i64
        assert_eq!(render("$big", &body).as_deref(), Ok("-1"));
        // the tag's parts: out of range is empty text
        assert_eq!(render("x-$TAG[7]", &body).as_deref(), Ok("x-"));
        assert_eq!(render("x-$TAG[-1]", &body).as_deref(), Ok("x-"));
        assert_eq!(render("$TAG[2]", &body).as_deref(), Ok("1"));
        assert_eq!(render_tagged("$TAG[0]", "nodots", &[0x80]).as_deref(), Ok("nodots"));
    }

    #[test]
    fn cw_api_differs_where_cloudwatch_refuses() {
        let body = json!({"e": "", "m": {"x": 1}, "em": {}});
        // C sends an empty name (refused by CloudWatch): the static name instead
        assert_eq!(render("$e", &body), Err("$e".into()));
        assert_eq!(render("$TAG[5]", &body), Err("$TAG[5]".into()));
        // C writes a map as JSON (`{"x":1}`: ':' is refused in a stream, '{' in a group): the static name
        assert_eq!(render("$m", &body), Err("$m".into()));
        assert_eq!(render("s-$em", &body), Err("$em".into()));
    }

    #[test]
    fn ra_splitting_as_flb_record_accessor_c() {
        let body = json!({"a": "A", "b": "B", "x.y": "D", "c": {"x.y": "N"}});
        // `$a-$b` is one variable (`a-` then `$`): Fluent Bit refuses to start, so do we
        let err = Template::parse("$a-$b", NameKind::Stream).unwrap_err();
        assert!(err.contains("'-', '/' and '$' do not end a variable"), "{err}");
        assert!(Template::parse("$a['b c']", NameKind::Stream).is_err());
        assert_eq!(render("$c['x.y']", &body).as_deref(), Ok("N"));
        // one character after the last key is dropped; two are kept
        assert_eq!(render("$a.", &body).as_deref(), Ok("A"));
        assert_eq!(render("$a..", &body).as_deref(), Ok("A.."));
        assert_eq!(render("$a.$b.", &body).as_deref(), Ok("A.B"));
        // a trailing `$` is dropped, but for `x$`
        assert_eq!(render("ab$", &body).as_deref(), Ok("ab"));
        assert_eq!(render("x$", &body).as_deref(), Ok("x$"));
        // right after `$TAG`/`$TAG[n]`, a `$` is text
        assert_eq!(render("$TAG$TAG", &body).as_deref(), Ok("app.web.1$TAG"));
        assert_eq!(render("$TAG[0]$a", &body).as_deref(), Ok("app$a"));
        assert_eq!(render("$TAG[0]-$a", &body).as_deref(), Ok("app-A"));
        // `$TAG` prefixes: `$TAGS` is the tag and `S`; `$TAG[x]` is part 0 (atoi), `$TAG[1][2]` part 1 and `[2]`
        assert_eq!(render("$TAGS", &body).as_deref(), Ok("app.web.1S"));
        assert_eq!(render("$TAG[x]", &body).as_deref(), Ok("app"));
        assert_eq!(render("$TAG[1][2]", &body).as_deref(), Ok("web[2]"));
        assert_eq!(render("$TAG[1", &body).as_deref(), Ok("web[1"));
        // characters the lexer skips: `$-a` is `$a`, `$a:` is `$a`
        assert_eq!(render("$-a", &body).as_deref(), Ok("A"));
        assert_eq!(render("s-$a:", &body).as_deref(), Ok("s-A"));
        // regex captures have no value in an output: a template opening with one never resolves
        assert_eq!(render("$1x", &body), Err("$1".into()));
        assert_eq!(render("x$1", &body).as_deref(), Ok("x"));
        // each lenient reading is a note for Init's warnings
        let notes = |t: &str| split(t, b"", |_| Err::<((), usize), _>(String::new())).unwrap().1;
        assert!(notes("$a.$b['x']").is_empty());
        assert_eq!(notes("$-a:"), ["in '$-a:' at byte 0, \"-:\" skipped, as Fluent Bit skips them"]);
        assert_eq!(notes("$a."), ["'.' after the last variable is dropped, as in Fluent Bit"]);
        assert_eq!(notes("ab$"), ["the '$' at byte 2 ends the template and is dropped, as in Fluent Bit"]);
        assert!(notes("x$").is_empty());
        assert!(notes("$1x")[0].contains("never resolves"));
        // `''` is a quote inside a key
        assert_eq!(render("$q['it''s']", &json!({"q": {"it's": "Q"}})).as_deref(), Ok("Q"));
    }

    proptest::proptest! {
        #[test]
        fn split_never_panics_and_keeps_order(text in "[$TAG\\[\\]'a-c0-9.,\" :é(-]{0,24}") {
            if let Ok((pieces, _)) = split(&text, b"", |at| {
                // a stand-in `$(` parser: up to the next ')'
                text[at..].find(')').map(|len| ((), at + len + 1)).ok_or_else(|| "unterminated".to_owned())
            }) {
                let mut at = 0;
                for piece in &pieces {
                    let range = match piece {
                        Piece::Literal(r) | Piece::Accessor(_, r) | Piece::Other(_, r) => r.clone(),
                    };
                    proptest::prop_assert!(range.start >= at && range.start < range.end && range.end <= text.len());
                    proptest::prop_assert!(text.is_char_boundary(range.start) && text.is_char_boundary(range.end));
                    at = range.end;
                }
            }
        }
    }
}
