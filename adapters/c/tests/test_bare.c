/*
 * Bare methods (wire contract, section 8): the JSON codec against every case of
 * schemas/testdata/bare_json_vectors.json, RAW, and the bare job flow through
 * bridge_worker_process() (no envelope, no frames, no attempt markers, errors as section 8.3).
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "bare_vectors_table.h"
#include "bridge/bridge.h"
#include "bridge/v1/envelope.pb-c.h"
#include "check.h"
#include "interop/v1/bridge_interop_v1_bare.h"
#include "interop/v1/bridge_interop_v1_interop.h"
#include "internal.h"

static const ProtobufCMessageDescriptor *descriptor_for(const char *type)
{
    static const ProtobufCMessageDescriptor *const all[] = {
        &bridge__interop__v1__scalars__descriptor, &bridge__interop__v1__composite__descriptor,
        &bridge__interop__v1__blob__descriptor, &bridge__interop__v1__empty__descriptor,
        &bridge__interop__v1__who_am_ireply__descriptor, &bridge__interop__v1__inner__descriptor};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (strcmp(all[i]->name, type) == 0)
            return all[i];
    return NULL;
}

/* ------------------------------------------------------------------ JSON values compared */

/* Numbers by value (a float field's after rounding to float 32); objects ignoring key order. */
static bool same_json(const json_t *a, const json_t *b, char *where, size_t where_size)
{
    if (json_is_number(a) && json_is_number(b)) {
        if (json_is_integer(a) && json_is_integer(b))
            return json_integer_value(a) == json_integer_value(b) ||
                   (snprintf(where, where_size, "%lld != %lld", (long long)json_integer_value(a),
                             (long long)json_integer_value(b)), false);
        double x = json_number_value(a), y = json_number_value(b);
        return x == y || (float)x == (float)y ||
               (snprintf(where, where_size, "%.17g != %.17g", x, y), false);
    }
    if (json_typeof(a) != json_typeof(b))
        return snprintf(where, where_size, "JSON types %d != %d", json_typeof(a), json_typeof(b)), false;
    switch (json_typeof(a)) {
    case JSON_STRING:
        return (json_string_length(a) == json_string_length(b) &&
                memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0) ||
               (snprintf(where, where_size, "\"%s\" != \"%s\"", json_string_value(a) + !json_string_value(a)[0],
                         json_string_value(b) + !json_string_value(b)[0]), false);
    case JSON_ARRAY:
        if (json_array_size(a) != json_array_size(b))
            return snprintf(where, where_size, "arrays of %zu and %zu", json_array_size(a), json_array_size(b)), false;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!same_json(json_array_get(a, i), json_array_get(b, i), where, where_size))
                return false;
        return true;
    case JSON_OBJECT: {
        const char *key;
        json_t *value;
        json_object_foreach((json_t *)a, key, value) {
            const json_t *other = json_object_get(b, key);
            if (other == NULL)
                return snprintf(where, where_size, "key %s only in ours", key), false;
            if (!same_json(value, other, where, where_size)) {
                size_t n = strlen(where);
                snprintf(where + n, where_size - n, " (at %s)", key);
                return false;
            }
        }
        json_object_foreach((json_t *)b, key, value)
            if (json_object_get(a, key) == NULL)
                return snprintf(where, where_size, "key %s missing from ours", key), false;
        return true;
    }
    default:
        return true;
    }
}

/* ------------------------------------------------------------------ the vectors */

static const bare_json_vector *current;

static int bare_vector_case(void)
{
    const bare_json_vector *v = current;
    const ProtobufCMessageDescriptor *desc = descriptor_for(v->type);
    CHECK(desc != NULL, "%s: unknown type %s", v->name, v->type);
    char err[256] = "";
    ProtobufCMessage *msg = NULL;
    bridge_status st = bridge_decode(desc, BRIDGE_ENCODING_JSON, v->input, v->input_len, &msg, err, sizeof err);
    if (v->invalid) {
        bridge_message_free(msg);
        CHECK(st == BRIDGE_STATUS_DECODE_ERROR && msg == NULL, "%s: invalid input was read (status %d)", v->name, st);
        return 0;
    }
    if (st == BRIDGE_STATUS_DECODE_ERROR && strcmp(v->name, "string_with_nul") == 0) {
        printf("note: %s refused by design (protobuf-c strings cannot hold NUL)\n", v->name);
        return 0;
    }
    CHECK(st == BRIDGE_STATUS_OK, "%s: not read: %s", v->name, err);
    bridge_buffer mp = BRIDGE_BUFFER_INIT;
    st = bridge_encode(msg, BRIDGE_ENCODING_MSGPACK, &mp, err, sizeof err);
    bridge_message_free(msg);
    bool same = st == BRIDGE_STATUS_OK && mp.len == v->expect_msgpack_len &&
                memcmp(mp.data, v->expect_msgpack, mp.len) == 0;
    bridge_buffer_free(&mp);
    CHECK(same, "%s: the JSON does not read as the vector's message", v->name);
    if (v->written == NULL)
        return 0;

    /* writing: the vector's message, as JSON, is bare_json (compared as parsed values) ... */
    CHECK(bridge_decode(desc, BRIDGE_ENCODING_MSGPACK, v->expect_msgpack, v->expect_msgpack_len, &msg,
                        err, sizeof err) == BRIDGE_STATUS_OK, "%s: %s", v->name, err);
    bridge_buffer js = BRIDGE_BUFFER_INIT;
    st = bridge_encode(msg, BRIDGE_ENCODING_JSON, &js, err, sizeof err);
    bridge_message_free(msg);
    CHECK(st == BRIDGE_STATUS_OK, "%s: not written: %s", v->name, err);
    json_t *ours = bridge__json_parse(js.data, js.len, err, sizeof err);
    json_t *want = bridge__json_parse(v->written, v->written_len, err, sizeof err);
    char where[300] = "";
    same = ours != NULL && want != NULL && same_json(ours, want, where, sizeof where);
    json_decref(ours);
    json_decref(want);
    if (!same)
        printf("  ours: %.*s\n", (int)(js.len < 600 ? js.len : 600), (const char *)js.data);
    /* ... and reads back as the same message */
    msg = NULL;
    bool back = bridge_decode(desc, BRIDGE_ENCODING_JSON, js.data, js.len, &msg, err, sizeof err) == BRIDGE_STATUS_OK &&
                bridge_encode(msg, BRIDGE_ENCODING_MSGPACK, &mp, err, sizeof err) == BRIDGE_STATUS_OK &&
                mp.len == v->expect_msgpack_len && memcmp(mp.data, v->expect_msgpack, mp.len) == 0;
    bridge_message_free(msg);
    bridge_buffer_free(&mp);
    bridge_buffer_free(&js);
    CHECK(same, "%s: written JSON differs from bare_json: %s", v->name, where);
    CHECK(back, "%s: written JSON does not read back as the message (%s)", v->name, err);
    return 0;
}

/* What the vectors do not pin: literals jansson cannot hold, NUL, bracket depth, RAW. */
static bool json_refused(const ProtobufCMessageDescriptor *desc, const char *text)
{
    ProtobufCMessage *msg = NULL;
    bridge_status st = bridge_decode(desc, BRIDGE_ENCODING_JSON, (const uint8_t *)text, strlen(text), &msg, NULL, 0);
    bridge_message_free(msg);
    return st == BRIDGE_STATUS_DECODE_ERROR;
}

static int test_json_edges(void)
{
    const ProtobufCMessageDescriptor *sd = &bridge__interop__v1__scalars__descriptor;
    const char *ok = "{\"f_uint64\": 18446744073709551615, \"f_double\": 100000000000000000000000000000,"
                     " \"f_fixed64\": \"18446744073709551615\", \"f_int64\": -9223372036854775808}";
    ProtobufCMessage *msg = NULL;
    char err[200] = "";
    CHECK(bridge_decode(sd, BRIDGE_ENCODING_JSON, (const uint8_t *)ok, strlen(ok), &msg, err, sizeof err) == 0, "%s", err);
    const Bridge__Interop__V1__Scalars *s = (const void *)msg;
    CHECK(s->f_uint64 == UINT64_MAX && s->f_fixed64 == UINT64_MAX && s->f_double == 1e29 &&
              s->f_int64 == INT64_MIN, "big literals");
    bridge_buffer out = BRIDGE_BUFFER_INIT;
    CHECK(bridge_encode(msg, BRIDGE_ENCODING_JSON, &out, err, sizeof err) == 0, "%s", err);
    bridge_message_free(msg);
    bridge_buffer_free(&out);
    CHECK(json_refused(sd, "{\"f_uint64\": 18446744073709551616}"), "uint64 + 1");
    CHECK(json_refused(sd, "{\"f_int64\": 9223372036854775808}"), "int64 max + 1 as a number");
    CHECK(json_refused(sd, "{\"f_uint64\": 018446744073709551615}"), "a leading zero is not JSON");
    CHECK(json_refused(sd, "{\"f_string\": 18446744073709551615}"), "a number for a string");
    CHECK(json_refused(sd, "{\"f_int32\": \"\\u00001\"}"), "a NUL-led string is not a number");
    CHECK(json_refused(sd, "{\"f_string\": \"a\\u0000b\"}"), "NUL in a string");
    CHECK(json_refused(sd, "{\"f_int32\": 1, \"fInt32\": 2}"), "one field under both names");
    CHECK(json_refused(sd, "{\"f_float\": 1e39}"), "beyond a float");
    CHECK(json_refused(sd, "{\"f_double\": \"0x10\"}"), "hex");
    CHECK(json_refused(sd, "{\"f_bool\": 1.0}"), "bool 1.0");
    CHECK(json_refused(sd, "{\"f_uint64\": 9.2233720368547758e18}"), "an integer as a float beyond 2^53");
    CHECK(!json_refused(sd, "{\"f_int64\": 9007199254740992.0}"), "an integer as a float at 2^53");
    /* bracket nesting far beyond any message's: refused before jansson recurses */
    size_t n = 200000;
    char *deep = malloc(2 * n + 1);
    CHECK(deep != NULL, "malloc");
    memset(deep, '[', n);
    memset(deep + n, ']', n);
    deep[2 * n] = '\0';
    bool refused = json_refused(sd, deep);
    free(deep);
    CHECK(refused, "200000 brackets");
    return 0;
}

static int test_raw(void)
{
    const ProtobufCMessageDescriptor *text = &bridge__interop__v1__raw_text__descriptor;
    const ProtobufCMessageDescriptor *bytes = &bridge__interop__v1__raw_bytes__descriptor;
    ProtobufCMessage *msg = NULL;
    CHECK(bridge_decode(text, BRIDGE_ENCODING_RAW, (const uint8_t *)"h\xc3\xa9", 3, &msg, NULL, 0) == 0, "utf-8 text");
    CHECK(strcmp(((Bridge__Interop__V1__RawText *)msg)->text, "h\xc3\xa9") == 0, "text");
    bridge_buffer out = BRIDGE_BUFFER_INIT;
    CHECK(bridge_encode(msg, BRIDGE_ENCODING_RAW, &out, NULL, 0) == 0 && out.len == 3 &&
              memcmp(out.data, "h\xc3\xa9", 3) == 0, "text written");
    bridge_message_free(msg);
    msg = NULL;
    CHECK(bridge_decode(text, BRIDGE_ENCODING_RAW, (const uint8_t *)"\xff", 1, &msg, NULL, 0) == BRIDGE_STATUS_DECODE_ERROR,
          "invalid UTF-8 for a string");
    CHECK(bridge_decode(bytes, BRIDGE_ENCODING_RAW, (const uint8_t *)"\xff\0", 2, &msg, NULL, 0) == 0, "bytes");
    out.len = 0;
    CHECK(bridge_encode(msg, BRIDGE_ENCODING_RAW, &out, NULL, 0) == 0 && out.len == 2 &&
              memcmp(out.data, "\xff\0", 2) == 0, "bytes written");
    bridge_message_free(msg);
    msg = NULL;
    CHECK(bridge_decode(bytes, BRIDGE_ENCODING_RAW, NULL, 0, &msg, NULL, 0) == 0 &&
              ((Bridge__Interop__V1__RawBytes *)msg)->data.len == 0, "empty payload");
    bridge_message_free(msg);
    msg = NULL;
    CHECK(bridge_decode(&bridge__interop__v1__blob__descriptor, BRIDGE_ENCODING_RAW, (const uint8_t *)"x", 1, &msg,
                        NULL, 0) == BRIDGE_STATUS_INVALID, "RAW needs a one-field message");
    bridge_buffer_free(&out);
    return 0;
}

/* ------------------------------------------------------------------ the bare job flow */

static int b_echo(bridge_ctx *ctx, const Bridge__Interop__V1__Composite *req, Bridge__Interop__V1__Composite *reply)
{
    (void)ctx;
    *reply = *req;
    return 0;
}

static int b_raw(bridge_ctx *ctx, const Bridge__Interop__V1__RawBytes *req, Bridge__Interop__V1__RawBytes *reply)
{
    (void)ctx;
    *reply = *req;
    return 0;
}

static int b_progress(bridge_ctx *ctx, const Bridge__Interop__V1__ProgressRequest *req,
                      Bridge__Interop__V1__ProgressReply *reply)
{
    bridge_ctx_send_warning(ctx, "careful");
    for (int32_t i = 1; i <= req->steps; i++)
        bridge_ctx_send_progress(ctx, (uint32_t)i, (uint32_t)req->steps);
    reply->steps_done = req->steps;
    return 0;
}

static int b_raise(bridge_ctx *ctx, const Bridge__Interop__V1__RaiseRequest *req, Bridge__Interop__V1__Empty *reply)
{
    (void)reply;
    if (req->fail)
        return bridge_ctx_fail(ctx);
    return bridge_ctx_set_error(ctx, (bridge_code)req->code, "%s", req->message);
}

static int b_who(bridge_ctx *ctx, const Bridge__Interop__V1__Empty *req, Bridge__Interop__V1__WhoAmIReply *reply)
{
    (void)req;
    reply->language = bridge_ctx_bare(ctx) ? "c-bare" : "c";
    reply->deadline_ms = bridge_ctx_deadline_ms(ctx) + (int64_t)bridge_ctx_metadata_count(ctx);
    return 0;
}

static char run_job(bridge_worker *w, const char *fn, const char *payload, size_t len, bridge_buffer *out,
                    bridge_buffer *data)
{
    char kind = 0;
    out->len = data->len = 0;
    bridge_worker_process(w, fn, (const uint8_t *)payload, len, &kind, out, data);
    return kind;
}

#define RUN(fn, text) run_job(w, fn, text, sizeof(text) - 1, &out, &data)
#define OUT_IS(text) (out.len == sizeof(text) - 1 && memcmp(out.data, text, out.len) == 0)

static int test_bare_flow(void)
{
    bridge_worker_options o = bridge_worker_options_default();
    o.quiet = true;
    o.max_request_bytes = 4096;
    bridge_worker *w = bridge_worker_new(&o);
    CHECK(w != NULL, "worker");
    static const bridge_interop_v1_bare_handlers bare = {
        .echo_json = b_echo, .echo_msgpack = b_echo, .echo_protobuf = b_echo, .echo_raw = b_raw,
        .progress_json = b_progress, .raise_json = b_raise, .raise_msgpack = b_raise, .who_am_i_json = b_who};
    static const bridge_interop_v1_interop_handlers enveloped = {.echo = b_echo};
    CHECK(bridge_interop_v1_bare_register(w, &bare, NULL) == 0, "register bare");
    CHECK(bridge_interop_v1_interop_register(w, &enveloped, NULL) == 0, "register interop");
    bridge_buffer out = BRIDGE_BUFFER_INIT, data = BRIDGE_BUFFER_INIT;

    /* the reply alone, in the method's encoding: no frame, no WORK_DATA */
    char kind = RUN("interop_bare_echo_json", "{\"text\":\"hi\",\"numbers\":[1,2]}");
    CHECK(kind == 'C' && out.len > 0 && out.data[0] == '{' && data.len == 0, "JSON echo: %c", kind);
    CHECK(memmem(out.data, out.len, "\"text\":\"hi\"", 11) && memmem(out.data, out.len, "\"numbers\":[1,2]", 15),
          "JSON echo: %.*s", (int)out.len, (const char *)out.data);
    kind = RUN("interop_bare_echo_msgpack", "\x81\xa4" "text\xa2" "hi");
    CHECK(kind == 'C' && OUT_IS("\x81\xa4" "text\xa2" "hi") && data.len == 0, "msgpack echo");
    kind = RUN("interop_bare_echo_protobuf", "\x4a\x02" "hi");
    CHECK(kind == 'C' && OUT_IS("\x4a\x02" "hi") && data.len == 0, "protobuf echo");
    kind = run_job(w, "interop_bare_echo_raw", "\0\xff\x01", 3, &out, &data);
    CHECK(kind == 'C' && out.len == 3 && memcmp(out.data, "\0\xff\x01", 3) == 0 && data.len == 0, "RAW echo");
    /* zero bytes: an error for a type with fields in JSON and MSGPACK (8.1), not in RAW/PROTOBUF */
    kind = run_job(w, "interop_bare_echo_json", "", 0, &out, &data);
    CHECK(kind == 'E' && memcmp(out.data, "{\"code\":3,", 10) == 0 && memmem(out.data, out.len, "empty payload", 13),
          "zero bytes of JSON");
    kind = run_job(w, "interop_bare_echo_msgpack", "", 0, &out, &data);
    CHECK(kind == 'E' && memmem(out.data, out.len, "empty payload", 13), "zero bytes of msgpack");
    kind = run_job(w, "interop_bare_echo_protobuf", "", 0, &out, &data);
    CHECK(kind == 'C' && out.len == 0, "zero bytes of protobuf: the empty message");
    kind = run_job(w, "interop_bare_whoami_json", "", 0, &out, &data);
    CHECK(kind == 'C' && out.len > 0, "zero bytes of JSON for Empty: the empty message");

    /* progress and warnings without attempt markers (a marker would be a WORK_DATA) */
    kind = RUN("interop_bare_progress_json", "{\"steps\":3}");
    CHECK(kind == 'C' && OUT_IS("{\"steps_done\":3}") && data.len == 0, "progress: %c, %zu bytes of WORK_DATA",
          kind, data.len);
    /* no deadline, no metadata, and the handler can tell */
    kind = RUN("interop_bare_whoami_json", "[]");
    CHECK(kind == 'C' && OUT_IS("{\"language\":\"c-bare\",\"metadata\":{},\"deadline_ms\":0}"), "whoami: %.*s",
          (int)out.len, (const char *)out.data);

    /* errors in the bare form of section 8.3 */
    kind = RUN("interop_bare_raise_json", "{\"code\":5,\"message\":\"no \\\"user\\\" \xc3\xbc\"}");
    CHECK(kind == 'E' && OUT_IS("{\"code\":5,\"status\":\"NOT_FOUND\",\"message\":\"no \\\"user\\\" \xc3\xbc\"}"),
          "JSON error: %.*s", (int)out.len, (const char *)out.data);
    kind = RUN("interop_bare_raise_msgpack", "\x82\xa4" "code\x09\xa7" "message\xa3" "pre");
    CHECK(kind == 'E' && OUT_IS("pre"), "msgpack error: the text alone");
    /* a reason quoting a key cut inside a UTF-8 sequence stays UTF-8 (U+FFFD for the stray byte) */
    char key[80] = "{\"a";
    for (int i = 0; i < 30; i++)
        strcat(key, "\xc3\xbc");
    strcat(key, "\":1}");
    kind = run_job(w, "interop_bare_echo_json", key, strlen(key), &out, &data);
    CHECK(kind == 'E' && memcmp(out.data, "{\"code\":3,", 10) == 0 && memmem(out.data, out.len, "\xef\xbf\xbd", 3),
          "cut reason: %.*s", (int)out.len, (const char *)out.data);
    kind = RUN("interop_bare_raise_json", "{\"fail\":true}");
    CHECK(kind == 'F' && out.len == 0, "explicit fail: WORK_FAIL");
    kind = RUN("interop_bare_echo_json", "{\"nope\":1}");
    CHECK(kind == 'E' && out.len > 30 && memcmp(out.data, "{\"code\":3,\"status\":\"INVALID_ARGUMENT\"", 37) == 0 &&
              memmem(out.data, out.len, "nope", 4), "undecodable: %.*s", (int)out.len, (const char *)out.data);
    /* bare MSGPACK refuses a key its type does not have, at every level (8.1) */
    kind = RUN("interop_bare_echo_msgpack", "\x81\xa3" "bad\x01");
    CHECK(kind == 'E' && memmem(out.data, out.len, "has no field \"bad\"", 18), "unknown key: %.*s",
          (int)out.len, (const char *)out.data);
    kind = RUN("interop_bare_echo_msgpack", "\x81\xa5" "inner\x81\xa3" "bad\x01");
    CHECK(kind == 'E' && memmem(out.data, out.len, "has no field \"bad\"", 18), "nested unknown key");
    kind = RUN("interop_bare_echo_msgpack", "\xc1");
    CHECK(kind == 'E' && memmem(out.data, out.len, "msgpack", 7) && out.data[0] != '{', "bad msgpack: text");
    kind = RUN("interop_bare_not_implemented_json", "{}");
    CHECK(kind == 'E' && memcmp(out.data, "{\"code\":12,\"status\":\"UNIMPLEMENTED\"", 35) == 0, "unimplemented");
    char *big = calloc(1, 5000);
    CHECK(big != NULL, "calloc");
    kind = run_job(w, "interop_bare_echo_raw", big, 5000, &out, &data);
    free(big);
    CHECK(kind == 'E' && memmem(out.data, out.len, "exceeds", 7) && out.data[0] != '{' &&
              out.data[0] != 0x08, "oversized: RESOURCE_EXHAUSTED as text");
    kind = run_job(w, "interop_bare_echo_json", "{\"text\":\"", 9, &out, &data);
    CHECK(kind == 'E' && memcmp(out.data, "{\"code\":3,", 10) == 0, "truncated JSON");

    /* an enveloped method given a bare payload: INVALID_ARGUMENT naming bare */
    kind = RUN(BRIDGE_INTEROP_V1_INTEROP_ECHO_FUNCTION, "{\"text\":\"hi\"}");
    ProtobufCMessage *m = NULL;
    CHECK(kind == 'E' && bridge_decode(&bridge__v1__error__descriptor, BRIDGE_ENCODING_PROTOBUF, out.data, out.len,
                                       &m, NULL, 0) == 0, "envelope method: %c", kind);
    Bridge__V1__Error *e = (Bridge__V1__Error *)m;
    bool names_bare = e->code == BRIDGE__V1__CODE__INVALID_ARGUMENT && strstr(e->message, "bare: true") &&
                      strstr(e->message, "not a bridge envelope");
    bridge_message_free(m);
    CHECK(names_bare, "the refusal names bare");

    /* registration refuses what cannot be bare */
    bridge_method bad = {.function_name = "x", .input = &bridge__interop__v1__blob__descriptor,
                         .output = &bridge__interop__v1__blob__descriptor, .bare = true,
                         .encoding = BRIDGE_ENCODING_RAW};
    CHECK(bridge_worker_add_method(w, &bad) == BRIDGE_STATUS_INVALID, "RAW on a two-field message");
    bad.encoding = BRIDGE_ENCODING_JSON;
    bad.server_streaming = true;
    CHECK(bridge_worker_add_method(w, &bad) == BRIDGE_STATUS_INVALID, "a bare stream");
    bad.server_streaming = false;
    bad.bare = false;
    CHECK(bridge_worker_add_method(w, &bad) == BRIDGE_STATUS_INVALID, "JSON without bare");
    bad.encoding = 0;
    CHECK(bridge_worker_add_method(w, &bad) == BRIDGE_STATUS_OK, "an ordinary method");

    bridge_buffer_free(&out);
    bridge_buffer_free(&data);
    bridge_worker_free(w);
    return 0;
}

void bare_tests(void)
{
    for (size_t i = 0; i < bare_json_vector_count; i++) {
        current = &bare_json_vectors[i];
        run(current->name, bare_vector_case);
    }
    run("json_edges", test_json_edges);
    run("raw", test_raw);
    run("bare_flow", test_bare_flow);
}
