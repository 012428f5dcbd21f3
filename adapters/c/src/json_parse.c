/*
 * The text of a bare JSON payload (wire contract, section 8.2), parsed by jansson after a scan.
 *
 * jansson keeps integers as long long and refuses a literal beyond its range ("too big
 * integer"), which the mapping must read (uint64 up to 2^64-1, a double written with 30 digits).
 * The scan rewrites such literals into strings that start with a NUL ("\u0000<digits>") and the
 * decoder (json_decode.c) reads those as the number they were. An input string cannot be taken
 * for one: the scan refuses `\u0000` in the input (no field could hold a NUL anyway:
 * protobuf-c strings end at it). The scan also bounds the brackets' nesting before jansson,
 * which recurses, runs.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "internal.h"

typedef struct jdec {
    char *err;
    size_t err_size;
} jdec;

#define JFAIL(d, ...) bridge__fail(BRIDGE_STATUS_DECODE_ERROR, (d)->err, (d)->err_size, __VA_ARGS__)

/* The deepest bracket nesting a message nested BRIDGE_MAX_DEPTH deep can need. */
#define MAX_BRACKETS (2 * BRIDGE_MAX_DEPTH + 4)

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* True when the integer literal [s, s+n) (optional '-', digits) does not fit a long long. */
static bool beyond_int64(const char *s, size_t n)
{
    bool neg = s[0] == '-';
    const char *digits = s + neg;
    size_t len = n - neg;
    if (len > 1 && digits[0] == '0')
        return false; /* not JSON (a leading zero): jansson says so */
    const char *limit = neg ? "9223372036854775808" : "9223372036854775807";
    return len > 19 || (len == 19 && memcmp(digits, limit, 19) > 0);
}

/*
 * Checks the brackets' depth and `\u0000`, and copies the text with every integer literal that
 * jansson cannot hold rewritten as "\u0000<literal>" into *out (NULL when nothing needed it).
 * Malformed JSON is left for jansson to describe.
 */
static bridge_status scan(jdec *d, const char *s, size_t n, char **out, size_t *out_len)
{
    bridge_buffer copy = BRIDGE_BUFFER_INIT;
    size_t copied = 0; /* input bytes [0, copied) are in copy */
    int depth = 0;
    bridge_status st = BRIDGE_STATUS_OK;
    *out = NULL;
    for (size_t i = 0; i < n;) {
        char c = s[i];
        if (c == '"') {
            for (i++; i < n && s[i] != '"'; i++) {
                if (s[i] != '\\')
                    continue;
                if (n - i >= 6 && memcmp(s + i + 1, "u0000", 5) == 0) {
                    bridge_buffer_free(&copy);
                    return JFAIL(d, "json: a string holds U+0000, which no field can hold");
                }
                i++; /* the escaped character */
            }
            i++;
        } else if (c == '[' || c == '{') {
            if (++depth > MAX_BRACKETS) {
                bridge_buffer_free(&copy);
                return JFAIL(d, "json: nested deeper than %d brackets (messages nest at most %d deep)",
                             MAX_BRACKETS, BRIDGE_MAX_DEPTH);
            }
            i++;
        } else if (c == ']' || c == '}') {
            depth--;
            i++;
        } else if (c == '-' || is_digit(c)) {
            size_t start = i++;
            bool integer = true;
            while (i < n && (is_digit(s[i]) || s[i] == '.' || s[i] == 'e' || s[i] == 'E' ||
                             s[i] == '+' || s[i] == '-')) {
                if (!is_digit(s[i]))
                    integer = false;
                i++;
            }
            size_t len = i - start;
            if (!integer || len == (size_t)(c == '-') || !beyond_int64(s + start, len))
                continue;
            if ((st = bridge__buffer_append(&copy, s + copied, start - copied)) ||
                (st = bridge__buffer_append(&copy, "\"\\u0000", 7)) ||
                (st = bridge__buffer_append(&copy, s + start, len)) ||
                (st = bridge__buffer_append(&copy, "\"", 1))) {
                bridge_buffer_free(&copy);
                return st;
            }
            copied = i;
        } else {
            i++;
        }
    }
    if (copy.data == NULL)
        return BRIDGE_STATUS_OK;
    if ((st = bridge__buffer_append(&copy, s + copied, n - copied))) {
        bridge_buffer_free(&copy);
        return st;
    }
    *out = (char *)copy.data;
    *out_len = copy.len;
    return BRIDGE_STATUS_OK;
}

json_t *bridge__json_parse(const uint8_t *data, size_t len, char *err, size_t err_size)
{
    jdec d = {.err = err, .err_size = err_size};
    char *rewritten = NULL;
    size_t rewritten_len = 0;
    if (scan(&d, (const char *)data, len, &rewritten, &rewritten_len) != BRIDGE_STATUS_OK)
        return NULL;
    json_error_t jerr;
    json_t *root = rewritten ? json_loadb(rewritten, rewritten_len, JSON_ALLOW_NUL, &jerr)
                             : json_loadb((const char *)data, len, 0, &jerr);
    free(rewritten);
    if (root == NULL)
        JFAIL(&d, "not JSON: %s (at byte %d)", jerr.text, jerr.position);
    return root;
}
