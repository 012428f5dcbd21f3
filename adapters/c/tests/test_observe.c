/*
 * The worker contract of docs/workers.md inside the C runtime: the command line
 * (bridge_worker_options_from_args), the per-job log lines and their escaping, and W3C trace
 * context read from the envelope's metadata (bridge_ctx_traceparent / bridge_ctx_trace_id).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bridge/bridge.h"
#include "bridge/v1/envelope.pb-c.h"
#include "check.h"
#include "interop/v1/interop.pb-c.h"
#include "log.h"

#define TRACE_FN "t.Trace"
#define FAIL_FN "t.Fail"
#define GOOD_TP "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

/* ------------------------------------------------------------------ capturing stdout / stderr */

typedef struct captured {
    int saved_out, saved_err;
    FILE *file;
} captured;

static void capture_begin(captured *c)
{
    fflush(stdout);
    fflush(stderr);
    c->file = tmpfile();
    c->saved_out = dup(1);
    c->saved_err = dup(2);
    dup2(fileno(c->file), 1);
    dup2(fileno(c->file), 2);
}

/* The text written meanwhile (malloc'd). */
static char *capture_end(captured *c)
{
    fflush(stdout);
    fflush(stderr);
    dup2(c->saved_out, 1);
    dup2(c->saved_err, 2);
    close(c->saved_out);
    close(c->saved_err);
    long size = ftell(c->file);
    char *text = calloc(1, (size_t)(size > 0 ? size : 0) + 1);
    rewind(c->file);
    if (text != NULL && size > 0 && fread(text, 1, (size_t)size, c->file) != (size_t)size)
        text[0] = '\0';
    fclose(c->file);
    return text;
}

/* ------------------------------------------------------------------ the command line */

static int args(bridge_worker_options *o, char **text, int argc, ...)
{
    char *argv[16] = {"/usr/bin/my_worker"};
    va_list ap;
    va_start(ap, argc);
    for (int i = 1; i < argc && i < 16; i++)
        argv[i] = va_arg(ap, char *);
    va_end(ap);
    *o = bridge_worker_options_default();
    captured c;
    capture_begin(&c);
    int rc = bridge_worker_options_from_args(o, argc, argv);
    *text = capture_end(&c);
    return rc;
}

static int one_error_line(const char *text, const char *want)
{
    size_t len = strlen(text);
    return strncmp(text, "my_worker: error: ", 18) == 0 && strstr(text, want) != NULL && len > 0 &&
           text[len - 1] == '\n' && strchr(text, '\n') == text + len - 1 &&
           strstr(text, "(see --help)\n") != NULL;
}

static int test_command_line(void)
{
    bridge_worker_options o;
    char *t = NULL;
    unsetenv("BRIDGE_SERVERS");
    unsetenv("BRIDGE_CONCURRENCY");
    unsetenv("BRIDGE_LOG_LEVEL");
    int rc = args(&o, &t, 7, "--servers", "a:1,b:2", "--concurrency=4", "--log-level", "DEBUG",
                  "--max-request-bytes=99");
    CHECK(rc == BRIDGE_ARGS_SERVE && t[0] == '\0', "parse: %d %s", rc, t);
    CHECK(strcmp(o.servers, "a:1,b:2") == 0 && o.concurrency == 4 && o.max_request_bytes == 99 &&
          o.log_level == BRIDGE_LOG_DEBUG, "values");
    free(t);

    rc = args(&o, &t, 2, "--help");
    CHECK(rc == BRIDGE_ARGS_EXIT && strncmp(t, "usage: my_worker ", 17) == 0 &&
          strstr(t, "--log-level") && strstr(t, "BRIDGE_CONCURRENCY"), "--help: %s", t);
    free(t);
    rc = args(&o, &t, 4, "--concurrency", "0", "-h"); /* help before any value is checked */
    CHECK(rc == BRIDGE_ARGS_EXIT && strncmp(t, "usage:", 6) == 0, "-h");
    free(t);
    rc = args(&o, &t, 2, "--version");
    CHECK(rc == BRIDGE_ARGS_EXIT && strcmp(t, "my_worker (bridge c runtime " BRIDGE_VERSION ")\n") == 0,
          "--version: %s", t);
    free(t);

    struct {
        const char *a, *b, *want;
    } bad[] = {
        {"--concurrency", "0", "--concurrency must be an integer from 1 to 1024, not '0'"},
        {"--concurrency=1025", NULL, "--concurrency must be an integer from 1 to 1024, not '1025'"},
        {"--concurrency", " 2", "not ' 2'"},
        {"--log-level", "loud", "--log-level must be one of debug, info, warning, error, not 'loud'"},
        {"--servers", "", "--servers must be HOST:PORT"},
        {"--servers", "--concurrency", "--servers needs a value"},
        {"--servers", NULL, "--servers needs a value"},
        {"--bogus", NULL, "unknown option '--bogus'"},
        {"--help=1", NULL, "unknown option '--help=1'"},
        {"stray", NULL, "unexpected argument 'stray'"},
        {"--log-level", "a\nb", "not 'a\\nb'"},
        {"--servers", "tls://127.0.0.1:4730", "run the worker under `bridge tunnel`"},
        {"--servers", "127.0.0.1:notaport", "--servers must be HOST:PORT"},
        {"--servers", "127.0.0.1:0", "(a port from 1 to 65535), not '127.0.0.1:0'"},
        {"--servers", "127.0.0.1:99999", "not '127.0.0.1:99999'"},
        {"--servers", "127.0.0.1:+1", "not '127.0.0.1:+1'"},
        {"--servers", ":4730", "not ':4730'"},
        {"--servers", ",", "not ','"},
        {"--servers", "a:1,,b:2", "not 'a:1,,b:2'"},
        {"--servers", "[::1]x", "not '[::1]x'"},
        {"--read-timeout", "0", "--read-timeout must be a number of seconds"},
        {"--read-timeout", "3600.001", "not '3600.001'"},
        {"--read-timeout", "-1", "--read-timeout must be a number of seconds, more than 0 and at most 3600, not '-1'"},
        {"--read-timeout=-1", NULL, "not '-1'"},
        {"--read-timeout", "1.", "not '1.'"},
        {"--read-timeout", "1e3", "not '1e3'"},
        {"--read-timeout-ms", "0", "--read-timeout-ms must be an integer from 1 to 3600000"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rc = args(&o, &t, bad[i].b ? 3 : 2, bad[i].a, bad[i].b);
        CHECK(rc == BRIDGE_ARGS_ERROR && one_error_line(t, bad[i].want), "bad %zu: %s", i, t);
        free(t);
    }

    /* the environment: a fallback the command line overrides; empty is unset; named when bad */
    setenv("BRIDGE_SERVERS", "env:7", 1);
    setenv("BRIDGE_CONCURRENCY", "3", 1);
    setenv("BRIDGE_LOG_LEVEL", "warn", 1);
    rc = args(&o, &t, 3, "--servers", "flag:9");
    CHECK(rc == 0 && strcmp(o.servers, "flag:9") == 0 && o.concurrency == 3 &&
          o.log_level == BRIDGE_LOG_WARNING, "env fallbacks");
    free(t);
    setenv("BRIDGE_CONCURRENCY", "", 1);
    rc = args(&o, &t, 1);
    CHECK(rc == 0 && strcmp(o.servers, "env:7") == 0 && o.concurrency == 1, "empty is unset");
    free(t);
    setenv("BRIDGE_CONCURRENCY", "many", 1);
    rc = args(&o, &t, 1);
    CHECK(rc == BRIDGE_ARGS_ERROR &&
          one_error_line(t, "BRIDGE_CONCURRENCY must be an integer from 1 to 1024, not 'many'"),
          "bad env: %s", t);
    free(t);
    rc = args(&o, &t, 3, "--concurrency", "2"); /* the flag wins: the variable is not read */
    CHECK(rc == 0 && o.concurrency == 2, "flag over bad env: %s", t);
    free(t);
    unsetenv("BRIDGE_CONCURRENCY");
    setenv("BRIDGE_SERVERS", "tls://h:1", 1);
    rc = args(&o, &t, 1);
    CHECK(rc == BRIDGE_ARGS_ERROR && one_error_line(t, "BRIDGE_SERVERS: the C runtime does not speak TLS"),
          "tls from env: %s", t);
    free(t);
    setenv("BRIDGE_SERVERS", "h:99999", 1);
    rc = args(&o, &t, 1);
    CHECK(rc == BRIDGE_ARGS_ERROR && one_error_line(t, "BRIDGE_SERVERS must be HOST:PORT"),
          "bad port from env: %s", t);
    free(t);
    unsetenv("BRIDGE_SERVERS");

    /* --read-timeout SECONDS (decimal), or --read-timeout-ms */
    rc = args(&o, &t, 3, "--read-timeout", "2.5");
    CHECK(rc == 0 && o.read_timeout_ms == 2500, "--read-timeout 2.5: %d %u %s", rc, o.read_timeout_ms, t);
    free(t);
    rc = args(&o, &t, 2, "--read-timeout=0.0001");
    CHECK(rc == 0 && o.read_timeout_ms == 1, "tiny timeout rounds up: %u", o.read_timeout_ms);
    free(t);
    rc = args(&o, &t, 2, "--read-timeout=3600");
    CHECK(rc == 0 && o.read_timeout_ms == 3600000, "an hour: %u", o.read_timeout_ms);
    free(t);
    rc = args(&o, &t, 3, "--read-timeout-ms", "250");
    CHECK(rc == 0 && o.read_timeout_ms == 250, "--read-timeout-ms");
    free(t);
    rc = args(&o, &t, 3, "--read-timeout=1", "--read-timeout-ms=5");
    CHECK(rc == BRIDGE_ARGS_ERROR && one_error_line(t, "not both"), "both: %s", t);
    free(t);

    /* the keys of the environment are checked while parsing: one line, never the key */
    setenv("BRIDGE_KEYS", "k1:not*base64", 1);
    rc = args(&o, &t, 1);
    CHECK(rc == BRIDGE_ARGS_ERROR && one_error_line(t, "BRIDGE_KEYS") && strstr(t, "not*base64") == NULL,
          "bad BRIDGE_KEYS: %s", t);
    free(t);
    o = bridge_worker_options_default();
    o.no_env_keys = true;
    char *argv1[] = {"w", NULL};
    CHECK(bridge_worker_options_from_args(&o, 1, argv1) == BRIDGE_ARGS_SERVE, "no_env_keys: not read");
    unsetenv("BRIDGE_KEYS");
    setenv("BRIDGE_KEYS_FILE", "/nonexistent/keys", 1);
    rc = args(&o, &t, 1);
    CHECK(rc == BRIDGE_ARGS_ERROR && one_error_line(t, "BRIDGE_KEYS_FILE /nonexistent/keys"),
          "missing BRIDGE_KEYS_FILE: %s", t);
    free(t);
    unsetenv("BRIDGE_KEYS_FILE");
    unsetenv("BRIDGE_SERVERS");
    unsetenv("BRIDGE_CONCURRENCY");
    unsetenv("BRIDGE_LOG_LEVEL");
    return 0;
}

/* ------------------------------------------------------------------ escaping */

static int test_escape(void)
{
    char out[BRIDGE__LOG_MESSAGE_SIZE];
    bridge__log_escape(out, sizeof out, "a\"b\\c\nd\re\tf\x01g\x7f", 200);
    CHECK(strcmp(out, "a\\\"b\\\\c\\nd\\re\\tf\\u0001g\\u007f") == 0, "controls: %s", out);
    bridge__log_escape(out, sizeof out, "\x1b[31m \xf3\xa0\x80\x81 \xc3", 200); /* ESC, a tag, cut */
    CHECK(strcmp(out, "\\u001b[31m \\udb40\\udc01 \\xc3") == 0, "JSON-style: %s", out);
    bridge__log_escape(out, sizeof out, "caf\xc3\xa9 \xe2\x80\xa8 \xc2\x85 \xff \xef\xbb\xbf", 200);
    CHECK(strcmp(out, "caf\xc3\xa9 \\u2028 \\u0085 \\xff \\ufeff") == 0, "unicode: %s", out);
    char long_text[301];
    memset(long_text, 'x', 300);
    long_text[300] = '\0';
    bridge__log_escape(out, sizeof out, long_text, 200);
    CHECK(strlen(out) == 203 && strcmp(out + 200, "...") == 0, "cut at 200: %zu", strlen(out));
    long_text[200] = '\0';
    bridge__log_escape(out, sizeof out, long_text, 200);
    CHECK(strlen(out) == 200, "200 characters are not cut");
    char newlines[201];
    memset(newlines, '\n', 200);
    newlines[200] = '\0';
    bridge__log_escape(out, sizeof out, newlines, 200); /* 400 bytes of escapes: room for them */
    CHECK(strlen(out) == 400 && strchr(out, '\n') == NULL, "escaped newlines: %zu", strlen(out));
    return 0;
}

/* ------------------------------------------------------------------ trace context and job lines */

static int t_trace(bridge_ctx *ctx, const ProtobufCMessage *request, ProtobufCMessage *reply)
{
    (void)request;
    Bridge__Interop__V1__WhoAmIReply *r = (Bridge__Interop__V1__WhoAmIReply *)reply;
    const char *tp = bridge_ctx_traceparent(ctx), *id = bridge_ctx_trace_id(ctx);
    r->language = bridge_ctx_sprintf(ctx, "%s|%s", tp ? tp : "-", id ? id : "-");
    return 0;
}

static int t_fail(bridge_ctx *ctx, const ProtobufCMessage *request, ProtobufCMessage *reply)
{
    (void)request;
    (void)reply;
    return bridge_ctx_set_error(ctx, BRIDGE_NOT_FOUND, "no user \"bob\"\nINFO forged line");
}

static bridge_worker *trace_worker(bridge_log_level level)
{
    bridge_worker_options o = bridge_worker_options_default();
    o.log_level = level;
    o.no_env_keys = true;
    bridge_worker *w = bridge_worker_new(&o);
    bridge_method m = {.function_name = TRACE_FN,
                       .input = &bridge__interop__v1__empty__descriptor,
                       .output = &bridge__interop__v1__who_am_ireply__descriptor,
                       .handler = t_trace};
    if (w == NULL || bridge_worker_add_method(w, &m) != BRIDGE_STATUS_OK)
        return NULL;
    m.function_name = FAIL_FN;
    m.handler = t_fail;
    bridge_worker_add_method(w, &m);
    return w;
}

/* Runs one job with a traceparent entry (NULL: none); the handler's "traceparent|trace_id". */
static char *traced_job(bridge_worker *w, const char *function, const char *traceparent,
                        char **log)
{
    Bridge__V1__Request req = BRIDGE__V1__REQUEST__INIT;
    Bridge__V1__Request__MetadataEntry e = BRIDGE__V1__REQUEST__METADATA_ENTRY__INIT;
    Bridge__V1__Request__MetadataEntry *entries[1] = {&e};
    req.version = 1;
    req.encoding = BRIDGE__V1__ENCODING__MSGPACK;
    if (traceparent != NULL) {
        e.key = "traceparent";
        e.value = (char *)traceparent;
        req.n_metadata = 1;
        req.metadata = entries;
    }
    bridge_buffer p = BRIDGE_BUFFER_INIT, out = BRIDGE_BUFFER_INIT;
    bridge_encode(&req.base, BRIDGE_ENCODING_PROTOBUF, &p, NULL, 0);
    char kind = 0;
    captured c;
    capture_begin(&c);
    bridge_worker_process_job(w, function, "H:test:7", p.data, p.len, &kind, &out, NULL);
    *log = capture_end(&c);
    char *seen = NULL;
    ProtobufCMessage *m = NULL;
    if (kind == 'C' && out.len > 23 &&
        bridge_decode(&bridge__interop__v1__who_am_ireply__descriptor, BRIDGE_ENCODING_MSGPACK,
                      out.data + 23, out.len - 23, &m, NULL, 0) == BRIDGE_STATUS_OK) {
        seen = strdup(((Bridge__Interop__V1__WhoAmIReply *)m)->language);
        bridge_message_free(m);
    }
    bridge_buffer_free(&p);
    bridge_buffer_free(&out);
    return seen;
}

static int test_trace_context(void)
{
    bridge_worker *w = trace_worker(BRIDGE_LOG_DEBUG);
    CHECK(w != NULL, "worker");
    char *log = NULL;
    char *seen = traced_job(w, TRACE_FN, GOOD_TP, &log);
    int ok = seen && strcmp(seen, GOOD_TP "|4bf92f3577b34da6a3ce929d0e0e4736") == 0;
    int logged = strstr(log, " DEBUG bridge-c[") &&
                 strstr(log, "]: job function=t.Trace handle=H:test:7 encoding=msgpack bytes=") &&
                 strstr(log, " outcome=OK trace_id=4bf92f3577b34da6a3ce929d0e0e4736\n") &&
                 strstr(log, " seconds=0.0");
    free(seen);
    CHECK(ok, "a valid traceparent reaches the handler");
    CHECK(logged, "job line: %s", log);
    free(log);
    static const char *const invalid[] = {
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", /* version */
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01", /* zero trace id */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", /* zero parent id */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", /* uppercase */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-", /* length */
        "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",  /* dashes */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g", /* flags */
        "", NULL};
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
        seen = traced_job(w, TRACE_FN, invalid[i], &log);
        ok = seen && strcmp(seen, "-|-") == 0 && strstr(log, "outcome=OK\n") &&
             !strstr(log, "trace_id");
        free(seen);
        CHECK(ok, "traceparent %zu is ignored: %s", i, log);
        free(log);
    }
    /* an error answer: one warning line, the message escaped (no forged line) */
    seen = traced_job(w, FAIL_FN, GOOD_TP, &log);
    ok = seen == NULL && strstr(log, " WARNING bridge-c[") &&
         strstr(log, "]: job failed function=t.Fail handle=H:test:7 "
                                     "encoding=msgpack bytes=") &&
         strstr(log, " outcome=NOT_FOUND trace_id=4bf92f3577b34da6a3ce929d0e0e4736 "
                     "message=\"no user \\\"bob\\\"\\nINFO forged line\"\n") &&
         strchr(log, '\n') == log + strlen(log) - 1;
    free(seen);
    CHECK(ok, "job failed line: %s", log);
    free(log);
    /* an error before any handler (no method): warned too */
    seen = traced_job(w, "t.Missing", NULL, &log);
    ok = strstr(log, " WARNING bridge-c[") && strstr(log, "]: job failed function=t.Missing ") &&
         strstr(log, " outcome=UNIMPLEMENTED message=\"no method is registered as t.Missing\"\n");
    free(seen);
    CHECK(ok, "unimplemented line: %s", log);
    free(log);
    bridge_worker_free(w);

    /* at warning: no debug line, the warning still */
    w = trace_worker(BRIDGE_LOG_WARNING);
    seen = traced_job(w, TRACE_FN, GOOD_TP, &log);
    ok = seen && log[0] == '\0';
    free(seen);
    free(log);
    CHECK(ok, "no job line at warning");
    seen = traced_job(w, FAIL_FN, NULL, &log);
    ok = strstr(log, " WARNING bridge-c[") && strstr(log, "]: job failed function=t.Fail");
    free(seen);
    free(log);
    CHECK(ok, "job failed at warning");
    bridge_worker_free(w);

    /* error: nothing; BRIDGE_LOG_LEVEL decides when the options do not */
    w = trace_worker(BRIDGE_LOG_ERROR);
    seen = traced_job(w, FAIL_FN, NULL, &log);
    ok = log[0] == '\0';
    free(seen);
    free(log);
    bridge_worker_free(w);
    CHECK(ok, "no line at error");
    setenv("BRIDGE_LOG_LEVEL", "Debug", 1);
    w = trace_worker(BRIDGE_LOG_DEFAULT);
    unsetenv("BRIDGE_LOG_LEVEL");
    seen = traced_job(w, TRACE_FN, NULL, &log);
    ok = strstr(log, " DEBUG bridge-c[") && strstr(log, "]: job function=t.Trace");
    free(seen);
    free(log);
    bridge_worker_free(w);
    CHECK(ok, "BRIDGE_LOG_LEVEL=Debug");
    return 0;
}

void observe_tests(void)
{
    run("command_line", test_command_line);
    run("log_escape", test_escape);
    run("trace_context_and_job_lines", test_trace_context);
}
