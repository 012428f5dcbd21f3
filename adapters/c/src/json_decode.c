/*
 * The JSON mapping of bare methods (wire contract, section 8.2), reading: jansson parses the
 * text (UTF-8, escapes, one value, no NaN literals), and a walk driven by the protobuf-c
 * descriptors, like the msgpack decoder's, fills the message and applies the mapping's rules:
 * .proto or lowerCamelCase keys, unknown keys refused, null means unset, integers as numbers,
 * integral floats or strings, bools also 0 / 1, enums by name or number, bytes in either base64,
 * `[]` for an empty message or map.
 *
 * Bounds: brackets may nest at most 2 * BRIDGE_MAX_DEPTH + 4 deep (checked by the scan of
 * json_parse.c before jansson runs, so its recursion stays short), messages at most
 * BRIDGE_MAX_DEPTH; arrays are sized by the elements jansson actually parsed, never by anything
 * the input declares. Integer literals beyond a long long reach the walk as strings
 * "\u0000<literal>" (json_parse.c says why), read back here as the numbers they were.
 */
#define _POSIX_C_SOURCE 200809L /* strdup */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "internal.h"

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

typedef struct jdec {
    char *err;
    size_t err_size;
} jdec;

#define JFAIL(d, ...) bridge__fail(BRIDGE_STATUS_DECODE_ERROR, (d)->err, (d)->err_size, __VA_ARGS__)

/* A literal the scan rewrote: its text (after the NUL), else NULL. */
static const char *big_literal(const json_t *v)
{
    if (!json_is_string(v) || json_string_length(v) < 2 || json_string_value(v)[0] != '\0')
        return NULL;
    return json_string_value(v) + 1;
}

/* ------------------------------------------------------------------ scalars */

static const char *kind_name(const json_t *v)
{
    if (big_literal(v))
        return "a number";
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER:
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a bool";
    case JSON_NULL: return "null";
    }
    return "a value";
}

static bridge_status type_error(jdec *d, const ProtobufCFieldDescriptor *f, const char *want,
                                const json_t *v)
{
    return JFAIL(d, "field %s: expected %s, got %s", f->name, want, kind_name(v));
}

/* A whole-string decimal integer: [-]digits. */
static bool parse_decimal(const char *s, bool *neg, uint64_t *mag)
{
    *neg = *s == '-';
    s += *neg;
    if (!is_digit(*s))
        return false;
    uint64_t x = 0;
    for (; is_digit(*s); s++) {
        unsigned dgt = (unsigned)(*s - '0');
        if (x > (UINT64_MAX - dgt) / 10)
            return false; /* beyond 64 bits: out of every field's range */
        x = x * 10 + dgt;
    }
    *mag = x;
    return *s == '\0';
}

/* True when s is a number as JSON writes one: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool json_number_text(const char *s)
{
    s += *s == '-';
    if (*s == '0')
        s++;
    else if (*s >= '1' && *s <= '9')
        s += strspn(s, "0123456789");
    else
        return false;
    if (*s == '.') {
        size_t n = strspn(++s, "0123456789");
        if (n == 0)
            return false;
        s += n;
    }
    if (*s == 'e' || *s == 'E') {
        s++;
        s += *s == '+' || *s == '-';
        size_t n = strspn(s, "0123456789");
        if (n == 0)
            return false;
        s += n;
    }
    return *s == '\0';
}

/* A whole-string number as strtod reads it, minus what JSON peers never mean (hex, spaces). */
static bool parse_double_text(const char *s, double *out)
{
    if (*s == '\0' || strpbrk(s, "xX \t\r\n") != NULL)
        return false;
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (*end != '\0' || isnan(x) || (errno == ERANGE && isinf(x)))
        return false;
    *out = x;
    return true;
}

/*
 * An integer-valued JSON value as sign and magnitude: a number with an integral value, a string
 * holding one ("12", "-3", "1e2"), or a rewritten literal. Returns false when it is none of those.
 */
static bool integer_of(const json_t *v, bool lenient_text, bool *neg, uint64_t *mag, bool *too_big)
{
    *too_big = false;
    const char *text = big_literal(v);
    if (json_is_integer(v)) {
        json_int_t x = json_integer_value(v);
        *neg = x < 0;
        *mag = x < 0 ? (uint64_t)0 - (uint64_t)x : (uint64_t)x;
        return true;
    }
    if (text == NULL && json_is_string(v)) {
        text = json_string_value(v);
        if (!lenient_text && text[strspn(text + (*text == '-'), "0123456789") + (*text == '-')] != '\0')
            return false; /* a string holds -?[0-9]+ (map keys may also say "1e2") */
    }
    double x;
    if (text != NULL) {
        if (parse_decimal(text, neg, mag))
            return true;
        if (!parse_double_text(text, &x)) {
            /* digits only, beyond 64 bits: a number, out of range */
            bool n;
            uint64_t m;
            const char *p = text + (*text == '-');
            *too_big = *p != '\0' && strspn(p, "0123456789") == strlen(p) && !parse_decimal(text, &n, &m);
            return *too_big;
        }
    } else if (json_is_real(v)) {
        x = json_real_value(v);
    } else {
        return false;
    }
    if (!isfinite(x) || x != floor(x))
        return false;
    if (fabs(x) >= 0x1p64) {
        *too_big = true;
        return true;
    }
    *neg = x < 0;
    *mag = (uint64_t)fabs(x);
    return true;
}

static bridge_status dec_integer(jdec *d, const ProtobufCFieldDescriptor *f, const json_t *v,
                                 bool lenient_text, void *member)
{
    bool neg, too_big;
    uint64_t mag;
    /* 9.2233720368547758e+18: a peer's float (PHP's json_decode of a big uint64), maybe already
     * rounded: an integer written with a fraction or exponent is exact only up to 2^53 (8.2). */
    if (json_is_real(v) && fabs(json_real_value(v)) > 0x1p53)
        return JFAIL(d, "field %s: an integer written as a float is exact only up to 2^53 (write "
                        "it without a fraction or exponent)", f->name);
    if (!integer_of(v, lenient_text, &neg, &mag, &too_big))
        return json_is_string(v) || json_is_real(v)
                   ? JFAIL(d, "field %s: not an integer", f->name)
                   : type_error(d, f, "an integer", v);
    bool wide = bridge__repeated_elem_size(f->type) == 8;
    bool is_unsigned = f->type == PROTOBUF_C_TYPE_UINT32 || f->type == PROTOBUF_C_TYPE_UINT64 ||
                       f->type == PROTOBUF_C_TYPE_FIXED32 || f->type == PROTOBUF_C_TYPE_FIXED64;
    uint64_t max_pos = is_unsigned ? (wide ? UINT64_MAX : UINT32_MAX)
                                   : (wide ? (uint64_t)INT64_MAX : (uint64_t)INT32_MAX);
    uint64_t max_neg = is_unsigned ? 0 : wide ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT32_MAX + 1;
    if (too_big || (neg ? mag > max_neg : mag > max_pos))
        return JFAIL(d, "field %s: integer out of range", f->name);
    if (is_unsigned) {
        if (wide)
            *(uint64_t *)member = mag;
        else
            *(uint32_t *)member = (uint32_t)mag;
    } else {
        int64_t x = neg ? (int64_t)(0 - mag) : (int64_t)mag;
        if (wide)
            *(int64_t *)member = x;
        else
            *(int32_t *)member = (int32_t)x;
    }
    return BRIDGE_STATUS_OK;
}

static bridge_status dec_float(jdec *d, const ProtobufCFieldDescriptor *f, const json_t *v,
                               void *member)
{
    double x;
    const char *text = big_literal(v);
    if (json_is_integer(v)) {
        x = (double)json_integer_value(v);
    } else if (json_is_real(v)) {
        x = json_real_value(v);
    } else if (text != NULL) {
        if (!parse_double_text(text, &x))
            return JFAIL(d, "field %s: number out of range", f->name);
    } else if (json_is_string(v)) {
        text = json_string_value(v);
        if (strcmp(text, "NaN") == 0)
            x = NAN;
        else if (strcmp(text, "Infinity") == 0)
            x = INFINITY;
        else if (strcmp(text, "-Infinity") == 0)
            x = -INFINITY;
        else if (!json_number_text(text) || !parse_double_text(text, &x))
            return JFAIL(d, "field %s: not a number: \"%.40s\"", f->name, text);
    } else {
        return type_error(d, f, "a number", v);
    }
    if (f->type == PROTOBUF_C_TYPE_DOUBLE) {
        *(double *)member = x;
        return BRIDGE_STATUS_OK;
    }
    if (isfinite(x) && fabs(x) > FLT_MAX)
        return JFAIL(d, "field %s: %g is out of a float's range", f->name, x);
    *(float *)member = (float)x;
    return BRIDGE_STATUS_OK;
}

static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
}

/* Standard or URL-safe base64, padding optional. */
static bridge_status dec_bytes(jdec *d, const ProtobufCFieldDescriptor *f, const char *s, size_t n,
                               ProtobufCBinaryData *out)
{
    size_t pad = 0;
    while (pad < 2 && n > 0 && s[n - 1] == '=') {
        n--;
        pad++;
    }
    if (n % 4 == 1)
        return JFAIL(d, "field %s: not base64 (length)", f->name);
    size_t len = n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0);
    uint8_t *buf = malloc(len ? len : 1);
    if (buf == NULL)
        return BRIDGE_STATUS_NO_MEMORY;
    uint32_t acc = 0;
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        int b = b64_value(s[i]);
        if (b < 0) {
            free(buf);
            return JFAIL(d, "field %s: not base64", f->name);
        }
        acc = (acc << 6) | (uint32_t)b;
        if (i % 4 == 3) {
            buf[w++] = (uint8_t)(acc >> 16);
            buf[w++] = (uint8_t)(acc >> 8);
            buf[w++] = (uint8_t)acc;
            acc = 0;
        }
    }
    if (n % 4 == 2) {
        buf[w++] = (uint8_t)(acc >> 4);
    } else if (n % 4 == 3) {
        buf[w++] = (uint8_t)(acc >> 10);
        buf[w++] = (uint8_t)(acc >> 2);
    }
    if (len == 0) {
        free(buf);
        buf = NULL;
    }
    out->data = buf;
    out->len = len;
    return BRIDGE_STATUS_OK;
}

static bridge_status dec_message(jdec *d, const json_t *v, ProtobufCMessage *msg, int depth);

/* One singular value of f into member (a message member is allocated here). */
static bridge_status dec_value(jdec *d, const ProtobufCFieldDescriptor *f, const json_t *v,
                               void *member, int depth)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return dec_integer(d, f, v, false, member);
    case PROTOBUF_C_TYPE_ENUM: {
        if (json_is_string(v) && big_literal(v) == NULL) {
            const ProtobufCEnumValue *ev =
                protobuf_c_enum_descriptor_get_value_by_name(f->descriptor, json_string_value(v));
            if (ev != NULL) {
                *(int32_t *)member = ev->value;
                return BRIDGE_STATUS_OK;
            }
            bool neg;
            uint64_t mag;
            if (!parse_decimal(json_string_value(v), &neg, &mag))
                return JFAIL(d, "field %s: \"%.60s\" is not a value of %s", f->name,
                             json_string_value(v), ((const ProtobufCEnumDescriptor *)f->descriptor)->name);
        }
        ProtobufCFieldDescriptor as_int = *f;
        as_int.type = PROTOBUF_C_TYPE_INT32;
        return dec_integer(d, &as_int, v, false, member); /* a number the enum may not define (open) */
    }
    case PROTOBUF_C_TYPE_BOOL:
        if (json_is_boolean(v))
            *(protobuf_c_boolean *)member = json_is_true(v);
        else if (json_is_integer(v) && (json_integer_value(v) == 0 || json_integer_value(v) == 1))
            *(protobuf_c_boolean *)member = json_integer_value(v) == 1; /* Perl's 1 / 0 */
        else
            return type_error(d, f, "true, false, 0 or 1", v);
        return BRIDGE_STATUS_OK;
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE:
        return dec_float(d, f, v, member);
    case PROTOBUF_C_TYPE_STRING: {
        if (!json_is_string(v) || big_literal(v) != NULL)
            return type_error(d, f, "a string", v);
        char *s = strdup(json_string_value(v)); /* UTF-8 checked by jansson; no NUL (scan) */
        if (s == NULL)
            return BRIDGE_STATUS_NO_MEMORY;
        *(char **)member = s;
        return BRIDGE_STATUS_OK;
    }
    case PROTOBUF_C_TYPE_BYTES:
        if (!json_is_string(v) || big_literal(v) != NULL)
            return type_error(d, f, "a base64 string", v);
        return dec_bytes(d, f, json_string_value(v), json_string_length(v), member);
    case PROTOBUF_C_TYPE_MESSAGE: {
        if (!json_is_object(v) && !(json_is_array(v) && json_array_size(v) == 0))
            return type_error(d, f, "an object (message)", v);
        if (depth >= BRIDGE_MAX_DEPTH)
            return JFAIL(d, "json: messages nested deeper than %d", BRIDGE_MAX_DEPTH);
        const ProtobufCMessageDescriptor *sd = f->descriptor;
        ProtobufCMessage *sub = malloc(sd->sizeof_message);
        if (sub == NULL)
            return BRIDGE_STATUS_NO_MEMORY;
        sd->message_init(sub);
        *(ProtobufCMessage **)member = sub; /* owned by the parent from here on */
        return dec_message(d, v, sub, depth + 1);
    }
    }
    return JFAIL(d, "field %s: unsupported type", f->name);
}

/* A map key (always a JSON string) into the entry's key member. */
static bridge_status dec_map_key(jdec *d, const ProtobufCFieldDescriptor *kf, const char *key,
                                 void *member)
{
    if (kf->type == PROTOBUF_C_TYPE_STRING) {
        char *s = strdup(key);
        if (s == NULL)
            return BRIDGE_STATUS_NO_MEMORY;
        *(char **)member = s;
        return BRIDGE_STATUS_OK;
    }
    if (kf->type == PROTOBUF_C_TYPE_BOOL) {
        if (strcmp(key, "true") != 0 && strcmp(key, "false") != 0)
            return JFAIL(d, "map key \"%.40s\" is not true or false", key);
        *(protobuf_c_boolean *)member = key[0] == 't';
        return BRIDGE_STATUS_OK;
    }
    /* decimal digits only, as an integer string (reading rule 4: not "13.", "+1" or "1e2"), range
     * included */
    json_t *num = json_string(key);
    if (num == NULL)
        return BRIDGE_STATUS_NO_MEMORY;
    bridge_status st = dec_integer(d, kf, num, false, member);
    json_decref(num);
    return st;
}

static bridge_status dec_map(jdec *d, const ProtobufCFieldDescriptor *f, const json_t *v,
                             size_t *count, ProtobufCMessage ***entries_out, int depth)
{
    if (json_is_array(v) && json_array_size(v) == 0)
        return BRIDGE_STATUS_OK; /* PHP's empty array */
    if (!json_is_object(v))
        return type_error(d, f, "an object (map)", v);
    const ProtobufCMessageDescriptor *ed = f->descriptor;
    size_t n = json_object_size(v);
    if (n > 0 && depth >= BRIDGE_MAX_DEPTH) /* entries are messages one level down (an empty map is none) */
        return JFAIL(d, "json: messages nested deeper than %d", BRIDGE_MAX_DEPTH);
    ProtobufCMessage **entries = calloc(n ? n : 1, sizeof *entries);
    if (entries == NULL)
        return BRIDGE_STATUS_NO_MEMORY;
    *entries_out = entries;
    const char *key;
    json_t *value;
    bridge_status st;
    json_object_foreach((json_t *)v, key, value) {
        ProtobufCMessage *entry = malloc(ed->sizeof_message);
        if (entry == NULL)
            return BRIDGE_STATUS_NO_MEMORY;
        ed->message_init(entry);
        entries[(*count)++] = entry;
        if (json_is_null(value))
            return JFAIL(d, "field %s: null map value", f->name);
        if ((st = dec_map_key(d, &ed->fields[0], key, (char *)entry + ed->fields[0].offset)) ||
            (st = dec_value(d, &ed->fields[1], value, (char *)entry + ed->fields[1].offset, depth + 1)))
            return st;
    }
    bridge__dedupe_map(entries, count); /* "1" and "01" are one int key */
    return BRIDGE_STATUS_OK;
}

static bridge_status dec_field(jdec *d, ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f,
                               const json_t *v, int depth)
{
    char *base = (char *)msg;
    if (f->label != PROTOBUF_C_LABEL_REPEATED) {
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            uint32_t *which = (uint32_t *)(base + f->quantifier_offset);
            if (*which != 0)
                return JFAIL(d, "field %s: another member of its oneof is already set", f->name);
            *which = f->id; /* set first, so that a half-decoded member is freed with msg */
        }
        bridge_status st = dec_value(d, f, v, base + f->offset, depth);
        if (st == BRIDGE_STATUS_OK && !(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_STRING &&
            f->type != PROTOBUF_C_TYPE_MESSAGE)
            *(protobuf_c_boolean *)(base + f->quantifier_offset) = 1;
        return st;
    }
    size_t *count = (size_t *)(base + f->quantifier_offset);
    void **items = (void **)(base + f->offset);
    if (bridge__field_is_map(msg->descriptor, f))
        return dec_map(d, f, v, count, (ProtobufCMessage ***)items, depth);
    if (!json_is_array(v))
        return type_error(d, f, "an array", v);
    size_t n = json_array_size(v), elem = bridge__repeated_elem_size(f->type);
    if ((*items = calloc(n ? n : 1, elem)) == NULL)
        return BRIDGE_STATUS_NO_MEMORY;
    for (size_t i = 0; i < n; i++) {
        const json_t *item = json_array_get(v, i);
        if (json_is_null(item))
            return JFAIL(d, "field %s: null inside a repeated field", f->name);
        void *slot = (char *)*items + i * elem;
        bridge_status st = dec_value(d, f, item, slot, depth);
        if (st != BRIDGE_STATUS_OK) {
            if ((f->type == PROTOBUF_C_TYPE_MESSAGE || f->type == PROTOBUF_C_TYPE_STRING ||
                 f->type == PROTOBUF_C_TYPE_BYTES) && *(void **)slot != NULL)
                (*count)++; /* what was half made is freed with msg */
            return st;
        }
        (*count)++;
    }
    return BRIDGE_STATUS_OK;
}

/* protoc's json_name: underscores dropped, the letter after one upper-cased. */
static bool is_json_name(const char *field, const char *key)
{
    bool upper = false;
    for (; *field != '\0'; field++) {
        if (*field == '_') {
            upper = true;
            continue;
        }
        char c = upper && *field >= 'a' && *field <= 'z' ? (char)(*field - 'a' + 'A') : *field;
        upper = false;
        if (*key++ != c)
            return false;
    }
    return *key == '\0';
}

static bridge_status dec_message(jdec *d, const json_t *v, ProtobufCMessage *msg, int depth)
{
    if (json_is_array(v))
        return BRIDGE_STATUS_OK; /* [] (the caller checked it is empty) */
    const ProtobufCMessageDescriptor *desc = msg->descriptor;
    uint8_t seen[64] = {0}; /* the first 512 fields: one key per field (name or json name) */
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)v, key, value) {
        const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(desc, key);
        for (unsigned i = 0; f == NULL && i < desc->n_fields; i++)
            if (is_json_name(desc->fields[i].name, key))
                f = &desc->fields[i];
        if (f == NULL)
            return JFAIL(d, "%s has no field \"%.60s\"", desc->name, key);
        size_t index = (size_t)(f - desc->fields);
        if (index < sizeof seen * 8) {
            if (seen[index / 8] & (1u << (index % 8)))
                return JFAIL(d, "%s: field %s given twice", desc->name, f->name);
            seen[index / 8] |= (uint8_t)(1u << (index % 8));
        }
        if (json_is_null(value))
            continue; /* null: unset */
        bridge_status st = dec_field(d, msg, f, value, depth);
        if (st)
            return st;
    }
    return BRIDGE_STATUS_OK;
}

bridge_status bridge__json_decode(const ProtobufCMessageDescriptor *desc, const uint8_t *data,
                                  size_t len, ProtobufCMessage **out, char *err, size_t err_size)
{
    jdec d = {.err = err, .err_size = err_size};
    ProtobufCMessage *msg = malloc(desc->sizeof_message);
    if (msg == NULL)
        return bridge__fail(BRIDGE_STATUS_NO_MEMORY, err, err_size, "out of memory");
    desc->message_init(msg);
    if (len == 0) {
        /* Zero bytes: the message of a type without fields (Empty), else an error: no encoder
         * writes them for a message with fields, a peer whose json_encode failed does (8.1). */
        if (desc->n_fields == 0) {
            *out = msg;
            return BRIDGE_STATUS_OK;
        }
        protobuf_c_message_free_unpacked(msg, NULL);
        return JFAIL(&d, "an empty payload is not a bare JSON %s (an empty message is written {})",
                     desc->name);
    }
    bridge_status st;
    json_t *root = bridge__json_parse(data, len, err, err_size);
    if (root == NULL)
        st = BRIDGE_STATUS_DECODE_ERROR; /* (out of memory in the scan reads as malformed) */
    else if (!json_is_object(root) && !(json_is_array(root) && json_array_size(root) == 0))
        st = JFAIL(&d, "%s: expected a JSON object, got %s", desc->name, kind_name(root));
    else
        st = dec_message(&d, root, msg, 0);
    json_decref(root);
    if (st != BRIDGE_STATUS_OK) {
        protobuf_c_message_free_unpacked(msg, NULL);
        if (st == BRIDGE_STATUS_NO_MEMORY)
            bridge__fail(st, err, err_size, "out of memory");
        return st;
    }
    *out = msg;
    return BRIDGE_STATUS_OK;
}
