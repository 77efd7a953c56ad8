//! The fake AWS the tests and benchmarks talk to, all on 127.0.0.1: a strict CloudWatch Logs
//! endpoint (`strict`), the credential services on its port (`strict_sts`: STS, container
//! credentials, IMDS, ECS task metadata) and a counting forward proxy (`proxy`). The fake
//! Fluent Bit that loads the plugin is the other crate, `cwrs-test-host` (tests/host).

pub mod hostile;
pub mod proxy;
pub mod strict;
pub mod strict_sts;
pub mod tls_sink;
