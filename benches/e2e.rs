//! `make bench` (second part): the whole plugin, loaded by the test host as Fluent Bit loads it
//! (`Workers 2`), shipping ~2 MB chunks of ~1 KB and of ~100 B records over TLS into the strict
//! endpoint, which runs as its own process on 127.0.0.1 so that this process's CPU is the
//! plugin's (plus the host's chunk copies). Reports the median of 5 runs: records/s, MB/s,
//! CPU-seconds per GB of chunk, and the peak memory added during the run. The same runs
//! through a null plugin (`tests/null-plugin`, which answers every flush OK at once) give the
//! host's own cost, subtracted from the plugin's CPU. Then one worker's throughput against an
//! endpoint 50 ms away, by `batches_in_flight`. Last, memory while the endpoint stalls for a
//! minute and then refuses for a minute, under steady traffic.

#[path = "../tests/support/mod.rs"]
mod support;

use cwrs_test_host::{chunk, record, Host, Output, FB_5_1_1};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{root, Env};

/// Runs per record size (and of the null plugin's baseline): short runs are noisy.
const RUNS: usize = 5;

fn cpu_seconds() -> f64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn corpus(size: usize, total_bytes: usize) -> (Vec<(Vec<u8>, String)>, usize, usize) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as u32;
    let mut recs = Vec::new();
    let mut bytes = 0;
    let mut n = 0u64;
    while bytes < total_bytes {
        let body = serde_json::json!({
            "time": "2026-11-28T01:02:03.456Z",
            "level": "info",
            "request_id": format!("{:032x}", n as u128 * 0x9E37_79B9_7F4A_7C15),
            "status": 200 + n % 5,
            "message": "x".repeat(size.saturating_sub(110)),
        });
        let r = record(true, now - (n % 600) as u32, 0, &body);
        bytes += r.len();
        recs.push(r);
        n += 1;
    }
    let records = recs.len();
    let chunks: Vec<(Vec<u8>, String)> =
        chunk(recs, 2 << 20).into_iter().enumerate().map(|(i, c)| (c, format!("bench.{}", i % 4))).collect();
    (chunks, records, bytes)
}

/// The plugin registered and initialised for `group` at the strict endpoint, with `extra` keys
/// on top of the ones every part of the benchmark uses.
fn start(host: &Host, url: &str, ca: &str, group: &str, extra: &[(&str, &str)]) -> (usize, Arc<Output>) {
    let reg = host.register().unwrap();
    let mut props = vec![
        ("Name", "cloudwatch_rs"),
        ("region", "us-east-1"),
        ("log_group_name", group),
        ("log_stream_prefix", "s-"),
        ("auto_create_group", "on"),
        ("endpoint", url),
        ("sts_endpoint", url),
        ("ca_bundle", ca),
        ("startup_check", "off"),
        ("stats_interval", "off"),
    ];
    props.extend_from_slice(extra);
    let out = Arc::new(host.new_output(reg, &props));
    assert_eq!(host.init(&out), 1);
    (reg, out)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let so = support::plugin();
    let strict = root().join("target/release/cwrs-strict-endpoint");
    assert!(strict.exists(), "run `make build` first (make bench does)");
    Env::new().keys("AKIDBENCH", "bench-secret").apply();
    let mut server = Command::new(&strict).arg("--tls").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let url = lines.next().unwrap().unwrap().trim_start_matches("URL ").to_string();
    let ca = lines.next().unwrap().unwrap().trim_start_matches("CA ").to_string();

    let cpu = support::cpu_model();
    println!(
        "end to end over TLS into the strict endpoint (another process), Workers 2, median of {RUNS} runs; {} cores, {cpu}; release build",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let host = Arc::new(Host::load(&so, FB_5_1_1).unwrap());
    let null = Arc::new(Host::load(&root().join("target/release/libcwrs_null_plugin.so"), FB_5_1_1).unwrap());
    for (size, total) in [(1024usize, 512 << 20), (100, 192 << 20)] {
        let (chunks, records, bytes) = corpus(size, total);
        let baseline = median(
            (0..RUNS)
                .map(|_| {
                    let reg = null.register().unwrap();
                    let out = Arc::new(null.new_output(reg, &[("Name", "null_rs"), ("Workers", "2")]));
                    assert_eq!(null.init(&out), 1);
                    let input = chunks.clone();
                    let cpu0 = cpu_seconds();
                    null.run(&out, input, Duration::from_millis(100));
                    let used = cpu_seconds() - cpu0;
                    null.exit(&out);
                    null.unregister(reg);
                    used / (bytes as f64 / 1e9)
                })
                .collect(),
        );
        let (mut rates, mut cpus, mut peaks) = (Vec::new(), Vec::new(), Vec::new());
        for run in 0..RUNS {
            let (reg, out) = start(&host, &url, &ca, &format!("bench-{size}-{run}"), &[("Workers", "2")]);
            let input = chunks.clone();
            cwrs_test_host::trim_heap();
            let _ = std::fs::write("/proc/self/clear_refs", "5"); // reset the peak RSS mark
            let rss_before = status_kib("VmRSS:");
            let (cpu0, t0) = (cpu_seconds(), Instant::now());
            let report = host.run(&out, input, Duration::from_millis(100));
            let (secs, cpu_used) = (t0.elapsed().as_secs_f64(), cpu_seconds() - cpu0);
            let peak = status_kib("VmHWM:").saturating_sub(rss_before);
            assert_eq!((report.retry, report.error), (0, 0), "{report:?}");
            host.exit(&out);
            host.unregister(reg);
            rates.push(records as f64 / secs);
            cpus.push(cpu_used / (bytes as f64 / 1e9));
            peaks.push(peak as f64 / 1024.0);
        }
        let rate = median(rates);
        let cpu = median(cpus);
        println!(
            "  ~{size:>4} B records: {records} records, {:.0} MB per run: {:.0} records/s, {:.0} MB/s, {:.2} CPU-s per GB ({:.2} minus the host's {:.2} with the null plugin), peak +{:.1} MiB",
            bytes as f64 / 1e6,
            rate,
            rate * (bytes as f64 / records as f64) / 1e6,
            cpu - baseline,
            cpu,
            baseline,
            median(peaks)
        );
    }
    distant_endpoint(&host, &url, &ca, server.stdin.as_mut().unwrap());
    if std::env::var_os("CWRS_BENCH_SKIP_STALL").is_none() {
        stalled_endpoint(&host, &url, &ca, server.stdin.as_mut().unwrap());
    }
    drop(server.stdin.take());
    let _ = server.wait();
}

/// `Workers 1` against an endpoint that answers every PutLogEvents 50 ms late (a distant
/// region): what `batches_in_flight` does for one worker's throughput. Median of 3 runs each.
fn distant_endpoint(host: &Arc<Host>, url: &str, ca: &str, control: &mut std::process::ChildStdin) {
    use std::io::Write;
    let (chunks, records, bytes) = corpus(1024, 64 << 20);
    writeln!(control, "latency 50").and_then(|_| control.flush()).unwrap();
    println!("  ~1 KB records, Workers 1, every PutLogEvents answered 50 ms late, median of 3 runs:");
    for in_flight in ["1", "2", "4"] {
        let mut rates = Vec::new();
        for run in 0..3 {
            let group = format!("bench-distant-{in_flight}-{run}");
            let (reg, out) = start(host, url, ca, &group, &[("Workers", "1"), ("batches_in_flight", in_flight)]);
            let t0 = Instant::now();
            let report = host.run(&out, chunks.clone(), Duration::from_millis(100));
            rates.push(bytes as f64 / 1e6 / t0.elapsed().as_secs_f64());
            assert_eq!((report.retry, report.error), (0, 0), "{report:?}");
            host.exit(&out);
            host.unregister(reg);
        }
        println!("    batches_in_flight {in_flight}: {:.0} MB/s ({records} records per run)", median(rates));
    }
    writeln!(control, "normal").and_then(|_| control.flush()).unwrap();
}

/// Steady traffic (two workers flushing 2 MB chunks back to back, as Fluent Bit drains a
/// backlog) while the endpoint is normal for 20 s, stalled for 60 s, refusing for 60 s, and
/// normal again for 20 s. RSS is sampled every 250 ms; what Fluent Bit would keep (the chunks
/// answered RETRY) is not held by this process, so the figures are the plugin's.
fn stalled_endpoint(host: &Arc<Host>, url: &str, ca: &str, control: &mut std::process::ChildStdin) {
    use std::io::Write;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
    let (chunks, _, _) = corpus(1024, 8 << 20);
    let (reg, out) = start(host, url, ca, "bench-stall", &[("Workers", "2")]);
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, retry) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let workers: Vec<_> = (0..2)
        .map(|w| {
            let (host, out, stop, chunks) = (host.clone(), out.clone(), stop.clone(), chunks.clone());
            let (ok, retry) = (ok.clone(), retry.clone());
            std::thread::Builder::new()
                .stack_size(host.profile.coro_stack)
                .spawn(move || {
                    let mut i = w;
                    while !stop.load(Relaxed) {
                        let (data, tag) = &chunks[i % chunks.len()];
                        match host.flush(&out, data, tag) {
                            1 => ok.fetch_add(1, Relaxed),
                            _ => retry.fetch_add(1, Relaxed),
                        };
                        i += 2;
                    }
                })
                .unwrap()
        })
        .collect();
    let phases = [
        ("normal", "normal", 20u64),
        ("stalled", "stall", 60),
        ("refusing", "refuse", 60),
        ("normal again", "normal", 20),
    ];
    let start_rss = status_kib("VmRSS:");
    println!(
        "  memory under steady traffic while the endpoint misbehaves (RSS above {:.1} MiB at the start):",
        start_rss as f64 / 1024.0
    );
    for (name, command, secs) in phases {
        writeln!(control, "{command}").unwrap();
        control.flush().unwrap();
        let (ok0, retry0) = (ok.load(Relaxed), retry.load(Relaxed));
        let mut samples = Vec::new();
        let until = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < until {
            std::thread::sleep(Duration::from_millis(250));
            samples.push(status_kib("VmRSS:") as f64 / 1024.0 - start_rss as f64 / 1024.0);
        }
        let last = *samples.last().unwrap_or(&0.0);
        let max = samples.iter().cloned().fold(f64::MIN, f64::max);
        println!(
            "    {name:<13} {secs:>3} s: flushes OK {:>5}, RETRY {:>4}; RSS +{:.1} MiB median, +{:.1} MiB max, +{:.1} MiB at the end",
            ok.load(Relaxed) - ok0,
            retry.load(Relaxed) - retry0,
            median(samples),
            max,
            last
        );
    }
    stop.store(true, Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    host.exit(&out);
    host.unregister(reg);
}
