//! One `[OUTPUT]` instance: its config, its clients, its counters, and the flush — planned on
//! Fluent Bit's thread by the core, delivered on the runtime by `dispatch`.

use crate::aws::body::reclaim;
use crate::aws::client::{clients, Clients};
use crate::aws::delivery::Delivery;
use crate::aws::metadata::ecs_task;
use crate::aws::roles::RoleWriters;
use crate::aws::startup_check::{report_startup_check, startup_check};
use crate::core::config::{role_map_error, Config, ConfigError, StartupCheck};
use crate::core::message::{Encoder, MessageFormat, MAX_MESSAGE_BYTES};
use crate::core::metrics;
use crate::core::naming::NameRule;
use crate::core::plan::{Naming, Plan, RoleProblem};
use crate::core::progress::{ChunkId, Progress};
use crate::core::role::{RoleChoice, RoleSource};
use crate::core::template::{EcsMetadata, Vars};
use crate::dispatch::{Dispatch, KnownStreams};
use crate::log::{log_debug, log_error, log_info, log_warn};
use crate::role_map::RoleMapFile;
use crate::runtime;
use crate::stats::Stats;
use crate::stop::SinceStop;
use crate::sync::lock;
use bytes::Bytes;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::runtime::Handle;
use tokio::sync::Notify;
use tokio::time::Instant;

/// What a flush answers Fluent Bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushResult {
    Ok,
    Retry,
    Error,
}

/// Why Init failed.
#[derive(Debug)]
pub enum InitError {
    Config(ConfigError),
    Runtime(std::io::Error),
    StartupCheck(String),
}

impl std::fmt::Display for InitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InitError::Config(e) => write!(f, "{e}"),
            InitError::Runtime(e) => write!(f, "could not start the plugin's runtime: {e}"),
            InitError::StartupCheck(line) => write!(f, "{line} (startup_check is strict)"),
        }
    }
}

/// Buffers one flush needs, kept for the next flush: reusing them keeps the allocator from
/// growing under steady traffic.
#[derive(Default)]
struct Scratch {
    plan: Plan,
    encoder: Encoder,
    /// PutLogEvents bodies, one per call in flight (`batches_in_flight`).
    bodies: Vec<Vec<u8>>,
    /// A metrics chunk's EMF documents, as log records.
    metrics: Vec<u8>,
}

pub struct Instance {
    pub label: String,
    config: Config,
    /// `$(uuid)`: one per instance, as the Go plugin.
    uuid: String,
    /// `$(ecs_*)`: fetched at Init when a name uses them.
    ecs: Option<EcsMetadata>,
    /// Fallback names already logged (a bounded set: each is logged once).
    fallbacks_logged: Mutex<HashSet<String>>,
    /// `role_arn_map`, re-read when it changes.
    role_map: Option<RoleMapFile>,
    /// Roles not used (unresolved, denied) already logged (a bounded set: each is logged once).
    roles_logged: Mutex<HashSet<String>>,
    /// Streams written to, so their batches need not wait for one another (see `dispatch`).
    known_streams: KnownStreams,
    exited: AtomicBool,
    delivery: Delivery,
    stats: Arc<Stats>,
    /// One `Scratch` per concurrent flush (Workers N), taken and returned, never held across an await.
    scratch: Mutex<Vec<Scratch>>,
    /// What chunks that answered RETRY already delivered.
    progress: Mutex<Progress>,
    /// Flush tasks running on the runtime (their FlushCtx may have stopped waiting).
    running_flushes: AtomicUsize,
    /// When the last flush began (ms since `EPOCH`) and how many have begun; that count again
    /// once the kept buffers were given back after it: see `spawn_idle_release`.
    last_flush_ms: AtomicU64,
    flushes_begun: AtomicU64,
    released_after: AtomicU64,
    /// Wakes the idle release when a flush begins (it sleeps without a timer once released).
    flush_began: Arc<Notify>,
}

static NEXT_ID: AtomicUsize = AtomicUsize::new(0);

/// Extra time the Fluent Bit thread waits past the flush deadline before it stops waiting.
const HANDOFF_MARGIN: Duration = Duration::from_secs(5);
/// Chunks awaiting a retry whose progress is remembered (a few KiB at most).
const PROGRESS_ENTRIES: usize = 4096;
/// How long ExitCtx waits for flush tasks still running (Fluent Bit's default Grace).
const EXIT_WAIT: Duration = Duration::from_secs(5);
/// How many distinct fallback names are logged (each once).
const FALLBACKS_LOGGED: usize = 1024;
/// How many distinct unresolved or denied roles are logged (each once).
const ROLES_LOGGED: usize = 1024;
/// A flush's buffers are kept for the next flush unless they grew past this (a huge chunk
/// should not pin its memory for the life of the instance).
const MAX_KEPT_ARENA: usize = 8 << 20;
/// After this long without a flush, the kept buffers are dropped and the allocator's free pages
/// given back: an idle output should not hold a busy one's memory. (Under traffic the buffers
/// are reused, which is what keeps the flush path from allocating.)
const RELEASE_WHEN_IDLE_FOR: Duration = Duration::from_secs(5);

/// When any instance's last flush began, and how many flushes are running in the process: the
/// process-wide memory (code pages, the allocator's free pages) is given back only when the
/// whole plugin is idle.
static LAST_FLUSH_ANY_MS: AtomicU64 = AtomicU64::new(0);
static FLUSHES_RUNNING_ANY: AtomicUsize = AtomicUsize::new(0);
/// How long after an Init memory is given back: by then the start's leftovers have run (a DNS
/// lookup's thread retires a second after its last lookup: see `runtime`).
const GIVE_BACK_AFTER_INIT: Duration = Duration::from_millis(1500);
/// How long the give-back waits for the runtime's thread to park.
const SETTLE: Duration = Duration::from_millis(50);

/// No flush is running and none began after `ms` (since `EPOCH`).
fn quiet_since(ms: u64) -> bool {
    FLUSHES_RUNNING_ANY.load(Ordering::Acquire) == 0 && LAST_FLUSH_ANY_MS.load(Ordering::Acquire) <= ms
}

/// Gives memory back (`ffi::give_back_memory_later`) soon, if the plugin is still quiet since
/// `ms` then.
fn give_back_memory(ms: u64) {
    crate::ffi::give_back_memory_later(SETTLE, move || quiet_since(ms));
}

/// The clock `last_flush_ms` counts from.
static EPOCH: once_cell::sync::Lazy<std::time::Instant> = once_cell::sync::Lazy::new(std::time::Instant::now);

fn now_ms() -> u64 {
    u64::try_from(EPOCH.elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl Instance {
    /// Validates the config, builds the clients, runs the startup check; on failure, the
    /// instance's label and why.
    pub fn start(
        get: impl Fn(&str) -> Option<String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Arc<Instance>, (String, InitError)> {
        let label = format!("cloudwatch_rs.{}", NEXT_ID.fetch_add(1, Ordering::Relaxed));
        Instance::start_as(&label, get, env).map_err(|e| (label, e))
    }

    fn start_as(
        label: &str,
        get: impl Fn(&str) -> Option<String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Arc<Instance>, InitError> {
        let config = Config::from_lookup(&get, &env).map_err(InitError::Config)?;
        crate::log::set_level(label, config.log_level);
        for warning in &config.warnings {
            log_warn!(label, "{}", warning);
        }
        let role_map = match config.roles.as_ref().map(|r| &r.source) {
            Some(RoleSource::Map { path, .. }) => {
                Some(RoleMapFile::open(path, label).map_err(|why| InitError::Config(role_map_error(path, why)))?)
            }
            _ => None,
        };
        let handle = runtime::handle().map_err(InitError::Runtime)?;
        let ecs = ecs_metadata(label, &config, &handle, &env);
        let clients = handle.block_on(clients(&config)).map_err(InitError::Config)?;
        let stats = Arc::new(Stats::default());
        let checking = config.startup_check != StartupCheck::Off;
        let roles = config.roles.as_ref().map(|_| {
            let factory = clients.roles.clone();
            RoleWriters::new(factory, config.role_cache_size, label, stats.clone(), checking, config.auto_create_group)
        });
        if checking {
            let check = handle.block_on(startup_check(&config, &clients));
            report_startup_check(label, config.startup_check, check).map_err(InitError::StartupCheck)?;
        }
        if let (Some(file), Some(roles), Some(routing)) = (&role_map, &roles, &config.roles) {
            let map = file.current();
            let mut usable = Vec::new();
            for role in map.roles() {
                match routing.check(role) {
                    RoleChoice::Role(role) => usable.push(role),
                    RoleChoice::Denied { role, why } => log_warn!(
                        label,
                        "role_arn_map '{}' names {} which is {}: its records are written with the fallback",
                        file.path(),
                        role,
                        why
                    ),
                    RoleChoice::Own | RoleChoice::Unresolved { .. } => {}
                }
            }
            if checking {
                for check in handle.block_on(roles.check_map(&config.probe_group(), &usable)) {
                    report_startup_check(label, config.startup_check, check).map_err(InitError::StartupCheck)?;
                }
            }
        }
        log_info!(label, "{}", describe_destination(&config));
        let instance = Arc::new(Instance {
            label: label.to_owned(),
            uuid: random_uuid(),
            ecs,
            fallbacks_logged: Mutex::new(HashSet::new()),
            role_map,
            roles_logged: Mutex::new(HashSet::new()),
            known_streams: KnownStreams::default(),
            exited: AtomicBool::new(false),
            delivery: delivery(label, &config, clients, roles, stats.clone()),
            config,
            stats,
            scratch: Mutex::new(Vec::new()),
            progress: Mutex::new(Progress::new(PROGRESS_ENTRIES)),
            running_flushes: AtomicUsize::new(0),
            last_flush_ms: AtomicU64::new(now_ms()),
            flushes_begun: AtomicU64::new(0),
            // the start's memory is given back below: nothing to release before a flush
            released_after: AtomicU64::new(0),
            flush_began: Arc::new(Notify::new()),
        });
        if let Some(every) = instance.config.stats_interval {
            instance.spawn_stats(&handle, every);
        }
        instance.spawn_idle_release(&handle);
        // what only the start needed (its code, the SDK's set-up garbage) need not stay resident
        let started = now_ms();
        handle.spawn(async move {
            tokio::time::sleep(GIVE_BACK_AFTER_INIT).await;
            if quiet_since(started) {
                give_back_memory(started);
            }
        });
        Ok(instance)
    }

    /// Once no flush has begun for `RELEASE_WHEN_IDLE_FOR`, drops the kept flush buffers and,
    /// if the whole plugin is idle, gives memory back to the system (`ffi::give_back_memory_later`),
    /// once per idle spell. It sleeps until the spell would be long enough, and once released
    /// waits for the next flush with no timer at all: an idle plugin runs no code.
    fn spawn_idle_release(self: &Arc<Self>, handle: &Handle) {
        let weak = Arc::downgrade(self);
        let flush_began = self.flush_began.clone();
        handle.spawn(async move {
            loop {
                let next = match weak.upgrade() {
                    Some(i) if !i.exited.load(Ordering::Acquire) => i.release_if_idle(),
                    _ => break,
                };
                match next {
                    Some(wait) => tokio::time::sleep(wait).await,
                    None => flush_began.notified().await,
                }
            }
        });
    }

    /// Releases if idle long enough; otherwise how long until it may be, or `None` once
    /// released (nothing to do until a flush).
    fn release_if_idle(&self) -> Option<Duration> {
        let begun = self.flushes_begun.load(Ordering::Acquire);
        if self.released_after.load(Ordering::Acquire) == begun {
            return None;
        }
        if self.running_flushes.load(Ordering::Acquire) > 0 {
            return Some(RELEASE_WHEN_IDLE_FOR);
        }
        let idle = Duration::from_millis(now_ms().saturating_sub(self.last_flush_ms.load(Ordering::Acquire)));
        if idle < RELEASE_WHEN_IDLE_FOR {
            return Some(RELEASE_WHEN_IDLE_FOR - idle);
        }
        if self.released_after.swap(begun, Ordering::AcqRel) != begun {
            drop(std::mem::take(&mut *lock(&self.scratch)));
            let spell_began = now_ms().saturating_sub(RELEASE_WHEN_IDLE_FOR.as_millis() as u64);
            if quiet_since(spell_began) {
                give_back_memory(spell_began);
            }
            log_debug!(&self.label, "idle for {} s: flush buffers released", idle.as_secs());
        }
        None
    }

    /// Logs the counters every `every` until the instance exits.
    fn spawn_stats(self: &Arc<Self>, handle: &Handle, every: Duration) {
        let weak = Arc::downgrade(self);
        handle.spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                match weak.upgrade() {
                    Some(i) if !i.exited.load(Ordering::Acquire) => log_info!(&i.label, "stats: {}", i.summary()),
                    _ => break,
                }
            }
        });
    }

    /// The counters as one line, with the shared credential cache's.
    fn summary(&self) -> String {
        let c = &self.delivery.own.credentials;
        let roles = match &self.delivery.roles {
            Some(roles) => format!(" roles_kept={}", roles.len()),
            None => String::new(),
        };
        format!(
            "{}{} credential_refreshes={} credential_invalidations={} (credentials shared by every instance using {})",
            self.stats,
            roles,
            c.refreshes.load(Ordering::Relaxed),
            c.invalidations.load(Ordering::Relaxed),
            c.describe()
        )
    }

    /// Called on Fluent Bit's thread (a small coroutine stack): plans the chunk, hands the plan
    /// to the runtime and waits, with a deadline, for the answer.
    pub fn flush_blocking(self: &Arc<Self>, chunk: &[u8], tag: String) -> FlushResult {
        let Some(handle) = runtime::running() else {
            log_error!(&self.label, "flush after shutdown; the chunk will be retried");
            return FlushResult::Retry;
        };
        Stats::add(&self.stats.flushes, 1);
        Stats::add(&self.stats.chunk_bytes, chunk.len() as u64);
        let now = now_ms();
        self.last_flush_ms.store(now, Ordering::Release);
        self.flushes_begun.fetch_add(1, Ordering::AcqRel);
        LAST_FLUSH_ANY_MS.store(now, Ordering::Release);
        self.flush_began.notify_one();
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let this = self.clone();
        // Planned here, on Fluent Bit's thread, while its buffer is valid: the messages are all
        // that is kept, so the chunk is never copied. (The plan walks the chunk with explicit
        // stacks, so Fluent Bit's small coroutine stack is enough; the tests run it on one.)
        let mut scratch = self.take_scratch();
        self.plan(&mut scratch, chunk, &tag);
        self.running_flushes.fetch_add(1, Ordering::AcqRel);
        FLUSHES_RUNNING_ANY.fetch_add(1, Ordering::AcqRel);
        // The flush future is large (it holds the SDK's request futures): box it inside the task
        // so it is built on a runtime thread, never on Fluent Bit's small coroutine stack.
        handle.spawn(async move {
            let result = Box::pin(this.flush(&mut scratch, &tag)).await;
            this.return_scratch(scratch);
            this.running_flushes.fetch_sub(1, Ordering::AcqRel);
            FLUSHES_RUNNING_ANY.fetch_sub(1, Ordering::AcqRel);
            let _ = tx.send(result);
        });
        let result = rx.recv_timeout(self.config.flush_timeout + HANDOFF_MARGIN).unwrap_or_else(|_| {
            log_error!(&self.label, "flush did not finish in time (or failed inside); the chunk will be retried");
            FlushResult::Retry
        });
        if result == FlushResult::Retry {
            Stats::add(&self.stats.flushes_retry, 1);
        }
        result
    }

    /// Decodes, encodes, sorts and cuts the chunk into `scratch.plan`. A metrics chunk (Fluent
    /// Bit ≥ 5.0, see `ffi`) is first written as EMF documents, sent whole as the C plugin
    /// sends them: `log_key` and `metric_namespace` do not apply to them.
    fn plan(&self, scratch: &mut Scratch, chunk: &[u8], tag: &str) {
        let vars = Vars { uuid: &self.uuid, ecs: self.ecs.as_ref() };
        // the map is looked at once per chunk (the file at most once a second), never per record
        let role_map = self.role_map.as_ref().map(RoleMapFile::current);
        let naming = Naming {
            group: &self.config.group,
            stream: &self.config.stream,
            vars: &vars,
            roles: self.config.roles.as_ref(),
            role_map: role_map.as_deref(),
        };
        if !metrics::is_metrics_chunk(chunk) {
            scratch.plan.build(chunk, tag, naming, &self.config.message, &mut scratch.encoder);
            return;
        }
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let now = (u32::try_from(now.as_secs()).unwrap_or(u32::MAX), now.subsec_nanos());
        scratch.metrics.clear();
        let converted = metrics::to_log_records(chunk, now.0, now.1, &mut scratch.metrics);
        let whole = MessageFormat {
            log_key: None,
            metrics: None,
            truncation_marker: self.config.message.truncation_marker.clone(),
            ..Default::default()
        };
        scratch.plan.build(&scratch.metrics, tag, naming, &whole, &mut scratch.encoder);
        log_debug!(&self.label, "tag '{}': metrics chunk, {} EMF documents", tag, converted.documents);
        if converted.skipped > 0 {
            Stats::add(&self.stats.dropped_metrics, converted.skipped);
            log_warn!(
                &self.label,
                "tag '{}': {} metric values not written (exponential histograms, unknown metric types or values cmetrics overwrites; counted in dropped_metrics)",
                tag,
                converted.skipped
            );
        }
        if let Some(damage) = converted.damage {
            Stats::add(&self.stats.dropped_damaged_chunk, 1);
            log_error!(
                &self.label,
                "tag '{}': metrics chunk is not a cmetrics payload past some point ({}); the {} documents before it are sent",
                tag,
                damage,
                converted.documents
            );
        }
    }

    /// Delivers a planned chunk. Its arena is shared with the requests for the flush's
    /// duration (they send batches straight from it), then taken back for the next flush; if a
    /// request still holds it (an attempt abandoned at its timeout), the next flush allocates a
    /// new one rather than wait.
    async fn flush(&self, scratch: &mut Scratch, tag: &str) -> FlushResult {
        let Scratch { plan, bodies, .. } = scratch;
        let arena = Bytes::from(std::mem::take(&mut plan.arena));
        let result = self.deliver(plan, &arena, bodies, tag).await;
        plan.arena = reclaim(arena).unwrap_or_else(|| {
            log_debug!(&self.label, "a request still holds the flush's arena: the next flush allocates its own");
            Vec::new()
        });
        result
    }

    /// Delivers a planned chunk whose arena is `arena`: skips what an earlier attempt of the
    /// same chunk delivered, sends the rest, and remembers what was delivered if the answer is
    /// RETRY.
    async fn deliver(&self, plan: &Plan, arena: &Bytes, bodies: &mut Vec<Vec<u8>>, tag: &str) -> FlushResult {
        let deadline = Instant::now() + self.config.flush_timeout;
        let batches = plan.batches.len();

        // Fingerprinting costs a pass over the chunk: only done while some chunk awaits a retry.
        let earlier = self.lock_progress(|p| !p.is_empty()).then(|| ChunkId::of_plan(tag, plan, arena));
        let mut done = earlier.and_then(|id| self.lock_progress(|p| p.take(&id, batches)));
        if done.is_none() {
            self.count_plan(plan, tag);
        }
        let done = done.get_or_insert_with(|| vec![false; batches]);
        let skipped = done.iter().filter(|&&d| d).count();
        if skipped > 0 {
            Stats::add(&self.stats.batches_skipped, skipped as u64);
            log_debug!(
                &self.label,
                "tag '{}': retry of a chunk, {} of {} batches already delivered",
                tag,
                skipped,
                batches
            );
        }

        let dispatch = Dispatch {
            delivery: &self.delivery,
            deadline,
            max_calls: self.config.batches_in_flight,
            known: &self.known_streams,
        };
        let sent = dispatch.run(plan, arena, done, bodies).await;
        log_debug!(
            &self.label,
            "flush of tag '{}': {} events in {} batches, {} delivered now, {} sent from the arena",
            tag,
            plan.events.len(),
            batches,
            sent.delivered,
            sent.from_arena
        );
        if sent.retry {
            let id = ChunkId::of_plan(tag, plan, arena);
            let done = std::mem::take(done);
            self.lock_progress(|p| p.put(id, done, std::time::Instant::now()));
            FlushResult::Retry
        } else if sent.dropped > 0 && sent.delivered == 0 && skipped == 0 {
            FlushResult::Error
        } else {
            FlushResult::Ok
        }
    }

    fn lock_progress<T>(&self, f: impl FnOnce(&mut Progress) -> T) -> T {
        f(&mut lock(&self.progress))
    }

    fn count_plan(&self, plan: &Plan, tag: &str) {
        let s = &self.stats;
        Stats::add(&s.truncated, plan.truncated);
        Stats::add(&s.dropped_bad_record, plan.dropped.bad_record);
        Stats::add(&s.dropped_bad_body, plan.dropped.bad_body);
        Stats::add(&s.dropped_empty, plan.dropped.empty);
        Stats::add(&s.dropped_missing_key, plan.dropped.missing_key);
        Stats::add(&s.name_fallbacks, plan.fallbacks);
        for (variable, key) in &plan.fallback_examples {
            let Some(to) = plan.keys.get(*key as usize) else { continue };
            let name = format!("{}/{}", to.group, to.stream);
            let first_time = {
                let mut logged = lock(&self.fallbacks_logged);
                logged.len() < FALLBACKS_LOGGED && logged.insert(format!("{variable} {name}"))
            };
            if first_time {
                log_warn!(
                    &self.label,
                    "tag '{}': {} could not be resolved; sending to '{}' instead (logged once per name, counted in name_fallbacks)",
                    tag,
                    variable,
                    name
                );
            }
        }
        Stats::add(&s.role_unresolved, plan.role_unresolved);
        Stats::add(&s.role_denied, plan.role_denied);
        for (problem, value) in &plan.role_examples {
            let first_time = {
                let mut logged = lock(&self.roles_logged);
                logged.len() < ROLES_LOGGED && logged.insert(format!("{problem:?} {value}"))
            };
            if !first_time {
                continue;
            }
            let fallback = self.config.role_arn.as_deref().unwrap_or("the base credentials");
            match problem {
                RoleProblem::Unresolved => log_warn!(
                    &self.label,
                    "tag '{}': no role for '{}' (no value, or no role_arn_map entry); written with {} instead (logged once per value, counted in role_unresolved)",
                    tag,
                    value,
                    fallback
                ),
                RoleProblem::Denied(why) => log_warn!(
                    &self.label,
                    "tag '{}': role '{}' chosen by a record is {}: never assumed; written with {} instead (logged once per value, counted in role_denied)",
                    tag,
                    value,
                    why,
                    fallback
                ),
            }
        }
        if plan.truncated > 0 {
            log_warn!(
                &self.label,
                "tag '{}': {} events over {} bytes were cut to fit",
                tag,
                plan.truncated,
                MAX_MESSAGE_BYTES
            );
        }
        let d = &plan.dropped;
        if d.total() > 0 {
            log_warn!(
                &self.label,
                "tag '{}': {} of {} records not sent: {} not [time, body] records, {} undecodable bodies, {} empty, {} without log_key '{}'",
                tag, d.total(), plan.records, d.bad_record, d.bad_body, d.empty, d.missing_key,
                self.config.message.log_key.as_ref().map(ToString::to_string).unwrap_or_default()
            );
        }
        if let Some(damage) = plan.damage {
            Stats::add(&s.dropped_damaged_chunk, 1);
            log_error!(&self.label, "tag '{}': {}; the {} records before it are sent", tag, damage, plan.records);
        }
    }

    fn take_scratch(&self) -> Scratch {
        lock(&self.scratch).pop().unwrap_or_default()
    }

    fn return_scratch(&self, mut scratch: Scratch) {
        if scratch.plan.arena.capacity() > MAX_KEPT_ARENA || scratch.metrics.capacity() > MAX_KEPT_ARENA {
            scratch = Scratch::default();
        }
        lock(&self.scratch).push(scratch);
    }

    /// Called at ExitCtx. Fluent Bit has joined the workers, so a flush task can only still run
    /// if its FlushCtx stopped waiting for it; give such tasks Grace, then report them.
    pub fn exit(&self) {
        let until = std::time::Instant::now() + EXIT_WAIT;
        while self.running_flushes.load(Ordering::Acquire) > 0 && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        let left = self.running_flushes.load(Ordering::Acquire);
        if left > 0 {
            log_error!(&self.label, "exit with {} flushes still running; their chunks were answered RETRY", left);
        }
        let pending = self.lock_progress(|p| p.len());
        if pending > 0 {
            log_warn!(&self.label, "exit with {} partly delivered chunks still awaiting Fluent Bit's retry", pending);
        }
        self.exited.store(true, Ordering::Release);
        self.flush_began.notify_one();
        log_info!(&self.label, "exit: {}", self.summary());
        crate::log::set_level(&self.label, None);
    }
}

/// `$(ecs_*)` values, fetched at Init when a name uses them.
fn ecs_metadata(
    label: &str,
    config: &Config,
    handle: &Handle,
    env: &impl Fn(&str) -> Option<String>,
) -> Option<EcsMetadata> {
    let role_uses_ecs = config.roles.as_ref().is_some_and(|r| r.uses_ecs());
    if !config.group.uses_ecs() && !config.stream.uses_ecs() && !role_uses_ecs {
        return None;
    }
    handle
        .block_on(ecs_task(env))
        .inspect_err(|why| log_warn!(label, "ECS task metadata unavailable ({}); names using $(ecs_*) fall back", why))
        .ok()
}

/// Sending as `config` says, with `clients`.
fn delivery(label: &str, config: &Config, clients: Clients, roles: Option<RoleWriters>, stats: Arc<Stats>) -> Delivery {
    Delivery {
        own: clients.own,
        roles,
        auto_create_group: config.auto_create_group,
        new_group: config.new_group.clone(),
        auto_create_stream: config.auto_create_stream,
        log_format: config.log_format.clone(),
        auto_retry: config.auto_retry_requests,
        label: label.to_owned(),
        stats,
        since_stop: SinceStop::default(),
    }
}

/// The startup line: where the instance writes, as whom.
fn describe_destination(config: &Config) -> String {
    format!(
        "log group {} in {}{}{}{}",
        describe_rule(&config.group),
        config.region,
        config.role_arn.as_deref().map(|r| format!(", as role {r}")).unwrap_or_default(),
        config.roles.as_ref().map(describe_roles).unwrap_or_default(),
        config.endpoint.as_deref().map(|e| format!(", endpoint {e}")).unwrap_or_default(),
    )
}

/// How roles chosen per record read in the startup line.
fn describe_roles(routing: &crate::core::role::RoleRouting) -> String {
    let source = match &routing.source {
        RoleSource::Template(t) => format!("role_arn_template '{t}'"),
        RoleSource::Map { key, path } => format!("role_arn_map '{path}' by '{key}'"),
    };
    format!(", roles chosen per record by {source} within accounts {}", routing.allowed.accounts().join(", "))
}

/// How a name rule reads in the startup line.
fn describe_rule(rule: &NameRule) -> String {
    match rule {
        NameRule::Fixed(name) => format!("'{name}'"),
        NameRule::TagPrefix(prefix) => format!("'{prefix}<tag>'"),
        NameRule::Template { template, fallback } => {
            format!("from template '{template}' (fallback {})", describe_rule(fallback))
        }
    }
}

/// A random version-4 UUID, from the standard library's randomly seeded hasher.
fn random_uuid() -> String {
    use std::hash::BuildHasher;
    let state = std::collections::hash_map::RandomState::new();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    let hi = state.hash_one((now, 1u8));
    let lo = state.hash_one((now, 2u8));
    let hi = (hi & !0xF000) | 0x4000; // version 4
    let lo = (lo & !(0xC << 60)) | (0x8 << 60); // variant 10
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xFFFF,
        hi & 0xFFFF,
        lo >> 48,
        lo & 0xFFFF_FFFF_FFFF
    )
}
