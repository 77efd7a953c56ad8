//! `startup_check`: before the first record is at stake, resolve the base identity, get the
//! credentials to write with (AssumeRole), and ask CloudWatch whether the log group may be
//! written, with an empty PutLogEvents to a stream that does not exist (nothing is written).

use crate::aws::client::Clients;
use crate::aws::errors::{classify, error_chain, Failure};
use crate::core::config::{Config, StartupCheck};
use crate::log::{log_info, log_warn};
use std::time::Duration;

/// How long Init may spend on the startup check.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the check within `TIMEOUT`: one line saying what is wrong, or `Ok` with what was found.
pub async fn startup_check(config: &Config, clients: &Clients) -> Result<String, String> {
    tokio::time::timeout(TIMEOUT, check(config, clients))
        .await
        .unwrap_or_else(|_| Err(format!("startup check: no answer within {TIMEOUT:?}")))
}

async fn check(config: &Config, clients: &Clients) -> Result<String, String> {
    let group = config.probe_group();
    let cache = &clients.credentials;
    if let Err(e) = cache.get().await {
        return Err(format!("startup check: {}", error_chain(&e)));
    }
    let principal = cache.principal().await.map_err(|why| {
        format!("startup check: STS does not answer for the base credentials: an unidentified principal ({why})")
    })?;
    let probe = clients
        .logs
        .put_log_events()
        .log_group_name(&group)
        .log_stream_name(format!("cloudwatch_rs-startup-check-{}", std::process::id()))
        .set_log_events(Some(Vec::new()))
        .send()
        .await;
    let writer = if config.role_arn.is_some() { cache.describe().to_string() } else { principal.clone() };
    let verdict = match probe {
        Ok(_) => Ok(()),
        Err(e) => match classify(&e) {
            Failure::StreamMissing | Failure::Invalid(_) => Ok(()),
            Failure::GroupMissing if config.auto_create_group => Ok(()),
            Failure::GroupMissing => Err(format!("log group '{}' does not exist and auto_create_group is off", group)),
            Failure::Denied(d) => {
                Err(format!("{writer} may not write to log group '{}' (needs logs:PutLogEvents): {d}", group))
            }
            other => Err(format!("CloudWatch Logs unreachable or refusing: {other:?}")),
        },
    };
    match verdict {
        Ok(()) => {
            Ok(format!("startup check passed: base identity {principal}, writing as {writer} to log group '{}'", group))
        }
        Err(why) => Err(format!("startup check: {why}")),
    }
}

/// What Init does with the check's answer: `Err` (with the line) stops Init.
pub fn report_startup_check(label: &str, mode: StartupCheck, result: Result<String, String>) -> Result<(), String> {
    match (mode, result) {
        (_, Ok(line)) => {
            log_info!(label, "{}", line);
            Ok(())
        }
        (StartupCheck::Strict, Err(line)) => Err(line),
        (_, Err(line)) => {
            log_warn!(label, "{} (startup_check is warn: starting anyway)", line);
            Ok(())
        }
    }
}
