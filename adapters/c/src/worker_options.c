/*
 * Worker options, the command line, and running one job without a job server (tests,
 * embedding): everything about a worker that is not serving.
 */
#define _GNU_SOURCE
#include <errno.h>
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
    if (w == NULL || function_name == NULL || kind == NULL || out == NULL)
        return BRIDGE_STATUS_INVALID;
    capture c = {.kind = 0, .out = out, .data = data};
    bridge_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.function_name = function_name;
    ctx.sink.send = capture_sink;
    ctx.sink.state = &c;
    bridge__job_run(&ctx, bridge__find_method(w, function_name), payload, size, w->max_request_bytes);
    *kind = c.kind;
    return ctx.io_failed ? BRIDGE_STATUS_NO_MEMORY : BRIDGE_STATUS_OK;
}

/* ------------------------------------------------------------------ command line */

static int parse_size(const char *s, unsigned long long *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-')
        return -1;
    *out = v;
    return 0;
}

int bridge_worker_options_from_args(bridge_worker_options *o, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *value = NULL;
        const char *eq = strchr(arg, '=');
        size_t name_len = eq ? (size_t)(eq - arg) : strlen(arg);
        if (eq)
            value = eq + 1;
        else if (i + 1 < argc)
            value = argv[i + 1];
        unsigned long long n = 0;
#define IS(name) (name_len == strlen(name) && strncmp(arg, name, name_len) == 0)
        if (IS("--servers") && value) {
            o->servers = value;
        } else if (IS("--concurrency") && value && parse_size(value, &n) == 0 && n > 0 && n <= 1024) {
            o->concurrency = (unsigned)n;
        } else if (IS("--max-request-bytes") && value && parse_size(value, &n) == 0 && n > 0) {
            o->max_request_bytes = (size_t)n;
        } else if (IS("--read-timeout-ms") && value && parse_size(value, &n) == 0 && n > 0 &&
                   n <= 3600000) {
            o->read_timeout_ms = (unsigned)n;
        } else {
            fprintf(stderr,
                    "%s: bad argument '%s'\nusage: %s [--servers HOST:PORT[,HOST:PORT...]] "
                    "[--concurrency N] [--max-request-bytes N] [--read-timeout-ms N]\n",
                    argv[0], arg, argv[0]);
            return -1;
        }
#undef IS
        if (!eq)
            i++;
    }
    return 0;
}
