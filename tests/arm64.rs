//! The arm64 library `make firelens` built (build/firelens/arm64/) delivers: the test host built
//! for aarch64 (tests/support/arm64-host.sh) loads it under `qemu-aarch64` with Debian's aarch64
//! glibc, reads a file through its `tail` input and flushes to the strict endpoint on 127.0.0.1
//! (in this process), which must see every record once. Skipped, with one line, where
//! qemu-aarch64 or the aarch64 glibc is absent; `make test` installs both.

mod support;

use cwrs_aws_standins::strict::{Faults, StrictEndpoint};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use support::{root, serial, Env};

/// Lines the tail input reads, `{"seq":N,...}`, each sent as it is (`log_key log`).
const RECORDS: u64 = 400;
/// Where Debian's libc6-arm64-cross puts the aarch64 glibc (qemu's `-L`).
const SYSROOT: &str = "/usr/aarch64-linux-gnu";
/// How long the run may take, start to exit, even under emulation on a loaded machine: a hung
/// host must fail the test, not hold CI up.
const BOUND: Duration = Duration::from_secs(180);

/// A line on the test process's stderr that `cargo test` shows without `--nocapture` (its
/// capture takes only what `eprintln!` writes): `make test`'s output says whether the arm64
/// library ran, and what it delivered, or why it was skipped.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "tests/arm64.rs: {line}");
}

fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|p| p.is_file())
}

fn config(dir: &Path, endpoint: &StrictEndpoint) -> PathBuf {
    let lines = dir.join("app.log");
    let mut f = std::fs::File::create(&lines).unwrap();
    for seq in 0..RECORDS {
        writeln!(f, r#"{{"seq":{seq},"arch":"aarch64"}}"#).unwrap();
    }
    let conf = format!(
        "[INPUT]\n    Name tail\n    Path {}\n    Tag app\n\
         [OUTPUT]\n    Name cloudwatch_rs\n    Match *\n    region us-east-1\n    log_group_name arm64\n\
         log_stream_name qemu\n    auto_create_group on\n    log_key log\n    endpoint {}\n\
         sts_endpoint {}\n    startup_check off\n",
        lines.display(),
        endpoint.url,
        endpoint.url
    );
    let path = dir.join("fluent-bit.conf");
    std::fs::write(&path, conf).unwrap();
    path
}

#[test]
fn the_arm64_library_flushes_every_record_once_under_qemu() {
    let _serial = serial();
    let Some(qemu) = on_path("qemu-aarch64") else {
        say("skipped: qemu-aarch64 is not installed (Debian's qemu-user; `make test` installs it)");
        return;
    };
    if !Path::new(SYSROOT).join("lib/ld-linux-aarch64.so.1").exists() {
        say(&format!("skipped: no aarch64 glibc in {SYSROOT} (Debian's libc6-arm64-cross; `make test` installs it)"));
        return;
    }
    let lib = root().join("build/firelens/arm64/libcloudwatch_rs.so");
    let host = root().join("build/arm64-test-host/cwrs-test-host");
    assert!(
        lib.exists(),
        "{} missing: `make firelens` builds it (its output says why it skipped arm64)",
        lib.display()
    );
    assert!(host.exists(), "{} missing: `make arm64-host` builds it (make test runs it)", host.display());

    let dir = support::scratch("arm64");
    let endpoint = StrictEndpoint::start(false, Faults::default(), 17);
    let env = Env::new().keys("AKIDARM64TEST", "arm64-secret-never-logged");
    // Output to files, not pipes: the wait below polls, and nothing must block on a full pipe.
    let (stdout, stderr) = (dir.join("stdout"), dir.join("stderr"));
    let started = Instant::now();
    let mut child = Command::new(qemu)
        .arg("-L")
        .arg(SYSROOT)
        .arg(&host)
        .arg("-e")
        .arg(&lib)
        .arg("-c")
        .arg(config(&dir, &endpoint))
        .args(["--fb", "5.1.1", "--retry-wait-ms", "200"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.vars())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .expect("run the aarch64 test host under qemu-aarch64");
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > BOUND {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running after {BOUND:?}\n{}", std::fs::read_to_string(&stderr).unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let took = started.elapsed();
    let (report, log) = (std::fs::read_to_string(&stdout).unwrap(), std::fs::read_to_string(&stderr).unwrap());
    assert_eq!(status.code(), Some(0), "{report}\n{log}");

    let mut times: BTreeMap<u64, u64> = BTreeMap::new();
    for accepted in endpoint.accepted() {
        assert_eq!((accepted.group.as_str(), accepted.stream.as_str()), ("arm64", "qemu"));
        *times.entry(accepted.seq.expect("a {\"seq\":N} message")).or_default() += 1;
    }
    let duplicated: u64 = times.values().map(|n| n - 1).sum();
    say(&format!(
        "the arm64 library under qemu-aarch64: {} of {RECORDS} records delivered, {duplicated} duplicated, in {took:.1?} (start to exit); {}",
        times.len(),
        report.trim()
    ));
    assert_eq!(times.keys().copied().collect::<Vec<_>>(), (0..RECORDS).collect::<Vec<_>>(), "{log}");
    assert_eq!(duplicated, 0, "{log}");
    assert_eq!(endpoint.counters().rule_violations.load(Relaxed), 0);
    assert!(log.contains("exit: events_sent="), "ExitCtx did not run\n{log}");
}
