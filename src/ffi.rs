//! The only `unsafe` in the crate: the `FLBPlugin*` exports Fluent Bit calls.
//!
//! Every export runs behind a panic boundary. Raw pointers are read once, checked for NULL,
//! and never kept past the call: keys are copied to owned strings during Init, the chunk is
//! planned (its messages encoded into the plugin's own buffer) and the tag copied during Flush. The instance lives behind `remote_context` as a leaked
//! `Box<Arc<Instance>>`, freed by ExitCtx (only if it is still in `LIVE`, which guards against
//! Fluent Bit ≤ 2.0.6 handing the same context to ExitCtx twice).
//!
//! Also here: the handlers of Fluent Bit's stop signals, chained in front of Fluent Bit's own
//! (see `stop` for why), and taken out again before the library can be unloaded.

#![allow(non_camel_case_types, non_upper_case_globals, dead_code)]

use crate::instance::{FlushResult, Instance};
use crate::log::{log_debug, log_error, log_info};
use crate::runtime;
use crate::stop;
use crate::sync::lock;
use std::collections::HashSet;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// bindgen's view of `include/flb_proxy.h`.
mod sys {
    include!(concat!(env!("OUT_DIR"), "/flb_proxy.rs"));
}

use sys::{FLB_ERROR, FLB_OK, FLB_RETRY};

const NAME: &CStr = c"cloudwatch_rs";
const DESCRIPTION: &CStr = c"Amazon CloudWatch Logs, across accounts with STS AssumeRole (Rust)";

/// Contexts handed out by Init and not yet freed by ExitCtx (as addresses).
static LIVE: Mutex<Option<HashSet<usize>>> = Mutex::new(None);

fn live() -> std::sync::MutexGuard<'static, Option<HashSet<usize>>> {
    lock(&LIVE)
}

/// Runs `f`; a panic becomes `on_panic` instead of unwinding into C.
fn boundary<T>(what: &str, on_panic: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        log_error!("cloudwatch_rs", "internal error (panic) in {}; answered without crashing Fluent Bit", what);
        on_panic
    })
}

/// Strings Fluent Bit keeps pointers to until Unregister; allocated once per process with the
/// C allocator's conventions (`CString`), reused by every registration, never freed.
fn leaked(s: &CStr) -> *mut c_char {
    static CELLS: Mutex<Vec<(usize, usize)>> = Mutex::new(Vec::new());
    let key = s.as_ptr() as usize;
    let mut cells = lock(&CELLS);
    if let Some((_, ptr)) = cells.iter().find(|(k, _)| *k == key) {
        return *ptr as *mut c_char;
    }
    let ptr = CString::from(s).into_raw();
    cells.push((key, ptr as usize));
    ptr
}

/// Fills the five fields every Fluent Bit version has, and declares metrics events as well as
/// logs where the block is Fluent Bit ≥ 5.0's (see [`EVENT_TYPE_BLOCK`]); never `config_map`.
#[no_mangle]
pub extern "C" fn FLBPluginRegister(def: *mut sys::flb_plugin_proxy_def) -> c_int {
    boundary("FLBPluginRegister", -1, || {
        if def.is_null() {
            return -1;
        }
        // SAFETY: Fluent Bit passes a writable block of at least 32 bytes: these five fields.
        unsafe {
            (*def).type_ = sys::FLB_PROXY_OUTPUT_PLUGIN as c_int;
            (*def).proxy = sys::FLB_PROXY_GOLANG as c_int;
            (*def).flags = 0;
            (*def).name = leaked(NAME);
            (*def).description = leaked(DESCRIPTION);
        }
        match block_size(def.cast()) {
            Some(size) if size >= EVENT_TYPE_BLOCK => {
                // SAFETY: the allocator that made `def` says it holds `size` ≥ 48 bytes, so the
                // int at offset 32 is inside it: Fluent Bit ≥ 5.0's event_type field.
                unsafe {
                    (*def.cast::<sys::flb_plugin_proxy_def_v5>()).event_type =
                        (sys::FLB_OUTPUT_LOGS | sys::FLB_OUTPUT_METRICS) as c_int;
                }
                log_info!("cloudwatch_rs", "accepting logs and metrics events (Fluent Bit >= 5.0: a {}-byte registration block); metrics are written as EMF", size);
            }
            size => log_info!(
                "cloudwatch_rs",
                "accepting logs events only: metrics events need Fluent Bit >= 5.0, known by a registration block of at least {} bytes ({}); route metrics to the built-in cloudwatch_logs instead",
                EVENT_TYPE_BLOCK,
                size.map(|s| format!("this one is {s}")).unwrap_or_else(|| "the allocator cannot tell its size".into())
            ),
        }
        runtime::register();
        0
    })
}

/// The smallest `def` block taken as Fluent Bit ≥ 5.0's. Fluent Bit ≤ 4.x mallocs 32 bytes,
/// which glibc makes 40 usable bytes and jemalloc, tcmalloc, mimalloc and musl 32; 5.0–5.1.0
/// calloc 40 (48 under jemalloc, Fluent Bit's packaged allocator; 40 under glibc: those builds
/// stay logs-only) and 5.1.1 calloc 48. A block this large holds offset 32 whatever made it,
/// so the write can never land outside it.
const EVENT_TYPE_BLOCK: usize = 48;

/// The usable size of a heap block, in the words of the allocator that made it: `calloc` and
/// `malloc_usable_size` as the process resolves them must come from the same object (Fluent Bit
/// calls the exported `calloc`; a statically linked allocator that does not also export
/// `malloc_usable_size` gives `None`, since glibc's would misread its blocks).
fn block_size(block: *mut c_void) -> Option<usize> {
    // SAFETY: dlsym/dladdr take NUL-terminated names and write into zeroed Dl_info structs;
    // `malloc_usable_size` is called only when it belongs to the same object as `calloc`, on a
    // live block that `calloc` made.
    unsafe {
        let calloc = libc::dlsym(libc::RTLD_DEFAULT, c"calloc".as_ptr());
        let usable = libc::dlsym(libc::RTLD_DEFAULT, c"malloc_usable_size".as_ptr());
        if calloc.is_null() || usable.is_null() {
            return None;
        }
        let (mut of_calloc, mut of_usable): (libc::Dl_info, libc::Dl_info) = (std::mem::zeroed(), std::mem::zeroed());
        if libc::dladdr(calloc, &mut of_calloc) == 0
            || libc::dladdr(usable, &mut of_usable) == 0
            || of_calloc.dli_fbase != of_usable.dli_fbase
        {
            return None;
        }
        let usable: unsafe extern "C" fn(*mut c_void) -> usize = std::mem::transmute(usable);
        Some(usable(block))
    }
}

/// Reads the instance's keys, validates them, and stores the instance in `remote_context`.
/// Returns 0 (Fluent Bit stops at startup) on any bad key, with one line saying which.
#[no_mangle]
pub extern "C" fn FLBPluginInit(plugin: *mut sys::flbgo_output_plugin) -> c_int {
    boundary("FLBPluginInit", 0, || {
        if plugin.is_null() {
            return 0;
        }
        // SAFETY: `plugin` points at Fluent Bit's flbgo_output_plugin; its first four fields
        // are valid during this call.
        let (api, o_ins, context) = unsafe { ((*plugin).api, (*plugin).o_ins, (*plugin).context) };
        if api.is_null() || context.is_null() {
            log_error!("cloudwatch_rs", "Init called without an API table or context");
            return 0;
        }
        // SAFETY: api points at a table whose first member exists in every version.
        let Some(get_property) = (unsafe { (*api).output_get_property }) else {
            return 0;
        };
        let properties = Properties { get_property, o_ins };
        let get = |key: &str| properties.get(key);
        match start_off_thread(get) {
            Ok(instance) => {
                stop_signals::watch();
                let ptr = Box::into_raw(Box::new(instance));
                live().get_or_insert_with(HashSet::new).insert(ptr as usize);
                // SAFETY: context is this instance's flb_plugin_proxy_context.
                unsafe { (*context).remote_context = ptr.cast() };
                FLB_OK as c_int
            }
            Err((label, e)) => {
                log_error!(&label, "{}", e);
                0
            }
        }
    })
}

/// The instance's `[OUTPUT]` keys, read through Fluent Bit's API.
struct Properties {
    get_property: unsafe extern "C" fn(*const c_char, *mut c_void) -> *const c_char,
    o_ins: *mut c_void,
}

// SAFETY: read only during Init, from the thread `start_off_thread` makes while the Fluent Bit
// thread that called Init waits for it: nothing else reads or changes the instance's keys then.
unsafe impl Send for Properties {}
unsafe impl Sync for Properties {}

impl Properties {
    /// The key's value, trimmed; `None` if unset or empty.
    fn get(&self, key: &str) -> Option<String> {
        let key = CString::new(key).ok()?;
        // SAFETY: o_ins is this instance; the result is NULL or a NUL-terminated string
        // Fluent Bit owns, copied here before anything else runs.
        let value = unsafe { (self.get_property)(key.as_ptr(), self.o_ins) };
        if value.is_null() {
            return None;
        }
        let value = unsafe { CStr::from_ptr(value) }.to_string_lossy().trim().to_owned();
        (!value.is_empty()).then_some(value)
    }
}

/// Runs `Instance::start` on a thread of its own, joined before Init returns: the startup check
/// runs the SDK's deep call stacks, and a thread's stack pages are given back when it exits,
/// where Fluent Bit's thread that calls Init would keep them for good. (Inline if no thread can
/// be made.)
fn start_off_thread(
    get: impl Fn(&str) -> Option<String> + Send + Sync,
) -> Result<Arc<Instance>, (String, crate::instance::InitError)> {
    let start = || Instance::start(&get, |k| std::env::var(k).ok());
    std::thread::scope(|scope| match std::thread::Builder::new().name("cwrs-init".into()).spawn_scoped(scope, start) {
        Ok(thread) => thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
        Err(_) => start(),
    })
}

/// Copies the chunk and tag, and blocks (with a deadline) while the runtime delivers them.
#[no_mangle]
pub extern "C" fn FLBPluginFlushCtx(ctx: *mut c_void, data: *const c_void, size: usize, tag: *mut c_char) -> c_int {
    boundary("FLBPluginFlushCtx", FLB_RETRY as c_int, || {
        if ctx.is_null() {
            log_error!("cloudwatch_rs", "flush for an instance whose Init did not succeed; dropping the chunk");
            return FLB_ERROR as c_int;
        }
        // SAFETY: a non-NULL ctx is the Box<Arc<Instance>> Init stored; Fluent Bit calls
        // ExitCtx (which frees it) only after every flush of the instance returned.
        let instance: Arc<Instance> = unsafe { (*(ctx as *const Arc<Instance>)).clone() };
        stop_signals::watch();
        let chunk: &[u8] = if data.is_null() || size == 0 {
            &[]
        } else {
            // SAFETY: Fluent Bit passes `size` readable bytes, valid for this call; the instance
            // plans the chunk from them before it returns and keeps no reference.
            unsafe { std::slice::from_raw_parts(data.cast::<u8>(), size) }
        };
        let tag = if tag.is_null() {
            String::new()
        } else {
            // SAFETY: a NUL-terminated copy of the tag, valid for this call.
            unsafe { CStr::from_ptr(tag) }.to_string_lossy().into_owned()
        };
        (match instance.flush_blocking(chunk, tag) {
            FlushResult::Ok => FLB_OK,
            FlushResult::Retry => FLB_RETRY,
            FlushResult::Error => FLB_ERROR,
        }) as c_int
    })
}

/// Frees the instance (NULL when Init never ran or failed: nothing to do).
#[no_mangle]
pub extern "C" fn FLBPluginExitCtx(ctx: *mut c_void) -> c_int {
    boundary("FLBPluginExitCtx", FLB_ERROR as c_int, || {
        if ctx.is_null() {
            return FLB_OK as c_int;
        }
        let owned = live().as_mut().is_some_and(|set| set.remove(&(ctx as usize)));
        if owned {
            // SAFETY: ctx came from Box::into_raw in Init and was still live: freed once here.
            let instance = unsafe { Box::from_raw(ctx as *mut Arc<Instance>) };
            instance.exit();
        }
        FLB_OK as c_int
    })
}

/// The last Unregister stops the runtime and joins its threads before returning.
#[no_mangle]
pub extern "C" fn FLBPluginUnregister(_def: *mut sys::flb_plugin_proxy_def) {
    boundary("FLBPluginUnregister", (), || {
        if runtime::unregister() {
            join_give_back();
            // the runtime has stopped and the give-back thread is joined; Fluent Bit may unload
            // the library next, and a handler left pointing into it would crash the process at
            // the next signal
            stop_signals::restore();
        }
        log_debug!("cloudwatch_rs", "unregistered");
    })
}

/// Gives memory back to the system once the whole plugin has been idle a while (and after Init,
/// whose code and scratch memory are not needed again): glibc's free pages, which it keeps in
/// its per-thread arenas otherwise, and the resident pages of the plugin's own code and
/// read-only data (`code_pages`). It trims the whole process's glibc heap; under another
/// allocator (Fluent Bit built with jemalloc) there is nothing of ours in glibc's arenas and
/// that part changes nothing.
///
/// It runs on a thread of its own, `delay` from now (time for the runtime's thread to park), and
/// only if `still_quiet()` then. Whatever of the plugin's code runs after its pages are released
/// maps them again, 64 KiB or more at a time: from this thread, only the return from its start
/// function into the C library, while the runtime's threads sleep in the kernel. The thread is
/// joined by the next give-back, or by the last Unregister (`join_give_back`), so none outlives
/// the plugin. Never unwinds: a panic in `still_quiet` just means no give-back.
pub fn give_back_memory_later(delay: Duration, still_quiet: impl FnOnce() -> bool + Send + 'static) {
    let mut running = lock(&GIVE_BACK_THREAD);
    join(running.take());
    let job: Box<GiveBack> = Box::new(GiveBack { delay, still_quiet: Box::new(still_quiet) });
    let job = Box::into_raw(job);
    // SAFETY: a zeroed pthread_attr_t is initialised by pthread_attr_init before use; the new
    // thread takes ownership of `job` (freed there, or here if the thread was not made).
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        let mut thread: libc::pthread_t = std::mem::zeroed();
        let made = libc::pthread_attr_init(&mut attr) == 0
            && libc::pthread_attr_setstacksize(&mut attr, GIVE_BACK_STACK) == 0
            && libc::pthread_create(&mut thread, &attr, give_back_thread, job.cast()) == 0;
        libc::pthread_attr_destroy(&mut attr);
        if made {
            libc::pthread_setname_np(thread, c"cwrs-give-back".as_ptr());
            *running = Some(thread);
        } else {
            drop(Box::from_raw(job));
        }
    }
}

/// The give-back thread last started, until it is joined.
static GIVE_BACK_THREAD: Mutex<Option<libc::pthread_t>> = Mutex::new(None);

/// Waits for the give-back thread, if one was started (at most its `delay` and a trim).
pub fn join_give_back() {
    join(lock(&GIVE_BACK_THREAD).take());
}

fn join(thread: Option<libc::pthread_t>) {
    if let Some(thread) = thread {
        // SAFETY: a joinable thread this module made and has not joined yet (taken out of
        // GIVE_BACK_THREAD under its lock, so exactly once).
        unsafe { libc::pthread_join(thread, std::ptr::null_mut()) };
    }
}

struct GiveBack {
    delay: Duration,
    still_quiet: Box<dyn FnOnce() -> bool + Send>,
}

/// Enough for glibc's trim and the loader's iteration (the thread runs nothing else).
const GIVE_BACK_STACK: usize = 256 << 10;

extern "C" fn give_back_thread(job: *mut c_void) -> *mut c_void {
    // SAFETY: a full set built by sigfillset, applied to this thread only: signal handlers run
    // on Fluent Bit's threads, never on this one.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, std::ptr::null_mut());
    }
    // everything this thread allocated is freed before the code pages are released
    let quiet = {
        // SAFETY: `job` is the Box `give_back_memory_later` leaked for this thread alone.
        let GiveBack { delay, still_quiet } = *unsafe { Box::from_raw(job.cast::<GiveBack>()) };
        std::thread::sleep(delay);
        catch_unwind(AssertUnwindSafe(still_quiet)).unwrap_or(false)
    };
    if quiet {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: malloc_trim takes no pointer and only walks glibc's arenas, under their locks.
        unsafe {
            libc::malloc_trim(0);
        }
        #[cfg(target_os = "linux")]
        code_pages::release();
    }
    std::ptr::null_mut()
}

/// `pipe`'s readiness on the current runtime (the stop's wake-up: see `stop`).
pub fn readiness(pipe: std::io::PipeReader) -> Option<tokio::io::unix::AsyncFd<std::io::PipeReader>> {
    // SAFETY: the PipeReader owns its descriptor, open until the AsyncFd (which owns the
    // reader) drops it, and always reports that same descriptor.
    unsafe { tokio::io::unix::AsyncFd::register(pipe) }.ok()
}

/// The plugin's code is most of what it adds to an idle Fluent Bit's memory: the pages that ran
/// (the startup check runs the whole request path) stay mapped, each with up to 64 KiB around
/// it that the kernel mapped with it. An idle plugin runs nothing (no timers: see `stop`,
/// `instance`), so they are given back: first marked cold (so they leave the working set that
/// container runtimes count), then unmapped. They are clean pages of the `.so` file: the next
/// flush maps them again from the page cache (a few dozen minor faults), or reads them back
/// if the kernel has since reclaimed them. Writable segments (relocated data, statics) are
/// never touched; nor is anything while a debugger is attached, whose breakpoints live in
/// private copies of code pages that unmapping would drop.
#[cfg(target_os = "linux")]
mod code_pages {
    use super::*;

    /// At most this many read-only segments are released (an ELF object has two or three).
    const MOST: usize = 8;
    /// Pages left mapped from the start of each function the thread still runs after the first
    /// unmapping (both are far smaller).
    const KEEP_PAGES: usize = 2;

    fn page_size() -> usize {
        // SAFETY: sysconf with a valid name
        usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096).max(4096)
    }

    /// Makes this object's read-only segments cold, then unmaps them. The ranges are found
    /// first, so that nothing but this function's own loop runs between the first unmapping and
    /// its return.
    #[inline(never)]
    pub fn release() {
        if traced() {
            return;
        }
        let mut found = Found { here: release as fn() as usize, ranges: [(0, 0); MOST], count: 0 };
        // SAFETY: dl_iterate_phdr calls `each_object` with valid dl_phdr_info pointers, one
        // object at a time, under the loader's lock; `found` outlives the call.
        unsafe {
            libc::dl_iterate_phdr(Some(each_object), (&raw mut found).cast());
        }
        // The pages the rest of this thread runs from stay mapped (this function's loop, the
        // thread's start function it returns to): unmapped, the return from the first call
        // would map them again, and with them the whole folio they are in (64 KiB or more).
        let page = page_size();
        let mut ranges = [(0, 0); 3 * MOST];
        let mut count = 0;
        for &(start, len) in &found.ranges[..found.count] {
            let mut from = start;
            for code in [release as fn() as usize, give_back_thread as *const () as usize].map(|f| f / page * page) {
                let keep = (code.max(from), (code + KEEP_PAGES * page).min(start + len));
                if keep.0 >= keep.1 {
                    continue;
                }
                if keep.0 > from {
                    ranges[count] = (from, keep.0 - from);
                    count += 1;
                }
                from = keep.1;
            }
            if start + len > from {
                ranges[count] = (from, start + len - from);
                count += 1;
            }
        }
        for advice in [libc::MADV_COLD, libc::MADV_DONTNEED] {
            for &(start, len) in &ranges[..count] {
                // SAFETY: whole pages of a read-only, file-backed mapping of this object: cold
                // only moves them on the kernel's lists; unmapping clean file pages loses
                // nothing (the next access maps the file's page again). Either may fail (an
                // old kernel, mlock): then the pages just stay.
                unsafe { libc::madvise(start as *mut c_void, len, advice) };
            }
        }
    }

    struct Found {
        /// An address inside this object.
        here: usize,
        /// (start, length) of each read-only segment, whole pages.
        ranges: [(usize, usize); MOST],
        count: usize,
    }

    /// Whether a tracer (a debugger) is attached: `TracerPid` in /proc/self/status.
    fn traced() -> bool {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| s.lines().find_map(|l| l.strip_prefix("TracerPid:").map(|v| v.trim() != "0")))
            .unwrap_or(true)
    }

    /// For the object that holds `release` (this `.so`): the whole pages of each loadable
    /// segment that is not writable. Returns 1 (stop) once it is found.
    unsafe extern "C" fn each_object(info: *mut libc::dl_phdr_info, _size: usize, data: *mut c_void) -> c_int {
        // SAFETY: both pointers are valid for this call (see `release`); the program headers
        // are `dlpi_phnum` entries the loader keeps for the object's lifetime.
        let (info, found) = unsafe { (&*info, &mut *data.cast::<Found>()) };
        if info.dlpi_phdr.is_null() {
            return 0;
        }
        let headers = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) };
        let base = info.dlpi_addr as usize;
        let loaded = || headers.iter().filter(|h| h.p_type == libc::PT_LOAD);
        let span = |h: &libc::Elf64_Phdr| (base + h.p_vaddr as usize, base + (h.p_vaddr + h.p_memsz) as usize);
        if !loaded().any(|h| (span(h).0..span(h).1).contains(&found.here)) {
            return 0;
        }
        let page = page_size();
        for h in loaded().filter(|h| h.p_flags & libc::PF_W == 0) {
            let (start, end) = span(h);
            let (start, end) = (start.div_ceil(page) * page, end / page * page);
            if end > start && found.count < MOST {
                found.ranges[found.count] = (start, end - start);
                found.count += 1;
            }
        }
        1
    }
}

/// Fluent Bit's stop signals, seen by the plugin first, then passed on to whatever handler was
/// there (Fluent Bit's `flb_signal_handler_break_loop`).
mod stop_signals {
    use super::*;

    /// The signals on which both 1.9 and 5.x Fluent Bit stop (SIGHUP reloads in 5.x: not one),
    /// then the two whose Fluent Bit handler re-installs all of Fluent Bit's handlers in front
    /// of ours (`flb_signal_init`): ours runs it, then takes its place again at once.
    const SIGNALS: [c_int; 5] = [libc::SIGTERM, libc::SIGINT, libc::SIGQUIT, libc::SIGHUP, libc::SIGCONT];
    const STOPS: usize = 3;

    /// The handler each of ours replaced (`sa_sigaction`) and its flags, read in the handler:
    /// atomics, since a handler may not take a lock.
    static PREVIOUS: [AtomicUsize; 5] = [const { AtomicUsize::new(0) }; 5];
    static PREVIOUS_FLAGS: [AtomicI32; 5] = [const { AtomicI32::new(0) }; 5];

    /// Installs the handlers, where they are not (each Init, and each flush: another library
    /// may have put its own in front since).
    pub fn watch() {
        stop::prepare();
        install();
    }

    /// Puts back the handlers ours replaced (where ours are still installed).
    pub fn restore() {
        for (i, &signal) in SIGNALS.iter().enumerate() {
            // SAFETY: sigaction with a zeroed struct to read into and a valid signal number.
            unsafe {
                let mut current: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(signal, std::ptr::null(), &mut current) != 0 || current.sa_sigaction != ours() {
                    continue;
                }
                let mut previous: libc::sigaction = std::mem::zeroed();
                previous.sa_sigaction = PREVIOUS[i].load(SeqCst);
                previous.sa_flags = PREVIOUS_FLAGS[i].load(SeqCst);
                libc::sigemptyset(&mut previous.sa_mask);
                libc::sigaction(signal, &previous, std::ptr::null_mut());
            }
        }
    }

    fn ours() -> libc::sighandler_t {
        on_signal as extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void) as libc::sighandler_t
    }

    /// Puts our handler in front of each signal's current one, unless it is already there.
    /// Async-signal-safe (sigaction and atomics): the handler calls it too.
    fn install() {
        for (i, &signal) in SIGNALS.iter().enumerate() {
            // SAFETY: sigaction reads into a zeroed struct, then installs a handler that is
            // async-signal-safe (`on_signal`) with an empty mask.
            unsafe {
                let mut current: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(signal, std::ptr::null(), &mut current) != 0 || current.sa_sigaction == ours() {
                    continue;
                }
                // recorded before ours goes in, so the handler always finds what to chain to
                PREVIOUS[i].store(current.sa_sigaction, SeqCst);
                PREVIOUS_FLAGS[i].store(current.sa_flags, SeqCst);
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = ours();
                action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
                libc::sigemptyset(&mut action.sa_mask);
                libc::sigaction(signal, &action, std::ptr::null_mut());
            }
        }
    }

    /// Records a stop (and wakes the runtime with one byte on the stop pipe), then does what
    /// the replaced handler would have done; after SIGHUP and SIGCONT, whose Fluent Bit handler
    /// re-installs Fluent Bit's handlers, puts ours back in front. Only async-signal-safe work:
    /// atomics, `write`, `sigaction`, and the previous handler.
    extern "C" fn on_signal(signal: c_int, info: *mut libc::siginfo_t, context: *mut c_void) {
        let Some(i) = SIGNALS.iter().position(|&s| s == signal) else { return };
        if i < STOPS {
            if let Some(fd) = stop::request() {
                // SAFETY: write(2) of one byte from a static to a pipe we own: async-signal-safe
                unsafe { libc::write(fd, b"s".as_ptr().cast(), 1) };
            }
        }
        let previous = PREVIOUS[i].load(SeqCst);
        let flags = PREVIOUS_FLAGS[i].load(SeqCst);
        match previous {
            libc::SIG_IGN => {}
            libc::SIG_DFL => {
                // SAFETY: what the process would have done without us: the default action
                unsafe {
                    libc::signal(signal, libc::SIG_DFL);
                    libc::raise(signal);
                }
            }
            handler if flags & libc::SA_SIGINFO != 0 => {
                // SAFETY: the address sigaction reported, installed with SA_SIGINFO
                let handler: extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void) =
                    unsafe { std::mem::transmute(handler) };
                handler(signal, info, context);
            }
            handler => {
                // SAFETY: the address sigaction reported, a plain `void (*)(int)` handler
                let handler: extern "C" fn(c_int) = unsafe { std::mem::transmute(handler) };
                handler(signal);
            }
        }
        if i >= STOPS {
            install();
        }
    }
}
