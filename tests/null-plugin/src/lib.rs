//! `libcwrs_null_plugin.so`: registers as `null_rs` and answers every flush FLB_OK without
//! looking at it, like Fluent Bit's `null` output. `make bench` runs the same pipeline through
//! it to measure what the test host itself costs, and subtracts that from the plugin's figures.

use std::ffi::{c_char, c_int, c_void};

/// `struct flb_plugin_proxy_def`'s five fields (see include/flb_proxy.h).
#[repr(C)]
pub struct ProxyDef {
    type_: c_int,
    proxy: c_int,
    flags: c_int,
    name: *const c_char,
    description: *const c_char,
}

/// # Safety
/// `def` is NULL or Fluent Bit's writable definition block.
#[no_mangle]
pub unsafe extern "C" fn FLBPluginRegister(def: *mut ProxyDef) -> c_int {
    if def.is_null() {
        return -1;
    }
    (*def).type_ = 2; // FLB_PROXY_OUTPUT_PLUGIN
    (*def).proxy = 11; // FLB_PROXY_GOLANG
    (*def).flags = 0;
    (*def).name = c"null_rs".as_ptr();
    (*def).description = c"accepts and drops every chunk".as_ptr();
    0
}

#[no_mangle]
pub extern "C" fn FLBPluginInit(_plugin: *mut c_void) -> c_int {
    1
}

#[no_mangle]
pub extern "C" fn FLBPluginFlushCtx(_ctx: *mut c_void, _data: *const c_void, _size: usize, _tag: *mut c_char) -> c_int {
    1 // FLB_OK
}

#[no_mangle]
pub extern "C" fn FLBPluginExitCtx(_ctx: *mut c_void) -> c_int {
    1
}

#[no_mangle]
pub extern "C" fn FLBPluginUnregister(_def: *mut ProxyDef) {}
