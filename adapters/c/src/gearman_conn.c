/*
 * The Gearman binary protocol for one worker connection (private to libbridge).
 *
 * Why not libgearman: its worker waits on all of its servers in one call and has a single timeout
 * for every wait, so one frozen job server (TCP up, nothing answered) held every thread, and it
 * pins its sockets' buffers at 32 KiB. Here each connection is its own non-blocking socket and
 * every wait is bounded: a read timeout for answers, a stall limit for sends, and a stop flag
 * looked at every poll step so that a stopping worker never waits on a server.
 */
#define _GNU_SOURCE
#include "gearman_conn.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HEADER 12
#define MAX_CONTROL_PACKET (1u << 20) /* any packet but a job assignment: far below this */
#define MAX_ASSIGN_ARGS 4096           /* handle + function + unique, NUL-terminated */
#define STOP_GRACE_MS 1000             /* how long a send or read goes on once stopping */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool stopping(const gm_conn *c)
{
    return c->stop != NULL && atomic_load(c->stop);
}

void gm_init(gm_conn *c, const atomic_bool *stop, unsigned poll_step_ms)
{
    c->fd = -1;
    c->stop = stop;
    c->poll_step_ms = poll_step_ms ? poll_step_ms : 100;
    c->answer_due = false;
    c->in_start = c->in_end = 0;
}

void gm_close(gm_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->in_start = c->in_end = 0;
}

/*
 * Waits until fd is ready for `events`. Returns GM_OK, GM_TIMEOUT after `limit_ms` without it, or
 * GM_STOPPED when the stop flag is up (at once when `stop_grace` is false, after STOP_GRACE_MS of
 * waiting otherwise).
 */
static gm_result wait_fd(gm_conn *c, short events, unsigned limit_ms, bool stop_grace)
{
    int64_t start = mono_ms(), stop_seen = -1;
    for (;;) {
        int64_t now = mono_ms();
        if (stopping(c)) {
            if (!stop_grace)
                return GM_STOPPED;
            if (stop_seen < 0)
                stop_seen = now;
            if (now - stop_seen >= STOP_GRACE_MS)
                return GM_STOPPED;
        }
        if (now - start >= (int64_t)limit_ms)
            return GM_TIMEOUT;
        int64_t left = (int64_t)limit_ms - (now - start);
        int step = (int)(left < c->poll_step_ms ? left : c->poll_step_ms);
        struct pollfd pfd = {.fd = c->fd, .events = events, .revents = 0};
        int n = poll(&pfd, 1, step);
        if (n < 0 && errno != EINTR)
            return GM_CLOSED;
        if (n > 0)
            return GM_OK; /* ready, or an error / hang-up the next read or write reports */
    }
}

gm_result gm_connect(gm_conn *c, const char *host, const char *port, unsigned timeout_ms,
                     char *why, size_t why_size)
{
    gm_close(c);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        snprintf(why, why_size, "cannot resolve %s: %s", host, gai_strerror(rc));
        return GM_CLOSED;
    }
    gm_result result = GM_CLOSED;
    snprintf(why, why_size, "no address");
    for (struct addrinfo *a = res; a != NULL && result != GM_OK; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            snprintf(why, why_size, "socket: %s", strerror(errno));
            continue;
        }
        c->fd = fd;
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
            result = GM_OK;
        } else if (errno == EINPROGRESS) {
            result = wait_fd(c, POLLOUT, timeout_ms, false);
            int err = 0;
            socklen_t len = sizeof err;
            if (result == GM_OK && (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0)) {
                snprintf(why, why_size, "connect: %s", strerror(err ? err : errno));
                result = GM_CLOSED;
            } else if (result == GM_TIMEOUT) {
                snprintf(why, why_size, "connect: no answer within %u ms", timeout_ms);
            }
        } else {
            snprintf(why, why_size, "connect: %s", strerror(errno));
        }
        if (result != GM_OK) {
            close(fd);
            c->fd = -1;
            if (result == GM_STOPPED)
                break;
        }
    }
    freeaddrinfo(res);
    if (result == GM_OK) {
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(c->fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
        c->in_start = c->in_end = 0;
    }
    return result;
}

/* Writes all of [p, p+n): gives up when nothing moves for stall_ms (or 1 s once stopping). */
static gm_result write_all(gm_conn *c, const uint8_t *p, size_t n, unsigned stall_ms)
{
    while (n > 0) {
        ssize_t k = send(c->fd, p, n, MSG_NOSIGNAL);
        if (k > 0) {
            p += k;
            n -= (size_t)k;
            continue;
        }
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return GM_CLOSED;
        gm_result r = wait_fd(c, POLLOUT, stall_ms, true);
        if (r != GM_OK)
            return r;
    }
    return GM_OK;
}

gm_result gm_send(gm_conn *c, uint32_t type, const char *const *args, size_t n_args,
                  const void *data, size_t size, unsigned stall_ms)
{
    if (c->fd < 0)
        return GM_CLOSED;
    size_t args_len = 0;
    for (size_t i = 0; i < n_args; i++)
        args_len += strlen(args[i]) + 1;
    if (n_args > 0 && data == NULL)
        args_len--; /* the last argument ends the body: no NUL after it */
    if (args_len + size > UINT32_MAX || args_len > MAX_ASSIGN_ARGS)
        return GM_CLOSED;
    uint8_t head[HEADER + MAX_ASSIGN_ARGS + 1];
    uint32_t body = (uint32_t)(args_len + size);
    memcpy(head, "\0REQ", 4);
    for (int i = 0; i < 4; i++) {
        head[4 + i] = (uint8_t)(type >> (24 - 8 * i));
        head[8 + i] = (uint8_t)(body >> (24 - 8 * i));
    }
    size_t at = HEADER;
    for (size_t i = 0; i < n_args; i++) {
        size_t len = strlen(args[i]);
        memcpy(head + at, args[i], len + 1); /* with its NUL (dropped below for a last argument) */
        at += len + 1;
    }
    at = HEADER + args_len;
    /* The header and arguments go out with the start of the data in one segment when small. */
    if (size > 0 && size <= 1024) {
        uint8_t small[HEADER + MAX_ASSIGN_ARGS + 1024];
        memcpy(small, head, at);
        memcpy(small + at, data, size);
        return write_all(c, small, at + size, stall_ms);
    }
    gm_result r = write_all(c, head, at, stall_ms);
    return (r == GM_OK && size > 0) ? write_all(c, data, size, stall_ms) : r;
}

/* ------------------------------------------------------------------ reading */

static gm_result fill(gm_conn *c, unsigned limit_ms, bool mid_packet)
{
    if (c->in_start == c->in_end)
        c->in_start = c->in_end = 0;
    if (c->in_end == sizeof c->in) {
        memmove(c->in, c->in + c->in_start, c->in_end - c->in_start);
        c->in_end -= c->in_start;
        c->in_start = 0;
    }
    for (;;) {
        ssize_t k = recv(c->fd, c->in + c->in_end, sizeof c->in - c->in_end, 0);
        if (k > 0) {
            c->in_end += (size_t)k;
            return GM_OK;
        }
        if (k == 0)
            return GM_CLOSED;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return GM_CLOSED;
        gm_result r = wait_fd(c, POLLIN, limit_ms, mid_packet);
        if (r != GM_OK)
            return r;
    }
}

/* Copies n bytes of the stream into dst (NULL: drops them), waiting stall_ms at most per read. */
static gm_result take(gm_conn *c, uint8_t *dst, size_t n, unsigned stall_ms)
{
    while (n > 0) {
        if (c->in_start == c->in_end) {
            /* Large bodies go straight into their destination, not through the buffer. */
            if (dst != NULL && n >= sizeof c->in) {
                ssize_t k = recv(c->fd, dst, n, 0);
                if (k > 0) {
                    dst += k;
                    n -= (size_t)k;
                    continue;
                }
                if (k == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
                    return GM_CLOSED;
                gm_result r = wait_fd(c, POLLIN, stall_ms, true);
                if (r != GM_OK)
                    return r;
                continue;
            }
            gm_result r = fill(c, stall_ms, true);
            if (r != GM_OK)
                return r;
        }
        size_t k = c->in_end - c->in_start;
        if (k > n)
            k = n;
        if (dst != NULL) {
            memcpy(dst, c->in + c->in_start, k);
            dst += k;
        }
        c->in_start += k;
        n -= k;
    }
    return GM_OK;
}

void gm_packet_free(gm_packet *p)
{
    free(p->body);
    memset(p, 0, sizeof *p);
}

/* Splits the first `n` NUL-terminated arguments off the body. */
static bool split_args(gm_packet *p, const uint8_t *body, size_t len, size_t n, size_t *used)
{
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *nul = memchr(body + at, 0, len - at);
        if (nul == NULL)
            return false;
        p->arg[i] = (const char *)body + at;
        at = (size_t)(nul - body) + 1;
    }
    *used = at;
    return true;
}

gm_result gm_read(gm_conn *c, gm_packet *p, unsigned timeout_ms, unsigned stall_ms,
                  size_t max_workload)
{
    memset(p, 0, sizeof *p);
    if (c->fd < 0)
        return GM_CLOSED;
    while (c->in_end - c->in_start < HEADER) {
        /* Before the first byte: the read timeout; inside a header: the stall limit. */
        bool started = c->in_end > c->in_start;
        gm_result r = fill(c, started ? stall_ms : timeout_ms, started || c->answer_due);
        if (r != GM_OK)
            return r;
    }
    const uint8_t *h = c->in + c->in_start;
    if (memcmp(h, "\0RES", 4) != 0)
        return GM_CLOSED;
    p->type = (uint32_t)h[4] << 24 | (uint32_t)h[5] << 16 | (uint32_t)h[6] << 8 | h[7];
    p->size = (size_t)((uint32_t)h[8] << 24 | (uint32_t)h[9] << 16 | (uint32_t)h[10] << 8 | h[11]);
    c->in_start += HEADER;
    bool assign = p->type == GM_JOB_ASSIGN_UNIQ;
    if (!assign && p->size > MAX_CONTROL_PACKET)
        return GM_CLOSED;
    size_t used = 0;
    if (assign) {
        /* The arguments first, to learn the workload's size before holding it in memory. */
        size_t head = p->size < MAX_ASSIGN_ARGS ? p->size : MAX_ASSIGN_ARGS;
        uint8_t args[MAX_ASSIGN_ARGS];
        gm_result r = take(c, args, head, stall_ms);
        if (r != GM_OK)
            return r;
        if (!split_args(p, args, head, 3, &used))
            return GM_CLOSED;
        if (p->size - used > max_workload) {
            /* Too big: keep the arguments only and drop the workload as it arrives. */
            p->oversized = true;
            p->data_size = p->size - used;
            if ((p->body = malloc(used)) == NULL)
                return GM_CLOSED;
            memcpy(p->body, args, used);
            split_args(p, p->body, used, 3, &used);
            return take(c, NULL, p->size - head, stall_ms);
        }
        if ((p->body = malloc(p->size + 1)) == NULL)
            return GM_CLOSED;
        memcpy(p->body, args, head);
        r = take(c, p->body + head, p->size - head, stall_ms);
        if (r != GM_OK) {
            gm_packet_free(p);
            return r;
        }
    } else {
        if ((p->body = malloc(p->size + 1)) == NULL)
            return GM_CLOSED;
        gm_result r = take(c, p->body, p->size, stall_ms);
        if (r != GM_OK) {
            gm_packet_free(p);
            return r;
        }
    }
    p->body[p->size] = '\0';
    if (assign) {
        split_args(p, p->body, p->size, 3, &used);
        p->data = p->body + used;
        p->data_size = p->size - used;
    } else if (p->type == GM_ERROR) {
        p->arg[0] = (const char *)p->body;
        const uint8_t *nul = memchr(p->body, 0, p->size);
        p->arg[1] = nul ? (const char *)nul + 1 : "";
    }
    return GM_OK;
}
