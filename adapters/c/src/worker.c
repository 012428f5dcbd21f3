/*
 * The worker: per job server, `concurrency` connections, each with its own thread (a "lane"),
 * sharing `concurrency` job slots. Every lane runs the Gearman worker loop on its own connection
 * (gearman_conn.c), independently of the other servers' replies:
 *
 *   connect -> SET_CLIENT_ID, CAN_DO per function, ECHO_REQ -> wait for ECHO_RES
 *   -> take a job slot -> GRAB_JOB_UNIQ -> JOB_ASSIGN_UNIQ: run the job, answer, grab again
 *                                        -> NO_JOB: give the slot back, PRE_SLEEP, wait for NOOP
 *
 * A lane takes a job slot only to grab on a connection whose server has answered (the ECHO), and
 * any answer that does not come within the read timeout (connect, ECHO, GRAB, a keepalive ECHO
 * of an idle connection) closes that connection; the lane reconnects with backoff. So a frozen
 * job server (process stopped, TCP up) costs at most one slot for one read timeout, and the
 * lanes of the other servers go on serving, at any concurrency and also when the worker starts
 * during the freeze (wire contract, section 7).
 *
 * Why threads rather than forked processes: one process keeps the user's state (caches, pools,
 * the user_data pointer) shared without IPC, one SIGTERM stops everything in one place, and
 * AddressSanitizer / LeakSanitizer see the whole worker. Handlers must therefore be thread-safe
 * when concurrency > 1.
 *
 * Stopping: bridge_worker_run() blocks SIGTERM/SIGINT in every thread and waits for them with
 * sigtimedwait() in the calling thread (no signal handler, no global). Every wait of a lane looks
 * at the stop flag each poll interval: an idle lane closes its connection at once, a grabbing
 * lane waits up to 1 s more for the answer (and runs a job assigned meanwhile), a lane running a
 * job finishes it and sends the answer (a send stalled by a frozen server is given up 1 s after
 * the stop).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gearman_conn.h"
#include "job.h"
#include "log.h"
#include "worker.h"

typedef struct lane {
    bridge_worker *worker;
    const server *server;
    unsigned index; /* among the lanes of its server */
    unsigned id;    /* among all lanes */
    pthread_t tid;
    bool started;
    gm_conn conn;
    char why[300]; /* why the connection was dropped */
} lane;

#define wlog(w, level, ...) bridge__log((w)->log_level, (level), __VA_ARGS__)

bridge_worker *bridge_worker_new(const bridge_worker_options *options)
{
    bridge_worker_options o = options ? *options : bridge_worker_options_default();
    bridge_worker *w = calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    w->servers = strdup(o.servers ? o.servers : "127.0.0.1:4730");
    w->client_id = strdup(o.client_id ? o.client_id : "bridge-c");
    if (w->servers == NULL || w->client_id == NULL) {
        free(w->servers);
        free(w->client_id);
        free(w);
        return NULL;
    }
    w->concurrency = o.concurrency ? o.concurrency : 1;
    w->max_request_bytes = o.max_request_bytes ? o.max_request_bytes : BRIDGE_DEFAULT_MAX_REQUEST_BYTES;
    w->poll_interval_ms = o.poll_interval_ms ? o.poll_interval_ms : 200;
    w->reconnect_min_ms = o.reconnect_min_ms ? o.reconnect_min_ms : 100;
    w->reconnect_max_ms = o.reconnect_max_ms ? o.reconnect_max_ms : 5000;
    w->read_timeout_ms = o.read_timeout_ms ? o.read_timeout_ms : BRIDGE_DEFAULT_READ_TIMEOUT_MS;
    w->keepalive_ms = o.keepalive_ms ? o.keepalive_ms : BRIDGE_DEFAULT_KEEPALIVE_MS;
    w->handle_signals = o.handle_signals;
    w->quiet = o.quiet;
    w->log_level = bridge__log_threshold(o.log_level, o.quiet);
    w->signing_window_ms = o.signing_window_s ? (int64_t)o.signing_window_s * 1000 : BRIDGE_DEFAULT_WINDOW_MS;
    w->replay_capacity = o.replay_capacity ? o.replay_capacity : BRIDGE_DEFAULT_REPLAY_CAPACITY;
    atomic_init(&w->stop, false);
    atomic_init(&w->jobs_done, 0);
    pthread_mutex_init(&w->slots_lock, NULL);
    pthread_cond_init(&w->slots_free, NULL);
    w->free_slots = w->concurrency;
    char why[600];
    if (!o.no_env_keys && bridge__worker_keys_from_env(w, why, sizeof why) != BRIDGE_STATUS_OK) {
        /* A worker told to require signatures never starts without them (the reason names the
         * variable and the entry, never a key). */
        bridge__log(BRIDGE_LOG_INFO, BRIDGE_LOG_ERROR, "%s", why);
        bridge_worker_free(w);
        return NULL;
    }
    return w;
}

void bridge_worker_free(bridge_worker *w)
{
    if (w == NULL)
        return;
    for (size_t i = 0; i < w->n_methods; i++)
        free((char *)w->methods[i].function_name);
    free(w->methods);
    free(w->servers);
    free(w->client_id);
    bridge__worker_drop_keys(w);
    pthread_mutex_destroy(&w->slots_lock);
    pthread_cond_destroy(&w->slots_free);
    free(w);
}

#define FUNCTION_NAME_MAX 512 /* gearmand's limit on function names */

bridge_status bridge_worker_add_method(bridge_worker *w, const bridge_method *m)
{
    if (w == NULL || m == NULL || m->function_name == NULL || m->input == NULL || m->output == NULL ||
        m->function_name[0] == '\0' || strlen(m->function_name) >= FUNCTION_NAME_MAX)
        return BRIDGE_STATUS_INVALID;
    /* A bare method is unary and has one of the four encodings; RAW needs a message whose only
     * field is a bytes or string (wire contract, section 8). Enveloped: no encoding of its own. */
    if (m->bare ? m->server_streaming || m->encoding < BRIDGE_ENCODING_PROTOBUF ||
                      m->encoding > BRIDGE_ENCODING_RAW ||
                      (m->encoding == BRIDGE_ENCODING_RAW &&
                       (bridge__raw_field(m->input) == NULL || bridge__raw_field(m->output) == NULL))
                : m->encoding != 0 && m->encoding != BRIDGE_ENCODING_PROTOBUF &&
                      m->encoding != BRIDGE_ENCODING_MSGPACK)
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

const bridge_method *bridge__find_method(const bridge_worker *w, const char *name)
{
    for (size_t i = 0; i < w->n_methods; i++)
        if (strcmp(w->methods[i].function_name, name) == 0)
            return &w->methods[i];
    return NULL;
}

void bridge_worker_stop(bridge_worker *w)
{
    atomic_store(&w->stop, true);
    pthread_mutex_lock(&w->slots_lock);
    pthread_cond_broadcast(&w->slots_free);
    pthread_mutex_unlock(&w->slots_lock);
}

uint64_t bridge_worker_jobs_done(const bridge_worker *w)
{
    return atomic_load(&((bridge_worker *)w)->jobs_done);
}

static bool stopped(const bridge_worker *w)
{
    return atomic_load(&((bridge_worker *)w)->stop);
}

/* ------------------------------------------------------------------ servers and slots */

/* A port: 1 to 65535, plain decimal digits. */
static bool valid_port(const char *port)
{
    if (port[0] == '\0' || strlen(port) > 5)
        return false;
    for (const char *c = port; *c != '\0'; c++)
        if (*c < '0' || *c > '9')
            return false;
    long v = strtol(port, NULL, 10);
    return v >= 1 && v <= 65535;
}

size_t bridge__parse_servers(const char *list, server **out)
{
    *out = NULL;
    size_t n = 0;
    char *copy = strdup(list), *save = NULL;
    if (copy == NULL)
        return 0;
    /* no empty item: not at either end, not two commas in a row */
    size_t len = strlen(copy);
    if (len == 0 || copy[0] == ',' || copy[len - 1] == ',' || strstr(copy, ",,") != NULL)
        goto bad;
    for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        while (*item == ' ')
            item++;
        char *end = item + strlen(item);
        while (end > item && end[-1] == ' ')
            *--end = '\0';
        if (strstr(item, "://") != NULL)
            goto bad; /* tls:// and other schemes: command_line.c says why */
        char *host = item, *port = "4730";
        char *colon = strrchr(item, ':');
        if (item[0] == '[') {
            char *close = strchr(item, ']');
            if (close == NULL || (close[1] != '\0' && close[1] != ':'))
                goto bad;
            *close = '\0';
            host = item + 1;
            if (close[1] == ':')
                port = close + 2;
        } else if (colon != NULL && strchr(item, ':') == colon) {
            *colon = '\0';
            port = colon + 1;
        }
        server *grown = realloc(*out, (n + 1) * sizeof *grown);
        if (grown == NULL || host[0] == '\0' || strlen(host) >= sizeof grown->host ||
            !valid_port(port) || strlen(port) >= sizeof grown->port) {
            if (grown != NULL)
                *out = grown;
            goto bad;
        }
        *out = grown;
        snprintf(grown[n].host, sizeof grown[n].host, "%s", host);
        snprintf(grown[n].port, sizeof grown[n].port, "%s", port);
        n++;
    }
    free(copy);
    return n;
bad:
    free(copy);
    free(*out);
    *out = NULL;
    return 0;
}

/* Waits for a free job slot, first come first served; false when the worker stops first. */
static bool take_slot(bridge_worker *w)
{
    pthread_mutex_lock(&w->slots_lock);
    uint64_t ticket = w->slot_next++;
    while (!stopped(w) && (w->free_slots == 0 || ticket != w->slot_serving))
        pthread_cond_wait(&w->slots_free, &w->slots_lock);
    bool ok = !stopped(w);
    if (ok) {
        w->free_slots--;
        w->slot_serving++;
        pthread_cond_broadcast(&w->slots_free); /* the next in line may find a slot too */
    }
    pthread_mutex_unlock(&w->slots_lock);
    return ok;
}

static void give_slot(bridge_worker *w)
{
    pthread_mutex_lock(&w->slots_lock);
    w->free_slots++;
    pthread_cond_broadcast(&w->slots_free);
    pthread_mutex_unlock(&w->slots_lock);
}

static void nap_ms(const bridge_worker *w, unsigned ms)
{
    /* Sleeps in short steps so that a stop request is noticed quickly. */
    while (ms > 0 && !stopped(w)) {
        unsigned step = ms < 50 ? ms : 50;
        struct timespec ts = {0, (long)step * 1000000L};
        nanosleep(&ts, NULL);
        ms -= step;
    }
}

/* ------------------------------------------------------------------ one job */

typedef struct job_sink {
    lane *lane;
    const char *handle;
} job_sink;

static int send_packet(void *state, bridge_packet kind, const void *data, size_t size,
                       uint32_t num, uint32_t den)
{
    job_sink *s = state;
    gm_conn *c = &s->lane->conn;
    unsigned stall = s->lane->worker->read_timeout_ms;
    const char *handle[1] = {s->handle};
    gm_result r = GM_CLOSED;
    switch (kind) {
    case BRIDGE_PACKET_DATA: r = gm_send(c, GM_WORK_DATA, handle, 1, data, size, stall); break;
    case BRIDGE_PACKET_WARNING: r = gm_send(c, GM_WORK_WARNING, handle, 1, data, size, stall); break;
    case BRIDGE_PACKET_COMPLETE: r = gm_send(c, GM_WORK_COMPLETE, handle, 1, data, size, stall); break;
    case BRIDGE_PACKET_EXCEPTION: r = gm_send(c, GM_WORK_EXCEPTION, handle, 1, data, size, stall); break;
    case BRIDGE_PACKET_FAIL: r = gm_send(c, GM_WORK_FAIL, handle, 1, NULL, 0, stall); break;
    case BRIDGE_PACKET_STATUS: {
        char n[16], d[16];
        snprintf(n, sizeof n, "%u", num);
        snprintf(d, sizeof d, "%u", den);
        const char *args[3] = {s->handle, n, d};
        r = gm_send(c, GM_WORK_STATUS, args, 3, NULL, 0, stall);
        break;
    }
    }
    return r == GM_OK ? 0 : -1;
}

/* Runs an assigned job and answers it on the lane's connection; false when that failed. */
static bool run_job(lane *l, const gm_packet *p)
{
    bridge_worker *w = l->worker;
    const bridge_method *method = bridge__find_method(w, p->arg[1]);
    bridge_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.function_name = method ? method->function_name : p->arg[1];
    job_sink sink = {.lane = l, .handle = p->arg[0]};
    ctx.handle = p->arg[0];
    ctx.verifier = w->verifier;
    ctx.log_level = w->log_level;
    ctx.sink.send = send_packet;
    ctx.sink.state = &sink;
    /* An oversized workload was never kept: its size alone gets RESOURCE_EXHAUSTED. */
    bridge__job_run(&ctx, method, p->oversized ? NULL : p->data, p->data_size, w->max_request_bytes);
    atomic_fetch_add(&w->jobs_done, 1);
    if (ctx.io_failed)
        snprintf(l->why, sizeof l->why, "lost the job server while answering %s (gearmand re-queues the job)",
                 ctx.function_name);
    return !ctx.io_failed;
}

/* ------------------------------------------------------------------ one connection */

/* Reads the next packet of one of the `want` types (NOOPs remembered in *woken, others dropped). */
static gm_result expect(lane *l, gm_packet *p, unsigned timeout_ms, const char *what, bool *woken,
                        uint32_t want1, uint32_t want2, uint32_t want3)
{
    bridge_worker *w = l->worker;
    for (;;) {
        gm_result r = gm_read(&l->conn, p, timeout_ms, w->read_timeout_ms, w->max_request_bytes);
        if (r == GM_TIMEOUT)
            snprintf(l->why, sizeof l->why, "no answer to %s within %u ms", what, timeout_ms);
        else if (r == GM_CLOSED)
            snprintf(l->why, sizeof l->why, "connection closed (waiting for the answer to %s)", what);
        if (r != GM_OK)
            return r;
        if (p->type == want1 || p->type == want2 || p->type == want3)
            return GM_OK;
        if (p->type == GM_NOOP && woken != NULL)
            *woken = true;
        if (p->type == GM_ERROR) {
            snprintf(l->why, sizeof l->why, "job server error %s: %s", p->arg[0], p->arg[1]);
            gm_packet_free(p);
            return GM_CLOSED;
        }
        gm_packet_free(p);
    }
}

/* Connects, registers every function and waits for the server's ECHO_RES. */
static gm_result lane_connect(lane *l)
{
    bridge_worker *w = l->worker;
    gm_result r = gm_connect(&l->conn, l->server->host, l->server->port, w->read_timeout_ms, l->why,
                             sizeof l->why);
    if (r != GM_OK)
        return r;
    char id[128];
    snprintf(id, sizeof id, "%s-%d-%u", w->client_id, (int)getpid(), l->id);
    for (char *q = id; *q; q++)
        if (*q <= ' ' || *q > '~')
            *q = '_'; /* gearmand wants a printable identifier */
    const char *arg[1] = {id};
    r = gm_send(&l->conn, GM_SET_CLIENT_ID, arg, 1, NULL, 0, w->read_timeout_ms);
    for (size_t i = 0; i < w->n_methods && r == GM_OK; i++) {
        arg[0] = w->methods[i].function_name; /* plain CAN_DO: CAN_DO_TIMEOUT is broken in 1.1.20 */
        r = gm_send(&l->conn, GM_CAN_DO, arg, 1, NULL, 0, w->read_timeout_ms);
    }
    if (r == GM_OK)
        r = gm_send(&l->conn, GM_ECHO_REQ, NULL, 0, "bridge", 6, w->read_timeout_ms);
    if (r != GM_OK) {
        snprintf(l->why, sizeof l->why, "registering failed");
        return r;
    }
    gm_packet p;
    r = expect(l, &p, w->read_timeout_ms, "ECHO_REQ after connecting", NULL, GM_ECHO_RES, GM_ECHO_RES,
               GM_ECHO_RES);
    gm_packet_free(&p);
    return r;
}

/* Grabs and runs jobs until there is none; GM_OK when the lane may sleep. */
static gm_result lane_grab(lane *l)
{
    bridge_worker *w = l->worker;
    for (;;) {
        if (!take_slot(w))
            return GM_STOPPED;
        gm_result r = gm_send(&l->conn, GM_GRAB_JOB_UNIQ, NULL, 0, NULL, 0, w->read_timeout_ms);
        gm_packet p;
        memset(&p, 0, sizeof p);
        if (r == GM_OK) {
            /* A stop now still takes the answer (for 1 s): a job assigned meanwhile is run, not
             * handed back to gearmand as a failed try. */
            l->conn.answer_due = true;
            r = expect(l, &p, w->read_timeout_ms, "GRAB_JOB_UNIQ", NULL, GM_NO_JOB,
                       GM_JOB_ASSIGN_UNIQ, GM_NO_JOB);
            l->conn.answer_due = false;
        } else
            snprintf(l->why, sizeof l->why, "sending GRAB_JOB_UNIQ failed");
        if (r == GM_OK && p.type == GM_JOB_ASSIGN_UNIQ && !run_job(l, &p))
            r = GM_CLOSED;
        bool none = r == GM_OK && p.type == GM_NO_JOB;
        gm_packet_free(&p);
        give_slot(w);
        if (r != GM_OK || none)
            return r;
        if (stopped(w))
            return GM_STOPPED;
    }
}

/* Serves one connected lane until the connection fails or the worker stops. */
static gm_result lane_serve(lane *l)
{
    bridge_worker *w = l->worker;
    bool woken = true; /* grab at once after connecting */
    for (;;) {
        if (woken) {
            gm_result r = lane_grab(l);
            if (r != GM_OK)
                return r;
            if ((r = gm_send(&l->conn, GM_PRE_SLEEP, NULL, 0, NULL, 0, w->read_timeout_ms)) != GM_OK)
                return r;
            woken = false;
        }
        gm_packet p;
        gm_result r = gm_read(&l->conn, &p, w->keepalive_ms, w->read_timeout_ms, w->max_request_bytes);
        if (r == GM_OK) {
            woken = p.type == GM_NOOP;
            gm_packet_free(&p);
            continue;
        }
        if (r != GM_TIMEOUT) {
            snprintf(l->why, sizeof l->why, "connection closed while idle");
            return r;
        }
        /* Idle for keepalive_ms: does the server still answer? (No job slot is held.) */
        if ((r = gm_send(&l->conn, GM_ECHO_REQ, NULL, 0, "keepalive", 9, w->read_timeout_ms)) != GM_OK)
            return r;
        r = expect(l, &p, w->read_timeout_ms, "a keepalive ECHO_REQ", &woken, GM_ECHO_RES,
                   GM_ECHO_RES, GM_ECHO_RES);
        gm_packet_free(&p);
        if (r != GM_OK)
            return r;
        if (!woken && (r = gm_send(&l->conn, GM_PRE_SLEEP, NULL, 0, NULL, 0, w->read_timeout_ms)) != GM_OK)
            return r;
    }
}

static void *lane_main(void *arg)
{
    lane *l = arg;
    bridge_worker *w = l->worker;
    gm_init(&l->conn, &w->stop, w->poll_interval_ms);
    unsigned backoff = w->reconnect_min_ms;
    bool down = false, loud = l->index == 0; /* one lane per server logs its state */
    while (!stopped(w)) {
        l->why[0] = '\0';
        gm_result r = lane_connect(l);
        if (r == GM_OK) {
            if (down && loud)
                wlog(w, BRIDGE_LOG_INFO, "%s:%s: serving again", l->server->host, l->server->port);
            down = false;
            backoff = w->reconnect_min_ms;
            r = lane_serve(l);
        }
        gm_close(&l->conn);
        if (r == GM_STOPPED || stopped(w))
            break;
        if (!down && loud)
            wlog(w, BRIDGE_LOG_WARNING, "%s:%s: %s; reconnecting with backoff", l->server->host,
                 l->server->port, l->why[0] ? l->why : "connection lost");
        down = true;
        nap_ms(w, backoff);
        backoff = backoff * 2 > w->reconnect_max_ms ? w->reconnect_max_ms : backoff * 2;
    }
    gm_close(&l->conn);
    return NULL;
}

/* ------------------------------------------------------------------ run */

bridge_status bridge_worker_run(bridge_worker *w)
{
    if (w == NULL)
        return BRIDGE_STATUS_INVALID;
    server *servers = NULL;
    size_t n_servers = bridge__parse_servers(w->servers, &servers);
    if (n_servers == 0) {
        wlog(w, BRIDGE_LOG_ERROR, "invalid server list '%s'", w->servers);
        return BRIDGE_STATUS_INVALID;
    }
    size_t n_lanes = n_servers * w->concurrency;
    lane *lanes = calloc(n_lanes, sizeof *lanes);
    if (lanes == NULL) {
        free(servers);
        return BRIDGE_STATUS_NO_MEMORY;
    }
    sigset_t stop_signals, old_mask;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    if (w->handle_signals)
        pthread_sigmask(SIG_BLOCK, &stop_signals, &old_mask); /* inherited by the threads */
    wlog(w, BRIDGE_LOG_INFO, "serving %zu function(s) on %s, %u job(s) at a time%s", w->n_methods, w->servers,
         w->concurrency, w->verifier ? "; signed jobs only (wire contract, section 9)" : "");
    bridge_status result = BRIDGE_STATUS_OK;
    for (size_t i = 0; i < n_lanes; i++) {
        lanes[i].worker = w;
        lanes[i].server = &servers[i / w->concurrency];
        lanes[i].index = (unsigned)(i % w->concurrency);
        lanes[i].id = (unsigned)i;
        if (pthread_create(&lanes[i].tid, NULL, lane_main, &lanes[i]) != 0) {
            wlog(w, BRIDGE_LOG_ERROR, "cannot start a thread: %s", strerror(errno));
            bridge_worker_stop(w);
            result = BRIDGE_STATUS_NO_MEMORY;
            break;
        }
        lanes[i].started = true;
    }
    while (!stopped(w)) {
        struct timespec wait = {0, 100 * 1000000L};
        if (w->handle_signals) {
            int sig = sigtimedwait(&stop_signals, NULL, &wait);
            if (sig == SIGTERM || sig == SIGINT) {
                wlog(w, BRIDGE_LOG_INFO, "%s: finishing running jobs, then exiting",
                     sig == SIGTERM ? "SIGTERM" : "SIGINT");
                bridge_worker_stop(w);
            }
        } else {
            nanosleep(&wait, NULL);
        }
    }
    bridge_worker_stop(w); /* wakes lanes waiting for a slot */
    for (size_t i = 0; i < n_lanes; i++)
        if (lanes[i].started)
            pthread_join(lanes[i].tid, NULL);
    free(lanes);
    free(servers);
    wlog(w, BRIDGE_LOG_INFO, "stopped after %llu job(s)", (unsigned long long)bridge_worker_jobs_done(w));
    if (w->handle_signals)
        pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
    return result;
}
