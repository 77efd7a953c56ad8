//! The `[OUTPUT]` keys → a typed `Config`. Every bad value is one `ConfigError` naming the key,
//! the value and what is allowed. `KEYS` is the one list of keys the plugin reads (the README
//! table and the tests are checked against it).

use crate::core::emf::{check_namespace, parse_dimensions, MetricFormat};
use crate::core::message::{MessageFormat, MissingKey};
use crate::core::names::{check_group_name, check_stream_name, NameKind};
use crate::core::naming::NameRule;
use crate::core::record_path::RecordPath;
use crate::core::template::Template;
use crate::log::Level;
use aws_config::AppName;
use std::fmt;
use std::time::Duration;

/// One configuration key the plugin understands.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    pub name: &'static str,
    pub default: &'static str,
    /// The peer plugins that have the key: `C` (`cloudwatch_logs`), `Go` (`cloudwatch`), or `-`.
    pub from: &'static str,
    pub meaning: &'static str,
}

const fn key(name: &'static str, default: &'static str, from: &'static str, meaning: &'static str) -> Key {
    Key { name, default, from, meaning }
}

/// Every key, in the order the README lists them.
pub const KEYS: &[Key] = &[
    key("region", "`AWS_REGION`, else `AWS_DEFAULT_REGION`", "C, Go", "AWS region of the log group (and of STS). Init fails when none is set."),
    key("log_group_name", "(required unless `log_group_template`)", "C, Go", "Log group to write to. May hold variables (`$(...)` as in the Go plugin, or `$TAG`/`$key['sub']`), like `log_group_template`."),
    key("log_group_template", "-", "C", "Log group from the tag and record: `$TAG`, `$TAG[n]`, `$key['sub']`, `$(tag)`, `$(tag[n])`, `$(key['sub'])`, `$(uuid)`, `$(ecs_task_id)`, `$(ecs_cluster)`, `$(ecs_task_arn)`, `$(var:-default)`; any text between variables. When a variable cannot be resolved the static `log_group_name` is used."),
    key("default_log_group_name", "`fluentbit-default`", "Go", "Log group used when a template's variable cannot be resolved and there is no static `log_group_name` to fall back to."),
    key("log_stream_name", "-", "C, Go", "Log stream name; may hold variables as `log_group_name`. Set exactly one of this and `log_stream_prefix` (unless `log_stream_template` is set)."),
    key("log_stream_prefix", "-", "C, Go", "Stream name = prefix + the chunk's tag (`:` and `*` become `.`)."),
    key("log_stream_template", "-", "C", "Log stream from the tag and record, same variables as `log_group_template`; falls back to the static `log_stream_name` or prefix + tag."),
    key("default_log_stream_name", "`/fluentbit-default`", "Go", "Log stream used when a template's variable cannot be resolved and there is no static name or prefix to fall back to."),
    key("auto_create_group", "`off`", "C, Go", "Create the log group when PutLogEvents says it is missing (with the four settings below)."),
    key("log_retention_days", "`0` (never expire)", "C, Go", "Retention set on a group the plugin creates: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288 or 3653."),
    key("new_log_group_tags", "-", "Go", "Tags of a group the plugin creates: `k=v,k2=v2` (at most 50; keys 1-128, values 0-256 characters)."),
    key("log_group_class", "`STANDARD`", "C", "Class of a group the plugin creates: `STANDARD` or `INFREQUENT_ACCESS`."),
    key("kms_key_id", "-", "Vector (`kms_key`)", "KMS key ARN that encrypts a group the plugin creates."),
    key("auto_create_stream", "`on`", "Go", "Create the log stream when PutLogEvents says it is missing."),
    key("role_arn", "-", "C, Go", "IAM role to assume with STS (on top of the default credential chain) and write with; may be in another account."),
    key("external_id", "-", "C, Go", "`ExternalId` sent with AssumeRole (2-1224 characters of `A-Za-z0-9+=,.@:/_-`)."),
    key("role_session_name", "`cloudwatch_rs`", "-", "`RoleSessionName` for AssumeRole (2-64 characters of `A-Za-z0-9+=,.@_-`); shows in the log account's CloudTrail."),
    key("role_session_duration", "`1h`", "-", "Lifetime asked of AssumeRole (`15m`-`12h`). An hour at most works even when the base credentials are themselves a role (role chaining)."),
    key("profile", "`AWS_PROFILE`, else `default`", "C", "Profile of the shared config/credentials files for the base credentials (`credential_process` included)."),
    key("credentials_endpoint", "-", "Go", "`http://` URL answering container-credentials JSON, used for the base credentials instead of the default chain."),
    key("startup_check", "`warn`", "-", "At startup, resolve the base identity, assume the role and ask whether the log group may be written (nothing is written): `off`, `warn` (log one line and start anyway) or `strict` (fail startup)."),
    key("sts_endpoint", "regional STS endpoint", "C, Go", "Full URL of STS (`https://host[:port]`, `http://` for tests); VPC endpoints."),
    key("endpoint", "regional CloudWatch Logs endpoint", "C, Go", "Full URL of CloudWatch Logs (`https://host[:port]`)."),
    key("log_key", "-", "C, Go", "Send only this value: a top-level key (exact match) or a path `$key['sub']['x']`. Strings as they are; maps, arrays, numbers and booleans as JSON."),
    key("log_key_missing", "`drop`", "-", "A record without `log_key`: `drop` (counted and logged) or `record` (send the whole record as JSON)."),
    key("log_format", "-, `json/emf` with `metric_namespace`", "C, Go", "Sent as the `x-amzn-logs-format` header of PutLogEvents (e.g. `json/emf`)."),
    key("metric_namespace", "-", "C", "Turns records with numeric fields into Embedded Metric Format: their numbers become metrics in this namespace; other records are sent as they are. Not used together with `log_key` (which wins)."),
    key("metric_dimensions", "-", "C", "EMF dimension sets: `a,b;c` means [[a,b],[c]]; a set is used when the record has every key as a string."),
    key("extra_user_agent", "-", "C, Go", "Appended to the User-Agent of every AWS call (`cloudwatch_rs-<value>`; letters, digits and `!#$%&'*+-.^_~`)."),
    key("auto_retry_requests", "`on`", "C", "Retry failed calls within the flush (backoff with jitter until `flush_timeout`); `off`: one attempt, then RETRY to Fluent Bit."),
    key("truncation_marker", "`[Truncated...]`", "-", "Appended to a message cut to the maximum event size (1,048,550 bytes, marker included); `off` for none."),
    key("ca_bundle", "`AWS_CA_BUNDLE`", "-", "PEM file of extra CA certificates to trust (private endpoints), on top of the system's."),
    key("flush_timeout", "`30s`", "-", "Deadline for one flush, retries included (`1s`-`600s`; `ms`, `s`, `m` suffixes); after it the flush answers RETRY."),
    key("batches_in_flight", "`1`", "Vector (`request.concurrency`)", "PutLogEvents calls one flush may have in flight at once (`1`-`8`) when a chunk makes several batches: raise it when the round trip to CloudWatch, not CPU, limits a worker. Each call holds a request body of up to 1 MiB; `1` sends a chunk's batches one after another."),
    key("plugin_log_level", "`FLB_LOG_LEVEL`, else `info`", "Go (`FLB_LOG_LEVEL`)", "This instance's log level: `error`, `warn`, `info`, `debug` or `trace`. (`Log_Level` itself is taken by Fluent Bit's core and never reaches a proxy plugin.)"),
    key("stats_interval", "`60s`", "-", "How often the instance logs one line of its counters (also logged at exit); `off` for exit only."),
    key("add_entity", "`off`", "C", "Accepted, not supported: events are sent without the Application Signals entity; Init logs a warning when it is on."),
];

/// The most PutLogEvents calls of one flush in flight: each holds up to 1 MiB of body.
pub const MAX_BATCHES_IN_FLIGHT: usize = 8;

/// The settings of one `[OUTPUT]` instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub region: String,
    pub group: NameRule,
    pub stream: NameRule,
    pub auto_create_group: bool,
    pub new_group: NewGroup,
    pub auto_create_stream: bool,
    pub role_arn: Option<String>,
    pub external_id: Option<String>,
    pub role_session_name: String,
    pub sts_endpoint: Option<String>,
    pub endpoint: Option<String>,
    pub credentials_endpoint: Option<String>,
    pub role_session_duration: Duration,
    pub profile: Option<String>,
    pub startup_check: StartupCheck,
    pub message: MessageFormat,
    pub log_format: Option<String>,
    pub extra_user_agent: Option<String>,
    pub auto_retry_requests: bool,
    pub ca_bundle: Option<String>,
    pub flush_timeout: Duration,
    /// PutLogEvents calls of one flush in flight at once.
    pub batches_in_flight: usize,
    pub log_level: Option<Level>,
    pub stats_interval: Option<Duration>,
    /// Lines Init logs as warnings (keys accepted but not acted on).
    pub warnings: Vec<String>,
}

/// What a log group the plugin creates gets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewGroup {
    pub retention_days: Option<i32>,
    pub tags: Vec<(String, String)>,
    pub class: Option<String>,
    pub kms_key_id: Option<String>,
}

/// What CloudWatch accepts for `retentionInDays`.
pub const RETENTION_DAYS: &[i32] =
    &[1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653];

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

fn missing(key: &'static str, allowed: &str) -> ConfigError {
    ConfigError { key, value: None, allowed: allowed.into() }
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
                None => return Err(missing("region", "an AWS region such as us-east-1 (or set AWS_REGION)")),
            },
        };
        let group = group_rule(&get)?;
        let stream = stream_rule(&get)?;
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
        let metrics = metric_format(&get)?;
        let log_format = match get("log_format") {
            Some(v) if v.len() <= 64 && v.bytes().all(|b| b.is_ascii_graphic()) => Some(v),
            Some(v) => return Err(bad("log_format", &v, "a format name such as json/emf (printable, no spaces)")),
            None => metrics.as_ref().map(|_| "json/emf".to_owned()),
        };
        let mut warnings = Vec::new();
        if flag(&get, "add_entity", false)? {
            warnings.push(
                "add_entity is on, but cloudwatch_rs does not send the Application Signals entity: events are sent without it"
                    .to_owned(),
            );
        }
        Ok(Config {
            region,
            group,
            stream,
            auto_create_group: flag(&get, "auto_create_group", false)?,
            new_group: new_group(&get)?,
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
            credentials_endpoint: get("credentials_endpoint")
                .map(|v| match crate::aws::metadata::split_http_url(&v) {
                    Some(_) => Ok(v),
                    None => Err(bad("credentials_endpoint", &v, "an http:// URL such as http://169.254.170.2/creds")),
                })
                .transpose()?,
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
                log_key: get("log_key")
                    .map(|v| match v.strip_prefix('$') {
                        Some(_) => RecordPath::parse_accessor(&v).map_err(|a| bad("log_key", &v, a)),
                        None => Ok(RecordPath::key(&v)),
                    })
                    .transpose()?,
                missing_key: match get("log_key_missing").map(|v| v.to_ascii_lowercase()) {
                    None => MissingKey::Drop,
                    Some(v) => match v.as_str() {
                        "drop" => MissingKey::Drop,
                        "record" => MissingKey::SendRecord,
                        _ => return Err(bad("log_key_missing", &v, "drop or record")),
                    },
                },
                truncation_marker: match get("truncation_marker") {
                    Some(m) if m.eq_ignore_ascii_case("off") => String::new(),
                    Some(m) if m.len() > 1024 => {
                        return Err(bad("truncation_marker", &m, "at most 1024 bytes, or off"))
                    }
                    Some(m) => m,
                    None => "[Truncated...]".to_owned(),
                },
                metrics,
            },
            log_format,
            extra_user_agent: get("extra_user_agent")
                .map(|v| match AppName::new(format!("cloudwatch_rs-{v}")) {
                    Ok(_) if v.len() <= 64 => Ok(v),
                    _ => Err(bad("extra_user_agent", &v, "up to 64 of A-Z a-z 0-9 and !#$%&'*+-.^_`|~")),
                })
                .transpose()?,
            auto_retry_requests: flag(&get, "auto_retry_requests", true)?,
            ca_bundle: get("ca_bundle").or_else(|| env("AWS_CA_BUNDLE").filter(|v| !v.is_empty())),
            flush_timeout: match get("flush_timeout") {
                Some(v) => parse_duration(&v)
                    .filter(|d| (Duration::from_secs(1)..=Duration::from_secs(600)).contains(d))
                    .ok_or_else(|| bad("flush_timeout", &v, "a duration from 1s to 600s, e.g. 30s, 1500ms, 2m"))?,
                None => Duration::from_secs(30),
            },
            batches_in_flight: match get("batches_in_flight") {
                Some(v) => {
                    v.trim().parse().ok().filter(|n| (1..=MAX_BATCHES_IN_FLIGHT).contains(n)).ok_or_else(|| {
                        bad("batches_in_flight", &v, format!("a whole number from 1 to {MAX_BATCHES_IN_FLIGHT}"))
                    })?
                }
                None => 1,
            },
            log_level: get("plugin_log_level")
                .map(|v| {
                    Level::parse(&v).ok_or_else(|| bad("plugin_log_level", &v, "error, warn, info, debug or trace"))
                })
                .transpose()?,
            stats_interval: match get("stats_interval") {
                Some(v) if v.eq_ignore_ascii_case("off") => None,
                Some(v) => Some(
                    parse_duration(&v)
                        .filter(|d| (Duration::from_secs(1)..=Duration::from_secs(86_400)).contains(d))
                        .ok_or_else(|| bad("stats_interval", &v, "a duration from 1s to 24h (e.g. 60s, 5m), or off"))?,
                ),
                None => Some(Duration::from_secs(60)),
            },
            warnings,
        })
    }

    /// The group the startup check probes: the fixed name, or a template's fallback.
    pub fn probe_group(&self) -> String {
        self.group.static_name("")
    }
}

/// `log_group_template` over `log_group_name` over `default_log_group_name`.
fn group_rule(get: &impl Fn(&str) -> Option<String>) -> Result<NameRule, ConfigError> {
    let default = match get("default_log_group_name") {
        Some(v) => {
            check_group_name(&v).map_err(|a| bad("default_log_group_name", &v, a))?;
            v
        }
        None => "fluentbit-default".to_owned(),
    };
    let template = get("log_group_template").map(|t| parse_template("log_group_template", &t, NameKind::Group));
    let base = get("log_group_name").map(|v| configured("log_group_name", &v, NameKind::Group)).transpose()?;
    name_rule(template.transpose()?, base, default)
        .ok_or_else(|| missing("log_group_name", "a log group name (or set log_group_template)"))
}

/// `log_stream_template` over `log_stream_name` / `log_stream_prefix` over `default_log_stream_name`.
fn stream_rule(get: &impl Fn(&str) -> Option<String>) -> Result<NameRule, ConfigError> {
    let default = match get("default_log_stream_name") {
        Some(v) => {
            check_stream_name(&v).map_err(|a| bad("default_log_stream_name", &v, a))?;
            v
        }
        None => "/fluentbit-default".to_owned(),
    };
    let template = get("log_stream_template").map(|t| parse_template("log_stream_template", &t, NameKind::Stream));
    let base = match (get("log_stream_name"), get("log_stream_prefix")) {
        (Some(name), None) => Some(configured("log_stream_name", &name, NameKind::Stream)?),
        (None, Some(prefix)) => {
            check_stream_name(&prefix).map_err(|a| bad("log_stream_prefix", &prefix, a))?;
            Some(Configured::Static(NameRule::TagPrefix(prefix)))
        }
        (Some(_), Some(prefix)) => {
            return Err(bad("log_stream_prefix", &prefix, "unset when log_stream_name is set (set exactly one)"))
        }
        (None, None) => None,
    };
    name_rule(template.transpose()?, base, default).ok_or_else(|| {
        missing("log_stream_name", "a stream name, or set log_stream_prefix (exactly one), or log_stream_template")
    })
}

/// A configured name: static (a fixed name or a prefix), or holding variables.
enum Configured {
    Static(NameRule),
    Template(Template),
}

/// The explicit template wins, then a configured name holding variables; what falls back when
/// a variable cannot be resolved is the static configured name, else the default.
fn name_rule(template: Option<Template>, base: Option<Configured>, default: String) -> Option<NameRule> {
    let (template, fallback) = match (template, base) {
        (Some(template), Some(Configured::Static(fallback))) => (template, fallback),
        (Some(template), _) | (None, Some(Configured::Template(template))) => (template, NameRule::Fixed(default)),
        (None, Some(Configured::Static(rule))) => return Some(rule),
        (None, None) => return None,
    };
    Some(NameRule::Template { template, fallback: Box::new(fallback) })
}

fn parse_template(key: &'static str, text: &str, kind: NameKind) -> Result<Template, ConfigError> {
    Template::parse(text, kind).map_err(|why| bad(key, text, why))
}

/// A name with a `$` is a template (the Go plugin's `$(...)` or record-accessor variables).
fn configured(key: &'static str, v: &str, kind: NameKind) -> Result<Configured, ConfigError> {
    if v.contains('$') {
        let template = parse_template(key, v, kind)?;
        if !template.is_static() {
            return Ok(Configured::Template(template));
        }
    }
    let check = if kind == NameKind::Group { check_group_name } else { check_stream_name };
    check(v).map_err(|a| bad(key, v, a))?;
    Ok(Configured::Static(NameRule::Fixed(v.to_owned())))
}

fn new_group(get: &impl Fn(&str) -> Option<String>) -> Result<NewGroup, ConfigError> {
    let retention_days = match get("log_retention_days") {
        None => None,
        Some(v) => match v.trim().parse::<i32>() {
            Ok(0) => None,
            Ok(d) if RETENTION_DAYS.contains(&d) => Some(d),
            _ => {
                let list: Vec<String> = RETENTION_DAYS.iter().map(i32::to_string).collect();
                return Err(bad("log_retention_days", &v, format!("0 (never expire) or one of {}", list.join(", "))));
            }
        },
    };
    let tags = match get("new_log_group_tags") {
        None => Vec::new(),
        Some(v) => parse_tags(&v).ok_or_else(|| {
            bad(
                "new_log_group_tags",
                &v,
                "k=v,k2=v2: at most 50 tags, keys 1-128 and values 0-256 characters, keys not starting aws:",
            )
        })?,
    };
    let class = match get("log_group_class") {
        None => None,
        Some(v) => match v.to_ascii_uppercase().as_str() {
            c @ ("STANDARD" | "INFREQUENT_ACCESS") => Some(c.to_owned()),
            _ => return Err(bad("log_group_class", &v, "STANDARD or INFREQUENT_ACCESS")),
        },
    };
    let kms_key_id = match get("kms_key_id") {
        None => None,
        Some(v) => {
            let parts: Vec<&str> = v.splitn(6, ':').collect();
            let ok = matches!(parts.as_slice(), ["arn", partition, "kms", region, account, resource]
                if partition.starts_with("aws") && !region.is_empty()
                    && account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())
                    && resource.strip_prefix("key/").is_some_and(|id| !id.is_empty()));
            if !ok {
                return Err(bad("kms_key_id", &v, "a KMS key ARN like arn:aws:kms:us-east-1:222222222222:key/<id>"));
            }
            Some(v)
        }
    };
    Ok(NewGroup { retention_days, tags, class, kms_key_id })
}

/// `k=v,k2=v2` as CloudWatch's tag rules allow.
fn parse_tags(v: &str) -> Option<Vec<(String, String)>> {
    let allowed = |s: &str| s.chars().all(|c| c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c));
    let mut tags = Vec::new();
    for pair in v.split(',') {
        let (k, val) = pair.split_once('=')?;
        let (k, val) = (k.trim(), val.trim());
        let key_ok = (1..=128).contains(&k.chars().count()) && allowed(k) && !k.starts_with("aws:");
        if !key_ok || val.chars().count() > 256 || !allowed(val) || tags.iter().any(|(t, _)| t == k) {
            return None;
        }
        tags.push((k.to_owned(), val.to_owned()));
    }
    (tags.len() <= 50).then_some(tags)
}

fn metric_format(get: &impl Fn(&str) -> Option<String>) -> Result<Option<MetricFormat>, ConfigError> {
    let dimensions = match get("metric_dimensions") {
        Some(v) => parse_dimensions(&v).map_err(|a| bad("metric_dimensions", &v, a))?,
        None => Vec::new(),
    };
    match get("metric_namespace") {
        Some(ns) => {
            check_namespace(&ns).map_err(|a| bad("metric_namespace", &ns, a))?;
            Ok(Some(MetricFormat { namespace: ns, dimensions }))
        }
        None if !dimensions.is_empty() => {
            Err(missing("metric_namespace", "a namespace, since metric_dimensions is set"))
        }
        None => Ok(None),
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
        assert_eq!(c.stream, NameRule::TagPrefix("example-".into()));
        assert!(c.auto_create_group && c.auto_create_stream);
        assert_eq!(c.role_session_name, "cloudwatch_rs");
        assert_eq!(c.flush_timeout, Duration::from_secs(30));
        assert_eq!(c.batches_in_flight, 1);
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
            (&[("log_retention_days", "2")], "log_retention_days"),
            (&[("log_group_class", "BOGUS")], "log_group_class"),
            (&[("kms_key_id", "alias/mine")], "kms_key_id"),
            (&[("new_log_group_tags", "team")], "new_log_group_tags"),
            (&[("new_log_group_tags", "a=1,a=2")], "new_log_group_tags"),
            (&[("log_group_template", "$(upper(tag))")], "log_group_template"),
            (&[("log_stream_template", "x-$(ecs_nope)")], "log_stream_template"),
            (&[("log_group_name", "app-$(tag")], "log_group_name"),
            (&[("default_log_group_name", "a b")], "default_log_group_name"),
            (&[("log_key", "$a['b'")], "log_key"),
            (&[("log_key_missing", "maybe")], "log_key_missing"),
            (&[("metric_dimensions", "a;;b"), ("metric_namespace", "ns")], "metric_dimensions"),
            (&[("metric_dimensions", "host")], "metric_namespace"),
            (&[("log_format", "json emf")], "log_format"),
            (&[("extra_user_agent", "a b")], "extra_user_agent"),
            (&[("auto_retry_requests", "sometimes")], "auto_retry_requests"),
            (&[("credentials_endpoint", "ftp://x")], "credentials_endpoint"),
            (&[("batches_in_flight", "0")], "batches_in_flight"),
            (&[("batches_in_flight", "9")], "batches_in_flight"),
            (&[("batches_in_flight", "many")], "batches_in_flight"),
            (&[("plugin_log_level", "loud")], "plugin_log_level"),
            (&[("stats_interval", "0s")], "stats_interval"),
            (&[("add_entity", "perhaps")], "add_entity"),
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
    fn every_peer_key_with_a_valid_value() {
        let c = with(&[
            ("log_group_name", "static-group"),
            ("log_group_template", "/app/$kubernetes['namespace_name']"),
            ("default_log_group_name", "fallback-group"),
            ("log_stream_prefix", ""),
            ("log_stream_name", "$(tag[1])-$(ecs_task_id)"),
            ("log_stream_template", "$TAG[0]-$kubernetes['pod_name']"),
            ("default_log_stream_name", "fallback-stream"),
            ("auto_create_group", "true"),
            ("log_retention_days", "14"),
            ("new_log_group_tags", "team=logs, env=prod"),
            ("log_group_class", "infrequent_access"),
            ("kms_key_id", "arn:aws:kms:us-east-1:222222222222:key/1234abcd-12ab-34cd-56ef-1234567890ab"),
            ("log_key", "$log['message']"),
            ("log_key_missing", "record"),
            ("metric_namespace", "fluent-bit-metrics"),
            ("metric_dimensions", "host;host,cpu"),
            ("extra_user_agent", "firelens"),
            ("auto_retry_requests", "false"),
            ("credentials_endpoint", "http://127.0.0.1:51679/creds"),
            ("plugin_log_level", "debug"),
            ("batches_in_flight", "4"),
            ("stats_interval", "5m"),
            ("add_entity", "true"),
        ])
        .unwrap();
        assert!(c.group.per_record() && c.stream.per_record());
        assert_eq!(c.probe_group(), "static-group");
        assert_eq!(c.new_group.retention_days, Some(14));
        assert_eq!(c.new_group.tags, vec![("team".into(), "logs".into()), ("env".into(), "prod".into())]);
        assert_eq!(c.new_group.class.as_deref(), Some("INFREQUENT_ACCESS"));
        assert_eq!(c.log_format.as_deref(), Some("json/emf"));
        assert!(!c.auto_retry_requests);
        assert_eq!(c.stats_interval, Some(Duration::from_secs(300)));
        assert_eq!(c.batches_in_flight, 4);
        assert_eq!(c.warnings.len(), 1);
    }

    #[test]
    fn template_fallbacks() {
        let c =
            with(&[("log_group_name", "g-$(tag)"), ("log_stream_prefix", ""), ("log_stream_name", "s-$(x)")]).unwrap();
        assert_eq!(c.group.static_name("t"), "fluentbit-default");
        assert_eq!(c.stream.static_name("t"), "/fluentbit-default");
        assert!(!c.group.per_record() && c.stream.per_record());
        let c = with(&[("log_stream_template", "$x")]).unwrap();
        assert_eq!(c.stream.static_name("app"), "p-app");
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
            let row = format!("| `{}` | {} | {} | {} |", key.name, key.default, key.from, key.meaning);
            assert!(readme.contains(&row), "README lacks the row: {row}");
        }
    }
}
