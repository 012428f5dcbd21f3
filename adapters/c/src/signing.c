/*
 * The exact bytes a request and a reply MAC cover (wire contract, 9.1 and 9.3), HMAC-SHA256 over
 * them with OpenSSL libcrypto (EVP_MAC, fed part by part: a 64 MiB body is not copied), and the
 * checks of a worker with keys (9.2) in the order and with the reasons of
 * bridge/security/verify.py. MACs are compared with CRYPTO_memcmp (constant time).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "security.h"

/* Where the signed bytes go: a buffer (the vector tests) or a running MAC. */
typedef struct feed {
    bridge_buffer *buf;
    EVP_MAC_CTX *mac;
    bool ok;
} feed;

static void put(feed *f, const void *data, size_t len)
{
    if (!f->ok || len == 0)
        return;
    if (f->buf != NULL)
        f->ok = bridge__buffer_append(f->buf, data, len) == BRIDGE_STATUS_OK;
    else
        f->ok = EVP_MAC_update(f->mac, data, len) == 1;
}

static void put_be(feed *f, uint64_t v, int bytes)
{
    uint8_t b[8];
    for (int i = bytes - 1; i >= 0; i--, v >>= 8)
        b[i] = (uint8_t)v;
    put(f, b, (size_t)bytes);
}

static void put_str(feed *f, const void *data, size_t len) /* u32 length, then the bytes */
{
    put_be(f, (uint64_t)len, 4);
    put(f, data, len);
}

typedef struct meta_entry {
    const char *key;
    const char *value;
    size_t index;
} meta_entry;

static int by_key_bytes(const void *a, const void *b)
{
    /* strcmp compares as unsigned char: the order of the keys' UTF-8 bytes; then wire order */
    const meta_entry *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c != 0 ? c : (x->index > y->index) - (x->index < y->index);
}

static void feed_request(feed *f, const bridge_request_fields *r)
{
    static const char domain[] = "bridge.v1.request"; /* and its 0x00 */
    put(f, domain, sizeof domain);
    put_str(f, r->function, strlen(r->function));
    put_str(f, r->key_id, strlen(r->key_id));
    put_str(f, r->nonce, r->nonce_len);
    put_be(f, r->version, 4);
    put_be(f, (uint64_t)r->deadline_ms, 8);
    put_be(f, r->encoding, 4);
    meta_entry *sorted = calloc(r->n_metadata ? r->n_metadata : 1, sizeof *sorted);
    if (sorted == NULL) {
        f->ok = false;
        return;
    }
    for (size_t i = 0; i < r->n_metadata; i++)
        sorted[i] = (meta_entry){r->meta_keys[i], r->meta_values[i], i};
    qsort(sorted, r->n_metadata, sizeof *sorted, by_key_bytes);
    /* A key repeated on the protobuf wire is one map entry, the last one (as protobuf reads it). */
    size_t n = 0;
    for (size_t i = 0; i < r->n_metadata; i++)
        if (i + 1 == r->n_metadata || strcmp(sorted[i].key, sorted[i + 1].key) != 0)
            sorted[n++] = sorted[i];
    put_be(f, n, 4);
    for (size_t i = 0; i < n; i++) {
        put_str(f, sorted[i].key, strlen(sorted[i].key));
        put_str(f, sorted[i].value, strlen(sorted[i].value));
    }
    free(sorted);
    put_be(f, r->body_len, 8);
    put(f, r->body, r->body_len);
}

static void feed_reply(feed *f, const char *function, const char *key_id, const uint8_t *nonce,
                       size_t nonce_len, int packet, const uint8_t *payload, size_t payload_len)
{
    static const char domain[] = "bridge.v1.reply";
    put(f, domain, sizeof domain);
    put_str(f, function, strlen(function));
    put_str(f, key_id, strlen(key_id));
    put_str(f, nonce, nonce_len);
    put_be(f, (uint64_t)packet, 1);
    put_be(f, payload_len, 8);
    put(f, payload, payload_len);
}

bridge_status bridge__request_input(const bridge_request_fields *r, bridge_buffer *out)
{
    feed f = {.buf = out, .ok = true};
    feed_request(&f, r);
    return f.ok ? BRIDGE_STATUS_OK : BRIDGE_STATUS_NO_MEMORY;
}

bridge_status bridge__reply_input(const char *function, const char *key_id, const uint8_t *nonce,
                                  size_t nonce_len, int packet, const uint8_t *payload,
                                  size_t payload_len, bridge_buffer *out)
{
    feed f = {.buf = out, .ok = true};
    feed_reply(&f, function, key_id, nonce, nonce_len, packet, payload, payload_len);
    return f.ok ? BRIDGE_STATUS_OK : BRIDGE_STATUS_NO_MEMORY;
}

/* HMAC-SHA256 is fetched and set up once per process (fetching the algorithms by name is most of
 * the cost of a short MAC); each MAC starts from a copy of that context (2.6 us instead of 4.8). */
static EVP_MAC_CTX *hmac_template;
static pthread_once_t hmac_once = PTHREAD_ONCE_INIT;

static void fetch_hmac(void)
{
    EVP_MAC *alg = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = alg ? EVP_MAC_CTX_new(alg) : NULL;
    EVP_MAC_free(alg); /* the context holds its own reference */
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    if (ctx != NULL && EVP_MAC_CTX_set_params(ctx, params) != 1) {
        EVP_MAC_CTX_free(ctx);
        ctx = NULL;
    }
    hmac_template = ctx;
}

static EVP_MAC_CTX *mac_start(const uint8_t *key, size_t key_len)
{
    pthread_once(&hmac_once, fetch_hmac);
    EVP_MAC_CTX *ctx = hmac_template ? EVP_MAC_CTX_dup(hmac_template) : NULL;
    if (ctx != NULL && EVP_MAC_init(ctx, key, key_len, NULL) != 1) {
        EVP_MAC_CTX_free(ctx);
        ctx = NULL;
    }
    return ctx;
}

static bridge_status mac_finish(feed *f, uint8_t mac[BRIDGE_MAC_SIZE])
{
    size_t len = 0;
    bool ok = f->ok && EVP_MAC_final(f->mac, mac, &len, BRIDGE_MAC_SIZE) == 1 &&
              len == BRIDGE_MAC_SIZE;
    EVP_MAC_CTX_free(f->mac);
    return ok ? BRIDGE_STATUS_OK : BRIDGE_STATUS_NO_MEMORY;
}

bridge_status bridge__request_mac(const uint8_t *key, size_t key_len, const bridge_request_fields *r,
                                  uint8_t mac[BRIDGE_MAC_SIZE])
{
    feed f = {.mac = mac_start(key, key_len), .ok = true};
    if (f.mac == NULL)
        return BRIDGE_STATUS_NO_MEMORY;
    feed_request(&f, r);
    return mac_finish(&f, mac);
}

bridge_status bridge__reply_mac(const uint8_t *key, size_t key_len, const char *function,
                                const char *key_id, const uint8_t *nonce, size_t nonce_len,
                                int packet, const uint8_t *payload, size_t payload_len,
                                uint8_t mac[BRIDGE_MAC_SIZE])
{
    feed f = {.mac = mac_start(key, key_len), .ok = true};
    if (f.mac == NULL)
        return BRIDGE_STATUS_NO_MEMORY;
    feed_reply(&f, function, key_id, nonce, nonce_len, packet, payload, payload_len);
    return mac_finish(&f, mac);
}

/* ------------------------------------------------------------------ the checks */

const bridge_key *bridge__reply_key(const bridge_verifier *v, const Bridge__V1__Request *request)
{
    if (request->nonce.len != BRIDGE_NONCE_SIZE || request->key_id == NULL)
        return NULL;
    return bridge__keyring_find(&v->keys, request->key_id);
}

const char *bridge__verify_job(bridge_verifier *v, const char *function,
                               const Bridge__V1__Request *request, int64_t now_ms)
{
    /* 1. the key */
    if (request->key_id == NULL || request->key_id[0] == '\0')
        return "unsigned job";
    const bridge_key *key = bridge__keyring_find(&v->keys, request->key_id);
    if (key == NULL)
        return "unknown key id";
    /* 2. the signature */
    if (request->nonce.len != BRIDGE_NONCE_SIZE || request->mac.len != BRIDGE_MAC_SIZE)
        return "bad signature";
    const char **keys = calloc(request->n_metadata ? request->n_metadata * 2 : 1, sizeof *keys);
    if (keys == NULL)
        return "bad signature"; /* out of memory: never run an unchecked job */
    for (size_t i = 0; i < request->n_metadata; i++) {
        keys[i] = request->metadata[i]->key;
        keys[request->n_metadata + i] = request->metadata[i]->value;
    }
    bridge_request_fields fields = {
        .function = function,
        .key_id = request->key_id,
        .nonce = request->nonce.data,
        .nonce_len = request->nonce.len,
        .version = request->version,
        .deadline_ms = request->deadline_ms,
        .encoding = (uint32_t)request->encoding,
        .n_metadata = request->n_metadata,
        .meta_keys = keys,
        .meta_values = keys + request->n_metadata,
        .body = request->body.data,
        .body_len = request->body.len,
    };
    uint8_t expected[BRIDGE_MAC_SIZE];
    bridge_status st = bridge__request_mac(key->bytes, key->size, &fields, expected);
    free(keys);
    if (st != BRIDGE_STATUS_OK || CRYPTO_memcmp(expected, request->mac.data, BRIDGE_MAC_SIZE) != 0)
        return "bad signature";
    /* 3. the deadline */
    if (request->deadline_ms == 0)
        return "a signed job needs a deadline";
    if (request->deadline_ms <= now_ms)
        return "expired";
    if (request->deadline_ms > now_ms + v->window_ms + BRIDGE_CLOCK_SKEW_MS)
        return "deadline too far ahead";
    /* 4. the nonce */
    return bridge__replay_admit(&v->replay, request->key_id, request->nonce.data,
                                request->deadline_ms, now_ms);
}
