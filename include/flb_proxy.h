/*
 * Fluent Bit's proxy ("Go plugin") output ABI, as the plugin sees it.
 *
 * Written from ../shared/reference/fluent-bit-proxy-abi.md (checked against Fluent Bit 5.1.1);
 * only the fields every Fluent Bit from 1.9 to 5.1 has are declared, so the plugin cannot touch
 * memory that some version lacks:
 *   - flb_plugin_proxy_def: five fields. event_type (offset 32, FB >= 5.0) is in a separate
 *     struct, flb_plugin_proxy_def_v5, written only when the allocator says the block holds it
 *     (src/ffi.rs); config_map (offset 40, FB >= 5.1.1) is never written.
 *   - flbgo_output_plugin: the four leading fields; FB-private callbacks follow and are never touched.
 *   - flb_api: only output_get_property; FB 1.9.x's table has nothing else.
 * bindgen (build.rs) turns this file into the Rust types src/ffi.rs uses.
 */
#ifndef CLOUDWATCH_RS_FLB_PROXY_H
#define CLOUDWATCH_RS_FLB_PROXY_H

#include <stddef.h>

/* Return codes of FLBPluginFlushCtx (flb_macros.h); FLBPluginInit must return > 0 on success. */
#define FLB_ERROR 0
#define FLB_OK    1
#define FLB_RETRY 2

/* Values FLBPluginRegister writes into def->type and def->proxy. */
#define FLB_PROXY_OUTPUT_PLUGIN 2
#define FLB_PROXY_GOLANG        11

/* Allocated (and freed) by Fluent Bit; the plugin fills these five fields in FLBPluginRegister. */
struct flb_plugin_proxy_def {
    int type;
    int proxy;
    int flags;
    char *name;
    char *description;
};

/* The same block in FB >= 5.0 (calloc'd, 40 bytes; 48 in 5.1.1 with config_map after). */
struct flb_plugin_proxy_def_v5 {
    int type;
    int proxy;
    int flags;
    char *name;
    char *description;
    int event_type;
};

/* event_type bits (flb_output.h); 0 means logs only. */
#define FLB_OUTPUT_LOGS    1
#define FLB_OUTPUT_METRICS 2

/* Fluent Bit's API table. One per registration. Only member 0 exists on every version. */
struct flb_api {
    const char *(*output_get_property)(const char *key, void *o_ins);
};

/* One per output instance; remote_context is the plugin's slot, handed back to FlushCtx/ExitCtx. */
struct flb_plugin_proxy_context {
    void *remote_context;
    void *proxy; /* Fluent Bit internal */
};

/* Passed to FLBPluginInit; one per registration, its o_ins/context rewritten before each Init. */
struct flbgo_output_plugin {
    char *name;
    struct flb_api *api;
    void *o_ins;
    struct flb_plugin_proxy_context *context;
};

int FLBPluginRegister(struct flb_plugin_proxy_def *def);
int FLBPluginInit(struct flbgo_output_plugin *plugin);
int FLBPluginFlushCtx(void *remote_ctx, const void *data, size_t size, char *tag);
int FLBPluginExitCtx(void *remote_ctx);
void FLBPluginUnregister(struct flb_plugin_proxy_def *def);

#endif
