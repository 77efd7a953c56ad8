//! `cwrs-strict-endpoint [--tls]`: the strict endpoint as its own process (so a benchmark can
//! measure the plugin's CPU alone). Prints `URL <url>` and, with TLS, `CA <pem file>`, then
//! serves until its standard input closes, and prints its counters to stderr. Lines on
//! standard input change its behaviour: `stall` (every PutLogEvents hangs for 10 minutes),
//! `refuse` (every PutLogEvents is throttled), `latency <ms>` (every PutLogEvents is answered
//! that late: a distant region), `normal`.

use cwrs_aws_standins::strict::{Faults, StrictEndpoint};
use std::io::{BufRead, Write};
use std::time::Duration;

fn main() {
    let tls = std::env::args().any(|a| a == "--tls");
    let endpoint = StrictEndpoint::start(tls, Faults::default(), 1);
    let mut out = std::io::stdout().lock();
    writeln!(out, "URL {}", endpoint.url).unwrap();
    if let Some(pem) = &endpoint.ca_pem {
        let path = std::env::temp_dir().join(format!("cwrs-strict-ca-{}.pem", std::process::id()));
        std::fs::write(&path, pem).unwrap();
        writeln!(out, "CA {}", path.display()).unwrap();
    }
    out.flush().unwrap();
    drop(out);
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let faults = match line.trim() {
            "stall" => Faults { slow: 1.0, slow_for: Duration::from_secs(600), ..Faults::default() },
            "refuse" => Faults { throttle: 1.0, ..Faults::default() },
            other => match other.strip_prefix("latency ").and_then(|ms| ms.parse().ok()) {
                Some(ms) => Faults { slow: 1.0, slow_for: Duration::from_millis(ms), ..Faults::default() },
                None => Faults::default(),
            },
        };
        endpoint.set_faults(faults);
    }
    eprintln!("strict endpoint: {}", endpoint.summary());
}
