//! What ECS makes of the FireLens kit in plugin-config/, checked without ECS or Docker: the
//! config the ECS agent generates for `task-definition.json` (rebuilt from the agent's source in
//! tests/support/ecs_firelens.rs) runs through the test host with the plugin against the strict
//! endpoint; the task definition has the RegisterTaskDefinition shape (botocore's model,
//! tests/support/aws_shapes.py) and the IAM documents the policy grammar
//! (tests/support/policy_shape.rs) and grant only what the kit uses; the Dockerfile copies
//! prebuilt libraries onto pinned bases and keeps their command; Grace, flush_timeout and
//! stopTimeout agree.

#[path = "support/ecs_firelens.rs"]
mod ecs_firelens;
#[path = "support/policy_shape.rs"]
mod policy_shape;
mod support;

use cwrs_aws_standins::strict::{Faults, StrictEndpoint};
use cwrs_aws_standins::strict_sts::ECS_TASK_ARN;
use ecs_firelens::FireLens;
use policy_shape::{list, problems, statements, PolicyKind};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use support::{root, Env};

fn kit(path: &str) -> PathBuf {
    root().join("plugin-config").join(path)
}

fn kit_json(path: &str) -> Value {
    let p = kit(path);
    serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn task_definition() -> Value {
    kit_json("task-definition.json")
}

fn container<'a>(td: &'a Value, name: &str) -> &'a Value {
    td["containerDefinitions"].as_array().unwrap().iter().find(|c| c["name"] == name).expect(name)
}

fn app_options(td: &Value) -> &serde_json::Map<String, Value> {
    let app = td["containerDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["logConfiguration"]["logDriver"] == "awsfirelens")
        .expect("a container logging through FireLens");
    app["logConfiguration"]["options"].as_object().unwrap()
}

/// The Dockerfile's lines, continuation lines joined.
fn dockerfile() -> Vec<String> {
    let text = std::fs::read_to_string(kit("Dockerfile")).unwrap();
    text.replace("\\\n", " ")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

/// `COPY <source> <destination>` of the build context (not `--from`), as (source, destination).
fn context_copies(lines: &[String]) -> Vec<(String, String)> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("COPY "))
        .filter(|rest| !rest.starts_with("--"))
        .map(|rest| {
            let parts: Vec<&str> = rest.split_whitespace().collect();
            assert_eq!(parts.len(), 2, "COPY {rest}: one source, one destination");
            (parts[0].to_string(), parts[1].to_string())
        })
        .collect()
}

#[test]
fn the_renderer_prints_what_the_agents_own_test_expects() {
    // TestGenerateFluentbitConfig in agent/taskresource/firelens/firelensconfig_unix_test.go
    let fixture = FireLens {
        network_mode: "bridge".into(),
        memory_limit_mib: 100,
        ecs_metadata: true,
        cluster: "mycluster".into(),
        task_arn: "arn:aws:ecs:us-east-2:01234567891011:task/mycluster/3de392df-6bfa-470b-97ed-aa6f482cd7a".into(),
        task_definition: "taskdefinition:1".into(),
        ec2_instance_id: "i-123456789a".into(),
        external_config: Some("/fluent-bit/etc/external.conf".into()),
        containers: vec![(
            "container".into(),
            BTreeMap::from([
                ("Name".into(), "kinesis_firehose".into()),
                ("region".into(), "us-west-2".into()),
                ("deliver_stream_name".into(), "my-stream".into()),
                ("include-pattern".into(), "*failure*".into()),
                ("exclude-pattern".into(), "*success*".into()),
            ]),
        )],
    };
    let expected = "
[INPUT]
    Name forward
    Mem_Buf_Limit 50MB
    unix_path /var/run/fluent.sock

[INPUT]
    Name forward
    Listen 0.0.0.0
    Port 24224

[INPUT]
    Name tcp
    Tag firelens-healthcheck
    Listen 127.0.0.1
    Port 8877

[FILTER]
    Name   grep
    Match container-firelens*
    Regex  log *failure*

[FILTER]
    Name   grep
    Match container-firelens*
    Exclude log *success*

[FILTER]
    Name record_modifier
    Match *
    Record ec2_instance_id i-123456789a
    Record ecs_cluster mycluster
    Record ecs_task_arn arn:aws:ecs:us-east-2:01234567891011:task/mycluster/3de392df-6bfa-470b-97ed-aa6f482cd7a
    Record ecs_task_definition taskdefinition:1

@INCLUDE /fluent-bit/etc/external.conf

[OUTPUT]
    Name null
    Match firelens-healthcheck

[OUTPUT]
    Name kinesis_firehose
    Match container-firelens*
    deliver_stream_name my-stream
    region us-west-2
";
    assert_eq!(fixture.render(), expected);
}

/// The generated config made runnable in the test host: `@INCLUDE` replaced by the file the
/// Dockerfile bakes in at that path (Fluent Bit reads an include in place), and the two
/// `forward` inputs (the unix socket and TCP 24224, which the test host does not emulate)
/// replaced by one `dummy` input with the tag the agent gives the app's Docker log driver and
/// records shaped as that driver sends them, with the fields record_modifier adds.
fn runnable(generated: &str, firelens: &FireLens, lines: usize) -> String {
    let copies = context_copies(&dockerfile());
    let mut out = String::new();
    let mut forward_replaced = false;
    for block in generated.split("\n\n") {
        let block = block.trim_matches('\n');
        if let Some(path) = block.strip_prefix("@INCLUDE ") {
            let (source, _) = copies
                .iter()
                .find(|(_, dest)| dest == path)
                .unwrap_or_else(|| panic!("@INCLUDE {path}: the Dockerfile bakes no file there"));
            out.push_str(&std::fs::read_to_string(root().join(source)).unwrap());
        } else if block.starts_with("[INPUT]\n    Name forward") {
            if forward_replaced {
                continue;
            }
            forward_replaced = true;
            let record = json!({
                "container_id": "5f0c2a1b7d9e",
                "container_name": "/ecs-app-with-cross-account-logs-1-app-a8c3f2e1d0",
                "source": "stdout",
                "log": "{\"msg\": \"hello from the task account\"}",
                "ecs_cluster": firelens.cluster,
                "ecs_task_arn": firelens.task_arn,
                "ecs_task_definition": firelens.task_definition,
            });
            out.push_str(&format!(
                "[INPUT]\n    Name dummy\n    Tag {}\n    Samples {lines}\n    Dummy {record}",
                firelens.docker_tag("app")
            ));
        } else {
            out.push_str(block);
        }
        out.push_str("\n\n");
    }
    assert!(forward_replaced, "no forward input in the generated config");
    out
}

/// The kit's task definition as the ECS agent sees it for the stand-in's task.
fn kit_firelens() -> FireLens {
    FireLens::from_task_definition(&task_definition(), "prod-cluster", ECS_TASK_ARN, 1)
}

/// The generated config, made runnable, through the test host's CLI in profile `fb`, against a
/// fresh strict endpoint; `metadata`: whether the task metadata endpoint is there.
fn run_generated(fb: &str, metadata: bool, lines: usize) -> (StrictEndpoint, i32, String, String) {
    let firelens = kit_firelens();
    let conf = support::scratch("firelens-ecs").join("fluent-bit.conf");
    std::fs::write(&conf, runnable(&firelens.render(), &firelens, lines)).unwrap();
    let endpoint = StrictEndpoint::start(false, Faults::default(), 0xf1e1);
    let url = endpoint.url.clone();
    // The task role's credentials as ECS serves them (here at a full URI on 127.0.0.1, where
    // ECS uses AWS_CONTAINER_CREDENTIALS_RELATIVE_URI), and the task metadata endpoint.
    let mut env = Env::new().var("AWS_CONTAINER_CREDENTIALS_FULL_URI", format!("{url}/container-credentials"));
    if metadata {
        env = env.var("ECS_CONTAINER_METADATA_URI_V4", format!("{url}/v4/log-router"));
    }
    // only the endpoints change (127.0.0.1); every other option is the task definition's
    let (code, stdout, stderr) = support::run_host(
        &conf,
        &env,
        &["--fb", fb, "-p", &format!("endpoint={url}"), "-p", &format!("sts_endpoint={url}")],
    );
    eprintln!("Fluent Bit {fb}: {}", stdout.trim());
    (endpoint, code, stdout, stderr)
}

/// The (group, stream) pairs events arrived under.
fn destinations(endpoint: &StrictEndpoint) -> Vec<(String, String)> {
    let set: std::collections::BTreeSet<(String, String)> =
        endpoint.accepted().into_iter().map(|a| (a.group, a.stream)).collect();
    set.into_iter().collect()
}

#[test]
fn the_config_ecs_generates_for_the_kit_delivers_under_the_task_stream() {
    let td = task_definition();
    let firelens = kit_firelens();
    let generated = firelens.render();
    eprintln!("--- the config the ECS agent generates for plugin-config/task-definition.json\n{generated}---");
    assert!(generated.contains("\n[OUTPUT]\n    Name cloudwatch_rs\n    Match app-firelens*\n"), "{generated}");
    assert!(generated.contains("\n    log_key log\n"), "{generated}");
    assert!(generated.contains("\n@INCLUDE /fluent-bit/etc/firelens-service.conf\n"), "{generated}");

    let lines = 15;
    let expected_stream = format!("app/{}", firelens.task_id());
    let role_arn = app_options(&td)["role_arn"].as_str().unwrap().to_string();
    for fb in ["1.9.10", "5.1.1"] {
        let (endpoint, code, stdout, stderr) = run_generated(fb, true, lines);
        assert_eq!(code, 0, "Fluent Bit {fb}:\n{stdout}\n{stderr}");
        assert!(stderr.contains("startup check passed"), "Fluent Bit {fb}:\n{stderr}");
        assert_eq!(
            destinations(&endpoint),
            [("cross-account-example".to_string(), expected_stream.clone())],
            "Fluent Bit {fb}"
        );
        let accepted = endpoint.accepted();
        assert_eq!(accepted.len(), lines, "Fluent Bit {fb}: events delivered");
        assert!(
            accepted.iter().all(|a| a.head == "{\"msg\": \"hello from the task account\"}"),
            "Fluent Bit {fb}: log_key log sends the line the app wrote: {:?}",
            accepted.first()
        );
        let sts = endpoint.sts();
        assert!(sts.container_calls.load(Relaxed) > 0, "the task role's credentials were not used");
        assert!(sts.assume_role_calls.load(Relaxed) > 0, "the log role was not assumed");
        let keys = sts.keys_used();
        let roles: Vec<Option<String>> = keys.keys().map(|k| sts.role_of(k)).collect();
        assert!(
            !roles.is_empty() && roles.iter().all(|r| r.as_deref() == Some(role_arn.as_str())),
            "CloudWatch was called with other than the log role's keys: {keys:?} {roles:?}"
        );
        assert!(endpoint.violations().is_empty(), "{:?}", endpoint.violations());
        eprintln!(
            "Fluent Bit {fb}: {} of {lines} events in cross-account-example/{expected_stream}, {} PutLogEvents calls",
            accepted.len(),
            endpoint.counters().put_calls_ok.load(Relaxed)
        );
    }
}

#[test]
fn without_task_metadata_the_stream_falls_back_to_prefix_and_tag_with_a_warning() {
    let firelens = kit_firelens();
    let (endpoint, code, stdout, stderr) = run_generated("5.1.1", false, 3);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let warning = stderr.lines().find(|l| l.contains("ECS task metadata unavailable")).expect(&stderr);
    eprintln!("{warning}");
    let prefix = app_options(&task_definition())["log_stream_prefix"].as_str().unwrap().to_string();
    assert_eq!(
        destinations(&endpoint),
        [("cross-account-example".to_string(), format!("{prefix}{}", firelens.docker_tag("app")))]
    );
    assert_eq!(endpoint.accepted().len(), 3);
}

#[test]
fn the_task_definition_has_the_register_task_definition_shape() {
    let out = std::process::Command::new(support::python())
        .arg(root().join("tests/support/aws_shapes.py"))
        .args(["ecs", "RegisterTaskDefinition"])
        .arg(kit("task-definition.json"))
        .output()
        .expect("python");
    let report = String::from_utf8_lossy(&out.stdout);
    eprintln!("{}", String::from_utf8_lossy(&out.stderr).trim());
    assert!(out.status.success(), "plugin-config/task-definition.json:\n{report}");

    // What the model leaves to the service, from the ECS Developer Guide's task definition
    // parameters and FireLens pages.
    let td = task_definition();
    let containers = td["containerDefinitions"].as_array().unwrap();
    let names: Vec<&str> = containers.iter().filter_map(|c| c["name"].as_str()).collect();
    let fargate = td["requiresCompatibilities"].as_array().is_some_and(|c| c.iter().any(|v| v == "FARGATE"));
    if fargate {
        assert_eq!(td["networkMode"], "awsvpc", "Fargate needs awsvpc");
        assert!(td["cpu"].is_string() && td["memory"].is_string(), "Fargate needs task-level cpu and memory");
    }
    let routers: Vec<&Value> = containers.iter().filter(|c| c["firelensConfiguration"].is_object()).collect();
    assert_eq!(routers.len(), 1, "one log router per task");
    let router = routers[0];
    let options = router["firelensConfiguration"]["options"].as_object().unwrap();
    for k in options.keys() {
        assert!(
            ["enable-ecs-log-metadata", "config-file-type", "config-file-value"].contains(&k.as_str()),
            "firelensConfiguration option {k}"
        );
    }
    if fargate {
        assert_eq!(options["config-file-type"], "file", "Fargate takes config-file-type file only");
    }
    for c in containers {
        for dep in c["dependsOn"].as_array().into_iter().flatten() {
            assert!(names.contains(&dep["containerName"].as_str().unwrap_or_default()), "{dep}");
        }
        let log = &c["logConfiguration"];
        match log["logDriver"].as_str() {
            Some("awslogs") => {
                let mut required = vec!["awslogs-group", "awslogs-region"];
                if fargate {
                    required.push("awslogs-stream-prefix");
                }
                for k in required {
                    assert!(log["options"][k].is_string(), "{}: awslogs needs {k}", c["name"]);
                }
            }
            Some("awsfirelens") => assert!(log["options"]["Name"].is_string(), "{}: Name", c["name"]),
            _ => {}
        }
    }
    // the router's own stderr goes somewhere
    assert_eq!(router["logConfiguration"]["logDriver"], "awslogs", "the log router needs its own logConfiguration");
    assert_eq!(router["essential"], true);
    // roles the IAM documents describe
    assert!(td["taskRoleArn"].as_str().is_some_and(|a| a.ends_with(":role/app-task-role")));
    assert!(td["executionRoleArn"].as_str().is_some_and(|a| a.contains(":role/")));
}

#[test]
fn grace_flush_timeout_and_stop_timeout_agree() {
    let td = task_definition();
    let service = std::fs::read_to_string(kit("firelens-service.conf")).unwrap();
    let grace: u64 = service
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("Grace "))
        .and_then(|v| v.trim().parse().ok())
        .expect("firelens-service.conf sets [SERVICE] Grace");
    assert!(service.contains("[SERVICE]"));
    let router = container(&td, "log_router");
    let stop_timeout = router["stopTimeout"].as_u64().expect("the log router sets stopTimeout");
    let flush_timeout = app_options(&td)["flush_timeout"].as_str().expect("flush_timeout set in the kit");
    // The plugin answers within a second of the stop signal (docs/DESIGN.md "Stopping") and
    // Fluent Bit's main loop sees the signal within a second: Fluent Bit exits within Grace + 2 s.
    // ECS sends SIGKILL stopTimeout after SIGTERM (2-120 s on Fargate).
    assert!((2..=120).contains(&stop_timeout), "stopTimeout {stop_timeout}");
    assert!(grace + 2 < stop_timeout, "Grace {grace} s + 2 s does not end before stopTimeout {stop_timeout} s");
    assert!(grace >= 5, "Grace {grace} s is below Fluent Bit's default");
    // flush_timeout bounds a flush while running; at a stop the plugin cuts it short, so it
    // needs only to be a valid value (1s-600s)
    let secs: u64 = flush_timeout.strip_suffix('s').and_then(|v| v.parse().ok()).expect("flush_timeout in seconds");
    assert!((1..=600).contains(&secs));
    eprintln!("Grace {grace} s, flush_timeout {flush_timeout}, stopTimeout {stop_timeout} s");
}

#[test]
fn the_iam_documents_are_well_formed_and_grant_only_what_the_kit_uses() {
    let td = task_definition();
    let kinds = [
        ("ecs-tasks-trust-policy.json", PolicyKind::Trust),
        ("task-role-policy.json", PolicyKind::Identity),
        ("execution-role-policy.json", PolicyKind::Identity),
        ("log-role-trust-policy.json", PolicyKind::Trust),
        ("cloudwatch-write.json", PolicyKind::Identity),
    ];
    let mut listed: Vec<String> = std::fs::read_dir(kit("iam"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    listed.sort();
    let mut known: Vec<String> = kinds.iter().map(|(f, _)| f.to_string()).collect();
    known.sort();
    assert_eq!(listed, known, "every IAM document in plugin-config/iam/ is checked here");
    for (file, kind) in kinds {
        let found = problems(&kit_json(&format!("iam/{file}")), kind);
        assert!(found.is_empty(), "iam/{file}:\n{}", found.join("\n"));
    }
    // the grammar check itself refuses what IAM refuses
    assert!(!problems(
        &json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "logs:PutLogEvents"}]}),
        PolicyKind::Identity
    )
    .is_empty());
    assert!(!problems(&json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole", "Resource": "*"}]}), PolicyKind::Trust).is_empty());
    assert!(!problems(
        &json!({"Statement": {"Effect": "Permit", "Action": "PutLogEvents", "Resource": "log-group"}}),
        PolicyKind::Identity
    )
    .is_empty());

    // Least privilege, tied to the task definition: each grant names exactly what the kit uses.
    let role_arn = app_options(&td)["role_arn"].as_str().unwrap();
    let task_role = td["taskRoleArn"].as_str().unwrap();
    let grants = |file: &str| -> Vec<(Vec<String>, Vec<String>)> {
        let doc = kit_json(&format!("iam/{file}"));
        statements(&doc)
            .into_iter()
            .map(|s| {
                assert_eq!(s["Effect"], "Allow");
                let actions = list(&s["Action"]).into_iter().map(String::from).collect();
                (actions, list(&s["Resource"]).into_iter().map(String::from).collect())
            })
            .collect()
    };
    // ECS tasks of the task account only may take the task and execution roles
    let trust = kit_json("iam/ecs-tasks-trust-policy.json");
    for s in statements(&trust) {
        assert_eq!(s["Principal"], json!({"Service": "ecs-tasks.amazonaws.com"}));
        assert_eq!(s["Action"], "sts:AssumeRole");
        let account = task_role.split(':').nth(4).unwrap();
        assert_eq!(s["Condition"]["StringEquals"]["aws:SourceAccount"], account, "confused-deputy condition");
    }
    // the task role may only assume the log role the output names
    assert_eq!(grants("task-role-policy.json"), [(vec!["sts:AssumeRole".to_string()], vec![role_arn.to_string()])]);
    // the log role trusts the task role, and writes only the group the output names
    let log_trust = kit_json("iam/log-role-trust-policy.json");
    assert!(statements(&log_trust).iter().all(|s| s["Principal"] == json!({"AWS": task_role})));
    let group = app_options(&td)["log_group_name"].as_str().unwrap();
    let log_account = role_arn.split(':').nth(4).unwrap();
    for (_, resources) in grants("cloudwatch-write.json") {
        for r in resources {
            assert!(
                r.starts_with(&format!("arn:aws:logs:us-east-1:{log_account}:log-group:{group}")),
                "cloudwatch-write.json: {r} is not the output's group"
            );
        }
    }
    // the execution role: ECR login (no resource-level permission exists for it), pulling the
    // router's repository, and writing the router's own log group
    let router = container(&td, "log_router");
    let image = router["image"].as_str().unwrap();
    let (registry, repo_tag) = image.split_once('/').unwrap();
    let repo = repo_tag.split(':').next().unwrap();
    let account = registry.split('.').next().unwrap();
    let region = registry.split('.').nth(3).unwrap();
    let router_group = router["logConfiguration"]["options"]["awslogs-group"].as_str().unwrap();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        grants("execution-role-policy.json"),
        [
            (s(&["ecr:GetAuthorizationToken"]), s(&["*"])),
            (
                s(&["ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"]),
                s(&[&format!("arn:aws:ecr:{region}:{account}:repository/{repo}")])
            ),
            (
                s(&["logs:CreateLogStream", "logs:PutLogEvents"]),
                s(&[&format!("arn:aws:logs:{region}:{account}:log-group:{router_group}:*")])
            ),
        ]
    );
}

#[test]
fn the_dockerfile_copies_prebuilt_libraries_onto_pinned_bases_and_keeps_their_command() {
    let lines = dockerfile();
    // no toolchain, no network: nothing runs in the build
    for l in &lines {
        let instruction = l.split_whitespace().next().unwrap().to_ascii_uppercase();
        assert!(["ARG", "FROM", "COPY", "CMD"].contains(&instruction.as_str()), "the image build only copies: {l}");
    }
    // every base pinned to a release tag, one of each line
    let bases: BTreeMap<String, String> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("ARG "))
        .filter_map(|a| a.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut majors = Vec::new();
    for (arg, image) in &bases {
        let (repo, tag) = image.rsplit_once(':').unwrap_or_else(|| panic!("{arg}={image}: no tag"));
        assert_eq!(repo, "public.ecr.aws/aws-observability/aws-for-fluent-bit", "{arg}");
        let parts: Vec<&str> = tag.split('.').collect();
        assert!(
            (3..=4).contains(&parts.len())
                && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())),
            "{arg}={image}: pin a release version, not a moving tag"
        );
        majors.push(parts[0].to_string());
    }
    majors.sort();
    assert_eq!(majors, ["2", "3"], "a 2.x (Amazon Linux 2) and a 3.x (Amazon Linux 2023) base");
    let froms: Vec<&str> = lines.iter().filter_map(|l| l.strip_prefix("FROM ")).collect();
    for f in &froms {
        let image = f.split_whitespace().next().unwrap();
        let stage_or_arg = image == "scratch"
            || image == "library-${TARGETARCH}"
            || bases.keys().any(|arg| image == format!("${{{arg}}}"));
        assert!(stage_or_arg, "FROM {f}: only the pinned bases, scratch and the library stage");
    }
    // the library per platform: buildx's TARGETARCH to make firelens's directory
    let copies = context_copies(&lines);
    for (stage, dir) in [("library-amd64", "amd64"), ("library-arm64", "arm64")] {
        let at = lines.iter().position(|l| l.starts_with("FROM scratch AS ") && l.ends_with(stage)).expect(stage);
        assert_eq!(
            lines[at + 1],
            format!("COPY build/firelens/{dir}/libcloudwatch_rs.so /libcloudwatch_rs.so"),
            "{stage}"
        );
    }
    // the build context holds only what is copied
    let ignore = std::fs::read_to_string(root().join(".dockerignore")).unwrap();
    let patterns: Vec<&str> = ignore.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    assert_eq!(patterns.first(), Some(&"*"), ".dockerignore starts by leaving everything out");
    let mut wanted: Vec<String> = copies.iter().map(|(src, _)| format!("!{src}")).collect();
    wanted.sort();
    wanted.dedup();
    let mut kept: Vec<String> = patterns[1..].iter().map(|p| p.to_string()).collect();
    kept.sort();
    assert_eq!(kept, wanted, ".dockerignore lets in exactly the files the Dockerfile copies");
    // each image: the library, the FireLens service file the task definition names, and the
    // base's own command (entrypoint.sh of aws-for-fluent-bit) with one -e more
    let td = task_definition();
    let service_file = container(&td, "log_router")["firelensConfiguration"]["options"]["config-file-value"]
        .as_str()
        .unwrap()
        .to_string();
    let targets: Vec<usize> =
        lines.iter().enumerate().filter(|(_, l)| l.starts_with("FROM ${")).map(|(i, _)| i).collect();
    assert_eq!(targets.len(), 2);
    for (n, &start) in targets.iter().enumerate() {
        let end = targets.get(n + 1).copied().unwrap_or(lines.len());
        let stage = &lines[start..end];
        assert!(
            stage.contains(
                &"COPY --from=library /libcloudwatch_rs.so /fluent-bit/plugins/libcloudwatch_rs.so".to_string()
            ),
            "{}",
            lines[start]
        );
        assert!(
            stage.iter().any(|l| l.starts_with("COPY ") && l.ends_with(&format!(" {service_file}"))),
            "{}: {service_file}",
            lines[start]
        );
        assert!(!stage.iter().any(|l| l.contains("plugins.conf")), "plugins.conf is not used in the image");
        let cmd = stage.iter().find(|l| l.starts_with("CMD ")).expect("CMD");
        let argv: Vec<String> = serde_json::from_str(cmd.strip_prefix("CMD ").unwrap()).expect("CMD in exec form");
        assert_eq!(argv[..2], ["/bin/sh", "-c"]);
        let script = &argv[2];
        let fluent_bit = script.split("exec ").nth(1).expect("exec: Fluent Bit stays PID 1 and gets ECS's SIGTERM");
        assert_eq!(
            fluent_bit,
            "/fluent-bit/bin/fluent-bit -e /fluent-bit/firehose.so -e /fluent-bit/cloudwatch.so -e /fluent-bit/kinesis.so \
             -e /fluent-bit/plugins/libcloudwatch_rs.so -c /fluent-bit/etc/fluent-bit.conf"
        );
        assert!(script.contains("cat /AWS_FOR_FLUENT_BIT_VERSION"), "the base prints its version first");
    }

    // The libraries, when `make firelens` has built them: each directory holds its architecture.
    for (dir, machine) in [("amd64", 62u16), ("arm64", 183u16)] {
        let lib = root().join(format!("build/firelens/{dir}/libcloudwatch_rs.so"));
        match std::fs::read(&lib) {
            Ok(bytes) => {
                assert_eq!(&bytes[..4], b"\x7fELF", "{}", lib.display());
                assert_eq!(u16::from_le_bytes([bytes[18], bytes[19]]), machine, "{}: e_machine", lib.display());
                eprintln!("{}: ELF for {dir}", lib.display());
            }
            Err(_) => eprintln!("skipped: {} not built (`make firelens` builds it)", lib.display()),
        }
    }
}
