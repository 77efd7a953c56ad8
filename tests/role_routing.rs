//! One output, many log accounts: the role chosen per record (`role_arn_template`,
//! `role_arn_map`), held to `role_arn_allowed`.
//!
//! Against moto_server with IAM authentication on: the task account, the fallback log account
//! 222222222222 (`role_arn`) and tenant log accounts 333333333333, 444444444444, 555555555555,
//! plus 666666666666, whose role the task may assume but which `role_arn_allowed` leaves out.
//! Each tenant's reader reads its own account back; moto's own record of the roles it issued
//! (`/moto-api/data.json`) counts AssumeRole per role. The tests of steady traffic and of a
//! refused role run against the strict STS stand-in (tests/aws-standins), whose credentials
//! expire in seconds and which refuses roles on demand.

mod support;

use cwrs_aws_standins::strict::{Faults, StrictEndpoint};
use cwrs_aws_standins::strict_sts::TASK_ACCESS_KEY;
use cwrs_test_host::{chunk, record, RunReport, FB_5_1_1};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::{scratch, serial, strict_role_output, Env, Moto, Plugin};

const FALLBACK: &str = "222222222222";
const TENANTS: [&str; 3] = ["333333333333", "444444444444", "555555555555"];
/// Its role exists and trusts the task, but it is not in `role_arn_allowed`.
const OUTSIDER: &str = "666666666666";
const ALLOWED: &str = "333333333333,444444444444,555555555555";
static SEQ: AtomicU64 = AtomicU64::new(0);

fn now() -> u32 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as u32
}

fn writer(account: &str) -> String {
    format!("arn:aws:iam::{account}:role/log-writer")
}

/// One chunk of records, each with a fresh `seq`; `account(i)` is the record's
/// `kubernetes.labels.log-account` (none when empty). Returns the chunk and the seqs per account.
fn labelled_chunk(
    n: usize,
    account: impl Fn(usize) -> String,
    key: &str,
) -> (Vec<u8>, BTreeMap<String, BTreeSet<u64>>) {
    let mut sent: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    let recs: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let seq = SEQ.fetch_add(1, Relaxed);
            let a = account(i);
            let labels = if a.is_empty() { json!({}) } else { json!({ key: a }) };
            sent.entry(a).or_default().insert(seq);
            let body = json!({"seq": seq, "kubernetes": {"labels": labels, "namespace_name": "n"}, "log": "x"});
            record(true, now(), 0, &body)
        })
        .collect();
    let mut chunks = chunk(recs, usize::MAX);
    (chunks.remove(0), sent)
}

fn seqs(events: &[support::Event]) -> Vec<u64> {
    let mut out: Vec<u64> = events
        .iter()
        .map(|e| serde_json::from_str::<serde_json::Value>(&e.message).unwrap()["seq"].as_u64().unwrap())
        .collect();
    out.sort_unstable();
    out
}

fn moto_props<'a>(moto: &'a Moto, group: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("Name", "cloudwatch_rs"),
        ("region", "us-east-1"),
        ("log_group_name", group),
        ("log_stream_prefix", "s-"),
        ("auto_create_group", "on"),
        ("role_arn", &moto.role_arn),
        ("endpoint", &moto.endpoint),
        ("sts_endpoint", &moto.endpoint),
    ]
}

/// The number after `name=` in the plugin's exit `stats:` line.
fn counter(log: &str, name: &str) -> u64 {
    let line = log.lines().rev().find(|l| l.contains("exit: ")).unwrap_or_default();
    line.split_whitespace().find_map(|w| w.strip_prefix(&format!("{name}="))?.parse().ok()).unwrap_or(0)
}

#[test]
fn one_chunk_lands_in_the_accounts_its_records_name_and_an_outsider_goes_to_the_fallback() {
    let _s = serial();
    let mut tenants = TENANTS.to_vec();
    tenants.push(OUTSIDER);
    let moto = Moto::with_tenants(&tenants);
    moto.task_env().apply();
    let group = "tenant-logs";
    let mut props = moto_props(&moto, group);
    props.extend([
        ("Workers", "4"),
        ("role_arn_template", "arn:aws:iam::$kubernetes['labels']['log-account']:role/log-writer"),
        ("role_arn_allowed", ALLOWED),
    ]);
    let plugin = Plugin::with(FB_5_1_1, true, &[&props]);
    // 0..3: the tenants; 4: the outsider; 5: no label; 6: not an account id
    let choose = |i: usize| match i % 7 {
        n @ 0..=2 => TENANTS[n].to_string(),
        3 => TENANTS[0].to_string(),
        4 => OUTSIDER.to_string(),
        5 => String::new(),
        _ => "3333:role/admin".to_string(),
    };
    let (data, sent) = labelled_chunk(140, choose, "log-account");
    let report = plugin.run(vec![(data, "kube.app".into())], Duration::from_millis(200));
    let log = plugin.stop();

    let mut landed = String::new();
    for account in TENANTS {
        let got = seqs(&moto.read_in(account, group));
        let want: Vec<u64> = sent[account].iter().copied().collect();
        landed += &format!("{account}: {} of {}; ", got.len(), want.len());
        assert_eq!(got, want, "account {account}: each of its records once, no other");
    }
    let outsider = moto.read_in(OUTSIDER, group);
    let fallback = seqs(&moto.read(group));
    let mut want: Vec<u64> = [OUTSIDER, "", "3333:role/admin"].iter().flat_map(|a| sent[*a].iter().copied()).collect();
    want.sort_unstable();
    let (unresolved, denied) = (counter(&log, "role_unresolved"), counter(&log, "role_denied"));
    let assumed = moto.assumed();
    eprintln!(
        "one chunk of 140 records: {landed}fallback {FALLBACK}: {} (outsider {}, unlabelled {}, not an ARN {}); \
         outsider account {OUTSIDER}: {} events; role_unresolved={unresolved} role_denied={denied}; AssumeRole \
         served by moto {assumed:?}; host {report:?}",
        fallback.len(),
        sent[OUTSIDER].len(),
        sent[""].len(),
        sent["3333:role/admin"].len(),
        outsider.len()
    );
    assert_eq!(assumed.get(&writer(OUTSIDER)), None, "the outsider's role reached moto's AssumeRole");
    for account in TENANTS {
        assert_eq!(assumed.get(&writer(account)), Some(&1), "{account}: one AssumeRole for the chunk");
    }
    assert_eq!((report.retry, report.dropped_chunks), (0, 0), "{report:?}");
    assert!(outsider.is_empty(), "the outsider's account received records");
    assert_eq!(fallback, want, "the fallback account: exactly the records whose role was not used");
    assert_eq!(unresolved, sent[""].len() as u64);
    assert_eq!(denied, (sent[OUTSIDER].len() + sent["3333:role/admin"].len()) as u64);
    // logged once per value, not per record
    let lines = |what: &str| log.lines().filter(|l| l.contains(what)).count();
    assert_eq!(lines(&format!("role '{}'", writer(OUTSIDER))), 1, "{log}");
    assert!(lines("not in role_arn_allowed") == 1 && lines("not a valid IAM role ARN") == 1, "{log}");
}

#[test]
fn a_changed_map_file_reroutes_the_next_chunk() {
    let _s = serial();
    let moto = Moto::with_tenants(&TENANTS);
    moto.task_env().apply();
    let dir = scratch("role-map");
    let map = dir.join("roles");
    std::fs::write(&map, format!("# namespace → role\nteam-a {}\nteam-b {}\n", writer(TENANTS[0]), writer(TENANTS[1])))
        .unwrap();
    let group = "mapped-logs";
    let map_path = map.to_str().unwrap();
    let mut props = moto_props(&moto, group);
    props.extend([
        ("role_arn_map", map_path),
        ("role_arn_map_key", "$kubernetes['namespace_name']"),
        ("role_arn_allowed", ALLOWED),
        ("startup_check", "strict"),
    ]);
    let plugin = Plugin::with(FB_5_1_1, true, &[&props]);
    let ns_chunk = |ns: &str, n: usize| {
        let recs: Vec<Vec<u8>> = (0..n)
            .map(|_| {
                let seq = SEQ.fetch_add(1, Relaxed);
                record(true, now(), 0, &json!({"seq": seq, "kubernetes": {"namespace_name": ns}}))
            })
            .collect();
        (chunk(recs, usize::MAX).remove(0), "kube.app".to_string())
    };
    let r1 = plugin.run(vec![ns_chunk("team-a", 20)], Duration::from_millis(200));
    let first = seqs(&moto.read_in(TENANTS[0], group));
    // team-a moves to the third account; the next chunk goes there
    std::fs::write(&map, format!("team-a {}\nteam-b {}\n", writer(TENANTS[2]), writer(TENANTS[1]))).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let r2 = plugin.run(vec![ns_chunk("team-a", 20)], Duration::from_millis(200));
    let moved = seqs(&moto.read_in(TENANTS[2], group));
    // a broken file keeps the last good map
    std::fs::write(&map, "team-a not-an-arn\n").unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let r3 = plugin.run(vec![ns_chunk("team-a", 20)], Duration::from_millis(200));
    let log = plugin.stop();
    let kept = seqs(&moto.read_in(TENANTS[2], group));
    let assumed = moto.assumed();
    eprintln!(
        "map: chunk 1 → {} in {}; map changed, chunk 2 → {} in {}; map broken, chunk 3 → {} more in {} (last good map \
         kept); startup checks passed {}; AssumeRole served by moto {assumed:?}; runs {r1:?} {r2:?} {r3:?}",
        first.len(),
        TENANTS[0],
        moved.len(),
        TENANTS[2],
        kept.len() - moved.len(),
        TENANTS[2],
        log.matches("(role_arn_map) may write").count()
    );
    assert_eq!(first.len(), 20);
    assert_eq!(moved.len(), 20, "the chunk after the change went to the new account");
    assert_eq!(seqs(&moto.read_in(TENANTS[0], group)).len(), 20, "nothing more in the old account");
    assert_eq!(kept.len(), 40, "a broken map keeps the last good one");
    assert_eq!(log.matches("(role_arn_map) may write").count(), 2, "each map role checked at startup: {log}");
    assert_eq!(log.matches("keeping the last good map").count(), 1, "{log}");
    assert!(log.contains("re-read: 2 entries"), "{log}");
    assert!(TENANTS.iter().all(|a| assumed.get(&writer(a)) == Some(&1)), "one AssumeRole per role: {assumed:?}");
}

/// The task account's static keys, as the plugin's base credentials.
fn task_env() -> Env {
    Env::new().keys(TASK_ACCESS_KEY, "task-secret-never-logged")
}

fn strict_props<'a>(endpoint: &'a StrictEndpoint, group: &'a str) -> Vec<(&'a str, &'a str)> {
    let mut props = strict_role_output(&endpoint.url, group);
    props.extend([
        ("role_arn_template", "arn:aws:iam::$kubernetes['labels']['log-account']:role/log-writer"),
        ("role_arn_allowed", ALLOWED),
    ]);
    props
}

#[test]
fn steady_traffic_through_two_instances_assumes_each_role_once_per_lifetime_and_never_an_outsider() {
    let _s = serial();
    task_env().apply();
    let secs: u64 = std::env::var("ROLE_TRAFFIC_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(40);
    let lifetime = Duration::from_secs(8);
    let endpoint = StrictEndpoint::start(false, Faults::default(), 19);
    endpoint.sts().set_lifetime(lifetime);
    let plugin =
        Plugin::with(FB_5_1_1, true, &[&strict_props(&endpoint, "roles-a"), &strict_props(&endpoint, "roles-b")]);
    let (host, a, b) = (&plugin.host, &plugin.outs[0], &plugin.outs[1]);
    let choose = |i: usize| if i % 4 == 3 { OUTSIDER.to_string() } else { TENANTS[i % 4].to_string() };
    let started = Instant::now();
    let (mut sent, mut reports) = (BTreeMap::<String, usize>::new(), Vec::<RunReport>::new());
    while started.elapsed() < Duration::from_secs(secs) {
        let tick = Instant::now();
        let mut threads = Vec::new();
        for out in [a, b] {
            let chunks: Vec<(Vec<u8>, String)> = (0..8)
                .map(|_| {
                    let (data, by) = labelled_chunk(40, choose, "log-account");
                    for (acct, s) in by {
                        *sent.entry(acct).or_default() += s.len();
                    }
                    (data, "kube.app".to_string())
                })
                .collect();
            let (h, o) = (host.clone(), out.clone());
            threads.push(std::thread::spawn(move || h.run(&o, chunks, Duration::from_millis(500))));
        }
        reports.extend(threads.into_iter().map(|t| t.join().unwrap()));
        std::thread::sleep(Duration::from_secs(1).saturating_sub(tick.elapsed()));
    }
    let elapsed = started.elapsed();
    let log = plugin.stop();

    let sts = endpoint.sts();
    let by_role = sts.assume_role_calls_by_role();
    let puts = sts.calls_by_role();
    let lifetimes = elapsed.as_secs_f64() / lifetime.as_secs_f64();
    let retries: usize = reports.iter().map(|r| r.retry + r.dropped_chunks).sum();
    eprintln!(
        "steady, two instances with Workers 4, {:.0} s, credentials living {lifetime:?} ({lifetimes:.1} lifetimes): \
         AssumeRole by role {by_role:?}; accepted PutLogEvents by role {puts:?}; records by label {sent:?}; \
         role_denied {} + {}; FLB retries {retries}",
        elapsed.as_secs_f64(),
        counter_of(&log, 0, "role_denied"),
        counter_of(&log, 1, "role_denied"),
    );
    assert_eq!(by_role.get(&writer(OUTSIDER)), None, "the outsider's role was asked of STS");
    for account in TENANTS {
        let calls = by_role.get(&writer(account)).copied().unwrap_or(0) as f64;
        // refreshed at 3/4 of the lifetime: about one per lifetime for both instances and all
        // 8 workers together, not per instance, worker or request
        assert!(
            calls >= 1.0 && calls < lifetimes * 1.6 + 2.0,
            "{account}: {calls} AssumeRole over {lifetimes:.1} lifetimes"
        );
        assert!(puts.get(&writer(account)).copied().unwrap_or(0) > 0, "{account}: nothing written as its role");
    }
    let denied = counter_of(&log, 0, "role_denied") + counter_of(&log, 1, "role_denied");
    assert_eq!(denied, sent[OUTSIDER] as u64, "every outsider record counted in role_denied");
    assert_eq!(retries, 0);
    assert_eq!(sts.expired_token_rejections.load(Relaxed), 0);
    let accepted: HashMap<u64, usize> = endpoint.accepted().iter().fold(HashMap::new(), |mut m, a| {
        *m.entry(a.seq.unwrap()).or_default() += 1;
        m
    });
    let total: usize = sent.values().sum();
    assert_eq!(accepted.len(), total, "every record delivered");
    assert!(accepted.values().all(|&n| n == 1), "duplicates");
}

/// `counter`, in the exit line of the `n`-th instance (`cloudwatch_rs.N`, in start order).
fn counter_of(log: &str, n: usize, name: &str) -> u64 {
    let mut exits: Vec<&str> = log.lines().filter(|l| l.contains("exit: ")).collect();
    let id = |l: &str| -> u64 {
        let after = l.split("cloudwatch_rs:cloudwatch_rs.").nth(1).unwrap_or_default();
        after.split(']').next().and_then(|n| n.parse().ok()).unwrap_or(u64::MAX)
    };
    exits.sort_by_key(|l| id(l));
    let line = exits.get(n).copied().unwrap_or_default();
    line.split_whitespace().find_map(|w| w.strip_prefix(&format!("{name}="))?.parse().ok()).unwrap_or(0)
}

#[test]
fn a_role_sts_refuses_holds_only_its_records_and_a_retry_resends_nothing_delivered() {
    let _s = serial();
    task_env().apply();
    let endpoint = StrictEndpoint::start(false, Faults::default(), 23);
    let mut props = strict_props(&endpoint, "held");
    // the strict STS refuses AssumeRole of any role named *denied*; role_cache_size 2 with
    // three roles in use makes the instance drop and rebuild writers as it goes
    props.retain(|(k, _)| *k != "role_arn_template" && *k != "Workers");
    props.extend([
        ("role_arn_template", "arn:aws:iam::$kubernetes['labels']['log-account']:role/$kubernetes['labels']['role']"),
        ("role_cache_size", "2"),
        ("Retry_Limit", "3"),
    ]);
    let plugin = Plugin::with(FB_5_1_1, true, &[&props]);
    let role = |i: usize| if i % 3 == 2 { "denied-writer" } else { "log-writer" };
    let recs: Vec<Vec<u8>> = (0..60)
        .map(|i| {
            let seq = SEQ.fetch_add(1, Relaxed);
            let labels = json!({"log-account": TENANTS[i % 3], "role": role(i)});
            record(true, now(), 0, &json!({"seq": seq, "kubernetes": {"labels": labels}}))
        })
        .collect();
    let report = plugin.run(vec![(chunk(recs, usize::MAX).remove(0), "kube.app".into())], Duration::from_millis(300));
    let log = plugin.stop();
    let mut seen: HashMap<u64, usize> = HashMap::new();
    for a in endpoint.accepted() {
        *seen.entry(a.seq.unwrap()).or_default() += 1;
    }
    let by_role = endpoint.sts().assume_role_calls_by_role();
    let skipped = counter(&log, "batches_skipped");
    let evicted = counter(&log, "roles_evicted");
    eprintln!(
        "held: 60 records, 20 for a refused role: delivered {} (each once: {}), flushes {} (retry {}), batches skipped on \
         retry {skipped}, roles evicted {evicted}, AssumeRole by role {by_role:?}",
        seen.len(),
        seen.values().all(|&n| n == 1),
        report.flushes,
        report.retry,
    );
    assert_eq!(seen.len(), 40, "the records of the two working roles, and none of the refused one");
    assert!(seen.values().all(|&n| n == 1), "a retry re-sent an accepted batch");
    assert!(report.retry >= 1, "the refused role's records answer RETRY: {report:?}");
    assert!(skipped >= 2, "the retries skip the batches already delivered");
    assert!(evicted >= 1, "role_cache_size 2 with three roles");
}
