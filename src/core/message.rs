//! A record body → the CloudWatch message bytes, in one pass from msgpack.
//!
//! Without `log_key` the message is the body as compact JSON, keys in record order. With
//! `log_key` it is the value at that key or path: a string as is, anything else as JSON. With
//! `metric_namespace`, records with numeric fields become Embedded Metric Format documents.
//! Text rules: invalid UTF-8 is replaced by U+FFFD; binary values are text when they are valid
//! UTF-8, else base64; ext values are the base64 of their payload; NaN and ±Inf are `null`;
//! a map key that is itself a map or array becomes the string `"(map)"` / `"(array)"`.
//! Nesting is walked with an explicit stack, never with recursion.

use crate::core::emf::{encode_emf, MetricFormat};
use crate::core::msgpack::{MsgpackError, Reader, Token};
use crate::core::record_path::RecordPath;
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

/// What `Encoder::encode_escaped` made of one body, and the message's own length.
pub type EscapedMessage = Result<(Encoded, usize), MsgpackError>;

/// Reusable scratch space, so encoding allocates nothing once warmed up.
#[derive(Debug, Default)]
pub struct Encoder {
    stack: Vec<Frame>,
    /// An EMF document before it is embedded.
    document: Vec<u8>,
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
        let written = self.write_json_as(&mut f, reader, out).map(|()| Encoded::Message { truncated: false });
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
                let mut document = std::mem::take(&mut self.document);
                document.clear();
                let emf = encode_emf(self, body, timestamp_ms, metrics, &mut document);
                if let Ok(true) = emf {
                    f.embed(&document, out);
                }
                self.document = document;
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
        self.write_json_as(f, &mut reader, out)?;
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
            _ => self.write_json_as(f, &mut reader, out)?,
        }
        Ok(Encoded::Message { truncated: false })
    }

    /// Transcodes one msgpack object to compact JSON.
    pub(crate) fn write_json(&mut self, reader: &mut Reader<'_>, out: &mut Vec<u8>) -> Result<(), MsgpackError> {
        self.write_json_as(&mut Plain, reader, out)
    }

    /// Transcodes one msgpack object to compact JSON in form `F`.
    fn write_json_as<F: Form>(
        &mut self,
        f: &mut F,
        reader: &mut Reader<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), MsgpackError> {
        let stack = &mut self.stack;
        stack.clear();
        loop {
            let token = reader.next_token()?;
            if let Some(top) = stack.last_mut() {
                if top.is_map && !top.in_value {
                    write_key(f, reader, token, out)?;
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
                scalar => write_scalar_as(f, scalar, out),
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

fn write_key<F: Form>(
    f: &mut F,
    reader: &mut Reader<'_>,
    token: Token<'_>,
    out: &mut Vec<u8>,
) -> Result<(), MsgpackError> {
    match token {
        Token::Str(s) => push_json_string_as(f, s, out),
        Token::Bin(b) => push_binary(f, b, out),
        Token::Array(_) => {
            skip_contents(reader, token)?;
            f.quoted(b"(array)", out);
        }
        Token::Map(_) => {
            skip_contents(reader, token)?;
            f.quoted(b"(map)", out);
        }
        Token::Ext(_, data) => push_base64_string(f, data, out),
        scalar => {
            // numbers, booleans, nil: their JSON text, quoted
            f.quote(out);
            write_scalar_as(f, scalar, out);
            f.quote(out);
        }
    }
    Ok(())
}

pub(crate) fn write_scalar(token: Token<'_>, out: &mut Vec<u8>) {
    write_scalar_as(&mut Plain, token, out)
}

fn write_scalar_as<F: Form>(f: &mut F, token: Token<'_>, out: &mut Vec<u8>) {
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
        Token::Str(s) => push_json_string_as(f, s, out),
        Token::Bin(b) => push_binary(f, b, out),
        Token::Ext(_, data) => push_base64_string(f, data, out),
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
    // two digits per division: every event's timestamp has 13
    const PAIRS: [u8; 200] = {
        let mut pairs = [0u8; 200];
        let mut i = 0;
        while i < 100 {
            pairs[2 * i] = b'0' + (i / 10) as u8;
            pairs[2 * i + 1] = b'0' + (i % 10) as u8;
            i += 1;
        }
        pairs
    };
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    while n >= 100 {
        let pair = (n % 100) as usize * 2;
        n /= 100;
        i -= 2;
        digits[i..i + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    }
    if n >= 10 {
        i -= 2;
        digits[i..i + 2].copy_from_slice(&PAIRS[n as usize * 2..n as usize * 2 + 2]);
    } else {
        i -= 1;
        digits[i] = b'0' + n as u8;
    }
    out.extend_from_slice(&digits[i..]);
}

fn push_binary<F: Form>(f: &mut F, b: &[u8], out: &mut Vec<u8>) {
    if std::str::from_utf8(b).is_ok() {
        f.quoted(b, out);
    } else {
        push_base64_string(f, b, out);
    }
}

/// A msgpack string as a JSON string, invalid UTF-8 replaced by U+FFFD.
pub(crate) fn push_json_string(s: &[u8], out: &mut Vec<u8>) {
    push_json_string_as(&mut Plain, s, out)
}

fn push_json_string_as<F: Form>(f: &mut F, s: &[u8], out: &mut Vec<u8>) {
    f.quote(out);
    // ASCII needs no UTF-8 check: one pass escapes it, up to the first non-ASCII byte.
    let ascii = f.escape_ascii(s, out);
    if ascii < s.len() {
        // the rest: valid runs escaped, each invalid sequence replaced
        for chunk in s.get(ascii..).unwrap_or_default().utf8_chunks() {
            f.escape(chunk.valid().as_bytes(), out);
            if !chunk.invalid().is_empty() {
                out.extend_from_slice("\u{FFFD}".as_bytes());
            }
        }
    }
    f.quote(out);
}

/// A raw string value (the `log_key` case) as a whole message in form `F`, invalid UTF-8
/// replaced.
fn embed_lossy<F: Form>(f: &mut F, s: &[u8], out: &mut Vec<u8>) {
    if std::str::from_utf8(s).is_ok() {
        f.embed(s, out);
        return;
    }
    for chunk in s.utf8_chunks() {
        f.embed(chunk.valid().as_bytes(), out);
        if !chunk.invalid().is_empty() {
            out.extend_from_slice("\u{FFFD}".as_bytes());
        }
    }
}

/// The two forms a message is written in.
trait Form {
    /// The quote of a JSON string inside the message.
    fn quote(&mut self, out: &mut Vec<u8>);
    /// The content of a JSON string inside the message (valid UTF-8 in).
    fn escape(&mut self, s: &[u8], out: &mut Vec<u8>);
    /// Like `escape`, for the ASCII prefix of `s` (any bytes in): returns where it stopped.
    fn escape_ascii(&mut self, s: &[u8], out: &mut Vec<u8>) -> usize;
    /// A whole message given in message form (a raw `log_key` string, an EMF document).
    fn embed(&mut self, message: &[u8], out: &mut Vec<u8>);
    /// The length of the message that the `written` bytes of this form stand for.
    fn message_len(&self, written: usize) -> usize;

    fn quoted(&mut self, s: &[u8], out: &mut Vec<u8>) {
        self.quote(out);
        self.escape(s, out);
        self.quote(out);
    }
}

/// The message as CloudWatch stores it.
#[derive(Default)]
struct Plain;

impl Form for Plain {
    fn quote(&mut self, out: &mut Vec<u8>) {
        out.push(b'"');
    }
    fn escape(&mut self, s: &[u8], out: &mut Vec<u8>) {
        push_escaped(s, out);
    }
    fn escape_ascii(&mut self, s: &[u8], out: &mut Vec<u8>) -> usize {
        escape_into::<false, true>(s, out).1
    }
    fn embed(&mut self, message: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(message)
    }
    fn message_len(&self, written: usize) -> usize {
        written
    }
}

/// The message already escaped as the content of the request body's `"message"` string. It
/// counts the bytes escaping added, so the message's own length needs no second pass.
#[derive(Default)]
struct InBody {
    added: usize,
}

impl Form for InBody {
    fn quote(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"\\\"");
        self.added += 1;
    }
    fn escape(&mut self, s: &[u8], out: &mut Vec<u8>) {
        self.added += push_escaped_twice(s, out);
    }
    fn escape_ascii(&mut self, s: &[u8], out: &mut Vec<u8>) -> usize {
        let (added, stopped) = escape_into::<true, true>(s, out);
        self.added += added;
        stopped
    }
    fn embed(&mut self, message: &[u8], out: &mut Vec<u8>) {
        self.added += push_escaped(message, out);
    }
    fn message_len(&self, written: usize) -> usize {
        written - self.added
    }
}

/// `s` (valid UTF-8) as a quoted JSON string.
pub fn push_escaped_quoted(s: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    let _ = push_escaped(s, out);
    out.push(b'"');
}

/// JSON-escapes valid UTF-8, copying unescaped runs whole. Returns the bytes escaping added.
fn push_escaped(s: &[u8], out: &mut Vec<u8>) -> usize {
    escape_into::<false, false>(s, out).0
}

/// JSON-escapes the JSON-escaped form of `s`: a string inside a message, written straight as
/// part of the request body's `"message"` string. Returns the bytes the second escaping added.
fn push_escaped_twice(s: &[u8], out: &mut Vec<u8>) -> usize {
    escape_into::<true, false>(s, out).0
}

/// Escapes once, or `TWICE` (the escape sequences themselves escaped again); with `ASCII`, stops
/// at the first non-ASCII byte. Returns the bytes escaping added and where it stopped.
fn escape_into<const TWICE: bool, const ASCII: bool>(s: &[u8], out: &mut Vec<u8>) -> (usize, usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut added = 0;
    let mut run = 0;
    let mut i = next_special::<ASCII>(s, 0);
    while let Some(&b) = s.get(i) {
        out.extend_from_slice(&s[run..i]);
        if ASCII && b >= 0x80 {
            return (added, i);
        }
        let once: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            _ => b"",
        };
        let unicode = [b'\\', b'u', b'0', b'0', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]];
        let once = if once.is_empty() { &unicode[..] } else { once };
        if TWICE {
            // each backslash of the sequence escaped again; what the message holds is `once`
            for &c in once {
                if c == b'\\' || c == b'"' {
                    out.push(b'\\');
                    added += 1;
                }
                out.push(c);
            }
        } else {
            out.extend_from_slice(once);
            added += once.len() - 1;
        }
        run = i + 1;
        i = next_special::<ASCII>(s, run);
    }
    out.extend_from_slice(&s[run..]);
    (added, s.len())
}

/// Whether JSON must escape `b` (`"`, `\`, below 0x20), or, with `ASCII`, `b` is not ASCII.
fn special<const ASCII: bool>(b: u8) -> bool {
    b == b'"' || b == b'\\' || b < 0x20 || (ASCII && b >= 0x80)
}

/// `special` without branches, as 0 or 1.
#[inline(always)]
fn special_flag<const ASCII: bool>(b: u8) -> u8 {
    ((b == b'"') | (b == b'\\') | (b < 0x20) | (ASCII & (b >= 0x80))) as u8
}

/// The index of the first `special` byte at or after `from`, or `s.len()`. Sixteen bytes at a
/// time (a branch-free test per block, which the compiler turns into SIMD compares), then eight:
/// messages are mostly runs of plain text.
fn next_special<const ASCII: bool>(s: &[u8], from: usize) -> usize {
    let rest = s.get(from..).unwrap_or_default();
    let (blocks, rest_of_blocks) = rest.as_chunks::<16>();
    for (n, block) in blocks.iter().enumerate() {
        // `|` on every byte, no early exit: this is the form that vectorises
        let mut hit = 0u8;
        for &b in block {
            hit |= special_flag::<ASCII>(b);
        }
        if hit != 0 {
            return from + n * 16 + next_special_in_words::<ASCII>(block);
        }
    }
    from + blocks.len() * 16 + next_special_in_words::<ASCII>(rest_of_blocks)
}

/// `next_special` from the start of a short `s`, eight bytes at a time.
fn next_special_in_words<const ASCII: bool>(s: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let (words, tail) = s.as_chunks::<8>();
    for (n, word) in words.iter().enumerate() {
        let w = u64::from_le_bytes(*word);
        let quote = w ^ (ONES * b'"' as u64);
        let backslash = w ^ (ONES * b'\\' as u64);
        // "has a zero byte" / "has a byte below 0x20" / "has the high bit": exact for the
        // lowest flagged byte
        let mut hits = (quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (w.wrapping_sub(ONES * 0x20) & !w);
        if ASCII {
            hits |= w;
        }
        let hits = hits & HIGH;
        if hits != 0 {
            return n * 8 + (hits.trailing_zeros() / 8) as usize;
        }
    }
    words.len() * 8 + tail.iter().position(|&b| special::<ASCII>(b)).unwrap_or(tail.len())
}

fn push_base64_string<F: Form>(f: &mut F, data: &[u8], out: &mut Vec<u8>) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    f.quote(out);
    for group in data.chunks(3) {
        let b = [group[0], *group.get(1).unwrap_or(&0), *group.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        let symbols = [(n >> 18) & 63, (n >> 12) & 63, (n >> 6) & 63, n & 63];
        for (i, s) in symbols.iter().enumerate() {
            out.push(if i <= group.len() { ALPHABET[*s as usize] } else { b'=' });
        }
    }
    f.quote(out);
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
    use proptest::strategy::Strategy;

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
    fn escaping_finds_every_byte_that_needs_it_at_any_position() {
        for len in 0..70 {
            for pos in 0..len {
                for special in [b'"', b'\\', b'\n', 0x01, 0x1f] {
                    let mut s = vec![b'a'; len];
                    s[pos] = special;
                    let mut out = Vec::new();
                    push_escaped_quoted(&s, &mut out);
                    let back: String = serde_json::from_slice(&out).unwrap();
                    assert_eq!(back.as_bytes(), &s[..], "len {len} pos {pos} byte {special}");
                    assert_eq!(next_special::<false>(&s, 0), pos);
                    assert_eq!(next_special::<true>(&s, 0), pos);
                    s[pos] = 0x80 | special;
                    assert_eq!(next_special::<false>(&s, 0), len);
                    assert_eq!(next_special::<true>(&s, 0), pos);
                }
            }
        }
        let s = "é€😀 \u{7f}\u{80}".as_bytes();
        assert_eq!(next_special::<false>(s, 0), s.len());
        assert_eq!(next_special::<true>(s, 0), 0);
    }

    /// What `encode_escaped` stored, unescaped (as the request body's JSON parser will).
    fn unescape(stored: &[u8]) -> Vec<u8> {
        let quoted = [b"\"", stored, b"\""].concat();
        serde_json::from_slice::<String>(&quoted).unwrap().into_bytes()
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
        for log_key in [None, Some("q"), Some("n"), Some("$['k\"']['x']")] {
            let format = MessageFormat {
                log_key: log_key.map(|k| {
                    if k.starts_with('$') {
                        RecordPath::parse_accessor(k).unwrap()
                    } else {
                        RecordPath::key(k)
                    }
                }),
                ..Default::default()
            };
            let (_, plain, escaped, len) = both_forms(&body, &format);
            assert_eq!(unescape(&escaped), plain, "{log_key:?}");
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
            metrics: Some(MetricFormat { namespace: "n\"s".into(), dimensions: vec![] }),
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

    proptest::proptest! {
        /// Any bytes (ASCII runs, escapes, valid and broken UTF-8 in any order) become the JSON
        /// string of their lossy UTF-8 reading, in both forms.
        #[test]
        fn strings_of_any_bytes_are_their_lossy_text(
            parts in proptest::collection::vec(proptest::prop_oneof![
                "[a-z\"\\\\\u{0}-\u{1f}]{0,40}".prop_map(String::into_bytes),
                "\\PC{0,4}".prop_map(String::into_bytes),
                proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4),
            ], 0..8),
        ) {
            let s = parts.concat();
            let mut plain = Vec::new();
            push_json_string(&s, &mut plain);
            let back: String = serde_json::from_slice(&plain).unwrap();
            proptest::prop_assert_eq!(&back, &String::from_utf8_lossy(&s));
            let mut f = InBody::default();
            let mut escaped = Vec::new();
            push_json_string_as(&mut f, &s, &mut escaped);
            proptest::prop_assert_eq!(unescape(&escaped), plain.clone());
            proptest::prop_assert_eq!(f.message_len(escaped.len()), plain.len());
        }
    }

    proptest::proptest! {
        #[test]
        fn integers_are_their_decimal_text(n in proptest::prelude::any::<u64>(), shift in 0u32..64) {
            for n in [n, n >> shift, shift as u64, 10u64.pow(shift % 20), 10u64.pow(shift % 20) - 1, u64::MAX] {
                let mut out = Vec::new();
                push_u64(n, &mut out);
                proptest::prop_assert_eq!(String::from_utf8(out).unwrap(), n.to_string());
            }
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
