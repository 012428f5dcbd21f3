/*
 * Signed jobs and replies (wire contract, section 9), private: the keyring (keys.c), the exact
 * bytes signed and the checks of a worker with keys (signing.c), the bounded replay cache
 * (replay.c). Keys are never logged and never put in a message.
 */
#ifndef BRIDGE_SECURITY_H
#define BRIDGE_SECURITY_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bridge/v1/envelope.pb-c.h"
#include "internal.h"

#pragma GCC visibility push(hidden)

#define BRIDGE_MIN_KEY_BYTES 16
#define BRIDGE_MAX_KEY_ID 64
#define BRIDGE_NONCE_SIZE 16
#define BRIDGE_MAC_SIZE 32
#define BRIDGE_DEFAULT_WINDOW_MS ((int64_t)86400 * 1000)
#define BRIDGE_CLOCK_SKEW_MS ((int64_t)300 * 1000)
#define BRIDGE_DEFAULT_REPLAY_CAPACITY 100000

/* ------------------------------------------------------------------ keys (keys.c) */

typedef struct bridge_key {
    char id[BRIDGE_MAX_KEY_ID + 1];
    uint8_t *bytes;
    size_t size;
} bridge_key;

typedef struct bridge_keyring {
    bridge_key *keys;
    size_t count;
} bridge_keyring;

/* Standard base64 read as Python's base64.b64decode(text, validate=True) reads it: the alphabet
 * only, padding optional after a complete quad, none misplaced. *out is malloc'd (NULL with 0). */
bool bridge__base64_decode(const char *text, size_t len, uint8_t **out, size_t *out_len);

/* `id:BASE64` entries separated by commas or newlines, `#` starting a comment line (as
 * bridge/security/keys.py Keyring.parse): appended to `ring` (which is left unchanged on error;
 * the reason, never a key, in err). `signing_id` (may be NULL) must be one of the ids. */
bridge_status bridge__keyring_parse(bridge_keyring *ring, const char *text, const char *signing_id,
                                    char *err, size_t err_size);
/* One more key; same checks as the parse. */
bridge_status bridge__keyring_add(bridge_keyring *ring, const char *id, const uint8_t *key,
                                  size_t size, char *err, size_t err_size);
/* BRIDGE_KEYS, or the file BRIDGE_KEYS_FILE, into `ring`; *found false when neither is set. */
bridge_status bridge__keyring_from_env(bridge_keyring *ring, bool *found, char *err,
                                       size_t err_size);
const bridge_key *bridge__keyring_find(const bridge_keyring *ring, const char *id);
/* Wipes and frees every key. */
void bridge__keyring_clear(bridge_keyring *ring);

/* ------------------------------------------------------------------ MACs (signing.c) */

typedef struct bridge_request_fields {
    const char *function;
    const char *key_id;
    const uint8_t *nonce;
    size_t nonce_len;
    uint32_t version;
    int64_t deadline_ms;
    uint32_t encoding;
    /* metadata entries, any order (sorted for the MAC by their keys' bytes) */
    size_t n_metadata;
    const char *const *meta_keys;
    const char *const *meta_values;
    const uint8_t *body;
    size_t body_len;
} bridge_request_fields;

/* The bytes a request MAC covers (9.1), appended to `out` (for the vector tests). */
bridge_status bridge__request_input(const bridge_request_fields *f, bridge_buffer *out);
/* HMAC-SHA256 of those bytes, computed without copying the body. */
bridge_status bridge__request_mac(const uint8_t *key, size_t key_len, const bridge_request_fields *f,
                                  uint8_t mac[BRIDGE_MAC_SIZE]);
/* The bytes a reply MAC covers (9.3), appended to `out`; packet: 1 DATA, 2 COMPLETE, 3 EXCEPTION. */
bridge_status bridge__reply_input(const char *function, const char *key_id, const uint8_t *nonce,
                                  size_t nonce_len, int packet, const uint8_t *payload,
                                  size_t payload_len, bridge_buffer *out);
bridge_status bridge__reply_mac(const uint8_t *key, size_t key_len, const char *function,
                                const char *key_id, const uint8_t *nonce, size_t nonce_len,
                                int packet, const uint8_t *payload, size_t payload_len,
                                uint8_t mac[BRIDGE_MAC_SIZE]);

/* ------------------------------------------------------------------ replay cache (replay.c) */

typedef struct replay_entry replay_entry;

/* (key id, nonce) -> deadline until the deadline; bounded, with an eviction floor; thread-safe
 * (bridge/security/verify.py ReplayCache). */
typedef struct bridge_replay_cache {
    pthread_mutex_t lock;
    size_t capacity;
    size_t count;
    replay_entry **buckets;
    size_t n_buckets;
    replay_entry **heap; /* min-heap by deadline */
    size_t heap_cap;
    int64_t floor_ms;
} bridge_replay_cache;

void bridge__replay_init(bridge_replay_cache *cache, size_t capacity);
void bridge__replay_destroy(bridge_replay_cache *cache);
/* The one check that is no authentication failure: RESOURCE_EXHAUSTED (section 9.2). */
#define BRIDGE_REPLAY_CACHE_FULL "replay cache full"

/* NULL when the job may run, else why not ("replayed", BRIDGE_REPLAY_CACHE_FULL). */
const char *bridge__replay_admit(bridge_replay_cache *cache, const char *key_id,
                                 const uint8_t nonce[BRIDGE_NONCE_SIZE], int64_t deadline_ms,
                                 int64_t now_ms);

/* ------------------------------------------------------------------ the checks (signing.c) */

typedef struct bridge_verifier {
    bridge_keyring keys;
    int64_t window_ms;
    bridge_replay_cache replay;
    bool quiet; /* no warning line for a refused job */
} bridge_verifier;

/* The key a job's replies are signed with: the job's key when it names a known one and carries a
 * 16-byte nonce, else NULL (unsigned replies). */
const bridge_key *bridge__reply_key(const bridge_verifier *v, const Bridge__V1__Request *request);
/* Section 9.2's checks in order at `now_ms`: NULL when the job may run, else the failed check. */
const char *bridge__verify_job(bridge_verifier *v, const char *function,
                               const Bridge__V1__Request *request, int64_t now_ms);

#pragma GCC visibility pop

#endif
