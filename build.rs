//! Generates the Rust view of Fluent Bit's proxy ABI from `include/flb_proxy.h`.
use std::{env, path::PathBuf};

fn main() {
    let header = "include/flb_proxy.h";
    println!("cargo:rerun-if-changed={header}");
    let bindings = bindgen::Builder::default()
        .header(header)
        .allowlist_type("flb_.*|flbgo_.*")
        .allowlist_var("FLB_.*")
        .use_core()
        .layout_tests(true)
        .generate()
        .expect("bindgen could not read include/flb_proxy.h (is libclang installed?)");
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR")).join("flb_proxy.rs");
    bindings.write_to_file(out).expect("write bindings");
    // -z nodelete: Fluent Bit dlcloses the library after the last Unregister; keeping it mapped
    // means no thread that outlived shutdown can ever run unmapped code.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
}
