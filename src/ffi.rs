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
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering::SeqCst};
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
        let get = |key: &str| -> Option<String> {
            let key = CString::new(key).ok()?;
            // SAFETY: o_ins is this instance; the result is NULL or a NUL-terminated string
            // Fluent Bit owns, copied here before anything else runs.
            let value = unsafe { get_property(key.as_ptr(), o_ins) };
            if value.is_null() {
                return None;
            }
            let value = unsafe { CStr::from_ptr(value) }.to_string_lossy().trim().to_owned();
            (!value.is_empty()).then_some(value)
        };
        match Instance::start(get, |k| std::env::var(k).ok()) {
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
            // the runtime (and its watchdog) has stopped; Fluent Bit may unload the library next,
            // and a handler left pointing into it would crash the process at the next signal
            stop_signals::restore();
        }
        log_debug!("cloudwatch_rs", "unregistered");
    })
}

/// Gives the allocator's free pages back to the system: called once the plugin has been idle a
/// while and has dropped its kept buffers (glibc keeps freed memory in its per-thread arenas
/// otherwise). It trims the whole process's glibc heap; under another allocator (Fluent Bit
/// built with jemalloc) there is nothing of ours in glibc's arenas and it changes nothing.
pub fn return_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointer and only walks glibc's arenas, under their locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Fluent Bit's stop signals, seen by the plugin first, then passed on to whatever handler was
/// there (Fluent Bit's `flb_signal_handler_break_loop`).
mod stop_signals {
    use super::*;

    /// The signals on which both 1.9 and 5.x Fluent Bit stop (SIGHUP reloads in 5.x: not one).
    const SIGNALS: [c_int; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGQUIT];
    /// How often the watchdog checks that our handlers are still the ones installed: Fluent
    /// Bit re-installs its own from its SIGHUP/SIGCONT handler.
    const WATCHDOG_EVERY: Duration = Duration::from_secs(1);

    /// The handler each of ours replaced (`sa_sigaction`) and its flags, read in the handler:
    /// atomics, since a handler may not take a lock.
    static PREVIOUS: [AtomicUsize; 3] = [AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0)];
    static PREVIOUS_FLAGS: [AtomicI32; 3] = [AtomicI32::new(0), AtomicI32::new(0), AtomicI32::new(0)];
    /// A watchdog runs on the current runtime.
    static WATCHING: AtomicBool = AtomicBool::new(false);

    /// Installs the handlers (once) and starts the watchdog on the runtime.
    pub fn watch() {
        install();
        if WATCHING.swap(true, SeqCst) {
            return;
        }
        match runtime::running() {
            Some(handle) => {
                handle.spawn(async {
                    loop {
                        tokio::time::sleep(WATCHDOG_EVERY).await;
                        install();
                    }
                });
            }
            None => WATCHING.store(false, SeqCst),
        }
    }

    /// Puts back the handlers ours replaced (where ours are still installed).
    pub fn restore() {
        WATCHING.store(false, SeqCst);
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
        on_stop_signal as extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void) as libc::sighandler_t
    }

    /// Puts our handler in front of each signal's current one, unless it is already there.
    fn install() {
        for (i, &signal) in SIGNALS.iter().enumerate() {
            // SAFETY: sigaction reads into a zeroed struct, then installs a handler that is
            // async-signal-safe (`on_stop_signal`) with an empty mask.
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

    /// Records the stop, then does what the replaced handler would have done. Only
    /// async-signal-safe work: an atomic store, atomic loads, and the previous handler.
    extern "C" fn on_stop_signal(signal: c_int, info: *mut libc::siginfo_t, context: *mut c_void) {
        stop::request();
        let Some(i) = SIGNALS.iter().position(|&s| s == signal) else { return };
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
    }
}
