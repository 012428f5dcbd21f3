/*
 * libbridge: serve protobuf-typed C functions to Python callers over Gearman.
 *
 * A worker registers every rpc of the services it serves (generated code does this for you),
 * grabs jobs from one or more gearmand servers, decodes the bridge.v1.Request envelope, runs the
 * handler and answers in the request's encoding (protobuf or msgpack). The wire contract lives in
 * docs/wire-contract.md of the bridge repository.
 *
 * Ownership, in one place:
 *  - Request messages are owned by the runtime and valid only during the handler call.
 *  - The reply message is allocated and initialised by the runtime; the handler fills its fields.
 *    Whatever the reply points to (strings, bytes, sub-messages, arrays) is NOT freed by the
 *    runtime: point it at the request, at static storage, or at memory from bridge_ctx_alloc(),
 *    which is released when the job is finished.
 *  - bridge_decode() hands its caller a message to release with bridge_message_free();
 *    bridge_encode() fills a bridge_buffer to release with bridge_buffer_free().
 *  - Strings passed to bridge_* functions are copied when the runtime keeps them.
 *
 * Threads: a worker keeps `concurrency` connections to every job server, each with its own thread,
 * and runs at most `concurrency` jobs at once. Handlers of one worker may therefore run
 * concurrently; a bridge_ctx belongs to one job and one thread.
 */
#ifndef BRIDGE_BRIDGE_H
#define BRIDGE_BRIDGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BRIDGE_VERSION "0.1.0"

/* Canonical status codes, numbered as gRPC's (bridge.v1.Code). */
typedef enum bridge_code {
    BRIDGE_OK = 0,
    BRIDGE_CANCELLED = 1,
    BRIDGE_UNKNOWN = 2,
    BRIDGE_INVALID_ARGUMENT = 3,
    BRIDGE_DEADLINE_EXCEEDED = 4,
    BRIDGE_NOT_FOUND = 5,
    BRIDGE_ALREADY_EXISTS = 6,
    BRIDGE_PERMISSION_DENIED = 7,
    BRIDGE_RESOURCE_EXHAUSTED = 8,
    BRIDGE_FAILED_PRECONDITION = 9,
    BRIDGE_ABORTED = 10,
    BRIDGE_OUT_OF_RANGE = 11,
    BRIDGE_UNIMPLEMENTED = 12,
    BRIDGE_INTERNAL = 13,
    BRIDGE_UNAVAILABLE = 14,
    BRIDGE_DATA_LOSS = 15,
    BRIDGE_UNAUTHENTICATED = 16
} bridge_code;

/* The canonical name of a code ("INVALID_ARGUMENT"), or "CODE_<n>" for unknown numbers. */
const char *bridge_code_name(bridge_code code);

/*
 * How request and reply bodies are encoded (bridge.v1.Encoding). An enveloped job says PROTOBUF
 * or MSGPACK in its envelope; a bare method's encoding is fixed by the schema and may also be
 * JSON (wire contract, section 8.2) or RAW (the bytes of a message's only bytes/string field).
 */
typedef enum bridge_encoding {
    BRIDGE_ENCODING_PROTOBUF = 1,
    BRIDGE_ENCODING_MSGPACK = 2,
    BRIDGE_ENCODING_JSON = 3,
    BRIDGE_ENCODING_RAW = 4
} bridge_encoding;

/* Results of runtime calls: 0 on success, a negative bridge_status otherwise. */
typedef enum bridge_status {
    BRIDGE_STATUS_OK = 0,
    BRIDGE_STATUS_DECODE_ERROR = -1,  /* malformed input: maps to INVALID_ARGUMENT */
    BRIDGE_STATUS_ENCODE_ERROR = -2,  /* the message cannot be encoded (e.g. invalid UTF-8) */
    BRIDGE_STATUS_NO_MEMORY = -3,
    BRIDGE_STATUS_INVALID = -4,       /* a bad argument to a bridge_* function */
    BRIDGE_STATUS_IO = -5,            /* gearmand could not be reached / the send failed */
    BRIDGE_STATUS_ALREADY_FINISHED = -6 /* the job already sent its final answer */
} bridge_status;

const char *bridge_status_text(bridge_status status);

/* ---------------------------------------------------------------------------------------------
 * Codecs: one protobuf and one msgpack codec for every protobuf-c message.
 * ------------------------------------------------------------------------------------------- */

/* A growable byte buffer. Zero-initialise it (BRIDGE_BUFFER_INIT); release with bridge_buffer_free. */
typedef struct bridge_buffer {
    uint8_t *data;
    size_t len;
    size_t cap;
} bridge_buffer;

#define BRIDGE_BUFFER_INIT {NULL, 0, 0}

void bridge_buffer_free(bridge_buffer *buf);

/*
 * Decodes `len` bytes as a message of type `desc`. On success *out is a new message owned by the
 * caller (release it with bridge_message_free). On failure returns BRIDGE_STATUS_DECODE_ERROR
 * (or NO_MEMORY), leaves *out NULL and, when `err` is not NULL, writes a reason into it.
 */
bridge_status bridge_decode(const ProtobufCMessageDescriptor *desc, bridge_encoding encoding,
                            const uint8_t *data, size_t len, ProtobufCMessage **out,
                            char *err, size_t err_size);

/* Appends the encoding of `msg` to `out` (byte-exact with every other bridge language). */
bridge_status bridge_encode(const ProtobufCMessage *msg, bridge_encoding encoding,
                            bridge_buffer *out, char *err, size_t err_size);

/* Releases a message returned by bridge_decode (NULL is fine). */
void bridge_message_free(ProtobufCMessage *msg);

/* ---------------------------------------------------------------------------------------------
 * The per-job context handed to every handler.
 * ------------------------------------------------------------------------------------------- */

typedef struct bridge_ctx bridge_ctx;

/* The Gearman function this job was submitted to, e.g. "bridge.interop.v1.Interop.Echo". */
const char *bridge_ctx_function_name(const bridge_ctx *ctx);
/* The job's encoding: replies and streamed items are encoded the same way. */
bridge_encoding bridge_ctx_encoding(const bridge_ctx *ctx);
/* True for a job of a bare method (no envelope: no deadline, no metadata, no reply frames). */
bool bridge_ctx_bare(const bridge_ctx *ctx);
/* The caller's absolute deadline in Unix milliseconds, 0 when there is none. */
int64_t bridge_ctx_deadline_ms(const bridge_ctx *ctx);
/* Milliseconds left before the deadline (may be negative), or INT64_MAX when there is none. */
int64_t bridge_ctx_remaining_ms(const bridge_ctx *ctx);

/* Envelope metadata. The value of `key`, or NULL when absent. Valid during the job. */
const char *bridge_ctx_metadata(const bridge_ctx *ctx, const char *key);
size_t bridge_ctx_metadata_count(const bridge_ctx *ctx);
/* The i-th entry (0 <= i < count); returns false when i is out of range. */
bool bridge_ctx_metadata_at(const bridge_ctx *ctx, size_t i, const char **key, const char **value);

/*
 * W3C Trace Context (docs/workers.md, "Trace context"): the job's `traceparent` metadata entry when
 * it is a valid version-00 traceparent ("00-<32 hex>-<16 hex>-<2 hex>", lowercase, ids not all
 * zero), else NULL (an invalid one is ignored, never an error). bridge_ctx_trace_id: its 32-hex
 * trace id, written as trace_id= in the job's log lines. `tracestate`, when sent, is
 * bridge_ctx_metadata(ctx, "tracestate"). Valid during the job. A handler that calls on passes
 * them along in its own call's metadata to keep the trace.
 */
const char *bridge_ctx_traceparent(const bridge_ctx *ctx);
const char *bridge_ctx_trace_id(const bridge_ctx *ctx);

/* WORK_STATUS: progress as numerator / denominator. The first status or warning of a run that has
 * sent no WORK_DATA yet is preceded by an attempt marker (a WORK_DATA reply frame, no body);
 * a bare method's job sends no marker. */
bridge_status bridge_ctx_send_progress(bridge_ctx *ctx, uint32_t numerator, uint32_t denominator);
/* WORK_WARNING with UTF-8 text; the job goes on. */
bridge_status bridge_ctx_send_warning(bridge_ctx *ctx, const char *text);
/* Server streaming: encodes one item in the job's encoding and sends it as WORK_DATA (a reply
 * frame: kind "stream item", its sequence number, the run's attempt id; wire contract, sec. 3).
 * Generated code wraps this in a typed <service>_<method>_send() function. */
bridge_status bridge_ctx_send(bridge_ctx *ctx, const ProtobufCMessage *item);
/* Server streaming: sends bytes already encoded in the job's encoding as the next item (framed
 * like bridge_ctx_send's). BRIDGE_STATUS_INVALID for a unary rpc, which has no items. */
bridge_status bridge_ctx_send_data(bridge_ctx *ctx, const void *data, size_t size);

/*
 * Makes the job fail with `code` and a printf-style message (WORK_EXCEPTION carrying a
 * bridge.v1.Error of type "bridge_error"). Returns -1 so a handler can write
 *     return bridge_ctx_set_error(ctx, BRIDGE_NOT_FOUND, "no user %s", req->name);
 * A code that is not canonical (OK, or outside 1..16) becomes UNKNOWN.
 * A handler that returns non-zero without calling it fails with UNKNOWN.
 */
int bridge_ctx_set_error(bridge_ctx *ctx, bridge_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/*
 * C's "native" failure: describes what went wrong without choosing a code, so the job fails with
 * UNKNOWN and this message (type "bridge_error"). Returns -1. A handler that simply returns
 * non-zero gets the message "<function> failed (handler returned N)", plus strerror(errno) when
 * errno was set.
 */
int bridge_ctx_set_failure(bridge_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Adds a key/value pair to the error's details map (both copied). */
bridge_status bridge_ctx_set_error_detail(bridge_ctx *ctx, const char *key, const char *value);
/* Ends the job with a bare WORK_FAIL (no explanation reaches the caller). Returns -1. */
int bridge_ctx_fail(bridge_ctx *ctx);

/* Zeroed memory released when the job finishes; NULL when out of memory. */
void *bridge_ctx_alloc(bridge_ctx *ctx, size_t size);
/* Copies into job memory (see bridge_ctx_alloc). */
char *bridge_ctx_strdup(bridge_ctx *ctx, const char *s);
void *bridge_ctx_memdup(bridge_ctx *ctx, const void *data, size_t size);
/* printf into job memory. */
char *bridge_ctx_sprintf(bridge_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The user_data pointer given at registration. */
void *bridge_ctx_user_data(const bridge_ctx *ctx);

/* ---------------------------------------------------------------------------------------------
 * Methods and the worker.
 * ------------------------------------------------------------------------------------------- */

/*
 * A unary handler fills `reply` (already initialised) and returns 0, or returns non-zero to fail.
 * A streaming handler gets reply == NULL and sends its items with bridge_ctx_send().
 */
typedef int (*bridge_handler_fn)(bridge_ctx *ctx, const ProtobufCMessage *request,
                                 ProtobufCMessage *reply);

/* One rpc. Generated registration functions build these; they are copied on registration. */
typedef struct bridge_method {
    const char *function_name;                  /* Gearman function name */
    const ProtobufCMessageDescriptor *input;    /* request type */
    const ProtobufCMessageDescriptor *output;   /* reply (or stream item) type */
    bool server_streaming;
    bridge_handler_fn handler;                  /* NULL: the rpc answers UNIMPLEMENTED */
    void *user_data;                            /* handed back by bridge_ctx_user_data() */
    /* The user's typed function, for generated trampolines (see bridge_ctx_method); may be NULL. */
    void (*typed_handler)(void);
    /* A bare method (wire contract, section 8): the job's payload is the request alone in
     * `encoding` and the reply goes back alone, unframed; errors in the bare form (JSON methods:
     * {"code","status","message"}; the others: the message text). Never streaming. */
    bool bare;
    bridge_encoding encoding;                   /* a bare method's encoding (0 when not bare) */
} bridge_method;

/* The method the job runs (generated trampolines read typed_handler from it). */
const bridge_method *bridge_ctx_method(const bridge_ctx *ctx);

/*
 * Log levels (docs/workers.md, "Log lines"). Lines go to stderr, one per event:
 * "TIME LEVEL bridge-c[PID]: text". At DEBUG every job gets a line when its answer has been sent
 *     job function=NAME handle=H encoding=protobuf bytes=123 seconds=0.0012 outcome=OK [trace_id=..]
 * and every error answer (anything but OK) is a WARNING line with the same fields plus the message,
 * escaped (no raw control characters, quotes or newlines) and cut at 200 characters:
 *     job failed function=NAME ... outcome=INVALID_ARGUMENT message="..."
 */
typedef enum bridge_log_level {
    BRIDGE_LOG_DEFAULT = 0, /* BRIDGE_LOG_LEVEL from the environment, else INFO */
    BRIDGE_LOG_DEBUG = 10,
    BRIDGE_LOG_INFO = 20,
    BRIDGE_LOG_WARNING = 30,
    BRIDGE_LOG_ERROR = 40
} bridge_log_level;

/* "debug", "info", "warning" (or "warn"), "error", in any case, into *level; false otherwise. */
bool bridge_log_level_parse(const char *text, bridge_log_level *level);

typedef struct bridge_worker_options {
    const char *servers;          /* "host:port[,host:port...]"; NULL: "127.0.0.1:4730" */
    unsigned concurrency;         /* jobs in parallel, whichever servers they come from; 0: 1 */
    size_t max_request_bytes;     /* 0: BRIDGE_DEFAULT_MAX_REQUEST_BYTES */
    unsigned poll_interval_ms;    /* how often a waiting thread checks for stop; 0: 200 */
    unsigned reconnect_min_ms;    /* reconnect backoff start; 0: 100 */
    unsigned reconnect_max_ms;    /* reconnect backoff cap; 0: 5000 */
    bool handle_signals;          /* bridge_worker_run stops on SIGTERM / SIGINT */
    const char *client_id;        /* Gearman worker id prefix; NULL: "bridge-c" */
    bool quiet;                   /* no log lines on stderr */
    /* A job server that leaves a connect, a GRAB or an ECHO unanswered this long is dropped and
     * reconnected with backoff; also the longest a send or a read may stall. 0: 5000. */
    unsigned read_timeout_ms;
    /* An idle connection sends ECHO_REQ after this long without traffic; 0: 15000. */
    unsigned keepalive_ms;
    /* Signed jobs (wire contract, section 9; see bridge_worker_set_keys). Unless no_env_keys,
     * bridge_worker_new() reads BRIDGE_KEYS, else the file BRIDGE_KEYS_FILE, and fails (NULL,
     * the reason on stderr, never a key) when they are not a valid key list. */
    bool no_env_keys;
    unsigned signing_window_s;    /* how far ahead a signed job's deadline may be; 0: 86400 */
    size_t replay_capacity;       /* the replay cache's bound (entries); 0: 100000 */
    /* Lines below this level are not written; BRIDGE_LOG_DEFAULT: BRIDGE_LOG_LEVEL from the
     * environment, else INFO. `quiet` silences every level. */
    bridge_log_level log_level;
} bridge_worker_options;

#define BRIDGE_DEFAULT_MAX_REQUEST_BYTES ((size_t)64 * 1024 * 1024 + 64 * 1024)

/* Sensible defaults: servers NULL, concurrency 1, handle_signals true. */
bridge_worker_options bridge_worker_options_default(void);

typedef struct bridge_worker bridge_worker;

/* Creates a worker (options are copied); NULL when out of memory or options are invalid. */
bridge_worker *bridge_worker_new(const bridge_worker_options *options);
/* Registers one rpc (copied). Generated bridge_<pkg>_<service>_register() calls this. */
bridge_status bridge_worker_add_method(bridge_worker *worker, const bridge_method *method);
/*
 * Connects and serves until stopped: on SIGTERM / SIGINT (when handle_signals) or
 * bridge_worker_stop(), threads stop grabbing, finish the job they run, and the call returns
 * BRIDGE_STATUS_OK. gearmand going away is not an error: threads reconnect with backoff.
 */
bridge_status bridge_worker_run(bridge_worker *worker);
/* Asks a running worker to stop gracefully; safe from any thread (not from a signal handler). */
void bridge_worker_stop(bridge_worker *worker);
/* Releases the worker (after bridge_worker_run returned). NULL is fine. */
void bridge_worker_free(bridge_worker *worker);

/*
 * Signed jobs and replies (wire contract, section 9). A worker with keys runs only enveloped jobs
 * signed (HMAC-SHA256) by one of them, with a deadline, not replayed; any other job is answered
 * UNAUTHENTICATED naming the check ("unsigned job", "unknown key id", "bad signature", "a signed
 * job needs a deadline", "expired", "deadline too far ahead", "replayed" -- a nonce seen before,
 * whatever the job handle; bare methods: "bare jobs cannot be signed"), or RESOURCE_EXHAUSTED
 * "replay cache full", with one warning line on stderr, and the worker goes on. Every WORK_DATA, WORK_COMPLETE and WORK_EXCEPTION of a job naming one of its keys
 * carries the reply MAC. Call these before bridge_worker_run(); keys are copied, wiped when
 * dropped, and never logged.
 *
 * bridge_worker_set_keys: `keys` is a key list as BRIDGE_KEYS writes it ("id1:BASE64,id2:BASE64",
 * commas or newlines, '#' comment lines; ids of 1-64 [A-Za-z0-9._-], keys of 16 bytes or more)
 * and replaces the worker's keys; NULL removes them (jobs are no longer checked). On error the
 * keys are unchanged and `err` (may be NULL) says why.
 * bridge_worker_add_key: one more key, from its bytes.
 */
bridge_status bridge_worker_set_keys(bridge_worker *worker, const char *keys, char *err,
                                     size_t err_size);
bridge_status bridge_worker_add_key(bridge_worker *worker, const char *key_id, const uint8_t *key,
                                    size_t key_size, char *err, size_t err_size);
/* How many keys the worker accepts (0: jobs are not checked). */
size_t bridge_worker_key_count(const bridge_worker *worker);

/* Jobs answered since start (all threads), for logs and tests. */
uint64_t bridge_worker_jobs_done(const bridge_worker *worker);

/*
 * The worker command line every bridge runtime shares (docs/workers.md, "Command line"):
 *
 *   --servers HOST:PORT[,HOST:PORT...]  env BRIDGE_SERVERS, default 127.0.0.1:4730
 *   --concurrency N                     env BRIDGE_CONCURRENCY, 1-1024, default 1
 *   --log-level LEVEL                   env BRIDGE_LOG_LEVEL: debug, info, warning (warn), error
 *   --max-request-bytes N, --read-timeout-ms N   (this runtime's own)
 *   --help, -h                          usage on stdout
 *   --version                           "PROGRAM (bridge c runtime VERSION)" on stdout
 *
 * `--flag VALUE` and `--flag=VALUE` both work; the command line wins over the environment and an
 * empty variable counts as unset. Fills `options` (strings point into argv or the environment)
 * and returns BRIDGE_ARGS_SERVE; BRIDGE_ARGS_EXIT after --help or --version (the program exits
 * 0); BRIDGE_ARGS_ERROR after writing one line "PROGRAM: error: ... (see --help)" on stderr for a
 * bad flag or value (the program exits 2). BRIDGE_ARGS_EXIT is new: a program written for the
 * older "0 or -1" should test `rc != BRIDGE_ARGS_SERVE` and exit with `rc < 0 ? 2 : 0`.
 */
#define BRIDGE_ARGS_SERVE 0
#define BRIDGE_ARGS_EXIT 1
#define BRIDGE_ARGS_ERROR (-1)
int bridge_worker_options_from_args(bridge_worker_options *options, int argc, char **argv);

/* Registers a program's services on a new worker (generated <service>_register() calls). */
typedef bridge_status (*bridge_setup_fn)(bridge_worker *worker, void *arg);

/*
 * A whole worker program: parses the command line as bridge_worker_options_from_args() does,
 * creates the worker, calls `setup(worker, arg)` to register the services and serves until
 * SIGTERM / SIGINT. Returns the process's exit status: 0 (stopped, or --help / --version), 2 (a
 * bad command line), 1 (the worker could not start or serve; the reason on stderr).
 *
 *   static bridge_status setup(bridge_worker *w, void *arg) { return my_v1_svc_register(w, arg, NULL); }
 *   int main(int argc, char **argv) { return bridge_worker_main(argc, argv, setup, &handlers); }
 *
 * A generated shim's <service>_main() does exactly this for one service.
 */
int bridge_worker_main(int argc, char **argv, bridge_setup_fn setup, void *arg);

/*
 * Runs the whole job flow for one raw Gearman payload without a server (tests, embedding):
 * returns what the worker would send. `kind` gets 'C' (WORK_COMPLETE), 'E' (WORK_EXCEPTION) or
 * 'F' (WORK_FAIL); `out` the final payload (a reply frame for 'C', the reply alone for a bare
 * method); the WORK_DATA payloads (reply frames: stream items, attempt markers) are concatenated
 * into `data` when not NULL, each preceded by its length as 4 bytes big-endian.
 */
bridge_status bridge_worker_process(bridge_worker *worker, const char *function_name,
                                    const uint8_t *payload, size_t size, char *kind,
                                    bridge_buffer *out, bridge_buffer *data);
/* The same for the job handle `job_handle` (named in a refused signed job's warning line).
 * bridge_worker_process gives every call a handle of its own. */
bridge_status bridge_worker_process_job(bridge_worker *worker, const char *function_name,
                                        const char *job_handle, const uint8_t *payload, size_t size,
                                        char *kind, bridge_buffer *out, bridge_buffer *data);

#ifdef __cplusplus
}
#endif

#endif /* BRIDGE_BRIDGE_H */
