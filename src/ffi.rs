//! The only `unsafe` in the crate: the `FLBPlugin*` exports Fluent Bit calls.
//!
//! Every export runs behind a panic boundary. Raw pointers are read once, checked for NULL,
//! and never kept past the call: keys are copied to owned strings during Init, the chunk is
//! planned (its messages encoded into the plugin's own buffer) and the tag copied during Flush. The instance lives behind `remote_context` as a leaked
//! `Box<Arc<Instance>>`, freed by ExitCtx (only if it is still in `LIVE`, which guards against
//! Fluent Bit ≤ 2.0.6 handing the same context to ExitCtx twice).

#![allow(non_camel_case_types, non_upper_case_globals, dead_code)]

use crate::instance::{FlushResult, Instance};
use crate::log::{log_debug, log_error};
use crate::runtime;
use crate::sync::lock;
use std::collections::HashSet;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

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

/// Fills the five fields every Fluent Bit version has (never `event_type`/`config_map`).
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
        runtime::register();
        0
    })
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
        runtime::unregister();
        log_debug!("cloudwatch_rs", "unregistered");
    })
}
