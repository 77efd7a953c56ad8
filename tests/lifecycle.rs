//! The plugin's life as Fluent Bit drives it, without any AWS endpoint: what Register writes,
//! which keys Init reads, when threads exist, ExitCtx(NULL), Unregister counting, hot reload
//! and dlclose. One test function: thread counts must not be disturbed by other tests.

mod support;

use cloudwatch_rs::core::config::KEYS;
use cwrs_test_host::{record, thread_count, Host, FB_1_9_10, FB_4_2, FB_5_1_1};
use std::sync::Arc;
use std::time::Duration;
use support::{Env, Plugin};

fn props() -> Vec<(&'static str, &'static str)> {
    vec![
        ("Name", "cloudwatch_rs"),
        ("Match", "*"),
        ("Workers", "2"),
        ("REGION", "us-east-1"),
        ("Log_Group_Name", "lifecycle"),
        ("LOG_STREAM_PREFIX", "x-"),
        ("Role_Arn", "arn:aws:iam::222222222222:role/cross-account-log-role"),
        ("External_Id", "ext-123"),
        ("role_session_name", "lifecycle-test"),
        // a closed port on loopback: flushes fail fast, nothing leaves the machine
        ("endpoint", "http://127.0.0.1:9"),
        ("sts_endpoint", "http://127.0.0.1:9"),
        ("auto_create_group", "off"),
        ("flush_timeout", "2s"),
        // nothing answers on port 9: the check would only wait out its timeout at every Init
        ("startup_check", "off"),
    ]
}

#[test]
fn lifecycle_as_fluent_bit_drives_it() {
    Env::new().keys("AKIDLIFECYCLE", "lifecycle-secret").apply();
    let so = support::plugin();

    // Register writes only the five fields every version has, for each version's layout.
    for profile in [FB_5_1_1, FB_4_2, FB_1_9_10] {
        let host = Host::load(&so, profile).unwrap();
        let reg = host.register().unwrap_or_else(|e| panic!("{}: {e}", profile.name));
        assert_eq!(host.registered_name(reg), "cloudwatch_rs");
        host.unregister(reg);
    }

    let baseline = thread_count();
    let host = Arc::new(Host::load(&so, FB_5_1_1).unwrap());
    let reg = host.register().unwrap();
    assert_eq!(thread_count(), baseline, "a thread was started before the first Init");

    // ExitCtx(NULL), as in dry run or after a failed startup
    assert_eq!(host.exit_null(), Some(1));

    // Init reads every key of the key table through output_get_property, in any case.
    let out = Arc::new(host.new_output(reg, &props()));
    assert_eq!(host.init(&out), 1);
    let asked = host.keys_asked(&out);
    for key in KEYS {
        assert!(asked.iter().any(|a| a == key.name), "Init never asked for '{}'", key.name);
    }
    assert!(!asked.iter().any(|a| a == "workers" || a == "match"), "core keys are not the plugin's");
    assert!(thread_count() > baseline, "the runtime starts at the first Init");

    // A bad value fails Init (returns 0) and leaves no context.
    let bad = host.new_output(reg, &[("region", "US East"), ("log_group_name", "g"), ("log_stream_name", "s")]);
    assert_eq!(host.init(&bad), 0);
    assert!(host.remote_context(&bad).is_null());
    assert_eq!(host.exit(&bad), Some(1));

    // Flushes on 2 worker threads with 64 KiB stacks; the endpoint is closed, so each
    // answers RETRY once its deadline passes, never crashes, never hangs.
    let chunks: Vec<(Vec<u8>, String)> =
        (0..4).map(|i| (record(true, 1_700_000_000 + i, 0, &serde_json::json!({ "i": i })), "t".to_string())).collect();
    let report = host.run(&out, chunks, Duration::from_millis(10));
    assert_eq!(report.ok + report.error, 0, "{report:?}");
    assert_eq!(report.retry, 8, "{report:?}");

    // Hot reload: the new registration arrives while the old instance still flushes.
    let flushing = {
        let (host, out) = (host.clone(), out.clone());
        std::thread::spawn(move || host.flush(&out, &record(true, 1_700_000_000, 0, &serde_json::json!({"r": 1})), "t"))
    };
    let reg2 = host.register().unwrap();
    assert_eq!(flushing.join().unwrap(), 2);
    assert_eq!(host.exit(&out), Some(1));
    host.unregister(reg);
    let out2 = Arc::new(host.new_output(reg2, &props()));
    assert_eq!(host.init(&out2), 1, "Init after a reload's old Unregister");
    assert_eq!(host.flush(&out2, &record(true, 1_700_000_000, 0, &serde_json::json!({"r": 2})), "t"), 2);
    assert_eq!(host.exit(&out2), Some(1));

    // The last Unregister stops and joins every thread of ours before it returns.
    host.unregister(reg2);
    assert_eq!(thread_count(), baseline, "threads left running after the last Unregister");

    // Fluent Bit dlcloses after the last Unregister; the library stays mapped (-z nodelete),
    // and a later load starts cleanly (and stops cleanly: ExitCtx answers FLB_OK).
    host.close();
    Plugin::start(FB_5_1_1, &props()).stop();
    assert_eq!(thread_count(), baseline);
}
