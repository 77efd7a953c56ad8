//! `cwrs-strict-endpoint [--tls]`: the strict endpoint as its own process (so a benchmark can
//! measure the plugin's CPU alone). Prints `URL <url>` and, with TLS, `CA <pem file>`, then
//! serves until its standard input closes, and prints its counters to stderr.

use cwrs_test_host::strict::{Faults, StrictEndpoint};
use std::io::{Read, Write};

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
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    eprintln!("strict endpoint: {}", endpoint.summary());
}
