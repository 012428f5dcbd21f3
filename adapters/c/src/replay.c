/*
 * The replay cache of a worker with keys (wire contract, 9.2 step 4), behaving as
 * bridge/security/verify.py's ReplayCache: (key id, nonce) -> deadline, kept until the deadline;
 * a nonce seen before is a replay whatever its job handle (handles are gearmand's counters,
 * repeated by a restarted gearmand or another one on a host of the same name); bounded: when full, the entry with the earliest deadline goes and its deadline
 * becomes the floor, under which every job is refused from then on ("replay cache full"), so an
 * evicted nonce can never run twice. A hash table (chained) finds entries, a min-heap by deadline
 * expires and evicts them. One mutex: every job thread of the worker shares the cache.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "security.h"

struct replay_entry {
    replay_entry *next; /* in its bucket */
    int64_t deadline_ms;
    uint64_t hash;
    uint8_t nonce[BRIDGE_NONCE_SIZE];
    char key_id[BRIDGE_MAX_KEY_ID + 1];
};

void bridge__replay_init(bridge_replay_cache *c, size_t capacity)
{
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->lock, NULL);
    c->capacity = capacity ? capacity : BRIDGE_DEFAULT_REPLAY_CAPACITY;
}

void bridge__replay_destroy(bridge_replay_cache *c)
{
    for (size_t i = 0; i < c->count; i++)
        free(c->heap[i]);
    free(c->heap);
    free(c->buckets);
    pthread_mutex_destroy(&c->lock);
    memset(c, 0, sizeof *c);
}

static uint64_t hash_of(const char *key_id, const uint8_t *nonce)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (const char *p = key_id; *p; p++)
        h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
    h = (h ^ 0xff) * 0x100000001b3ull; /* ends the id: ("a", "b...") differs from ("ab", "...") */
    for (int i = 0; i < BRIDGE_NONCE_SIZE; i++)
        h = (h ^ nonce[i]) * 0x100000001b3ull;
    return h ^ (h >> 29);
}

static replay_entry **slot_of(bridge_replay_cache *c, uint64_t hash, const char *key_id,
                              const uint8_t *nonce)
{
    replay_entry **p = &c->buckets[hash & (c->n_buckets - 1)];
    while (*p != NULL && ((*p)->hash != hash || memcmp((*p)->nonce, nonce, BRIDGE_NONCE_SIZE) != 0 ||
                          strcmp((*p)->key_id, key_id) != 0))
        p = &(*p)->next;
    return p;
}

/* Heap order: the deadline, then the key id and the nonce (as Python's tuples compare). */
static bool before(const replay_entry *a, const replay_entry *b)
{
    if (a->deadline_ms != b->deadline_ms)
        return a->deadline_ms < b->deadline_ms;
    int c = strcmp(a->key_id, b->key_id);
    return c != 0 ? c < 0 : memcmp(a->nonce, b->nonce, BRIDGE_NONCE_SIZE) < 0;
}

static void heap_swap(replay_entry **h, size_t i, size_t j)
{
    replay_entry *t = h[i];
    h[i] = h[j];
    h[j] = t;
}

static void sift_up(replay_entry **h, size_t i)
{
    while (i > 0 && before(h[i], h[(i - 1) / 2])) {
        heap_swap(h, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void sift_down(replay_entry **h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && before(h[l], h[m]))
            m = l;
        if (r < n && before(h[r], h[m]))
            m = r;
        if (m == i)
            return;
        heap_swap(h, i, m);
        i = m;
    }
}

/* Removes the earliest entry (heap and table) and returns its deadline. */
static int64_t pop_earliest(bridge_replay_cache *c)
{
    replay_entry *e = c->heap[0];
    c->heap[0] = c->heap[--c->count];
    sift_down(c->heap, c->count, 0);
    replay_entry **p = slot_of(c, e->hash, e->key_id, e->nonce);
    if (*p == e)
        *p = e->next;
    int64_t deadline = e->deadline_ms;
    free(e);
    return deadline;
}

static bool grow(bridge_replay_cache *c)
{
    if (c->count < c->heap_cap && c->count * 4 < c->n_buckets * 3)
        return true;
    size_t cap = c->heap_cap ? c->heap_cap * 2 : 64;
    replay_entry **heap = realloc(c->heap, cap * sizeof *heap);
    if (heap == NULL)
        return false;
    c->heap = heap;
    c->heap_cap = cap;
    size_t n_buckets = c->n_buckets ? c->n_buckets : 64;
    while (c->count * 4 >= n_buckets * 3)
        n_buckets *= 2;
    if (n_buckets == c->n_buckets)
        return true;
    replay_entry **buckets = calloc(n_buckets, sizeof *buckets);
    if (buckets == NULL)
        return false;
    for (size_t i = 0; i < c->count; i++) { /* every entry is in the heap: rehash from there */
        replay_entry *e = c->heap[i];
        e->next = buckets[e->hash & (n_buckets - 1)];
        buckets[e->hash & (n_buckets - 1)] = e;
    }
    free(c->buckets);
    c->buckets = buckets;
    c->n_buckets = n_buckets;
    return true;
}

static const char *admit(bridge_replay_cache *c, const char *key_id, const uint8_t *nonce,
                         int64_t deadline_ms, int64_t now_ms)
{
    while (c->count > 0 && c->heap[0]->deadline_ms <= now_ms)
        pop_earliest(c); /* expired: no longer needed to tell a replay */
    if (deadline_ms <= c->floor_ms)
        return BRIDGE_REPLAY_CACHE_FULL;
    uint64_t hash = hash_of(key_id, nonce);
    if (c->count > 0 && *slot_of(c, hash, key_id, nonce) != NULL)
        return "replayed";
    while (c->count >= c->capacity) {
        int64_t oldest = pop_earliest(c);
        if (oldest > c->floor_ms)
            c->floor_ms = oldest;
        if (deadline_ms <= c->floor_ms)
            return BRIDGE_REPLAY_CACHE_FULL;
    }
    replay_entry *e = NULL;
    if (!grow(c) || (e = malloc(sizeof *e)) == NULL)
        return BRIDGE_REPLAY_CACHE_FULL; /* out of memory: refuse rather than forget a nonce */
    memset(e, 0, sizeof *e);
    e->deadline_ms = deadline_ms;
    e->hash = hash;
    memcpy(e->nonce, nonce, BRIDGE_NONCE_SIZE);
    snprintf(e->key_id, sizeof e->key_id, "%s", key_id);
    replay_entry **bucket = &c->buckets[hash & (c->n_buckets - 1)];
    e->next = *bucket;
    *bucket = e;
    c->heap[c->count++] = e;
    sift_up(c->heap, c->count - 1);
    return NULL;
}

const char *bridge__replay_admit(bridge_replay_cache *c, const char *key_id,
                                 const uint8_t nonce[BRIDGE_NONCE_SIZE], int64_t deadline_ms,
                                 int64_t now_ms)
{
    pthread_mutex_lock(&c->lock);
    const char *why = admit(c, key_id, nonce, deadline_ms, now_ms);
    pthread_mutex_unlock(&c->lock);
    return why;
}
