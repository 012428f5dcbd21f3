/* Log lines on stderr (docs/workers.md, "Log lines"), private. */
#ifndef BRIDGE_LOG_H
#define BRIDGE_LOG_H

#include <stddef.h>

#include "internal.h"

#pragma GCC visibility push(hidden)

/* Above every level: a quiet worker writes nothing. */
#define BRIDGE__LOG_OFF ((bridge_log_level)1000)
/* A job line's message: at most this many characters of the original, then "...". */
#define BRIDGE__LOG_MESSAGE_CHARS 200
/* Room for an escaped message of BRIDGE__LOG_MESSAGE_CHARS characters (6 bytes each at most). */
#define BRIDGE__LOG_MESSAGE_SIZE (BRIDGE__LOG_MESSAGE_CHARS * 6 + 4)

/* One line "TIME LEVEL bridge-c[PID]: text" on stderr when `level` >= `threshold`. */
void bridge__log(bridge_log_level threshold, bridge_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* `text` made safe for one log line: quotes, backslashes, controls (C0, C1), line and paragraph
 * separators, format characters and bytes that are not UTF-8 written as escapes; at most
 * `max_chars` characters of `text` (then "..."). Always NUL-terminated; out_size >= 8. */
void bridge__log_escape(char *out, size_t out_size, const char *text, size_t max_chars);

/* The level a worker runs at: `configured` unless BRIDGE_LOG_DEFAULT, then BRIDGE_LOG_LEVEL from
 * the environment (a bad value: a warning line and INFO), else INFO; OFF when quiet. */
bridge_log_level bridge__log_threshold(bridge_log_level configured, bool quiet);

#pragma GCC visibility pop

#endif
