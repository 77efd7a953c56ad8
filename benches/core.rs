//! `make bench` (first part): the pure core alone — one Fluent Bit chunk of ~2 MB decoded,
//! encoded to CloudWatch messages, sorted and cut into batches — on ~1 KB JSON-like records and
//! on ~100-byte records, and the SigV4 payload hashes of its request bodies. Prints the median of
//! several runs; no network, no AWS.

use cloudwatch_rs::aws::payload_hashes::sha256_each;
use cloudwatch_rs::core::batch::{body_parts, BODY_TAIL};
use cloudwatch_rs::core::message::{Encoder, MessageFormat};
use cloudwatch_rs::core::names::NameKind;
use cloudwatch_rs::core::naming::NameRule;
use cloudwatch_rs::core::plan::{Naming, Plan};
use cloudwatch_rs::core::template::{Template, Vars};
use cwrs_test_host::record;
use sha2::Digest;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Counts heap allocations, to report allocations per record on the warmed-up path.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Heap allocations one call of `f` makes (after a warm-up call).
fn allocations(mut f: impl FnMut()) -> u64 {
    f();
    let before = ALLOCATIONS.load(Relaxed);
    f();
    ALLOCATIONS.load(Relaxed) - before
}

/// A ~2 MB chunk of records whose JSON message is about `size` bytes; their times go round a
/// minute (so sorting reorders them), or with `in_order`, only forward, as most inputs' do.
fn chunk(size: usize, in_order: bool) -> (Vec<u8>, usize) {
    let mut buf = Vec::new();
    let mut n = 0;
    while buf.len() < 2 << 20 {
        let body = serde_json::json!({
            "time": "2026-11-28T01:02:03.456Z",
            "level": if n % 3 == 0 { "info" } else { "warn" },
            "request_id": format!("{:032x}", n as u128 * 0x9E37_79B9_7F4A_7C15),
            "status": 200 + n % 5,
            "latency_ms": 12.5 + (n % 7) as f64,
            "message": "x".repeat(size.saturating_sub(160)),
            "kubernetes": {"namespace_name": "prod", "pod_name": format!("app-{}", n % 16)},
        });
        let secs = if in_order { n / 100 } else { n % 60 };
        buf.extend(record(true, 1_795_000_000 + secs as u32, 0, &body));
        n += 1;
    }
    (buf, n)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time(runs: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm the reused buffers
    median(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .collect(),
    )
    .as_secs_f64()
}

fn main() {
    let runs = 15;
    println!("pure core: decode -> encode -> sort -> cut, one ~2 MB chunk, median of {runs} runs");
    let group = NameRule::Fixed("group".into());
    let stream = NameRule::TagPrefix("app-".into());
    let per_pod = NameRule::Template {
        template: Template::parse("$kubernetes['namespace_name'].$kubernetes['pod_name']", NameKind::Stream)
            .unwrap()
            .into(),
        fallback: Box::new(NameRule::Fixed("fallback".into())),
    };
    let vars = Vars { uuid: "u", ecs: None };
    let fixed = Naming { group: &group, stream: &stream, vars: &vars, roles: None, role_map: None };
    let templated = Naming { group: &group, stream: &per_pod, vars: &vars, roles: None, role_map: None };
    for size in [1024usize, 100] {
        let (chunk, records) = chunk(size, false);
        let format = MessageFormat::default();
        let (mut plan, mut encoder) = (Plan::default(), Encoder::new());
        let t = time(runs, || plan.build(&chunk, "tag", fixed, &format, &mut encoder));
        let allocs = allocations(|| plan.build(&chunk, "tag", fixed, &format, &mut encoder));
        let t_templated = time(runs, || plan.build(&chunk, "tag", templated, &format, &mut encoder));
        let allocs_templated = allocations(|| plan.build(&chunk, "tag", templated, &format, &mut encoder));
        let streams = plan.keys.len();
        // the request bodies as delivery makes them: the head, and the events' run of the
        // arena when they are one (else the whole body, copied)
        let mut body = Vec::new();
        let mut bodies = |plan: &mut Plan, chunk: &[u8]| {
            plan.build(chunk, "tag", fixed, &format, &mut encoder);
            let mut zero_copy = 0;
            for r in &plan.batches {
                zero_copy +=
                    body_parts("group", "stream", &plan.arena, &plan.events[r.clone()], &mut body).is_some() as usize;
            }
            zero_copy
        };
        let t_body = time(runs, || {
            bodies(&mut plan, &chunk);
        });
        let copied = plan.batches.len() - bodies(&mut plan, &chunk);
        let allocs_body = allocations(|| {
            bodies(&mut plan, &chunk);
        });
        let (in_order, _) = self::chunk(size, true);
        let t_in_order = time(runs, || {
            bodies(&mut plan, &in_order);
        });
        let zero_copy_in_order = bodies(&mut plan, &in_order);
        let allocs_in_order = allocations(|| {
            bodies(&mut plan, &in_order);
        });
        // SigV4's payload hashes of those bodies (in order: sent from the arena), one at a time
        // as the signer would, and side by side as delivery does (`payload_hashes`)
        plan.build(&in_order, "tag", fixed, &format, &mut encoder);
        let heads: Vec<(Vec<u8>, std::ops::Range<usize>)> = plan
            .batches
            .iter()
            .filter_map(|r| {
                let mut head = Vec::new();
                body_parts("group", "stream", &plan.arena, &plan.events[r.clone()], &mut head).map(|run| (head, run))
            })
            .collect();
        let parts: Vec<[&[u8]; 3]> =
            heads.iter().map(|(head, run)| [&head[..], &plan.arena[run.clone()], BODY_TAIL]).collect();
        let hashed: usize = parts.iter().flatten().map(|p| p.len()).sum();
        let t_one = time(runs, || {
            for body in &parts {
                let mut h = sha2::Sha256::new();
                body.iter().for_each(|p| h.update(p));
                std::hint::black_box(h.finalize());
            }
        });
        let t_side = time(runs, || {
            std::hint::black_box(sha256_each(&parts));
        });
        let mb = chunk.len() as f64 / 1e6;
        println!(
            "  ~{size:>4} B records: {records:>6} records, {mb:.2} MB msgpack -> {:.2} MB messages in {} batches",
            plan.arena.len() as f64 / 1e6,
            plan.batches.len(),
        );
        println!(
            "      decode+encode+sort+cut:          {:>9.0} records/s {:>6.0} MB/s per core",
            records as f64 / t,
            mb / t
        );
        println!(
            "      allocations on the warmed-up path: {allocs} per chunk ({:.4} per record)",
            allocs as f64 / records as f64
        );
        println!(
            "      ... names from each record ({streams} streams): {:>9.0} records/s {:>6.0} MB/s per core, {:.4} allocations per record",
            records as f64 / t_templated,
            mb / t_templated,
            allocs_templated as f64 / records as f64
        );
        println!(
            "      ... + request bodies, times out of order: {:>9.0} records/s {:>6.0} MB/s per core, {copied} of {} batches copied, {:.4} allocations per record",
            records as f64 / t_body,
            mb / t_body,
            plan.batches.len(),
            allocs_body as f64 / records as f64
        );
        println!(
            "      ... + request bodies, times in order:     {:>9.0} records/s {:>6.0} MB/s per core, {zero_copy_in_order} of {} batches sent from the arena, {:.4} allocations per record",
            records as f64 / t_in_order,
            mb / t_in_order,
            plan.batches.len(),
            allocs_in_order as f64 / records as f64
        );
        println!(
            "      SigV4 payload hashes of its {} bodies ({:.2} MB): one at a time {:.2} s per GB on one core, side by side {:.2}",
            parts.len(),
            hashed as f64 / 1e6,
            t_one / hashed as f64 * 1e9,
            t_side / hashed as f64 * 1e9,
        );
    }
}
