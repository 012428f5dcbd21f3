/*
 * One worker connection to one Gearman job server: the binary protocol's packets over a
 * non-blocking TCP socket, every wait bounded (private to libbridge).
 */
#ifndef BRIDGE_GEARMAN_CONN_H
#define BRIDGE_GEARMAN_CONN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#pragma GCC visibility push(hidden)

/* Packet types a worker sends or receives (gearmand's numbering). */
enum {
    GM_CAN_DO = 1,
    GM_PRE_SLEEP = 4,
    GM_NOOP = 6,
    GM_NO_JOB = 10,
    GM_WORK_STATUS = 12,
    GM_WORK_COMPLETE = 13,
    GM_WORK_FAIL = 14,
    GM_ECHO_REQ = 16,
    GM_ECHO_RES = 17,
    GM_ERROR = 19,
    GM_SET_CLIENT_ID = 22,
    GM_WORK_EXCEPTION = 25,
    GM_WORK_DATA = 28,
    GM_WORK_WARNING = 29,
    GM_GRAB_JOB_UNIQ = 30,
    GM_JOB_ASSIGN_UNIQ = 31
};

typedef enum gm_result {
    GM_OK = 0,
    GM_TIMEOUT = 1, /* nothing arrived (or could be sent) in time */
    GM_STOPPED = 2, /* the stop flag was raised while waiting */
    GM_CLOSED = 3   /* connection lost, refused, or the peer broke the protocol */
} gm_result;

typedef struct gm_conn {
    int fd;                   /* -1 when not connected */
    const atomic_bool *stop;  /* waits give up early once this is set (may be NULL) */
    unsigned poll_step_ms;    /* how often a wait looks at *stop */
    bool answer_due;          /* an answer is owed (a GRAB): reads go on 1 s past a stop */
    uint8_t in[65536];        /* read-ahead buffer for packet headers and small packets */
    size_t in_start, in_end;
} gm_conn;

/* A received packet. For JOB_ASSIGN_UNIQ, arg[0..2] are handle, function and unique (NUL
 * terminated, inside `body`) and data/size the workload; for ERROR, arg[0..1] code and text. */
typedef struct gm_packet {
    uint32_t type;
    uint8_t *body;       /* malloc'd, NUL-terminated; NULL when the workload was discarded */
    size_t size;         /* declared body size */
    const char *arg[3];
    const uint8_t *data;
    size_t data_size;
    bool oversized;      /* workload larger than the reader's limit: read and dropped, not kept */
} gm_packet;

void gm_init(gm_conn *c, const atomic_bool *stop, unsigned poll_step_ms);

/* Connects to host:port within timeout_ms; on failure `why` says what happened. */
gm_result gm_connect(gm_conn *c, const char *host, const char *port, unsigned timeout_ms,
                     char *why, size_t why_size);
void gm_close(gm_conn *c);

/*
 * Sends one packet: `args` NUL-separated, then `data` (NULL: the packet has no data part, so the
 * last argument ends the body; "" with size 0: an empty data part after the last NUL).
 * Gives up when the server takes nothing for stall_ms, or for 1 s once *stop is set.
 */
gm_result gm_send(gm_conn *c, uint32_t type, const char *const *args, size_t n_args,
                  const void *data, size_t size, unsigned stall_ms);

/*
 * Waits up to timeout_ms for the next packet (and then as long as the rest keeps arriving within
 * stall_ms). A JOB_ASSIGN_UNIQ workload larger than max_workload is read and dropped
 * (p->oversized) instead of being held in memory. Release with gm_packet_free.
 */
gm_result gm_read(gm_conn *c, gm_packet *p, unsigned timeout_ms, unsigned stall_ms,
                  size_t max_workload);
void gm_packet_free(gm_packet *p);

#pragma GCC visibility pop

#endif
