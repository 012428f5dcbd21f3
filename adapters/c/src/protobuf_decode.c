/*
 * The protobuf decoder: protobuf-c's own unpacker, guarded and completed by a descriptor-driven
 * walk of the wire format (wire contract, section 5.9).
 *
 *  1. The walk runs first, without copying: it refuses nesting deeper than BRIDGE_MAX_DEPTH
 *     (protobuf-c recurses without limit, so hostile input could overflow the stack), strings
 *     that are not UTF-8 (proto3 requires it, protobuf-c does not check) or hold a NUL
 *     (protobuf-c's strings are NUL-terminated and would be cut short), invalid field numbers,
 *     truncated data and length prefixes longer than the bytes that remain (nothing is
 *     allocated for them).
 *     It also notes what protobuf-c would read differently from protobuf's reference parsers
 *     (upb, C++, Java): a known field arriving with the wrong wire type (protobuf-c refuses it,
 *     they skip it like an unknown field), groups (same), a map entry holding anything but a
 *     fitting key and value (upb leaves the entry out of the map, protobuf-c keeps it), and a
 *     singular message field that appears twice (protobuf-c 1.4.1 cannot always merge them).
 *  2. Nearly always there is none of that: protobuf_c_message_unpack() decodes the input as it is.
 *  3. Otherwise the same walk copies the input leaving out exactly those fields and entries
 *     (recursing into message fields and map entries, keeping packed and unpacked repeated
 *     scalars), and protobuf-c unpacks the copy.
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
    bool dirty;          /* something protobuf-c would read differently: decode the copy */
    bool tainted;        /* the map entry being walked is left out of the copy */
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
            if ((key >> 3) == 0 || (key >> 3) > 536870911) /* inside a group too: 1 .. 2^29-1 */
                return refuse(w, "invalid field number");
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
                         const uint8_t *end, int depth, bool map_entry);

/* Copies one message field's value (walked) into w->out as key, length, value; nothing when the
 * value is a map entry to leave out. */
static bool copy_message_field(walk *w, const ProtobufCFieldDescriptor *f, bool entry,
                               const uint8_t *value, size_t len, int depth)
{
    bridge_buffer *outer = w->out, inner = BRIDGE_BUFFER_INIT;
    bool tainted = w->tainted;
    w->out = &inner;
    w->tainted = false;
    bool ok = walk_message(w, f->descriptor, value, value + len, depth + 1, entry);
    w->out = outer;
    ok = ok && (w->tainted || (pb_put_varint(outer, (uint64_t)f->id << 3 | 2) &&
                               pb_put_varint(outer, inner.len) &&
                               bridge__buffer_append(outer, inner.data, inner.len) == BRIDGE_STATUS_OK));
    w->tainted = tainted;
    bridge_buffer_free(&inner);
    return ok || (w->problem ? false : refuse(w, "out of memory"));
}

/* The singular message fields of one message being copied: every occurrence's bytes, joined
 * (parsing a concatenation is protobuf's merge), written once at the end of the message. */
typedef struct pending {
    bridge_buffer *bytes; /* per field index */
    bool *set;
} pending;

static bool pending_add(walk *w, pending *q, const ProtobufCMessageDescriptor *desc, size_t index,
                        const uint8_t *value, size_t len)
{
    if (q->set == NULL) {
        q->bytes = calloc(desc->n_fields, sizeof *q->bytes);
        q->set = calloc(desc->n_fields, sizeof *q->set);
        if (q->bytes == NULL || q->set == NULL)
            return refuse(w, "out of memory");
    }
    q->set[index] = true;
    return bridge__buffer_append(&q->bytes[index], value, len) == BRIDGE_STATUS_OK ||
           refuse(w, "out of memory");
}

/* A member of a oneof arrived: the other members' pending messages are dropped, as the oneof
 * switched (a message member that comes back starts empty). */
static void pending_oneof(pending *q, const ProtobufCMessageDescriptor *desc,
                          const ProtobufCFieldDescriptor *f)
{
    if (q->set == NULL || !(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
        return;
    for (unsigned i = 0; i < desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *g = &desc->fields[i];
        if (g != f && (g->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            g->quantifier_offset == f->quantifier_offset) {
            q->set[i] = false;
            q->bytes[i].len = 0;
        }
    }
}

static bool pending_flush(walk *w, pending *q, const ProtobufCMessageDescriptor *desc, int depth)
{
    bool ok = true;
    for (unsigned i = 0; q->set != NULL && i < desc->n_fields; i++) {
        if (ok && q->set[i])
            ok = copy_message_field(w, &desc->fields[i], false, q->bytes[i].data ? q->bytes[i].data
                                    : (const uint8_t *)"", q->bytes[i].len, depth);
        bridge_buffer_free(&q->bytes[i]);
    }
    free(q->bytes);
    free(q->set);
    return ok;
}

/*
 * Walks one message. The check walk (w->out NULL) notes in w->dirty whether protobuf-c would read
 * the input differently from protobuf's reference parsers or fail on it:
 *  - a known field with the wrong wire type, or a group (they skip those like unknown fields);
 *  - a map entry holding anything but a fitting key and value (upb leaves the entry out);
 *  - a singular message field that appears twice: protobuf merges them, protobuf-c 1.4.1 fails
 *    to when the message type has a oneof set in neither (its merge_messages looks up case 0).
 * The copy walk writes the input without those fields and entries, each singular message field
 * once (its occurrences joined, minding oneof switches), so protobuf-c never merges.
 */
static bool walk_message(walk *w, const ProtobufCMessageDescriptor *desc, const uint8_t *p,
                         const uint8_t *end, int depth, bool map_entry)
{
    if (depth > BRIDGE_MAX_DEPTH)
        return refuse(w, "messages nested deeper than 100 levels");
    uint64_t seen = 0; /* check walk: singular message fields met, by index */
    pending q = {NULL, NULL};
    bool ok = true;
    while (ok && p < end) {
        const uint8_t *start = p;
        uint64_t key;
        if (!pb_read_varint(&p, end, &key)) {
            ok = refuse(w, "truncated field key");
            break;
        }
        unsigned wt = (unsigned)(key & 7);
        uint64_t number = key >> 3;
        if (number == 0 || number > 536870911) { /* 1 .. 2^29-1; protobuf-c lets 0 through */
            ok = refuse(w, "invalid field number");
            break;
        }
        const ProtobufCFieldDescriptor *f =
            protobuf_c_message_descriptor_get_field(desc, (unsigned)number);
        const uint8_t *value = p;
        if (!(ok = skip_value(w, &p, end, wt, number, depth)))
            break;
        bool fits = f != NULL && wire_type_fits(f, wt);
        if (!fits && (f != NULL || wt == 3 || map_entry)) {
            w->dirty = true;         /* dropped from the copy */
            w->tainted |= map_entry; /* and so is the map entry holding it */
            continue;
        }
        if (fits && w->out != NULL)
            pending_oneof(&q, desc, f);
        if (fits && wt == 2 && f->type == PROTOBUF_C_TYPE_STRING) {
            uint64_t len = 0;
            pb_read_varint(&value, end, &len); /* read once already: cannot fail */
            /* Every string on the wire, also one a later field replaces or a map entry that is
             * left out, as upb checks them while it reads. */
            if (!bridge__utf8_valid(value, (size_t)len))
                ok = refuse(w, "a string field is not valid UTF-8");
            else if (memchr(value, 0, (size_t)len) != NULL)
                ok = refuse(w, "a string holds a NUL character, which protobuf-c strings cannot");
        } else if (fits && wt == 2 && f->type == PROTOBUF_C_TYPE_MESSAGE) {
            uint64_t len = 0;
            pb_read_varint(&value, end, &len);
            bool singular = f->label != PROTOBUF_C_LABEL_REPEATED;
            size_t index = (size_t)(f - desc->fields);
            if (w->out == NULL) {
                if (singular && (index >= 64 || (seen >> index & 1)))
                    w->dirty = true;
                else if (singular)
                    seen |= (uint64_t)1 << index;
                ok = walk_message(w, f->descriptor, value, value + len, depth + 1,
                                  !singular && bridge__field_is_map(desc, f));
            } else if (singular) {
                ok = pending_add(w, &q, desc, index, value, (size_t)len);
            } else {
                ok = copy_message_field(w, f, bridge__field_is_map(desc, f), value, (size_t)len, depth);
            }
            continue;
        }
        /* Kept as it is: fields that fit, and unknown fields (groups excepted). */
        if (ok && w->out != NULL && bridge__buffer_append(w->out, start, (size_t)(p - start)) != 0)
            ok = refuse(w, "out of memory");
    }
    if (w->out != NULL)
        ok = pending_flush(w, &q, desc, depth) && ok;
    return ok;
}

bridge_status bridge__protobuf_decode(const ProtobufCMessageDescriptor *desc, const uint8_t *data,
                                      size_t len, ProtobufCMessage **out, char *err,
                                      size_t err_size)
{
    *out = NULL;
    walk check = {NULL, NULL, false, false};
    if (!walk_message(&check, desc, data, data + len, 0, false))
        return bridge__fail(BRIDGE_STATUS_DECODE_ERROR, err, err_size, "%s: %s", desc->name,
                            check.problem);
    ProtobufCMessage *msg;
    if (!check.dirty) {
        msg = protobuf_c_message_unpack(desc, NULL, len, data); /* the fast path */
    } else {
        /* Mismatched wire types, groups, odd map entries, repeated singular messages: protobuf-c
         * unpacks a copy without them (each singular message once). */
        bridge_buffer clean = BRIDGE_BUFFER_INIT;
        walk copy = {&clean, NULL, false, false};
        if (!walk_message(&copy, desc, data, data + len, 0, false)) {
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
    *out = msg;
    return BRIDGE_STATUS_OK;
}
