/*
 * The worker: `concurrency` threads, each with its own gearman_worker_st connected to every job
 * server, grabbing and answering one job at a time.
 *
 * Why threads rather than forked processes: one process keeps the user's state (caches, pools,
 * the user_data pointer) shared without IPC, one SIGTERM stops everything in one place, and
 * AddressSanitizer / LeakSanitizer see the whole worker. Handlers must therefore be thread-safe
 * when concurrency > 1 (the same rule as any threaded server).
 *
 * Stopping: bridge_worker_run() blocks SIGTERM/SIGINT in every thread and waits for them with
 * sigtimedwait() in the calling thread (no signal handler, no global). Worker threads poll with a
 * short libgearman timeout while idle and check the stop flag between jobs, so a running job is
 * always finished and answered. libgearman's own wake-up pipe is not used: it would also abort a
 * reply that is being sent.
 *
 * Jobs go through gearman_worker_work() (GRAB_JOB_UNIQ, PRE_SLEEP / NOOP, one callback per job);
 * the callback sends the job's answer itself. gearman_worker_grab_job() is not used: in 1.1.20 it
 * never sends PRE_SLEEP (it returns NO_JOBS at once) and crashes on the grab after a job.
 *
 * Reconnecting: libgearman reconnects a lost connection (and re-sends CAN_DO) on the next
 * gearman_worker_work(); while no server answers, a thread waits with exponential backoff.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <libgearman-1.0/gearman.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "job.h"

struct bridge_worker {
    char *servers;
    char *client_id;
    unsigned concurrency;
    size_t max_request_bytes;
    unsigned poll_interval_ms;
    unsigned reconnect_min_ms;
    unsigned reconnect_max_ms;
    bool handle_signals;
    bool quiet;
    bridge_method *methods;
    size_t n_methods;
    atomic_bool stop;
    atomic_uint_fast64_t jobs_done;
    struct sockaddr_storage *server_addrs; /* resolved job servers, to find their sockets */
    size_t n_server_addrs;
};

typedef struct worker_thread {
    bridge_worker *worker;
    unsigned index;
    pthread_t tid;
    bool started;
} worker_thread;

static void wlog(const bridge_worker *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void wlog(const bridge_worker *w, const char *fmt, ...)
{
    if (w->quiet)
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "bridge-c[%d]: %s\n", (int)getpid(), line);
}

bridge_worker_options bridge_worker_options_default(void)
{
    bridge_worker_options o;
    memset(&o, 0, sizeof o);
    o.concurrency = 1;
    o.handle_signals = true;
    return o;
}

bridge_worker *bridge_worker_new(const bridge_worker_options *options)
{
    bridge_worker_options o = options ? *options : bridge_worker_options_default();
    bridge_worker *w = calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    w->servers = strdup(o.servers ? o.servers : "127.0.0.1:4730");
    w->client_id = strdup(o.client_id ? o.client_id : "bridge-c");
    if (w->servers == NULL || w->client_id == NULL) {
        bridge_worker_free(w);
        return NULL;
    }
    w->concurrency = o.concurrency ? o.concurrency : 1;
    w->max_request_bytes = o.max_request_bytes ? o.max_request_bytes : BRIDGE_DEFAULT_MAX_REQUEST_BYTES;
    w->poll_interval_ms = o.poll_interval_ms ? o.poll_interval_ms : 200;
    w->reconnect_min_ms = o.reconnect_min_ms ? o.reconnect_min_ms : 100;
    w->reconnect_max_ms = o.reconnect_max_ms ? o.reconnect_max_ms : 5000;
    w->handle_signals = o.handle_signals;
    w->quiet = o.quiet;
    atomic_init(&w->stop, false);
    atomic_init(&w->jobs_done, 0);
    return w;
}

void bridge_worker_free(bridge_worker *w)
{
    if (w == NULL)
        return;
    for (size_t i = 0; i < w->n_methods; i++)
        free((char *)w->methods[i].function_name);
    free(w->methods);
    free(w->server_addrs);
    free(w->servers);
    free(w->client_id);
    free(w);
}

bridge_status bridge_worker_add_method(bridge_worker *w, const bridge_method *m)
{
    if (w == NULL || m == NULL || m->function_name == NULL || m->input == NULL || m->output == NULL ||
        m->function_name[0] == '\0' || strlen(m->function_name) >= GEARMAN_FUNCTION_MAX_SIZE)
        return BRIDGE_STATUS_INVALID;
    for (size_t i = 0; i < w->n_methods; i++)
        if (strcmp(w->methods[i].function_name, m->function_name) == 0)
            return BRIDGE_STATUS_INVALID; /* one handler per Gearman function */
    bridge_method *grown = realloc(w->methods, (w->n_methods + 1) * sizeof *grown);
    if (grown == NULL)
        return BRIDGE_STATUS_NO_MEMORY;
    w->methods = grown;
    bridge_method copy = *m;
    if ((copy.function_name = strdup(m->function_name)) == NULL)
        return BRIDGE_STATUS_NO_MEMORY;
    w->methods[w->n_methods++] = copy;
    return BRIDGE_STATUS_OK;
}

static const bridge_method *find_method(const bridge_worker *w, const char *name)
{
    for (size_t i = 0; i < w->n_methods; i++)
        if (strcmp(w->methods[i].function_name, name) == 0)
            return &w->methods[i];
    return NULL;
}

void bridge_worker_stop(bridge_worker *w)
{
    atomic_store(&w->stop, true);
}

uint64_t bridge_worker_jobs_done(const bridge_worker *w)
{
    return atomic_load(&((bridge_worker *)w)->jobs_done);
}

/* ------------------------------------------------------------------ socket buffers */

/*
 * libgearman 1.1.20 fixes SO_SNDBUF/SO_RCVBUF of its sockets at 32 KiB, which turns a large reply
 * into hundreds of delayed-ACK round trips (measured: 16 MiB from worker to gearmand took 10 s
 * instead of 0.1 s). It offers no way to change that nor to reach its sockets, so before sending
 * a large packet we find our own TCP sockets whose peer is one of the job servers and give them
 * a larger send buffer. Only sockets connected to a configured job server are touched.
 */
#define BRIDGE_LARGE_PACKET (256 * 1024)
#define BRIDGE_SEND_BUFFER (4 * 1024 * 1024)

static void resolve_servers(bridge_worker *w)
{
    char *list = strdup(w->servers);
    if (list == NULL)
        return;
    char *save = NULL;
    for (char *item = strtok_r(list, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        while (*item == ' ')
            item++;
        char *host = item, *port = "4730";
        char *colon = strrchr(item, ':');
        if (item[0] == '[') { /* [v6]:port */
            char *close = strchr(item, ']');
            if (close == NULL)
                continue;
            *close = '\0';
            host = item + 1;
            if (close[1] == ':')
                port = close + 2;
        } else if (colon != NULL && strchr(item, ':') == colon) {
            *colon = '\0';
            port = colon + 1;
        }
        struct addrinfo hints, *res = NULL;
        memset(&hints, 0, sizeof hints);
        hints.ai_socktype = SOCK_STREAM;
        if (getaddrinfo(host, port, &hints, &res) != 0)
            continue;
        for (struct addrinfo *a = res; a; a = a->ai_next) {
            struct sockaddr_storage *grown =
                realloc(w->server_addrs, (w->n_server_addrs + 1) * sizeof *grown);
            if (grown == NULL)
                break;
            w->server_addrs = grown;
            memset(&grown[w->n_server_addrs], 0, sizeof *grown);
            memcpy(&grown[w->n_server_addrs++], a->ai_addr, a->ai_addrlen);
        }
        freeaddrinfo(res);
    }
    free(list);
}

static bool same_endpoint(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
    }
    return false;
}

static void widen_server_sockets(const bridge_worker *w)
{
    struct rlimit lim;
    int max_fd = 1024;
    if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < 65536)
        max_fd = (int)lim.rlim_cur;
    for (int fd = 3; fd < max_fd; fd++) {
        struct sockaddr_storage peer;
        socklen_t len = sizeof peer;
        memset(&peer, 0, sizeof peer);
        if (getpeername(fd, (struct sockaddr *)&peer, &len) != 0)
            continue;
        for (size_t i = 0; i < w->n_server_addrs; i++) {
            if (!same_endpoint(&peer, &w->server_addrs[i]))
                continue;
            int size = 0;
            socklen_t size_len = sizeof size;
            if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, &size_len) == 0 &&
                size < BRIDGE_SEND_BUFFER) {
                int want = BRIDGE_SEND_BUFFER;
                setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &want, sizeof want);
            }
            break;
        }
    }
}

/* ------------------------------------------------------------------ the libgearman sink */

typedef struct gearman_sink_state {
    gearman_job_st *job;
    const bridge_worker *worker;
} gearman_sink_state;

static int gearman_sink(void *state, bridge_packet kind, const void *data, size_t size,
                        uint32_t num, uint32_t den)
{
    const gearman_sink_state *st = state;
    gearman_job_st *job = st->job;
    gearman_return_t rc = GEARMAN_SUCCESS;
    if (size >= BRIDGE_LARGE_PACKET)
        widen_server_sockets(st->worker);
    switch (kind) {
    case BRIDGE_PACKET_DATA: rc = gearman_job_send_data(job, data, size); break;
    case BRIDGE_PACKET_WARNING: rc = gearman_job_send_warning(job, data, size); break;
    case BRIDGE_PACKET_STATUS: rc = gearman_job_send_status(job, num, den); break;
    case BRIDGE_PACKET_COMPLETE: rc = gearman_job_send_complete(job, data, size); break;
    case BRIDGE_PACKET_EXCEPTION: rc = gearman_job_send_exception(job, data, size); break;
    case BRIDGE_PACKET_FAIL: rc = gearman_job_send_fail(job); break;
    }
    return gearman_success(rc) ? 0 : -1;
}

/* ------------------------------------------------------------------ threads */

static void nap_ms(const bridge_worker *w, unsigned ms)
{
    /* Sleeps in short steps so that a stop request is noticed quickly. */
    while (ms > 0 && !atomic_load(&w->stop)) {
        unsigned step = ms < 50 ? ms : 50;
        struct timespec ts = {0, (long)step * 1000000L};
        nanosleep(&ts, NULL);
        ms -= step;
    }
}

/* What a libgearman function callback needs: the worker and the method it serves. */
typedef struct function_binding {
    bridge_worker *worker;
    const bridge_method *method;
    gearman_worker_st *gearman; /* the thread's own */
} function_binding;

/*
 * libgearman has one timeout for every wait. Idle, it is the short poll interval that lets a
 * thread notice a stop request; while a job's packets are being sent it must be long, or a large
 * reply to a slow server would be cut off after poll_interval_ms without progress.
 */
#define BRIDGE_SEND_STALL_MS 60000

static gearman_return_t on_job(gearman_job_st *job, void *context)
{
    const function_binding *b = context;
    bridge_worker *w = b->worker;
    gearman_worker_set_timeout(b->gearman, BRIDGE_SEND_STALL_MS);
    bridge_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.function_name = b->method->function_name;
    gearman_sink_state sink = {.job = job, .worker = w};
    ctx.sink.send = gearman_sink;
    ctx.sink.state = &sink;
    bridge__job_run(&ctx, b->method, gearman_job_workload(job), gearman_job_workload_size(job),
                    w->max_request_bytes);
    if (ctx.io_failed)
        wlog(w, "lost the job server while answering %s (gearmand re-queues the job)",
             ctx.function_name);
    atomic_fetch_add(&w->jobs_done, 1);
    gearman_worker_set_timeout(b->gearman, (int)w->poll_interval_ms);
    /* The answer is already sent (libgearman sends nothing more for a finished job). */
    return GEARMAN_SUCCESS;
}

static gearman_worker_st *connect_worker(worker_thread *t, function_binding *bindings)
{
    bridge_worker *w = t->worker;
    gearman_worker_st *gw = gearman_worker_create(NULL);
    if (gw == NULL)
        return NULL;
    gearman_worker_add_options(gw, GEARMAN_WORKER_GRAB_UNIQ);
    /* Idle threads come back every poll interval to look at the stop flag. */
    gearman_worker_set_timeout(gw, (int)w->poll_interval_ms);
    char id[128];
    snprintf(id, sizeof id, "%s-%d-%u", w->client_id, (int)getpid(), t->index);
    for (char *p = id; *p; p++)
        if (*p <= ' ' || *p > '~')
            *p = '_'; /* gearmand wants a printable identifier */
    gearman_worker_set_identifier(gw, id, strlen(id));
    if (gearman_failed(gearman_worker_add_servers(gw, w->servers))) {
        wlog(w, "invalid server list '%s': %s", w->servers, gearman_worker_error(gw));
        gearman_worker_free(gw);
        return NULL;
    }
    for (size_t i = 0; i < w->n_methods; i++) {
        bindings[i].worker = w;
        bindings[i].method = &w->methods[i];
        bindings[i].gearman = gw;
        const char *name = w->methods[i].function_name;
        /* Timeout 0: a plain CAN_DO (CAN_DO_TIMEOUT is broken in gearmand 1.1.20). */
        if (gearman_failed(gearman_worker_define_function(gw, name, strlen(name),
                                                          gearman_function_create(on_job), 0,
                                                          &bindings[i]))) {
            wlog(w, "cannot register %s: %s", name, gearman_worker_error(gw));
            gearman_worker_free(gw);
            return NULL;
        }
    }
    return gw;
}

static void *thread_main(void *arg)
{
    worker_thread *t = arg;
    bridge_worker *w = t->worker;
    function_binding *bindings = calloc(w->n_methods ? w->n_methods : 1, sizeof *bindings);
    gearman_worker_st *gw = bindings ? connect_worker(t, bindings) : NULL;
    if (gw == NULL) {
        wlog(w, "thread %u: cannot create a gearman worker; stopping", t->index);
        free(bindings);
        bridge_worker_stop(w);
        return NULL;
    }
    unsigned backoff = w->reconnect_min_ms;
    bool was_down = false;
    while (!atomic_load(&w->stop)) {
        gearman_return_t rc = gearman_worker_work(gw);
        switch (rc) {
        case GEARMAN_SUCCESS:
        case GEARMAN_TIMEOUT:
        case GEARMAN_NO_JOBS:
        case GEARMAN_IO_WAIT:
            /* a job done, or idle for a poll interval with the server(s) reachable */
            if (was_down)
                wlog(w, "thread %u: serving again", t->index);
            was_down = false;
            backoff = w->reconnect_min_ms;
            continue;
        default:
            if (!was_down)
                wlog(w, "thread %u: job server problem (%s); reconnecting with backoff", t->index,
                     gearman_strerror(rc));
            was_down = true;
            nap_ms(w, backoff);
            backoff = backoff * 2 > w->reconnect_max_ms ? w->reconnect_max_ms : backoff * 2;
        }
    }
    gearman_worker_free(gw);
    free(bindings);
    return NULL;
}

bridge_status bridge_worker_run(bridge_worker *w)
{
    if (w == NULL)
        return BRIDGE_STATUS_INVALID;
    sigset_t stop_signals, old_mask;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    if (w->handle_signals)
        pthread_sigmask(SIG_BLOCK, &stop_signals, &old_mask); /* inherited by the threads */

    if (w->server_addrs == NULL)
        resolve_servers(w);
    worker_thread *threads = calloc(w->concurrency, sizeof *threads);
    if (threads == NULL) {
        if (w->handle_signals)
            pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
        return BRIDGE_STATUS_NO_MEMORY;
    }
    wlog(w, "serving %zu function(s) on %s with %u thread(s)", w->n_methods, w->servers,
         w->concurrency);
    bridge_status result = BRIDGE_STATUS_OK;
    for (unsigned i = 0; i < w->concurrency; i++) {
        threads[i].worker = w;
        threads[i].index = i;
        if (pthread_create(&threads[i].tid, NULL, thread_main, &threads[i]) != 0) {
            wlog(w, "cannot start thread %u: %s", i, strerror(errno));
            bridge_worker_stop(w);
            result = BRIDGE_STATUS_NO_MEMORY;
            break;
        }
        threads[i].started = true;
    }
    while (!atomic_load(&w->stop)) {
        if (w->handle_signals) {
            struct timespec wait = {0, 100 * 1000000L};
            int sig = sigtimedwait(&stop_signals, NULL, &wait);
            if (sig == SIGTERM || sig == SIGINT) {
                wlog(w, "%s: finishing running jobs, then exiting", sig == SIGTERM ? "SIGTERM" : "SIGINT");
                bridge_worker_stop(w);
            }
        } else {
            struct timespec wait = {0, 100 * 1000000L};
            nanosleep(&wait, NULL);
        }
    }
    for (unsigned i = 0; i < w->concurrency; i++)
        if (threads[i].started)
            pthread_join(threads[i].tid, NULL);
    free(threads);
    wlog(w, "stopped after %llu job(s)", (unsigned long long)bridge_worker_jobs_done(w));
    if (w->handle_signals)
        pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
    return result;
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
    bridge__job_run(&ctx, find_method(w, function_name), payload, size, w->max_request_bytes);
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
        } else {
            fprintf(stderr,
                    "%s: bad argument '%s'\nusage: %s [--servers HOST:PORT[,HOST:PORT...]] "
                    "[--concurrency N] [--max-request-bytes N]\n",
                    argv[0], arg, argv[0]);
            return -1;
        }
#undef IS
        if (!eq)
            i++;
    }
    return 0;
}
