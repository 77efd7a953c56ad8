//! `make bench-fluent-bit FLUENT_BIT=/path/to/fluent-bit`: the plugin where users run it, inside
//! a real Fluent Bit, beside the built-in C `cloudwatch_logs` output and the `null` output, in
//! the same run (docs/PERFORMANCE.md). This benchmark builds no Fluent Bit: give it one built in
//! release mode (`-DFLB_RELEASE=On`; Fluent Bit's CMake otherwise builds for debugging, which
//! slows the C plugin's own code several times).
//!
//! Every run is a fresh `fluent-bit` process shipping over TLS into a fresh strict endpoint
//! process (`cwrs-strict-endpoint --tls`) on 127.0.0.1. A run's CPU is the whole Fluent Bit
//! process's user + system time (from `wait4`); "added" is that minus the same workload's with
//! `null`, per GB of records Fluent Bit's inputs produced (its own `/api/v1/metrics`). Memory is
//! `/proc/<pid>/status` sampled every 100 ms. The outputs alternate within each round, so a
//! drift in the machine's state touches all three alike.
//!
//! Workloads:
//! - `dummy`: 20,000 × ~1 KB records/s for 30 s, `Flush 1`, `Workers 1` (`CWRS_FB_WORKERS`);
//! - `tail`: 400,000 ~1 KB JSON lines (~400 MB) read from the head as fast as possible, parsed
//!   with the `json` parser, until every record is flushed;
//! - `overload`: `dummy` offering 200,000 records/s for 15 s: records delivered in
//!   those 15 s, peak RSS;
//! - `idle`: RSS with no records yet, and again 10 s after a burst of 1,000 records;
//! - `floor`: no Fluent Bit; what any client spends per GB here to hash and send 1 MB request
//!   bodies over TLS on 127.0.0.1 (benches/floor), beside half the C plugin's added CPU.
//!
//! Knobs (environment): `CWRS_FB_RUNS` (rounds, default 3), `CWRS_FB_ONLY` (comma-separated
//! workloads), `CWRS_FB_OUTPUTS` (comma-separated among `null,c,rs`), `CWRS_FB_SCALE` (multiplies
//! every workload's size and duration, default 1), `CWRS_PLUGIN` (another build of the `.so`),
//! `CWRS_FB_WRAP` (a command put in front of `fluent-bit`, e.g. `perf record -g -o p.data --`),
//! `CWRS_FB_WORKERS` (`Workers` of every output on the CPU and overload workloads, default 1),
//! `CWRS_FB_KEEP` (keep each run's directory and print it), `CWRS_FB_RS_KEYS` (comma-separated
//! `key value` pairs added to cloudwatch_rs's `[OUTPUT]`, e.g. `batches_in_flight 2`).

#[path = "floor/mod.rs"]
mod floor;
#[path = "../tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::root;

/// One output under test.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Out {
    Null,
    C,
    Rs,
}

impl Out {
    fn label(self) -> &'static str {
        match self {
            Out::Null => "null",
            Out::C => "C cloudwatch_logs",
            Out::Rs => "cloudwatch_rs",
        }
    }
    fn short(self) -> &'static str {
        match self {
            Out::Null => "null",
            Out::C => "c",
            Out::Rs => "rs",
        }
    }
}

/// What one Fluent Bit run measured.
#[derive(Clone, Debug, Default)]
struct Measured {
    cpu_s: f64,
    wall_s: f64,
    input_records: u64,
    input_bytes: u64,
    out_records: u64,
    out_errors: u64,
    out_retries: u64,
    peak_rss_kib: u64,
    peak_anon_kib: u64,
    peak_file_kib: u64,
    /// (RSS, anonymous, file-backed) at each idle sample, medians of ten readings.
    idle_kib: Vec<(u64, u64, u64)>,
    /// CPU-seconds and context switches (voluntary, involuntary) per thread name, read just
    /// before the stop signal.
    threads: Vec<(String, f64, u64, u64)>,
    /// cloudwatch_rs's own exit line (its counters), if it logged one.
    exit_line: Option<String>,
}

/// The strict endpoint as its own process, fresh for each run.
struct Endpoint {
    child: Child,
    stdin: Option<ChildStdin>,
    url: String,
    ca: String,
}

impl Endpoint {
    fn start() -> Endpoint {
        let bin = root().join("target/release/cwrs-strict-endpoint");
        assert!(bin.exists(), "{} missing: run `make build` first (make bench-fluent-bit does)", bin.display());
        let mut child = Command::new(bin)
            .arg("--tls")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let url = lines.next().unwrap().unwrap().trim_start_matches("URL ").to_string();
        let ca = lines.next().unwrap().unwrap().trim_start_matches("CA ").to_string();
        let stdin = child.stdin.take();
        Endpoint { child, stdin, url, ca }
    }
    fn port(&self) -> &str {
        self.url.rsplit(':').next().unwrap()
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.ca);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Fluent Bit's own counters (`/api/v1/metrics`): the inputs' records and bytes, the output's
/// processed records, errors and retries.
fn fb_metrics(port: u16) -> Option<(u64, u64, u64, u64, u64)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET /api/v1/metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
    // Read until the body parses: 1.9's server may keep the connection open whatever it is told.
    let (mut raw, mut buf) = (Vec::new(), [0u8; 16384]);
    let v: serde_json::Value = loop {
        let n = s.read(&mut buf).ok()?;
        raw.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&raw);
        // 1.9 sends the body chunked: the JSON is from its first `{` to its last `}`
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        let json = body.find('{').zip(body.rfind('}')).and_then(|(from, to)| body.get(from..=to));
        if let Some(v) = json.and_then(|b| serde_json::from_str(b).ok()) {
            break v;
        }
        if n == 0 {
            return None;
        }
    };
    let sum = |section: &str, field: &str| -> u64 {
        v[section].as_object().map_or(0, |m| m.values().map(|x| x[field].as_u64().unwrap_or(0)).sum())
    };
    Some((
        sum("input", "records"),
        sum("input", "bytes"),
        sum("output", "proc_records"),
        sum("output", "errors"),
        sum("output", "retries"),
    ))
}

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// CPU-seconds and context switches of each thread of `pid`, summed by thread name.
fn thread_cpu(pid: u32) -> Vec<(String, f64, u64, u64)> {
    let ticks = 100.0; // USER_HZ on Linux
    let mut by_name: Vec<(String, f64, u64, u64)> = Vec::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return by_name };
    for t in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else { continue };
        let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
        let switches = |field: &str| -> u64 {
            status
                .lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
                .unwrap_or(0)
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let name: String = stat[open + 1..close].trim_end_matches(|c: char| c.is_ascii_digit()).to_string();
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        let cpu = fields.get(11).and_then(|u| u.parse::<f64>().ok()).unwrap_or(0.0)
            + fields.get(12).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
        let (v, nv) = (switches("voluntary_ctxt_switches:"), switches("nonvoluntary_ctxt_switches:"));
        match by_name.iter_mut().find(|(n, ..)| *n == name) {
            Some(e) => {
                e.1 += cpu / ticks;
                e.2 += v;
                e.3 += nv;
            }
            None => by_name.push((name, cpu / ticks, v, nv)),
        }
    }
    by_name.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap());
    by_name
}

/// The `[OUTPUT]` section for `out` at `ep`.
fn output_section(out: Out, ep: &Endpoint, workers: u32) -> String {
    match out {
        Out::Null => format!("[OUTPUT]\n    Name null\n    Match *\n    Workers {workers}\n"),
        Out::C => format!(
            "[OUTPUT]\n    Name cloudwatch_logs\n    Match *\n    Workers {workers}\n    region us-east-1\n    \
             log_group_name bench\n    log_stream_prefix s-\n    auto_create_group On\n    endpoint 127.0.0.1\n    \
             Port {}\n    tls.verify Off\n",
            ep.port()
        ),
        Out::Rs => {
            format!(
                "[OUTPUT]\n    Name cloudwatch_rs\n    Match *\n    Workers {workers}\n    region us-east-1\n    \
             log_group_name bench\n    log_stream_prefix s-\n    auto_create_group On\n    endpoint {url}\n    \
             sts_endpoint {url}\n    ca_bundle {ca}\n",
                url = ep.url,
                ca = ep.ca
            ) + &rs_keys()
        }
    }
}

/// A `dummy` input offering `per_second` ~1 KB records, 200 per tick.
fn dummy_input(per_second: u32) -> String {
    format!(
        "[INPUT]\n    Name dummy\n    Tag app\n    Rate {}\n    Copies 200\n    Dummy {}\n",
        per_second / 200,
        record_json(7)
    )
}

/// `CWRS_FB_RS_KEYS` as `[OUTPUT]` lines.
fn rs_keys() -> String {
    let keys = std::env::var("CWRS_FB_RS_KEYS").unwrap_or_default();
    keys.split(',').filter(|kv| !kv.trim().is_empty()).map(|kv| format!("    {}\n", kv.trim())).collect()
}

/// A ~1 KB JSON record (1,014 bytes as text), as the README's workload.
fn record_json(n: u64) -> String {
    let head = format!(
        "{{\"time\":\"2026-11-28T01:02:03.456Z\",\"level\":\"info\",\"request_id\":\"{:032x}\",\"status\":{},\"message\":\"",
        n as u128 * 0x9E37_79B9_7F4A_7C15,
        200 + n % 5
    );
    let pad = 1014usize.saturating_sub(head.len() + 2);
    format!("{head}{}\"}}", "x".repeat(pad))
}

struct Ctx {
    fluent_bit: PathBuf,
    plugin: PathBuf,
    wrap: Vec<String>,
    keep: bool,
    scale: f64,
}

/// How a workload drives one run.
enum Drive {
    /// Run for this long, then stop.
    For(Duration),
    /// Run until the output has processed this many records (or the bound passes), then stop.
    Until(u64, Duration),
    /// Idle: sample RSS at start, then after the records flush and a quiet spell.
    Idle { burst: u64 },
}

fn run(
    ctx: &Ctx,
    out: Out,
    name: &str,
    input: &str,
    workers: u32,
    drive: &Drive,
    files: &[(&str, String)],
) -> Measured {
    let dir = support::scratch(&format!("fb-{name}-{}", out.short()));
    for (file, text) in files {
        std::fs::write(dir.join(file), text).unwrap();
    }
    let ep = Endpoint::start();
    let http = free_port();
    let conf = format!(
        "[SERVICE]\n    Flush 1\n    Grace 5\n    Log_Level warn\n    HTTP_Server On\n    HTTP_Listen 127.0.0.1\n    \
         HTTP_Port {http}\n    Parsers_File {parsers}\n\n{input}\n{output}",
        parsers = dir.join("parsers.conf").display(),
        input = input.replace("{dir}", &dir.display().to_string()),
        output = output_section(out, &ep, workers)
    );
    std::fs::write(dir.join("parsers.conf"), "[PARSER]\n    Name json\n    Format json\n").unwrap();
    std::fs::write(dir.join("fluent-bit.conf"), &conf).unwrap();
    let mut cmd = match ctx.wrap.split_first() {
        Some((w, args)) => {
            let mut c = Command::new(w);
            c.args(args).arg(&ctx.fluent_bit);
            c
        }
        None => Command::new(&ctx.fluent_bit),
    };
    if out == Out::Rs {
        cmd.arg("-e").arg(&ctx.plugin);
    }
    cmd.arg("-c").arg(dir.join("fluent-bit.conf"));
    let log = std::fs::File::create(dir.join("fluent-bit.log")).unwrap();
    // Reaped below by `wait4`, which also gives its CPU time.
    #[allow(clippy::zombie_processes)]
    let child = cmd
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", &dir)
        .env("AWS_ACCESS_KEY_ID", "AKIDBENCHFLUENTBIT")
        .env("AWS_SECRET_ACCESS_KEY", "bench-fluent-bit-secret")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", dir.join("none"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("none"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    // The measured process: under a wrapper (perf), Fluent Bit is its child; find it.
    let pid = if ctx.wrap.is_empty() { child.id() } else { wrapped_pid(child.id()) };
    let sampling = Arc::new(AtomicBool::new(true));
    let peaks = Arc::new(Mutex::new((0u64, 0u64, 0u64)));
    let sampler = {
        let (sampling, peaks) = (sampling.clone(), peaks.clone());
        std::thread::spawn(move || {
            while sampling.load(Relaxed) {
                let (rss, anon, file) =
                    (status_kib(pid, "VmRSS:"), status_kib(pid, "RssAnon:"), status_kib(pid, "RssFile:"));
                let mut p = peaks.lock().unwrap();
                *p = (p.0.max(rss), p.1.max(anon), p.2.max(file));
                drop(p);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    // Wait for the HTTP server: Fluent Bit is up (and, for cloudwatch_rs, past its startup check).
    let deadline = Instant::now() + Duration::from_secs(30);
    while fb_metrics(http).is_none() {
        assert!(Instant::now() < deadline, "fluent-bit did not start: see {}", dir.join("fluent-bit.log").display());
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut m = Measured::default();
    let t0 = Instant::now();
    match drive {
        Drive::For(d) => std::thread::sleep(*d),
        Drive::Until(n, bound) => {
            while t0.elapsed() < *bound && fb_metrics(http).is_none_or(|x| x.2 < *n) {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Drive::Idle { burst } => {
            std::thread::sleep(Duration::from_secs(3));
            m.idle_kib.push(sample_idle(pid));
            if std::env::var_os("CWRS_FB_SMAPS").is_some() {
                eprintln!("    {} resident by mapping with no records yet: {}", out.label(), resident_by_mapping(pid));
            }
            std::fs::write(dir.join("burst.log"), (0..*burst).map(|n| record_json(n) + "\n").collect::<String>())
                .unwrap();
            let bound = Instant::now() + Duration::from_secs(30);
            while Instant::now() < bound && fb_metrics(http).is_none_or(|x| x.2 < *burst) {
                std::thread::sleep(Duration::from_millis(100));
            }
            std::thread::sleep(Duration::from_secs(10));
            m.idle_kib.push(sample_idle(pid));
            if std::env::var_os("CWRS_FB_SMAPS").is_some() {
                eprintln!("    {} resident by mapping after the burst: {}", out.label(), resident_by_mapping(pid));
            }
        }
    }
    if let Some((ir, ib, or, oe, ot)) = fb_metrics(http) {
        (m.input_records, m.input_bytes, m.out_records, m.out_errors, m.out_retries) = (ir, ib, or, oe, ot);
    }
    m.wall_s = t0.elapsed().as_secs_f64();
    m.threads = thread_cpu(pid);
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    sampling.store(false, Relaxed);
    let _ = sampler.join();
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    m.cpu_s = tv(usage.ru_utime) + tv(usage.ru_stime);
    // Sampled, not `ru_maxrss`: that counts the forked child before its exec, which shares
    // this process's pages (the tail workload's file text among them).
    (m.peak_rss_kib, m.peak_anon_kib, m.peak_file_kib) = *peaks.lock().unwrap();
    drop(ep);
    m.exit_line = std::fs::read_to_string(dir.join("fluent-bit.log"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.contains("exit: events_sent"))
        .map(|l| l.split("exit: ").nth(1).unwrap_or(l).to_string());
    if ctx.keep {
        eprintln!("    kept {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    m
}

/// The pid of the fluent-bit process a wrapper started (its first child).
fn wrapped_pid(wrapper: u32) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(kids) = std::fs::read_to_string(format!("/proc/{wrapper}/task/{wrapper}/children")) {
            if let Some(pid) = kids.split_whitespace().next().and_then(|p| p.parse().ok()) {
                return pid;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    wrapper
}

/// `/proc/<pid>/smaps` summed by what is mapped (file name, or `[heap]`, `[anon]`, ...), the
/// largest first: where idle memory is.
fn resident_by_mapping(pid: u32) -> String {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut by: Vec<(String, u64, u64)> = Vec::new();
    let mut current = String::new();
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            current = line
                .split_whitespace()
                .nth(5)
                .map_or("[anon]".to_string(), |p| p.rsplit('/').next().unwrap_or(p).to_string());
        } else if let Some(kib) =
            line.strip_prefix("Rss:").and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        {
            match by.iter_mut().find(|e| e.0 == current) {
                Some(e) => e.1 += kib,
                None => by.push((current.clone(), kib, 0)),
            }
        } else if let Some(kib) =
            line.strip_prefix("Anonymous:").and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        {
            if let Some(e) = by.iter_mut().find(|e| e.0 == current) {
                e.2 += kib;
            }
        }
    }
    by.sort_by_key(|e| std::cmp::Reverse(e.1));
    by.iter().take(14).map(|(n, r, a)| format!("{n} {r} KiB (anon {a})")).collect::<Vec<_>>().join(", ")
}

/// RSS, anonymous and file-backed resident memory: each the median of ten readings 100 ms apart.
fn sample_idle(pid: u32) -> (u64, u64, u64) {
    let readings: Vec<(u64, u64, u64)> = (0..10)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(100));
            (status_kib(pid, "VmRSS:"), status_kib(pid, "RssAnon:"), status_kib(pid, "RssFile:"))
        })
        .collect();
    (
        median_u64(readings.iter().map(|r| r.0).collect()),
        median_u64(readings.iter().map(|r| r.1).collect()),
        median_u64(readings.iter().map(|r| r.2).collect()),
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn median_u64(mut v: Vec<u64>) -> u64 {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

fn range(v: &[f64]) -> String {
    let lo = v.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    format!("{lo:.2}–{hi:.2}")
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn list(var: &str) -> Option<Vec<String>> {
    std::env::var(var).ok().map(|v| v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
}

fn main() {
    let Some(fluent_bit) = std::env::var_os("FLUENT_BIT").map(PathBuf::from) else {
        println!(
            "bench fluent_bit: skipped: no Fluent Bit given. This benchmark builds none; run it as\n  \
             make bench-fluent-bit FLUENT_BIT=/path/to/fluent-bit\nwith a Fluent Bit built in release mode \
             (cmake -DFLB_RELEASE=On); see docs/PERFORMANCE.md."
        );
        return;
    };
    assert!(fluent_bit.exists(), "FLUENT_BIT={} does not exist", fluent_bit.display());
    let version = Command::new(&fluent_bit)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or("").to_string())
        .unwrap_or_default();
    // 1.x (aws-for-fluent-bit 2.x runs 1.9): its dummy input has no Copies, so it cannot offer
    // 20,000 records/s: only `tail` and `idle` run, with `null` and cloudwatch_rs
    let legacy = version.contains(" v1.");
    let ctx = Ctx {
        fluent_bit,
        plugin: support::plugin(),
        wrap: std::env::var("CWRS_FB_WRAP")
            .map(|w| w.split_whitespace().map(String::from).collect())
            .unwrap_or_default(),
        keep: std::env::var_os("CWRS_FB_KEEP").is_some(),
        scale: std::env::var("CWRS_FB_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1.0),
    };
    let runs: usize = std::env::var("CWRS_FB_RUNS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let only = list("CWRS_FB_ONLY");
    let mut outs: Vec<Out> = match list("CWRS_FB_OUTPUTS") {
        Some(l) => [Out::Null, Out::C, Out::Rs].into_iter().filter(|o| l.iter().any(|s| s == o.short())).collect(),
        None => vec![Out::Null, Out::C, Out::Rs],
    };
    if legacy && outs.contains(&Out::C) {
        // 1.9's C plugin has no `Port` (it connects to 443), and with this endpoint on 443 its
        // client ends the handshake with a decode_error alert, logged as "unexpected EOF"
        // (docs/PERFORMANCE.md): compare with it in 2.x or later
        println!("bench fluent_bit: {version}: the C plugin is left out (it cannot reach this endpoint in 1.x)");
        outs.retain(|&o| o != Out::C);
    }
    let legacy_skips = |w: &str| {
        let skip = legacy && (w == "dummy" || w == "overload");
        if skip {
            println!("{w}: skipped: {version}'s dummy input has no Copies, so it cannot offer the workload");
        }
        skip
    };
    let wanted = |w: &str| only.as_ref().is_none_or(|l| l.iter().any(|s| s == w)) && !legacy_skips(w);
    let cpu = support::cpu_model();
    println!(
        "bench fluent_bit: {version} ({}), plugin {}; {} cores, {cpu}; {runs} rounds, outputs alternating; TLS into the strict endpoint",
        ctx.fluent_bit.display(),
        ctx.plugin.display(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    let s = ctx.scale;
    let w = workers();
    // the C plugin's added CPU per GB on each workload, to set beside the floor
    let mut c_added: Vec<(&str, f64)> = Vec::new();
    if wanted("dummy") {
        let secs = (30.0 * s).max(5.0);
        let input = dummy_input(20_000);
        let r = rounds(&ctx, &outs, runs, "dummy", &input, w, &Drive::For(Duration::from_secs_f64(secs)), &[]);
        let c = report_cpu(&format!("dummy: 20,000 x 1 KB records/s for {secs:.0} s, Flush 1, Workers {w}"), &r);
        c_added.extend(c.map(|c| ("dummy", c)));
    }
    if wanted("tail") {
        let lines = (400_000.0 * s) as u64;
        let mut text = String::with_capacity(lines as usize * 1024);
        for n in 0..lines {
            text.push_str(&record_json(n));
            text.push('\n');
        }
        let input =
            "[INPUT]\n    Name tail\n    Tag app\n    Path {dir}/app.log\n    Read_from_Head On\n    Parser json\n    \
                     Refresh_Interval 1\n";
        let files = [("app.log", text)];
        let r = rounds(&ctx, &outs, runs, "tail", input, w, &Drive::Until(lines, Duration::from_secs(300)), &files);
        let c = report_cpu(&format!("tail: {lines} ~1 KB JSON lines read from the head, json parser, Workers {w}"), &r);
        c_added.extend(c.map(|c| ("tail", c)));
    }
    if wanted("overload") {
        let secs = (15.0 * s).max(5.0);
        let input = dummy_input(200_000);
        let r = rounds(&ctx, &outs, runs, "overload", &input, w, &Drive::For(Duration::from_secs_f64(secs)), &[]);
        report_overload(&format!("overload: dummy offering 200,000 records/s for {secs:.0} s, Workers {w}"), &r);
    }
    if wanted("idle") {
        let input = "[INPUT]\n    Name tail\n    Tag app\n    Path {dir}/burst.log\n    Read_from_Head On\n    \
                     Refresh_Interval 1\n";
        let r = rounds(&ctx, &outs, runs, "idle", input, 1, &Drive::Idle { burst: 1000 }, &[]);
        report_idle("idle: one instance, RSS with no records yet, and 10 s after 1,000 records", &r);
    }
    if wanted("floor") {
        report_floor(&c_added, runs);
    }
}

/// The floor any client pays per GB (benches/floor), beside half the C plugin's added CPU.
fn report_floor(c_added: &[(&str, f64)], runs: usize) {
    let events: Vec<serde_json::Value> = (0..1000u64)
        .map(|n| serde_json::json!({"timestamp": 1_764_291_723_456u64 + n, "message": record_json(n)}))
        .collect();
    let body = serde_json::to_vec(&serde_json::json!({
        "logGroupName": "bench", "logStreamName": "bench", "logEvents": events
    }))
    .expect("a JSON body");
    let f = floor::measure(&body, 0.5, runs.max(5));
    let floor = f.sha256_side_by_side.0 + f.tls_send.0;
    println!("floor: the least any client spends per GB shipped here, before JSON, HTTP and hand-offs (1 MB bodies; least and most of the rounds)");
    println!("  SHA-256 of the body (SigV4), one at a time    {:.2} CPU-s per GB (most {:.2})", f.sha256.0, f.sha256.1);
    println!(
        "  ... two bodies side by side (the floor's)     {:.2} CPU-s per GB (most {:.2})",
        f.sha256_side_by_side.0, f.sha256_side_by_side.1
    );
    println!("  TLS 1.3 send over loopback ({}) {:.2} CPU-s per GB (most {:.2})", f.suite, f.tls_send.0, f.tls_send.1);
    println!("  floor                                         {floor:.2} CPU-s per GB");
    for (workload, c) in c_added {
        println!(
            "  {workload}: half the C plugin's added CPU is {:.2} CPU-s per GB, {:.2} above the floor",
            c / 2.0,
            c / 2.0 - floor
        );
    }
}

/// `Workers` of every output on the CPU and overload workloads (`CWRS_FB_WORKERS`, default 1).
fn workers() -> u32 {
    std::env::var("CWRS_FB_WORKERS").ok().and_then(|v| v.parse().ok()).filter(|&w| w >= 1).unwrap_or(1)
}

#[allow(clippy::too_many_arguments)]
fn rounds(
    ctx: &Ctx,
    outs: &[Out],
    runs: usize,
    name: &str,
    input: &str,
    workers: u32,
    drive: &Drive,
    files: &[(&str, String)],
) -> Vec<(Out, Vec<Measured>)> {
    let mut all: Vec<(Out, Vec<Measured>)> = outs.iter().map(|o| (*o, Vec::new())).collect();
    for round in 0..runs {
        for (out, ms) in all.iter_mut() {
            let m = run(ctx, *out, name, input, workers, drive, files);
            eprintln!(
                "  [{name} round {} {:<17}] cpu {:.2} s, wall {:.1} s, in {} records / {:.0} MB, out {} records, errors {}, retries {}, \
                 peak {:.1} MiB (anon {:.1}, file {:.1}); threads: {}",
                round + 1,
                out.label(),
                m.cpu_s,
                m.wall_s,
                m.input_records,
                m.input_bytes as f64 / 1e6,
                m.out_records,
                m.out_errors,
                m.out_retries,
                mib(m.peak_rss_kib),
                mib(m.peak_anon_kib),
                mib(m.peak_file_kib),
                m.threads
                    .iter()
                    .filter(|t| t.1 > 0.0)
                    .map(|(n, c, v, nv)| format!("{n} {c:.2} s ({v}+{nv} switches)"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            if let Some(line) = &m.exit_line {
                eprintln!("      cloudwatch_rs at exit: {line}");
            }
            ms.push(m);
        }
    }
    all
}

fn of(r: &[(Out, Vec<Measured>)], out: Out) -> Option<&Vec<Measured>> {
    r.iter().find(|(o, _)| *o == out).map(|(_, m)| m)
}

/// CPU-seconds per GB of input for each run.
fn per_gb(ms: &[Measured]) -> Vec<f64> {
    ms.iter().map(|m| m.cpu_s / (m.input_bytes.max(1) as f64 / 1e9)).collect()
}

/// Prints the workload's CPU figures; returns the C plugin's added CPU per GB (median), if run.
fn report_cpu(title: &str, r: &[(Out, Vec<Measured>)]) -> Option<f64> {
    println!("{title}");
    let null = of(r, Out::Null).map(|m| median(per_gb(m)));
    let mut added = Vec::new();
    for (out, ms) in r {
        let gb = median(ms.iter().map(|m| m.input_bytes as f64 / 1e9).collect());
        let cpu = median(ms.iter().map(|m| m.cpu_s).collect());
        let pg = per_gb(ms);
        let line = format!(
            "  {:<17} {:.2} CPU-s per {:.2} GB; {:.2} CPU-s per GB ({}); peak RSS {:.1} MiB (anon {:.1}, file {:.1}); delivered {}",
            out.label(),
            cpu,
            gb,
            median(pg.clone()),
            range(&pg),
            mib(median_u64(ms.iter().map(|m| m.peak_rss_kib).collect())),
            mib(median_u64(ms.iter().map(|m| m.peak_anon_kib).collect())),
            mib(median_u64(ms.iter().map(|m| m.peak_file_kib).collect())),
            median_u64(ms.iter().map(|m| m.out_records).collect()),
        );
        match (out, null) {
            (Out::Null, _) | (_, None) => println!("{line}"),
            (_, Some(base)) => {
                let a: Vec<f64> = pg.iter().map(|x| x - base).collect();
                println!("{line}; added {:.2} CPU-s per GB ({})", median(a.clone()), range(&a));
                added.push((*out, median(a)));
            }
        }
    }
    if let (Some(c), Some(rs)) = (added.iter().find(|a| a.0 == Out::C), added.iter().find(|a| a.0 == Out::Rs)) {
        println!("  ratio cloudwatch_rs / C, added CPU per GB: {:.2}", rs.1 / c.1);
    }
    added.iter().find(|a| a.0 == Out::C).map(|a| a.1)
}

fn report_overload(title: &str, r: &[(Out, Vec<Measured>)]) {
    println!("{title}");
    let mut got = Vec::new();
    for (out, ms) in r {
        let delivered = median_u64(ms.iter().map(|m| m.out_records).collect());
        let peak = median_u64(ms.iter().map(|m| m.peak_rss_kib).collect());
        println!(
            "  {:<17} delivered {} (runs: {}); peak RSS {:.1} MiB (anon {:.1}); CPU {:.2} s",
            out.label(),
            delivered,
            ms.iter().map(|m| m.out_records.to_string()).collect::<Vec<_>>().join(", "),
            mib(peak),
            mib(median_u64(ms.iter().map(|m| m.peak_anon_kib).collect())),
            median(ms.iter().map(|m| m.cpu_s).collect()),
        );
        got.push((*out, delivered as f64, peak as f64));
    }
    if let (Some(c), Some(rs)) = (got.iter().find(|a| a.0 == Out::C), got.iter().find(|a| a.0 == Out::Rs)) {
        println!("  ratio cloudwatch_rs / C: delivered {:.2}, peak RSS {:.2}", rs.1 / c.1, rs.2 / c.2);
    }
}

fn report_idle(title: &str, r: &[(Out, Vec<Measured>)]) {
    println!("{title}");
    for (out, ms) in r {
        // part 0: RSS, 1: anonymous, 2: file-backed
        let at = |i: usize, part: usize| {
            mib(median_u64(ms.iter().filter_map(|m| m.idle_kib.get(i).map(|x| [x.0, x.1, x.2][part])).collect()))
        };
        let (rss, anon, file) = (0, 1, 2);
        println!(
            "  {:<17} {:.1} MiB (anon {:.1}, file {:.1}) with no records yet; {:.1} MiB (anon {:.1}, file {:.1}) 10 s after 1,000 records",
            out.label(),
            at(0, rss),
            at(0, anon),
            at(0, file),
            at(1, rss),
            at(1, anon),
            at(1, file)
        );
    }
    let idle = |out: Out, i: usize| {
        of(r, out).map(|ms| median_u64(ms.iter().filter_map(|m| m.idle_kib.get(i).map(|x| x.0)).collect()) as f64)
    };
    if let (Some(c0), Some(rs0), Some(c1), Some(rs1)) =
        (idle(Out::C, 0), idle(Out::Rs, 0), idle(Out::C, 1), idle(Out::Rs, 1))
    {
        println!(
            "  cloudwatch_rs - C, idle RSS: {:+.1} MiB with no records yet, {:+.1} MiB after 1,000 records",
            (rs0 - c0) / 1024.0,
            (rs1 - c1) / 1024.0
        );
    }
}
