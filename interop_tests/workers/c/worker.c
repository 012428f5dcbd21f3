/*
 * The C interop worker: user code against the generated bridge_interop_v1_interop and
 * bridge_interop_v1_bare shims (the Bare service's rpcs share the Interop handlers).
 * Behaviour per rpc: interop_tests/README.md. Command line: interop_tests/langs/base.py.
 */
#define _POSIX_C_SOURCE 200809L
#include <string.h>
#include <time.h>

#include "interop/v1/bridge_interop_v1_bare.h"
#include "interop/v1/bridge_interop_v1_interop.h"

typedef Bridge__Interop__V1__Composite Composite;
typedef Bridge__Interop__V1__Scalars Scalars;
typedef Bridge__Interop__V1__Blob Blob;
typedef Bridge__Interop__V1__Empty Empty;

/* The reply may point into the request: both live until the job is answered. */
static int echo(bridge_ctx *ctx, const Composite *request, Composite *reply)
{
    (void)ctx;
    *reply = *request;
    return 0;
}

static int echo_scalars(bridge_ctx *ctx, const Scalars *request, Scalars *reply)
{
    (void)ctx;
    *reply = *request;
    return 0;
}

static int echo_blob(bridge_ctx *ctx, const Blob *request, Blob *reply)
{
    (void)ctx;
    *reply = *request;
    return 0;
}

static int nothing(bridge_ctx *ctx, const Empty *request, Empty *reply)
{
    (void)ctx;
    (void)request;
    (void)reply;
    return 0;
}

static void sleep_ms(int64_t millis)
{
    if (millis <= 0)
        return;
    struct timespec ts = {(time_t)(millis / 1000), (long)(millis % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* Stream and StreamIdempotent (the same rpc, declared idempotent) share this handler. */
static int stream(bridge_ctx *ctx, const Bridge__Interop__V1__StreamRequest *request)
{
    size_t size = request->payload_size > 0 ? (size_t)request->payload_size : 0;
    uint8_t *payload = bridge_ctx_alloc(ctx, size ? size : 1);
    if (payload == NULL)
        return bridge_ctx_set_error(ctx, BRIDGE_RESOURCE_EXHAUSTED, "no memory for %zu bytes", size);
    for (int32_t i = 0; i < request->count; i++) {
        Bridge__Interop__V1__StreamItem item = BRIDGE__INTEROP__V1__STREAM_ITEM__INIT;
        sleep_ms(request->delay_ms);
        memset(payload, i % 256, size);
        item.index = i;
        item.payload.data = payload;
        item.payload.len = size;
        bridge_status status = bridge_interop_v1_interop_stream_send(ctx, &item);
        if (status != BRIDGE_STATUS_OK)
            return bridge_ctx_set_error(ctx, BRIDGE_UNAVAILABLE, "sending item %d: %s", i,
                                        bridge_status_text(status));
    }
    return 0;
}

static int progress(bridge_ctx *ctx, const Bridge__Interop__V1__ProgressRequest *request,
                    Bridge__Interop__V1__ProgressReply *reply)
{
    if (request->warning[0] != '\0')
        bridge_ctx_send_warning(ctx, request->warning);
    for (int32_t i = 1; i <= request->steps; i++)
        bridge_ctx_send_progress(ctx, (uint32_t)i, (uint32_t)request->steps);
    reply->steps_done = request->steps;
    return 0;
}

static int raise_(bridge_ctx *ctx, const Bridge__Interop__V1__RaiseRequest *request, Empty *reply)
{
    (void)reply;
    if (request->fail)
        return bridge_ctx_fail(ctx);
    if (request->native) /* C's "native" failure: a message and no code -> UNKNOWN */
        return bridge_ctx_set_failure(ctx, "%s", request->message);
    return bridge_ctx_set_error(ctx, (bridge_code)request->code, "%s", request->message);
}

static int sleep_(bridge_ctx *ctx, const Bridge__Interop__V1__SleepRequest *request,
                  Bridge__Interop__V1__SleepReply *reply)
{
    (void)ctx;
    sleep_ms(request->millis);
    reply->slept_millis = request->millis;
    reply->language = "c";
    return 0;
}

static int who_am_i(bridge_ctx *ctx, const Empty *request, Bridge__Interop__V1__WhoAmIReply *reply)
{
    (void)request;
    size_t n = bridge_ctx_metadata_count(ctx);
    Bridge__Interop__V1__WhoAmIReply__MetadataEntry *entries =
        bridge_ctx_alloc(ctx, (n ? n : 1) * sizeof *entries);
    Bridge__Interop__V1__WhoAmIReply__MetadataEntry **list = bridge_ctx_alloc(ctx, (n ? n : 1) * sizeof *list);
    if (entries == NULL || list == NULL)
        return bridge_ctx_set_error(ctx, BRIDGE_RESOURCE_EXHAUSTED, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const char *key, *value;
        bridge__interop__v1__who_am_ireply__metadata_entry__init(&entries[i]);
        bridge_ctx_metadata_at(ctx, i, &key, &value);
        entries[i].key = (char *)key;
        entries[i].value = (char *)value;
        list[i] = &entries[i];
    }
    reply->language = "c";
    reply->n_metadata = n;
    reply->metadata = list;
    reply->deadline_ms = bridge_ctx_deadline_ms(ctx);
    return 0;
}

static int echo_raw(bridge_ctx *ctx, const Bridge__Interop__V1__RawBytes *request,
                    Bridge__Interop__V1__RawBytes *reply)
{
    (void)ctx;
    *reply = *request;
    return 0;
}

/* The text with its code points in reverse order (the runtime checked it is UTF-8). */
static int reverse(bridge_ctx *ctx, const Bridge__Interop__V1__RawText *request,
                   Bridge__Interop__V1__RawText *reply)
{
    size_t n = strlen(request->text);
    char *out = bridge_ctx_alloc(ctx, n + 1);
    if (out == NULL)
        return bridge_ctx_set_error(ctx, BRIDGE_RESOURCE_EXHAUSTED, "out of memory");
    size_t w = n;
    for (size_t i = 0; i < n;) {
        size_t len = 1;
        while (i + len < n && ((unsigned char)request->text[i + len] & 0xc0) == 0x80)
            len++;
        w -= len;
        memcpy(out + w, request->text + i, len);
        i += len;
    }
    out[n] = '\0';
    reply->text = out;
    return 0;
}

/* Both services on one worker. */
static bridge_status setup(bridge_worker *worker, void *arg)
{
    (void)arg;
    static const bridge_interop_v1_interop_handlers handlers = {
        .echo = echo,
        .echo_scalars = echo_scalars,
        .echo_blob = echo_blob,
        .nothing = nothing,
        .stream = stream,
        .stream_idempotent = stream,
        .progress = progress,
        .raise = raise_,
        .sleep = sleep_,
        .who_am_i = who_am_i,
        /* .not_implemented is left out on purpose: callers get UNIMPLEMENTED */
        .legacy = echo_blob,
    };
    static const bridge_interop_v1_bare_handlers bare_handlers = {
        .echo_json = echo,
        .echo_scalars_json = echo_scalars,
        .echo_msgpack = echo,
        .echo_protobuf = echo,
        .echo_raw = echo_raw,
        .reverse = reverse,
        .progress_json = progress,
        .raise_json = raise_,
        .raise_msgpack = raise_,
        .who_am_i_json = who_am_i,
        /* .not_implemented_json is left out on purpose */
    };
    bridge_status status = bridge_interop_v1_interop_register(worker, &handlers, NULL);
    return status == BRIDGE_STATUS_OK ? bridge_interop_v1_bare_register(worker, &bare_handlers, NULL)
                                      : status;
}

/* The worker command line of docs/workers.md (--servers, --concurrency, --log-level, --help,
 * --version, --max-request-bytes, --read-timeout-ms), then serving until SIGTERM. */
int main(int argc, char **argv)
{
    return bridge_worker_main(argc, argv, setup, NULL);
}
