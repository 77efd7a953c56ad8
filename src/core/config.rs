//! The `[OUTPUT]` keys → a typed `Config`. Every bad value is one `ConfigError` naming the key,
//! the value and what is allowed.
//!
//! Each key is one `Key` constant, the one place of its name, its default, the peer plugins that
//! have it and its meaning. `KEYS` lists them; the parser reads every key through its constant,
//! so an unset key is parsed as its documented default; the README's table is `markdown_table()`.

use crate::core::emf::{check_namespace, parse_dimensions, parse_fields, MetricFormat};
use crate::core::go_template::GoTemplate;
use crate::core::message::{MessageFormat, MissingKey};
use crate::core::names::{check_group_name, check_stream_name, NameKind, MAX_NAME_BYTES};
use crate::core::naming::{NameRule, NameTemplate};
use crate::core::record_path::RecordPath;
use crate::core::role::{parse_role_arn, AllowList, RoleRouting, RoleSource, ALLOWED_FORM, ROLE_ARN_FORM};
use crate::core::template::Template;
use crate::core::url::{host_reach, split_authority, split_http_url, HostReach};
use std::fmt::{self, Write as _};
use std::time::Duration;

/// One configuration key the plugin understands.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    pub name: &'static str,
    /// What an unset key means.
    pub default: Unset,
    /// The peer plugins that have the key: `C` (`cloudwatch_logs`), `Go` (`cloudwatch`), or `-`.
    pub from: &'static str,
    pub meaning: &'static str,
}

/// What an unset key means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unset {
    /// The key is parsed as if it were set to this text.
    Value(&'static str),
    /// The same, with a note for the README: `0` (never expire).
    Noted(&'static str, &'static str),
    /// Nothing: what the key names or turns on is not used.
    Nothing,
    /// Worked out elsewhere (the environment, other keys, the SDK, CloudWatch), as the prose says.
    Computed(&'static str),
}

impl Unset {
    /// The text an unset key is parsed as, for a key that has one.
    pub fn value(self) -> Option<&'static str> {
        match self {
            Unset::Value(text) | Unset::Noted(text, _) => Some(text),
            Unset::Nothing | Unset::Computed(_) => None,
        }
    }

    /// The README's default column.
    pub fn describe(self) -> String {
        match self {
            Unset::Value(text) => format!("`{text}`"),
            Unset::Noted(text, note) => format!("`{text}` {note}"),
            Unset::Nothing => "-".to_owned(),
            Unset::Computed(prose) => prose.to_owned(),
        }
    }
}

const REGION: Key = Key {
    name: "region",
    default: Unset::Computed("`AWS_REGION`, else `AWS_DEFAULT_REGION`"),
    from: "C, Go",
    meaning: "AWS region of the log group (and of STS). Init fails when none is set.",
};
const LOG_GROUP_NAME: Key = Key {
    name: "log_group_name",
    default: Unset::Computed("(required unless `log_group_template`)"),
    from: "C, Go",
    meaning: "Log group to write to. `$(...)` variables are read exactly as the Go plugin reads them, plus `$(var:-default)`; any other `$` is text. A name CloudWatch would refuse is sanitised as the Go plugin does, with a warning.",
};
const LOG_GROUP_TEMPLATE: Key = Key {
    name: "log_group_template",
    default: Unset::Nothing,
    from: "C",
    meaning: "Log group from the tag and record: `$TAG`, `$TAG[n]`, `$key['sub'][0]` (Fluent Bit's record accessor, as the C plugin reads it), `$(tag)`, `$(tag[n])`, `$(key['sub'])`, `$(uuid)`, `$(ecs_task_id)`, `$(ecs_cluster)`, `$(ecs_task_arn)`, `$(var:-default)`; any text between variables (a `$key` runs up to the next `.`, space, `,` or `\"`, as in Fluent Bit). When a variable cannot be resolved the static `log_group_name` is used.",
};
const DEFAULT_LOG_GROUP_NAME: Key = Key {
    name: "default_log_group_name",
    default: Unset::Value("fluentbit-default"),
    from: "Go",
    meaning: "Log group used when a template's variable cannot be resolved and there is no static `log_group_name` to fall back to.",
};
const LOG_STREAM_NAME: Key = Key {
    name: "log_stream_name",
    default: Unset::Nothing,
    from: "C, Go",
    meaning: "Log stream name; may hold `$(...)` variables as `log_group_name`. Set exactly one of this and `log_stream_prefix` (unless `log_stream_template` is set).",
};
const LOG_STREAM_PREFIX: Key = Key {
    name: "log_stream_prefix",
    default: Unset::Nothing,
    from: "C, Go",
    meaning: "Stream name = prefix + the chunk's tag (`:` and `*` become `.`).",
};
const LOG_STREAM_TEMPLATE: Key = Key {
    name: "log_stream_template",
    default: Unset::Nothing,
    from: "C",
    meaning: "Log stream from the tag and record, same variables as `log_group_template`; falls back to the static `log_stream_name` or prefix + tag.",
};
const DEFAULT_LOG_STREAM_NAME: Key = Key {
    name: "default_log_stream_name",
    default: Unset::Value("/fluentbit-default"),
    from: "Go",
    meaning: "Log stream used when a template's variable cannot be resolved and there is no static name or prefix to fall back to.",
};
const AUTO_CREATE_GROUP: Key = Key {
    name: "auto_create_group",
    default: Unset::Value("off"),
    from: "C, Go",
    meaning: "Create the log group when PutLogEvents says it is missing (with the four settings below).",
};
const LOG_RETENTION_DAYS: Key = Key {
    name: "log_retention_days",
    default: Unset::Noted("0", "(never expire)"),
    from: "C, Go",
    meaning: "Retention set on a group the plugin creates: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288 or 3653.",
};
const NEW_LOG_GROUP_TAGS: Key = Key {
    name: "new_log_group_tags",
    default: Unset::Nothing,
    from: "Go",
    meaning: "Tags of a group the plugin creates: `k=v,k2=v2` (at most 50; keys 1-128, values 0-256 characters), read as the Go plugin reads it (spaces trimmed, empty entries skipped, a repeated key's last value wins).",
};
const LOG_GROUP_CLASS: Key = Key {
    name: "log_group_class",
    default: Unset::Computed("CloudWatch's default (`STANDARD`)"),
    from: "C",
    meaning: "Class of a group the plugin creates: `STANDARD` or `INFREQUENT_ACCESS`.",
};
const KMS_KEY_ID: Key = Key {
    name: "kms_key_id",
    default: Unset::Nothing,
    from: "Vector (`kms_key`)",
    meaning: "KMS key ARN that encrypts a group the plugin creates.",
};
const AUTO_CREATE_STREAM: Key = Key {
    name: "auto_create_stream",
    default: Unset::Value("on"),
    from: "Go",
    meaning: "Create the log stream when PutLogEvents says it is missing.",
};
const ROLE_ARN: Key = Key {
    name: "role_arn",
    default: Unset::Nothing,
    from: "C, Go",
    meaning: "IAM role to assume with STS (on top of the default credential chain) and write with; may be in another account.",
};
const EXTERNAL_ID: Key = Key {
    name: "external_id",
    default: Unset::Nothing,
    from: "C, Go",
    meaning: "`ExternalId` sent with AssumeRole (2-1224 characters of `A-Za-z0-9+=,.@:/_-`).",
};
const ROLE_ARN_TEMPLATE: Key = Key {
    name: "role_arn_template",
    default: Unset::Nothing,
    from: "-",
    meaning: "The role to write each record with, rendered per record with the variables of `log_group_template`, e.g. `arn:aws:iam::$kubernetes['labels']['log-account']:role/log-writer`. Requires `role_arn_allowed`; a record whose role cannot be rendered (counted in `role_unresolved`), is not a valid role ARN or is outside `role_arn_allowed` (counted in `role_denied`) is written with `role_arn`, else the base credentials. Not with `role_arn_map`.",
};
const ROLE_ARN_MAP: Key = Key {
    name: "role_arn_map",
    default: Unset::Nothing,
    from: "-",
    meaning: "Path of a file of `value role-arn` lines (`#` comments); a record's `role_arn_map_key` is looked up in it and the role found is written with, as for `role_arn_template`. Read at Init (an unreadable or malformed file fails Init); re-read when its modification time or size changes (checked at most once a second); a later unreadable or malformed file keeps the last good map, logged once.",
};
const ROLE_ARN_MAP_KEY: Key = Key {
    name: "role_arn_map_key",
    default: Unset::Computed("(required with `role_arn_map`)"),
    from: "-",
    meaning: "What a record is looked up by in `role_arn_map`: a template with the variables of `log_group_template`, e.g. `$kubernetes['namespace_name']`.",
};
const ROLE_ARN_ALLOWED: Key = Key {
    name: "role_arn_allowed",
    default: Unset::Computed("(required with `role_arn_template` / `role_arn_map`)"),
    from: "-",
    meaning: "The only roles a record may choose, comma-separated: a 12-digit account id (any role of that account) or a role ARN pattern whose role part may hold `*` (any characters, `/` included), e.g. `arn:aws:iam::222222222222:role/log-*`; partition and account are always literal. A role outside it is never assumed.",
};
const ROLE_CACHE_SIZE: Key = Key {
    name: "role_cache_size",
    default: Unset::Value("64"),
    from: "-",
    meaning: "How many roles chosen by records an instance keeps credentials and a client for (1-4096); beyond it the least recently used is dropped (and assumed again when next needed).",
};
const ROLE_SESSION_NAME: Key = Key {
    name: "role_session_name",
    default: Unset::Value("cloudwatch_rs"),
    from: "-",
    meaning: "`RoleSessionName` for AssumeRole (2-64 characters of `A-Za-z0-9+=,.@_-`); shows in the log account's CloudTrail.",
};
const ROLE_SESSION_DURATION: Key = Key {
    name: "role_session_duration",
    default: Unset::Value("1h"),
    from: "-",
    meaning: "Lifetime asked of AssumeRole (`15m`-`12h`). An hour at most works even when the base credentials are themselves a role (role chaining).",
};
const PROFILE: Key = Key {
    name: "profile",
    default: Unset::Computed("`AWS_PROFILE`, else `default`"),
    from: "C",
    meaning: "Profile of the shared config/credentials files for the base credentials (`credential_process` included).",
};
const CREDENTIALS_ENDPOINT: Key = Key {
    name: "credentials_endpoint",
    default: Unset::Nothing,
    from: "Go",
    meaning: "`http://` URL answering container-credentials JSON, used for the base credentials instead of the default chain (to this host or the container-credential addresses, see `allow_cleartext_endpoints`).",
};
const STARTUP_CHECK: Key = Key {
    name: "startup_check",
    default: Unset::Value("warn"),
    from: "-",
    meaning: "At startup, resolve the base identity, assume the role and ask whether the log group may be written (nothing is written): `off`, `warn` (log one line and start anyway) or `strict` (fail startup).",
};
const STS_ENDPOINT: Key = Key {
    name: "sts_endpoint",
    default: Unset::Computed("regional STS endpoint"),
    from: "C, Go",
    meaning: "Full URL of STS (`https://host[:port]`; `http://` only to this host, see `allow_cleartext_endpoints`); VPC endpoints.",
};
const ENDPOINT: Key = Key {
    name: "endpoint",
    default: Unset::Computed("regional CloudWatch Logs endpoint"),
    from: "C, Go",
    meaning: "Full URL of CloudWatch Logs (`https://host[:port]`; `http://` only to this host, see `allow_cleartext_endpoints`).",
};
const ALLOW_CLEARTEXT_ENDPOINTS: Key = Key {
    name: "allow_cleartext_endpoints",
    default: Unset::Value("off"),
    from: "-",
    meaning: "Development only: allow `http://` in `endpoint`, `sts_endpoint` and `credentials_endpoint` to hosts that may not be this one (a LocalStack container reached by name); every start then logs a warning naming them. Off: `http://` only to 127.0.0.0/8, `[::1]` or `localhost` (and, for `credentials_endpoint`, 169.254.170.2, 169.254.170.23, `[fd00:ec2::23]`).",
};
const LOG_KEY: Key = Key {
    name: "log_key",
    default: Unset::Nothing,
    from: "C, Go",
    meaning: "Send only this value: a top-level key (exact match) or a path `$key['sub']['x']`. Strings as they are; maps, arrays, numbers and booleans as JSON.",
};
const LOG_KEY_MISSING: Key = Key {
    name: "log_key_missing",
    default: Unset::Value("drop"),
    from: "-",
    meaning: "A record without `log_key`: `drop` (counted and logged) or `record` (send the whole record as JSON).",
};
const LOG_FORMAT: Key = Key {
    name: "log_format",
    default: Unset::Computed("-, `json/emf` with `metric_namespace`"),
    from: "C, Go",
    meaning: "Sent as the `x-amzn-logs-format` header of PutLogEvents (e.g. `json/emf`).",
};
const METRIC_NAMESPACE: Key = Key {
    name: "metric_namespace",
    default: Unset::Nothing,
    from: "C",
    meaning: "Turns the `cpu` and `mem` inputs' records (known by their fields: `cpu_p`, `user_p`, `system_p`; `Mem.total`, `Mem.used`, `Mem.free`) into Embedded Metric Format with the C plugin's metrics and units, and records with `metric_fields` numbers into EMF with those; other records are sent as they are. Not used together with `log_key` (which wins).",
};
const METRIC_FIELDS: Key = Key {
    name: "metric_fields",
    default: Unset::Nothing,
    from: "-",
    meaning: "With `metric_namespace`: top-level fields (`a,b`) that are metrics in records other than the `cpu`/`mem` inputs'; a record holding any of them as a number becomes EMF. Unset: only `cpu`/`mem` records do.",
};
const METRIC_DIMENSIONS: Key = Key {
    name: "metric_dimensions",
    default: Unset::Nothing,
    from: "C",
    meaning: "EMF dimension sets: `a,b;c` means [[a,b],[c]]; a set is used when the record has every key as a string.",
};
const EXTRA_USER_AGENT: Key = Key {
    name: "extra_user_agent",
    default: Unset::Nothing,
    from: "C, Go",
    meaning:
        "Appended to the User-Agent of every AWS call (`cloudwatch_rs-<value>`; letters, digits and `!#$%&'*+-.^_~`).",
};
const AUTO_RETRY_REQUESTS: Key = Key {
    name: "auto_retry_requests",
    default: Unset::Value("on"),
    from: "C",
    meaning: "Retry failed calls within the flush (backoff with jitter until `flush_timeout`); `off`: one attempt, then RETRY to Fluent Bit.",
};
const TRUNCATION_MARKER: Key = Key {
    name: "truncation_marker",
    default: Unset::Value("[Truncated...]"),
    from: "-",
    meaning: "Appended to a message cut to the maximum event size (1,048,550 bytes, marker included); `off` for none.",
};
const CA_BUNDLE: Key = Key {
    name: "ca_bundle",
    default: Unset::Computed("`AWS_CA_BUNDLE`"),
    from: "-",
    meaning: "PEM file of extra CA certificates to trust (private endpoints), on top of the system's.",
};
const FLUSH_TIMEOUT: Key = Key {
    name: "flush_timeout",
    default: Unset::Value("30s"),
    from: "-",
    meaning: "Deadline for one flush, retries included (`1s`-`600s`; `ms`, `s`, `m` suffixes); after it the flush answers RETRY.",
};
const BATCHES_IN_FLIGHT: Key = Key {
    name: "batches_in_flight",
    default: Unset::Value("2"),
    from: "Vector (`request.concurrency`)",
    meaning: "PutLogEvents calls one flush may have in flight at once (`1`-`8`) when a chunk makes several batches (a 2 MB chunk makes two or three): the second call is sent while the first is answered, so a worker keeps up under load; raise it further when the round trip to CloudWatch is long. Each call holds a request body of up to 1 MiB of events (up to about 6 MiB once JSON-escaped); `1` sends a chunk's batches one after another.",
};
const PLUGIN_LOG_LEVEL: Key = Key {
    name: "plugin_log_level",
    default: Unset::Computed("`FLB_LOG_LEVEL`, else `info`"),
    from: "Go (`FLB_LOG_LEVEL`)",
    meaning: "This instance's log level: `error`, `warn`, `info`, `debug` or `trace`. (`Log_Level` itself is taken by Fluent Bit's core and never reaches a proxy plugin.)",
};
const STATS_INTERVAL: Key = Key {
    name: "stats_interval",
    default: Unset::Value("60s"),
    from: "-",
    meaning: "How often the instance logs one line of its counters (also logged at exit); `off` for exit only.",
};
const ADD_ENTITY: Key = Key {
    name: "add_entity",
    default: Unset::Value("off"),
    from: "C",
    meaning: "Accepted, not supported: events are sent without the Application Signals entity; Init logs a warning when it is on.",
};

/// Every key, in the order the README lists them.
pub const KEYS: &[Key] = &[
    REGION,
    LOG_GROUP_NAME,
    LOG_GROUP_TEMPLATE,
    DEFAULT_LOG_GROUP_NAME,
    LOG_STREAM_NAME,
    LOG_STREAM_PREFIX,
    LOG_STREAM_TEMPLATE,
    DEFAULT_LOG_STREAM_NAME,
    AUTO_CREATE_GROUP,
    LOG_RETENTION_DAYS,
    NEW_LOG_GROUP_TAGS,
    LOG_GROUP_CLASS,
    KMS_KEY_ID,
    AUTO_CREATE_STREAM,
    ROLE_ARN,
    EXTERNAL_ID,
    ROLE_ARN_TEMPLATE,
    ROLE_ARN_MAP,
    ROLE_ARN_MAP_KEY,
    ROLE_ARN_ALLOWED,
    ROLE_CACHE_SIZE,
    ROLE_SESSION_NAME,
    ROLE_SESSION_DURATION,
    PROFILE,
    CREDENTIALS_ENDPOINT,
    STARTUP_CHECK,
    STS_ENDPOINT,
    ENDPOINT,
    ALLOW_CLEARTEXT_ENDPOINTS,
    LOG_KEY,
    LOG_KEY_MISSING,
    LOG_FORMAT,
    METRIC_NAMESPACE,
    METRIC_DIMENSIONS,
    METRIC_FIELDS,
    EXTRA_USER_AGENT,
    AUTO_RETRY_REQUESTS,
    TRUNCATION_MARKER,
    CA_BUNDLE,
    FLUSH_TIMEOUT,
    BATCHES_IN_FLIGHT,
    PLUGIN_LOG_LEVEL,
    STATS_INTERVAL,
    ADD_ENTITY,
];

/// The README's table of keys (what stands between `<!-- keys:begin -->` and `<!-- keys:end -->`).
pub fn markdown_table() -> String {
    let mut table = String::from("| key | default | from | meaning |\n|---|---|---|---|\n");
    for key in KEYS {
        let _ = writeln!(table, "| `{}` | {} | {} | {} |", key.name, key.default.describe(), key.from, key.meaning);
    }
    table
}

/// The most PutLogEvents calls of one flush in flight: each holds up to 1 MiB of body.
pub const MAX_BATCHES_IN_FLIGHT: usize = 8;

/// The most roles chosen by records an instance keeps (`role_cache_size`).
pub const MAX_ROLE_CACHE_SIZE: usize = 4096;

/// The longest `truncation_marker`, in bytes.
const MAX_TRUNCATION_MARKER: usize = 1024;

/// The longest `extra_user_agent`, in bytes.
const MAX_EXTRA_USER_AGENT: usize = 64;

/// What an SDK `AppName` (`cloudwatch_rs-<extra_user_agent>`) may hold besides ASCII letters and
/// digits: the token characters of HTTP (RFC 7230), as the SDK's `AppName::new` (aws-types) checks.
const APP_NAME_SYMBOLS: &str = "!#$%&'*+-.^_`|~";

/// `new_log_group_tags`: at most this many tags, keys of 1 to `MAX_TAG_KEY` characters and values
/// of at most `MAX_TAG_VALUE`, as CloudWatch's TagLogGroup allows.
const MAX_TAGS: usize = 50;
const MAX_TAG_KEY: usize = 128;
const MAX_TAG_VALUE: usize = 256;

/// The range of a duration key, written as its message says it, and the rest of that message.
struct Span {
    min: &'static str,
    max: &'static str,
    tail: &'static str,
}

const ROLE_SESSION_DURATION_SPAN: Span = Span { min: "15m", max: "12h", tail: ", e.g. 1h, 3600, 45m" };
const FLUSH_TIMEOUT_SPAN: Span = Span { min: "1s", max: "600s", tail: ", e.g. 30s, 1500ms, 2m" };
const STATS_INTERVAL_SPAN: Span = Span { min: "1s", max: "24h", tail: " (e.g. 60s, 5m), or off" };

impl Span {
    /// `v` as a duration within the span.
    fn allows(&self, v: &str) -> Option<Duration> {
        let d = parse_duration(v)?;
        (parse_duration(self.min)?..=parse_duration(self.max)?).contains(&d).then_some(d)
    }

    fn allowed(&self) -> String {
        format!("a duration from {} to {}{}", self.min, self.max, self.tail)
    }
}

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
    /// The role chosen per record (`role_arn_template` / `role_arn_map`).
    pub roles: Option<RoleRouting>,
    /// Roles chosen by records whose credentials and client an instance keeps.
    pub role_cache_size: usize,
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
    pub log_level: Option<LogLevel>,
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

/// A log level (`plugin_log_level`, `FLB_LOG_LEVEL`), the most severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
    Trace = 5,
}

impl LogLevel {
    pub fn parse(s: &str) -> Option<LogLevel> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "error" => LogLevel::Error,
            "warn" | "warning" => LogLevel::Warn,
            "info" => LogLevel::Info,
            "debug" => LogLevel::Debug,
            "trace" => LogLevel::Trace,
            _ => return None,
        })
    }
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

fn bad(key: &Key, value: &str, allowed: impl Into<String>) -> ConfigError {
    ConfigError { key: key.name, value: Some(value.to_owned()), allowed: allowed.into() }
}

fn missing(key: &Key, allowed: &str) -> ConfigError {
    ConfigError { key: key.name, value: None, allowed: allowed.into() }
}

/// A key with a literal default: its value, else that default (as if it were set to it).
fn value(get: &impl Fn(&str) -> Option<String>, key: &Key) -> String {
    debug_assert!(key.default.value().is_some(), "'{}' has no literal default: read it with given()", key.name);
    get(key.name).unwrap_or_else(|| key.default.value().unwrap_or_default().to_owned())
}

/// A key without a literal default: its value, if set.
fn given(get: &impl Fn(&str) -> Option<String>, key: &Key) -> Option<String> {
    debug_assert!(key.default.value().is_none(), "'{}' has a literal default: read it with value()", key.name);
    get(key.name)
}

/// Fluent Bit's own boolean words.
fn flag(get: &impl Fn(&str) -> Option<String>, key: &Key) -> Result<bool, ConfigError> {
    let v = value(get, key);
    match v.to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" | "1" => Ok(true),
        "off" | "false" | "no" | "0" => Ok(false),
        _ => Err(bad(key, &v, "on/off, true/false, yes/no or 1/0")),
    }
}

/// A duration key within its span.
fn duration(get: &impl Fn(&str) -> Option<String>, key: &Key, span: &Span) -> Result<Duration, ConfigError> {
    let v = value(get, key);
    span.allows(&v).ok_or_else(|| bad(key, &v, span.allowed()))
}

/// One of a few words (any case): the value the word stands for.
fn choice<T: Clone>(get: &impl Fn(&str) -> Option<String>, key: &Key, words: &[(&str, T)]) -> Result<T, ConfigError> {
    let v = value(get, key).to_ascii_lowercase();
    match words.iter().find(|(word, _)| *word == v) {
        Some((_, chosen)) => Ok(chosen.clone()),
        None => {
            let names: Vec<&str> = words.iter().map(|(word, _)| *word).collect();
            let (last, rest) = names.split_last().unwrap_or((&"", &[]));
            Err(bad(key, &v, format!("{} or {last}", rest.join(", "))))
        }
    }
}

impl Config {
    /// Builds the config from `get` (the instance's keys, case-insensitive, `None` for unset or
    /// empty) and `env` (process environment).
    pub fn from_lookup(
        get: impl Fn(&str) -> Option<String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let region = match given(&get, &REGION) {
            Some(r) => check_region(&r)?,
            None => match env("AWS_REGION").or_else(|| env("AWS_DEFAULT_REGION")).filter(|r| !r.is_empty()) {
                Some(r) => check_region(&r)?,
                None => return Err(missing(&REGION, "an AWS region such as us-east-1 (or set AWS_REGION)")),
            },
        };
        let mut warnings = Vec::new();
        let group = group_rule(&get, &mut warnings)?;
        let stream = stream_rule(&get, &mut warnings)?;
        let role_arn = given(&get, &ROLE_ARN).map(|v| check_role_arn(&v).map(|_| v)).transpose()?;
        let roles = role_routing(&get, &role_arn)?;
        let role_cache_size =
            {
                let v = value(&get, &ROLE_CACHE_SIZE);
                v.trim().parse().ok().filter(|n| (1..=MAX_ROLE_CACHE_SIZE).contains(n)).ok_or_else(|| {
                    bad(&ROLE_CACHE_SIZE, &v, format!("a whole number from 1 to {MAX_ROLE_CACHE_SIZE}"))
                })?
            };
        let external_id = given(&get, &EXTERNAL_ID)
            .map(|v| check_sts_text(&v, 2, 1224, "+=,.@:/-_").map_err(|a| bad(&EXTERNAL_ID, &v, a)).map(|_| v))
            .transpose()?;
        let role_session_name = value(&get, &ROLE_SESSION_NAME);
        check_sts_text(&role_session_name, 2, 64, "+=,.@-_")
            .map_err(|a| bad(&ROLE_SESSION_NAME, &role_session_name, a))?;
        let metrics = metric_format(&get)?;
        let log_format = match given(&get, &LOG_FORMAT) {
            Some(v) if v.len() <= 64 && v.bytes().all(|b| b.is_ascii_graphic()) => Some(v),
            Some(v) => return Err(bad(&LOG_FORMAT, &v, "a format name such as json/emf (printable, no spaces)")),
            None => metrics.as_ref().map(|_| "json/emf".to_owned()),
        };
        if flag(&get, &ADD_ENTITY)? {
            warnings.push(
                "add_entity is on, but cloudwatch_rs does not send the Application Signals entity: events are sent without it"
                    .to_owned(),
            );
        }
        let mut config = Config {
            region,
            group,
            stream,
            auto_create_group: flag(&get, &AUTO_CREATE_GROUP)?,
            new_group: new_group(&get, &mut warnings)?,
            auto_create_stream: flag(&get, &AUTO_CREATE_STREAM)?,
            role_arn,
            roles,
            role_cache_size,
            external_id,
            role_session_name,
            role_session_duration: duration(&get, &ROLE_SESSION_DURATION, &ROLE_SESSION_DURATION_SPAN)?,
            profile: given(&get, &PROFILE),
            credentials_endpoint: given(&get, &CREDENTIALS_ENDPOINT)
                .map(|v| match split_http_url(&v) {
                    Some(_) => Ok(v),
                    None => Err(bad(&CREDENTIALS_ENDPOINT, &v, "an http:// URL such as http://169.254.170.2/creds")),
                })
                .transpose()?,
            startup_check: choice(
                &get,
                &STARTUP_CHECK,
                &[("off", StartupCheck::Off), ("warn", StartupCheck::Warn), ("strict", StartupCheck::Strict)],
            )?,
            sts_endpoint: given(&get, &STS_ENDPOINT).map(|v| check_url(&STS_ENDPOINT, &v)).transpose()?,
            endpoint: given(&get, &ENDPOINT).map(|v| check_url(&ENDPOINT, &v)).transpose()?,
            message: MessageFormat {
                log_key: given(&get, &LOG_KEY)
                    .map(|v| match v.strip_prefix('$') {
                        Some(_) => RecordPath::parse_accessor(&v).map_err(|a| bad(&LOG_KEY, &v, a)),
                        None => Ok(RecordPath::key(&v)),
                    })
                    .transpose()?,
                missing_key: choice(
                    &get,
                    &LOG_KEY_MISSING,
                    &[("drop", MissingKey::Drop), ("record", MissingKey::SendRecord)],
                )?,
                truncation_marker: match value(&get, &TRUNCATION_MARKER) {
                    m if m.eq_ignore_ascii_case("off") => String::new(),
                    m if m.len() > MAX_TRUNCATION_MARKER => {
                        return Err(bad(
                            &TRUNCATION_MARKER,
                            &m,
                            format!("at most {MAX_TRUNCATION_MARKER} bytes, or off"),
                        ))
                    }
                    m => m,
                },
                metrics,
            },
            log_format,
            extra_user_agent: given(&get, &EXTRA_USER_AGENT).map(check_extra_user_agent).transpose()?,
            auto_retry_requests: flag(&get, &AUTO_RETRY_REQUESTS)?,
            ca_bundle: given(&get, &CA_BUNDLE).or_else(|| env("AWS_CA_BUNDLE").filter(|v| !v.is_empty())),
            flush_timeout: duration(&get, &FLUSH_TIMEOUT, &FLUSH_TIMEOUT_SPAN)?,
            batches_in_flight: {
                let v = value(&get, &BATCHES_IN_FLIGHT);
                v.trim().parse().ok().filter(|n| (1..=MAX_BATCHES_IN_FLIGHT).contains(n)).ok_or_else(|| {
                    bad(&BATCHES_IN_FLIGHT, &v, format!("a whole number from 1 to {MAX_BATCHES_IN_FLIGHT}"))
                })?
            },
            log_level: given(&get, &PLUGIN_LOG_LEVEL)
                .map(|v| {
                    LogLevel::parse(&v).ok_or_else(|| bad(&PLUGIN_LOG_LEVEL, &v, "error, warn, info, debug or trace"))
                })
                .transpose()?,
            stats_interval: match value(&get, &STATS_INTERVAL) {
                v if v.eq_ignore_ascii_case("off") => None,
                v => Some(
                    STATS_INTERVAL_SPAN
                        .allows(&v)
                        .ok_or_else(|| bad(&STATS_INTERVAL, &v, STATS_INTERVAL_SPAN.allowed()))?,
                ),
            },
            warnings,
        };
        let cleartext = [
            (&ENDPOINT, &config.endpoint),
            (&STS_ENDPOINT, &config.sts_endpoint),
            (&CREDENTIALS_ENDPOINT, &config.credentials_endpoint),
        ];
        let warning = check_cleartext(&cleartext, flag(&get, &ALLOW_CLEARTEXT_ENDPOINTS)?)?;
        config.warnings.extend(warning);
        let role_template = config.roles.as_ref().map(|r| match &r.source {
            RoleSource::Template(t) | RoleSource::Map { key: t, .. } => t,
        });
        let name_templates = [&config.group, &config.stream].into_iter().filter_map(|rule| match rule {
            NameRule::Template { template, .. } => Some(template),
            _ => None,
        });
        for template in name_templates.chain(role_template) {
            // the record accessor's lenient readings (the Go plugin's are warned of where they are read)
            if let NameTemplate::Accessor(template) = template {
                let notes = template.notes().iter().map(|note| format!("name template '{template}': {note}"));
                config.warnings.extend(notes);
            }
        }
        Ok(config)
    }

    /// The group the startup check probes: the fixed name, or a template's fallback.
    pub fn probe_group(&self) -> String {
        self.group.static_name("")
    }
}

/// `role_arn_template` or `role_arn_map` (with `role_arn_map_key`), each only with
/// `role_arn_allowed`: a record must never choose an account the operator did not list.
fn role_routing(
    get: &impl Fn(&str) -> Option<String>,
    role_arn: &Option<String>,
) -> Result<Option<RoleRouting>, ConfigError> {
    let (template, map, map_key, allowed) = (
        given(get, &ROLE_ARN_TEMPLATE),
        given(get, &ROLE_ARN_MAP),
        given(get, &ROLE_ARN_MAP_KEY),
        given(get, &ROLE_ARN_ALLOWED),
    );
    let source = match (template, map, map_key) {
        (Some(_), Some(path), _) => {
            return Err(bad(&ROLE_ARN_MAP, &path, "unset when role_arn_template is set (set one of them)"))
        }
        (Some(t), None, None) => (
            ROLE_ARN_TEMPLATE,
            t.clone(),
            RoleSource::Template(parse_template(&ROLE_ARN_TEMPLATE, &t, NameKind::Role)?.into()),
        ),
        (None, Some(path), Some(key)) => {
            let key = parse_template(&ROLE_ARN_MAP_KEY, &key, NameKind::Role)?;
            (ROLE_ARN_MAP, path.clone(), RoleSource::Map { key: key.into(), path })
        }
        (None, Some(_), None) => {
            return Err(missing(
                &ROLE_ARN_MAP_KEY,
                "a template to look records up by in role_arn_map, e.g. $kubernetes['namespace_name']",
            ))
        }
        (_, None, Some(key)) => return Err(bad(&ROLE_ARN_MAP_KEY, &key, "only together with role_arn_map")),
        (None, None, None) => {
            return match allowed {
                Some(v) => Err(bad(&ROLE_ARN_ALLOWED, &v, "only together with role_arn_template or role_arn_map")),
                None => Ok(None),
            }
        }
    };
    let (key, value, source) = source;
    let Some(allowed) = allowed else {
        return Err(bad(
            &key,
            &value,
            format!("a role chosen per record only together with role_arn_allowed: {ALLOWED_FORM}"),
        ));
    };
    let allowed =
        AllowList::parse(&allowed).map_err(|why| bad(&ROLE_ARN_ALLOWED, &allowed, format!("{ALLOWED_FORM}; {why}")))?;
    Ok(Some(RoleRouting { source, allowed, fallback: role_arn.clone() }))
}

/// `role_arn_map` could not be read or parsed at Init (the file is the shell's to read).
pub fn role_map_error(path: &str, why: impl fmt::Display) -> ConfigError {
    bad(&ROLE_ARN_MAP, path, format!("a readable file of 'value role-arn' lines ({why})"))
}

/// `log_group_template` over `log_group_name` over `default_log_group_name`.
fn group_rule(get: &impl Fn(&str) -> Option<String>, warnings: &mut Vec<String>) -> Result<NameRule, ConfigError> {
    let default = value(get, &DEFAULT_LOG_GROUP_NAME);
    check_group_name(&default).map_err(|a| bad(&DEFAULT_LOG_GROUP_NAME, &default, a))?;
    let template = given(get, &LOG_GROUP_TEMPLATE).map(|t| parse_template(&LOG_GROUP_TEMPLATE, &t, NameKind::Group));
    let base =
        given(get, &LOG_GROUP_NAME).map(|v| configured(&LOG_GROUP_NAME, &v, NameKind::Group, warnings)).transpose()?;
    name_rule(template.transpose()?, base, default)
        .ok_or_else(|| missing(&LOG_GROUP_NAME, "a log group name (or set log_group_template)"))
}

/// `log_stream_template` over `log_stream_name` / `log_stream_prefix` over `default_log_stream_name`.
fn stream_rule(get: &impl Fn(&str) -> Option<String>, warnings: &mut Vec<String>) -> Result<NameRule, ConfigError> {
    let default = value(get, &DEFAULT_LOG_STREAM_NAME);
    check_stream_name(&default).map_err(|a| bad(&DEFAULT_LOG_STREAM_NAME, &default, a))?;
    let template = given(get, &LOG_STREAM_TEMPLATE).map(|t| parse_template(&LOG_STREAM_TEMPLATE, &t, NameKind::Stream));
    let base = match (given(get, &LOG_STREAM_NAME), given(get, &LOG_STREAM_PREFIX)) {
        (Some(name), None) => Some(configured(&LOG_STREAM_NAME, &name, NameKind::Stream, warnings)?),
        (None, Some(prefix)) => {
            check_stream_name(&prefix).map_err(|a| bad(&LOG_STREAM_PREFIX, &prefix, a))?;
            Some(Configured::Static(NameRule::TagPrefix(prefix)))
        }
        (Some(_), Some(prefix)) => {
            return Err(bad(&LOG_STREAM_PREFIX, &prefix, "unset when log_stream_name is set (set exactly one)"))
        }
        (None, None) => None,
    };
    name_rule(template.transpose()?, base, default).ok_or_else(|| {
        missing(&LOG_STREAM_NAME, "a stream name, or set log_stream_prefix (exactly one), or log_stream_template")
    })
}

/// A configured name: static (a fixed name or a prefix), or holding variables.
enum Configured {
    Static(NameRule),
    Template(GoTemplate),
}

/// The explicit template wins, then a configured name holding variables; what falls back when
/// a variable cannot be resolved is the static configured name, else the default.
fn name_rule(template: Option<Template>, base: Option<Configured>, default: String) -> Option<NameRule> {
    let (template, fallback) = match (template, base) {
        (Some(template), Some(Configured::Static(fallback))) => (template.into(), fallback),
        (Some(template), _) => (template.into(), NameRule::Fixed(default)),
        (None, Some(Configured::Template(template))) => (NameTemplate::Go(template), NameRule::Fixed(default)),
        (None, Some(Configured::Static(rule))) => return Some(rule),
        (None, None) => return None,
    };
    Some(NameRule::Template { template, fallback: Box::new(fallback) })
}

fn parse_template(key: &Key, text: &str, kind: NameKind) -> Result<Template, ConfigError> {
    Template::parse(text, kind).map_err(|why| bad(key, text, why))
}

/// A name with `$(...)` is a template read as the Go plugin reads it (any other `$` is text,
/// as in both peers). A name without variables is sent as it is when CloudWatch takes it (as
/// the C plugin does: a `#` stays); one CloudWatch would refuse is sent as the Go plugin sends
/// it, sanitised (and cut to 512 bytes). Each lenient reading is one warning line.
fn configured(key: &Key, v: &str, kind: NameKind, warnings: &mut Vec<String>) -> Result<Configured, ConfigError> {
    let (template, readings) = GoTemplate::parse(v, kind);
    let mut warn = |readings: Vec<String>| {
        if !readings.is_empty() {
            warnings.push(format!("{} '{v}' read as the Go plugin reads it: {}", key.name, readings.join("; ")));
        }
    };
    if !template.is_static() {
        warn(readings);
        return Ok(Configured::Template(template));
    }
    let check = if kind == NameKind::Group { check_group_name } else { check_stream_name };
    if check(v).is_ok() {
        // only the `$` line can apply: the text needs no sanitising
        warn(readings.into_iter().filter(|r| r.contains("'$'")).collect());
        return Ok(Configured::Static(NameRule::Fixed(v.to_owned())));
    }
    let mut name = String::new();
    let sanitised = template.render("", &[], &Default::default(), &mut name);
    if sanitised.is_err() || check(&name).is_err() {
        return Err(bad(key, v, check(&name).err().unwrap_or("a non-empty name")));
    }
    let mut readings = readings;
    if v.len() > MAX_NAME_BYTES {
        readings.push(format!("cut to {MAX_NAME_BYTES} bytes"));
    }
    warn(readings);
    Ok(Configured::Static(NameRule::Fixed(name)))
}

fn new_group(get: &impl Fn(&str) -> Option<String>, warnings: &mut Vec<String>) -> Result<NewGroup, ConfigError> {
    let days = value(get, &LOG_RETENTION_DAYS);
    let retention_days = match days.trim().parse::<i32>() {
        Ok(0) => None,
        Ok(d) if RETENTION_DAYS.contains(&d) => Some(d),
        _ => {
            let list: Vec<String> = RETENTION_DAYS.iter().map(i32::to_string).collect();
            return Err(bad(&LOG_RETENTION_DAYS, &days, format!("0 (never expire) or one of {}", list.join(", "))));
        }
    };
    let tags = match given(get, &NEW_LOG_GROUP_TAGS) {
        None => Vec::new(),
        Some(v) => {
            let (tags, leniencies) = parse_tags(&v).ok_or_else(|| {
                bad(
                    &NEW_LOG_GROUP_TAGS,
                    &v,
                    format!(
                        "k=v,k2=v2: at most {MAX_TAGS} tags, keys 1-{MAX_TAG_KEY} and values 0-{MAX_TAG_VALUE} characters, keys not starting aws:"
                    ),
                )
            })?;
            if !leniencies.is_empty() {
                let read: Vec<String> = tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
                warnings.push(format!(
                    "new_log_group_tags '{v}' read as the Go plugin reads it ({}): {}",
                    leniencies.join(", "),
                    read.join(",")
                ));
            }
            tags
        }
    };
    let class = match given(get, &LOG_GROUP_CLASS) {
        None => None,
        Some(v) => match v.to_ascii_uppercase().as_str() {
            c @ ("STANDARD" | "INFREQUENT_ACCESS") => Some(c.to_owned()),
            _ => return Err(bad(&LOG_GROUP_CLASS, &v, "STANDARD or INFREQUENT_ACCESS")),
        },
    };
    let kms_key_id = match given(get, &KMS_KEY_ID) {
        None => None,
        Some(v) => {
            let parts: Vec<&str> = v.splitn(6, ':').collect();
            let ok = matches!(parts.as_slice(), ["arn", partition, "kms", region, account, resource]
                if partition.starts_with("aws") && !region.is_empty()
                    && account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())
                    && resource.strip_prefix("key/").is_some_and(|id| !id.is_empty()));
            if !ok {
                return Err(bad(&KMS_KEY_ID, &v, "a KMS key ARN like arn:aws:kms:us-east-1:222222222222:key/<id>"));
            }
            Some(v)
        }
    };
    Ok(NewGroup { retention_days, tags, class, kms_key_id })
}

/// `new_log_group_tags`, in the order first written.
type Tags = Vec<(String, String)>;

/// `k=v,k2=v2` read as the Go plugin's `tagKeysToMap` reads it (keys and values trimmed, empty
/// entries skipped, no `=` an empty value, a repeated key's last value wins), then held to
/// CloudWatch's tag rules. Also returns the leniencies used, for a warning.
fn parse_tags(v: &str) -> Option<(Tags, Vec<&'static str>)> {
    let allowed = |s: &str| s.chars().all(|c| c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c));
    let mut tags: Tags = Vec::new();
    let mut leniencies = Vec::new();
    let mut note = |what| {
        if !leniencies.contains(&what) {
            leniencies.push(what);
        }
    };
    for pair in v.split(',') {
        let (k, val) = pair.split_once('=').unwrap_or_else(|| {
            note("entries without '=' have an empty value");
            (pair, "")
        });
        let (k, val) = (k.trim(), val.trim());
        if k.is_empty() {
            note("entries without a key are skipped");
            continue;
        }
        let key_ok = k.chars().count() <= MAX_TAG_KEY && allowed(k) && !k.starts_with("aws:");
        if !key_ok || val.chars().count() > MAX_TAG_VALUE || !allowed(val) {
            return None;
        }
        match tags.iter_mut().find(|(t, _)| t == k) {
            Some(tag) => {
                note("a repeated key takes its last value");
                tag.1 = val.to_owned();
            }
            None => tags.push((k.to_owned(), val.to_owned())),
        }
    }
    (tags.len() <= MAX_TAGS).then_some((tags, leniencies))
}

fn metric_format(get: &impl Fn(&str) -> Option<String>) -> Result<Option<MetricFormat>, ConfigError> {
    let dimensions = match given(get, &METRIC_DIMENSIONS) {
        Some(v) => parse_dimensions(&v).map_err(|a| bad(&METRIC_DIMENSIONS, &v, a))?,
        None => Vec::new(),
    };
    let fields = match given(get, &METRIC_FIELDS) {
        Some(v) => parse_fields(&v).map_err(|a| bad(&METRIC_FIELDS, &v, a))?,
        None => Vec::new(),
    };
    match given(get, &METRIC_NAMESPACE) {
        Some(ns) => {
            check_namespace(&ns).map_err(|a| bad(&METRIC_NAMESPACE, &ns, a))?;
            Ok(Some(MetricFormat { namespace: ns, dimensions, fields }))
        }
        None if !dimensions.is_empty() => {
            Err(missing(&METRIC_NAMESPACE, "a namespace, since metric_dimensions is set"))
        }
        None if !fields.is_empty() => Err(missing(&METRIC_NAMESPACE, "a namespace, since metric_fields is set")),
        None => Ok(None),
    }
}

/// `extra_user_agent`, as the SDK will take it in the `AppName` `cloudwatch_rs-<value>`.
fn check_extra_user_agent(v: String) -> Result<String, ConfigError> {
    if app_name_suffix_ok(&v) {
        return Ok(v);
    }
    Err(bad(&EXTRA_USER_AGENT, &v, format!("up to {MAX_EXTRA_USER_AGENT} of A-Z a-z 0-9 and {APP_NAME_SYMBOLS}")))
}

/// What the SDK's `AppName::new` accepts after `cloudwatch_rs-` (non-empty already):
/// ASCII letters, digits and `APP_NAME_SYMBOLS`; and at most `MAX_EXTRA_USER_AGENT` bytes.
fn app_name_suffix_ok(v: &str) -> bool {
    v.len() <= MAX_EXTRA_USER_AGENT && v.chars().all(|c| c.is_ascii_alphanumeric() || APP_NAME_SYMBOLS.contains(c))
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
        Err(bad(&REGION, r, "an AWS region such as us-east-1"))
    }
}

/// `arn:<partition>:iam::<12-digit account>:role/<path/name>`.
fn check_role_arn(v: &str) -> Result<(), ConfigError> {
    match parse_role_arn(v) {
        Some(_) => Ok(()),
        None => Err(bad(&ROLE_ARN, v, ROLE_ARN_FORM)),
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
fn check_url(key: &Key, v: &str) -> Result<String, ConfigError> {
    let allowed = "a full URL such as https://logs.us-east-1.amazonaws.com or http://127.0.0.1:4566";
    if !(v.starts_with("https://") || v.starts_with("http://")) {
        return Err(bad(key, v, allowed));
    }
    let (host, port) = split_authority(v).ok_or_else(|| bad(key, v, allowed))?;
    let host_ok = host.bytes().all(|b| b.is_ascii_alphanumeric() || b".-_:".contains(&b));
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
    if host_ok && port_ok && !v.contains(char::is_whitespace) {
        Ok(v.trim_end_matches('/').to_owned())
    } else {
        Err(bad(key, v, allowed))
    }
}

/// Plain `http://` only where it cannot leave the host: to loopback, and for
/// `credentials_endpoint` also to the container-credential addresses (`HostReach`). Anything
/// else — a name included, whatever it resolves to — is refused unless `allowed`
/// (`allow_cleartext_endpoints`); then the warning to log at every start names them.
fn check_cleartext(urls: &[(&Key, &Option<String>)], allowed: bool) -> Result<Option<String>, ConfigError> {
    let mut elsewhere = Vec::new();
    for (key, url) in urls {
        let Some(url) = url.as_deref().filter(|u| u.starts_with("http://")) else { continue };
        let containers = key.name == CREDENTIALS_ENDPOINT.name;
        let reach = split_authority(url).map_or(HostReach::Elsewhere, |(host, _)| host_reach(host));
        match reach {
            HostReach::Loopback => continue,
            HostReach::ContainerCredentials if containers => continue,
            _ if allowed => elsewhere.push(format!("{} {url}", key.name)),
            _ => {
                let local = if containers {
                    "127.0.0.0/8, [::1], localhost, or the container-credential addresses 169.254.170.2, \
                     169.254.170.23, [fd00:ec2::23]"
                } else {
                    "127.0.0.0/8, [::1] or localhost (or https://)"
                };
                return Err(bad(
                    key,
                    url,
                    format!(
                        "http:// only to this host: {local}; a name other than localhost cannot be proven local \
                         (set {} on for a development setup)",
                        ALLOW_CLEARTEXT_ENDPOINTS.name
                    ),
                ));
            }
        }
    }
    Ok((!elsewhere.is_empty()).then(|| {
        format!(
            "{} is on: {} in cleartext to a host that may not be this one; requests, their signatures and \
             session tokens cross the network unencrypted (for development only)",
            ALLOW_CLEARTEXT_ENDPOINTS.name,
            elsewhere.join(", ")
        )
    }))
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

    fn with(extra: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut pairs: Vec<(&str, &str)> =
            BASE.iter().copied().filter(|(k, _)| !extra.iter().any(|(e, _)| e == k)).collect();
        pairs.extend(extra.iter().filter(|(_, v)| !v.is_empty()));
        config(&pairs)
    }

    #[test]
    fn roles_chosen_per_record_need_an_allow_list() {
        let t = ("role_arn_template", "arn:aws:iam::$kubernetes['labels']['log-account']:role/log-writer");
        let err = with(&[t]).unwrap_err();
        assert_eq!((err.key, err.value.as_deref()), ("role_arn_template", Some(t.1)));
        assert!(err.to_string().contains("role_arn_allowed"), "{err}");
        let c = with(&[t, ("role_arn_allowed", "222222222222, arn:aws:iam::333333333333:role/log-*")]).unwrap();
        let roles = c.roles.unwrap();
        assert!(roles.per_record());
        assert_eq!(roles.allowed.accounts(), ["222222222222", "333333333333"]);
        assert_eq!(c.role_cache_size, 64);
        let map = [("role_arn_map", "/etc/roles"), ("role_arn_allowed", "222222222222")];
        let err = with(&map).unwrap_err();
        assert_eq!(err.key, "role_arn_map_key");
        let c = with(&[map[0], map[1], ("role_arn_map_key", "$kubernetes['namespace_name']")]).unwrap();
        assert!(matches!(c.roles.unwrap().source, RoleSource::Map { ref path, .. } if path == "/etc/roles"));
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[map[0], ("role_arn_map_key", "$ns")], "role_arn_map"),
            (&[t, map[0], map[1]], "role_arn_map"),
            (&[t, ("role_arn_allowed", "arn:aws:iam::*:role/x")], "role_arn_allowed"),
            (&[t, ("role_arn_allowed", "")], "role_arn_template"),
            (&[("role_arn_allowed", "222222222222")], "role_arn_allowed"),
            (&[("role_arn_map_key", "$ns")], "role_arn_map_key"),
            (&[t, map[1], ("role_cache_size", "0")], "role_cache_size"),
            (&[("role_arn_template", "arn:aws:iam::$(a:role/x"), map[1]], "role_arn_template"),
            (&[("role_arn_template", "arn:aws:iam::*:role/$a"), map[1]], "role_arn_template"),
        ];
        for (pairs, key) in cases {
            assert_eq!(with(pairs).unwrap_err().key, *key, "{pairs:?}");
        }
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
        assert_eq!(c.batches_in_flight, 2);
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
            (&[("log_group_name", "aws/a b")], "log_group_name"),
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
            (&[("new_log_group_tags", "aws:team=x")], "new_log_group_tags"),
            (&[("new_log_group_tags", "a=1*")], "new_log_group_tags"),
            (&[("log_group_template", "$(upper(tag))")], "log_group_template"),
            (&[("log_stream_template", "x-$(ecs_nope)")], "log_stream_template"),
            (&[("log_group_name", "aws/app-$(tag")], "log_group_name"),
            (&[("default_log_group_name", "a b")], "default_log_group_name"),
            (&[("log_key", "$a['b'")], "log_key"),
            (&[("log_key_missing", "maybe")], "log_key_missing"),
            (&[("metric_dimensions", "a;;b"), ("metric_namespace", "ns")], "metric_dimensions"),
            (&[("metric_dimensions", "host")], "metric_namespace"),
            (&[("metric_fields", "a")], "metric_namespace"),
            (&[("metric_fields", "a,a"), ("metric_namespace", "ns")], "metric_fields"),
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
            (&[("endpoint", "http://10.0.0.1")], "endpoint"),
            (&[("sts_endpoint", "http://localstack:4566")], "sts_endpoint"),
            (&[("credentials_endpoint", "http://10.0.0.1/creds")], "credentials_endpoint"),
            (&[("allow_cleartext_endpoints", "sure")], "allow_cleartext_endpoints"),
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
            ("metric_fields", "latency_ms"),
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
    fn names_read_as_the_go_plugin_reads_them() {
        let name = |rule: &NameRule| rule.static_name("t");
        // text CloudWatch refuses is sanitised as Go does, with one warning line per key
        let c =
            with(&[("log_group_name", "go21 group"), ("log_stream_prefix", ""), ("log_stream_name", "go22:stream")])
                .unwrap();
        assert_eq!((name(&c.group), name(&c.stream)), ("go21.group".into(), "go22.stream".into()));
        assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
        assert!(c.warnings[0].starts_with("log_group_name 'go21 group' read as the Go plugin reads it: "));
        assert!(c.warnings[1].contains("'go22:stream' is written 'go22.stream'"), "{:?}", c.warnings);
        // a name CloudWatch takes is kept as it is (the C plugin's reading: `#` stays)
        let c = with(&[("log_group_name", "/app#1")]).unwrap();
        assert_eq!(name(&c.group), "/app#1");
        assert!(c.warnings.is_empty());
        // `$` without `(` is text; a stream name takes it, a group's sanitises it; both warn
        let c = with(&[("log_group_name", "g-$TAG"), ("log_stream_prefix", ""), ("log_stream_name", "$TAG")]).unwrap();
        assert_eq!((name(&c.group), name(&c.stream)), ("g-.TAG".into(), "$TAG".into()));
        assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
        assert!(c.warnings.iter().all(|w| w.contains("'$' not followed by '(' is text")), "{:?}", c.warnings);
        // malformed variables are read as Go reads them, with a warning
        let c =
            with(&[("log_group_name", "$(tag[x])"), ("log_stream_prefix", ""), ("log_stream_name", "$(upper(tag))")])
                .unwrap();
        assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
        assert!(c.warnings[0].contains("'$(tag[x])' is tag part 0"), "{:?}", c.warnings);
        assert!(c.warnings[1].contains("'$(upper(tag)' is the record key 'upper(tag'"), "{:?}", c.warnings);
        // long static names are cut as Go cuts them
        let long = "a".repeat(600);
        let c = with(&[("log_group_name", &format!("{long} x"))]).unwrap();
        assert_eq!(name(&c.group), "a".repeat(512));
        assert!(c.warnings[0].contains("cut to 512 bytes"));
        // plain variables need no warning
        assert!(with(&[("log_group_name", "/ecs/$(ecs_cluster)/$(kubernetes['namespace_name'])")])
            .unwrap()
            .warnings
            .is_empty());
    }

    #[test]
    fn tags_read_as_the_go_plugin_reads_them() {
        let c = with(&[("new_log_group_tags", "a=1, b , =x,,a=2,c==d")]).unwrap();
        let tags: Vec<(&str, &str)> = c.new_group.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(tags, [("a", "2"), ("b", ""), ("c", "=d")]);
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert!(c.warnings[0].contains("a=2,b=,c==d"), "{:?}", c.warnings);
        assert!(with(&[("new_log_group_tags", "team=logs, env=prod")]).unwrap().warnings.is_empty());
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
    fn record_accessor_read_leniently_is_a_warning() {
        // Fluent Bit starts with these too (its lexer logs the skipped character)
        let c = with(&[("log_stream_template", "$-app."), ("log_group_template", "g-$TAG")]).unwrap();
        assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
        assert!(c.warnings[0].contains("'$-app.'") && c.warnings[0].contains("\"-\" skipped"), "{:?}", c.warnings);
        assert!(c.warnings[1].contains("'.' after the last variable is dropped"), "{:?}", c.warnings);
    }

    #[test]
    fn cleartext_only_where_it_cannot_leave_the_host() {
        let loopback = [
            "http://127.0.0.1:4566",
            "http://127.1.2.3:4566",
            "http://localhost:4566",
            "http://LOCALHOST",
            "http://[::1]",
            "http://[::1]:4566/",
        ];
        let containers = [
            "http://169.254.170.2/v2/credentials/x",
            "http://169.254.170.23/v1/credentials",
            "http://[fd00:ec2::23]/c",
        ];
        let elsewhere = [
            "http://10.0.0.1",
            "http://localstack:4566",
            "http://my-host.local",
            "http://127.0.0.1.nip.io",
            "http://[::ffff:127.0.0.1]",
            "http://169.254.169.254",
        ];
        for key in ["endpoint", "sts_endpoint", "credentials_endpoint"] {
            for url in loopback {
                let c = with(&[(key, url)]).unwrap_or_else(|e| panic!("{key} {url}: {e}"));
                assert!(c.warnings.is_empty(), "{key} {url}: {:?}", c.warnings);
            }
            for url in containers {
                let refused = with(&[(key, url)]).is_err();
                assert_eq!(refused, key != "credentials_endpoint", "{key} {url}");
            }
            for url in elsewhere {
                let line = with(&[(key, url)]).expect_err(&format!("{key} {url}")).to_string();
                assert!(
                    line.starts_with(&format!(
                        "invalid value for '{key}': '{url}'; allowed: http:// only to this host: 127.0.0.0/8"
                    )),
                    "{line}"
                );
                assert!(line.contains("allow_cleartext_endpoints") && !line.contains('\n'), "{line}");
                // the opt-in lets it through, with one warning naming it
                let c = with(&[(key, url), ("allow_cleartext_endpoints", "on")]).unwrap();
                assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
                assert!(
                    c.warnings[0].contains(&format!("{key} {url}")) && c.warnings[0].contains("cleartext"),
                    "{:?}",
                    c.warnings
                );
            }
        }
        // userinfo is never a URL the plugin takes, cleartext or not
        for url in
            ["http://127.0.0.1@evil.example", "https://127.0.0.1@evil.example", "http://localhost:80@evil.example"]
        {
            let e = with(&[("endpoint", url), ("allow_cleartext_endpoints", "on")]).expect_err(url);
            assert_eq!(e.key, "endpoint");
        }
        assert_eq!(
            with(&[("credentials_endpoint", "http://user@127.0.0.1/c")]).unwrap_err().key,
            "credentials_endpoint"
        );
        // https is not cleartext: any host, no warning
        let c = with(&[("endpoint", "https://localstack:4566"), ("sts_endpoint", "https://10.0.0.1")]).unwrap();
        assert!(c.warnings.is_empty());
        // both named in one line
        let c = with(&[
            ("endpoint", "http://localstack:4566"),
            ("sts_endpoint", "http://localstack:4566"),
            ("allow_cleartext_endpoints", "on"),
        ])
        .unwrap();
        assert_eq!(c.warnings.len(), 1);
        assert!(c.warnings[0].contains("endpoint http://localstack:4566, sts_endpoint http://localstack:4566"));
        assert_eq!(with(&[("allow_cleartext_endpoints", "sure")]).unwrap_err().key, "allow_cleartext_endpoints");
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

    #[test]
    fn an_unset_key_is_its_documented_default() {
        let unset = with(&[]).unwrap();
        let mut literal = 0;
        for key in KEYS {
            if let Some(default) = key.default.value() {
                literal += 1;
                assert_eq!(
                    with(&[(key.name, default)]),
                    Ok(unset.clone()),
                    "{} set to its default '{default}'",
                    key.name
                );
            }
        }
        assert!(literal >= 15, "only {literal} keys have a literal default");
    }

    #[test]
    fn extra_user_agent_is_what_the_sdk_takes_as_an_app_name() {
        // aws-types' AppName::new: ASCII letters and digits and !#$%&'*+-.^_`|~, nothing else
        for ok in ["firelens", "asdf1234ASDF!#$%&'*+-.^_`|~", "1", "", &"a".repeat(MAX_EXTRA_USER_AGENT)] {
            assert!(app_name_suffix_ok(ok), "{ok}");
        }
        let too_long = "a".repeat(MAX_EXTRA_USER_AGENT + 1);
        for no in ["foo bar", "🚀", "é", "a/b", "a;b", "(x)", "a\tb", "a,b", "a\"b", "a@b", "a=b", &too_long] {
            assert!(!app_name_suffix_ok(no), "{no}");
        }
    }

    #[test]
    fn the_meanings_state_the_limits() {
        let days: Vec<String> = RETENTION_DAYS.iter().map(i32::to_string).collect();
        let (last, rest) = days.split_last().unwrap();
        let cases = [
            (FLUSH_TIMEOUT, format!("`{}`-`{}`", FLUSH_TIMEOUT_SPAN.min, FLUSH_TIMEOUT_SPAN.max)),
            (
                ROLE_SESSION_DURATION,
                format!("`{}`-`{}`", ROLE_SESSION_DURATION_SPAN.min, ROLE_SESSION_DURATION_SPAN.max),
            ),
            (BATCHES_IN_FLIGHT, format!("`1`-`{MAX_BATCHES_IN_FLIGHT}`")),
            (
                NEW_LOG_GROUP_TAGS,
                format!("at most {MAX_TAGS}; keys 1-{MAX_TAG_KEY}, values 0-{MAX_TAG_VALUE} characters"),
            ),
            (LOG_RETENTION_DAYS, format!("{} or {last}.", rest.join(", "))),
        ];
        for (key, limit) in cases {
            assert!(key.meaning.contains(&limit), "the meaning of {} lacks {limit}", key.name);
        }
        for span in [FLUSH_TIMEOUT_SPAN, ROLE_SESSION_DURATION_SPAN, STATS_INTERVAL_SPAN] {
            assert!(span.allows(span.min).is_some() && span.allows(span.max).is_some(), "{}", span.allowed());
        }
    }

    #[test]
    fn the_messages_are_word_for_word() {
        let long_marker = "x".repeat(1025);
        let cases = [
            ("flush_timeout", "0s", "a duration from 1s to 600s, e.g. 30s, 1500ms, 2m"),
            ("role_session_duration", "13h", "a duration from 15m to 12h, e.g. 1h, 3600, 45m"),
            ("stats_interval", "25h", "a duration from 1s to 24h (e.g. 60s, 5m), or off"),
            ("startup_check", "maybe", "off, warn or strict"),
            ("log_key_missing", "keep", "drop or record"),
            ("truncation_marker", &long_marker, "at most 1024 bytes, or off"),
            ("batches_in_flight", "9", "a whole number from 1 to 8"),
            (
                "new_log_group_tags",
                "aws:a",
                "k=v,k2=v2: at most 50 tags, keys 1-128 and values 0-256 characters, keys not starting aws:",
            ),
            ("auto_create_group", "maybe", "on/off, true/false, yes/no or 1/0"),
            ("extra_user_agent", "a b", "up to 64 of A-Z a-z 0-9 and !#$%&'*+-.^_`|~"),
        ];
        for (key, value, allowed) in cases {
            let line = with(&[(key, value)]).unwrap_err().to_string();
            assert_eq!(line, format!("invalid value for '{key}': '{value}'; allowed: {allowed}"));
        }
        let line = with(&[("startup_check", "Strict!")]).unwrap_err().to_string();
        assert_eq!(
            line, "invalid value for 'startup_check': 'strict!'; allowed: off, warn or strict",
            "as it was: lowercased"
        );
        let line = with(&[("log_stream_prefix", "")]).unwrap_err().to_string();
        assert_eq!(line, "missing 'log_stream_name'; allowed: a stream name, or set log_stream_prefix (exactly one), or log_stream_template");
    }

    #[test]
    fn log_levels() {
        assert_eq!(LogLevel::parse(" WARNING "), Some(LogLevel::Warn));
        assert_eq!(LogLevel::parse("trace"), Some(LogLevel::Trace));
        assert_eq!(LogLevel::parse("loud"), None);
        assert!(LogLevel::Error < LogLevel::Debug);
    }
}

#[cfg(test)]
mod readme {
    const BEGIN: &str = "<!-- keys:begin -->\n";
    const END: &str = "<!-- keys:end -->";

    /// `CWRS_UPDATE_README=1 cargo test --lib readme` writes the table into the README.
    #[test]
    fn the_readme_table_is_the_key_table() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
        let readme = std::fs::read_to_string(path).unwrap();
        let begin = readme.find(BEGIN).expect("README.md lacks the line <!-- keys:begin -->") + BEGIN.len();
        let end = begin + readme[begin..].find(END).expect("README.md lacks the line <!-- keys:end -->");
        let expected = super::markdown_table();
        if readme[begin..end] == expected {
            return;
        }
        if std::env::var_os("CWRS_UPDATE_README").is_some() {
            std::fs::write(path, format!("{}{expected}{}", &readme[..begin], &readme[end..])).unwrap();
            return;
        }
        panic!(
            "README.md's key table is not the one src/core/config.rs makes; run\n    \
             CWRS_UPDATE_README=1 cargo test --lib readme\nto write it there. The table is:\n{expected}"
        );
    }
}
