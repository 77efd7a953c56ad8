//! Log lines in Fluent Bit's own format, written whole to stderr:
//! `[2026/11/28 01:02:03] [ warn] [output:cloudwatch_rs:cloudwatch_rs.0] message`.
//!
//! stderr works on every Fluent Bit version (the API's `log_print` does not exist on 1.9.x).
//! The level is the instance's `log_level` key, else `FLB_LOG_LEVEL` (error, warn, info, debug,
//! trace), else info: Fluent Bit does not pass `[SERVICE] Log_Level` to proxy plugins.
//!
//! Every line goes through `log`, which holds for all of them: one line (control characters
//! escaped, so no line break, terminal escape or forged `[error] [output:…]` line gets through),
//! at most `MAX_LINE` bytes, and the values of secret-bearing names redacted (`redact_named`).
//! Text a server sent enters a message through `server_text`: fully redacted (`crate::redact`),
//! escaped, and cut to `SERVER_TEXT_MAX` bytes with its original size said.

use crate::core::config::LogLevel;
use once_cell::sync::Lazy;
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::sync::RwLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// The label of a line at `level`, as Fluent Bit writes it.
fn label(level: LogLevel) -> &'static str {
    match level {
        LogLevel::Error => "error",
        LogLevel::Warn => " warn",
        LogLevel::Info => " info",
        LogLevel::Debug => "debug",
        LogLevel::Trace => "trace",
    }
}

static MAX_LEVEL: Lazy<LogLevel> =
    Lazy::new(|| std::env::var("FLB_LOG_LEVEL").ok().and_then(|v| LogLevel::parse(&v)).unwrap_or(LogLevel::Info));

/// Instances with their own `log_level`.
static LEVELS: Lazy<RwLock<HashMap<String, LogLevel>>> = Lazy::new(Default::default);

/// Sets (or with `None` forgets) the level of one instance.
pub fn set_level(instance: &str, level: Option<LogLevel>) {
    let mut levels = crate::sync::write(&LEVELS);
    match level {
        Some(level) => levels.insert(instance.to_owned(), level),
        None => levels.remove(instance),
    };
}

pub fn enabled(level: LogLevel, instance: &str) -> bool {
    let levels = crate::sync::read(&LEVELS);
    level <= levels.get(instance).copied().unwrap_or(*MAX_LEVEL)
}

/// The longest line written, its newline included.
pub const MAX_LINE: usize = 4096;
/// The most of one server text (an error message, a body) a message carries.
pub const SERVER_TEXT_MAX: usize = 512;

/// Writes one line for `instance` (e.g. `cloudwatch_rs.0`).
pub fn log(level: LogLevel, instance: &str, message: fmt::Arguments<'_>) {
    if !enabled(level, instance) {
        return;
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let head = format!("[{}] [{}] [output:cloudwatch_rs:{}] ", utc_timestamp(now), label(level), instance);
    let mut message_text = Collected { text: String::with_capacity(128), size: 0 };
    let _ = message_text.write_fmt(message);
    let complete = message_text.text.len() == message_text.size;
    let redacted = crate::redact::redact_named(&message_text.text);
    let budget = MAX_LINE.saturating_sub(head.len() + 1);
    let body = escaped_within(&redacted, budget, message_text.size, complete);
    let _ = std::io::stderr().lock().write_all(format!("{head}{body}\n").as_bytes());
}

/// A message as formatted: its first `MAX_LINE` bytes (no more can fit in a line) and its size.
struct Collected {
    text: String,
    size: usize,
}

impl fmt::Write for Collected {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.size += s.len();
        let room = MAX_LINE.saturating_sub(self.text.len());
        if room > 0 {
            self.text.push_str(&s[..floor_char_boundary(s, room)]);
        }
        Ok(())
    }
}

/// The largest `i <= max` at a char boundary of `s`.
fn floor_char_boundary(s: &str, max: usize) -> usize {
    if max >= s.len() {
        return s.len();
    }
    (0..=max).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0)
}

/// A server's text as it may enter a log message: secrets redacted, control characters
/// escaped, and cut to `SERVER_TEXT_MAX` bytes, saying the original size when it was cut.
pub fn server_text(text: &str) -> String {
    escaped_within(&crate::redact::redact(text), SERVER_TEXT_MAX, text.len(), true)
}

/// `text` escaped (`escape_controls`) in at most `max` bytes. When it does not fit, or
/// `complete` is false (the caller kept only a part), it ends with `… (N bytes, cut)`, N being
/// `original`, the size of what the caller was given.
fn escaped_within(text: &str, max: usize, original: usize, complete: bool) -> String {
    let escaped = escape_controls(text);
    if complete && escaped.len() <= max {
        return escaped.into_owned();
    }
    let marker = format!("… ({} bytes, cut)", thousands(original));
    let keep = floor_escape_boundary(&escaped, max.saturating_sub(marker.len()));
    let mut out = String::with_capacity(keep + marker.len());
    out.push_str(&escaped[..keep]);
    out.push_str(&marker);
    out
}

/// The largest `i <= max` at a char boundary of `s` that does not split one of
/// `escape_controls`' escapes (`\r`, `\u{1b}`) in two.
fn floor_escape_boundary(s: &str, max: usize) -> usize {
    let keep = floor_char_boundary(s, max);
    let tail = &s[..keep];
    match tail.rfind("\\u{") {
        Some(open) if !tail[open..].contains('}') => open,
        _ if tail.ends_with('\\') => keep - 1,
        _ => keep,
    }
}

/// `text` with control characters written out: `\n`, `\r`, `\t`, else `\u{hex}` for the other
/// C0 and C1 controls, DEL, the Unicode line and paragraph separators and the bidirectional
/// overrides (which reorder what a terminal shows).
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    let needs = |c: char| {
        c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(needs) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// `5243060` as `5,243,060`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

/// `YYYY/MM/DD hh:mm:ss` in UTC.
fn utc_timestamp(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // civil-from-days (Howard Hinnant's algorithm)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}/{month:02}/{day:02} {:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

macro_rules! log_error { ($inst:expr, $($arg:tt)*) => { $crate::log::log($crate::core::config::LogLevel::Error, $inst, format_args!($($arg)*)) } }
macro_rules! log_warn { ($inst:expr, $($arg:tt)*) => { $crate::log::log($crate::core::config::LogLevel::Warn, $inst, format_args!($($arg)*)) } }
macro_rules! log_info { ($inst:expr, $($arg:tt)*) => { $crate::log::log($crate::core::config::LogLevel::Info, $inst, format_args!($($arg)*)) } }
macro_rules! log_debug { ($inst:expr, $($arg:tt)*) => { $crate::log::log($crate::core::config::LogLevel::Debug, $inst, format_args!($($arg)*)) } }
pub(crate) use {log_debug, log_error, log_info, log_warn};

#[cfg(test)]
mod tests {
    #[test]
    fn an_instance_level_overrides_the_default() {
        use super::*;
        set_level("test.levels", Some(LogLevel::Error));
        assert!(!enabled(LogLevel::Warn, "test.levels") && enabled(LogLevel::Error, "test.levels"));
        set_level("test.levels", Some(LogLevel::Debug));
        assert!(enabled(LogLevel::Debug, "test.levels"));
        set_level("test.levels", None);
        assert_eq!(enabled(LogLevel::Debug, "test.levels"), *MAX_LEVEL >= LogLevel::Debug);
    }

    #[test]
    fn controls_are_escaped_and_nothing_else_changes() {
        use super::escape_controls;
        assert_eq!(escape_controls("plain text, \\n stays"), "plain text, \\n stays");
        assert_eq!(
            escape_controls(
                "a\r\n[2026/01/01 00:00:00] [error] [output:x] forged\x1b[31m\t\x7f\u{9b}\u{2028}\u{202e}z"
            ),
            "a\\r\\n[2026/01/01 00:00:00] [error] [output:x] forged\\u{1b}[31m\\t\\u{7f}\\u{9b}\\u{2028}\\u{202e}z"
        );
        assert_eq!(escape_controls("ünïcode ✓"), "ünïcode ✓");
    }

    #[test]
    fn server_text_is_redacted_escaped_and_cut_with_its_size() {
        let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        let short = super::server_text(&format!("{{\"SecretAccessKey\":\"abc\"}} and {secret}\r\n"));
        assert_eq!(short, "{\"SecretAccessKey\":\"[redacted]\"} and [redacted]\\r\\n");
        let huge = format!("{}\r\x1b[2J{secret}", "é".repeat(2_621_529));
        let cut = super::server_text(&huge);
        assert!(cut.len() <= super::SERVER_TEXT_MAX, "{}", cut.len());
        assert!(cut.ends_with(&format!("… ({} bytes, cut)", super::thousands(huge.len()))), "{cut}");
        assert!(!cut.contains('\r') && !cut.contains('\x1b') && !cut.contains(secret));
        // already clean text passes unchanged
        assert_eq!(super::server_text(&cut), cut);
    }

    #[test]
    fn a_cut_never_splits_an_escape() {
        let cut = super::escaped_within(&"\r".repeat(1000), 101, 1000, true);
        assert!(!cut.split('…').next().unwrap().ends_with("\\r\\"), "{cut}");
        let text = "\x1b".repeat(1000);
        let cut = super::escaped_within(&text, 100, text.len(), true);
        let kept = cut.split('…').next().unwrap();
        assert!(kept.len() <= 100 && kept.ends_with('}') && kept.starts_with("\\u{1b}"), "{cut}");
        assert_eq!(super::thousands(5_243_060), "5,243,060");
        assert_eq!(super::thousands(999), "999");
        assert_eq!(super::thousands(1000), "1,000");
    }

    proptest::proptest! {
        /// Whatever a message holds, the line is one line, under `MAX_LINE`, free of controls.
        #[test]
        fn any_message_makes_one_bounded_clean_line(text in ".{0,300}", repeat in 1usize..40) {
            let message = text.repeat(repeat);
            let mut collected = super::Collected { text: String::new(), size: 0 };
            std::fmt::Write::write_str(&mut collected, &message).unwrap();
            let complete = collected.text.len() == collected.size;
            let line = super::escaped_within(&collected.text, 4000, collected.size, complete);
            proptest::prop_assert!(line.len() <= 4000);
            proptest::prop_assert!(!line.chars().any(char::is_control));
            if message.len() > 4000 {
                let marker = format!("({} bytes, cut)", super::thousands(message.len()));
                proptest::prop_assert!(line.ends_with(&marker));
            }
        }
    }

    #[test]
    fn timestamps() {
        assert_eq!(super::utc_timestamp(0), "1970/01/01 00:00:00");
        assert_eq!(super::utc_timestamp(1_795_824_567), "2026/11/28 00:09:27");
    }
}
