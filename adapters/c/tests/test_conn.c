/*
 * The Gearman connection layer (src/gearman_conn.c) against a socketpair peer: packet framing
 * both ways, the read timeout, the stop flag (and the grace an owed answer gets), oversized
 * workloads dropped while read, a closed or broken peer. (Against real gearmand: the Python
 * tests and the interop suite.)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "gearman_conn.h"

static gm_conn conn;
static int peer = -1;
static atomic_bool stop;

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int open_pair(void)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        return -1;
    atomic_store(&stop, false);
    gm_init(&conn, &stop, 20);
    conn.fd = sv[0];
    fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
    peer = sv[1];
    return 0;
}

static void close_pair(void)
{
    gm_close(&conn);
    if (peer >= 0)
        close(peer);
    peer = -1;
}

/* Writes one server packet to the connection. */
static void serve(uint32_t type, const void *body, size_t size)
{
    uint8_t h[12] = {0, 'R', 'E', 'S', (uint8_t)(type >> 24), (uint8_t)(type >> 16),
                     (uint8_t)(type >> 8), (uint8_t)type, (uint8_t)(size >> 24),
                     (uint8_t)(size >> 16), (uint8_t)(size >> 8), (uint8_t)size};
    if (write(peer, h, sizeof h) != (ssize_t)sizeof h || (size && write(peer, body, size) != (ssize_t)size))
        printf("(short write to the socketpair)\n");
}

static int test_conn_packets(void)
{
    CHECK(open_pair() == 0, "socketpair");
    /* worker -> server: arguments NUL-separated, no NUL after a last argument, "" data kept */
    const char *fn[1] = {"fn"};
    CHECK(gm_send(&conn, GM_CAN_DO, fn, 1, NULL, 0, 1000) == GM_OK, "CAN_DO");
    const char *handle[1] = {"H:1"};
    CHECK(gm_send(&conn, GM_WORK_COMPLETE, handle, 1, "", 0, 1000) == GM_OK, "WORK_COMPLETE");
    const char *status[3] = {"H:1", "1", "2"};
    CHECK(gm_send(&conn, GM_WORK_STATUS, status, 3, NULL, 0, 1000) == GM_OK, "WORK_STATUS");
    static const uint8_t want[] = "\0REQ\0\0\0\x01\0\0\0\x02" "fn"
                                  "\0REQ\0\0\0\x0d\0\0\0\x04" "H:1\0"
                                  "\0REQ\0\0\0\x0c\0\0\0\x07" "H:1\0" "1\0" "2";
    uint8_t got[sizeof want];
    CHECK(read(peer, got, sizeof want - 1) == (ssize_t)sizeof want - 1 &&
              memcmp(got, want, sizeof want - 1) == 0, "bytes on the wire");
    /* server -> worker: a job assignment, then a NOOP */
    static const char body[] = "H:7\0bridge.x.Y\0uniq\0pay\0load";
    serve(GM_JOB_ASSIGN_UNIQ, body, sizeof body - 1);
    serve(GM_NOOP, NULL, 0);
    gm_packet p;
    CHECK(gm_read(&conn, &p, 1000, 1000, 100) == GM_OK && p.type == GM_JOB_ASSIGN_UNIQ, "assign");
    int ok = strcmp(p.arg[0], "H:7") == 0 && strcmp(p.arg[1], "bridge.x.Y") == 0 &&
             strcmp(p.arg[2], "uniq") == 0 && p.data_size == 8 && memcmp(p.data, "pay\0load", 8) == 0 &&
             !p.oversized;
    gm_packet_free(&p);
    CHECK(ok, "assignment fields");
    CHECK(gm_read(&conn, &p, 1000, 1000, 100) == GM_OK && p.type == GM_NOOP && p.size == 0, "noop");
    gm_packet_free(&p);
    /* a workload over the limit is dropped as it is read; the stream stays in step */
    serve(GM_JOB_ASSIGN_UNIQ, body, sizeof body - 1);
    serve(GM_NO_JOB, NULL, 0);
    CHECK(gm_read(&conn, &p, 1000, 1000, 7) == GM_OK && p.oversized && p.data == NULL &&
              p.data_size == 8 && strcmp(p.arg[0], "H:7") == 0, "oversized");
    gm_packet_free(&p);
    CHECK(gm_read(&conn, &p, 1000, 1000, 7) == GM_OK && p.type == GM_NO_JOB, "in step after it");
    gm_packet_free(&p);
    /* an ERROR packet's code and text */
    serve(GM_ERROR, "ERR_X\0went wrong", 16);
    CHECK(gm_read(&conn, &p, 1000, 1000, 7) == GM_OK && strcmp(p.arg[0], "ERR_X") == 0 &&
              strcmp(p.arg[1], "went wrong") == 0, "error packet");
    gm_packet_free(&p);
    /* not a response magic, then a closed peer */
    if (write(peer, "\0REQ\0\0\0\x06\0\0\0\0", 12) != 12)
        return 1;
    CHECK(gm_read(&conn, &p, 1000, 1000, 7) == GM_CLOSED, "bad magic closes");
    close_pair();
    CHECK(open_pair() == 0, "socketpair");
    close(peer);
    peer = -1;
    CHECK(gm_read(&conn, &p, 1000, 1000, 7) == GM_CLOSED, "EOF closes");
    close_pair();
    return 0;
}

static int test_conn_timeouts_and_stop(void)
{
    CHECK(open_pair() == 0, "socketpair");
    gm_packet p;
    long long t = now_ms();
    CHECK(gm_read(&conn, &p, 150, 1000, 7) == GM_TIMEOUT, "silent peer: timeout");
    long long took = now_ms() - t;
    CHECK(took >= 140 && took < 1000, "read timeout took %lld ms", took);
    /* half a header, then nothing: the stall limit */
    if (write(peer, "\0RE", 3) != 3)
        return 1;
    t = now_ms();
    CHECK(gm_read(&conn, &p, 5000, 200, 7) == GM_TIMEOUT && now_ms() - t < 1000, "stalled header");
    close_pair();
    CHECK(open_pair() == 0, "socketpair");
    atomic_store(&stop, true);
    t = now_ms();
    CHECK(gm_read(&conn, &p, 5000, 5000, 7) == GM_STOPPED && now_ms() - t < 300, "stop: at once");
    conn.answer_due = true; /* a GRAB's answer is owed: 1 s more */
    t = now_ms();
    CHECK(gm_read(&conn, &p, 5000, 5000, 7) == GM_STOPPED, "stop with an answer due");
    took = now_ms() - t;
    CHECK(took >= 900 && took < 2500, "answer due: gave up after %lld ms", took);
    serve(GM_NO_JOB, NULL, 0); /* an answer that arrives in that second is taken */
    CHECK(gm_read(&conn, &p, 5000, 5000, 7) == GM_OK && p.type == GM_NO_JOB, "late answer");
    gm_packet_free(&p);
    close_pair();
    return 0;
}

void conn_tests(void)
{
    run("conn_packets", test_conn_packets);
    run("conn_timeouts_and_stop", test_conn_timeouts_and_stop);
}
