//! `startup_check`: before the first record is at stake, get the credentials to write with
//! (AssumeRole, when `role_arn` is set) and ask CloudWatch whether the log group may be written,
//! with an empty PutLogEvents to a stream that does not exist (nothing is written). STS is asked
//! who the base credentials belong to only when there is a role to assume (the line then says
//! who assumes it); without one, the line names where the base credentials come from.
//!
//! With `role_arn_map`, every role the map names is checked the same way (and the fallback, the
//! instance's own writer, as above; `roles::RoleWriters::check_map`); a role from
//! `role_arn_template` is checked the first time a record chooses it (`roles`).
//!
//! Fluent Bit's start waits for it: every step shares one bound, `BOUND`.

use crate::aws::client::{Clients, Writer};
use crate::aws::errors::{classify, error_chain, ExpectCloudWatchAnswer, Failure};
use crate::core::config::{Config, StartupCheck};
use crate::log::{log_info, log_warn};
use std::future::Future;
use std::time::Duration;
use tokio::time::{timeout_at, Instant};

/// How long Init may spend on the whole startup check, all steps together.
const BOUND: Duration = Duration::from_secs(5);

/// Runs the check within `BOUND`: one line saying what is wrong, or `Ok` with what was found.
pub async fn startup_check(config: &Config, clients: &Clients) -> Result<String, String> {
    let deadline = Instant::now() + BOUND;
    check(config, clients, deadline).await.map_err(|why| format!("startup check: {why}"))
}

/// `step` unless the check's deadline comes first.
async fn within<T>(deadline: Instant, step: &str, future: impl Future<Output = T>) -> Result<T, String> {
    timeout_at(deadline, future).await.map_err(|_| format!("no answer within {BOUND:?} ({step})"))
}

async fn check(config: &Config, clients: &Clients, deadline: Instant) -> Result<String, String> {
    let group = config.probe_group();
    let own = &clients.own;
    let cache = &own.credentials;
    let what = if config.role_arn.is_some() { "AssumeRole" } else { "getting the base credentials" };
    within(deadline, what, cache.get()).await?.map_err(|e| error_chain(&e))?;
    // who the writer is: with a role, who assumed it (STS); without, where the keys come from
    let identity = match &config.role_arn {
        Some(_) => {
            let principal = within(deadline, "GetCallerIdentity", cache.principal()).await?.map_err(|why| {
                format!("STS does not answer for the base credentials: an unidentified principal ({why})")
            })?;
            format!("base identity {principal}, writing as {}", cache.describe())
        }
        None => format!("writing with the base credentials from {} (no role_arn: STS not asked)", base_source(config)),
    };
    let writer = match &config.role_arn {
        Some(_) => cache.describe().to_owned(),
        None => format!("the base credentials from {}", base_source(config)),
    };
    probe(own, &group, config.auto_create_group, &writer, deadline).await?;
    Ok(format!("startup check passed: {identity} to log group '{group}'"))
}

/// A role chosen per record, checked as the instance's own writer is: assumed, then the log
/// group probed; within `BOUND`.
pub async fn check_writer(writer: &Writer, group: &str, auto_create_group: bool) -> Result<(), String> {
    let deadline = Instant::now() + BOUND;
    within(deadline, "AssumeRole", writer.credentials.get()).await?.map_err(|e| error_chain(&e))?;
    probe(writer, group, auto_create_group, writer.credentials.describe(), deadline).await
}

/// Asks CloudWatch whether `writer` may write to `group`: an empty PutLogEvents to a stream
/// that does not exist (nothing is written). `who` names the writer in the error.
async fn probe(
    writer: &Writer,
    group: &str,
    auto_create_group: bool,
    who: &str,
    deadline: Instant,
) -> Result<(), String> {
    let probe = writer
        .logs
        .put_log_events()
        .log_group_name(group)
        .log_stream_name(format!("cloudwatch_rs-startup-check-{}", std::process::id()))
        .set_log_events(Some(Vec::new()))
        .customize()
        .interceptor(ExpectCloudWatchAnswer)
        .send();
    match within(deadline, "PutLogEvents probe", probe).await? {
        Ok(_) => Ok(()),
        Err(e) => match classify(&e) {
            // CloudWatch's answers to the probe when the group may be written
            Failure::StreamMissing | Failure::Invalid(_) => Ok(()),
            Failure::GroupMissing if auto_create_group => Ok(()),
            Failure::GroupMissing => Err(format!("log group '{group}' does not exist and auto_create_group is off")),
            Failure::Denied(d) => {
                Err(format!("{who} may not write to log group '{group}' (needs logs:PutLogEvents): {d}"))
            }
            Failure::Misbehaving { detail, .. } => {
                Err(format!("the endpoint does not answer as CloudWatch Logs: {detail}"))
            }
            other => Err(format!("CloudWatch Logs unreachable or refusing: {other:?}")),
        },
    }
}

/// Where the base credentials come from, as far as the configuration says.
fn base_source(config: &Config) -> String {
    match (&config.credentials_endpoint, &config.profile) {
        (Some(url), _) => format!("credentials_endpoint {url}"),
        (None, Some(profile)) => format!("profile '{profile}'"),
        (None, None) => "the default chain".to_owned(),
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
