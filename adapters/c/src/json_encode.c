/*
 * The JSON mapping of bare methods (wire contract, section 8.2), writing: a descriptor walk
 * straight into the output buffer (jansson's numbers cannot hold a uint64 above INT64_MAX, so it
 * does not build the text). Keys are the .proto names; every field without presence is written,
 * also at its default; 64-bit integers are numbers; enums by name (an undefined number as a
 * number); bytes as padded standard base64; floats as the shortest decimal that reads back the
 * same (a float's as a float 32), NaN and the infinities as strings; map keys as strings; text as
 * UTF-8 (only `"`, `\` and control characters escaped).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef struct jenc {
    bridge_buffer *out;
    char *err;
    size_t err_size;
} jenc;

static bridge_status put(jenc *e, const char *s, size_t n)
{
    return bridge__buffer_append(e->out, s, n);
}

static bridge_status puts_(jenc *e, const char *s)
{
    return put(e, s, strlen(s));
}

static bridge_status put_string(jenc *e, const ProtobufCFieldDescriptor *f, const char *s, size_t n)
{
    if (!bridge__utf8_valid((const uint8_t *)s, n))
        return bridge__fail(BRIDGE_STATUS_ENCODE_ERROR, e->err, e->err_size,
                            "field %s: string is not valid UTF-8", f->name);
    bridge_status st = put(e, "\"", 1);
    size_t run = 0; /* bytes [i - run, i) still to copy as they are */
    for (size_t i = 0; i < n && st == BRIDGE_STATUS_OK; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            run++;
            continue;
        }
        char esc[8];
        switch (c) {
        case '"': strcpy(esc, "\\\""); break;
        case '\\': strcpy(esc, "\\\\"); break;
        case '\n': strcpy(esc, "\\n"); break;
        case '\r': strcpy(esc, "\\r"); break;
        case '\t': strcpy(esc, "\\t"); break;
        case '\b': strcpy(esc, "\\b"); break;
        case '\f': strcpy(esc, "\\f"); break;
        default: snprintf(esc, sizeof esc, "\\u%04x", c);
        }
        if (!(st = put(e, s + i - run, run)))
            st = puts_(e, esc);
        run = 0;
    }
    if (st == BRIDGE_STATUS_OK && !(st = put(e, s + n - run, run)))
        st = put(e, "\"", 1);
    return st;
}

static bridge_status put_base64(jenc *e, const uint8_t *p, size_t n)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    bridge_status st = bridge__buffer_reserve(e->out, (n + 2) / 3 * 4 + 2);
    if (st)
        return st;
    char *w = (char *)e->out->data + e->out->len;
    *w++ = '"';
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) |
                     (i + 2 < n ? p[i + 2] : 0);
        *w++ = alphabet[v >> 18];
        *w++ = alphabet[(v >> 12) & 63];
        *w++ = i + 1 < n ? alphabet[(v >> 6) & 63] : '=';
        *w++ = i + 2 < n ? alphabet[v & 63] : '=';
    }
    *w++ = '"';
    e->out->len = (size_t)(w - (char *)e->out->data);
    return BRIDGE_STATUS_OK;
}

/* The shortest "%.Ng" that reads back as the same value (as a float 32 when `single`). */
static bridge_status put_real(jenc *e, double x, bool single)
{
    if (isnan(x))
        return puts_(e, "\"NaN\"");
    if (isinf(x))
        return puts_(e, x > 0 ? "\"Infinity\"" : "\"-Infinity\"");
    if (x == 0 && signbit(x))
        return puts_(e, "-0.0"); /* "-0" would read back as the integer 0 */
    char text[40];
    for (int digits = 1; digits <= 17; digits++) {
        snprintf(text, sizeof text, "%.*g", digits, x);
        if (single ? strtof(text, NULL) == (float)x : strtod(text, NULL) == x)
            break;
    }
    return puts_(e, text);
}

static bridge_status enc_message(jenc *e, const ProtobufCMessage *msg, int depth);

/* One singular value of f (no key). */
static bridge_status enc_value(jenc *e, const ProtobufCFieldDescriptor *f, const void *v, int depth)
{
    char text[32];
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        snprintf(text, sizeof text, "%d", (int)*(const int32_t *)v);
        return puts_(e, text);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        snprintf(text, sizeof text, "%u", (unsigned)*(const uint32_t *)v);
        return puts_(e, text);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        snprintf(text, sizeof text, "%lld", (long long)*(const int64_t *)v);
        return puts_(e, text);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        snprintf(text, sizeof text, "%llu", (unsigned long long)*(const uint64_t *)v);
        return puts_(e, text);
    case PROTOBUF_C_TYPE_ENUM: {
        int32_t x = *(const int32_t *)v;
        const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(f->descriptor, x);
        if (ev != NULL)
            return put_string(e, f, ev->name, strlen(ev->name));
        snprintf(text, sizeof text, "%d", (int)x);
        return puts_(e, text);
    }
    case PROTOBUF_C_TYPE_BOOL:
        return puts_(e, *(const protobuf_c_boolean *)v ? "true" : "false");
    case PROTOBUF_C_TYPE_FLOAT:
        return put_real(e, (double)*(const float *)v, true);
    case PROTOBUF_C_TYPE_DOUBLE:
        return put_real(e, *(const double *)v, false);
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(const char *const *)v;
        return put_string(e, f, s ? s : "", s ? strlen(s) : 0);
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *b = v;
        return put_base64(e, b->data, b->len);
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *sub = *(const ProtobufCMessage *const *)v;
        if (depth >= BRIDGE_MAX_DEPTH)
            return bridge__fail(BRIDGE_STATUS_ENCODE_ERROR, e->err, e->err_size,
                                "messages nested deeper than %d", BRIDGE_MAX_DEPTH);
        if (sub == NULL) /* an unset map value is the empty message */
            return puts_(e, "{}");
        return enc_message(e, sub, depth + 1);
    }
    }
    return bridge__fail(BRIDGE_STATUS_ENCODE_ERROR, e->err, e->err_size,
                        "field %s: unsupported type", f->name);
}

static bridge_status enc_map(jenc *e, const ProtobufCFieldDescriptor *f, ProtobufCMessage *const *entries,
                             size_t count, int depth)
{
    map_item *sorted = malloc((count ? count : 1) * sizeof *sorted);
    if (sorted == NULL)
        return BRIDGE_STATUS_NO_MEMORY;
    size_t n = bridge__sorted_map_items(entries, count, sorted); /* duplicate keys: the last */
    const ProtobufCMessageDescriptor *ed = f->descriptor;
    const ProtobufCFieldDescriptor *kf = &ed->fields[0], *vf = &ed->fields[1];
    bridge_status st = put(e, "{", 1);
    for (size_t i = 0; i < n && st == BRIDGE_STATUS_OK; i++) {
        const char *entry = (const char *)sorted[i].entry;
        if (i > 0 && (st = put(e, ",", 1)))
            break;
        if (kf->type == PROTOBUF_C_TYPE_STRING) {
            st = enc_value(e, kf, entry + kf->offset, depth);
        } else if (kf->type == PROTOBUF_C_TYPE_BOOL) {
            st = puts_(e, *(const protobuf_c_boolean *)(entry + kf->offset) ? "\"true\"" : "\"false\"");
        } else if (!(st = put(e, "\"", 1)) && !(st = enc_value(e, kf, entry + kf->offset, depth))) {
            st = put(e, "\"", 1); /* integer keys: decimal in a string */
        }
        if (st == BRIDGE_STATUS_OK && !(st = put(e, ":", 1)))
            st = enc_value(e, vf, entry + vf->offset, depth);
    }
    free(sorted);
    return st ? st : put(e, "}", 1);
}

static bridge_status enc_field(jenc *e, const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f,
                               int depth)
{
    const char *base = (const char *)msg;
    bridge_status st = put_string(e, f, f->name, strlen(f->name));
    if (st || (st = put(e, ":", 1)))
        return st;
    if (f->label != PROTOBUF_C_LABEL_REPEATED)
        return enc_value(e, f, base + f->offset, depth);
    size_t count = *(const size_t *)(base + f->quantifier_offset);
    const char *items = *(const char *const *)(base + f->offset);
    if (bridge__field_is_map(msg->descriptor, f))
        return enc_map(e, f, (ProtobufCMessage *const *)items, count, depth);
    size_t elem = bridge__repeated_elem_size(f->type);
    st = put(e, "[", 1);
    for (size_t i = 0; i < count && st == BRIDGE_STATUS_OK; i++) {
        if (i == 0 || !(st = put(e, ",", 1)))
            st = enc_value(e, f, items + i * elem, depth);
    }
    return st ? st : put(e, "]", 1);
}

/* Written: every field without presence (at its default too); the others when set. */
static bool written(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f)
{
    if (f->label == PROTOBUF_C_LABEL_REPEATED || f->label == PROTOBUF_C_LABEL_REQUIRED)
        return true;
    if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) || f->label == PROTOBUF_C_LABEL_OPTIONAL ||
        f->type == PROTOBUF_C_TYPE_MESSAGE)
        return bridge__field_present(msg, f);
    return true;
}

static bridge_status enc_message(jenc *e, const ProtobufCMessage *msg, int depth)
{
    const ProtobufCMessageDescriptor *desc = msg->descriptor;
    bridge_status st = put(e, "{", 1);
    bool first = true;
    for (unsigned i = 0; i < desc->n_fields && st == BRIDGE_STATUS_OK; i++) {
        const ProtobufCFieldDescriptor *f = &desc->fields[i];
        if (!written(msg, f))
            continue;
        if (!first && (st = put(e, ",", 1)))
            break;
        first = false;
        st = enc_field(e, msg, f, depth);
    }
    return st ? st : put(e, "}", 1);
}

bridge_status bridge__json_encode(const ProtobufCMessage *msg, bridge_buffer *out, char *err,
                                  size_t err_size)
{
    jenc e = {.out = out, .err = err, .err_size = err_size};
    bridge_status st = enc_message(&e, msg, 0);
    if (st == BRIDGE_STATUS_NO_MEMORY)
        return bridge__fail(st, err, err_size, "out of memory");
    return st;
}
