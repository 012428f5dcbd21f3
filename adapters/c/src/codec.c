/*
 * Codec entry points, shared descriptor helpers and the protobuf encoder (the decoder is in
 * protobuf_decode.c).
 *
 * Protobuf encoding is our own descriptor walk rather than protobuf_c_message_pack,
 * because protobuf-c skips a plain proto3 float/double holding -0.0 while every other language
 * writes it (the canonical bytes of the shared vectors compare bit patterns, not values).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ------------------------------------------------------------------ small shared helpers */

bridge_status bridge__fail(bridge_status status, char *err, size_t err_size, const char *fmt, ...)
{
    if (err != NULL && err_size > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_size, fmt, ap);
        va_end(ap);
    }
    return status;
}

void bridge_buffer_free(bridge_buffer *buf)
{
    if (buf == NULL)
        return;
    free(buf->data);
    buf->data = NULL;
    buf->len = buf->cap = 0;
}

bridge_status bridge__buffer_reserve(bridge_buffer *buf, size_t extra)
{
    if (buf->cap - buf->len >= extra)
        return BRIDGE_STATUS_OK;
    if (extra > SIZE_MAX / 2 - buf->len)
        return BRIDGE_STATUS_NO_MEMORY;
    size_t cap = buf->cap ? buf->cap : 256;
    while (cap - buf->len < extra)
        cap *= 2;
    uint8_t *data = realloc(buf->data, cap);
    if (data == NULL)
        return BRIDGE_STATUS_NO_MEMORY;
    buf->data = data;
    buf->cap = cap;
    return BRIDGE_STATUS_OK;
}

bridge_status bridge__buffer_append(bridge_buffer *buf, const void *data, size_t len)
{
    if (len == 0)
        return BRIDGE_STATUS_OK;
    bridge_status st = bridge__buffer_reserve(buf, len);
    if (st != BRIDGE_STATUS_OK)
        return st;
    memcpy(buf->data + buf->len, data, len);
    buf->len += len;
    return BRIDGE_STATUS_OK;
}

bool bridge__utf8_valid(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        uint32_t cp;
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (len - i <= n)
            return false;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += n + 1;
    }
    return true;
}

const char *bridge_code_name(bridge_code code)
{
    static const char *const names[] = {
        "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
        "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
        "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
        "UNAUTHENTICATED"};
    if ((unsigned)code < sizeof names / sizeof names[0])
        return names[code];
    return "CODE_UNKNOWN";
}

const char *bridge_status_text(bridge_status status)
{
    switch (status) {
    case BRIDGE_STATUS_OK: return "ok";
    case BRIDGE_STATUS_DECODE_ERROR: return "malformed input";
    case BRIDGE_STATUS_ENCODE_ERROR: return "message cannot be encoded";
    case BRIDGE_STATUS_NO_MEMORY: return "out of memory";
    case BRIDGE_STATUS_INVALID: return "invalid argument";
    case BRIDGE_STATUS_IO: return "job server unreachable or send failed";
    case BRIDGE_STATUS_ALREADY_FINISHED: return "the job already sent its final answer";
    }
    return "unknown status";
}

size_t bridge__repeated_elem_size(ProtobufCType type)
{
    switch (type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_ENUM:
        return 4;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return 8;
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING:
        return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(ProtobufCMessage *);
    }
    return 0;
}

/*
 * protobuf-c's descriptors do not carry the map_entry option, so a map field is recognised by
 * what protoc makes of `map<K,V> name`: a repeated field whose type is the nested message
 * "<Owner>.<CamelName>Entry" with exactly the fields key = 1 and value = 2. protoc rejects a
 * user-declared nested message of that name next to such a map, so the match is exact for maps;
 * only a hand-written look-alike (a repeated field of such an Entry message) would be taken for a map.
 */
bool bridge__field_is_map(const ProtobufCMessageDescriptor *owner, const ProtobufCFieldDescriptor *field)
{
    if (field->label != PROTOBUF_C_LABEL_REPEATED || field->type != PROTOBUF_C_TYPE_MESSAGE)
        return false;
    const ProtobufCMessageDescriptor *entry = field->descriptor;
    if (entry->n_fields != 2 || entry->fields[0].id != 1 || entry->fields[1].id != 2 ||
        strcmp(entry->fields[0].name, "key") != 0 || strcmp(entry->fields[1].name, "value") != 0)
        return false;
    char expect[512];
    size_t n = (size_t)snprintf(expect, sizeof expect, "%s.", owner->name);
    bool cap_next = true;
    for (const char *p = field->name; *p != '\0' && n + 8 < sizeof expect; p++) {
        if (*p == '_') {
            cap_next = true;
        } else {
            expect[n++] = (cap_next && *p >= 'a' && *p <= 'z') ? (char)(*p - 'a' + 'A') : *p;
            cap_next = false;
        }
    }
    snprintf(expect + n, sizeof expect - n, "Entry");
    return strcmp(expect, entry->name) == 0;
}

bool bridge__field_present(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f)
{
    const char *base = (const char *)msg;
    const void *member = base + f->offset;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        return *(const uint32_t *)(base + f->quantifier_offset) == f->id;
    if (f->label == PROTOBUF_C_LABEL_REPEATED)
        return *(const size_t *)(base + f->quantifier_offset) > 0;
    if (f->label == PROTOBUF_C_LABEL_REQUIRED)
        return true;
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL) {
        if (f->type == PROTOBUF_C_TYPE_MESSAGE || f->type == PROTOBUF_C_TYPE_STRING) {
            const void *ptr = *(const void *const *)member;
            return ptr != NULL && ptr != f->default_value;
        }
        return *(const protobuf_c_boolean *)(base + f->quantifier_offset);
    }
    /* proto3 without presence: set when different from the default (floats: bit pattern). */
    switch (f->type) {
    case PROTOBUF_C_TYPE_MESSAGE:
        return *(const void *const *)member != NULL;
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(const char *const *)member;
        return s != NULL && s[0] != '\0';
    }
    case PROTOBUF_C_TYPE_BYTES:
        return ((const ProtobufCBinaryData *)member)->len > 0;
    case PROTOBUF_C_TYPE_FLOAT: {
        uint32_t bits;
        memcpy(&bits, member, 4);
        return bits != 0;
    }
    case PROTOBUF_C_TYPE_DOUBLE: {
        uint64_t bits;
        memcpy(&bits, member, 8);
        return bits != 0;
    }
    case PROTOBUF_C_TYPE_BOOL:
        return *(const protobuf_c_boolean *)member != 0;
    default:
        if (bridge__repeated_elem_size(f->type) == 8)
            return *(const uint64_t *)member != 0;
        return *(const uint32_t *)member != 0;
    }
}

/* ------------------------------------------------------------------ protobuf encoding */

static bridge_status pb_put(bridge_buffer *out, const void *data, size_t len)
{
    return bridge__buffer_append(out, data, len);
}

static bridge_status pb_varint(bridge_buffer *out, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    do {
        tmp[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v)
            tmp[n] |= 0x80;
        n++;
    } while (v);
    return pb_put(out, tmp, n);
}

static bridge_status pb_fixed(bridge_buffer *out, uint64_t v, size_t size)
{
    uint8_t tmp[8];
    for (size_t i = 0; i < size; i++)
        tmp[i] = (uint8_t)(v >> (8 * i));
    return pb_put(out, tmp, size);
}

int bridge__pb_wire_type(ProtobufCType type)
{
    switch (type) {
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return 1;
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_FLOAT:
        return 5;
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_BYTES:
    case PROTOBUF_C_TYPE_MESSAGE:
        return 2;
    default:
        return 0;
    }
}

static bridge_status pb_message(const ProtobufCMessage *msg, bridge_buffer *out, int depth,
                                char *err, size_t err_size);

/* The scalar at `v` (no tag); messages and length-delimited values include their length. */
static bridge_status pb_value(const ProtobufCFieldDescriptor *f, const void *v, bridge_buffer *out,
                              int depth, char *err, size_t err_size)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_ENUM:
        return pb_varint(out, (uint64_t)(int64_t)*(const int32_t *)v);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_UINT64:
        return pb_varint(out, *(const uint64_t *)v);
    case PROTOBUF_C_TYPE_UINT32:
        return pb_varint(out, *(const uint32_t *)v);
    case PROTOBUF_C_TYPE_SINT32: {
        int32_t x = *(const int32_t *)v;
        return pb_varint(out, ((uint32_t)x << 1) ^ (uint32_t)(x >> 31));
    }
    case PROTOBUF_C_TYPE_SINT64: {
        int64_t x = *(const int64_t *)v;
        return pb_varint(out, ((uint64_t)x << 1) ^ (uint64_t)(x >> 63));
    }
    case PROTOBUF_C_TYPE_BOOL:
        return pb_varint(out, *(const protobuf_c_boolean *)v ? 1 : 0);
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_FLOAT:
        return pb_fixed(out, *(const uint32_t *)v, 4);
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return pb_fixed(out, *(const uint64_t *)v, 8);
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(const char *const *)v;
        size_t len = s ? strlen(s) : 0;
        if (!bridge__utf8_valid((const uint8_t *)s, len))
            return bridge__fail(BRIDGE_STATUS_ENCODE_ERROR, err, err_size,
                                "field %s: string is not valid UTF-8", f->name);
        bridge_status st = pb_varint(out, len);
        return st ? st : pb_put(out, s, len);
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *b = v;
        bridge_status st = pb_varint(out, b->len);
        return st ? st : pb_put(out, b->data, b->len);
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *sub = *(const ProtobufCMessage *const *)v;
        if (depth >= BRIDGE_MAX_DEPTH)
            return bridge__fail(BRIDGE_STATUS_ENCODE_ERROR, err, err_size,
                                "messages nested deeper than %d", BRIDGE_MAX_DEPTH);
        /* Reserve one length byte, encode, then widen the length in place if needed. */
        size_t at = out->len;
        bridge_status st = pb_put(out, "", 1);
        if (st)
            return st;
        if (sub != NULL && (st = pb_message(sub, out, depth + 1, err, err_size)))
            return st;
        size_t body = out->len - at - 1;
        uint8_t len[10];
        size_t n = 0;
        uint64_t x = body;
        do {
            len[n] = (uint8_t)(x & 0x7f);
            x >>= 7;
            if (x)
                len[n] |= 0x80;
            n++;
        } while (x);
        if (n > 1) {
            if ((st = bridge__buffer_reserve(out, n - 1)))
                return st;
            memmove(out->data + at + n, out->data + at + 1, body);
            out->len += n - 1;
        }
        memcpy(out->data + at, len, n);
        return BRIDGE_STATUS_OK;
    }
    }
    return bridge__fail(BRIDGE_STATUS_ENCODE_ERROR, err, err_size, "field %s: unsupported type",
                        f->name);
}

static bridge_status pb_message(const ProtobufCMessage *msg, bridge_buffer *out, int depth,
                                char *err, size_t err_size)
{
    const ProtobufCMessageDescriptor *desc = msg->descriptor;
    const char *base = (const char *)msg;
    for (unsigned i = 0; i < desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &desc->fields[i];
        if (!bridge__field_present(msg, f))
            continue;
        bridge_status st;
        uint64_t tag_base = (uint64_t)f->id << 3;
        if (f->label != PROTOBUF_C_LABEL_REPEATED) {
            if ((st = pb_varint(out, tag_base | (uint64_t)bridge__pb_wire_type(f->type))) ||
                (st = pb_value(f, base + f->offset, out, depth, err, err_size)))
                return st;
            continue;
        }
        size_t count = *(const size_t *)(base + f->quantifier_offset);
        const char *items = *(const char *const *)(base + f->offset);
        size_t elem = bridge__repeated_elem_size(f->type);
        int wt = bridge__pb_wire_type(f->type);
        bool packed = (f->flags & PROTOBUF_C_FIELD_FLAG_PACKED) && wt != 2;
        if (packed) {
            /* Packed scalars: encode into a scratch buffer to learn the length. */
            bridge_buffer tmp = BRIDGE_BUFFER_INIT;
            for (size_t k = 0; k < count; k++) {
                if ((st = pb_value(f, items + k * elem, &tmp, depth, err, err_size))) {
                    bridge_buffer_free(&tmp);
                    return st;
                }
            }
            if (!(st = pb_varint(out, tag_base | 2)) && !(st = pb_varint(out, tmp.len)))
                st = pb_put(out, tmp.data, tmp.len);
            bridge_buffer_free(&tmp);
            if (st)
                return st;
            continue;
        }
        for (size_t k = 0; k < count; k++) {
            if ((st = pb_varint(out, tag_base | (uint64_t)wt)) ||
                (st = pb_value(f, items + k * elem, out, depth, err, err_size)))
                return st;
        }
    }
    /* protobuf-c keeps unknown fields it decoded; write them back like other runtimes do. */
    for (size_t u = 0; u < msg->n_unknown_fields; u++) {
        const ProtobufCMessageUnknownField *uf = &msg->unknown_fields[u];
        bridge_status st;
        if ((st = pb_varint(out, ((uint64_t)uf->tag << 3) | (uint64_t)uf->wire_type)))
            return st;
        /* protobuf-c keeps a length-delimited value with its length prefix. */
        if ((st = pb_put(out, uf->data, uf->len)))
            return st;
    }
    return BRIDGE_STATUS_OK;
}

bridge_status bridge__protobuf_encode(const ProtobufCMessage *msg, bridge_buffer *out, char *err,
                                      size_t err_size)
{
    return pb_message(msg, out, 0, err, err_size);
}

/* ------------------------------------------------------------------ entry points */

bridge_status bridge_decode(const ProtobufCMessageDescriptor *desc, bridge_encoding encoding,
                            const uint8_t *data, size_t len, ProtobufCMessage **out, char *err,
                            size_t err_size)
{
    if (out == NULL || desc == NULL || (data == NULL && len > 0))
        return bridge__fail(BRIDGE_STATUS_INVALID, err, err_size, "bridge_decode: NULL argument");
    *out = NULL;
    if (data == NULL)
        data = (const uint8_t *)""; /* len is 0: keeps pointer arithmetic defined */
    if (encoding == BRIDGE_ENCODING_MSGPACK)
        return bridge__msgpack_decode(desc, data, len, out, err, err_size);
    if (encoding == BRIDGE_ENCODING_PROTOBUF)
        return bridge__protobuf_decode(desc, data, len, out, err, err_size);
    if (encoding == BRIDGE_ENCODING_JSON)
        return bridge__json_decode(desc, data, len, out, err, err_size);
    if (encoding == BRIDGE_ENCODING_RAW)
        return bridge__raw_decode(desc, data, len, out, err, err_size);
    return bridge__fail(BRIDGE_STATUS_INVALID, err, err_size, "unknown encoding %d", (int)encoding);
}

bridge_status bridge_encode(const ProtobufCMessage *msg, bridge_encoding encoding,
                            bridge_buffer *out, char *err, size_t err_size)
{
    if (msg == NULL || out == NULL)
        return bridge__fail(BRIDGE_STATUS_INVALID, err, err_size, "bridge_encode: NULL argument");
    if (encoding == BRIDGE_ENCODING_MSGPACK)
        return bridge__msgpack_encode(msg, out, err, err_size);
    if (encoding == BRIDGE_ENCODING_PROTOBUF)
        return bridge__protobuf_encode(msg, out, err, err_size);
    if (encoding == BRIDGE_ENCODING_JSON)
        return bridge__json_encode(msg, out, err, err_size);
    if (encoding == BRIDGE_ENCODING_RAW)
        return bridge__raw_encode(msg, out, err, err_size);
    return bridge__fail(BRIDGE_STATUS_INVALID, err, err_size, "unknown encoding %d", (int)encoding);
}

void bridge_message_free(ProtobufCMessage *msg)
{
    if (msg != NULL)
        protobuf_c_message_free_unpacked(msg, NULL);
}
