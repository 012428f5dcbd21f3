/*
 * What a job sends before its final answer, and reply frames (wire contract, section 3): every
 * WORK_DATA and WORK_COMPLETE of a job starts with a 23-byte header naming the frame's kind, the
 * encoding, the reply type (CRC-32 of its full name), this run's attempt id and the item sequence.
 */
#define _GNU_SOURCE
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "job.h"

bridge_status bridge__sink_send(bridge_ctx *ctx, bridge_packet kind, const void *data, size_t size,
                                uint32_t num, uint32_t den)
{
    if (ctx->finished)
        return BRIDGE_STATUS_ALREADY_FINISHED;
    if (ctx->sink.send == NULL)
        return BRIDGE_STATUS_OK;
    int packet = kind == BRIDGE_PACKET_DATA ? 1 : kind == BRIDGE_PACKET_COMPLETE ? 2
               : kind == BRIDGE_PACKET_EXCEPTION ? 3 : 0;
    if (ctx->reply_key != NULL && packet != 0) {
        /* A signed job's reply: payload || HMAC-SHA256(key, reply input) (section 9.3). */
        bridge_buffer signed_payload = BRIDGE_BUFFER_INIT;
        uint8_t *mac = NULL;
        bridge_status st = bridge__buffer_reserve(&signed_payload, size + BRIDGE_MAC_SIZE);
        if (st == BRIDGE_STATUS_OK) {
            if (size > 0)
                memcpy(signed_payload.data, data, size);
            mac = signed_payload.data + size;
            signed_payload.len = size + BRIDGE_MAC_SIZE;
            st = bridge__reply_mac(ctx->reply_key->bytes, ctx->reply_key->size, ctx->function_name,
                                   ctx->reply_key_id, ctx->reply_nonce, BRIDGE_NONCE_SIZE, packet,
                                   data, size, mac);
        }
        int rc = st == BRIDGE_STATUS_OK
            ? ctx->sink.send(ctx->sink.state, kind, signed_payload.data, signed_payload.len, num, den)
            : -1;
        bridge_buffer_free(&signed_payload);
        if (rc != 0) {
            ctx->io_failed = true;
            return BRIDGE_STATUS_IO;
        }
        return BRIDGE_STATUS_OK;
    }
    if (ctx->sink.send(ctx->sink.state, kind, data, size, num, den) != 0) {
        ctx->io_failed = true;
        return BRIDGE_STATUS_IO;
    }
    return BRIDGE_STATUS_OK;
}

/*
 * Reply frames (wire contract, section 3): every WORK_DATA and WORK_COMPLETE of the job starts with
 * a 23-byte header naming the frame's kind, the encoding, the reply type (CRC-32 of its full name),
 * this run's attempt id and the item sequence. Buffers that will hold a frame start with
 * BRIDGE_FRAME_HEADER reserved bytes, filled in here just before the send.
 */
static void put_be(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static void frame_header(const bridge_ctx *ctx, uint8_t *h, int kind, uint64_t sequence)
{
    h[0] = BRIDGE_FRAME_MAGIC;
    h[1] = (uint8_t)kind;
    h[2] = (uint8_t)ctx->encoding;
    put_be(h + 3, ctx->type_tag, 4);
    put_be(h + 7, ctx->attempt, 8);
    put_be(h + 15, sequence, 8);
}

bridge_status bridge__send_frame(bridge_ctx *ctx, bridge_packet packet, int kind, uint64_t sequence,
                                 uint8_t *frame, size_t size)
{
    frame_header(ctx, frame, kind, sequence);
    bridge_status st = bridge__sink_send(ctx, packet, frame, size, 0, 0);
    if (st == BRIDGE_STATUS_OK && packet == BRIDGE_PACKET_DATA)
        ctx->sent_data = true;
    return st;
}

/* Before a run's first WORK_STATUS / WORK_WARNING: one attempt marker, unless data went first. */
static bridge_status send_marker(bridge_ctx *ctx)
{
    if (ctx->sent_data || ctx->finished || ctx->bare)
        return BRIDGE_STATUS_OK; /* a bare job has no attempt markers (section 8.4) */
    uint8_t frame[BRIDGE_FRAME_HEADER];
    return bridge__send_frame(ctx, BRIDGE_PACKET_DATA, BRIDGE_FRAME_MARKER, 0, frame, sizeof frame);
}

bridge_status bridge_ctx_send_progress(bridge_ctx *ctx, uint32_t numerator, uint32_t denominator)
{
    bridge_status st = send_marker(ctx);
    return st ? st : bridge__sink_send(ctx, BRIDGE_PACKET_STATUS, NULL, 0, numerator, denominator);
}

bridge_status bridge_ctx_send_warning(bridge_ctx *ctx, const char *text)
{
    if (text == NULL)
        return BRIDGE_STATUS_INVALID;
    bridge_status st = send_marker(ctx);
    return st ? st : bridge__sink_send(ctx, BRIDGE_PACKET_WARNING, text, strlen(text), 0, 0);
}

/* The next stream item, already encoded, after BRIDGE_FRAME_HEADER bytes of `frame`. */
static bridge_status send_item(bridge_ctx *ctx, uint8_t *frame, size_t size)
{
    if (ctx->method == NULL || !ctx->method->server_streaming)
        return BRIDGE_STATUS_INVALID; /* a unary call's only reply is the handler's */
    bridge_status st = bridge__send_frame(ctx, BRIDGE_PACKET_DATA, BRIDGE_FRAME_ITEM, ctx->items_sent, frame, size);
    if (st == BRIDGE_STATUS_OK)
        ctx->items_sent++;
    return st;
}

bridge_status bridge_ctx_send_data(bridge_ctx *ctx, const void *data, size_t size)
{
    if (data == NULL && size > 0)
        return BRIDGE_STATUS_INVALID;
    if (ctx->finished)
        return BRIDGE_STATUS_ALREADY_FINISHED;
    bridge_buffer buf = BRIDGE_BUFFER_INIT;
    bridge_status st = bridge__buffer_reserve(&buf, BRIDGE_FRAME_HEADER + size);
    if (st == BRIDGE_STATUS_OK) {
        memset(buf.data, 0, BRIDGE_FRAME_HEADER);
        if (size > 0)
            memcpy(buf.data + BRIDGE_FRAME_HEADER, data, size);
        st = send_item(ctx, buf.data, BRIDGE_FRAME_HEADER + size);
    }
    bridge_buffer_free(&buf);
    return st;
}

bridge_status bridge_ctx_send(bridge_ctx *ctx, const ProtobufCMessage *item)
{
    if (item == NULL || ctx->method == NULL || item->descriptor != ctx->method->output)
        return BRIDGE_STATUS_INVALID;
    if (ctx->finished)
        return BRIDGE_STATUS_ALREADY_FINISHED;
    static const uint8_t header[BRIDGE_FRAME_HEADER];
    bridge_buffer buf = BRIDGE_BUFFER_INIT;
    char err[256];
    bridge_status st = bridge__buffer_append(&buf, header, sizeof header);
    if (st == BRIDGE_STATUS_OK)
        st = bridge_encode(item, ctx->encoding, &buf, err, sizeof err);
    if (st == BRIDGE_STATUS_OK)
        st = send_item(ctx, buf.data, buf.len);
    else if (ctx->error_code == BRIDGE_OK)
        bridge_ctx_set_error(ctx, BRIDGE_INTERNAL, "streamed item cannot be encoded: %s", err);
    bridge_buffer_free(&buf);
    return st;
}

/* A random attempt id for this run of the job: never 0 (wire contract, section 3). */
uint64_t bridge__new_attempt_id(void)
{
    uint64_t id = 0;
    while (id == 0) {
        if (getrandom(&id, sizeof id, 0) != (ssize_t)sizeof id) {
            /* getrandom cannot fail for 8 bytes once the pool is up; be safe anyway. */
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            static _Atomic uint64_t counter;
            id = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ (uint64_t)getpid() << 40 ^
                 ++counter * 0x9e3779b97f4a7c15ull;
        }
    }
    return id;
}


/*
 * A bare method's error (wire contract, section 8.3), for peers that cannot read a bridge.v1.Error:
 * JSON methods get {"code": N, "status": "NAME", "message": "..."}, the others the message alone.
 */
bridge_status bridge__bare_error_payload(bridge_encoding encoding, bridge_code code,
                                         const char *message, bridge_buffer *out)
{
    if (message == NULL)
        message = "";
    /* The text must be UTF-8 (a reason may quote a cut-off piece of the input): a byte that does
     * not start a valid sequence becomes U+FFFD. */
    bridge_buffer clean = BRIDGE_BUFFER_INIT;
    size_t n = strlen(message);
    bridge_status st = bridge__buffer_reserve(&clean, n + 1);
    for (size_t i = 0; i < n && st == BRIDGE_STATUS_OK;) {
        uint8_t c = (uint8_t)message[i];
        size_t len = c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
        if (len <= n - i && bridge__utf8_valid((const uint8_t *)message + i, len)) {
            st = bridge__buffer_append(&clean, message + i, len);
            i += len;
        } else {
            st = bridge__buffer_append(&clean, "\xef\xbf\xbd", 3);
            i++;
        }
    }
    if (st == BRIDGE_STATUS_OK)
        st = bridge__buffer_append(&clean, "", 1); /* NUL-terminated for jansson */
    if (st != BRIDGE_STATUS_OK) {
        bridge_buffer_free(&clean);
        return st;
    }
    const char *text = (const char *)clean.data;
    if (encoding != BRIDGE_ENCODING_JSON) {
        st = bridge__buffer_append(out, text, clean.len - 1);
        bridge_buffer_free(&clean);
        return st;
    }
    json_t *obj = json_pack("{s:i,s:s,s:s}", "code", (int)code, "status", bridge_code_name(code),
                            "message", text);
    bridge_buffer_free(&clean);
    char *dumped = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (dumped == NULL)
        return BRIDGE_STATUS_NO_MEMORY;
    st = bridge__buffer_append(out, dumped, strlen(dumped));
    free(dumped);
    return st;
}
