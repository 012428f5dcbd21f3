/*
 * Named HMAC keys (wire contract, section 9): BRIDGE_KEYS=id1:BASE64,id2:BASE64, the file
 * BRIDGE_KEYS_FILE, or the API; the same syntax, checks and reasons as bridge/security/keys.py.
 * A key never reaches a message or a log line; freed keys are wiped first.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "security.h"

/* ------------------------------------------------------------------ base64 */

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* CPython's binascii.a2b_base64(strict_mode=True), which base64.b64decode(validate=True) is. */
bool bridge__base64_decode(const char *text, size_t len, uint8_t **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (len > 0 && text[0] == '=')
        return false; /* leading padding */
    uint8_t *bin = malloc(len / 4 * 3 + 3);
    if (bin == NULL)
        return false;
    size_t n = 0;
    int quad = 0, pads = 0;
    bool padding = false;
    unsigned left = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == '=') {
            padding = true;
            if (quad >= 2 && quad + ++pads >= 4) {
                if (i + 1 < len)
                    goto bad; /* excess data after padding */
                goto done;
            }
            continue;
        }
        int v = b64_value(c);
        if (v < 0 || padding)
            goto bad; /* not base64, or data after a pad */
        pads = 0;
        switch (quad) {
        case 0: left = (unsigned)v; quad = 1; break;
        case 1: bin[n++] = (uint8_t)(left << 2 | (unsigned)v >> 4); left = (unsigned)v & 0x0f; quad = 2; break;
        case 2: bin[n++] = (uint8_t)(left << 4 | (unsigned)v >> 2); left = (unsigned)v & 0x03; quad = 3; break;
        default: bin[n++] = (uint8_t)(left << 6 | (unsigned)v); quad = 0; break;
        }
    }
    if (quad != 0)
        goto bad; /* a lone character, or a missing pad */
done:
    *out = bin;
    *out_len = n;
    return true;
bad:
    OPENSSL_cleanse(bin, len / 4 * 3 + 3);
    free(bin);
    return false;
}

/* ------------------------------------------------------------------ the keyring */

static bool is_space(unsigned char c) /* Python's str.strip() over ASCII */
{
    return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
}

static bool is_line_break(unsigned char c) /* Python's str.splitlines() over ASCII */
{
    return c == '\n' || c == '\r' || c == '\v' || c == '\f' || (c >= 0x1c && c <= 0x1e);
}

static void strip(const char **s, size_t *len)
{
    while (*len > 0 && is_space((unsigned char)**s)) {
        (*s)++;
        (*len)--;
    }
    while (*len > 0 && is_space((unsigned char)(*s)[*len - 1]))
        (*len)--;
}

/* A key id as Python's repr shows it (quotes, escapes): safe in a message, never a key. */
static void quote_id(const char *id, size_t len, char *out, size_t size)
{
    size_t o = 0;
    if (len > BRIDGE_MAX_KEY_ID + 16)
        len = BRIDGE_MAX_KEY_ID + 16;
    out[o++] = '\'';
    for (size_t i = 0; i < len && o + 6 < size; i++) {
        unsigned char c = (unsigned char)id[i];
        if (c >= 0x20 && c < 0x7f && c != '\'' && c != '\\')
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, size - o, "\\x%02x", c);
    }
    out[o++] = '\'';
    out[o] = '\0';
}

static bool valid_id(const char *id, size_t len);

/* How an error names a key (as keys.py's _name): its id when that cannot be a key written the
 * wrong way round (a valid id of at most 20 characters: a 16-byte key is 22+ base64 characters),
 * else its entry number (0: none). Errors never show a key. */
static void name_key(const char *id, size_t len, size_t number, char *out, size_t size)
{
    if (len <= 20 && valid_id(id, len))
        quote_id(id, len, out, size);
    else if (number > 0)
        snprintf(out, size, "entry %zu", number);
    else
        snprintf(out, size, "(not shown: it looks like a key)");
}

static bool valid_id(const char *id, size_t len)
{
    if (len < 1 || len > BRIDGE_MAX_KEY_ID)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)id[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static void wipe_key(bridge_key *k)
{
    if (k->bytes != NULL)
        OPENSSL_cleanse(k->bytes, k->size);
    free(k->bytes);
    k->bytes = NULL;
    k->size = 0;
}

void bridge__keyring_clear(bridge_keyring *ring)
{
    for (size_t i = 0; i < ring->count; i++)
        wipe_key(&ring->keys[i]);
    free(ring->keys);
    ring->keys = NULL;
    ring->count = 0;
}

const bridge_key *bridge__keyring_find(const bridge_keyring *ring, const char *id)
{
    if (id == NULL)
        return NULL;
    for (size_t i = 0; i < ring->count; i++)
        if (strcmp(ring->keys[i].id, id) == 0)
            return &ring->keys[i];
    return NULL;
}

/* A parsed entry before the checks (the ids are checked after every entry is read, as Python's
 * constructor does after its parse). */
typedef struct pending {
    const char *id;
    size_t id_len;
    uint8_t *key;
    size_t size;
} pending;

static void free_pending(pending *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i].key != NULL)
            OPENSSL_cleanse(p[i].key, p[i].size);
        free(p[i].key);
    }
    free(p);
}

/* Checks `p` (the ids, the sizes, the signing id against the ring's and p's ids) and moves the
 * keys into `ring`; on error nothing moves. */
static bridge_status adopt(bridge_keyring *ring, pending *p, size_t n, const char *signing_id,
                           char *err, size_t err_size)
{
    char quoted[4 * BRIDGE_MAX_KEY_ID + 80];
    if (ring->count + n == 0)
        return bridge__fail(BRIDGE_STATUS_INVALID, err, err_size, "a keyring needs at least one key");
    for (size_t i = 0; i < n; i++) {
        name_key(p[i].id, p[i].id_len, ring->count + i + 1, quoted, sizeof quoted);
        if (!valid_id(p[i].id, p[i].id_len))
            return bridge__fail(BRIDGE_STATUS_INVALID, err, err_size,
                                "key %s: the id must be 1 to 64 characters of [A-Za-z0-9._-] "
                                "(entries are ID:BASE64)", quoted);
        if (p[i].size < BRIDGE_MIN_KEY_BYTES)
            return bridge__fail(BRIDGE_STATUS_INVALID, err, err_size,
                                "key %s is %zu bytes; at least %d are needed", quoted, p[i].size,
                                BRIDGE_MIN_KEY_BYTES);
        char id[BRIDGE_MAX_KEY_ID + 1];
        memcpy(id, p[i].id, p[i].id_len);
        id[p[i].id_len] = '\0';
        if (bridge__keyring_find(ring, id) != NULL)
            return bridge__fail(BRIDGE_STATUS_INVALID, err, err_size, "key %s is listed twice",
                                quoted);
    }
    if (signing_id != NULL && signing_id[0] != '\0') {
        bool known = bridge__keyring_find(ring, signing_id) != NULL;
        for (size_t i = 0; i < n && !known; i++)
            known = p[i].id_len == strlen(signing_id) && memcmp(p[i].id, signing_id, p[i].id_len) == 0;
        if (!known) {
            char ids[1024] = "";
            size_t o = 0;
            for (size_t i = 0; i < ring->count + n && o < sizeof ids; i++) {
                const char *id = i < ring->count ? ring->keys[i].id : p[i - ring->count].id;
                int len = i < ring->count ? (int)strlen(id) : (int)p[i - ring->count].id_len;
                o += (size_t)snprintf(ids + o, sizeof ids - o, "%s%.*s", i ? ", " : "", len, id);
            }
            name_key(signing_id, strlen(signing_id), 0, quoted, sizeof quoted);
            return bridge__fail(BRIDGE_STATUS_INVALID, err, err_size,
                                "the signing key id %s is not among the keys (%s); "
                                "BRIDGE_SIGNING_KEY names a key id, not a key", quoted, ids);
        }
    }
    bridge_key *grown = realloc(ring->keys, (ring->count + n + 1) * sizeof *grown);
    if (grown == NULL)
        return bridge__fail(BRIDGE_STATUS_NO_MEMORY, err, err_size, "out of memory");
    ring->keys = grown;
    for (size_t i = 0; i < n; i++) {
        bridge_key *k = &ring->keys[ring->count++];
        memcpy(k->id, p[i].id, p[i].id_len);
        k->id[p[i].id_len] = '\0';
        k->bytes = p[i].key;
        k->size = p[i].size;
        p[i].key = NULL;
    }
    return BRIDGE_STATUS_OK;
}

bridge_status bridge__keyring_add(bridge_keyring *ring, const char *id, const uint8_t *key,
                                  size_t size, char *err, size_t err_size)
{
    if (id == NULL || (key == NULL && size > 0))
        return bridge__fail(BRIDGE_STATUS_INVALID, err, err_size, "a key needs an id and bytes");
    pending *p = calloc(1, sizeof *p);
    if (p == NULL || (p->key = malloc(size ? size : 1)) == NULL) {
        free(p);
        return bridge__fail(BRIDGE_STATUS_NO_MEMORY, err, err_size, "out of memory");
    }
    if (size > 0)
        memcpy(p->key, key, size);
    p->id = id;
    p->id_len = strnlen(id, BRIDGE_MAX_KEY_ID + 1);
    p->size = size;
    bridge_status st = adopt(ring, p, 1, NULL, err, err_size);
    free_pending(p, 1);
    return st;
}

bridge_status bridge__keyring_parse(bridge_keyring *ring, const char *text, const char *signing_id,
                                    char *err, size_t err_size)
{
    if (text == NULL)
        return bridge__fail(BRIDGE_STATUS_INVALID, err, err_size, "no keys given");
    /* Comment lines become empty: the rest is one comma-separated list (lines joined by ','). */
    size_t len = strlen(text);
    char *list = malloc(len + 1);
    pending *p = NULL;
    size_t n = 0, number = 0;
    bridge_status st = BRIDGE_STATUS_OK;
    if (list == NULL)
        return bridge__fail(BRIDGE_STATUS_NO_MEMORY, err, err_size, "out of memory");
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        size_t end = i;
        while (end < len && !is_line_break((unsigned char)text[end]))
            end++;
        size_t first = i;
        while (first < end && is_space((unsigned char)text[first]))
            first++;
        bool comment = first < end && text[first] == '#'; /* dropped, line and all */
        if (!comment) {
            memcpy(list + o, text + i, end - i);
            o += end - i;
        }
        if (end < len && text[end] == '\r' && end + 1 < len && text[end + 1] == '\n')
            end++;
        i = end + 1;
        if (end < len && !comment)
            list[o++] = ','; /* a line break between entries */
    }
    list[o] = '\0';
    for (const char *entry = list; entry != NULL;) {
        const char *comma = memchr(entry, ',', (size_t)(list + o - entry));
        size_t entry_len = comma ? (size_t)(comma - entry) : (size_t)(list + o - entry);
        const char *e = entry;
        entry = comma ? comma + 1 : NULL;
        number++;
        strip(&e, &entry_len);
        if (entry_len == 0)
            continue;
        const char *colon = memchr(e, ':', entry_len);
        if (colon == NULL) {
            st = bridge__fail(BRIDGE_STATUS_INVALID, err, err_size, "key entry %zu is not ID:BASE64",
                              number);
            goto out;
        }
        const char *id = e, *enc = colon + 1;
        size_t id_len = (size_t)(colon - e), enc_len = entry_len - id_len - 1;
        strip(&id, &id_len);
        strip(&enc, &enc_len);
        char quoted[4 * BRIDGE_MAX_KEY_ID + 80];
        name_key(id, id_len, number, quoted, sizeof quoted);
        pending *grown = realloc(p, (n + 1) * sizeof *grown);
        if (grown == NULL) {
            st = bridge__fail(BRIDGE_STATUS_NO_MEMORY, err, err_size, "out of memory");
            goto out;
        }
        p = grown;
        memset(&p[n], 0, sizeof p[n]);
        if (!bridge__base64_decode(enc, enc_len, &p[n].key, &p[n].size)) {
            st = bridge__fail(BRIDGE_STATUS_INVALID, err, err_size, "key %s: not standard base64",
                              quoted);
            goto out;
        }
        p[n].id = id;
        p[n].id_len = id_len;
        n++;
        for (size_t j = 0; j + 1 < n; j++)
            if (p[j].id_len == id_len && memcmp(p[j].id, id, id_len) == 0) {
                st = bridge__fail(BRIDGE_STATUS_INVALID, err, err_size,
                                  "key %s is listed twice", quoted);
                goto out;
            }
    }
    st = adopt(ring, p, n, signing_id, err, err_size);
out:
    free_pending(p, n);
    OPENSSL_cleanse(list, len + 1);
    free(list);
    return st;
}

bridge_status bridge__keyring_from_env(bridge_keyring *ring, bool *found, char *err,
                                       size_t err_size)
{
    const char *signing = getenv("BRIDGE_SIGNING_KEY");
    const char *keys = getenv("BRIDGE_KEYS");
    const char *path = getenv("BRIDGE_KEYS_FILE");
    *found = false;
    if (keys != NULL && keys[0] != '\0') {
        *found = true;
        bridge_status st = bridge__keyring_parse(ring, keys, signing, err, err_size);
        if (st != BRIDGE_STATUS_OK && err != NULL && err_size > 0) {
            char reason[512];
            snprintf(reason, sizeof reason, "%s", err);
            snprintf(err, err_size, "BRIDGE_KEYS: %s", reason);
        }
        return st;
    }
    if (path == NULL || path[0] == '\0')
        return BRIDGE_STATUS_OK;
    *found = true;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return bridge__fail(BRIDGE_STATUS_INVALID, err, err_size, "BRIDGE_KEYS_FILE %s: %s", path,
                            strerror(errno));
    bridge_buffer text = BRIDGE_BUFFER_INIT;
    char chunk[4096];
    size_t got;
    bridge_status st = BRIDGE_STATUS_OK;
    while (st == BRIDGE_STATUS_OK && (got = fread(chunk, 1, sizeof chunk, f)) > 0)
        st = bridge__buffer_append(&text, chunk, got);
    bool failed = ferror(f);
    fclose(f);
    OPENSSL_cleanse(chunk, sizeof chunk);
    if (st == BRIDGE_STATUS_OK)
        st = bridge__buffer_append(&text, "", 1);
    if (failed || st != BRIDGE_STATUS_OK || memchr(text.data, '\0', text.len - 1) != NULL) {
        st = bridge__fail(BRIDGE_STATUS_INVALID, err, err_size, "BRIDGE_KEYS_FILE %s: %s", path,
                          failed ? "read error" : "not a text file");
    } else {
        st = bridge__keyring_parse(ring, (const char *)text.data, signing, err, err_size);
        if (st != BRIDGE_STATUS_OK && err != NULL && err_size > 0) {
            char reason[512];
            snprintf(reason, sizeof reason, "%s", err);
            snprintf(err, err_size, "BRIDGE_KEYS_FILE %s: %s", path, reason);
        }
    }
    if (text.data != NULL)
        OPENSSL_cleanse(text.data, text.cap);
    bridge_buffer_free(&text);
    return st;
}
