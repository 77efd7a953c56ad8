//! Fluent Bit's side of the proxy ("Go plugin") ABI, for tests: loads a plugin `.so` with
//! `dlopen(RTLD_LAZY)` and calls it the way Fluent Bit does (see
//! `../shared/reference/fluent-bit-proxy-abi.md`):
//!
//! - Register gets a heap `flb_plugin_proxy_def` of exactly the profile's size (48 bytes calloc'd
//!   for 5.1.1, 40 for 5.0, 32 bytes of uninitialised malloc for ≤ 4.x), as Fluent Bit allocates
//!   it, with canary bytes in the allocator's slack after it, checked after the call: a plugin
//!   writing `event_type` on ≤ 4.x, or `config_map` anywhere, is caught. The `event_type` a ≥ 5.0
//!   plugin declares is kept (`declared_event_type`).
//! - Init gets one `flbgo_output_plugin` per registration, its `o_ins`/`context` rewritten per
//!   instance, and an API table of the profile's length; `output_get_property` matches keys
//!   case-insensitively and at equal length, returns NULL for unset or empty values, and never
//!   shows the keys Fluent Bit's core consumes (`workers`, `match`, `retry_limit`, ...).
//! - Flushes run on threads whose whole stack is the profile's coroutine stack (24 KiB for
//!   ≤ 5.0 on x86_64, 64 KiB from 5.1); the tag is a malloc'd copy freed after the call, the
//!   data a copy that is poisoned and freed after the call. `Workers N` means N threads, tasks
//!   dealt round-robin, one flush at a time per thread; without workers, one thread.
//! - RETRY re-sends the whole chunk later, up to `Retry_Limit` (default 1) more times.
//! - A stop (`Shutdown`): no new chunks; those taken get `Grace` to finish, counted from when
//!   the engine is free (without workers, when the one flush thread is); then the flush threads
//!   are joined, as Fluent Bit joins them before it calls the exit callbacks.

#![allow(clippy::missing_safety_doc)]

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const FLB_ERROR: c_int = 0;
pub const FLB_OK: c_int = 1;
pub const FLB_RETRY: c_int = 2;

/// What differs between Fluent Bit versions, as far as a proxy output can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    pub name: &'static str,
    /// sizeof(struct flb_plugin_proxy_def)
    pub def_size: usize,
    /// calloc (≥ 5.0) or uninitialised malloc (≤ 4.x)
    pub def_zeroed: bool,
    /// members in struct flb_api
    pub api_members: usize,
    /// `[[t, meta], body]` (≥ 2.1) or `[t, body]`
    pub v2_records: bool,
    /// coroutine stack a flush runs on
    pub coro_stack: usize,
}

pub const FB_5_1_1: Profile =
    Profile { name: "5.1.1", def_size: 48, def_zeroed: true, api_members: 9, v2_records: true, coro_stack: 64 << 10 };
pub const FB_5_0: Profile =
    Profile { name: "5.0", def_size: 40, def_zeroed: true, api_members: 9, v2_records: true, coro_stack: 24 << 10 };
pub const FB_4_2: Profile =
    Profile { name: "4.2", def_size: 32, def_zeroed: false, api_members: 9, v2_records: true, coro_stack: 24 << 10 };
pub const FB_1_9_10: Profile = Profile {
    name: "1.9.10",
    def_size: 32,
    def_zeroed: false,
    api_members: 1,
    v2_records: false,
    coro_stack: 24 << 10,
};

pub fn profile(name: &str) -> Option<Profile> {
    [FB_5_1_1, FB_5_0, FB_4_2, FB_1_9_10].into_iter().find(|p| p.name == name)
}

/// Keys Fluent Bit's core takes for itself; a plugin never sees them.
pub const CORE_KEYS: &[&str] = &[
    "name",
    "match",
    "match_regex",
    "alias",
    "log_level",
    "log_suppress_interval",
    "host",
    "port",
    "ipv6",
    "retry_limit",
    "workers",
    "storage.total_limit_size",
    "tls",
];

const CANARY: u8 = 0xCD;
const CANARY_LEN: usize = 64;

type RegisterFn = unsafe extern "C" fn(*mut c_void) -> c_int;
type InitFn = unsafe extern "C" fn(*mut c_void) -> c_int;
type FlushCtxFn = unsafe extern "C" fn(*mut c_void, *const c_void, usize, *mut c_char) -> c_int;
type ExitCtxFn = unsafe extern "C" fn(*mut c_void) -> c_int;
type UnregisterFn = unsafe extern "C" fn(*mut c_void);

/// A loaded plugin and Fluent Bit's per-registration structures.
pub struct Host {
    handle: *mut c_void,
    pub profile: Profile,
    register: RegisterFn,
    init: InitFn,
    flush_ctx: FlushCtxFn,
    exit_ctx: Option<ExitCtxFn>,
    unregister: Option<UnregisterFn>,
    registrations: Mutex<Vec<Registration>>,
    /// Serialises Init (Fluent Bit runs them one after another on the pipeline thread).
    init_lock: Mutex<()>,
}

// The raw pointers are Fluent Bit-style shared structures; tests use them as Fluent Bit does.
unsafe impl Send for Host {}
unsafe impl Sync for Host {}

struct Registration {
    def: *mut u8,
    plugin: *mut u8,
    api: *mut u8,
    name: String,
    event_type: c_int,
}

/// One `[OUTPUT]` instance.
pub struct Output {
    props: Box<Props>,
    /// struct flb_plugin_proxy_context (remote_context, proxy)
    context: *mut u8,
    pub workers: usize,
    pub retry_limit: Option<u32>,
    pub registration: usize,
}

unsafe impl Send for Output {}
unsafe impl Sync for Output {}

struct Props {
    pairs: Vec<(CString, Option<CString>)>,
    asked: Mutex<Vec<String>>,
}

unsafe extern "C" fn output_get_property(key: *const c_char, ins: *mut c_void) -> *const c_char {
    let props = &*(ins as *const Props);
    let key = CStr::from_ptr(key).to_bytes();
    props.asked.lock().unwrap().push(String::from_utf8_lossy(key).into_owned());
    for (k, v) in &props.pairs {
        let k = k.to_bytes();
        if k.len() == key.len() && k.eq_ignore_ascii_case(key) {
            return v.as_ref().map_or(std::ptr::null(), |v| v.as_ptr());
        }
    }
    std::ptr::null()
}

unsafe extern "C" fn never_called() {
    panic!("the plugin called a Fluent Bit-private function pointer");
}

fn sym<T: Copy>(handle: *mut c_void, name: &str) -> Option<T> {
    let c = CString::new(name).unwrap();
    unsafe {
        libc::dlerror();
        let p = libc::dlsym(handle, c.as_ptr());
        if p.is_null() || !libc::dlerror().is_null() {
            None
        } else {
            Some(std::mem::transmute_copy::<*mut c_void, T>(&p))
        }
    }
}

unsafe fn alloc(size: usize, zeroed: bool) -> *mut u8 {
    let p = libc::malloc(size + CANARY_LEN) as *mut u8;
    assert!(!p.is_null());
    std::ptr::write_bytes(p, if zeroed { 0 } else { 0xAA }, size);
    std::ptr::write_bytes(p.add(size), CANARY, CANARY_LEN);
    p
}

/// A block of exactly `size` bytes, as Fluent Bit allocates `def` (so the plugin's allocator
/// sees its real size), its slack up to the usable size filled with canary bytes.
unsafe fn alloc_exact(size: usize, zeroed: bool) -> *mut u8 {
    let p = if zeroed { libc::calloc(1, size) } else { libc::malloc(size) } as *mut u8;
    assert!(!p.is_null());
    if !zeroed {
        std::ptr::write_bytes(p, 0xAA, size);
    }
    let usable = libc::malloc_usable_size(p.cast());
    std::ptr::write_bytes(p.add(size), CANARY, usable - size);
    p
}

unsafe fn slack_intact(p: *mut u8, size: usize) -> bool {
    let usable = libc::malloc_usable_size(p.cast());
    (size..usable).all(|i| *p.add(i) == CANARY)
}

impl Host {
    /// `dlopen(path, RTLD_LAZY)` and the symbol look-ups Fluent Bit makes.
    pub fn load(path: &Path, profile: Profile) -> Result<Host, String> {
        let c = CString::new(path.to_str().ok_or("path")?).unwrap();
        let handle = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_LAZY) };
        if handle.is_null() {
            let err = unsafe { CStr::from_ptr(libc::dlerror()) }.to_string_lossy().into_owned();
            return Err(format!("error opening plugin {}: '{err}'", path.display()));
        }
        Ok(Host {
            handle,
            profile,
            register: sym(handle, "FLBPluginRegister").ok_or("no FLBPluginRegister")?,
            init: sym(handle, "FLBPluginInit").ok_or("could not load FLBPluginInit symbol")?,
            flush_ctx: sym(handle, "FLBPluginFlushCtx").ok_or("no FLBPluginFlushCtx")?,
            exit_ctx: sym(handle, "FLBPluginExitCtx"),
            unregister: sym(handle, "FLBPluginUnregister"),
            registrations: Mutex::new(Vec::new()),
            init_lock: Mutex::new(()),
        })
    }

    /// Register; returns the registration's index. Fails when the plugin wrote past the
    /// fields every version has, or registered something that is not a Go-proxy output.
    pub fn register(&self) -> Result<usize, String> {
        let p = self.profile;
        unsafe {
            let def = alloc_exact(p.def_size, p.def_zeroed);
            *(def as *mut c_int) = 0;
            if p.def_size >= 48 {
                *(def.add(40) as *mut *mut c_void) = std::ptr::null_mut();
            }
            let ret = (self.register)(def.cast());
            if ret == -1 {
                return Err("Register returned -1".into());
            }
            if !slack_intact(def, p.def_size) {
                return Err("Register wrote past the end of flb_plugin_proxy_def".into());
            }
            let event_type = if p.def_size >= 40 { *(def.add(32) as *const c_int) } else { 0 };
            // FLB_OUTPUT_LOGS | FLB_OUTPUT_METRICS at most: traces/blobs/profiles are not for us
            if !(0..=3).contains(&event_type) {
                return Err(format!("Register declared event_type {event_type}"));
            }
            if p.def_size >= 48 && !(*(def.add(40) as *const *const c_void)).is_null() {
                return Err("Register wrote config_map".into());
            }
            let (ty, proxy) = (*(def as *const c_int), *(def.add(4) as *const c_int));
            if ty != 2 || proxy != 11 {
                return Err(format!("registered type {ty} proxy {proxy}, want 2 and 11"));
            }
            let name_ptr = *(def.add(16) as *const *const c_char);
            let desc_ptr = *(def.add(24) as *const *const c_char);
            if name_ptr.is_null() || desc_ptr.is_null() {
                return Err("NULL name or description".into());
            }
            let name = CStr::from_ptr(name_ptr).to_string_lossy().into_owned();
            // the API table: member 0 real, the rest garbage that must never be called
            let api = alloc(p.api_members * 8, false);
            *(api as *mut usize) = output_get_property as *const () as usize;
            for i in 1..p.api_members {
                *(api.add(i * 8) as *mut usize) = never_called as *const () as usize;
            }
            let plugin = alloc(72, false);
            let fb_name = CString::new(name.clone()).unwrap().into_raw();
            *(plugin as *mut *mut c_char) = fb_name;
            *(plugin.add(8) as *mut *mut u8) = api;
            for i in 4..9 {
                *(plugin.add(i * 8) as *mut usize) = never_called as *const () as usize;
            }
            let mut regs = self.registrations.lock().unwrap();
            regs.push(Registration { def, plugin, api, name, event_type });
            Ok(regs.len() - 1)
        }
    }

    /// What the plugin wrote into `event_type` (0 where the profile has no such field).
    pub fn declared_event_type(&self, registration: usize) -> c_int {
        self.registrations.lock().unwrap()[registration].event_type
    }

    pub fn registered_name(&self, registration: usize) -> String {
        self.registrations.lock().unwrap()[registration].name.clone()
    }

    /// An `[OUTPUT]` instance from its section's key/value pairs.
    pub fn new_output(&self, registration: usize, pairs: &[(&str, &str)]) -> Output {
        let mut workers = 0;
        let mut retry_limit = Some(1);
        let mut kept = Vec::new();
        for (k, v) in pairs {
            let lk = k.to_ascii_lowercase();
            match lk.as_str() {
                "workers" => workers = v.trim().parse().unwrap_or(0),
                "retry_limit" => {
                    retry_limit = match v.trim().to_ascii_lowercase().as_str() {
                        "no_limits" | "false" => None,
                        "no_retries" => Some(0),
                        n => n.parse().ok(),
                    }
                }
                _ if CORE_KEYS.contains(&lk.as_str()) || lk.starts_with("net.") || lk.starts_with("tls.") => {}
                _ => kept.push((
                    CString::new(*k).unwrap(),
                    Some(v.trim()).filter(|v| !v.is_empty()).map(|v| CString::new(v).unwrap()),
                )),
            }
        }
        let context = unsafe { alloc(16, true) };
        Output {
            props: Box::new(Props { pairs: kept, asked: Mutex::new(Vec::new()) }),
            context,
            workers,
            retry_limit,
            registration,
        }
    }

    /// FLBPluginInit for one instance.
    pub fn init(&self, out: &Output) -> c_int {
        let _serial = self.init_lock.lock().unwrap();
        let regs = self.registrations.lock().unwrap();
        let reg = &regs[out.registration];
        unsafe {
            *(reg.plugin.add(16) as *mut *const Props) = &*out.props;
            *(reg.plugin.add(24) as *mut *mut u8) = out.context;
            let plugin = reg.plugin;
            drop(regs);
            (self.init)(plugin.cast())
        }
    }

    /// The keys the plugin asked for during Init, in order.
    pub fn keys_asked(&self, out: &Output) -> Vec<String> {
        out.props.asked.lock().unwrap().clone()
    }

    pub fn remote_context(&self, out: &Output) -> *mut c_void {
        unsafe { *(out.context as *const *mut c_void) }
    }

    /// One FLBPluginFlushCtx on the calling thread, with Fluent Bit's copies.
    pub fn flush(&self, out: &Output, data: &[u8], tag: &str) -> c_int {
        self.flush_ctx_raw(self.remote_context(out), data, tag)
    }

    fn flush_ctx_raw(&self, ctx: *mut c_void, data: &[u8], tag: &str) -> c_int {
        unsafe {
            let tag_copy = libc::malloc(tag.len() + 1) as *mut c_char;
            std::ptr::copy_nonoverlapping(tag.as_ptr(), tag_copy as *mut u8, tag.len());
            *tag_copy.add(tag.len()) = 0;
            let buf = libc::malloc(data.len().max(1)) as *mut u8;
            std::ptr::copy_nonoverlapping(data.as_ptr(), buf, data.len());
            let ret = (self.flush_ctx)(ctx, buf.cast(), data.len(), tag_copy);
            // a plugin that kept either pointer now reads garbage
            std::ptr::write_bytes(buf, 0xEE, data.len());
            std::ptr::write_bytes(tag_copy as *mut u8, 0xEE, tag.len());
            libc::free(buf.cast());
            libc::free(tag_copy.cast());
            match ret {
                0..=2 => ret,
                _ => FLB_ERROR,
            }
        }
    }

    /// FLBPluginExitCtx with the instance's context (NULL when Init never succeeded).
    pub fn exit(&self, out: &Output) -> Option<c_int> {
        let ctx = self.remote_context(out);
        self.exit_ctx.map(|f| unsafe { f(ctx) })
    }

    pub fn exit_null(&self) -> Option<c_int> {
        self.exit_ctx.map(|f| unsafe { f(std::ptr::null_mut()) })
    }

    /// FLBPluginUnregister, then Fluent Bit frees its structures.
    pub fn unregister(&self, registration: usize) {
        let regs = self.registrations.lock().unwrap();
        let reg = &regs[registration];
        if let Some(f) = self.unregister {
            unsafe { f(reg.def.cast()) };
        }
        unsafe {
            std::ptr::write_bytes(reg.api, 0xEE, self.profile.api_members * 8);
        }
    }

    /// `dlclose`, as Fluent Bit does after the last Unregister.
    pub fn close(&self) {
        unsafe { libc::dlclose(self.handle) };
    }

    /// Runs every chunk through the instance the way Fluent Bit's engine would, on threads
    /// whose stack is the coroutine stack; RETRY re-queues the whole chunk after `retry_wait`.
    pub fn run(self: &Arc<Self>, out: &Arc<Output>, chunks: Vec<(Vec<u8>, String)>, retry_wait: Duration) -> RunReport {
        self.run_paced(out, chunks, Duration::ZERO, retry_wait)
    }

    /// `run`, handing a new chunk to the workers every `pace` (as inputs produce them over time).
    pub fn run_paced(
        self: &Arc<Self>,
        out: &Arc<Output>,
        chunks: Vec<(Vec<u8>, String)>,
        pace: Duration,
        retry_wait: Duration,
    ) -> RunReport {
        self.run_until(out, chunks, pace, retry_wait, None)
    }

    /// `run_paced`, ended early by `shutdown` when it is requested, as Fluent Bit's engine ends.
    pub fn run_until(
        self: &Arc<Self>,
        out: &Arc<Output>,
        chunks: Vec<(Vec<u8>, String)>,
        pace: Duration,
        retry_wait: Duration,
        shutdown: Option<&Shutdown>,
    ) -> RunReport {
        // (attempt, chunk index). The chunks stay alive until the run ends, as Fluent Bit keeps
        // them: memory freed mid-run would hide what the plugin allocates (benches/e2e.rs).
        type Task = (usize, usize);
        let threads = out.workers.max(1);
        let total = chunks.len();
        let chunks = Arc::new(chunks);
        let (done_tx, done_rx) = mpsc::channel::<(usize, usize, c_int)>();
        let mut senders: Vec<mpsc::Sender<Task>> = Vec::new();
        // flushes handed out and not yet answered
        let busy = Arc::new(AtomicUsize::new(0));
        let mut joins = Vec::new();
        for w in 0..threads {
            let (tx, rx) = mpsc::channel::<Task>();
            senders.push(tx);
            let host = self.clone();
            let out = out.clone();
            let done = done_tx.clone();
            let chunks = chunks.clone();
            let busy = busy.clone();
            let name = if out.workers == 0 { "flb-pipeline".to_string() } else { format!("flb-out-w{w}") };
            joins.push(
                std::thread::Builder::new()
                    .name(name)
                    .stack_size(self.profile.coro_stack)
                    .spawn(move || {
                        while let Ok((attempt, i)) = rx.recv() {
                            let (data, tag) = &chunks[i];
                            let ret = host.flush(&out, data, tag);
                            busy.fetch_sub(1, Ordering::SeqCst);
                            if done.send((attempt, i, ret)).is_err() {
                                break;
                            }
                        }
                    })
                    .expect("spawn flush thread"),
            );
        }
        drop(done_tx);
        // round-robin dispatch, shared by the feeder and the retry timers
        let next = Arc::new(Mutex::new((senders, 0usize)));
        let dispatch = {
            let (next, busy) = (next.clone(), busy.clone());
            move |task: Task| {
                let mut n = next.lock().unwrap();
                if n.0.is_empty() {
                    return;
                }
                let i = n.1 % n.0.len();
                n.1 += 1;
                busy.fetch_add(1, Ordering::SeqCst);
                if n.0[i].send(task).is_err() {
                    busy.fetch_sub(1, Ordering::SeqCst);
                }
            }
        };
        // chunks the inputs have produced (handed to the engine); a stop ends production
        let produced = Arc::new(AtomicUsize::new(0));
        let stopping = shutdown.map(|s| s.requested.clone()).unwrap_or_default();
        let feeder = {
            let (dispatch, produced, stopping) = (dispatch.clone(), produced.clone(), stopping.clone());
            std::thread::spawn(move || {
                for i in 0..total {
                    if stopping.load(Ordering::SeqCst) {
                        break;
                    }
                    produced.fetch_add(1, Ordering::SeqCst);
                    dispatch((0, i));
                    if !pace.is_zero() {
                        std::thread::sleep(pace);
                    }
                }
            })
        };
        let mut report = RunReport::default();
        let mut finished = 0;
        let mut timers = Vec::new();
        // when Grace ends, once the stop is seen and the engine is free
        let mut grace_ends: Option<Instant> = None;
        loop {
            if let Some(s) = shutdown.filter(|s| s.requested.load(Ordering::SeqCst)) {
                let engine_free = out.workers > 0 || busy.load(Ordering::SeqCst) == 0;
                if grace_ends.is_none() && engine_free {
                    grace_ends = Some(Instant::now() + s.grace);
                }
                let produced = produced.load(Ordering::SeqCst);
                if finished >= produced || grace_ends.is_some_and(|t| Instant::now() >= t) {
                    report.stopped = true;
                    report.pending_at_exit = produced - finished.min(produced);
                    break;
                }
            } else if finished >= total {
                break;
            }
            let Ok((attempt, chunk, ret)) = done_rx.recv_timeout(Duration::from_millis(20)) else { continue };
            report.flushes += 1;
            match ret {
                FLB_OK => {
                    report.ok += 1;
                    finished += 1;
                }
                FLB_RETRY => {
                    report.retry += 1;
                    if out.retry_limit.is_none_or(|limit| (attempt as u32) < limit) {
                        let dispatch = dispatch.clone();
                        timers.push(std::thread::spawn(move || {
                            std::thread::sleep(retry_wait);
                            dispatch((attempt + 1, chunk));
                        }));
                    } else {
                        report.dropped_chunks += 1;
                        finished += 1;
                    }
                }
                _ => {
                    report.error += 1;
                    report.dropped_chunks += 1;
                    finished += 1;
                }
            }
        }
        feeder.join().unwrap();
        if !report.stopped {
            for t in timers {
                t.join().unwrap();
            }
        }
        // retries still waiting are dropped with the senders; a flush under way is waited for
        next.lock().unwrap().0.clear();
        for j in joins {
            j.join().expect("flush thread panicked");
        }
        report
    }
}

/// Fluent Bit's stop, as its engine sees it.
#[derive(Debug, Clone)]
pub struct Shutdown {
    /// Set when the main loop has seen the stop signal.
    pub requested: Arc<AtomicBool>,
    /// `[SERVICE] Grace`.
    pub grace: Duration,
}

/// What the engine saw of one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunReport {
    pub flushes: usize,
    pub ok: usize,
    pub retry: usize,
    pub error: usize,
    /// chunks Fluent Bit would drop: ERROR, or RETRY past Retry_Limit
    pub dropped_chunks: usize,
    /// The run ended with a stop.
    pub stopped: bool,
    /// Chunks taken before the stop and not finished when Grace ended: they stay in Fluent
    /// Bit's storage (lost with `storage.type memory`).
    pub pending_at_exit: usize,
}

/// Hands the allocator's free memory back to the kernel, so that RSS measured next counts what
/// is live rather than what earlier runs freed (benches/e2e.rs measures each run's peak).
pub fn trim_heap() {
    // SAFETY: malloc_trim only releases free memory; it takes no pointers.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Threads of this process right now.
pub fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").map(|d| d.count()).unwrap_or(0)
}

/// One record in Fluent Bit's encoding.
pub fn record(v2: bool, secs: u32, nanos: u32, body: &serde_json::Value) -> Vec<u8> {
    let mut out = vec![0x92];
    if v2 {
        out.push(0x92);
    }
    out.extend([0xd7, 0x00]);
    out.extend(secs.to_be_bytes());
    out.extend(nanos.to_be_bytes());
    if v2 {
        out.push(0x80);
    }
    out.extend(rmp_serde::to_vec(body).expect("msgpack"));
    out
}

/// Records packed into chunks of at most `max_bytes` (Fluent Bit aims at ~2 MB).
pub fn chunk(records: impl IntoIterator<Item = Vec<u8>>, max_bytes: usize) -> Vec<Vec<u8>> {
    let mut chunks = vec![Vec::new()];
    for r in records {
        let last = chunks.last_mut().unwrap();
        if !last.is_empty() && last.len() + r.len() > max_bytes {
            chunks.push(Vec::new());
        }
        chunks.last_mut().unwrap().extend(r);
    }
    chunks.retain(|c| !c.is_empty());
    chunks
}

/// Captures what this process writes to file descriptor 2 (where the plugin logs) until
/// `finish`; the text is also copied through to the real stderr.
pub struct StderrCapture {
    saved: c_int,
    path: std::path::PathBuf,
}

impl StderrCapture {
    pub fn start() -> StderrCapture {
        let path =
            std::env::temp_dir().join(format!("cwrs-stderr-{}-{:?}", std::process::id(), std::thread::current().id()));
        let file = std::fs::File::create(&path).unwrap();
        use std::os::fd::IntoRawFd;
        unsafe {
            let saved = libc::dup(2);
            let fd = file.into_raw_fd();
            libc::dup2(fd, 2);
            libc::close(fd);
            StderrCapture { saved, path }
        }
    }

    pub fn finish(self) -> String {
        unsafe {
            libc::dup2(self.saved, 2);
            libc::close(self.saved);
        }
        let text = std::fs::read_to_string(&self.path).unwrap_or_default();
        let _ = std::fs::remove_file(&self.path);
        eprint!("{text}");
        text
    }
}

/// `name=N` from the plugin's `exit:` line for `instance` (0 when absent).
pub fn exit_counter(log: &str, instance: &str, name: &str) -> u64 {
    log.lines()
        .filter(|l| l.contains(&format!("[output:cloudwatch_rs:{instance}] exit:")))
        .flat_map(|l| l.split_whitespace())
        .filter_map(|w| w.strip_prefix(&format!("{name}=")))
        .filter_map(|v| v.parse::<u64>().ok())
        .sum()
}

/// The instance the plugin's first `[output:cloudwatch_rs.N]` line in `log` speaks for.
pub fn log_instance(log: &str) -> Option<String> {
    // instances are `cloudwatch_rs.N`; plain `cloudwatch_rs` is the registration's own lines
    log.lines()
        .find_map(|l| {
            l.split("[output:cloudwatch_rs:").nth(1).and_then(|r| r.split(']').next()).filter(|l| l.contains('.'))
        })
        .map(str::to_string)
}
