/*
 * One job, start to finish: the wire contract's section 2 in order, the context handed to the
 * handler, and the single final answer (WORK_COMPLETE, WORK_EXCEPTION or WORK_FAIL).
 */
#define _GNU_SOURCE /* vasprintf */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "bridge/v1/envelope.pb-c.h"
#include "job.h"

/* ------------------------------------------------------------------ job memory */

typedef struct arena_block {
    struct arena_block *next;
    max_align_t data[];
} arena_block;

void *bridge_ctx_alloc(bridge_ctx *ctx, size_t size)
{
    if (ctx == NULL || size > SIZE_MAX - sizeof(arena_block))
        return NULL;
    arena_block *b = calloc(1, sizeof *b + size);
    if (b == NULL)
        return NULL;
    b->next = ctx->arena;
    ctx->arena = b;
    return b->data;
}

void *bridge_ctx_memdup(bridge_ctx *ctx, const void *data, size_t size)
{
    void *p = bridge_ctx_alloc(ctx, size ? size : 1);
    if (p != NULL && size > 0)
        memcpy(p, data, size);
    return p;
}

char *bridge_ctx_strdup(bridge_ctx *ctx, const char *s)
{
    return s ? bridge_ctx_memdup(ctx, s, strlen(s) + 1) : NULL;
}

char *bridge_ctx_sprintf(bridge_ctx *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *tmp = NULL;
    int n = vasprintf(&tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *s = bridge_ctx_memdup(ctx, tmp, (size_t)n + 1);
    free(tmp);
    return s;
}

static void arena_free(bridge_ctx *ctx)
{
    while (ctx->arena != NULL) {
        arena_block *next = ctx->arena->next;
        free(ctx->arena);
        ctx->arena = next;
    }
}

/* ------------------------------------------------------------------ context accessors */

const char *bridge_ctx_function_name(const bridge_ctx *ctx)
{
    return ctx->function_name;
}

bridge_encoding bridge_ctx_encoding(const bridge_ctx *ctx)
{
    return ctx->encoding;
}

bool bridge_ctx_bare(const bridge_ctx *ctx)
{
    return ctx->bare;
}

int64_t bridge_ctx_deadline_ms(const bridge_ctx *ctx)
{
    return ctx->deadline_ms;
}

int64_t bridge__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t bridge_ctx_remaining_ms(const bridge_ctx *ctx)
{
    return ctx->deadline_ms ? ctx->deadline_ms - bridge__now_ms() : INT64_MAX;
}

const bridge_method *bridge_ctx_method(const bridge_ctx *ctx)
{
    return ctx->method;
}

void *bridge_ctx_user_data(const bridge_ctx *ctx)
{
    return ctx->method ? ctx->method->user_data : NULL;
}

const char *bridge_ctx_metadata(const bridge_ctx *ctx, const char *key)
{
    const Bridge__V1__Request *r = ctx->request;
    if (r == NULL || key == NULL)
        return NULL;
    /* On the protobuf wire a repeated key means the last one wins. */
    for (size_t i = r->n_metadata; i-- > 0;)
        if (strcmp(r->metadata[i]->key, key) == 0)
            return r->metadata[i]->value;
    return NULL;
}

size_t bridge_ctx_metadata_count(const bridge_ctx *ctx)
{
    return ctx->request ? ctx->request->n_metadata : 0;
}

bool bridge_ctx_metadata_at(const bridge_ctx *ctx, size_t i, const char **key, const char **value)
{
    if (ctx->request == NULL || i >= ctx->request->n_metadata)
        return false;
    if (key)
        *key = ctx->request->metadata[i]->key;
    if (value)
        *value = ctx->request->metadata[i]->value;
    return true;
}

/* ------------------------------------------------------------------ trace context */

const char *bridge_ctx_traceparent(const bridge_ctx *ctx)
{
    return ctx->traceparent[0] ? ctx->traceparent : NULL;
}

const char *bridge_ctx_trace_id(const bridge_ctx *ctx)
{
    return ctx->trace_id[0] ? ctx->trace_id : NULL;
}

/* `n` lowercase hex digits at s (and not all zero when `id`). */
static bool lower_hex(const char *s, size_t n, bool id)
{
    bool nonzero = false;
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
        nonzero |= s[i] != '0';
    }
    return nonzero || !id;
}

/* The job's traceparent into ctx when it is a valid version-00 one (W3C Trace Context):
 * "00-" 32 hex (trace id) "-" 16 hex (parent id) "-" 2 hex (flags), lowercase, ids not all zero. */
static void read_trace_context(bridge_ctx *ctx)
{
    const char *tp = bridge_ctx_metadata(ctx, "traceparent");
    if (tp == NULL || strlen(tp) != 55 || strncmp(tp, "00-", 3) != 0 || tp[35] != '-' ||
        tp[52] != '-' || !lower_hex(tp + 3, 32, true) || !lower_hex(tp + 36, 16, true) ||
        !lower_hex(tp + 53, 2, false))
        return;
    memcpy(ctx->traceparent, tp, 55);
    ctx->traceparent[55] = '\0';
    memcpy(ctx->trace_id, tp + 3, 32);
    ctx->trace_id[32] = '\0';
}

/* ------------------------------------------------------------------ errors */

int bridge_ctx_set_error(bridge_ctx *ctx, bridge_code code, const char *fmt, ...)
{
    free(ctx->error_message);
    ctx->error_message = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&ctx->error_message, fmt, ap) < 0)
        ctx->error_message = NULL;
    va_end(ap);
    /* OK is not an error, and only canonical codes travel: anything else fails with UNKNOWN. */
    ctx->error_code = code > BRIDGE_OK && code <= BRIDGE_UNAUTHENTICATED ? code : BRIDGE_UNKNOWN;
    return -1;
}

int bridge_ctx_set_failure(bridge_ctx *ctx, const char *fmt, ...)
{
    free(ctx->error_message);
    ctx->error_message = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&ctx->error_message, fmt, ap) < 0)
        ctx->error_message = NULL;
    va_end(ap);
    ctx->error_code = BRIDGE_UNKNOWN;
    return -1;
}

bridge_status bridge_ctx_set_error_detail(bridge_ctx *ctx, const char *key, const char *value)
{
    if (key == NULL || value == NULL)
        return BRIDGE_STATUS_INVALID;
    detail *d = calloc(1, sizeof *d);
    if (d == NULL || (d->key = strdup(key)) == NULL || (d->value = strdup(value)) == NULL) {
        if (d)
            free(d->key);
        free(d);
        return BRIDGE_STATUS_NO_MEMORY;
    }
    d->next = ctx->details;
    ctx->details = d;
    return BRIDGE_STATUS_OK;
}

int bridge_ctx_fail(bridge_ctx *ctx)
{
    ctx->fail_requested = true;
    return -1;
}

/* Sends the job's WORK_EXCEPTION: a protobuf bridge.v1.Error, or a bare method's form (8.3). */
static void finish_error(bridge_ctx *ctx, bridge_code code, const char *message)
{
    ctx->answer_code = code;
    if (ctx->log_level <= BRIDGE_LOG_WARNING)
        bridge__log_escape(ctx->answer_message, sizeof ctx->answer_message, message,
                           BRIDGE__LOG_MESSAGE_CHARS);
    if (ctx->bare) {
        bridge_buffer text = BRIDGE_BUFFER_INIT;
        if (bridge__bare_error_payload(ctx->encoding, code, message, &text) == BRIDGE_STATUS_OK)
            bridge__sink_send(ctx, BRIDGE_PACKET_EXCEPTION, text.data, text.len, 0, 0);
        else {
            bridge__sink_send(ctx, BRIDGE_PACKET_FAIL, NULL, 0, 0, 0); /* out of memory */
            ctx->answer_fail = true;
        }
        ctx->finished = true;
        bridge_buffer_free(&text);
        return;
    }
    size_t n_details = 0;
    for (detail *d = ctx->details; d; d = d->next)
        n_details++;
    Bridge__V1__Error err = BRIDGE__V1__ERROR__INIT;
    Bridge__V1__Error__DetailsEntry *entries = calloc(n_details ? n_details : 1, sizeof *entries);
    Bridge__V1__Error__DetailsEntry **ptrs = calloc(n_details ? n_details : 1, sizeof *ptrs);
    err.code = (Bridge__V1__Code)code;
    err.message = (char *)(message ? message : "");
    err.type = "bridge_error";
    err.language = "c";
    if (entries != NULL && ptrs != NULL) {
        size_t i = n_details;
        for (detail *d = ctx->details; d; d = d->next) { /* the list is newest first */
            i--;
            bridge__v1__error__details_entry__init(&entries[i]);
            entries[i].key = d->key;
            entries[i].value = d->value;
            ptrs[i] = &entries[i];
        }
        err.n_details = n_details;
        err.details = ptrs;
    }
    bridge_buffer buf = BRIDGE_BUFFER_INIT;
    if (bridge_encode(&err.base, BRIDGE_ENCODING_PROTOBUF, &buf, NULL, 0) != BRIDGE_STATUS_OK) {
        /* Only invalid UTF-8 in the handler's message/details can get here: send it without. */
        bridge_buffer_free(&buf);
        err.message = "error message is not valid UTF-8";
        err.n_details = 0;
        bridge_encode(&err.base, BRIDGE_ENCODING_PROTOBUF, &buf, NULL, 0);
    }
    bridge__sink_send(ctx, BRIDGE_PACKET_EXCEPTION, buf.data, buf.len, 0, 0);
    ctx->finished = true;
    bridge_buffer_free(&buf);
    free(entries);
    free(ptrs);
}

static void finish_errorf(bridge_ctx *ctx, bridge_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void finish_errorf(bridge_ctx *ctx, bridge_code code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    finish_error(ctx, code, msg);
}

/* ------------------------------------------------------------------ the job flow */

/* A job that failed the signed-job checks (section 9.2): one warning line (the function, the job
 * handle, the check and the key id it named; never a key), then UNAUTHENTICATED, or
 * RESOURCE_EXHAUSTED for a full replay cache (a well-signed job this worker cannot vouch for). */
static void refuse(bridge_ctx *ctx, const char *failure, const char *key_id)
{
    bool full = strcmp(failure, BRIDGE_REPLAY_CACHE_FULL) == 0;
    if (ctx->log_level <= BRIDGE_LOG_WARNING) {
        char id[4 * 64 + 1] = "";
        size_t o = 0;
        for (size_t i = 0; key_id != NULL && key_id[i] != '\0' && i < 64; i++) {
            unsigned char c = (unsigned char)key_id[i];
            o += (size_t)snprintf(id + o, sizeof id - o, c > 0x20 && c < 0x7f && c != '\\' ? "%c" : "\\x%02x", c);
        }
        bridge__log(ctx->log_level, BRIDGE_LOG_WARNING, "%s: job %s refused (%s): %s%s%s%s",
                    ctx->function_name, ctx->handle ? ctx->handle : "-",
                    full ? "RESOURCE_EXHAUSTED" : "UNAUTHENTICATED", failure,
                    id[0] ? " (key id '" : "", id, id[0] ? "')" : "");
    }
    finish_errorf(ctx, full ? BRIDGE_RESOURCE_EXHAUSTED : BRIDGE_UNAUTHENTICATED, "%s: %s",
                  ctx->function_name, failure);
}

/* Steps 7 and 8 (section 2; 8.4 for a bare method): the handler, then the one final answer. */
static void run_handler(bridge_ctx *ctx, const bridge_method *method, ProtobufCMessage *request,
                        size_t size_hint)
{
    char err[256] = "";
    if (method->handler == NULL) {
        finish_errorf(ctx, BRIDGE_UNIMPLEMENTED, "%s is not implemented by this worker",
                      method->function_name);
        return;
    }
    ProtobufCMessage *reply = NULL;
    if (!method->server_streaming) {
        reply = malloc(method->output->sizeof_message);
        if (reply == NULL) {
            finish_errorf(ctx, BRIDGE_RESOURCE_EXHAUSTED, "out of memory");
            return;
        }
        method->output->message_init(reply);
    }
    struct timespec started, ended;
    clock_gettime(CLOCK_MONOTONIC, &started);
    errno = 0;
    int rc = method->handler(ctx, request, reply);
    int handler_errno = errno;
    clock_gettime(CLOCK_MONOTONIC, &ended);
    ctx->handler_seconds = (double)(ended.tv_sec - started.tv_sec) +
                           (double)(ended.tv_nsec - started.tv_nsec) / 1e9;
    if (ctx->fail_requested) {
        bridge__sink_send(ctx, BRIDGE_PACKET_FAIL, NULL, 0, 0, 0);
        ctx->finished = true;
        ctx->answer_fail = true;
    } else if (rc != 0 || ctx->error_code != BRIDGE_OK) {
        if (ctx->error_code != BRIDGE_OK)
            finish_error(ctx, ctx->error_code, ctx->error_message);
        else {
            char reason[160] = "", text[128];
            if (handler_errno != 0) /* GNU strerror_r: thread-safe, returns the text */
                snprintf(reason, sizeof reason, ": %s",
                         strerror_r(handler_errno, text, sizeof text));
            finish_errorf(ctx, BRIDGE_UNKNOWN, "%s failed (handler returned %d)%s",
                          method->function_name, rc, reason);
        }
    } else if (method->server_streaming) {
        uint8_t end[BRIDGE_FRAME_HEADER];
        bridge__send_frame(ctx, BRIDGE_PACKET_COMPLETE, BRIDGE_FRAME_END, ctx->items_sent, end, sizeof end);
        ctx->finished = true;
    } else if (reply->descriptor != method->output) {
        finish_errorf(ctx, BRIDGE_INTERNAL, "the handler replaced the reply's descriptor");
    } else {
        /* A bare reply goes alone; an enveloped one after the frame header, filled in at the send. */
        size_t header = ctx->bare ? 0 : BRIDGE_FRAME_HEADER;
        bridge_buffer buf = BRIDGE_BUFFER_INIT;
        /* Replies are often about the request's size: one allocation instead of a few reallocs. */
        bridge__buffer_reserve(&buf, header + size_hint + 64);
        static const uint8_t zeros[BRIDGE_FRAME_HEADER];
        if (bridge__buffer_append(&buf, zeros, header) != BRIDGE_STATUS_OK) {
            finish_errorf(ctx, BRIDGE_RESOURCE_EXHAUSTED, "out of memory");
        } else if (bridge_encode(reply, ctx->encoding, &buf, err, sizeof err) != BRIDGE_STATUS_OK) {
            finish_errorf(ctx, BRIDGE_INTERNAL, "reply cannot be encoded: %s", err);
        } else if (ctx->bare) {
            bridge__sink_send(ctx, BRIDGE_PACKET_COMPLETE, buf.data, buf.len, 0, 0);
            ctx->finished = true;
        } else {
            bridge__send_frame(ctx, BRIDGE_PACKET_COMPLETE, BRIDGE_FRAME_REPLY, 0, buf.data, buf.len);
            ctx->finished = true;
        }
        bridge_buffer_free(&buf);
    }
    /* The reply's own struct is ours; what it points to belongs to the handler (see bridge.h). */
    free(reply);
}

/* The job's line (docs/workers.md, "Log lines"): at debug for a reply, at warning for any other
 * answer, with its message. */
static void log_job(const bridge_ctx *ctx, size_t size)
{
    bool failed = ctx->answer_fail || ctx->answer_code != BRIDGE_OK;
    if (!ctx->finished || ctx->log_level > (failed ? BRIDGE_LOG_WARNING : BRIDGE_LOG_DEBUG))
        return;
    static const char *const encodings[] = {"protobuf", "protobuf", "msgpack", "json", "raw"};
    char function[4 * 128 + 4], handle[4 * 64 + 4];
    bridge__log_escape(function, sizeof function, ctx->function_name, 128);
    bridge__log_escape(handle, sizeof handle, ctx->handle ? ctx->handle : "-", 64);
    const char *encoding = (unsigned)ctx->encoding < 5 ? encodings[ctx->encoding] : "protobuf";
    const char *outcome = ctx->answer_fail ? "WORK_FAIL" : bridge_code_name(ctx->answer_code);
    bool traced = ctx->trace_id[0] != '\0';
    if (!failed)
        bridge__log(ctx->log_level, BRIDGE_LOG_DEBUG,
                    "job function=%s handle=%s encoding=%s bytes=%zu seconds=%.6f outcome=%s%s%s",
                    function, handle, encoding, size, ctx->handler_seconds, outcome,
                    traced ? " trace_id=" : "", ctx->trace_id);
    else
        bridge__log(ctx->log_level, BRIDGE_LOG_WARNING,
                    "job failed function=%s handle=%s encoding=%s bytes=%zu seconds=%.6f outcome=%s%s%s "
                    "message=\"%s\"",
                    function, handle, encoding, size, ctx->handler_seconds, outcome,
                    traced ? " trace_id=" : "", ctx->trace_id,
                    ctx->answer_fail ? "the handler failed the job (WORK_FAIL)" : ctx->answer_message);
}

static const char *encoding_name(bridge_encoding encoding)
{
    switch (encoding) {
    case BRIDGE_ENCODING_PROTOBUF: return "protobuf";
    case BRIDGE_ENCODING_MSGPACK: return "msgpack";
    case BRIDGE_ENCODING_JSON: return "JSON";
    case BRIDGE_ENCODING_RAW: return "RAW";
    }
    return "unknown";
}

void bridge__job_run(bridge_ctx *ctx, const bridge_method *method, const uint8_t *payload,
                     size_t size, size_t max_request_bytes)
{
    char err[256] = "";
    ProtobufCMessage *envelope = NULL;
    ProtobufCMessage *request = NULL;
    bool borrowed = false;
    ctx->method = method;
    ctx->encoding = BRIDGE_ENCODING_PROTOBUF;
    ctx->attempt = bridge__new_attempt_id();
    if (method != NULL)
        ctx->type_tag = (uint32_t)crc32(0L, (const Bytef *)method->output->name,
                                        (uInt)strlen(method->output->name));
    if (method != NULL && method->bare) { /* section 8.4: no envelope, the schema's encoding */
        ctx->bare = true;
        ctx->encoding = method->encoding;
    }

    if (ctx->bare && ctx->verifier != NULL) { /* section 9: a bare job has no signature */
        refuse(ctx, "bare jobs cannot be signed", NULL);
        goto done;
    }
    /* 1. oversized */
    if (size > max_request_bytes) {
        finish_errorf(ctx, BRIDGE_RESOURCE_EXHAUSTED,
                      "request of %zu bytes exceeds this worker's limit of %zu bytes", size,
                      max_request_bytes);
        goto done;
    }
    if (ctx->bare) {
        /* the whole payload is the request; then steps 7 and 8 as for any job */
        /* bare MSGPACK refuses keys its type does not have (section 8.1), unlike section 5 */
        bridge_status st = ctx->encoding == BRIDGE_ENCODING_MSGPACK
            ? bridge__msgpack_decode_as(method->input, payload ? payload : (const uint8_t *)"", size,
                                        true, &request, err, sizeof err)
            : bridge_decode(method->input, ctx->encoding, payload, size, &request, err, sizeof err);
        if (st != BRIDGE_STATUS_OK) {
            finish_errorf(ctx, BRIDGE_INVALID_ARGUMENT, "malformed %s request for %s: %s",
                          encoding_name(ctx->encoding), method->function_name, err);
            goto done;
        }
        run_handler(ctx, method, request, size);
        goto done;
    }
    /* 2. the envelope */
    ProtobufCBinaryData body;
    if (bridge__decode_envelope(payload, size, &envelope, &body, err, sizeof err) != BRIDGE_STATUS_OK) {
        finish_errorf(ctx, BRIDGE_INVALID_ARGUMENT,
                      "the job is not a bridge envelope (bridge.v1.Request): %s; a caller that "
                      "sends bare payloads needs the method declared `bare: true` (wire contract, "
                      "section 8)", err);
        goto done;
    }
    ctx->request = (Bridge__V1__Request *)envelope;
    read_trace_context(ctx);
    /* The body is borrowed from the payload (detached again before the free), unless the scan
     * stopped early and protobuf-c found a later one, which wins and is the envelope's own. */
    borrowed = ctx->request->body.data == NULL;
    if (borrowed)
        ctx->request->body = body;
    /* 3. version */
    if (ctx->request->version != 1) {
        finish_errorf(ctx, BRIDGE_FAILED_PRECONDITION,
                      "unsupported envelope version %u (this worker speaks version 1)",
                      ctx->request->version);
        goto done;
    }
    /* the signed-job checks (section 9.2), after steps 1-3 */
    if (ctx->verifier != NULL) {
        const bridge_key *key = bridge__reply_key(ctx->verifier, ctx->request);
        if (key != NULL) { /* its replies are signed (9.3), a refusal included */
            ctx->reply_key = key;
            ctx->reply_key_id = key->id;
            ctx->reply_nonce = ctx->request->nonce.data;
        }
        const char *failure = bridge__verify_job(ctx->verifier, ctx->function_name, ctx->request,
                                                 bridge__now_ms());
        if (failure != NULL) {
            refuse(ctx, failure, ctx->request->key_id);
            goto done;
        }
    }
    /* 4. encoding */
    switch ((int)ctx->request->encoding) {
    case BRIDGE__V1__ENCODING__ENCODING_UNSPECIFIED:
    case BRIDGE__V1__ENCODING__PROTOBUF:
        ctx->encoding = BRIDGE_ENCODING_PROTOBUF;
        break;
    case BRIDGE__V1__ENCODING__MSGPACK:
        ctx->encoding = BRIDGE_ENCODING_MSGPACK;
        break;
    default:
        finish_errorf(ctx, BRIDGE_INVALID_ARGUMENT, "unknown encoding %d",
                      (int)ctx->request->encoding);
        goto done;
    }
    /* 5. deadline */
    ctx->deadline_ms = ctx->request->deadline_ms;
    if (ctx->deadline_ms != 0 && bridge__now_ms() >= ctx->deadline_ms) {
        finish_errorf(ctx, BRIDGE_DEADLINE_EXCEEDED,
                      "deadline passed %lld ms before the job started",
                      (long long)(bridge__now_ms() - ctx->deadline_ms));
        goto done;
    }
    if (method == NULL) {
        finish_errorf(ctx, BRIDGE_UNIMPLEMENTED, "no method is registered as %s",
                      ctx->function_name);
        goto done;
    }
    /* 6. the body */
    if (bridge_decode(method->input, ctx->encoding, ctx->request->body.data, ctx->request->body.len,
                      &request, err, sizeof err) != BRIDGE_STATUS_OK) {
        finish_errorf(ctx, BRIDGE_INVALID_ARGUMENT, "malformed %s request body: %s",
                      encoding_name(ctx->encoding), err);
        goto done;
    }
    /* 7 and 8 */
    run_handler(ctx, method, request, ctx->request->body.len);

done:
    log_job(ctx, size);
    bridge_message_free(request);
    if (envelope != NULL && borrowed) {
        ((Bridge__V1__Request *)envelope)->body.data = NULL;
        ((Bridge__V1__Request *)envelope)->body.len = 0;
    }
    bridge_message_free(envelope);
    ctx->request = NULL;
    arena_free(ctx);
    free(ctx->error_message);
    ctx->error_message = NULL;
    while (ctx->details) {
        detail *next = ctx->details->next;
        free(ctx->details->key);
        free(ctx->details->value);
        free(ctx->details);
        ctx->details = next;
    }
}
