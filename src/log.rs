//! Log lines in Fluent Bit's own format, written whole to stderr:
//! `[2026/11/28 01:02:03] [ warn] [output:cloudwatch_rs:cloudwatch_rs.0] message`.
//!
//! stderr works on every Fluent Bit version (the API's `log_print` does not exist on 1.9.x).
//! The level is the instance's `log_level` key, else `FLB_LOG_LEVEL` (error, warn, info, debug,
//! trace), else info: Fluent Bit does not pass `[SERVICE] Log_Level` to proxy plugins.

use crate::core::config::LogLevel;
use once_cell::sync::Lazy;
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

/// Writes one line for `instance` (e.g. `cloudwatch_rs.0`).
pub fn log(level: LogLevel, instance: &str, message: fmt::Arguments<'_>) {
    if !enabled(level, instance) {
        return;
    }
    let mut line = String::with_capacity(128);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let _ = write!(line, "[{}] [{}] [output:cloudwatch_rs:{}] ", utc_timestamp(now), label(level), instance);
    let _ = line.write_fmt(message);
    // one line per call, whatever the message carried
    let line = line.replace('\n', " ");
    let _ = std::io::stderr().lock().write_all(format!("{line}\n").as_bytes());
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
    fn timestamps() {
        assert_eq!(super::utc_timestamp(0), "1970/01/01 00:00:00");
        assert_eq!(super::utc_timestamp(1_795_824_567), "2026/11/28 00:09:27");
    }
}
