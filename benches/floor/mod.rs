//! The floor: what any correct client spends per GB on this machine to ship request bodies,
//! whatever its code — the SHA-256 of every body (SigV4 signs the payload's hash; one body at a
//! time, and two side by side as the plugin hashes a flush's batches) and sending it
//! over TLS 1.3 into a socket on 127.0.0.1 (the encryption, the copies into TLS records and the
//! kernel's send path, with the loopback's receive path that the kernel runs in the sender's
//! context, as it does inside Fluent Bit). A plugin adds at least one JSON pass over the records
//! to this, and HTTP and its hand-offs.

use cwrs_aws_standins::tls_sink::TlsSink;
use std::io::Write;

/// CPU-s per GB over the rounds: the least (the floor) and the most.
pub struct Floor {
    pub sha256: (f64, f64),
    /// Two bodies hashed side by side (`payload_hashes`), per GB of both.
    pub sha256_side_by_side: (f64, f64),
    pub tls_send: (f64, f64),
    pub suite: String,
}

/// This thread's CPU time so far, in seconds (the scheduler's own count, in nanoseconds).
fn thread_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    stat.split_whitespace().next().and_then(|ns| ns.parse::<f64>().ok()).unwrap_or(0.0) / 1e9
}

/// The least and the most of `v`. A floor is the least: sending varies between rounds by up to
/// two times here with where the scheduler puts the sender and the sink (the receive path runs
/// in the sender's context), and a busy neighbour only ever adds.
fn least_most(v: &[f64]) -> (f64, f64) {
    v.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)))
}

/// Measures the floor over `gb` GB per round of `body` (a request body of the workload's
/// records), sent in one-body writes as an HTTP client would.
pub fn measure(body: &[u8], gb: f64, rounds: usize) -> Floor {
    let times = ((gb * 1e9) / body.len() as f64).ceil() as usize;
    let per_gb = |cpu: f64| cpu / (times * body.len()) as f64 * 1e9;
    let sink = TlsSink::start();
    let mut sha256 = Vec::new();
    let mut side_by_side = Vec::new();
    let mut tls_send = Vec::new();
    let mut suite = String::new();
    for _ in 0..rounds {
        let start = thread_cpu();
        let mut check = 0u8;
        for _ in 0..times {
            use sha2::Digest;
            check ^= sha2::Sha256::digest(body)[0];
        }
        sha256.push(per_gb(thread_cpu() - start));
        std::hint::black_box(check);

        let start = thread_cpu();
        for _ in 0..times / 2 {
            let pair = [[body], [body]];
            check ^= cloudwatch_rs::aws::payload_hashes::sha256_each(&pair)[1][0];
        }
        side_by_side.push(per_gb(thread_cpu() - start) * times as f64 / (2 * (times / 2)) as f64);
        std::hint::black_box(check);

        let (mut tls, agreed) = sink.connect();
        suite = agreed;
        let start = thread_cpu();
        for _ in 0..times {
            tls.write_all(body).expect("writing to the TLS sink");
        }
        tls.flush().expect("flushing to the TLS sink");
        tls_send.push(per_gb(thread_cpu() - start));
    }
    Floor {
        sha256: least_most(&sha256),
        sha256_side_by_side: least_most(&side_by_side),
        tls_send: least_most(&tls_send),
        suite,
    }
}
