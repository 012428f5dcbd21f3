/* The worker object, shared by worker.c (serving) and worker_options.c (private). */
#ifndef BRIDGE_WORKER_H
#define BRIDGE_WORKER_H

#include <pthread.h>
#include <stdatomic.h>

#include "internal.h"

#pragma GCC visibility push(hidden)

#define BRIDGE_DEFAULT_READ_TIMEOUT_MS 5000
#define BRIDGE_DEFAULT_KEEPALIVE_MS 15000

struct bridge_worker {
    char *servers;
    char *client_id;
    unsigned concurrency;
    size_t max_request_bytes;
    unsigned poll_interval_ms;
    unsigned reconnect_min_ms;
    unsigned reconnect_max_ms;
    unsigned read_timeout_ms;
    unsigned keepalive_ms;
    bool handle_signals;
    bool quiet;
    bridge_log_level log_level; /* lines below it are not written (BRIDGE__LOG_OFF when quiet) */
    /* signed jobs (wire contract, section 9): NULL when the worker has no keys */
    struct bridge_verifier *verifier;
    int64_t signing_window_ms;
    size_t replay_capacity;
    bridge_method *methods;
    size_t n_methods;
    atomic_bool stop;
    atomic_uint_fast64_t jobs_done;
    /* job slots: `concurrency` of them, shared by every server's connections, handed out in the
     * order they were asked for (a busy server's connection cannot starve another's) */
    pthread_mutex_t slots_lock;
    pthread_cond_t slots_free;
    unsigned free_slots;
    uint64_t slot_next;    /* ticket of the next lane to ask */
    uint64_t slot_serving; /* ticket whose turn it is */
};

typedef struct server {
    char host[256];
    char port[16];
} server;

/* "host:port,[v6]:port,host" into *out (malloc'd; port 4730 by default): the count, 0 when the
 * list is invalid (then *out is NULL). */
size_t bridge__parse_servers(const char *list, server **out);

const bridge_method *bridge__find_method(const bridge_worker *w, const char *name);
/* BRIDGE_KEYS / BRIDGE_KEYS_FILE into the worker's keys (none set: nothing changes). */
bridge_status bridge__worker_keys_from_env(bridge_worker *w, char *err, size_t err_size);
void bridge__worker_drop_keys(bridge_worker *w);

#pragma GCC visibility pop

#endif
