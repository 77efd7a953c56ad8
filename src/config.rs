//! The `[OUTPUT]` keys → a typed `Config`. Every bad value is one `ConfigError` naming the key,
//! the value and what is allowed. `KEYS` is the one list of keys the plugin reads (the README
//! table and the tests are checked against it).

use crate::message::MessageFormat;
use crate::naming::{check_group_name, check_stream_name, StreamName};
use std::fmt;
use std::time::Duration;

/// One configuration key the plugin understands.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    pub name: &'static str,
    pub default: &'static str,
    pub meaning: &'static str,
}

/// Every key, in the order the README lists them.
pub const KEYS: &[Key] = &[
    Key { name: "region", default: "`AWS_REGION`, else `AWS_DEFAULT_REGION`", meaning: "AWS region of the log group (and of STS). Init fails when none is set." },
    Key { name: "log_group_name", default: "(required)", meaning: "Log group to write to." },
    Key { name: "log_stream_name", default: "-", meaning: "Fixed log stream name. Set exactly one of this and `log_stream_prefix`." },
    Key { name: "log_stream_prefix", default: "-", meaning: "Stream name = prefix + the chunk's tag (`:` and `*` become `.`)." },
    Key { name: "auto_create_group", default: "`off`", meaning: "Create the log group when PutLogEvents says it is missing." },
    Key { name: "auto_create_stream", default: "`on`", meaning: "Create the log stream when PutLogEvents says it is missing." },
    Key { name: "role_arn", default: "-", meaning: "IAM role to assume with STS (on top of the default credential chain) and write with; may be in another account." },
    Key { name: "external_id", default: "-", meaning: "`ExternalId` sent with AssumeRole (2-1224 characters of `A-Za-z0-9+=,.@:/_-`)." },
    Key { name: "role_session_name", default: "`cloudwatch_rs`", meaning: "`RoleSessionName` for AssumeRole (2-64 characters of `A-Za-z0-9+=,.@_-`); shows in the log account's CloudTrail." },
    Key { name: "role_session_duration", default: "`1h`", meaning: "Lifetime asked of AssumeRole (`15m`-`12h`). An hour at most works even when the base credentials are themselves a role (role chaining)." },
    Key { name: "profile", default: "`AWS_PROFILE`, else `default`", meaning: "Profile of the shared config/credentials files for the base credentials (`credential_process` included)." },
    Key { name: "startup_check", default: "`warn`", meaning: "At startup, resolve the base identity, assume the role and ask whether the log group may be written (nothing is written): `off`, `warn` (log one line and start anyway) or `strict` (fail startup)." },
    Key { name: "sts_endpoint", default: "regional STS endpoint", meaning: "Full URL of STS (`https://host[:port]`, `http://` for tests); VPC endpoints." },
    Key { name: "endpoint", default: "regional CloudWatch Logs endpoint", meaning: "Full URL of CloudWatch Logs (`https://host[:port]`)." },
    Key { name: "log_key", default: "-", meaning: "Send only this top-level key's value: strings as they are, other values as JSON. Records without it are dropped and counted." },
    Key { name: "truncation_marker", default: "`[Truncated...]`", meaning: "Appended to a message cut to the maximum event size (1,048,550 bytes, marker included); `off` for none." },
    Key { name: "ca_bundle", default: "`AWS_CA_BUNDLE`", meaning: "PEM file of extra CA certificates to trust (private endpoints), on top of the system's." },
    Key { name: "flush_timeout", default: "`30s`", meaning: "Deadline for one flush, retries included (`1s`-`600s`; `ms`, `s`, `m` suffixes); after it the flush answers RETRY." },
];

/// The settings of one `[OUTPUT]` instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub region: String,
    pub log_group_name: String,
    pub stream: StreamName,
    pub auto_create_group: bool,
    pub auto_create_stream: bool,
    pub role_arn: Option<String>,
    pub external_id: Option<String>,
    pub role_session_name: String,
    pub sts_endpoint: Option<String>,
    pub endpoint: Option<String>,
    pub role_session_duration: Duration,
    pub profile: Option<String>,
    pub startup_check: StartupCheck,
    pub message: MessageFormat,
    pub ca_bundle: Option<String>,
    pub flush_timeout: Duration,
}

/// What Init does about the startup check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartupCheck {
    Off,
    Warn,
    Strict,
}

/// A key whose value cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub key: &'static str,
    pub value: Option<String>,
    pub allowed: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(f, "invalid value for '{}': '{}'; allowed: {}", self.key, v, self.allowed),
            None => write!(f, "missing '{}'; allowed: {}", self.key, self.allowed),
        }
    }
}

impl std::error::Error for ConfigError {}

fn bad(key: &'static str, value: &str, allowed: impl Into<String>) -> ConfigError {
    ConfigError { key, value: Some(value.to_owned()), allowed: allowed.into() }
}

impl Config {
    /// Builds the config from `get` (the instance's keys, case-insensitive, `None` for unset or
    /// empty) and `env` (process environment).
    pub fn from_lookup(
        get: impl Fn(&str) -> Option<String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let region = match get("region") {
            Some(r) => check_region(&r)?,
            None => match env("AWS_REGION").or_else(|| env("AWS_DEFAULT_REGION")).filter(|r| !r.is_empty()) {
                Some(r) => check_region(&r)?,
                None => {
                    return Err(ConfigError {
                        key: "region",
                        value: None,
                        allowed: "an AWS region such as us-east-1 (or set AWS_REGION)".into(),
                    })
                }
            },
        };
        let log_group_name = get("log_group_name").ok_or(ConfigError {
            key: "log_group_name",
            value: None,
            allowed: "a log group name".into(),
        })?;
        check_group_name(&log_group_name).map_err(|a| bad("log_group_name", &log_group_name, a))?;
        let stream = match (get("log_stream_name"), get("log_stream_prefix")) {
            (Some(name), None) => {
                check_stream_name(&name).map_err(|a| bad("log_stream_name", &name, a))?;
                StreamName::Fixed(name)
            }
            (None, Some(prefix)) => {
                check_stream_name(&prefix).map_err(|a| bad("log_stream_prefix", &prefix, a))?;
                StreamName::Prefix(prefix)
            }
            (Some(_), Some(prefix)) => {
                return Err(bad("log_stream_prefix", &prefix, "unset when log_stream_name is set (set exactly one)"))
            }
            (None, None) => {
                return Err(ConfigError {
                    key: "log_stream_name",
                    value: None,
                    allowed: "a stream name, or set log_stream_prefix instead (exactly one)".into(),
                })
            }
        };
        let role_arn = get("role_arn").map(|v| check_role_arn(&v).map(|_| v)).transpose()?;
        let external_id = get("external_id")
            .map(|v| check_sts_text(&v, 2, 1224, "+=,.@:/-_").map_err(|a| bad("external_id", &v, a)).map(|_| v))
            .transpose()?;
        let role_session_name = match get("role_session_name") {
            Some(v) => {
                check_sts_text(&v, 2, 64, "+=,.@-_").map_err(|a| bad("role_session_name", &v, a))?;
                v
            }
            None => "cloudwatch_rs".to_owned(),
        };
        Ok(Config {
            region,
            log_group_name,
            stream,
            auto_create_group: flag(&get, "auto_create_group", false)?,
            auto_create_stream: flag(&get, "auto_create_stream", true)?,
            role_arn,
            external_id,
            role_session_name,
            role_session_duration: match get("role_session_duration") {
                Some(v) => parse_duration(&v)
                    .filter(|d| (Duration::from_secs(900)..=Duration::from_secs(43_200)).contains(d))
                    .ok_or_else(|| {
                        bad("role_session_duration", &v, "a duration from 15m to 12h, e.g. 1h, 3600, 45m")
                    })?,
                None => Duration::from_secs(3600),
            },
            profile: get("profile"),
            startup_check: match get("startup_check").map(|v| v.to_ascii_lowercase()) {
                None => StartupCheck::Warn,
                Some(v) => match v.as_str() {
                    "off" => StartupCheck::Off,
                    "warn" => StartupCheck::Warn,
                    "strict" => StartupCheck::Strict,
                    _ => return Err(bad("startup_check", &v, "off, warn or strict")),
                },
            },
            sts_endpoint: get("sts_endpoint").map(|v| check_url("sts_endpoint", &v)).transpose()?,
            endpoint: get("endpoint").map(|v| check_url("endpoint", &v)).transpose()?,
            message: MessageFormat {
                log_key: get("log_key"),
                truncation_marker: match get("truncation_marker") {
                    Some(m) if m.eq_ignore_ascii_case("off") => String::new(),
                    Some(m) if m.len() > 1024 => {
                        return Err(bad("truncation_marker", &m, "at most 1024 bytes, or off"))
                    }
                    Some(m) => m,
                    None => "[Truncated...]".to_owned(),
                },
            },
            ca_bundle: get("ca_bundle").or_else(|| env("AWS_CA_BUNDLE").filter(|v| !v.is_empty())),
            flush_timeout: match get("flush_timeout") {
                Some(v) => parse_duration(&v)
                    .filter(|d| (Duration::from_secs(1)..=Duration::from_secs(600)).contains(d))
                    .ok_or_else(|| bad("flush_timeout", &v, "a duration from 1s to 600s, e.g. 30s, 1500ms, 2m"))?,
                None => Duration::from_secs(30),
            },
        })
    }
}

/// Fluent Bit's own boolean words.
fn flag(get: &impl Fn(&str) -> Option<String>, key: &'static str, default: bool) -> Result<bool, ConfigError> {
    let Some(v) = get(key) else {
        return Ok(default);
    };
    match v.to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" | "1" => Ok(true),
        "off" | "false" | "no" | "0" => Ok(false),
        _ => Err(bad(key, &v, "on/off, true/false, yes/no or 1/0")),
    }
}

fn check_region(r: &str) -> Result<String, ConfigError> {
    let ok = r.len() <= 64
        && r.split('-').count() >= 3
        && r.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !r.starts_with('-')
        && !r.ends_with('-');
    if ok {
        Ok(r.to_owned())
    } else {
        Err(bad("region", r, "an AWS region such as us-east-1"))
    }
}

/// `arn:<partition>:iam::<12-digit account>:role/<path/name>`.
fn check_role_arn(v: &str) -> Result<(), ConfigError> {
    let allowed = "an IAM role ARN like arn:aws:iam::222222222222:role/name";
    let parts: Vec<&str> = v.splitn(6, ':').collect();
    let ok = matches!(parts.as_slice(), ["arn", partition, "iam", "", account, resource]
        if partition.starts_with("aws")
            && account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())
            && resource.strip_prefix("role/").is_some_and(|name| !name.is_empty()
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-/".contains(&b))))
        && v.len() <= 2048;
    if ok {
        Ok(())
    } else {
        Err(bad("role_arn", v, allowed))
    }
}

/// STS's text fields: `min..=max` characters of `[A-Za-z0-9]` and `extra`.
fn check_sts_text(v: &str, min: usize, max: usize, extra: &str) -> Result<(), String> {
    if (min..=max).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric() || extra.as_bytes().contains(&b)) {
        Ok(())
    } else {
        Err(format!("{min} to {max} characters of A-Z a-z 0-9 and {extra}"))
    }
}

/// A full endpoint URL: `http(s)://host[:port][/path]`.
fn check_url(key: &'static str, v: &str) -> Result<String, ConfigError> {
    let allowed = "a full URL such as https://logs.us-east-1.amazonaws.com or http://127.0.0.1:4566";
    let rest = v.strip_prefix("https://").or_else(|| v.strip_prefix("http://")).ok_or_else(|| bad(key, v, allowed))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => (h, Some(p)),
        _ => (authority, None),
    };
    let host_ok = !host.is_empty() && host.bytes().all(|b| b.is_ascii_alphanumeric() || b".-_[]:".contains(&b));
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
    if host_ok && port_ok && !v.contains(char::is_whitespace) {
        Ok(v.trim_end_matches('/').to_owned())
    } else {
        Err(bad(key, v, allowed))
    }
}

/// `30`, `30s`, `1500ms`, `2m`.
pub fn parse_duration(v: &str) -> Option<Duration> {
    let v = v.trim();
    let (digits, unit_ms) = if let Some(d) = v.strip_suffix("ms") {
        (d, 1)
    } else if let Some(d) = v.strip_suffix('s') {
        (d, 1000)
    } else if let Some(d) = v.strip_suffix('m') {
        (d, 60_000)
    } else if let Some(d) = v.strip_suffix('h') {
        (d, 3_600_000)
    } else {
        (v, 1000)
    };
    let n: u64 = digits.trim().parse().ok()?;
    Some(Duration::from_millis(n.checked_mul(unit_ms)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.to_string())).collect();
        Config::from_lookup(|k| map.get(k).cloned(), |_| None)
    }

    const BASE: &[(&str, &str)] = &[("region", "us-east-1"), ("log_group_name", "g"), ("log_stream_prefix", "p-")];

    fn with(extra: &[(&'static str, &'static str)]) -> Result<Config, ConfigError> {
        let mut pairs: Vec<(&str, &str)> =
            BASE.iter().copied().filter(|(k, _)| !extra.iter().any(|(e, _)| e == k)).collect();
        pairs.extend(extra.iter().filter(|(_, v)| !v.is_empty()));
        config(&pairs)
    }

    #[test]
    fn the_issue_block_parses_with_defaults() {
        let c = with(&[
            ("log_group_name", "cross-account-example"),
            ("log_stream_prefix", "example-"),
            ("auto_create_group", "On"),
            ("role_arn", "arn:aws:iam::222222222222:role/cross-account-log-role"),
        ])
        .unwrap();
        assert_eq!(c.stream, StreamName::Prefix("example-".into()));
        assert!(c.auto_create_group && c.auto_create_stream);
        assert_eq!(c.role_session_name, "cloudwatch_rs");
        assert_eq!(c.flush_timeout, Duration::from_secs(30));
    }

    #[test]
    fn region_falls_back_to_the_environment() {
        let c = Config::from_lookup(
            |k| match k {
                "log_group_name" => Some("g".into()),
                "log_stream_name" => Some("s".into()),
                _ => None,
            },
            |k| (k == "AWS_DEFAULT_REGION").then(|| "eu-west-1".to_owned()),
        )
        .unwrap();
        assert_eq!(c.region, "eu-west-1");
    }

    #[test]
    fn every_bad_value_names_its_key() {
        let cases: &[(&[(&'static str, &'static str)], &str)] = &[
            (&[("region", "")], "region"),
            (&[("region", "US East")], "region"),
            (&[("log_group_name", "")], "log_group_name"),
            (&[("log_group_name", "a b")], "log_group_name"),
            (&[("log_stream_name", "s")], "log_stream_prefix"),
            (&[("log_stream_prefix", "")], "log_stream_name"),
            (&[("log_stream_prefix", "a:b")], "log_stream_prefix"),
            (&[("auto_create_group", "maybe")], "auto_create_group"),
            (&[("auto_create_stream", "2")], "auto_create_stream"),
            (&[("role_arn", "arn:aws:iam::2222:role/x")], "role_arn"),
            (&[("role_arn", "arn:aws:iam::222222222222:user/x")], "role_arn"),
            (&[("external_id", "a")], "external_id"),
            (&[("role_session_name", "has space")], "role_session_name"),
            (&[("sts_endpoint", "127.0.0.1:5000")], "sts_endpoint"),
            (&[("endpoint", "https://host:99999")], "endpoint"),
            (&[("endpoint", "ftp://host")], "endpoint"),
            (&[("flush_timeout", "0s")], "flush_timeout"),
            (&[("flush_timeout", "soon")], "flush_timeout"),
            (&[("role_session_duration", "10m")], "role_session_duration"),
            (&[("startup_check", "maybe")], "startup_check"),
        ];
        for (extra, key) in cases {
            let err = with(extra).expect_err(&format!("{extra:?} should fail"));
            assert_eq!(err.key, *key, "{extra:?}");
            let line = err.to_string();
            assert!(line.contains(key) && line.contains("allowed") && !line.contains('\n'), "{line}");
            if let Some((_, v)) = extra.iter().find(|(_, v)| !v.is_empty()) {
                if err.key == extra[0].0 {
                    assert!(line.contains(v), "{line}");
                }
            }
        }
    }

    #[test]
    fn urls_keep_scheme_and_port() {
        let c = with(&[("endpoint", "http://127.0.0.1:5000/"), ("sts_endpoint", "https://sts.vpce:8443")]).unwrap();
        assert_eq!(c.endpoint.as_deref(), Some("http://127.0.0.1:5000"));
        assert_eq!(c.sts_endpoint.as_deref(), Some("https://sts.vpce:8443"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1500ms"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_duration("x"), None);
    }

    #[test]
    fn every_key_read_is_in_the_table() {
        let read = std::cell::RefCell::new(Vec::new());
        let _ = Config::from_lookup(
            |k| {
                read.borrow_mut().push(k.to_owned());
                None
            },
            |_| Some("us-east-1".into()),
        );
        let _ = Config::from_lookup(
            |k| {
                read.borrow_mut().push(k.to_owned());
                match k {
                    "log_group_name" => Some("g".into()),
                    "log_stream_name" => Some("s".into()),
                    _ => None,
                }
            },
            |_| Some("us-east-1".into()),
        );
        for k in read.borrow().iter() {
            assert!(KEYS.iter().any(|key| key.name == k), "{k} is read but not in KEYS");
        }
        assert_eq!(read.borrow().iter().collect::<std::collections::HashSet<_>>().len(), KEYS.len());
    }
}

#[cfg(test)]
mod readme {
    #[test]
    fn the_readme_table_lists_every_key_as_the_table_says() {
        let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"));
        for key in super::KEYS {
            let row = format!("| `{}` | {} | {} |", key.name, key.default, key.meaning);
            assert!(readme.contains(&row), "README lacks the row: {row}");
        }
    }
}
