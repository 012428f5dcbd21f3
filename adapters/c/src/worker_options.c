/*
 * Worker options, keys, and running one job without a job server (tests, embedding): everything
 * about a worker that is not serving (the command line: command_line.c).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job.h"
#include "worker.h"

bridge_worker_options bridge_worker_options_default(void)
{
    bridge_worker_options o;
    memset(&o, 0, sizeof o);
    o.concurrency = 1;
    o.handle_signals = true;
    return o;
}

/* ------------------------------------------------------------------ keys (section 9) */

static void drop_verifier(bridge_worker *w)
{
    if (w->verifier == NULL)
        return;
    bridge__keyring_clear(&w->verifier->keys);
    bridge__replay_destroy(&w->verifier->replay);
    free(w->verifier);
    w->verifier = NULL;
}

/* The worker's keys become `ring` (moved); the replay cache is kept across a change of keys. */
static bridge_status install_keys(bridge_worker *w, bridge_keyring *ring)
{
    if (w->verifier == NULL) {
        if ((w->verifier = calloc(1, sizeof *w->verifier)) == NULL) {
            bridge__keyring_clear(ring);
            return BRIDGE_STATUS_NO_MEMORY;
        }
        bridge__replay_init(&w->verifier->replay, w->replay_capacity);
        w->verifier->window_ms = w->signing_window_ms;
        w->verifier->quiet = w->quiet;
    }
    bridge__keyring_clear(&w->verifier->keys);
    w->verifier->keys = *ring;
    memset(ring, 0, sizeof *ring);
    return BRIDGE_STATUS_OK;
}

bridge_status bridge_worker_set_keys(bridge_worker *w, const char *keys, char *err, size_t err_size)
{
    if (w == NULL)
        return BRIDGE_STATUS_INVALID;
    if (keys == NULL) {
        drop_verifier(w);
        return BRIDGE_STATUS_OK;
    }
    bridge_keyring ring = {0};
    bridge_status st = bridge__keyring_parse(&ring, keys, NULL, err, err_size);
    return st != BRIDGE_STATUS_OK ? st : install_keys(w, &ring);
}

bridge_status bridge_worker_add_key(bridge_worker *w, const char *key_id, const uint8_t *key,
                                    size_t key_size, char *err, size_t err_size)
{
    if (w == NULL)
        return BRIDGE_STATUS_INVALID;
    bridge_keyring ring = {0};
    if (w->verifier != NULL) { /* checked against the keys already there (ids listed twice) */
        ring = w->verifier->keys;
        memset(&w->verifier->keys, 0, sizeof w->verifier->keys);
    }
    bridge_status st = bridge__keyring_add(&ring, key_id, key, key_size, err, err_size);
    if (st != BRIDGE_STATUS_OK && ring.count == 0) {
        drop_verifier(w);
        return st;
    }
    bridge_status installed = install_keys(w, &ring);
    return st != BRIDGE_STATUS_OK ? st : installed;
}

size_t bridge_worker_key_count(const bridge_worker *w)
{
    return w != NULL && w->verifier != NULL ? w->verifier->keys.count : 0;
}

bridge_status bridge__worker_keys_from_env(bridge_worker *w, char *err, size_t err_size)
{
    bridge_keyring ring = {0};
    bool found = false;
    bridge_status st = bridge__keyring_from_env(&ring, &found, err, err_size);
    if (st != BRIDGE_STATUS_OK || !found)
        return st;
    return install_keys(w, &ring);
}

void bridge__worker_drop_keys(bridge_worker *w)
{
    drop_verifier(w);
}

/* ------------------------------------------------------------------ without a server */

typedef struct capture {
    char kind;
    bridge_buffer *out;
    bridge_buffer *data;
} capture;

static int capture_sink(void *state, bridge_packet kind, const void *data, size_t size,
                        uint32_t num, uint32_t den)
{
    capture *c = state;
    (void)num;
    (void)den;
    switch (kind) {
    case BRIDGE_PACKET_DATA:
        if (c->data != NULL) {
            uint8_t len[4] = {(uint8_t)(size >> 24), (uint8_t)(size >> 16), (uint8_t)(size >> 8),
                              (uint8_t)size};
            if (bridge__buffer_append(c->data, len, 4) || bridge__buffer_append(c->data, data, size))
                return -1;
        }
        return 0;
    case BRIDGE_PACKET_WARNING:
    case BRIDGE_PACKET_STATUS:
        return 0;
    case BRIDGE_PACKET_COMPLETE:
        c->kind = 'C';
        break;
    case BRIDGE_PACKET_EXCEPTION:
        c->kind = 'E';
        break;
    case BRIDGE_PACKET_FAIL:
        c->kind = 'F';
        return 0;
    }
    return bridge__buffer_append(c->out, data, size) ? -1 : 0;
}

bridge_status bridge_worker_process(bridge_worker *w, const char *function_name,
                                    const uint8_t *payload, size_t size, char *kind,
                                    bridge_buffer *out, bridge_buffer *data)
{
    static _Atomic unsigned long long calls;
    char handle[48];
    snprintf(handle, sizeof handle, "H:process:%llu", ++calls);
    return bridge_worker_process_job(w, function_name, handle, payload, size, kind, out, data);
}

bridge_status bridge_worker_process_job(bridge_worker *w, const char *function_name,
                                        const char *job_handle, const uint8_t *payload, size_t size,
                                        char *kind, bridge_buffer *out, bridge_buffer *data)
{
    if (w == NULL || function_name == NULL || job_handle == NULL || kind == NULL || out == NULL)
        return BRIDGE_STATUS_INVALID;
    capture c = {.kind = 0, .out = out, .data = data};
    bridge_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.function_name = function_name;
    ctx.handle = job_handle;
    ctx.verifier = w->verifier;
    ctx.log_level = w->log_level;
    ctx.sink.send = capture_sink;
    ctx.sink.state = &c;
    bridge__job_run(&ctx, bridge__find_method(w, function_name), payload, size, w->max_request_bytes);
    *kind = c.kind;
    return ctx.io_failed ? BRIDGE_STATUS_NO_MEMORY : BRIDGE_STATUS_OK;
}
