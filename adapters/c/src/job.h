/* The per-job context and the job flow (private). */
#ifndef BRIDGE_JOB_H
#define BRIDGE_JOB_H

#include "bridge/v1/envelope.pb-c.h"
#include "internal.h"
#include "log.h"
#include "security.h"

#pragma GCC visibility push(hidden)

typedef enum bridge_packet {
    BRIDGE_PACKET_DATA,
    BRIDGE_PACKET_WARNING,
    BRIDGE_PACKET_STATUS,
    BRIDGE_PACKET_COMPLETE,
    BRIDGE_PACKET_EXCEPTION,
    BRIDGE_PACKET_FAIL
} bridge_packet;

/* Where a job's packets go: a job server connection, or a capture for bridge_worker_process(). */
typedef struct bridge_sink {
    int (*send)(void *state, bridge_packet kind, const void *data, size_t size, uint32_t num,
                uint32_t den);
    void *state;
} bridge_sink;

typedef struct detail {
    struct detail *next;
    char *key;
    char *value;
} detail;

struct arena_block;

struct bridge_ctx {
    const char *function_name;
    const bridge_method *method;
    bridge_sink sink;
    Bridge__V1__Request *request; /* the decoded envelope, for metadata */
    bridge_encoding encoding;
    int64_t deadline_ms;
    bridge_code error_code;
    char *error_message;
    detail *details;
    bool fail_requested;
    bool finished;
    bool io_failed;
    struct arena_block *arena;
    /* reply frames (wire contract, section 3) */
    uint64_t attempt;    /* this run's random id, never 0 */
    uint32_t type_tag;   /* CRC-32 of the reply type's full name */
    uint64_t items_sent; /* stream items sent so far: the next item's sequence */
    bool sent_data;      /* a WORK_DATA went out in this run (no attempt marker needed) */
    bool bare;           /* a bare method's job: no envelope, frames or markers (section 8) */
    /* signed jobs (section 9) */
    const char *handle;          /* the Gearman job handle (for the warning line) */
    bridge_verifier *verifier;   /* the worker's keys and replay cache; NULL: no keys */
    const bridge_key *reply_key; /* this job's replies carry a MAC under this key (9.3) */
    const char *reply_key_id;
    const uint8_t *reply_nonce;
    /* the job's log line (docs/workers.md) and trace context */
    bridge_log_level log_level;  /* the worker's: lines below it are not written */
    char traceparent[56];        /* a valid version-00 traceparent from the metadata, or "" */
    char trace_id[33];           /* its trace id, or "" */
    bool answered;               /* a final answer went out (or was attempted) */
    bool answer_fail;            /* ... and it was WORK_FAIL */
    bridge_code answer_code;     /* ... else its code (BRIDGE_OK: a reply) */
    char answer_message[BRIDGE__LOG_MESSAGE_SIZE]; /* an error answer's message, escaped */
    double handler_seconds;      /* the handler's wall time */
};

/* Reply frames: the header before every WORK_DATA / WORK_COMPLETE body (reply.c). */
#define BRIDGE_FRAME_HEADER 23
#define BRIDGE_FRAME_MAGIC 0xB7
enum { BRIDGE_FRAME_REPLY = 1, BRIDGE_FRAME_ITEM = 2, BRIDGE_FRAME_END = 3, BRIDGE_FRAME_MARKER = 4 };

/* Hands one packet to the job's sink (nothing once the job is finished). */
bridge_status bridge__sink_send(bridge_ctx *ctx, bridge_packet kind, const void *data, size_t size,
                                uint32_t num, uint32_t den);
/* Fills the first BRIDGE_FRAME_HEADER bytes of `frame` and sends it as WORK_DATA / COMPLETE. */
bridge_status bridge__send_frame(bridge_ctx *ctx, bridge_packet packet, int kind, uint64_t sequence,
                                 uint8_t *frame, size_t size);
/* The WORK_EXCEPTION payload of a bare method's error (section 8.3), appended to `out`. */
bridge_status bridge__bare_error_payload(bridge_encoding encoding, bridge_code code,
                                         const char *message, bridge_buffer *out);
/* A random attempt id for one run of a job, never 0. */
uint64_t bridge__new_attempt_id(void);

int64_t bridge__now_ms(void);

/* Decodes a Request envelope; *body points into `payload` (envelope.c). */
bridge_status bridge__decode_envelope(const uint8_t *payload, size_t size, ProtobufCMessage **envelope,
                                      ProtobufCBinaryData *body, char *err, size_t err_size);

/* Runs the whole flow for one payload; ctx must be zeroed with function_name and sink set. */
void bridge__job_run(bridge_ctx *ctx, const bridge_method *method, const uint8_t *payload,
                     size_t size, size_t max_request_bytes);

#pragma GCC visibility pop

#endif
