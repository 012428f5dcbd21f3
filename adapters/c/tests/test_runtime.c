/*
 * libbridge's own tests: the codecs against every shared vector, and the job flow (envelope and
 * error paths) through bridge_worker_process(), without a job server.
 * Prints one line per failure and "N passed, M failed"; exits non-zero on any failure.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bridge/bridge.h"
#include "bridge/v1/envelope.pb-c.h"
#include "interop/v1/bridge_interop_v1_interop.h"
#include "vectors_table.h"
#include "check.h"
#include <zlib.h>

static int passed, failed;

void run(const char *name, int (*fn)(void))
{
    if (fn() == 0) {
        passed++;
    } else {
        failed++;
        printf("  in %s\n", name);
    }
}

static const ProtobufCMessageDescriptor *descriptor_for(const char *type)
{
    static const ProtobufCMessageDescriptor *const all[] = {
        &bridge__interop__v1__scalars__descriptor, &bridge__interop__v1__composite__descriptor,
        &bridge__interop__v1__blob__descriptor, &bridge__interop__v1__empty__descriptor,
        &bridge__interop__v1__who_am_ireply__descriptor, &bridge__interop__v1__inner__descriptor,
        &bridge__interop__v1__stream_item__descriptor, &bridge__v1__request__descriptor,
        &bridge__v1__error__descriptor};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (strcmp(all[i]->name, type) == 0)
            return all[i];
    return NULL;
}

/* memcmp that accepts NULL for empty buffers */
static int same_bytes(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

static char *hex(const uint8_t *p, size_t n)
{
    static char buf[2][4096];
    static int which;
    char *out = buf[which ^= 1];
    size_t k = 0;
    for (size_t i = 0; i < n && k + 3 < sizeof buf[0]; i++)
        k += (size_t)snprintf(out + k, 4, "%02x", p[i]);
    out[k] = '\0';
    return out;
}

/* ------------------------------------------------------------------ vectors */

static const test_vector *current;

static int vector_case(void)
{
    const test_vector *v = current;
    const ProtobufCMessageDescriptor *desc = descriptor_for(v->type);
    CHECK(desc != NULL, "%s: no descriptor for %s", v->name, v->type);
    char err[256] = "";
    ProtobufCMessage *msg = NULL;
    if (strcmp(v->name, "string_with_nul") == 0) {
        /* Known limitation: protobuf-c strings are NUL-terminated, so the C runtime refuses a
         * string holding U+0000 with a decode error (INVALID_ARGUMENT) in both encodings rather
         * than cutting it short. */
        CHECK(bridge_decode(desc, BRIDGE_ENCODING_MSGPACK, v->msgpack, v->msgpack_len, &msg, err,
                            sizeof err) == BRIDGE_STATUS_DECODE_ERROR, "msgpack must refuse");
        CHECK(bridge_decode(desc, BRIDGE_ENCODING_PROTOBUF, v->protobuf, v->protobuf_len, &msg, err,
                            sizeof err) == BRIDGE_STATUS_DECODE_ERROR, "protobuf must refuse");
        printf("note: %s refused by design (protobuf-c strings cannot hold NUL)\n", v->name);
        return 0;
    }
    if (v->invalid) {
        bridge_encoding enc = v->msgpack ? BRIDGE_ENCODING_MSGPACK : BRIDGE_ENCODING_PROTOBUF;
        const uint8_t *data = v->msgpack ? v->msgpack : v->protobuf;
        size_t len = v->msgpack ? v->msgpack_len : v->protobuf_len;
        bridge_status st = bridge_decode(desc, enc, data, len, &msg, err, sizeof err);
        CHECK(st == BRIDGE_STATUS_DECODE_ERROR, "%s: decoding must fail, got %d", v->name, st);
        CHECK(msg == NULL && err[0] != '\0', "%s: no message and a reason expected", v->name);
        return 0;
    }
    if (v->decode_only) {
        /* Bytes no encoder writes: they must decode to the message whose canonical msgpack is
         * expect_msgpack (gen_vectors.py made it from the case's json). */
        bridge_encoding enc = v->msgpack ? BRIDGE_ENCODING_MSGPACK : BRIDGE_ENCODING_PROTOBUF;
        const uint8_t *data = v->msgpack ? v->msgpack : v->protobuf;
        size_t len = v->msgpack ? v->msgpack_len : v->protobuf_len;
        bridge_status st = bridge_decode(desc, enc, data, len, &msg, err, sizeof err);
        CHECK(st == BRIDGE_STATUS_OK, "%s: decoding failed: %s", v->name, err);
        bridge_buffer out = BRIDGE_BUFFER_INIT;
        st = bridge_encode(msg, BRIDGE_ENCODING_MSGPACK, &out, err, sizeof err);
        bridge_message_free(msg);
        int same = st == 0 && same_bytes(out.data, out.len, v->expect_msgpack, v->expect_msgpack_len);
        if (!same)
            printf("  want %s\n  got  %s\n", hex(v->expect_msgpack, v->expect_msgpack_len),
                   hex(out.data, out.len));
        bridge_buffer_free(&out);
        CHECK(same, "%s: decodes to another message", v->name);
        return 0;
    }
    /* msgpack: decode, re-encode byte for byte */
    bridge_status st = bridge_decode(desc, BRIDGE_ENCODING_MSGPACK, v->msgpack, v->msgpack_len, &msg,
                                     err, sizeof err);
    CHECK(st == BRIDGE_STATUS_OK, "%s: msgpack decode failed: %s", v->name, err);
    bridge_buffer out = BRIDGE_BUFFER_INIT;
    st = bridge_encode(msg, BRIDGE_ENCODING_MSGPACK, &out, err, sizeof err);
    int same = st == 0 && same_bytes(out.data, out.len, v->msgpack, v->msgpack_len);
    if (!same)
        printf("  want %s\n  got  %s\n", hex(v->msgpack, v->msgpack_len), hex(out.data, out.len));
    bridge_buffer_free(&out);
    if (!same) {
        bridge_message_free(msg);
        CHECK(0, "%s: msgpack re-encoding differs", v->name);
    }
    /* protobuf encoding of the same message: canonical bytes, or at least a faithful round trip */
    st = bridge_encode(msg, BRIDGE_ENCODING_PROTOBUF, &out, err, sizeof err);
    bridge_message_free(msg);
    CHECK(st == BRIDGE_STATUS_OK, "%s: protobuf encode failed: %s", v->name, err);
    if (v->canonical_protobuf) {
        same = same_bytes(out.data, out.len, v->protobuf, v->protobuf_len);
        if (!same)
            printf("  want %s\n  got  %s\n", hex(v->protobuf, v->protobuf_len), hex(out.data, out.len));
        if (!same)
            bridge_buffer_free(&out);
        CHECK(same, "%s: canonical protobuf differs", v->name);
    }
    /* protobuf_hex (and our own protobuf) must decode to the message msgpack_hex describes */
    const uint8_t *inputs[2] = {v->protobuf, out.data};
    size_t lens[2] = {v->protobuf_len, out.len};
    for (int k = 0; k < 2; k++) {
        msg = NULL;
        st = bridge_decode(desc, BRIDGE_ENCODING_PROTOBUF, inputs[k], lens[k], &msg, err, sizeof err);
        if (st != BRIDGE_STATUS_OK)
            bridge_buffer_free(&out);
        CHECK(st == BRIDGE_STATUS_OK, "%s: protobuf decode (%s) failed: %s", v->name,
              k ? "ours" : "vector", err);
        bridge_buffer again = BRIDGE_BUFFER_INIT;
        st = bridge_encode(msg, BRIDGE_ENCODING_MSGPACK, &again, err, sizeof err);
        bridge_message_free(msg);
        same = st == 0 && same_bytes(again.data, again.len, v->msgpack, v->msgpack_len);
        if (!same)
            printf("  want %s\n  got  %s\n", hex(v->msgpack, v->msgpack_len), hex(again.data, again.len));
        bridge_buffer_free(&again);
        if (!same)
            bridge_buffer_free(&out);
        CHECK(same, "%s: protobuf (%s) does not decode to the vector's message", v->name,
              k ? "ours" : "vector");
    }
    bridge_buffer_free(&out);
    return 0;
}

/* ------------------------------------------------------------------ codec edge cases */

static int test_empty_payload_is_empty_message(void)
{
    ProtobufCMessage *msg = NULL;
    CHECK(bridge_decode(&bridge__interop__v1__scalars__descriptor, BRIDGE_ENCODING_MSGPACK, NULL, 0,
                        &msg, NULL, 0) == BRIDGE_STATUS_OK, "empty msgpack must decode");
    bridge_buffer out = BRIDGE_BUFFER_INIT;
    CHECK(bridge_encode(msg, BRIDGE_ENCODING_MSGPACK, &out, NULL, 0) == 0, "encode");
    bridge_message_free(msg);
    int ok = out.len == 1 && out.data[0] == 0x80;
    bridge_buffer_free(&out);
    CHECK(ok, "the empty message encodes as 0x80");
    return 0;
}

static int test_deep_nesting_is_rejected(void)
{
    /* Composite.child nested 200 deep, in both encodings: a decode error, not a crash. */
    enum { DEPTH = 200 };
    uint8_t mp[DEPTH * 7 + 1];
    size_t n = 0;
    for (int i = 0; i < DEPTH; i++) {
        memcpy(mp + n, "\x81\xa5" "child", 7);
        n += 7;
    }
    mp[n++] = 0x80;
    ProtobufCMessage *msg = NULL;
    char err[256];
    CHECK(bridge_decode(&bridge__interop__v1__composite__descriptor, BRIDGE_ENCODING_MSGPACK, mp, n,
                        &msg, err, sizeof err) == BRIDGE_STATUS_DECODE_ERROR, "msgpack depth");
    uint8_t pb[DEPTH * 2];
    /* field 13 (child), length-delimited: tag 0x6a; lengths nested from the inside out */
    size_t len = 0;
    uint8_t tmp[DEPTH * 4];
    for (int i = 0; i < DEPTH && len + 3 < sizeof tmp; i++) {
        memmove(tmp + 2, tmp, len);
        tmp[0] = 0x6a;
        tmp[1] = (uint8_t)(len < 128 ? len : 0); /* keep it short: lengths < 128 only */
        len += 2;
        if (len >= 126)
            break;
    }
    (void)pb;
    CHECK(bridge_decode(&bridge__interop__v1__composite__descriptor, BRIDGE_ENCODING_PROTOBUF, tmp,
                        len, &msg, err, sizeof err) == BRIDGE_STATUS_OK, "shallow protobuf: %s", err);
    bridge_message_free(msg);
    /* a really deep one: 300 levels with 2-byte varint lengths */
    size_t cap = 300 * 4, plen = 0;
    uint8_t *deep = malloc(cap);
    CHECK(deep != NULL, "malloc");
    for (int i = 0; i < 300; i++) {
        uint8_t head[4];
        size_t h = 0;
        head[h++] = 0x6a;
        size_t l = plen;
        do {
            head[h] = (uint8_t)(l & 0x7f);
            l >>= 7;
            if (l)
                head[h] |= 0x80;
            h++;
        } while (l);
        memmove(deep + h, deep, plen);
        memcpy(deep, head, h);
        plen += h;
    }
    msg = NULL;
    bridge_status st = bridge_decode(&bridge__interop__v1__composite__descriptor,
                                     BRIDGE_ENCODING_PROTOBUF, deep, plen, &msg, err, sizeof err);
    free(deep);
    bridge_message_free(msg);
    CHECK(st == BRIDGE_STATUS_DECODE_ERROR, "protobuf depth 300 must be rejected");
    return 0;
}

/* Decodes protobuf `in` and `want` as Composite; both must succeed and be the same message. */
static int same_message(const char *what, const uint8_t *in, size_t in_len, const uint8_t *want,
                        size_t want_len)
{
    const ProtobufCMessageDescriptor *d = &bridge__interop__v1__composite__descriptor;
    ProtobufCMessage *a = NULL, *b = NULL;
    char err[256] = "";
    bridge_buffer x = BRIDGE_BUFFER_INIT, y = BRIDGE_BUFFER_INIT;
    int ok = bridge_decode(d, BRIDGE_ENCODING_PROTOBUF, in, in_len, &a, err, sizeof err) == 0 &&
             bridge_decode(d, BRIDGE_ENCODING_PROTOBUF, want, want_len, &b, err, sizeof err) == 0 &&
             bridge_encode(a, BRIDGE_ENCODING_MSGPACK, &x, NULL, 0) == 0 &&
             bridge_encode(b, BRIDGE_ENCODING_MSGPACK, &y, NULL, 0) == 0 &&
             same_bytes(x.data, x.len, y.data, y.len);
    if (!ok)
        printf("  %s: %s\n  got  %s\n  want %s\n", what, err, hex(x.data, x.len), hex(y.data, y.len));
    bridge_message_free(a);
    bridge_message_free(b);
    bridge_buffer_free(&x);
    bridge_buffer_free(&y);
    return ok ? 0 : 1;
}

static bool pb_refused(const uint8_t *in, size_t len)
{
    ProtobufCMessage *m = NULL;
    char err[256] = "";
    bridge_status st = bridge_decode(&bridge__interop__v1__composite__descriptor,
                                     BRIDGE_ENCODING_PROTOBUF, in, len, &m, err, sizeof err);
    bridge_message_free(m);
    return st == BRIDGE_STATUS_DECODE_ERROR && m == NULL && err[0] != '\0';
}

#define BYTES(...) (const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__})

static int test_protobuf_wrong_wire_types_deep(void)
{
    int bad = 0;
    /* child{ inner: as a varint (dropped), inner{ name: as a varint (dropped), name "A" } } */
    bad |= same_message("nested", BYTES(0x6a, 0x09, 0x10, 0x07, 0x12, 0x05, 0x08, 0x05, 0x0a, 0x01, 0x41),
                        BYTES(0x6a, 0x05, 0x12, 0x03, 0x0a, 0x01, 0x41));
    /* a map entry holding anything but a fitting key and value is left out, as upb does: the
     * value as a varint, the key as a varint, an unknown field 3 (a deeper mismatch is not) */
    bad |= same_message("map value", BYTES(0x32, 0x05, 0x0a, 0x01, 0x6b, 0x10, 0x01,
                                           0x32, 0x05, 0x0a, 0x01, 0x6a, 0x12, 0x00),
                        BYTES(0x32, 0x05, 0x0a, 0x01, 0x6a, 0x12, 0x00));
    bad |= same_message("map key", BYTES(0x32, 0x07, 0x08, 0x01, 0x0a, 0x01, 0x6b, 0x12, 0x00),
                        (const uint8_t *)"", 0);
    bad |= same_message("map unknown", BYTES(0x32, 0x07, 0x0a, 0x01, 0x6b, 0x18, 0x01, 0x12, 0x00),
                        (const uint8_t *)"", 0);
    bad |= same_message("map deeper", BYTES(0x32, 0x07, 0x0a, 0x01, 0x6b, 0x12, 0x02, 0x08, 0x01),
                        BYTES(0x32, 0x05, 0x0a, 0x01, 0x6b, 0x12, 0x00));
    /* an unknown group, and a known field (numbers) sent as a group: skipped */
    bad |= same_message("groups", BYTES(0xa3, 0x01, 0x08, 0x01, 0xa3, 0x01, 0xa4, 0x01, 0xa4, 0x01,
                                        0x23, 0x08, 0x02, 0x24, 0x58, 0x05),
                        BYTES(0x58, 0x05));
    /* packed numbers, then unpacked, then a fixed32 where a varint is due (dropped) */
    bad |= same_message("packed", BYTES(0x22, 0x02, 0x01, 0x02, 0x20, 0x03, 0x25, 1, 0, 0, 0),
                        BYTES(0x22, 0x03, 0x01, 0x02, 0x03));
    CHECK(!bad, "see above");
    CHECK(pb_refused(BYTES(0x00, 0x01)), "field number 0");
    CHECK(pb_refused(BYTES(0xa3, 0x01, 0xac, 0x01)), "mismatched end of group");
    CHECK(pb_refused(BYTES(0xa3, 0x01, 0x08, 0x01)), "unterminated group");
    CHECK(pb_refused(BYTES(0xa4, 0x01)), "end of group without a start");
    CHECK(pb_refused(BYTES(0x10, 0x07, 0x0f)), "wire type 7");
    CHECK(pb_refused(BYTES(0x6a, 0x04, 0x10)), "length past the end");
    /* the depth limit holds after what protobuf-c refuses (a group), where the copy runs */
    for (size_t i = 0; i < test_vector_count; i++) {
        const test_vector *v = &test_vectors[i];
        bool deep = strcmp(v->name, "invalid_nesting_101_protobuf") == 0;
        if (!deep && strcmp(v->name, "nesting_100") != 0)
            continue;
        uint8_t *in = malloc(v->protobuf_len + 4);
        CHECK(in != NULL, "malloc");
        memcpy(in, "\xa3\x01\xa4\x01", 4);
        memcpy(in + 4, v->protobuf, v->protobuf_len);
        bool refused = pb_refused(in, v->protobuf_len + 4);
        int same = deep ? 0 : same_message(v->name, in, v->protobuf_len + 4, v->protobuf, v->protobuf_len);
        free(in);
        CHECK(refused == deep && same == 0, "%s after a group: refused %d", v->name, refused);
    }
    return 0;
}

static int test_huge_declared_lengths_are_rejected(void)
{
    /* array 32 / map 32 / str 32 claiming 4 G elements in a few bytes */
    static const uint8_t cases[][12] = {
        {0x81, 0xa7, 'n', 'u', 'm', 'b', 'e', 'r', 's', 0xdd, 0xff, 0xff},
        {0xdf, 0xff, 0xff, 0xff, 0xff, 0x00},
        {0x81, 0xa4, 't', 'e', 'x', 't', 0xdb, 0xff, 0xff, 0xff, 0xff, 0x00},
    };
    static const size_t lens[] = {12, 6, 12};
    for (size_t i = 0; i < 3; i++) {
        ProtobufCMessage *msg = NULL;
        CHECK(bridge_decode(&bridge__interop__v1__composite__descriptor, BRIDGE_ENCODING_MSGPACK,
                            cases[i], lens[i], &msg, NULL, 0) == BRIDGE_STATUS_DECODE_ERROR,
              "case %zu", i);
    }
    return 0;
}

static int test_invalid_utf8_reply_is_an_encode_error(void)
{
    Bridge__Interop__V1__Blob blob = BRIDGE__INTEROP__V1__BLOB__INIT;
    blob.text = "\xc3\x28";
    bridge_buffer out = BRIDGE_BUFFER_INIT;
    CHECK(bridge_encode(&blob.base, BRIDGE_ENCODING_MSGPACK, &out, NULL, 0) == BRIDGE_STATUS_ENCODE_ERROR, "msgpack");
    CHECK(bridge_encode(&blob.base, BRIDGE_ENCODING_PROTOBUF, &out, NULL, 0) == BRIDGE_STATUS_ENCODE_ERROR, "protobuf");
    bridge_buffer_free(&out);
    return 0;
}

/* ------------------------------------------------------------------ the job flow */

static int handler_calls;

static int t_echo(bridge_ctx *ctx, const Bridge__Interop__V1__Composite *req,
                  Bridge__Interop__V1__Composite *reply)
{
    (void)ctx;
    handler_calls++;
    *reply = *req;
    return 0;
}

static int t_raise(bridge_ctx *ctx, const Bridge__Interop__V1__RaiseRequest *req,
                   Bridge__Interop__V1__Empty *reply)
{
    (void)reply;
    handler_calls++;
    if (req->fail)
        return bridge_ctx_fail(ctx);
    if (req->native) {
        errno = ENOENT;
        return 7;
    }
    bridge_ctx_set_error_detail(ctx, "field", "name");
    return bridge_ctx_set_error(ctx, (bridge_code)req->code, "%s", req->message);
}

static int t_stream(bridge_ctx *ctx, const Bridge__Interop__V1__StreamRequest *req)
{
    handler_calls++;
    for (int32_t i = 0; i < req->count; i++) {
        Bridge__Interop__V1__StreamItem item = BRIDGE__INTEROP__V1__STREAM_ITEM__INIT;
        item.index = i;
        if (bridge_interop_v1_interop_stream_send(ctx, &item) != BRIDGE_STATUS_OK)
            return -1;
        /* progress after an item: no attempt marker (the item named the attempt) */
        bridge_ctx_send_progress(ctx, (uint32_t)i + 1, (uint32_t)req->count);
    }
    return 0;
}

static int t_progress(bridge_ctx *ctx, const Bridge__Interop__V1__ProgressRequest *req,
                      Bridge__Interop__V1__ProgressReply *reply)
{
    if (req->warning[0] != '\0')
        bridge_ctx_send_warning(ctx, req->warning);
    for (int32_t i = 1; i <= req->steps; i++)
        bridge_ctx_send_progress(ctx, (uint32_t)i, (uint32_t)req->steps);
    /* a unary rpc has no stream: raw data is refused */
    if (bridge_ctx_send_data(ctx, "x", 1) != BRIDGE_STATUS_INVALID)
        return bridge_ctx_set_error(ctx, BRIDGE_INTERNAL, "send_data on a unary rpc was accepted");
    reply->steps_done = req->steps;
    return 0;
}

static int t_who(bridge_ctx *ctx, const Bridge__Interop__V1__Empty *req,
                 Bridge__Interop__V1__WhoAmIReply *reply)
{
    (void)req;
    handler_calls++;
    reply->language = bridge_ctx_sprintf(ctx, "c:%s", bridge_ctx_metadata(ctx, "k") ? bridge_ctx_metadata(ctx, "k") : "-");
    reply->deadline_ms = bridge_ctx_deadline_ms(ctx);
    return 0;
}

static bridge_worker *test_worker(size_t max_request_bytes)
{
    bridge_worker_options o = bridge_worker_options_default();
    o.max_request_bytes = max_request_bytes;
    o.quiet = true;
    bridge_worker *w = bridge_worker_new(&o);
    static const bridge_interop_v1_interop_handlers h = {
        .echo = t_echo, .raise = t_raise, .stream = t_stream, .who_am_i = t_who,
        .progress = t_progress};
    if (w != NULL && bridge_interop_v1_interop_register(w, &h, NULL) != BRIDGE_STATUS_OK) {
        bridge_worker_free(w);
        return NULL;
    }
    return w;
}

/* Encodes a Request envelope around `body` (already encoded). */
static void make_request(bridge_buffer *out, uint32_t version, int encoding, int64_t deadline,
                         const uint8_t *body, size_t body_len, const char *meta_value)
{
    Bridge__V1__Request req = BRIDGE__V1__REQUEST__INIT;
    Bridge__V1__Request__MetadataEntry entry = BRIDGE__V1__REQUEST__METADATA_ENTRY__INIT;
    Bridge__V1__Request__MetadataEntry *entries[1] = {&entry};
    req.version = version;
    req.encoding = (Bridge__V1__Encoding)encoding;
    req.deadline_ms = deadline;
    req.body.data = (uint8_t *)body;
    req.body.len = body_len;
    if (meta_value) {
        entry.key = "k";
        entry.value = (char *)meta_value;
        req.n_metadata = 1;
        req.metadata = entries;
    }
    out->len = 0;
    bridge_encode(&req.base, BRIDGE_ENCODING_PROTOBUF, out, NULL, 0);
}

/* ------------------------------------------------------------------ reply frames */

typedef struct frame_info {
    int kind, encoding;
    uint32_t tag;
    uint64_t attempt, seq;
} frame_info;

static uint64_t be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* The header of a reply frame (wire contract, section 3); 0 when well-formed. */
static int parse_frame(const uint8_t *p, size_t n, frame_info *f)
{
    if (n < 23 || p[0] != 0xB7 || p[1] < 1 || p[1] > 4 || (p[2] != 1 && p[2] != 2))
        return -1;
    f->kind = p[1];
    f->encoding = p[2];
    f->tag = (uint32_t)be(p + 3, 4);
    f->attempt = be(p + 7, 8);
    f->seq = be(p + 15, 8);
    return f->attempt == 0 ? -1 : 0;
}

static frame_info last_reply;  /* the WORK_COMPLETE frame of the last process() */
static size_t last_markers;    /* attempt markers among its WORK_DATA */
static char frame_problem[200];

/*
 * Checks every frame of one job's packets (same attempt everywhere, items numbered 0, 1, ...,
 * the end frame counting them, markers only first) and strips the headers: `out` keeps the reply
 * body, `data` the items' bodies, each after its 4-byte length.
 */
static char check_frames(char kind, bridge_buffer *out, bridge_buffer *data)
{
    last_markers = 0;
    memset(&last_reply, 0, sizeof last_reply);
    if (kind != 'C')
        return kind;
#define BAD(...) (snprintf(frame_problem, sizeof frame_problem, __VA_ARGS__), '!')
    if (parse_frame(out->data, out->len, &last_reply) != 0)
        return BAD("WORK_COMPLETE is not a frame: %s", hex(out->data, out->len < 40 ? out->len : 40));
    memmove(out->data, out->data + 23, out->len - 23);
    out->len -= 23;
    if (data == NULL)
        return kind;
    uint64_t items = 0;
    size_t w = 0;
    for (size_t r = 0; r + 4 <= data->len;) {
        size_t n = (size_t)be(data->data + r, 4);
        frame_info f;
        if (parse_frame(data->data + r + 4, n, &f) != 0)
            return BAD("WORK_DATA %zu is not a frame", r);
        if (f.attempt != last_reply.attempt || f.encoding != last_reply.encoding ||
            f.tag != last_reply.tag)
            return BAD("WORK_DATA frame of another attempt, encoding or type");
        if (f.kind == 4) {
            if (items > 0 || f.seq != 0 || n != 23)
                return BAD("attempt marker after items, or with a body / sequence");
            last_markers++;
        } else if (f.kind != 2 || f.seq != items++) {
            return BAD("WORK_DATA: kind %d sequence %llu, expected item %llu", f.kind,
                       (unsigned long long)f.seq, (unsigned long long)items - 1);
        } else {
            uint8_t len[4] = {(uint8_t)((n - 23) >> 24), (uint8_t)((n - 23) >> 16),
                              (uint8_t)((n - 23) >> 8), (uint8_t)(n - 23)};
            memcpy(data->data + w, len, 4);
            memmove(data->data + w + 4, data->data + r + 4 + 23, n - 23);
            w += 4 + n - 23;
        }
        r += 4 + n;
    }
    data->len = w;
    if (items > 0 || last_reply.kind == 3) {
        if (last_reply.kind != 3 || last_reply.seq != items || out->len != 0)
            return BAD("stream end: kind %d count %llu after %llu items", last_reply.kind,
                       (unsigned long long)last_reply.seq, (unsigned long long)items);
    } else if (last_reply.kind != 1 || last_reply.seq != 0) {
        return BAD("unary reply: kind %d sequence %llu", last_reply.kind,
                   (unsigned long long)last_reply.seq);
    }
#undef BAD
    return kind;
}

/* Runs a payload; returns the kind and, for exceptions, the decoded Error (caller frees).
 * Replies come back without their frame header (checked, see check_frames); '!' = bad frames. */
static char process(bridge_worker *w, const char *fn, const bridge_buffer *payload,
                    bridge_buffer *out, bridge_buffer *data, Bridge__V1__Error **error)
{
    char kind = 0;
    bridge_buffer own = BRIDGE_BUFFER_INIT;
    out->len = 0;
    if (data == NULL)
        data = &own; /* frames are checked either way */
    data->len = 0;
    *error = NULL;
    bridge_worker_process(w, fn, payload->data, payload->len, &kind, out, data);
    kind = check_frames(kind, out, data);
    bridge_buffer_free(&own);
    if (kind == '!')
        printf("  bad frames from %s: %s\n", fn, frame_problem);
    if (kind == 'E') {
        ProtobufCMessage *m = NULL;
        if (bridge_decode(&bridge__v1__error__descriptor, BRIDGE_ENCODING_PROTOBUF, out->data,
                          out->len, &m, NULL, 0) == BRIDGE_STATUS_OK)
            *error = (Bridge__V1__Error *)m;
    }
    return kind;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int expect_error(bridge_worker *w, const char *fn, const bridge_buffer *payload,
                        bridge_code code, const char *needle)
{
    bridge_buffer out = BRIDGE_BUFFER_INIT;
    Bridge__V1__Error *e = NULL;
    char kind = process(w, fn, payload, &out, NULL, &e);
    bridge_buffer_free(&out);
    int ok = kind == 'E' && e != NULL && e->code == (Bridge__V1__Code)code &&
             strcmp(e->language, "c") == 0 && strcmp(e->type, "bridge_error") == 0 &&
             (needle == NULL || strstr(e->message, needle) != NULL);
    if (!ok)
        printf("  got kind %c code %d message '%s'\n", kind ? kind : '?', e ? (int)e->code : -1,
               e ? e->message : "");
    bridge_message_free(e ? &e->base : NULL);
    CHECK(ok, "%s: expected %s", fn, bridge_code_name(code));
    return 0;
}

#define ECHO BRIDGE_INTEROP_V1_INTEROP_ECHO_FUNCTION

static int test_flow_errors(void)
{
    bridge_worker *w = test_worker(1000);
    CHECK(w != NULL, "worker");
    bridge_buffer p = BRIDGE_BUFFER_INIT;
    int bad = 0;
    uint8_t big[2000] = {0};
    make_request(&p, 1, 1, 0, big, sizeof big, NULL);
    bad |= expect_error(w, ECHO, &p, BRIDGE_RESOURCE_EXHAUSTED, "exceeds");
    bridge_buffer junk = {(uint8_t *)"ValueError: boom", 16, 0};
    bad |= expect_error(w, ECHO, &junk, BRIDGE_INVALID_ARGUMENT, "envelope");
    make_request(&p, 2, 1, 0, NULL, 0, NULL);
    bad |= expect_error(w, ECHO, &p, BRIDGE_FAILED_PRECONDITION, "version 2");
    make_request(&p, 0, 1, 0, NULL, 0, NULL);
    bad |= expect_error(w, ECHO, &p, BRIDGE_FAILED_PRECONDITION, "version 0");
    make_request(&p, 1, 7, 0, NULL, 0, NULL);
    bad |= expect_error(w, ECHO, &p, BRIDGE_INVALID_ARGUMENT, "encoding 7");
    handler_calls = 0;
    make_request(&p, 1, 1, now_ms() - 5, NULL, 0, NULL);
    bad |= expect_error(w, ECHO, &p, BRIDGE_DEADLINE_EXCEEDED, "deadline");
    CHECK(handler_calls == 0, "the handler must not run past the deadline");
    make_request(&p, 1, 2, 0, (const uint8_t *)"\x91\x01", 2, NULL);
    bad |= expect_error(w, ECHO, &p, BRIDGE_INVALID_ARGUMENT, "msgpack");
    make_request(&p, 1, 1, 0, (const uint8_t *)"\x0f\x00", 2, NULL);
    bad |= expect_error(w, ECHO, &p, BRIDGE_INVALID_ARGUMENT, "protobuf");
    make_request(&p, 1, 1, 0, NULL, 0, NULL);
    bad |= expect_error(w, BRIDGE_INTEROP_V1_INTEROP_NOT_IMPLEMENTED_FUNCTION, &p, BRIDGE_UNIMPLEMENTED, "not implemented");
    bad |= expect_error(w, "no.such.Function", &p, BRIDGE_UNIMPLEMENTED, "no method");
    /* the shared invalid envelopes, and a key cut short after a valid envelope */
    for (size_t i = 0; i < test_vector_count; i++) {
        const test_vector *v = &test_vectors[i];
        if (!v->invalid || strcmp(v->type, "bridge.v1.Request") != 0)
            continue;
        bridge_buffer raw = {(uint8_t *)v->protobuf, v->protobuf_len, 0};
        bad |= expect_error(w, ECHO, &raw, BRIDGE_INVALID_ARGUMENT, "envelope");
    }
    bridge_buffer cut = {(uint8_t *)"\x08\x01\x2a\x01\x80\x80", 6, 0};
    bad |= expect_error(w, ECHO, &cut, BRIDGE_INVALID_ARGUMENT, "envelope");
    bridge_buffer_free(&p);
    bridge_worker_free(w);
    CHECK(!bad, "see above");
    return 0;
}

static int test_flow_last_body_wins(void)
{
    /* version 1, MSGPACK, body [1] (not a message), body {} : protobuf keeps the last one */
    static const uint8_t payload[] = {0x08, 0x01, 0x20, 0x02, 0x2a, 0x02, 0x91, 0x01, 0x2a, 0x01, 0x80};
    bridge_worker *w = test_worker(0);
    CHECK(w != NULL, "worker");
    bridge_buffer p = {(uint8_t *)payload, sizeof payload, 0}, out = BRIDGE_BUFFER_INIT;
    Bridge__V1__Error *e = NULL;
    char kind = process(w, ECHO, &p, &out, NULL, &e);
    int ok = kind == 'C' && out.len == 1 && out.data[0] == 0x80;
    bridge_message_free(e ? &e->base : NULL);
    bridge_buffer_free(&out);
    bridge_worker_free(w);
    CHECK(ok, "the last body must be used (got %c)", kind);
    return 0;
}

static int test_flow_handler_errors(void)
{
    bridge_worker *w = test_worker(0);
    CHECK(w != NULL, "worker");
    bridge_buffer body = BRIDGE_BUFFER_INIT, p = BRIDGE_BUFFER_INIT, out = BRIDGE_BUFFER_INIT;
    Bridge__Interop__V1__RaiseRequest r = BRIDGE__INTEROP__V1__RAISE_REQUEST__INIT;
    r.code = BRIDGE_NOT_FOUND;
    r.message = "no such user: 42 \xe2\x9c\x97";
    bridge_encode(&r.base, BRIDGE_ENCODING_MSGPACK, &body, NULL, 0);
    make_request(&p, 1, 2, 0, body.data, body.len, NULL);
    Bridge__V1__Error *e = NULL;
    char kind = process(w, BRIDGE_INTEROP_V1_INTEROP_RAISE_FUNCTION, &p, &out, NULL, &e);
    int ok = kind == 'E' && e && e->code == 5 && strcmp(e->message, r.message) == 0 &&
             e->n_details == 1 && strcmp(e->details[0]->key, "field") == 0;
    bridge_message_free(e ? &e->base : NULL);
    CHECK(ok, "set_error: code, message and details must travel");

    /* a code that is not canonical fails with UNKNOWN, message kept */
    r.code = 99;
    body.len = 0;
    bridge_encode(&r.base, BRIDGE_ENCODING_PROTOBUF, &body, NULL, 0);
    make_request(&p, 1, 1, 0, body.data, body.len, NULL);
    int bad = expect_error(w, BRIDGE_INTEROP_V1_INTEROP_RAISE_FUNCTION, &p, BRIDGE_UNKNOWN, "no such user");

    r.native = 1;
    body.len = 0;
    bridge_encode(&r.base, BRIDGE_ENCODING_PROTOBUF, &body, NULL, 0);
    make_request(&p, 1, 1, 0, body.data, body.len, NULL);
    bad |= expect_error(w, BRIDGE_INTEROP_V1_INTEROP_RAISE_FUNCTION, &p, BRIDGE_UNKNOWN, "returned 7): No such file or directory");

    r.fail = 1;
    body.len = 0;
    bridge_encode(&r.base, BRIDGE_ENCODING_PROTOBUF, &body, NULL, 0);
    make_request(&p, 1, 1, 0, body.data, body.len, NULL);
    kind = process(w, BRIDGE_INTEROP_V1_INTEROP_RAISE_FUNCTION, &p, &out, NULL, &e);
    CHECK(kind == 'F' && out.len == 0, "fail -> WORK_FAIL, got %c", kind);
    bridge_buffer_free(&body);
    bridge_buffer_free(&p);
    bridge_buffer_free(&out);
    bridge_worker_free(w);
    CHECK(!bad, "see above");
    return 0;
}

static int test_flow_success(void)
{
    bridge_worker *w = test_worker(0);
    CHECK(w != NULL, "worker");
    bridge_buffer p = BRIDGE_BUFFER_INIT, out = BRIDGE_BUFFER_INIT, data = BRIDGE_BUFFER_INIT;
    Bridge__V1__Error *e = NULL;
    /* echo every Composite vector in both encodings: the reply is the request, byte for byte */
    int echoed = 0;
    for (size_t i = 0; i < test_vector_count; i++) {
        const test_vector *v = &test_vectors[i];
        if (v->invalid || v->decode_only || strcmp(v->type, "bridge.interop.v1.Composite") != 0)
            continue;
        make_request(&p, 1, 2, 0, v->msgpack, v->msgpack_len, NULL);
        char kind = process(w, ECHO, &p, &out, NULL, &e);
        CHECK(kind == 'C' && same_bytes(out.data, out.len, v->msgpack, v->msgpack_len),
              "%s: msgpack echo differs", v->name);
        if (v->canonical_protobuf) {
            make_request(&p, 1, 0, 0, v->protobuf, v->protobuf_len, NULL);
            kind = process(w, ECHO, &p, &out, NULL, &e);
            CHECK(kind == 'C' && same_bytes(out.data, out.len, v->protobuf, v->protobuf_len),
                  "%s: protobuf echo differs", v->name);
        }
        echoed++;
    }
    CHECK(echoed > 5, "expected Composite vectors");

    /* streaming: three WORK_DATA items then an empty WORK_COMPLETE */
    Bridge__Interop__V1__StreamRequest sr = BRIDGE__INTEROP__V1__STREAM_REQUEST__INIT;
    sr.count = 3;
    bridge_buffer body = BRIDGE_BUFFER_INIT;
    bridge_encode(&sr.base, BRIDGE_ENCODING_MSGPACK, &body, NULL, 0);
    make_request(&p, 1, 2, 0, body.data, body.len, NULL);
    char kind = process(w, BRIDGE_INTEROP_V1_INTEROP_STREAM_FUNCTION, &p, &out, &data, &e);
    /* items: {} (index 0 unset), {"index":1}, {"index":2} each with a 4-byte length prefix */
    static const uint8_t want[] = {0, 0, 0, 1, 0x80, 0, 0, 0, 8, 0x81, 0xa5, 'i', 'n', 'd', 'e', 'x', 1,
                                   0, 0, 0, 8, 0x81, 0xa5, 'i', 'n', 'd', 'e', 'x', 2};
    CHECK(kind == 'C' && out.len == 0, "stream completes empty");
    CHECK(same_bytes(data.data, data.len, want, sizeof want), "stream items: %s",
          hex(data.data, data.len));

    /* metadata and deadline reach the handler */
    int64_t deadline = now_ms() + 60000;
    make_request(&p, 1, 2, deadline, NULL, 0, "v\xc3\xa9");
    kind = process(w, BRIDGE_INTEROP_V1_INTEROP_WHO_AM_I_FUNCTION, &p, &out, NULL, &e);
    CHECK(kind == 'C', "who am i");
    ProtobufCMessage *m = NULL;
    CHECK(bridge_decode(&bridge__interop__v1__who_am_ireply__descriptor, BRIDGE_ENCODING_MSGPACK,
                        out.data, out.len, &m, NULL, 0) == 0, "reply decodes");
    Bridge__Interop__V1__WhoAmIReply *who = (Bridge__Interop__V1__WhoAmIReply *)m;
    int ok = strcmp(who->language, "c:v\xc3\xa9") == 0 && who->deadline_ms == deadline;
    bridge_message_free(m);
    CHECK(ok, "metadata / deadline not seen by the handler");
    bridge_buffer_free(&body);
    bridge_buffer_free(&p);
    bridge_buffer_free(&out);
    bridge_buffer_free(&data);
    bridge_worker_free(w);
    return 0;
}

static int test_flow_frames(void)
{
    bridge_worker *w = test_worker(0);
    CHECK(w != NULL, "worker");
    bridge_buffer p = BRIDGE_BUFFER_INIT, out = BRIDGE_BUFFER_INIT, data = BRIDGE_BUFFER_INIT;
    Bridge__V1__Error *e = NULL;
    /* unary: kind 1, the request's encoding, CRC-32 of the reply type, a new attempt per run */
    make_request(&p, 1, 2, 0, (const uint8_t *)"\x80", 1, NULL);
    CHECK(process(w, ECHO, &p, &out, &data, &e) == 'C', "echo");
    frame_info first = last_reply;
    CHECK(first.kind == 1 && first.encoding == 2 && first.tag == 0x8dc965d8u && first.seq == 0,
          "unary frame: kind %d encoding %d tag %08x", first.kind, first.encoding, first.tag);
    CHECK(last_markers == 0 && data.len == 0, "no WORK_DATA for a quiet unary call");
    make_request(&p, 1, 0, 0, NULL, 0, NULL);
    CHECK(process(w, ECHO, &p, &out, &data, &e) == 'C', "echo again");
    CHECK(last_reply.encoding == 1 && last_reply.attempt != first.attempt,
          "protobuf reply, another attempt id");
    /* progress and warnings: one attempt marker first */
    bridge_buffer body = BRIDGE_BUFFER_INIT;
    Bridge__Interop__V1__ProgressRequest pr = BRIDGE__INTEROP__V1__PROGRESS_REQUEST__INIT;
    pr.steps = 3;
    pr.warning = "careful";
    bridge_encode(&pr.base, BRIDGE_ENCODING_PROTOBUF, &body, NULL, 0);
    make_request(&p, 1, 1, 0, body.data, body.len, NULL);
    char kind = process(w, BRIDGE_INTEROP_V1_INTEROP_PROGRESS_FUNCTION, &p, &out, &data, &e);
    bridge_message_free(e ? &e->base : NULL);
    CHECK(kind == 'C' && last_markers == 1 && last_reply.kind == 1, "progress: kind %c, %zu markers",
          kind, last_markers);
    /* a stream of zero items ends with count 0; progress after items needs no marker */
    Bridge__Interop__V1__StreamRequest sr = BRIDGE__INTEROP__V1__STREAM_REQUEST__INIT;
    for (sr.count = 0; sr.count <= 2; sr.count += 2) {
        body.len = 0;
        bridge_encode(&sr.base, BRIDGE_ENCODING_PROTOBUF, &body, NULL, 0);
        make_request(&p, 1, 1, 0, body.data, body.len, NULL);
        kind = process(w, BRIDGE_INTEROP_V1_INTEROP_STREAM_FUNCTION, &p, &out, &data, &e);
        CHECK(kind == 'C' && last_reply.kind == 3 && last_reply.seq == (uint64_t)sr.count &&
                  last_markers == 0 && last_reply.tag == crc32(0, (const Bytef *)"bridge.interop.v1.StreamItem", 28),
              "stream of %d: kind %c end %d count %llu", sr.count, kind, last_reply.kind,
              (unsigned long long)last_reply.seq);
    }
    bridge_buffer_free(&body);
    bridge_buffer_free(&p);
    bridge_buffer_free(&out);
    bridge_buffer_free(&data);
    bridge_worker_free(w);
    return 0;
}

int main(void)
{
    for (size_t i = 0; i < test_vector_count; i++) {
        current = &test_vectors[i];
        run(current->name, vector_case);
    }
    run("empty_payload", test_empty_payload_is_empty_message);
    run("deep_nesting", test_deep_nesting_is_rejected);
    run("huge_lengths", test_huge_declared_lengths_are_rejected);
    run("protobuf_wrong_wire_types_deep", test_protobuf_wrong_wire_types_deep);
    run("invalid_utf8_reply", test_invalid_utf8_reply_is_an_encode_error);
    run("flow_errors", test_flow_errors);
    run("flow_handler_errors", test_flow_handler_errors);
    run("flow_last_body_wins", test_flow_last_body_wins);
    run("flow_success", test_flow_success);
    run("flow_frames", test_flow_frames);
    observe_tests();
    conn_tests();
    bare_tests();
    signing_tests();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
