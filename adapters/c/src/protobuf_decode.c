/*
 * The protobuf decoder: protobuf-c's own unpacker, guarded and completed by a descriptor-driven
 * walk of the wire format (wire contract, section 5.9).
 *
 *  1. The walk runs first, without copying: it refuses nesting deeper than BRIDGE_MAX_DEPTH
 *     (protobuf-c recurses without limit, so hostile input could overflow the stack), strings
 *     holding a NUL (protobuf-c's strings are NUL-terminated and would be cut short), truncated
 *     data and length prefixes longer than the bytes that remain (nothing is allocated for them).
 *  2. protobuf_c_message_unpack() then decodes: the fast path.
 *  3. Only when it fails: protobuf-c refuses a known field arriving with the wrong wire type, and
 *     groups, which protobuf's reference parsers skip like unknown fields. The same walk then
 *     copies the input leaving out exactly those (recursing into message fields and map entries,
 *     keeping packed and unpacked repeated scalars), and protobuf-c unpacks the copy.
 *  4. proto3 strings must be UTF-8: protobuf-c does not check, so the decoded strings are walked.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static bool pb_read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t x = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (*p >= end)
            return false;
        uint8_t b = *(*p)++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return true;
        }
    }
    return false;
}

static bool pb_put_varint(bridge_buffer *out, uint64_t v)
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
    return bridge__buffer_append(out, tmp, n) == BRIDGE_STATUS_OK;
}

typedef struct walk {
    bridge_buffer *out;  /* NULL: check only; else: the copy without mismatched fields */
    const char *problem; /* why the input is refused */
} walk;

static bool refuse(walk *w, const char *problem)
{
    w->problem = problem;
    return false;
}

/* Moves *p past one value of wire type `wt` (for a group, past its end tag). */
static bool skip_value(walk *w, const uint8_t **p, const uint8_t *end, unsigned wt, uint64_t field,
                       int depth)
{
    uint64_t v;
    switch (wt) {
    case 0:
        return pb_read_varint(p, end, &v) || refuse(w, "truncated varint");
    case 1:
        if (end - *p < 8)
            return refuse(w, "truncated 64-bit value");
        *p += 8;
        return true;
    case 5:
        if (end - *p < 4)
            return refuse(w, "truncated 32-bit value");
        *p += 4;
        return true;
    case 2:
        if (!pb_read_varint(p, end, &v) || v > (uint64_t)(end - *p))
            return refuse(w, "a length prefix runs past the end of the data");
        *p += v;
        return true;
    case 3: /* a group: skipped whole, never kept */
        if (depth >= BRIDGE_MAX_DEPTH)
            return refuse(w, "groups nested deeper than 100 levels");
        for (;;) {
            uint64_t key;
            if (!pb_read_varint(p, end, &key))
                return refuse(w, "unterminated group");
            if ((key & 7) == 4)
                return (key >> 3) == field || refuse(w, "mismatched end of group");
            if (!skip_value(w, p, end, (unsigned)(key & 7), key >> 3, depth + 1))
                return false;
        }
    default:
        return refuse(w, (wt == 4) ? "end of group without a start" : "invalid wire type");
    }
}

/* Whether wire type `wt` can carry field `f`: its own, or packed for a repeated scalar. */
static bool wire_type_fits(const ProtobufCFieldDescriptor *f, unsigned wt)
{
    unsigned want = (unsigned)bridge__pb_wire_type(f->type);
    return wt == want || (wt == 2 && f->label == PROTOBUF_C_LABEL_REPEATED);
}

static bool walk_message(walk *w, const ProtobufCMessageDescriptor *desc, const uint8_t *p,
                         const uint8_t *end, int depth)
{
    if (depth > BRIDGE_MAX_DEPTH)
        return refuse(w, "messages nested deeper than 100 levels");
    while (p < end) {
        const uint8_t *start = p;
        uint64_t key;
        if (!pb_read_varint(&p, end, &key))
            return refuse(w, "truncated field key");
        unsigned wt = (unsigned)(key & 7);
        uint64_t number = key >> 3;
        const ProtobufCFieldDescriptor *f =
            number > 0 && number <= UINT32_MAX
                ? protobuf_c_message_descriptor_get_field(desc, (unsigned)number)
                : NULL;
        const uint8_t *value = p;
        if (!skip_value(w, &p, end, wt, number, depth))
            return false;
        bool fits = f != NULL && wire_type_fits(f, wt);
        if (wt == 2 && fits && (f->type == PROTOBUF_C_TYPE_MESSAGE || f->type == PROTOBUF_C_TYPE_STRING)) {
            uint64_t len = 0;
            pb_read_varint(&value, end, &len); /* read once already: cannot fail */
            if (f->type == PROTOBUF_C_TYPE_STRING) {
                if (memchr(value, 0, (size_t)len) != NULL)
                    return refuse(w, "a string holds a NUL character, which protobuf-c strings cannot");
            } else if (w->out != NULL) {
                /* A message: its own copy first, to learn the length it has without mismatches. */
                bridge_buffer *outer = w->out, inner = BRIDGE_BUFFER_INIT;
                w->out = &inner;
                bool ok = walk_message(w, f->descriptor, value, value + len, depth + 1);
                w->out = outer;
                ok = ok && pb_put_varint(outer, key) && pb_put_varint(outer, inner.len) &&
                     bridge__buffer_append(outer, inner.data, inner.len) == BRIDGE_STATUS_OK;
                bridge_buffer_free(&inner);
                if (!ok)
                    return w->problem ? false : refuse(w, "out of memory");
                continue;
            } else if (!walk_message(w, f->descriptor, value, value + len, depth + 1)) {
                return false;
            }
        }
        /* Kept as it is: fields that fit, and unknown fields (groups excepted). */
        if (w->out != NULL && (fits || (f == NULL && wt != 3)) &&
            bridge__buffer_append(w->out, start, (size_t)(p - start)) != BRIDGE_STATUS_OK)
            return refuse(w, "out of memory");
    }
    return true;
}

/* proto3 strings must be UTF-8; protobuf-c does not check, so walk what it decoded. */
static bool pb_strings_valid(const ProtobufCMessage *msg, const char **bad_field)
{
    const ProtobufCMessageDescriptor *desc = msg->descriptor;
    const char *base = (const char *)msg;
    for (unsigned i = 0; i < desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &desc->fields[i];
        if (f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        if (!bridge__field_present(msg, f))
            continue;
        size_t count = 1;
        const char *items = base + f->offset;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            count = *(const size_t *)(base + f->quantifier_offset);
            items = *(const char *const *)items;
        }
        for (size_t k = 0; k < count; k++) {
            const void *item = *(const void *const *)(items + k * sizeof(void *));
            if (item == NULL)
                continue;
            if (f->type == PROTOBUF_C_TYPE_STRING) {
                if (!bridge__utf8_valid(item, strlen(item))) {
                    *bad_field = f->name;
                    return false;
                }
            } else if (!pb_strings_valid(item, bad_field)) {
                return false;
            }
        }
    }
    return true;
}

bridge_status bridge__protobuf_decode(const ProtobufCMessageDescriptor *desc, const uint8_t *data,
                                      size_t len, ProtobufCMessage **out, char *err,
                                      size_t err_size)
{
    *out = NULL;
    walk check = {NULL, NULL};
    if (!walk_message(&check, desc, data, data + len, 0))
        return bridge__fail(BRIDGE_STATUS_DECODE_ERROR, err, err_size, "%s: %s", desc->name,
                            check.problem);
    ProtobufCMessage *msg = protobuf_c_message_unpack(desc, NULL, len, data);
    if (msg == NULL) {
        /* Mismatched wire types (or groups): unpack a copy without them. */
        bridge_buffer clean = BRIDGE_BUFFER_INIT;
        walk copy = {&clean, NULL};
        if (!walk_message(&copy, desc, data, data + len, 0)) {
            bridge_buffer_free(&clean);
            return bridge__fail(BRIDGE_STATUS_NO_MEMORY, err, err_size, "%s: %s", desc->name,
                                copy.problem);
        }
        msg = protobuf_c_message_unpack(desc, NULL, clean.len, clean.data ? clean.data : data);
        bridge_buffer_free(&clean);
    }
    if (msg == NULL)
        return bridge__fail(BRIDGE_STATUS_DECODE_ERROR, err, err_size,
                            "%s: not a valid protobuf encoding", desc->name);
    const char *bad = NULL;
    if (!pb_strings_valid(msg, &bad)) {
        protobuf_c_message_free_unpacked(msg, NULL);
        return bridge__fail(BRIDGE_STATUS_DECODE_ERROR, err, err_size,
                            "%s: field %s is not valid UTF-8", desc->name, bad);
    }
    *out = msg;
    return BRIDGE_STATUS_OK;
}
