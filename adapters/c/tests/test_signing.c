/*
 * Signed jobs and replies (wire contract, section 9): every case of signing_vectors.json (MAC
 * input and MAC), the key list's syntax and checks (as bridge/security/keys.py, base64 as
 * Python's), the replay cache (as bridge/security/verify.py's, threads included), and the job
 * flow of a worker with keys through bridge_worker_process_job().
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bridge/bridge.h"
#include "bridge/v1/envelope.pb-c.h"
#include "check.h"
#include "interop/v1/bridge_interop_v1_bare.h"
#include "interop/v1/bridge_interop_v1_interop.h"
#include "security.h"
#include "signing_vectors_table.h"

static const signing_vector *current;

static int vector_case(void)
{
    const signing_vector *v = current;
    uint8_t *key = NULL;
    size_t key_len = 0;
    CHECK(bridge__base64_decode(v->key_base64, strlen(v->key_base64), &key, &key_len), "key");
    bridge_buffer input = BRIDGE_BUFFER_INIT;
    uint8_t mac[BRIDGE_MAC_SIZE];
    bridge_status st1, st2;
    if (v->reply) {
        st1 = bridge__reply_input(v->function, v->key_id, v->nonce, v->nonce_len, v->packet,
                                  v->payload, v->payload_len, &input);
        st2 = bridge__reply_mac(key, key_len, v->function, v->key_id, v->nonce, v->nonce_len,
                                v->packet, v->payload, v->payload_len, mac);
    } else {
        bridge_request_fields f = {
            .function = v->function, .key_id = v->key_id, .nonce = v->nonce,
            .nonce_len = v->nonce_len, .version = v->version, .deadline_ms = v->deadline_ms,
            .encoding = v->encoding, .n_metadata = v->n_metadata, .meta_keys = v->meta_keys,
            .meta_values = v->meta_values, .body = v->body, .body_len = v->body_len};
        st1 = bridge__request_input(&f, &input);
        st2 = bridge__request_mac(key, key_len, &f, mac);
    }
    free(key);
    int same_input = input.len == v->input_len && memcmp(input.data, v->input, v->input_len) == 0;
    size_t input_len = input.len;
    bridge_buffer_free(&input);
    CHECK(st1 == BRIDGE_STATUS_OK && same_input, "input: %zu bytes, expected %zu", input_len,
          v->input_len);
    CHECK(st2 == BRIDGE_STATUS_OK && v->mac_len == BRIDGE_MAC_SIZE && memcmp(mac, v->mac, BRIDGE_MAC_SIZE) == 0,
          "MAC differs");
    return 0;
}

static int test_base64_as_python(void)
{
    size_t valid = 0;
    for (size_t i = 0; i < base64_case_count; i++) {
        const base64_case *c = &base64_cases[i];
        uint8_t *out = NULL;
        size_t len = 0;
        bool ok = bridge__base64_decode(c->text, strlen(c->text), &out, &len);
        bool same = ok == (bool)c->valid && (!ok || (len == c->decoded_len && memcmp(out, c->decoded, len) == 0));
        free(out);
        CHECK(same, "'%s': C says %s, Python %s", c->text, ok ? "valid" : "invalid",
              c->valid ? "valid" : "invalid");
        valid += ok;
    }
    CHECK(valid > 100 && valid < base64_case_count / 2, "%zu of %zu valid", valid, base64_case_count);
    uint8_t *out = NULL;
    size_t len = 0;
    CHECK(bridge__base64_decode("//+/", 4, &out, &len) && len == 3 && out[0] == 0xff && out[1] == 0xff &&
              out[2] == 0xbf, "'/' and '+'");
    free(out);
    return 0;
}

#define KEY_A "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" /* "0123456789abcdef" x2 */
#define KEY_B "YW5vdGhlci1rZXktb2YtYXQtbGVhc3QtMTY="           /* "another-key-of-at-least-16" */

static int parse_error(const char *text, const char *want)
{
    bridge_keyring ring = {0};
    char err[300] = "";
    bridge_status st = bridge__keyring_parse(&ring, text, NULL, err, sizeof err);
    size_t count = ring.count;
    bridge__keyring_clear(&ring);
    CHECK(st != BRIDGE_STATUS_OK && count == 0, "'%s' accepted", text);
    CHECK(strstr(err, want) != NULL, "'%s': '%s', not '%s'", text, err, want);
    CHECK(strstr(err, "MDEyMzQ1") == NULL && strstr(err, "0123456789") == NULL, "a key in '%s'", err);
    return 0;
}

static int test_key_lists(void)
{
    bridge_keyring ring = {0};
    char err[300] = "";
    const char *text = "# the keys\r\n k2026 : " KEY_A " ,\n\n  # old one\nk2025:" KEY_B "\n";
    CHECK(bridge__keyring_parse(&ring, text, NULL, err, sizeof err) == 0, "%s", err);
    CHECK(ring.count == 2 && strcmp(ring.keys[0].id, "k2026") == 0 && strcmp(ring.keys[1].id, "k2025") == 0,
          "ids");
    CHECK(ring.keys[0].size == 32 && memcmp(ring.keys[0].bytes, "0123456789abcdef", 16) == 0, "key bytes");
    CHECK(bridge__keyring_find(&ring, "k2025") == &ring.keys[1] && !bridge__keyring_find(&ring, "k"), "find");
    bridge__keyring_clear(&ring);
    CHECK(bridge__keyring_parse(&ring, "a:" KEY_A, "b", err, sizeof err) != 0 &&
              strcmp(err, "the signing key id 'b' is not among the keys (a); BRIDGE_SIGNING_KEY "
                          "names a key id, not a key") == 0, "signing id: %s", err);
    CHECK(bridge__keyring_parse(&ring, "a:" KEY_A, KEY_A, err, sizeof err) != 0 &&
              strstr(err, "the signing key id (not shown: it looks like a key) is not among") &&
              !strstr(err, "MDEyMzQ1"), "a key as the signing id: %s", err);
    int bad = 0;
    bad |= parse_error("", "a keyring needs at least one key");
    bad |= parse_error(" , \n# only a comment", "a keyring needs at least one key");
    bad |= parse_error("a:" KEY_A ",\n# c\n" KEY_B, "key entry 3 is not ID:BASE64"); /* as Python counts */
    bad |= parse_error("a:" KEY_A ",b:QUJD!", "key 'b': not standard base64");
    bad |= parse_error("a:" KEY_A ",b:QUI", "key 'b': not standard base64");
    bad |= parse_error("a:" KEY_A ",a:" KEY_B, "key 'a' is listed twice");
    bad |= parse_error(KEY_A ":k1", "key entry 1: not standard base64"); /* written backwards */
    bad |= parse_error("k:" KEY_A ",abcdefghijklmnopqrstu:MDEy", "key entry 2 is 3 bytes");
    bad |= parse_error("a:MDEyMzQ1Njc4OWFiY2Rl", "key 'a' is 15 bytes; at least 16 are needed");
    bad |= parse_error("a b:" KEY_A, "key entry 1: the id must be 1 to 64 characters of "
                                     "[A-Za-z0-9._-] (entries are ID:BASE64)");
    bad |= parse_error(":" KEY_A, "key entry 1: the id must be 1 to 64");
    bad |= parse_error("x123456789x123456789x123456789x123456789x123456789x123456789x1234:" KEY_A,
                       "1 to 64 characters");
    CHECK(!bad, "a key list was read wrong");
    /* the API's keys: the same checks */
    bridge_worker_options o = bridge_worker_options_default();
    o.quiet = true;
    o.no_env_keys = true;
    bridge_worker *w = bridge_worker_new(&o);
    CHECK(w && bridge_worker_key_count(w) == 0, "no keys");
    CHECK(bridge_worker_add_key(w, "k1", (const uint8_t *)"short", 5, err, sizeof err) != 0 &&
              strstr(err, "is 5 bytes") && bridge_worker_key_count(w) == 0, "short key: %s", err);
    CHECK(bridge_worker_add_key(w, "k1", (const uint8_t *)"0123456789abcdef", 16, err, sizeof err) == 0 &&
              bridge_worker_key_count(w) == 1, "added");
    CHECK(bridge_worker_add_key(w, "k1", (const uint8_t *)"0123456789abcdef", 16, err, sizeof err) != 0 &&
              strstr(err, "listed twice") && bridge_worker_key_count(w) == 1, "twice: %s", err);
    CHECK(bridge_worker_set_keys(w, "nope", err, sizeof err) != 0 && bridge_worker_key_count(w) == 1,
          "bad list leaves the keys");
    CHECK(bridge_worker_set_keys(w, "a:" KEY_A ",b:" KEY_B, err, sizeof err) == 0 &&
              bridge_worker_key_count(w) == 2, "set");
    CHECK(bridge_worker_set_keys(w, NULL, NULL, 0) == 0 && bridge_worker_key_count(w) == 0, "removed");
    bridge_worker_free(w);
    return 0;
}

static int test_keys_from_environment(void)
{
    bridge_worker_options o = bridge_worker_options_default();
    o.quiet = true;
    setenv("BRIDGE_KEYS", "a:" KEY_A ",b:" KEY_B, 1);
    bridge_worker *w = bridge_worker_new(&o);
    CHECK(w && bridge_worker_key_count(w) == 2, "BRIDGE_KEYS");
    bridge_worker_free(w);
    o.no_env_keys = true;
    w = bridge_worker_new(&o);
    CHECK(w && bridge_worker_key_count(w) == 0, "no_env_keys");
    bridge_worker_free(w);
    o.no_env_keys = false;
    unsetenv("BRIDGE_KEYS");
    char path[] = "/tmp/bridge-c-keys-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "temp file");
    const char *file = "# rotation\nk2026:" KEY_A "\nk2025:" KEY_B "\n";
    CHECK(write(fd, file, strlen(file)) == (ssize_t)strlen(file), "write");
    close(fd);
    setenv("BRIDGE_KEYS_FILE", path, 1);
    w = bridge_worker_new(&o);
    CHECK(w && bridge_worker_key_count(w) == 2, "BRIDGE_KEYS_FILE");
    bridge_worker_free(w);
    unlink(path);
    fprintf(stderr, "(a BRIDGE_KEYS_FILE error and a BRIDGE_KEYS error are expected next)\n");
    w = bridge_worker_new(&o);
    CHECK(w == NULL, "a missing key file stops the worker");
    unsetenv("BRIDGE_KEYS_FILE");
    setenv("BRIDGE_KEYS", "a:" KEY_A ",a:" KEY_B, 1);
    w = bridge_worker_new(&o);
    CHECK(w == NULL, "a bad key list stops the worker");
    unsetenv("BRIDGE_KEYS");
    return 0;
}

/* ------------------------------------------------------------------ the replay cache */

static const uint8_t *nonce_of(int n)
{
    static _Thread_local uint8_t nonce[BRIDGE_NONCE_SIZE];
    memset(nonce, 0, sizeof nonce);
    memcpy(nonce, &n, sizeof n);
    return nonce;
}

#define ADMIT(c, id, n, h, d, now) bridge__replay_admit(c, id, nonce_of(n), d, now) /* h: unused */
static bool is(const char *got, const char *want)
{
    return want == NULL ? got == NULL : got != NULL && strcmp(got, want) == 0;
}
#define IS(got, want) is(got, want)

static int test_replay_cache(void)
{
    bridge_replay_cache c;
    bridge__replay_init(&c, 3);
    CHECK(IS(ADMIT(&c, "k", 1, "H:1", 100, 0), NULL), "first");
    CHECK(IS(ADMIT(&c, "k", 1, "H:1", 100, 0), "replayed"), "the same again, whatever the handle");
    CHECK(IS(ADMIT(&c, "j", 1, "H:2", 100, 0), NULL), "same nonce, other key id");
    CHECK(IS(ADMIT(&c, "k", 2, "H:3", 50, 0), NULL), "third");
    CHECK(c.count == 3 && c.floor_ms == 0, "full, no floor");
    /* full: the earliest deadline (50) goes and becomes the floor */
    CHECK(IS(ADMIT(&c, "k", 3, "H:4", 200, 0), NULL), "fourth evicts");
    CHECK(c.count == 3 && c.floor_ms == 50, "floor %lld", (long long)c.floor_ms);
    CHECK(IS(ADMIT(&c, "k", 2, "H:9", 50, 0), "replay cache full"), "the evicted nonce never runs");
    CHECK(IS(ADMIT(&c, "k", 4, "H:5", 40, 0), "replay cache full"), "under the floor");
    /* evicting up to a deadline not later than the job's own: refused, the entries stay evicted */
    CHECK(IS(ADMIT(&c, "k", 5, "H:6", 100, 0), "replay cache full"), "deadline 100 = new floor");
    CHECK(c.floor_ms == 100 && c.count == 2, "floor %lld count %zu", (long long)c.floor_ms, c.count);
    /* expiry: entries whose deadline passed are dropped, not counted as evictions */
    CHECK(IS(ADMIT(&c, "k", 6, "H:7", 300, 250), NULL), "after expiry");
    CHECK(c.count == 1 && c.floor_ms == 100, "expired: count %zu", c.count);
    CHECK(IS(ADMIT(&c, "k", 3, "H:8", 260, 250), NULL), "an expired nonce's entry is gone");
    bridge__replay_destroy(&c);
    /* many entries: the hash table and heap grow, and every nonce is still found */
    bridge__replay_init(&c, 5000);
    for (int i = 0; i < 20000; i++) {
        char handle[32];
        snprintf(handle, sizeof handle, "H:%d", i);
        const char *why = ADMIT(&c, "k", i, handle, 1000 + i, 0);
        CHECK(IS(why, NULL), "entry %d: %s", i, why);
    }
    CHECK(c.count == 5000 && c.floor_ms == 1000 + 14999, "bounded: %zu, floor %lld", c.count,
          (long long)c.floor_ms);
    for (int i = 15000; i < 20000; i += 97)
        CHECK(IS(ADMIT(&c, "k", i, "H:x", 1000 + i, 0), "replayed"), "entry %d kept", i);
    bridge__replay_destroy(&c);
    return 0;
}

typedef struct race {
    bridge_replay_cache *cache;
    int id;
    int admitted;
} race;

static void *race_main(void *arg)
{
    race *r = arg;
    char handle[32];
    snprintf(handle, sizeof handle, "H:%d", r->id);
    for (int n = 0; n < 2000; n++)
        r->admitted += ADMIT(r->cache, "k", n, handle, INT64_MAX, 0) == NULL;
    return NULL;
}

static int test_replay_cache_threads(void)
{
    bridge_replay_cache c;
    bridge__replay_init(&c, 100000);
    race r[8];
    pthread_t t[8];
    for (int i = 0; i < 8; i++) {
        r[i] = (race){&c, i, 0};
        pthread_create(&t[i], NULL, race_main, &r[i]);
    }
    int total = 0;
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        total += r[i].admitted;
    }
    bridge__replay_destroy(&c);
    CHECK(total == 2000, "every nonce admitted once across 8 threads: %d", total);
    return 0;
}

/* ------------------------------------------------------------------ the job flow */

static const uint8_t KEY[] = "0123456789abcdef0123456789abcdef"; /* KEY_A's bytes */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A signed Echo job as a client makes it (mac NULL: computed with `key`). */
static void signed_job(bridge_buffer *out, const char *function, const char *key_id, const uint8_t *key,
                       size_t key_len, const uint8_t nonce[16], int64_t deadline, const uint8_t *body, size_t body_len,
                       bool tamper)
{
    const char *mk[1] = {"tenant"}, *mv[1] = {"a"};
    bridge_request_fields f = {.function = function, .key_id = key_id, .nonce = nonce,
                               .nonce_len = 16, .version = 1, .deadline_ms = deadline,
                               .encoding = 2, .n_metadata = 1, .meta_keys = mk, .meta_values = mv,
                               .body = body, .body_len = body_len};
    uint8_t mac[BRIDGE_MAC_SIZE];
    bridge__request_mac(key, key_len, &f, mac);
    Bridge__V1__Request req = BRIDGE__V1__REQUEST__INIT;
    Bridge__V1__Request__MetadataEntry entry = BRIDGE__V1__REQUEST__METADATA_ENTRY__INIT;
    Bridge__V1__Request__MetadataEntry *entries[1] = {&entry};
    entry.key = "tenant";
    entry.value = "a";
    req.n_metadata = 1;
    req.metadata = entries;
    req.version = 1;
    req.encoding = BRIDGE__V1__ENCODING__MSGPACK;
    req.deadline_ms = deadline;
    req.body.data = (uint8_t *)body;
    req.body.len = body_len;
    req.key_id = (char *)key_id;
    req.nonce.data = (uint8_t *)nonce;
    req.nonce.len = 16;
    req.mac.data = mac;
    req.mac.len = sizeof mac;
    out->len = 0;
    bridge_encode(&req.base, BRIDGE_ENCODING_PROTOBUF, out, NULL, 0);
    uint8_t *at = tamper ? memmem(out->data, out->len, body, body_len) : NULL;
    if (at != NULL)
        at[3] ^= 0x01; /* one bit of the body */
}

/* The payload of a signed reply packet when its MAC is right, else -1. */
static long opened(const bridge_buffer *b, const char *function, const uint8_t nonce[16], int packet)
{
    if (b->len < BRIDGE_MAC_SIZE)
        return -1;
    uint8_t mac[BRIDGE_MAC_SIZE];
    size_t len = b->len - BRIDGE_MAC_SIZE;
    bridge__reply_mac(KEY, 32, function, "k2026", nonce, 16, packet, b->data, len, mac);
    return memcmp(mac, b->data + len, BRIDGE_MAC_SIZE) == 0 ? (long)len : -1;
}

/* The UNAUTHENTICATED refusal in `out` (signed or not) names `why`. */
static bool refused_with(const bridge_buffer *out, long len, int code, const char *why)
{
    Bridge__V1__Error *e = (Bridge__V1__Error *)protobuf_c_message_unpack(
        &bridge__v1__error__descriptor, NULL, len < 0 ? out->len : (size_t)len, out->data);
    bool ok = e && (int)e->code == code && strstr(e->message, why);
    if (!ok)
        printf("  refusal: %s\n", e ? e->message : "(not an Error)");
    if (e != NULL)
        protobuf_c_message_free_unpacked(&e->base, NULL);
    return ok;
}

static bool refused(const bridge_buffer *out, long len, const char *why)
{
    return refused_with(out, len, BRIDGE__V1__CODE__UNAUTHENTICATED, why);
}

static int s_echo(bridge_ctx *ctx, const Bridge__Interop__V1__Composite *req, Bridge__Interop__V1__Composite *rep)
{
    (void)ctx;
    *rep = *req;
    return 0;
}

static int s_stream(bridge_ctx *ctx, const Bridge__Interop__V1__StreamRequest *req)
{
    Bridge__Interop__V1__StreamItem item = BRIDGE__INTEROP__V1__STREAM_ITEM__INIT;
    bridge_ctx_send_progress(ctx, 0, 1);
    for (item.index = 0; item.index < req->count; item.index++)
        bridge_ctx_send(ctx, &item.base);
    return 0;
}

#define ECHO BRIDGE_INTEROP_V1_INTEROP_ECHO_FUNCTION

static int test_signed_flow(void)
{
    bridge_worker_options o = bridge_worker_options_default();
    o.quiet = true;
    o.no_env_keys = true;
    bridge_worker *w = bridge_worker_new(&o);
    static const bridge_interop_v1_interop_handlers h = {.echo = s_echo, .stream = s_stream};
    static const bridge_interop_v1_bare_handlers bare = {.echo_msgpack = s_echo};
    CHECK(w && bridge_interop_v1_interop_register(w, &h, NULL) == 0 &&
              bridge_interop_v1_bare_register(w, &bare, NULL) == 0, "worker");
    CHECK(bridge_worker_set_keys(w, "k2026:" KEY_A ",k2025:" KEY_B, NULL, 0) == 0, "keys");
    bridge_buffer p = BRIDGE_BUFFER_INIT, out = BRIDGE_BUFFER_INIT, data = BRIDGE_BUFFER_INIT;
    static const uint8_t body[] = "\x81\xa4text\xa7pay 100"; /* msgpack {"text": "pay 100"} */
    const size_t body_len = sizeof body - 1;
    uint8_t nonce[16] = {1, 2, 3};
    int64_t soon = now_ms() + 30000;
    char kind = 0;

    /* a good job runs; its reply carries the reply MAC */
    signed_job(&p, ECHO, "k2026", KEY, 32, nonce, soon, body, body_len, false);
    out.len = 0;
    CHECK(bridge_worker_process_job(w, ECHO, "H:1", p.data, p.len, &kind, &out, NULL) == 0 && kind == 'C',
          "signed echo: %c", kind);
    long len = opened(&out, ECHO, nonce, 2);
    CHECK(len == 23 + (long)body_len && memcmp(out.data + 23, body, body_len) == 0, "signed reply");
    /* the same job again is a replay, whatever its handle (another gearmand, a restarted one) */
    for (int i = 0; i < 2; i++) {
        out.len = 0;
        bridge_worker_process_job(w, ECHO, i ? "H:2" : "H:1", p.data, p.len, &kind, &out, NULL);
        len = opened(&out, ECHO, nonce, 3);
        CHECK(kind == 'E' && len >= 0 && refused(&out, len, "replayed"), "replay %d: %c", i, kind);
    }

    /* every hostile job: UNAUTHENTICATED naming the check; signed when it named a known key */
    struct {
        const char *name, *key_id;
        const uint8_t *key;
        int64_t deadline;
        bool tamper, signed_refusal;
        const char *why;
    } cases[] = {
        {"forged", "k2026", (const uint8_t *)"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", soon, false, true, "bad signature"},
        {"tampered", "k2026", KEY, soon, true, true, "bad signature"},
        {"unknown key", "k1999", KEY, soon, false, false, "unknown key id"},
        {"no deadline", "k2026", KEY, 0, false, true, "a signed job needs a deadline"},
        {"expired", "k2026", KEY, now_ms() - 1000, false, true, "expired"},
        {"too far ahead", "k2026", KEY, now_ms() + 86400000LL + 400000, false, true, "deadline too far ahead"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        nonce[15] = (uint8_t)(i + 1);
        signed_job(&p, ECHO, cases[i].key_id, cases[i].key, 32, nonce, cases[i].deadline, body, body_len,
                   cases[i].tamper);
        out.len = 0;
        bridge_worker_process(w, ECHO, p.data, p.len, &kind, &out, NULL);
        len = opened(&out, ECHO, nonce, 3);
        CHECK(kind == 'E' && (len >= 0) == cases[i].signed_refusal && refused(&out, len, cases[i].why),
              "%s: %c, signed %d", cases[i].name, kind, len >= 0);
    }
    /* an unsigned job: refused, unsigned */
    Bridge__V1__Request plain = BRIDGE__V1__REQUEST__INIT;
    plain.version = 1;
    plain.body.data = (uint8_t *)body;
    plain.body.len = body_len;
    p.len = 0;
    bridge_encode(&plain.base, BRIDGE_ENCODING_PROTOBUF, &p, NULL, 0);
    out.len = 0;
    bridge_worker_process(w, ECHO, p.data, p.len, &kind, &out, NULL);
    CHECK(kind == 'E' && refused(&out, -1, "unsigned job"), "unsigned");
    /* a bare method: refused in the bare form (msgpack: the message text) */
    out.len = 0;
    bridge_worker_process(w, BRIDGE_INTEROP_V1_BARE_ECHO_MSGPACK_FUNCTION, body, body_len, &kind, &out, NULL);
    CHECK(kind == 'E' && memmem(out.data, out.len, "bare jobs cannot be signed", 26), "bare");
    /* rotation: the older key is accepted too */
    nonce[15] = 0x77;
    static const uint8_t key_b[] = "another-key-of-at-least-16";
    signed_job(&p, ECHO, "k2025", key_b, sizeof key_b - 1, nonce, soon, body, body_len, false);
    out.len = 0;
    bridge_worker_process(w, ECHO, p.data, p.len, &kind, &out, NULL);
    CHECK(kind == 'C', "the older key: %c", kind);

    /* a stream: every WORK_DATA (the attempt marker, the items) and the end are signed */
    Bridge__Interop__V1__StreamRequest sr = BRIDGE__INTEROP__V1__STREAM_REQUEST__INIT;
    sr.count = 2;
    bridge_buffer sbody = BRIDGE_BUFFER_INIT;
    bridge_encode(&sr.base, BRIDGE_ENCODING_MSGPACK, &sbody, NULL, 0);
    nonce[15] = 0x88;
    const char *stream = BRIDGE_INTEROP_V1_INTEROP_STREAM_FUNCTION;
    signed_job(&p, stream, "k2026", KEY, 32, nonce, soon, sbody.data, sbody.len, false);
    bridge_buffer_free(&sbody);
    out.len = 0;
    bridge_worker_process(w, stream, p.data, p.len, &kind, &out, &data);
    CHECK(kind == 'C' && opened(&out, stream, nonce, 2) == 23, "stream end");
    size_t packets = 0;
    for (size_t at = 0; at + 4 <= data.len; packets++) {
        size_t n = (size_t)data.data[at] << 24 | (size_t)data.data[at + 1] << 16 |
                   (size_t)data.data[at + 2] << 8 | data.data[at + 3];
        bridge_buffer one = {data.data + at + 4, n, 0};
        CHECK(opened(&one, stream, nonce, 1) >= 23, "WORK_DATA %zu not signed", packets);
        at += 4 + n;
    }
    CHECK(packets == 3, "marker + 2 items: %zu", packets);
    bridge_buffer_free(&p);
    bridge_buffer_free(&out);
    bridge_buffer_free(&data);
    bridge_worker_free(w);
    return 0;
}

/* A full replay cache: RESOURCE_EXHAUSTED "replay cache full" (signed), not UNAUTHENTICATED. */
static int test_replay_cache_full_flow(void)
{
    bridge_worker_options o = bridge_worker_options_default();
    o.quiet = true;
    o.no_env_keys = true;
    o.replay_capacity = 1;
    bridge_worker *w = bridge_worker_new(&o);
    static const bridge_interop_v1_interop_handlers h = {.echo = s_echo};
    CHECK(w && bridge_interop_v1_interop_register(w, &h, NULL) == 0 &&
              bridge_worker_set_keys(w, "k2026:" KEY_A, NULL, 0) == 0, "worker");
    bridge_buffer p = BRIDGE_BUFFER_INIT, out = BRIDGE_BUFFER_INIT;
    int64_t deadline = now_ms() + 30000;
    char kind = 0, kinds[4] = "";
    long len = -1;
    for (int i = 0; i < 3; i++) { /* the 2nd evicts the 1st (floor = deadline): refused */
        uint8_t nonce[16] = {9, (uint8_t)i};
        signed_job(&p, ECHO, "k2026", KEY, 32, nonce, deadline + (i == 2), (const uint8_t *)"", 0, false);
        out.len = 0;
        bridge_worker_process(w, ECHO, p.data, p.len, &kind, &out, NULL);
        kinds[i] = kind;
        if (i == 1)
            len = opened(&out, ECHO, nonce, 3);
        if (i == 1)
            CHECK(len >= 0 && refused_with(&out, len, BRIDGE__V1__CODE__RESOURCE_EXHAUSTED,
                                           "replay cache full"), "full: signed RESOURCE_EXHAUSTED");
    }
    CHECK(strcmp(kinds, "CEC") == 0, "kinds %s (a later deadline runs again)", kinds);
    bridge_buffer_free(&p);
    bridge_buffer_free(&out);
    bridge_worker_free(w);
    return 0;
}

void signing_tests(void)
{
    char name[96];
    for (size_t i = 0; i < signing_vector_count; i++) {
        current = &signing_vectors[i];
        snprintf(name, sizeof name, "signing_%s", current->name);
        run(name, vector_case);
    }
    run("base64_as_python", test_base64_as_python);
    run("key_lists", test_key_lists);
    run("keys_from_environment", test_keys_from_environment);
    run("replay_cache", test_replay_cache);
    run("replay_cache_threads", test_replay_cache_threads);
    run("signed_flow", test_signed_flow);
    run("replay_cache_full_flow", test_replay_cache_full_flow);
}
