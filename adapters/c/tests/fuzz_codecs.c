/*
 * libFuzzer target over libbridge's decoders (issue 11: poison jobs and bounded memory).
 *
 * The first input byte picks a target, the rest is the data:
 *  - decode the data as one of the interop / envelope message types, in protobuf (the runtime's
 *    own path: depth walk, protobuf-c, the wrong-wire-type copy, the UTF-8 check), in msgpack or
 *    in the bare JSON mapping (the scan, jansson, the descriptor walk); what decodes must encode
 *    again in all three encodings, and decode again to the same msgpack;
 *  - run the data through the whole job flow as a raw Gearman workload (envelope, body, handler,
 *    reply frames) of an echoing or streaming method, or as the payload of a bare JSON method;
 *  - signed jobs (wire contract, section 9), on a worker with keys: the data as a raw workload
 *    (an attacker's job: it must never run), and the data read as a Request envelope that the
 *    target signs properly (key id, a fresh nonce, a deadline, the MAC) before the job flow: its
 *    answer and every WORK_DATA must carry a valid reply MAC.
 * Crashes, sanitizer reports, leaks and allocations above -malloc_limit_mb are failures.
 *
 * Built with -DFUZZ_SEEDS instead, the same file is a program that writes the seed corpus from
 * the shared vectors (schemas/testdata/vectors.json, via the generated vectors_table.c) into the
 * directory given as argv[1], so the target table lives in one place.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bridge/bridge.h"
#include "bridge/v1/envelope.pb-c.h"
#include "interop/v1/bridge_interop_v1_bare.h"
#include "interop/v1/bridge_interop_v1_interop.h"
#include "bare_vectors_table.h"
#include "vectors_table.h"

static const ProtobufCMessageDescriptor *const types[] = {
    &bridge__interop__v1__scalars__descriptor, &bridge__interop__v1__composite__descriptor,
    &bridge__interop__v1__blob__descriptor,    &bridge__interop__v1__empty__descriptor,
    &bridge__interop__v1__who_am_ireply__descriptor, &bridge__interop__v1__inner__descriptor,
    &bridge__interop__v1__stream_item__descriptor, &bridge__v1__request__descriptor,
    &bridge__v1__error__descriptor};
#define N_TYPES (sizeof types / sizeof types[0])
static const char *const functions[] = {BRIDGE_INTEROP_V1_INTEROP_ECHO_FUNCTION,
                                        BRIDGE_INTEROP_V1_INTEROP_ECHO_SCALARS_FUNCTION,
                                        BRIDGE_INTEROP_V1_INTEROP_STREAM_FUNCTION,
                                        BRIDGE_INTEROP_V1_BARE_ECHO_JSON_FUNCTION,
                                        BRIDGE_INTEROP_V1_BARE_ECHO_MSGPACK_FUNCTION};
#define N_FUNCTIONS (sizeof functions / sizeof functions[0])
/* targets: [0, 3*N_TYPES) decode types[t/3] in encoding t%3 (protobuf, msgpack, JSON); then jobs */
#define N_ENCODINGS 3
#define TARGET_SIGNED (N_ENCODINGS * N_TYPES + N_FUNCTIONS) /* an envelope, signed here */
#define TARGET_FORGED (TARGET_SIGNED + 1)                   /* a raw job to the keyed worker */
#define N_TARGETS (TARGET_FORGED + 1)
static const bridge_encoding encodings[N_ENCODINGS] = {BRIDGE_ENCODING_PROTOBUF, BRIDGE_ENCODING_MSGPACK,
                                                       BRIDGE_ENCODING_JSON};

static int echo(bridge_ctx *ctx, const Bridge__Interop__V1__Composite *req,
                Bridge__Interop__V1__Composite *reply)
{
    (void)ctx;
    *reply = *req;
    return 0;
}

static int echo_scalars(bridge_ctx *ctx, const Bridge__Interop__V1__Scalars *req,
                        Bridge__Interop__V1__Scalars *reply)
{
    bridge_ctx_send_progress(ctx, 1, 2); /* an attempt marker, then status */
    *reply = *req;
    return 0;
}

static int stream(bridge_ctx *ctx, const Bridge__Interop__V1__StreamRequest *req)
{
    for (int32_t i = 0; i < req->count && i < 4; i++) {
        Bridge__Interop__V1__StreamItem item = BRIDGE__INTEROP__V1__STREAM_ITEM__INIT;
        item.index = i;
        if (bridge_interop_v1_interop_stream_send(ctx, &item) != BRIDGE_STATUS_OK)
            return -1;
    }
    return 0;
}

#ifndef FUZZ_SEEDS

static void roundtrip(const ProtobufCMessageDescriptor *desc, bridge_encoding enc,
                      const uint8_t *data, size_t size)
{
    ProtobufCMessage *msg = NULL;
    if (bridge_decode(desc, enc, data, size, &msg, NULL, 0) != BRIDGE_STATUS_OK)
        return;
    bridge_buffer mp = BRIDGE_BUFFER_INIT, pb = BRIDGE_BUFFER_INIT, js = BRIDGE_BUFFER_INIT,
                  again = BRIDGE_BUFFER_INIT;
    if (bridge_encode(msg, BRIDGE_ENCODING_MSGPACK, &mp, NULL, 0) != BRIDGE_STATUS_OK ||
        bridge_encode(msg, BRIDGE_ENCODING_PROTOBUF, &pb, NULL, 0) != BRIDGE_STATUS_OK ||
        bridge_encode(msg, BRIDGE_ENCODING_JSON, &js, NULL, 0) != BRIDGE_STATUS_OK)
        abort(); /* whatever decodes must encode */
    bridge_message_free(msg);
    const bridge_buffer *inputs[N_ENCODINGS] = {&pb, &mp, &js};
    for (int k = 0; k < N_ENCODINGS; k++) {
        msg = NULL;
        bridge_encoding e = encodings[k];
        if (bridge_decode(desc, e, inputs[k]->data, inputs[k]->len, &msg, NULL, 0) != BRIDGE_STATUS_OK)
            abort(); /* what we encode must decode */
        again.len = 0;
        if (bridge_encode(msg, BRIDGE_ENCODING_MSGPACK, &again, NULL, 0) != BRIDGE_STATUS_OK ||
            again.len != mp.len || (mp.len > 0 && memcmp(again.data, mp.data, mp.len) != 0))
            abort(); /* and be the same message */
        bridge_message_free(msg);
    }
    bridge_buffer_free(&mp);
    bridge_buffer_free(&pb);
    bridge_buffer_free(&js);
    bridge_buffer_free(&again);
}

static bridge_worker *worker;

/* ------------------------------------------------------------------ signed jobs */

#include "security.h"

static bridge_worker *keyed;
static const uint8_t fuzz_key[] = "fuzz-key-fuzz-key-fuzz-key-0001"; /* 31 bytes */
#define FUZZ_KEYS "k1:ZnV6ei1rZXktZnV6ei1rZXktZnV6ei1rZXktMDAwMQ=="

static bool mac_ok(const uint8_t *p, size_t len, const char *function, const uint8_t *nonce, int packet)
{
    uint8_t mac[BRIDGE_MAC_SIZE];
    if (len < BRIDGE_MAC_SIZE ||
        bridge__reply_mac(fuzz_key, sizeof fuzz_key - 1, function, "k1", nonce, BRIDGE_NONCE_SIZE,
                          packet, p, len - BRIDGE_MAC_SIZE, mac) != BRIDGE_STATUS_OK)
        return false;
    return memcmp(mac, p + len - BRIDGE_MAC_SIZE, BRIDGE_MAC_SIZE) == 0;
}

static void signed_job(const char *function, const uint8_t *data, size_t size, bool sign)
{
    bridge_buffer job = BRIDGE_BUFFER_INIT, out = BRIDGE_BUFFER_INIT, items = BRIDGE_BUFFER_INIT;
    static uint64_t counter;
    uint8_t nonce[BRIDGE_NONCE_SIZE] = {0};
    if (sign) {
        ProtobufCMessage *msg = NULL;
        if (bridge_decode(&bridge__v1__request__descriptor, BRIDGE_ENCODING_PROTOBUF, data, size, &msg,
                          NULL, 0) != BRIDGE_STATUS_OK)
            return;
        Bridge__V1__Request *req = (Bridge__V1__Request *)msg;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        counter++; /* a fresh nonce, and deadlines that only grow (never under the floor) */
        memcpy(nonce, &counter, sizeof counter);
        const char **meta = calloc(req->n_metadata * 2 + 1, sizeof *meta);
        for (size_t i = 0; i < req->n_metadata; i++) {
            meta[i] = req->metadata[i]->key;
            meta[req->n_metadata + i] = req->metadata[i]->value;
        }
        bridge_request_fields f = {
            .function = function, .key_id = "k1", .nonce = nonce, .nonce_len = BRIDGE_NONCE_SIZE,
            .version = 1, .deadline_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + 10000 + (int64_t)(counter % 50000000), .encoding = (uint32_t)req->encoding,
            .n_metadata = req->n_metadata, .meta_keys = meta, .meta_values = meta + req->n_metadata,
            .body = req->body.data, .body_len = req->body.len};
        uint8_t mac[BRIDGE_MAC_SIZE];
        if (bridge__request_mac(fuzz_key, sizeof fuzz_key - 1, &f, mac) != BRIDGE_STATUS_OK)
            abort();
        free(meta);
        /* the envelope again, signed (the decoded one keeps its own fields) */
        Bridge__V1__Request signed_req = *req;
        signed_req.key_id = "k1";
        signed_req.nonce.data = nonce;
        signed_req.nonce.len = BRIDGE_NONCE_SIZE;
        signed_req.mac.data = mac;
        signed_req.mac.len = BRIDGE_MAC_SIZE;
        signed_req.version = 1;
        signed_req.deadline_ms = f.deadline_ms;
        bridge_encode(&signed_req.base, BRIDGE_ENCODING_PROTOBUF, &job, NULL, 0);
        bridge_message_free(msg);
        data = job.data;
        size = job.len;
    }
    char kind = 0;
    bridge_worker_process(keyed, function, data, size, &kind, &out, &items);
    if (kind != 'C' && kind != 'E' && kind != 'F')
        abort(); /* every job is answered */
    bool bare = strcmp(function, BRIDGE_INTEROP_V1_BARE_ECHO_MSGPACK_FUNCTION) == 0;
    if ((!sign || bare) && kind != 'E')
        abort(); /* a job nobody signed never runs (a forged MAC is 2^-256 away); nor a bare one */
    if (sign && !bare) {
        if (!mac_ok(out.data, out.len, function, nonce, kind == 'C' ? 2 : 3))
            abort(); /* the answer to a signed job carries the reply MAC */
        for (size_t at = 0; at + 4 <= items.len;) {
            size_t n = (size_t)items.data[at] << 24 | (size_t)items.data[at + 1] << 16 |
                       (size_t)items.data[at + 2] << 8 | items.data[at + 3];
            if (!mac_ok(items.data + at + 4, n, function, nonce, 1))
                abort(); /* and so does every WORK_DATA */
            at += 4 + n;
        }
    }
    bridge_buffer_free(&job);
    bridge_buffer_free(&out);
    bridge_buffer_free(&items);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    unsigned target = data[0] % N_TARGETS;
    data++;
    size--;
    if (target < N_ENCODINGS * N_TYPES) {
        roundtrip(types[target / N_ENCODINGS], encodings[target % N_ENCODINGS], data, size);
        return 0;
    }
    if (worker == NULL) {
        bridge_worker_options o = bridge_worker_options_default();
        o.quiet = true;
        o.max_request_bytes = 1 << 20;
        o.no_env_keys = true;
        worker = bridge_worker_new(&o);
        /* Small: the eviction floor is reached too, and once the cache is full every admitted
         * job frees the entry it evicts; a run that keeps memory makes libFuzzer scan for leaks
         * (13 ms a run). */
        o.replay_capacity = 16;
        keyed = bridge_worker_new(&o);
        static const bridge_interop_v1_interop_handlers h = {
            .echo = echo, .echo_scalars = echo_scalars, .stream = stream};
        static const bridge_interop_v1_bare_handlers b = {.echo_json = echo, .echo_msgpack = echo};
        if (worker == NULL || bridge_interop_v1_interop_register(worker, &h, NULL) != BRIDGE_STATUS_OK ||
            bridge_interop_v1_bare_register(worker, &b, NULL) != BRIDGE_STATUS_OK || keyed == NULL ||
            bridge_interop_v1_interop_register(keyed, &h, NULL) != BRIDGE_STATUS_OK ||
            bridge_interop_v1_bare_register(keyed, &b, NULL) != BRIDGE_STATUS_OK ||
            bridge_worker_set_keys(keyed, FUZZ_KEYS, NULL, 0) != BRIDGE_STATUS_OK)
            abort();
    }
    if (target >= TARGET_SIGNED) {
        /* the echo, the stream (items and their MACs) or a bare echo (refused), by one more byte */
        static const char *const signed_functions[] = {BRIDGE_INTEROP_V1_INTEROP_ECHO_FUNCTION,
                                                       BRIDGE_INTEROP_V1_INTEROP_STREAM_FUNCTION,
                                                       BRIDGE_INTEROP_V1_INTEROP_ECHO_SCALARS_FUNCTION,
                                                       BRIDGE_INTEROP_V1_BARE_ECHO_MSGPACK_FUNCTION};
        if (size == 0)
            return 0;
        signed_job(signed_functions[data[0] % 4], data + 1, size - 1, target == TARGET_SIGNED);
        return 0;
    }
    const char *function = functions[target - N_ENCODINGS * N_TYPES];
    bool bare_json = strcmp(function, BRIDGE_INTEROP_V1_BARE_ECHO_JSON_FUNCTION) == 0;
    bool bare = bare_json || strcmp(function, BRIDGE_INTEROP_V1_BARE_ECHO_MSGPACK_FUNCTION) == 0;
    char kind = 0;
    bridge_buffer out = BRIDGE_BUFFER_INIT, items = BRIDGE_BUFFER_INIT;
    bridge_worker_process(worker, function, data, size, &kind, &out, &items);
    if (kind != 'C' && kind != 'E' && kind != 'F')
        abort(); /* every job is answered */
    if (kind == 'C' && !bare && (out.len < 23 || out.data[0] != 0xB7))
        abort(); /* with a reply frame */
    if (bare_json && (items.len != 0 || out.len == 0 || out.data[0] != '{'))
        abort(); /* a bare JSON reply or error: an object, alone */
    if (bare && !bare_json && (items.len != 0 || out.len == 0 ||
                               (kind == 'C' && (out.data[0] & 0xf0) != 0x80 && out.data[0] != 0xde)))
        abort(); /* a bare msgpack reply: a map, alone; an error: its text */
    bridge_buffer_free(&out);
    bridge_buffer_free(&items);
    return 0;
}

#else /* FUZZ_SEEDS: write the seed corpus */

static const ProtobufCMessageDescriptor *type_named(const char *name, unsigned *index)
{
    for (unsigned i = 0; i < N_TYPES; i++)
        if (strcmp(types[i]->name, name) == 0) {
            *index = i;
            return types[i];
        }
    return NULL;
}

static int seeds;

static void write_seed(const char *dir, unsigned target, const uint8_t *data, size_t size)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/seed-%04d", dir, seeds++);
    FILE *f = fopen(path, "wb");
    if (f == NULL) {
        perror(path);
        exit(1);
    }
    uint8_t t = (uint8_t)target;
    fwrite(&t, 1, 1, f);
    if (size > 0)
        fwrite(data, 1, size, f);
    fclose(f);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
        return 2;
    }
    for (size_t i = 0; i < test_vector_count; i++) {
        const test_vector *v = &test_vectors[i];
        unsigned t;
        if (type_named(v->type, &t) == NULL)
            continue;
        if (v->protobuf)
            write_seed(argv[1], N_ENCODINGS * t, v->protobuf, v->protobuf_len);
        if (v->msgpack)
            write_seed(argv[1], N_ENCODINGS * t + 1, v->msgpack, v->msgpack_len);
        /* the whole job flow: the vector as the body of a request envelope, both encodings */
        for (int k = 0; k < 2; k++) {
            const uint8_t *body = k ? v->msgpack : v->protobuf;
            size_t len = k ? v->msgpack_len : v->protobuf_len;
            unsigned f = strcmp(v->type, "bridge.interop.v1.Scalars") == 0 ? 1 : 0;
            if (body == NULL || (t != 0 && t != 1))
                continue;
            Bridge__V1__Request req = BRIDGE__V1__REQUEST__INIT;
            req.version = 1;
            req.encoding = k ? BRIDGE__V1__ENCODING__MSGPACK : BRIDGE__V1__ENCODING__PROTOBUF;
            req.body.data = (uint8_t *)body;
            req.body.len = len;
            bridge_buffer env = BRIDGE_BUFFER_INIT;
            bridge_encode(&req.base, BRIDGE_ENCODING_PROTOBUF, &env, NULL, 0);
            write_seed(argv[1], N_ENCODINGS * N_TYPES + f, env.data, env.len);
            /* and signed (the function byte first: the echoes, 0 and 2) */
            uint8_t *with_function = malloc(env.len + 1);
            with_function[0] = (uint8_t)(f ? 2 : 0);
            memcpy(with_function + 1, env.data, env.len);
            write_seed(argv[1], TARGET_SIGNED, with_function, env.len + 1);
            write_seed(argv[1], TARGET_FORGED, with_function, env.len + 1);
            free(with_function);
            bridge_buffer_free(&env);
        }
    }
    /* the bare JSON vectors, decoded as their type and as the payload of a bare JSON echo */
    for (size_t i = 0; i < bare_json_vector_count; i++) {
        const bare_json_vector *v = &bare_json_vectors[i];
        unsigned t;
        if (type_named(v->type, &t) == NULL)
            continue;
        write_seed(argv[1], N_ENCODINGS * t + 2, v->input, v->input_len);
        if (t == 1) /* Composite */
            write_seed(argv[1], N_ENCODINGS * N_TYPES + 3, v->input, v->input_len);
        if (t == 1 && v->expect_msgpack) /* and its msgpack to the bare msgpack echo */
            write_seed(argv[1], N_ENCODINGS * N_TYPES + 4, v->expect_msgpack, v->expect_msgpack_len);
    }
    /* a stream of 3, and the 20-byte poison job of issue 11 */
    static const uint8_t stream3[] = {0x08, 0x01, 0x20, 0x02, 0x2a, 0x08, 0x81, 0xa5, 'c', 'o', 'u', 'n', 't', 0x03};
    write_seed(argv[1], N_ENCODINGS * N_TYPES + 2, stream3, sizeof stream3);
    uint8_t stream3_signed[sizeof stream3 + 1] = {1};
    memcpy(stream3_signed + 1, stream3, sizeof stream3);
    write_seed(argv[1], TARGET_SIGNED, stream3_signed, sizeof stream3_signed);
    static const uint8_t poison[] = {0x08, 0x01, 0x20, 0x02, 0x2a, 0x0e, 0x81, 0xa7, 'n', 'u',
                                     'm', 'b', 'e', 'r', 's', 0xdd, 0xff, 0xff, 0xff, 0xff};
    write_seed(argv[1], N_ENCODINGS * N_TYPES, poison, sizeof poison);
    (void)echo;
    (void)echo_scalars;
    (void)stream;
    (void)functions;
    (void)encodings;
    printf("%d seeds\n", seeds);
    return 0;
}

#endif
