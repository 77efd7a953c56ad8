//! The FireLens kit in plugin-config/ is what users copy: every JSON file parses, every option
//! it sets is a key the plugin reads (checked against `config::KEYS`, the one list), the classic
//! config starts the plugin in the test host against moto with the kit's own IAM documents
//! (tests/support/moto_fixture.py loads them), and each library `make firelens` built (amd64,
//! arm64) is for its machine and needs no glibc newer than Amazon Linux 2's 2.26.

mod support;

use cloudwatch_rs::core::config::KEYS;
use std::path::{Path, PathBuf};
use support::{root, Moto};

/// Keys Fluent Bit's core takes for an output (the plugin never sees them).
const CORE_KEYS: &[&str] = &["name", "match", "match_regex", "alias", "workers", "retry_limit", "log_level"];

fn kit(path: &str) -> PathBuf {
    root().join("plugin-config").join(path)
}

fn accepted(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    CORE_KEYS.contains(&k.as_str()) || KEYS.iter().any(|known| known.name == k)
}

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            json_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "json") {
            out.push(p);
        }
    }
}

#[test]
fn every_json_file_parses_and_the_iam_documents_are_well_formed() {
    let mut files = Vec::new();
    json_files(&kit(""), &mut files);
    assert!(files.len() >= 4, "{files:?}");
    for f in &files {
        let _: serde_json::Value =
            serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
    }
    let trust: serde_json::Value =
        serde_json::from_slice(&std::fs::read(kit("iam/log-role-trust-policy.json")).unwrap()).unwrap();
    let principal = &trust["Statement"][0]["Principal"]["AWS"];
    assert!(
        principal.as_str().is_some_and(|p| p.starts_with("arn:aws:iam::111111111111:")),
        "Principal needs its AWS key"
    );
    let write: serde_json::Value =
        serde_json::from_slice(&std::fs::read(kit("iam/cloudwatch-write.json")).unwrap()).unwrap();
    let mut actions: Vec<&str> =
        write["Statement"][0]["Action"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    actions.sort();
    // exactly what the plugin calls with auto_create_group on
    assert_eq!(actions, ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]);
}

#[test]
fn every_option_in_the_kit_is_a_key_the_plugin_reads() {
    // the task definition's awsfirelens options
    let td: serde_json::Value = serde_json::from_slice(&std::fs::read(kit("task-definition.json")).unwrap()).unwrap();
    let app = td["containerDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["logConfiguration"]["logDriver"] == "awsfirelens")
        .unwrap();
    assert_eq!(app["logConfiguration"]["logDriver"], "awsfirelens");
    let options = app["logConfiguration"]["options"].as_object().unwrap();
    assert_eq!(options["Name"], "cloudwatch_rs");
    for key in ["region", "log_group_name", "log_stream_prefix", "auto_create_group", "role_arn", "Workers"] {
        assert!(options.contains_key(key), "task definition lacks {key}");
    }
    for key in options.keys() {
        assert!(accepted(key), "task definition option '{key}' is not a key of the plugin");
    }
    assert!(td["taskRoleArn"].as_str().is_some_and(|a| a.contains(":role/")));
    assert!(td["containerDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["firelensConfiguration"]["type"] == "fluentbit"));

    // the classic config's [OUTPUT]
    let conf = std::fs::read_to_string(kit("fluent-bit.conf")).unwrap();
    let output = conf.split("[OUTPUT]").nth(1).expect("an [OUTPUT] section");
    for line in output.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let key = line.split_whitespace().next().unwrap();
        assert!(accepted(key), "fluent-bit.conf key '{key}' is not a key of the plugin");
    }
    for key in ["Role_Arn", "Log_Group_Name", "Log_Stream_Prefix", "Auto_Create_Group"] {
        assert!(output.contains(key), "fluent-bit.conf lacks {key}");
    }

    // the YAML config's output, and both plugins files
    let yaml = std::fs::read_to_string(kit("fluent-bit.yaml")).unwrap();
    let outputs = yaml.split("outputs:").nth(1).expect("outputs");
    for line in outputs.lines().map(str::trim).filter(|l| l.contains(':')) {
        let key = line.trim_start_matches("- ").split(':').next().unwrap();
        assert!(accepted(key), "fluent-bit.yaml key '{key}' is not a key of the plugin");
    }
    assert!(yaml.contains("plugins:") && yaml.contains("libcloudwatch_rs.so"));
    assert!(std::fs::read_to_string(kit("plugins.conf"))
        .unwrap()
        .contains("Path /fluent-bit/plugins/libcloudwatch_rs.so"));
    assert!(std::fs::read_to_string(kit("plugins.yaml"))
        .unwrap()
        .contains("- /fluent-bit/plugins/libcloudwatch_rs.so"));
    // the YAML parses (PyYAML comes with moto)
    let ok = std::process::Command::new(support::python())
        .args(["-c", "import sys, yaml; [yaml.safe_load(open(f)) for f in sys.argv[1:]]"])
        .arg(kit("fluent-bit.yaml"))
        .arg(kit("plugins.yaml"))
        .status()
        .unwrap();
    assert!(ok.success(), "the YAML files do not parse");
}

#[test]
fn the_classic_config_starts_in_the_test_host_against_moto_with_the_kits_iam_documents() {
    let moto = Moto::start();
    // Only the endpoints are changed (127.0.0.1 only); the strict startup check assumes the role
    // and asks whether the group may be written, so a permission missing from the kit fails here.
    let (code, _out, err) = support::run_host(
        &kit("fluent-bit.conf"),
        &moto.task_env(),
        &[
            "-p",
            &format!("endpoint={}", moto.endpoint),
            "-p",
            &format!("sts_endpoint={}", moto.endpoint),
            "-p",
            "startup_check=strict",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("startup check passed"), "{err}");
}

/// Tool output as text (binutils' objdump, readelf and nm read ELF files of either machine).
fn tool(program: &str, args: &[&str], file: &Path) -> String {
    let out = std::process::Command::new(program).args(args).arg(file).output().expect(program);
    assert!(out.status.success(), "{program} {args:?} {}: {}", file.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn each_firelens_library_is_for_its_machine_and_needs_glibc_2_26_at_most() {
    if std::env::var_os("CWRS_SKIP_FIRELENS").is_some() {
        eprintln!("skipped: CWRS_SKIP_FIRELENS is set");
        return;
    }
    // Docker's TARGETARCH names the directory; readelf's Machine the ELF header's.
    for (arch, machine) in [("amd64", "Advanced Micro Devices X86-64"), ("arm64", "AArch64")] {
        let rel = format!("build/firelens/{arch}/libcloudwatch_rs.so");
        let lib = root().join(&rel);
        assert!(
            lib.exists(),
            "{} missing: `make firelens` builds it (make test runs it first; its output says why it skipped one)",
            lib.display()
        );
        let header = tool("readelf", &["-h"], &lib);
        let is = header.lines().find_map(|l| l.trim().strip_prefix("Machine:")).map(str::trim);
        assert_eq!(is, Some(machine), "{rel}");
        let newest = tool("objdump", &["-T"], &lib)
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
            .filter_map(|w| w.strip_prefix("GLIBC_"))
            .filter_map(|v| {
                let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
                Some((parts.next()?, parts.next().unwrap_or(0), parts.next().unwrap_or(0)))
            })
            .max()
            .expect("versioned glibc symbols");
        eprintln!("{rel}: {machine}, needs glibc {}.{}", newest.0, newest.1);
        assert!(newest <= (2, 26, 0), "{rel} needs glibc {newest:?}, Amazon Linux 2 has 2.26");
        let exports = tool("nm", &["-D", "--defined-only"], &lib);
        for sym in
            ["FLBPluginRegister", "FLBPluginInit", "FLBPluginFlushCtx", "FLBPluginExitCtx", "FLBPluginUnregister"]
        {
            assert!(exports.contains(sym), "{rel}: {sym} not exported");
        }
    }
}
