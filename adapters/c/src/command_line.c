/*
 * The worker command line every bridge runtime shares (docs/workers.md, "Command line"), and
 * bridge_worker_main(), a whole worker program around it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "security.h"
#include "worker.h"

#define MAX_CONCURRENCY 1024
#define MAX_READ_TIMEOUT_MS 3600000ULL

static const char *program_name(char **argv)
{
    const char *name = argv != NULL && argv[0] != NULL && argv[0][0] != '\0' ? argv[0] : "worker";
    const char *slash = strrchr(name, '/');
    return slash != NULL && slash[1] != '\0' ? slash + 1 : name;
}

static void usage(FILE *out, const char *prog)
{
    fprintf(out,
            "usage: %s [--servers HOST:PORT[,HOST:PORT...]] [--concurrency N] [--log-level LEVEL]\n"
            "       [--max-request-bytes N] [--read-timeout SECONDS | --read-timeout-ms N]\n"
            "       [--help] [--version]\n"
            "\n"
            "A bridge worker (bridge c runtime %s): serves its functions to bridge callers\n"
            "through Gearman job servers until SIGTERM or SIGINT.\n"
            "\n"
            "options:\n"
            "  --servers HOST:PORT[,...]  job servers (env BRIDGE_SERVERS; default 127.0.0.1:4730)\n"
            "  --concurrency N            jobs run at once, 1-%d (env BRIDGE_CONCURRENCY; default 1)\n"
            "  --log-level LEVEL          debug, info, warning (warn) or error\n"
            "                             (env BRIDGE_LOG_LEVEL; default info)\n"
            "  --max-request-bytes N      largest job payload accepted (default %zu)\n"
            "  --read-timeout SECONDS     drop a job server that leaves a GRAB or ECHO unanswered\n"
            "                             this long, more than 0 and at most 3600 (default 5)\n"
            "  --read-timeout-ms N        the same in milliseconds, 1-%llu (default %d)\n"
            "  -h, --help                 show this help and exit\n"
            "  --version                  show the version and exit\n"
            "\n"
            "servers are plain TCP: for TLS run the worker under `bridge tunnel`.\n"
            "environment: BRIDGE_KEYS or BRIDGE_KEYS_FILE (a key list; BRIDGE_SIGNING_KEY): run\n"
            "only jobs signed with one of these keys, checked at start. The command line wins over the environment; an empty variable is\n"
            "unset. Logs go to stderr.\n",
            prog, BRIDGE_VERSION, MAX_CONCURRENCY, BRIDGE_DEFAULT_MAX_REQUEST_BYTES,
            MAX_READ_TIMEOUT_MS, BRIDGE_DEFAULT_READ_TIMEOUT_MS);
}

/* The one error line; always BRIDGE_ARGS_ERROR. */
static int arg_error(const char *prog, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int arg_error(const char *prog, const char *fmt, ...)
{
    char text[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s: error: %s (see --help)\n", prog, text);
    return BRIDGE_ARGS_ERROR;
}

/* A value as it may be shown inside the error line (no newline can end the line early). */
static const char *shown(char *buf, size_t size, const char *value)
{
    bridge__log_escape(buf, size, value, 60);
    return buf;
}

static int parse_number(const char *s, unsigned long long min, unsigned long long max,
                        unsigned long long *out)
{
    char *end = NULL;
    errno = 0;
    if (s[0] < '0' || s[0] > '9')
        return -1; /* no sign, no space */
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* "SECONDS" (digits, optionally a point and digits), 0 < s <= 3600, as milliseconds rounded up. */
static int parse_seconds(const char *s, unsigned long long *ms)
{
    unsigned long long whole = 0, frac_ms = 0;
    size_t digits = 0, i = 0;
    for (; s[i] >= '0' && s[i] <= '9'; i++, digits++)
        if ((whole = whole * 10 + (unsigned)(s[i] - '0')) > 3600)
            return -1;
    if (s[i] == '.') {
        unsigned long long scale = 100;
        bool rest = false; /* a digit past the milliseconds that is not 0: round up */
        size_t after = 0;
        for (i++; s[i] >= '0' && s[i] <= '9'; i++, after++) {
            if (scale > 0) {
                frac_ms += (unsigned)(s[i] - '0') * scale;
                scale /= 10;
            } else if (s[i] != '0') {
                rest = true;
            }
        }
        if (after == 0)
            return -1;
        digits += after;
        frac_ms += rest ? 1 : 0;
    }
    if (digits == 0 || s[i] != '\0')
        return -1;
    unsigned long long total = whole * 1000 + frac_ms;
    if (total == 0 || total > MAX_READ_TIMEOUT_MS)
        return -1;
    *ms = total;
    return 0;
}

/* One setting, from a flag (`name` "--servers") or a variable (`name` "BRIDGE_SERVERS"). */
static int apply(bridge_worker_options *o, const char *prog, const char *flag, const char *name,
                 const char *value)
{
    char buf[400];
    unsigned long long n = 0;
    if (strcmp(flag, "--servers") == 0) {
        server *list = NULL;
        size_t count = bridge__parse_servers(value, &list);
        free(list);
        if (count == 0 && strstr(value, "tls://") != NULL)
            return arg_error(prog, "%s: the C runtime does not speak TLS, not '%s': run the worker "
                             "under `bridge tunnel` and give it the tunnel's plain HOST:PORT", name,
                             shown(buf, sizeof buf, value));
        if (count == 0)
            return arg_error(prog, "%s must be HOST:PORT[,HOST:PORT...] (a port from 1 to 65535), "
                             "not '%s'", name, shown(buf, sizeof buf, value));
        o->servers = value;
    } else if (strcmp(flag, "--concurrency") == 0) {
        if (parse_number(value, 1, MAX_CONCURRENCY, &n) != 0)
            return arg_error(prog, "%s must be an integer from 1 to %d, not '%s'", name,
                             MAX_CONCURRENCY, shown(buf, sizeof buf, value));
        o->concurrency = (unsigned)n;
    } else if (strcmp(flag, "--log-level") == 0) {
        if (!bridge_log_level_parse(value, &o->log_level))
            return arg_error(prog, "%s must be one of debug, info, warning, error, not '%s'", name,
                             shown(buf, sizeof buf, value));
    } else if (strcmp(flag, "--max-request-bytes") == 0) {
        if (parse_number(value, 1, SIZE_MAX, &n) != 0)
            return arg_error(prog, "%s must be a positive integer, not '%s'", name,
                             shown(buf, sizeof buf, value));
        o->max_request_bytes = (size_t)n;
    } else if (strcmp(flag, "--read-timeout") == 0) {
        if (parse_seconds(value, &n) != 0)
            return arg_error(prog, "%s must be a number of seconds, more than 0 and at most 3600, "
                             "not '%s'", name, shown(buf, sizeof buf, value));
        o->read_timeout_ms = (unsigned)n;
    } else { /* --read-timeout-ms */
        if (parse_number(value, 1, MAX_READ_TIMEOUT_MS, &n) != 0)
            return arg_error(prog, "%s must be an integer from 1 to %llu, not '%s'", name,
                             MAX_READ_TIMEOUT_MS, shown(buf, sizeof buf, value));
        o->read_timeout_ms = (unsigned)n;
    }
    return BRIDGE_ARGS_SERVE;
}

/* BRIDGE_KEYS / BRIDGE_KEYS_FILE / BRIDGE_SIGNING_KEY loaded now, so that a wrong one is the
 * one error line too (the reason names the variable and the entry, never a key). */
static int check_env_keys(const char *prog)
{
    bridge_keyring ring = {0};
    bool found = false;
    char why[600];
    bridge_status st = bridge__keyring_from_env(&ring, &found, why, sizeof why);
    bridge__keyring_clear(&ring);
    if (st == BRIDGE_STATUS_OK)
        return BRIDGE_ARGS_SERVE;
    return arg_error(prog, "%s", why);
}

int bridge_worker_options_from_args(bridge_worker_options *o, int argc, char **argv)
{
    static const char *const valued[] = {"--servers", "--concurrency", "--log-level",
                                         "--max-request-bytes", "--read-timeout",
                                         "--read-timeout-ms"};
    static const char *const env[] = {"BRIDGE_SERVERS", "BRIDGE_CONCURRENCY", "BRIDGE_LOG_LEVEL",
                                      NULL, NULL, NULL};
    enum { N_VALUED = sizeof valued / sizeof valued[0] };
    const char *prog = program_name(argv);
    const char *given[N_VALUED] = {NULL};
    char buf[400];
    if (o == NULL)
        return BRIDGE_ARGS_ERROR;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage(stdout, prog);
            fflush(stdout);
            return BRIDGE_ARGS_EXIT;
        }
        if (strcmp(arg, "--version") == 0) {
            printf("%s (bridge c runtime %s)\n", prog, BRIDGE_VERSION);
            fflush(stdout);
            return BRIDGE_ARGS_EXIT;
        }
        const char *eq = strchr(arg, '=');
        size_t name_len = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
        size_t k = 0;
        while (k < N_VALUED && !(strlen(valued[k]) == name_len && strncmp(arg, valued[k], name_len) == 0))
            k++;
        if (k == N_VALUED) {
            if (arg[0] == '-')
                return arg_error(prog, "unknown option '%s'", shown(buf, sizeof buf, arg));
            return arg_error(prog, "unexpected argument '%s'", shown(buf, sizeof buf, arg));
        }
        const char *value = eq != NULL ? eq + 1 : NULL;
        if (value == NULL) {
            if (i + 1 >= argc || (argv[i + 1][0] == '-' && argv[i + 1][1] == '-'))
                return arg_error(prog, "%s needs a value", valued[k]);
            value = argv[++i];
        }
        given[k] = value;
    }
    /* The environment first, then the command line over it: each value checked once. */
    for (size_t k = 0; k < N_VALUED; k++) {
        const char *value = given[k];
        const char *name = valued[k];
        if (value == NULL && env[k] != NULL) {
            const char *from_env = getenv(env[k]);
            if (from_env != NULL && from_env[0] != '\0') {
                value = from_env;
                name = env[k];
            }
        }
        if (value != NULL && apply(o, prog, valued[k], name, value) != BRIDGE_ARGS_SERVE)
            return BRIDGE_ARGS_ERROR;
    }
    if (given[4] != NULL && given[5] != NULL)
        return arg_error(prog, "give --read-timeout or --read-timeout-ms, not both");
    return o->no_env_keys ? BRIDGE_ARGS_SERVE : check_env_keys(prog);
}

int bridge_worker_main(int argc, char **argv, bridge_setup_fn setup, void *arg)
{
    bridge_worker_options options = bridge_worker_options_default();
    int rc = bridge_worker_options_from_args(&options, argc, argv);
    if (rc != BRIDGE_ARGS_SERVE)
        return rc == BRIDGE_ARGS_EXIT ? 0 : 2;
    bridge_worker *worker = bridge_worker_new(&options);
    if (worker == NULL) {
        bridge__log(BRIDGE_LOG_INFO, BRIDGE_LOG_ERROR, "the worker could not be created");
        return 1;
    }
    bridge_status status = setup != NULL ? setup(worker, arg) : BRIDGE_STATUS_OK;
    if (status != BRIDGE_STATUS_OK)
        bridge__log(BRIDGE_LOG_INFO, BRIDGE_LOG_ERROR, "registering the services failed: %s",
                    bridge_status_text(status));
    else
        status = bridge_worker_run(worker); /* until SIGTERM / SIGINT */
    bridge_worker_free(worker);
    return status == BRIDGE_STATUS_OK ? 0 : 1;
}
