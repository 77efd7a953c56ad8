//! The writers of roles chosen per record (`role_arn_template` / `role_arn_map`): built on first
//! use, kept per instance up to `role_cache_size` (the least recently used dropped beyond it),
//! each signing with the credential cache shared per (base identity, role), so AssumeRole runs
//! once per role per credential lifetime however many instances and workers write as it.
//! A role is checked (assumed, and its log group probed) the first time it is seen, off the
//! flush path; the result is logged once.

use crate::aws::client::{RoleFactory, Writer};
use crate::aws::startup_check::check_writer;
use crate::log::{log_info, log_warn};
use crate::stats::Stats;
use crate::sync::lock;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// How many distinct roles are remembered as checked (each is checked and logged once).
const CHECKED_ROLES: usize = 4096;

struct Entry {
    writer: Arc<Writer>,
    /// The `uses` count when last used: the smallest is the least recently used.
    used: u64,
}

#[derive(Default)]
struct State {
    entries: HashMap<String, Entry>,
    uses: u64,
    checked: HashSet<String>,
}

/// One instance's writers of roles chosen per record.
pub struct RoleWriters {
    factory: RoleFactory,
    bound: usize,
    label: String,
    stats: Arc<Stats>,
    /// Whether a role seen for the first time is checked (`startup_check` is not off).
    check: bool,
    auto_create_group: bool,
    state: Mutex<State>,
}

impl RoleWriters {
    pub fn new(
        factory: RoleFactory,
        bound: usize,
        label: &str,
        stats: Arc<Stats>,
        check: bool,
        auto_create_group: bool,
    ) -> Self {
        RoleWriters {
            factory,
            bound: bound.max(1),
            label: label.to_owned(),
            stats,
            check,
            auto_create_group,
            state: Mutex::new(State::default()),
        }
    }

    /// The writer of `role`, built on first use; `group` is what the first-use check probes.
    pub async fn get(&self, role: &str, group: &str) -> Arc<Writer> {
        if let Some(writer) = self.cached(role) {
            return writer;
        }
        // built outside the lock (no network I/O); a racing builder's copy shares its cache
        let writer = Arc::new(self.factory.writer(role).await);
        let first_sight = {
            let mut s = lock(&self.state);
            s.uses += 1;
            let used = s.uses;
            let writer =
                s.entries.entry(role.to_owned()).or_insert(Entry { writer: writer.clone(), used }).writer.clone();
            self.evict(&mut s);
            let first = s.checked.len() < CHECKED_ROLES && s.checked.insert(role.to_owned());
            (first, writer)
        };
        let (first, writer) = first_sight;
        if first && self.check {
            self.spawn_check(role, group, writer.clone());
        }
        writer
    }

    /// The roles of `role_arn_map` (its "static" roles), each checked as `check_writer` checks
    /// (assumed, the probe group probed), all at once: one line per role.
    pub async fn check_map(&self, group: &str, map: &[&str]) -> Vec<Result<String, String>> {
        let checks = map.iter().map(|role| async move {
            self.checked(role);
            let writer = self.get(role, group).await;
            check_writer(&writer, group, self.auto_create_group)
                .await
                .map(|()| format!("startup check passed: role {role} (role_arn_map) may write to log group '{group}'"))
                .map_err(|why| format!("startup check: role {role} (role_arn_map): {why}"))
        });
        futures_util::future::join_all(checks).await
    }

    /// Marks `role` as checked already (by the startup check), so its first use is not checked again.
    pub fn checked(&self, role: &str) {
        let mut s = lock(&self.state);
        if s.checked.len() < CHECKED_ROLES {
            s.checked.insert(role.to_owned());
        }
    }

    /// How many roles are kept now.
    pub fn len(&self) -> usize {
        lock(&self.state).entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn cached(&self, role: &str) -> Option<Arc<Writer>> {
        let mut s = lock(&self.state);
        s.uses += 1;
        let used = s.uses;
        let entry = s.entries.get_mut(role)?;
        entry.used = used;
        Some(entry.writer.clone())
    }

    /// Drops the least recently used roles beyond the bound (a linear scan: the bound is small).
    fn evict(&self, s: &mut State) {
        while s.entries.len() > self.bound {
            let Some(oldest) = s.entries.iter().min_by_key(|(_, e)| e.used).map(|(role, _)| role.clone()) else {
                return;
            };
            s.entries.remove(&oldest);
            Stats::add(&self.stats.roles_evicted, 1);
        }
    }

    fn spawn_check(&self, role: &str, group: &str, writer: Arc<Writer>) {
        let (label, role, group, auto_create) =
            (self.label.clone(), role.to_owned(), group.to_owned(), self.auto_create_group);
        tokio::spawn(async move {
            match check_writer(&writer, &group, auto_create).await {
                Ok(()) => log_info!(
                    &label,
                    "role {} (chosen by records) checked: assumed, may write to log group '{}'",
                    role,
                    group
                ),
                Err(why) => log_warn!(
                    &label,
                    "role {} (chosen by records) check failed: {}; its records are held for retry",
                    role,
                    why
                ),
            }
        });
    }
}
