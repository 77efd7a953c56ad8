//! Shared by the integration tests: where the built artefacts are, and moto_server as the two
//! AWS accounts (tests/support/moto_fixture.py), on 127.0.0.1.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

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

/// One moto_server: account 111111111111 (user `task`, may only assume the log role) and
/// 222222222222 (the log role, and a `reader`). Stopped on drop.
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
        let dir = scratch("moto");
        let state = dir.join("state.json");
        let out = Command::new(python())
            .arg(root().join("tests/support/moto_fixture.py"))
            .args(["start", "--state"])
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
        let out = Command::new(python())
            .arg(root().join("tests/support/moto_fixture.py"))
            .args([command, "--group", group, "--state"])
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
        let out = self.fixture("read", group);
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

    /// Environment for a plugin process: the task account's keys, IMDS off, nothing else.
    pub fn task_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", self.task_key.0.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.task_key.1.clone()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
            ("AWS_CONFIG_FILE", "/nonexistent".into()),
            ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent".into()),
        ]
    }

    /// Sets `task_env` on this process (before the plugin's first Init).
    pub fn export_task_env(&self) {
        for (k, v) in self.task_env() {
            std::env::set_var(k, v);
        }
        for k in ["AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_REGION"] {
            std::env::remove_var(k);
        }
    }
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
pub fn run_host(conf: &Path, env: &[(&str, String)], extra: &[&str]) -> (i32, String, String) {
    let out = Command::new(host_bin())
        .arg("-e")
        .arg(plugin())
        .arg("-c")
        .arg(conf)
        .args(["--retry-wait-ms", "200"])
        .args(extra)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
