//! One msgpack object → compact JSON, in one pass, in either of two forms: the JSON itself
//! (`Plain`), or the JSON already escaped as the content of a JSON string (`InBody`: what goes
//! between the quotes of the request body's `"message":"…"`).
//!
//! Text rules: invalid UTF-8 is replaced by U+FFFD; binary values are text when they are valid
//! UTF-8, else base64; ext values are the base64 of their payload; NaN and ±Inf are `null`;
//! a map key that is itself a map or array becomes the string `"(map)"` / `"(array)"`.
//! Nesting is walked with an explicit stack, never with recursion.

use crate::core::msgpack::{MsgpackError, Reader, Token};
use std::io::Write as _;

/// The transcoder's stack of open containers, kept between calls so writing allocates nothing
/// once warmed up.
#[derive(Debug, Default)]
pub struct Writer {
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

impl Writer {
    #[inline]
    pub fn new() -> Self {
        Self::default()
    }

    /// Transcodes one msgpack object to compact JSON.
    #[inline]
    pub fn write(&mut self, reader: &mut Reader<'_>, out: &mut Vec<u8>) -> Result<(), MsgpackError> {
        self.write_as(&mut Plain, reader, out)
    }

    /// Transcodes one msgpack object to compact JSON in form `F`.
    pub(crate) fn write_as<F: Form>(
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

#[inline]
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
#[inline]
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
pub(crate) fn embed_lossy<F: Form>(f: &mut F, s: &[u8], out: &mut Vec<u8>) {
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
pub(crate) trait Form {
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
pub(crate) struct Plain;

impl Form for Plain {
    #[inline]
    fn quote(&mut self, out: &mut Vec<u8>) {
        out.push(b'"');
    }
    #[inline]
    fn escape(&mut self, s: &[u8], out: &mut Vec<u8>) {
        push_escaped(s, out);
    }
    #[inline]
    fn escape_ascii(&mut self, s: &[u8], out: &mut Vec<u8>) -> usize {
        escape_into::<false, true>(s, out).1
    }
    #[inline]
    fn embed(&mut self, message: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(message)
    }
    #[inline]
    fn message_len(&self, written: usize) -> usize {
        written
    }
}

/// The message already escaped as the content of the request body's `"message"` string. It
/// counts the bytes escaping added, so the message's own length needs no second pass.
#[derive(Default)]
pub(crate) struct InBody {
    added: usize,
}

impl Form for InBody {
    #[inline]
    fn quote(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"\\\"");
        self.added += 1;
    }
    #[inline]
    fn escape(&mut self, s: &[u8], out: &mut Vec<u8>) {
        self.added += push_escaped_twice(s, out);
    }
    #[inline]
    fn escape_ascii(&mut self, s: &[u8], out: &mut Vec<u8>) -> usize {
        let (added, stopped) = escape_into::<true, true>(s, out);
        self.added += added;
        stopped
    }
    #[inline]
    fn embed(&mut self, message: &[u8], out: &mut Vec<u8>) {
        self.added += push_escaped(message, out);
    }
    #[inline]
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

/// The index of the first `special` byte at or after `from`, or `s.len()`. A long run is skipped
/// 64 bytes at a time, then sixteen (a branch-free test per block, which the compiler turns into
/// SIMD compares), then eight: messages are mostly runs of plain text. (The 64-byte step made
/// planning ~1 KB records 12% faster in `make bench`'s core benchmark, ~100-byte ones 2% slower.)
fn next_special<const ASCII: bool>(s: &[u8], from: usize) -> usize {
    let mut rest = s.get(from..).unwrap_or_default();
    let mut from = from;
    if rest.len() >= 128 {
        let (wide, _) = rest.as_chunks::<64>();
        let clear =
            wide.iter().take_while(|block| block.iter().fold(0, |hit, &b| hit | special_flag::<ASCII>(b)) == 0).count();
        rest = &rest[clear * 64..];
        from += clear * 64;
    }
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
pub(crate) mod tests {
    use super::*;
    use proptest::strategy::Strategy;

    /// What `encode_escaped` stored, unescaped (as the request body's JSON parser will).
    pub(crate) fn unescape(stored: &[u8]) -> Vec<u8> {
        let quoted = [b"\"", stored, b"\""].concat();
        serde_json::from_slice::<String>(&quoted).unwrap().into_bytes()
    }

    #[test]
    fn escaping_finds_every_byte_that_needs_it_at_any_position() {
        // short strings, and long ones that take the 64-byte step, around its block edges
        let lens = (0..70).chain([127, 128, 129, 130, 191, 192, 193, 200, 255, 256, 257, 300]);
        for len in lens {
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
                    for from in [1, 63, 64, 65, 129].into_iter().filter(|&from| from <= len) {
                        let expect = if from <= pos { pos } else { len };
                        assert_eq!(next_special::<false>(&s, from), expect, "len {len} pos {pos} from {from}");
                    }
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
}
