/*
 * Log lines (docs/workers.md): one switch (bridge_worker_options.log_level, else BRIDGE_LOG_LEVEL,
 * else info), one line per event on stderr, written with a single write so that lines of
 * concurrent jobs never interleave, and messages escaped so a caller cannot forge a line.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

bool bridge_log_level_parse(const char *text, bridge_log_level *level)
{
    static const struct {
        const char *name;
        bridge_log_level level;
    } names[] = {{"debug", BRIDGE_LOG_DEBUG},     {"info", BRIDGE_LOG_INFO},
                 {"warning", BRIDGE_LOG_WARNING}, {"warn", BRIDGE_LOG_WARNING},
                 {"error", BRIDGE_LOG_ERROR}};
    for (size_t i = 0; text != NULL && i < sizeof names / sizeof names[0]; i++)
        if (strcasecmp(text, names[i].name) == 0) {
            if (level != NULL)
                *level = names[i].level;
            return true;
        }
    return false;
}

static const char *level_word(bridge_log_level level)
{
    if (level >= BRIDGE_LOG_ERROR)
        return "ERROR";
    if (level >= BRIDGE_LOG_WARNING)
        return "WARNING";
    if (level >= BRIDGE_LOG_INFO)
        return "INFO";
    return "DEBUG";
}

bridge_log_level bridge__log_threshold(bridge_log_level configured, bool quiet)
{
    if (quiet)
        return BRIDGE__LOG_OFF;
    if (configured != BRIDGE_LOG_DEFAULT)
        return configured;
    const char *env = getenv("BRIDGE_LOG_LEVEL");
    bridge_log_level level = BRIDGE_LOG_INFO;
    if (env != NULL && env[0] != '\0' && !bridge_log_level_parse(env, &level)) {
        char shown[64];
        bridge__log_escape(shown, sizeof shown, env, 20);
        bridge__log(BRIDGE_LOG_INFO, BRIDGE_LOG_WARNING,
                    "BRIDGE_LOG_LEVEL must be one of debug, info, warning, error, not '%s': using info",
                    shown);
    }
    return level;
}

void bridge__log(bridge_log_level threshold, bridge_log_level level, const char *fmt, ...)
{
    if (level < threshold)
        return;
    char line[2048];
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s bridge-c[%d]: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     now.tv_nsec / 1000000L, level_word(level), (int)getpid());
    if (n < 0 || (size_t)n >= sizeof line)
        return;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    size_t len = m < 0 ? (size_t)n : (size_t)n + (size_t)m;
    if (len > sizeof line - 2)
        len = sizeof line - 2; /* cut, but still one line */
    line[len++] = '\n';
    fwrite(line, 1, len, stderr); /* one locked write per line */
}

/* ------------------------------------------------------------------ escaping */

/* Length of the well-formed UTF-8 sequence at s (1-4) and its code point; 0 when ill-formed. */
static size_t utf8_next(const unsigned char *s, unsigned *cp)
{
    unsigned c = s[0];
    size_t n;
    unsigned v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xE0) == 0xC0) {
        n = 2, v = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        n = 3, v = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        n = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) /* also stops at the NUL */
            return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return n;
}

/* Code points that could break or disguise a line: C1 controls, separators, format characters. */
static bool unsafe(unsigned cp)
{
    return (cp >= 0x80 && cp <= 0x9F) || cp == 0xAD || cp == 0x061C || cp == 0x180E ||
           (cp >= 0x200B && cp <= 0x200F) || (cp >= 0x2028 && cp <= 0x202E) ||
           (cp >= 0x2060 && cp <= 0x206F) || cp == 0xFEFF || (cp >= 0xFFF9 && cp <= 0xFFFB) ||
           (cp >= 0xE0000 && cp <= 0xE007F);
}

void bridge__log_escape(char *out, size_t out_size, const char *text, size_t max_chars)
{
    const unsigned char *s = (const unsigned char *)(text ? text : "");
    size_t o = 0, chars = 0;
    out[0] = '\0';
    while (*s != '\0') {
        char piece[16];
        size_t len;
        unsigned cp = 0;
        size_t n = utf8_next(s, &cp);
        if (chars == max_chars) {
            if (o + 4 <= out_size) /* room for "...": always, when sized for max_chars */
                memcpy(out + o, "...", 4);
            return;
        }
        if (n == 0) {
            len = (size_t)snprintf(piece, sizeof piece, "\\x%02x", *s);
            n = 1;
        } else if (cp == '"' || cp == '\\') {
            len = (size_t)snprintf(piece, sizeof piece, "\\%c", (char)cp);
        } else if (cp == '\n' || cp == '\r' || cp == '\t') {
            len = (size_t)snprintf(piece, sizeof piece, "\\%c", cp == '\n' ? 'n' : cp == '\r' ? 'r' : 't');
        } else if (cp < 0x20 || cp == 0x7F || unsafe(cp)) { /* as a JSON string: \\uXXXX */
            if (cp > 0xFFFF) /* a UTF-16 surrogate pair, as JSON writes it */
                len = (size_t)snprintf(piece, sizeof piece, "\\u%04x\\u%04x",
                                       0xD800 + ((cp - 0x10000) >> 10), 0xDC00 + ((cp - 0x10000) & 0x3FF));
            else
                len = (size_t)snprintf(piece, sizeof piece, "\\u%04x", cp);
        } else {
            memcpy(piece, s, n);
            len = n;
        }
        if (o + len + 4 > out_size) { /* no room left: cut here */
            memcpy(out + o, "...", 4);
            return;
        }
        memcpy(out + o, piece, len);
        o += len;
        out[o] = '\0';
        s += n;
        chars++;
    }
}
