//! The Fluent Bit config the ECS agent writes for a FireLens log router, rebuilt from its source
//! (aws/amazon-ecs-agent): `generateConfig` in agent/taskresource/firelens/firelensconfig_unix.go
//! decides the sections, the vendored go-config-generator-for-fluentd-and-fluentbit
//! (fluent-bit-template.go) prints them. Go's text/template ranges over a map in sorted key
//! order, which is what `BTreeMap` gives here.
#![allow(dead_code)]

use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write;

/// Where the agent mounts a config fetched from S3 (`S3ConfigPathFluentbit`).
const S3_CONFIG_PATH: &str = "/fluent-bit/etc/external.conf";

/// What the agent knows when it generates a Fluent Bit config for one task.
#[derive(Debug, Clone)]
pub struct FireLens {
    pub network_mode: String,
    /// the router's `memoryReservation`, else its `memory`, else 0 (MiB)
    pub memory_limit_mib: i64,
    pub ecs_metadata: bool,
    pub cluster: String,
    pub task_arn: String,
    /// `family:revision`
    pub task_definition: String,
    /// empty on Fargate
    pub ec2_instance_id: String,
    /// the file `@INCLUDE`d after the filters (`config-file-value`, or the S3 mount path)
    pub external_config: Option<String>,
    /// each container whose log driver is `awsfirelens`, with its log options
    pub containers: Vec<(String, BTreeMap<String, String>)>,
}

impl FireLens {
    /// From a task definition (RegisterTaskDefinition JSON), as the agent sees it when the task
    /// `task_arn` of `cluster` runs revision `revision` on Fargate (no EC2 instance id).
    pub fn from_task_definition(td: &Value, cluster: &str, task_arn: &str, revision: u32) -> FireLens {
        let containers = td["containerDefinitions"].as_array().expect("containerDefinitions");
        let router = containers
            .iter()
            .find(|c| c["firelensConfiguration"]["type"] == "fluentbit")
            .expect("a container with a fluentbit firelensConfiguration");
        let options = &router["firelensConfiguration"]["options"];
        let option = |k: &str| options[k].as_str().map(str::to_string);
        let external_config = match option("config-file-type").as_deref() {
            Some("file") => Some(option("config-file-value").expect("config-file-value")),
            Some("s3") => Some(S3_CONFIG_PATH.to_string()),
            Some(other) => panic!("config-file-type {other}: the agent accepts s3 or file"),
            None => None,
        };
        // `enable-ecs-log-metadata` is parsed with strconv.ParseBool; absent means on
        let ecs_metadata = option("enable-ecs-log-metadata")
            .is_none_or(|v| matches!(v.as_str(), "true" | "1" | "t" | "T" | "TRUE" | "True"));
        let memory_limit_mib =
            router["memoryReservation"].as_i64().filter(|m| *m > 0).or(router["memory"].as_i64()).unwrap_or(0);
        let containers = containers
            .iter()
            .filter(|c| c["logConfiguration"]["logDriver"] == "awsfirelens")
            .map(|c| {
                let opts = c["logConfiguration"]["options"]
                    .as_object()
                    .map(|o| o.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
                    .unwrap_or_default();
                (c["name"].as_str().unwrap_or_default().to_string(), opts)
            })
            .collect();
        FireLens {
            network_mode: td["networkMode"].as_str().unwrap_or("bridge").to_string(),
            memory_limit_mib,
            ecs_metadata,
            cluster: cluster.to_string(),
            task_arn: task_arn.to_string(),
            task_definition: format!("{}:{revision}", td["family"].as_str().unwrap_or_default()),
            ec2_instance_id: String::new(),
            external_config,
            containers,
        }
    }

    /// The task id: the last part of the task ARN (as the agent splits it).
    pub fn task_id(&self) -> &str {
        self.task_arn.rsplit('/').next().unwrap_or_default()
    }

    /// The tag the agent gives a container's Docker fluentd log driver (`fluentTagDockerFormat`
    /// in agent/engine/docker_task_engine.go): `<container>-firelens-<task id>`.
    pub fn docker_tag(&self, container: &str) -> String {
        format!("{container}-firelens-{}", self.task_id())
    }

    /// `resolveMemBufLimit`: half the router's memory, else 25MB.
    fn mem_buf_limit(&self) -> String {
        let half = self.memory_limit_mib / 2;
        format!("{}MB", if half <= 0 { 25 } else { half })
    }

    /// The config file the agent writes (fluent-bit-template.go, byte for byte).
    pub fn render(&self) -> String {
        let mut inputs: Vec<(&str, &str, BTreeMap<String, String>)> = vec![(
            "forward",
            "",
            BTreeMap::from([
                ("unix_path".to_string(), "/var/run/fluent.sock".to_string()),
                ("Mem_Buf_Limit".to_string(), self.mem_buf_limit()),
            ]),
        )];
        let mut outputs: Vec<(String, String, BTreeMap<String, String>)> = Vec::new();
        let listen = match self.network_mode.as_str() {
            "bridge" => Some("0.0.0.0"),
            "awsvpc" => Some("127.0.0.1"),
            _ => None,
        };
        if let Some(listen) = listen {
            inputs.push((
                "forward",
                "",
                BTreeMap::from([("Listen".into(), listen.into()), ("Port".into(), "24224".into())]),
            ));
            // addHealthcheckSections
            inputs.push((
                "tcp",
                "firelens-healthcheck",
                BTreeMap::from([("Listen".into(), "127.0.0.1".into()), ("Port".into(), "8877".into())]),
            ));
            outputs.push(("null".into(), "firelens-healthcheck".into(), BTreeMap::new()));
        }
        let mut include_filters = Vec::new();
        let mut exclude_filters = Vec::new();
        for (container, options) in &self.containers {
            let tag = format!("{container}-firelens*");
            let mut output_options = BTreeMap::new();
            for (k, v) in options {
                match k.as_str() {
                    "Name" => {}
                    "include-pattern" => include_filters.push((tag.clone(), v.clone())),
                    "exclude-pattern" => exclude_filters.push((tag.clone(), v.clone())),
                    _ => {
                        output_options.insert(k.clone(), v.clone());
                    }
                }
            }
            match options.get("Name") {
                Some(name) => outputs.push((name.clone(), tag, output_options)),
                None => {
                    assert!(output_options.is_empty(), "{container}: options without Name are refused by the agent")
                }
            }
        }

        let mut out = String::new();
        for (name, tag, options) in &inputs {
            write!(out, "\n[INPUT]\n    Name {name}").unwrap();
            if !tag.is_empty() {
                write!(out, "\n    Tag {tag}").unwrap();
            }
            for (k, v) in options {
                write!(out, "\n    {k} {v}").unwrap();
            }
            out.push('\n');
        }
        for (tag, regex) in &include_filters {
            write!(out, "\n[FILTER]\n    Name   grep\n    Match {tag}\n    Regex  log {regex}\n").unwrap();
        }
        for (tag, regex) in &exclude_filters {
            write!(out, "\n[FILTER]\n    Name   grep\n    Match {tag}\n    Exclude log {regex}\n").unwrap();
        }
        if self.ecs_metadata {
            let mut fields = BTreeMap::from([
                ("ecs_cluster", self.cluster.as_str()),
                ("ecs_task_arn", self.task_arn.as_str()),
                ("ecs_task_definition", self.task_definition.as_str()),
            ]);
            if !self.ec2_instance_id.is_empty() {
                fields.insert("ec2_instance_id", self.ec2_instance_id.as_str());
            }
            write!(out, "\n[FILTER]\n    Name record_modifier\n    Match *").unwrap();
            for (k, v) in fields {
                write!(out, "\n    Record {k} {v}").unwrap();
            }
            out.push('\n');
        }
        if let Some(path) = &self.external_config {
            write!(out, "\n@INCLUDE {path}\n").unwrap();
        }
        for (name, tag, options) in &outputs {
            write!(out, "\n[OUTPUT]\n    Name {name}\n    Match {tag}").unwrap();
            for (k, v) in options {
                write!(out, "\n    {k} {v}").unwrap();
            }
            out.push('\n');
        }
        out
    }
}
