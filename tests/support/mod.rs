//! Shared by the integration tests (and benches/e2e.rs): where the built artefacts are, one
//! lock for the tests of a binary that share the plugin, the AWS environment a plugin runs in,
//! the plugin started as Fluent Bit starts it, and moto_server as the two AWS accounts
//! (tests/support/moto_fixture.py), on 127.0.0.1.
#![allow(dead_code)]

use cwrs_test_host::{Host, Output, Profile, RunReport, StderrCapture};
use std::ffi::c_int;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn from_env_or(var: &str, default: PathBuf) -> PathBuf {
    std::env::var_os(var).map(PathBuf::from).unwrap_or(default)
}

/// The `.so` under test (`make test` builds it with `cargo build --release`).
pub fn plugin() -> PathBuf {
    let p = from_env_or("CWRS_PLUGIN", root().join("target/release/libcloudwatch_rs.so"));
    assert!(p.exists(), "{} missing: run `make build` (or `make test`)", p.display());
    p
}

/// The test host's command-line front end.
pub fn host_bin() -> PathBuf {
    let p = from_env_or("CWRS_HOST", root().join("target/release/cwrs-test-host"));
    assert!(p.exists(), "{} missing: run `make build` (or `make test`)", p.display());
    p
}

/// The venv's python (with moto[server] and boto3), as `make test` sets it up.
pub fn python() -> PathBuf {
    from_env_or("CWRS_PYTHON", root().join(".venv/bin/python"))
}

/// The CPU's model name, for a benchmark's header line.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        .unwrap_or_default()
}

/// A fresh scratch directory under the system temp dir.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cwrs-{name}-{}-{}", std::process::id(), unique()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn unique() -> u64 {
    static N: Mutex<u64> = Mutex::new(0);
    let mut n = N.lock().unwrap();
    *n += 1;
    *n
}

/// Serialises the tests of one binary that share the plugin's global state and this process's
/// environment. A test that failed while holding it does not fail the ones after it.
pub fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// The AWS environment of a plugin: IMDS off, no config or shared credentials file, and only
/// what is added here. `apply` sets it on this process (before the plugin's first Init) and
/// removes the variables of the credential chain it does not set; `vars` is the list for a
/// child process (whose environment starts empty).
#[derive(Debug, Clone)]
pub struct Env {
    vars: Vec<(String, String)>,
}

/// Variables that change where the credential chain looks; `apply` leaves none set but those
/// the environment names.
const CHAIN_VARS: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_REGION",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_STS",
];

impl Env {
    /// IMDS off, config and shared credentials files at /nonexistent.
    pub fn new() -> Env {
        Env::empty()
            .var("AWS_EC2_METADATA_DISABLED", "true")
            .var("AWS_CONFIG_FILE", "/nonexistent")
            .var("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    }

    /// Nothing at all (for a child process).
    pub fn empty() -> Env {
        Env { vars: Vec::new() }
    }

    /// Static keys.
    pub fn keys(self, access_key_id: &str, secret_access_key: &str) -> Env {
        self.var("AWS_ACCESS_KEY_ID", access_key_id).var("AWS_SECRET_ACCESS_KEY", secret_access_key)
    }

    /// `key` set to `value`, replacing an earlier value; an empty value leaves `key` unset.
    pub fn var(mut self, key: &str, value: impl Into<String>) -> Env {
        self.vars.retain(|(k, _)| k != key);
        self.vars.push((key.to_string(), value.into()));
        self
    }

    /// What a child process gets.
    pub fn vars(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Sets the environment on this process.
    pub fn apply(&self) {
        for k in CHAIN_VARS {
            std::env::remove_var(k);
        }
        for (k, v) in &self.vars {
            if v.is_empty() {
                std::env::remove_var(k);
            } else {
                std::env::set_var(k, v);
            }
        }
    }
}

/// The plugin loaded, registered and initialised in this process as Fluent Bit does at startup,
/// one `[OUTPUT]` instance per set of properties (each Init must succeed). `stop`, or dropping
/// it (a failing test too), runs ExitCtx for every instance, then Unregister; `stop` hands back
/// what the plugin wrote to stderr when it was started `logged`.
pub struct Plugin {
    pub host: Arc<Host>,
    pub reg: usize,
    pub outs: Vec<Arc<Output>>,
    capture: Option<StderrCapture>,
    stopped: bool,
}

impl Plugin {
    /// One instance in Fluent Bit `profile`.
    pub fn start(profile: Profile, props: &[(&str, &str)]) -> Plugin {
        Plugin::with(profile, false, &[props])
    }

    /// `start`, with stderr captured from before the load until `stop`.
    pub fn start_logged(profile: Profile, props: &[(&str, &str)]) -> Plugin {
        Plugin::with(profile, true, &[props])
    }

    /// One instance per entry of `instances`, all of one registration, initialised in order.
    pub fn with(profile: Profile, logged: bool, instances: &[&[(&str, &str)]]) -> Plugin {
        let capture = logged.then(StderrCapture::start);
        let host = Arc::new(Host::load(&plugin(), profile).unwrap());
        let reg = host.register().unwrap();
        let mut started = Plugin { host, reg, outs: Vec::new(), capture, stopped: false };
        for props in instances {
            let out = Arc::new(started.host.new_output(reg, props));
            started.outs.push(out.clone());
            assert_eq!(started.host.init(&out), 1, "Init, Fluent Bit {}", profile.name);
        }
        started
    }

    /// The first instance.
    pub fn out(&self) -> &Arc<Output> {
        &self.outs[0]
    }

    /// `Host::run` on the first instance.
    pub fn run(&self, chunks: Vec<(Vec<u8>, String)>, retry_wait: Duration) -> RunReport {
        self.host.run(self.out(), chunks, retry_wait)
    }

    /// `Host::flush` on the first instance.
    pub fn flush(&self, data: &[u8], tag: &str) -> c_int {
        self.host.flush(self.out(), data, tag)
    }

    /// ExitCtx for every instance (each must answer FLB_OK), then Unregister; the captured log.
    pub fn stop(mut self) -> String {
        let exits = self.exit_and_unregister();
        let log = self.capture.take().map(StderrCapture::finish).unwrap_or_default();
        assert!(exits.iter().all(|&e| e == Some(1)), "ExitCtx answered {exits:?}");
        log
    }

    fn exit_and_unregister(&mut self) -> Vec<Option<c_int>> {
        if std::mem::replace(&mut self.stopped, true) {
            return Vec::new();
        }
        let exits = self.outs.iter().map(|out| self.host.exit(out)).collect();
        self.host.unregister(self.reg);
        exits
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        self.exit_and_unregister();
        if let Some(capture) = self.capture.take() {
            capture.finish();
        }
    }
}

/// An instance with `Workers 4` writing to `group` through the strict endpoint at `url`
/// (CloudWatch and STS, tests/aws-standins) as its role `arn:aws:iam::222222222222:role/strict`.
pub fn strict_role_output<'a>(url: &'a str, group: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("Name", "cloudwatch_rs"),
        ("Workers", "4"),
        ("region", "us-east-1"),
        ("log_group_name", group),
        ("log_stream_prefix", "s-"),
        ("auto_create_group", "on"),
        ("role_arn", "arn:aws:iam::222222222222:role/strict"),
        ("endpoint", url),
        ("sts_endpoint", url),
    ]
}

/// One moto_server: account 111111111111 (user `task`, may only assume the log role) and
/// 222222222222 (the log role, and a `reader`), and with `with_tenants` more log accounts.
/// Stopped on drop.
pub struct Moto {
    pub state: PathBuf,
    pub endpoint: String,
    pub role_arn: String,
    pub task_arn: String,
    pub task_key: (String, String),
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Event {
    pub stream: String,
    pub timestamp: i64,
    pub message: String,
}

impl Moto {
    pub fn start() -> Moto {
        Moto::with_tenants(&[])
    }

    /// `start`, plus these log accounts, each with a role `log-writer` the task may assume and
    /// a reader (`read_in`).
    pub fn with_tenants(accounts: &[&str]) -> Moto {
        let dir = scratch("moto");
        let state = dir.join("state.json");
        let out = Command::new(python())
            .arg(root().join("tests/support/moto_fixture.py"))
            .args(["start", "--tenants", &accounts.join(","), "--state"])
            .arg(&state)
            .output()
            .expect("run moto_fixture.py (is the venv set up? `make test` does it)");
        assert!(out.status.success(), "moto fixture failed: {}", String::from_utf8_lossy(&out.stderr));
        let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
        let text = |v: &serde_json::Value| v.as_str().unwrap().to_string();
        Moto {
            endpoint: text(&s["endpoint"]),
            role_arn: text(&s["role_arn"]),
            task_arn: text(&s["task"]["arn"]),
            task_key: (text(&s["task"]["access_key_id"]), text(&s["task"]["secret_access_key"])),
            state,
        }
    }

    /// Runs a fixture command about `group` and returns its standard output.
    fn fixture(&self, command: &str, group: &str) -> Vec<u8> {
        self.fixture_in(command, group, None)
    }

    fn fixture_in(&self, command: &str, group: &str, account: Option<&str>) -> Vec<u8> {
        let account = account.map(|a| vec!["--account", a]).unwrap_or_default();
        let out = Command::new(python())
            .arg(root().join("tests/support/moto_fixture.py"))
            .args([command, "--group", group])
            .args(account)
            .arg("--state")
            .arg(&self.state)
            .output()
            .unwrap();
        assert!(out.status.success(), "{command} failed: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    }

    /// DescribeLogGroups (retention, KMS key) and the group's tags, as the log account's reader.
    pub fn describe_group(&self, group: &str) -> serde_json::Value {
        serde_json::from_slice(&self.fixture("describe", group)).unwrap()
    }

    /// Every event of `group`, read back as the log account's reader.
    pub fn read(&self, group: &str) -> Vec<Event> {
        parse_events(self.fixture("read", group))
    }

    /// Every event of `group` in tenant `account` (see `with_tenants`), read as its reader.
    pub fn read_in(&self, account: &str, group: &str) -> Vec<Event> {
        parse_events(self.fixture_in("read", group, Some(account)))
    }

    /// The AssumeRole calls moto served so far, by role ARN.
    pub fn assumed(&self) -> std::collections::HashMap<String, u64> {
        let out = Command::new(python())
            .arg(root().join("tests/support/moto_fixture.py"))
            .args(["assumed", "--state"])
            .arg(&self.state)
            .output()
            .unwrap();
        assert!(out.status.success(), "assumed failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Environment for a plugin: the task account's keys, IMDS off, nothing else.
    pub fn task_env(&self) -> Env {
        Env::new().keys(&self.task_key.0, &self.task_key.1)
    }
}

/// The fixture's `read` output: one JSON event a line.
fn parse_events(out: Vec<u8>) -> Vec<Event> {
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            Event {
                stream: v["stream"].as_str().unwrap().into(),
                timestamp: v["timestamp"].as_i64().unwrap(),
                message: v["message"].as_str().unwrap().into(),
            }
        })
        .collect()
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = Command::new(python())
            .arg(root().join("tests/support/moto_fixture.py"))
            .args(["stop", "--state"])
            .arg(&self.state)
            .status();
    }
}

/// Runs the test host's CLI on a config; returns (exit code, stdout, stderr).
pub fn run_host(conf: &Path, env: &Env, extra: &[&str]) -> (i32, String, String) {
    let out = Command::new(host_bin())
        .arg("-e")
        .arg(plugin())
        .arg("-c")
        .arg(conf)
        .args(["--retry-wait-ms", "200"])
        .args(extra)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.vars())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
