//! `cwrs-test-host -e PLUGIN.so -c fluent-bit.conf [--fb 5.1.1|4.2|1.9.10] [--retry-wait-ms N] [--debug] [-p key=value]...`
//!
//! Runs a classic Fluent Bit config through the plugin the way Fluent Bit would, for tests and
//! for `make demo` where no `fluent-bit` is installed. Understood: `[INPUT]` `tail` (`Path`,
//! `Tag`; each line becomes `{"log": line}`, read from the head, ending at EOF) and `dummy`
//! (`Tag`, `Dummy`, `Samples`); `[OUTPUT]` sections whose `Match` fits the tag (`*` wildcards),
//! with `Workers` and `Retry_Limit` taken by the host as Fluent Bit's core would; `[SERVICE]`
//! `Grace` and, for inputs, `Interval_Ms` (a chunk per interval). Exits 1 when an Init fails (as
//! Fluent Bit stops at startup), after calling ExitCtx for every instance.
//!
//! Stops as Fluent Bit does: its SIGTERM/SIGINT/SIGQUIT handlers (installed with `signal()`
//! before the plugin is loaded, and again from its SIGHUP/SIGCONT handler) only record the
//! signal; a main loop that wakes once a second sees it and stops the engine, which gives the
//! chunks under way `Grace` and then calls the exit callbacks.

use cwrs_test_host::{chunk, profile, record, Host, Output, Shutdown, FB_1_9_10, FB_5_1_1};
use std::collections::HashMap;
use std::ffi::c_int;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The signal that asked for the stop (0: none yet), as `exit_signal` in fluent-bit.c.
static EXIT_SIGNAL: AtomicI32 = AtomicI32::new(0);
/// SIGHUP stops 1.9.x; 5.x reloads on it (not emulated: it re-installs the handlers).
static HUP_STOPS: AtomicBool = AtomicBool::new(false);

extern "C" fn break_loop(signal: c_int) {
    EXIT_SIGNAL.store(signal, Ordering::SeqCst);
}

/// `flb_signal_handler`: re-installs every handler, as Fluent Bit's does.
extern "C" fn reinstall(_signal: c_int) {
    signal_init();
}

/// `flb_signal_init`.
fn signal_init() {
    let handler = |f: extern "C" fn(c_int)| f as libc::sighandler_t;
    let hup = if HUP_STOPS.load(Ordering::SeqCst) { handler(break_loop) } else { handler(reinstall) };
    // SAFETY: installing plain handlers that only store an atomic or call signal().
    unsafe {
        libc::signal(libc::SIGINT, handler(break_loop));
        libc::signal(libc::SIGQUIT, handler(break_loop));
        libc::signal(libc::SIGHUP, hup);
        libc::signal(libc::SIGCONT, handler(reinstall));
        libc::signal(libc::SIGTERM, handler(break_loop));
    }
}

struct Section {
    name: String,
    pairs: Vec<(String, String)>,
}

impl Section {
    fn get(&self, key: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.as_str())
    }
}

fn parse_conf(text: &str) -> Vec<Section> {
    let mut sections: Vec<Section> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('[') && line.ends_with(']') {
            sections.push(Section { name: line[1..line.len() - 1].trim().to_ascii_uppercase(), pairs: Vec::new() });
        } else if let Some(s) = sections.last_mut() {
            let (k, v) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            s.pairs.push((k.to_string(), expand_env(v.trim())));
        }
    }
    sections
}

/// `${VAR}` as Fluent Bit expands it in values.
fn expand_env(v: &str) -> String {
    let mut out = String::new();
    let mut rest = v;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        match rest[start..].find('}') {
            Some(end) => {
                out.push_str(&std::env::var(&rest[start + 2..start + end]).unwrap_or_default());
                rest = &rest[start + end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

fn tag_matches(pattern: &str, tag: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == tag,
        Some((head, tail)) => {
            tag.len() >= head.len() && tag.starts_with(head) && tag_matches_rest(tail, &tag[head.len()..])
        }
    }
}

fn tag_matches_rest(pattern: &str, rest: &str) -> bool {
    if pattern.is_empty() {
        return true;
    }
    (0..=rest.len()).any(|i| rest.is_char_boundary(i) && tag_matches(pattern, &rest[i..]))
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (mut plugin, mut conf, mut fb, mut retry_wait) = (None, None, FB_5_1_1, Duration::from_millis(1000));
    let mut signal_after_unload = false;
    let mut overrides: Vec<(String, String)> = Vec::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            "-e" => plugin = args.next().map(PathBuf::from),
            "-c" => conf = args.next().map(PathBuf::from),
            "--fb" => fb = args.next().and_then(|v| profile(&v)).expect("--fb 5.1.1|4.2|1.9.10"),
            // `-p key=value`: set on every output of the plugin, ahead of the config's own keys
            "-p" => {
                let kv = args.next().expect("-p key=value");
                let (k, v) = kv.split_once('=').expect("-p key=value");
                overrides.push((k.to_string(), v.to_string()));
            }
            // every log line the plugin has (FLB_LOG_LEVEL=debug), as `fluent-bit -v` would
            "--debug" => std::env::set_var("FLB_LOG_LEVEL", "debug"),
            // after dlclose, raise SIGTERM: a handler the plugin left behind would crash here
            "--signal-after-unload" => signal_after_unload = true,
            "--retry-wait-ms" => {
                retry_wait = Duration::from_millis(args.next().and_then(|v| v.parse().ok()).expect("--retry-wait-ms N"))
            }
            other => {
                eprintln!("unknown argument {other}");
                return ExitCode::from(2);
            }
        }
    }
    let (Some(plugin), Some(conf)) = (plugin, conf) else {
        eprintln!("usage: cwrs-test-host -e PLUGIN.so -c CONFIG [--fb 5.1.1|4.2|1.9.10] [--retry-wait-ms N]");
        return ExitCode::from(2);
    };
    let text = std::fs::read_to_string(&conf).expect("read config");
    let sections = parse_conf(&text);
    let grace = sections
        .iter()
        .filter(|s| s.name == "SERVICE")
        .find_map(|s| s.get("grace").and_then(|v| v.parse().ok()))
        .map_or(Duration::from_secs(5), Duration::from_secs);
    HUP_STOPS.store(fb == FB_1_9_10, Ordering::SeqCst);
    signal_init();

    let host = match Host::load(&plugin, fb) {
        Ok(h) => Arc::new(h),
        Err(e) => {
            eprintln!("[error] [plugin] {e}");
            return ExitCode::FAILURE;
        }
    };
    let reg = match host.register() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("[error] [plugin] {e}");
            return ExitCode::FAILURE;
        }
    };
    let name = host.registered_name(reg);
    eprintln!("[ info] [host] Fluent Bit {} profile, plugin '{name}' registered", fb.name);

    // [OUTPUT] instances, Init in config order; on a failure, ExitCtx for every instance.
    let mut outputs: Vec<(Arc<Output>, String)> = Vec::new();
    for s in sections.iter().filter(|s| s.name == "OUTPUT") {
        if !s.get("name").is_some_and(|n| n.eq_ignore_ascii_case(&name)) {
            eprintln!("[ warn] [host] skipping output '{}'", s.get("name").unwrap_or(""));
            continue;
        }
        // Fluent Bit's lookup takes the first matching key, so overrides go first.
        let pairs: Vec<(&str, &str)> =
            overrides.iter().chain(s.pairs.iter()).map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let out = Arc::new(host.new_output(reg, &pairs));
        let ok = host.init(&out) > 0;
        outputs.push((out, s.get("match").unwrap_or("*").to_string()));
        if !ok {
            eprintln!("[error] [output] failed to initialize '{name}' plugin");
            for (o, _) in &outputs {
                host.exit(o);
            }
            host.unregister(reg);
            return ExitCode::FAILURE;
        }
    }

    // inputs → records, per tag
    let mut by_tag: HashMap<String, Vec<Vec<u8>>> = HashMap::new();
    let mut pace = Duration::ZERO;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let mut n = 0u32;
    for s in sections.iter().filter(|s| s.name == "INPUT") {
        let kind = s.get("name").unwrap_or("").to_ascii_lowercase();
        let tag = s.get("tag").map(str::to_string).unwrap_or_else(|| format!("{kind}.0"));
        let bodies: Vec<serde_json::Value> = match kind.as_str() {
            "tail" => {
                let path = s.get("path").expect("tail needs Path");
                std::fs::read_to_string(path)
                    .expect("read tail Path")
                    .lines()
                    .map(|l| serde_json::json!({ "log": l }))
                    .collect()
            }
            "dummy" => {
                let body: serde_json::Value =
                    serde_json::from_str(s.get("dummy").unwrap_or(r#"{"message":"dummy"}"#)).expect("Dummy JSON");
                let samples = s.get("samples").and_then(|v| v.parse().ok()).unwrap_or(10);
                vec![body; samples]
            }
            other => {
                eprintln!("[ warn] [host] input '{other}' is not emulated; skipped");
                continue;
            }
        };
        if let Some(ms) = s.get("interval_ms").and_then(|v| v.parse().ok()) {
            pace = Duration::from_millis(ms);
        }
        let recs = by_tag.entry(tag).or_default();
        for b in bodies {
            let t = now + Duration::from_millis(n as u64);
            recs.push(record(fb.v2_records, t.as_secs() as u32, t.subsec_nanos(), &b));
            n += 1;
        }
    }

    // the main loop: once a second, look for the stop signal
    let shutdown = Shutdown { requested: Arc::new(AtomicBool::new(false)), grace };
    let running = Arc::new(AtomicBool::new(true));
    let _main_loop = {
        let (requested, running) = (shutdown.requested.clone(), running.clone());
        std::thread::spawn(move || {
            while running.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_secs(1));
                let signal = EXIT_SIGNAL.load(Ordering::SeqCst);
                if signal != 0 {
                    eprintln!("[engine] caught signal ({signal})");
                    requested.store(true, Ordering::SeqCst);
                    break;
                }
            }
        })
    };
    let mut failed = false;
    for (i, (out, pattern)) in outputs.iter().enumerate() {
        let mut chunks = Vec::new();
        for (tag, recs) in &by_tag {
            if tag_matches(pattern, tag) {
                let size = if pace.is_zero() { 2 << 20 } else { 64 << 10 };
                chunks.extend(chunk(recs.iter().cloned(), size).into_iter().map(|c| (c, tag.clone())));
            }
        }
        let report = host.run_until(out, chunks, pace, retry_wait, Some(&shutdown));
        println!(
            "{name}.{i}: chunks_flushed={} ok={} retry={} error={} dropped_chunks={} stopped={} pending_at_exit={}",
            report.flushes,
            report.ok,
            report.retry,
            report.error,
            report.dropped_chunks,
            report.stopped,
            report.pending_at_exit
        );
        failed |= report.dropped_chunks > 0;
    }
    running.store(false, Ordering::SeqCst);
    for (out, _) in &outputs {
        host.exit(out);
    }
    host.unregister(reg);
    host.close();
    if signal_after_unload {
        // SAFETY: raising a signal whose handler (ours, `break_loop`) only stores an atomic.
        unsafe { libc::raise(libc::SIGTERM) };
        eprintln!("[ info] [host] survived a signal after unload");
    }
    if failed {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    }
}
