/*
 * The msgpack mapping of protobuf messages (wire contract, section 5), encoding, for any protobuf-c
 * message: a walk of ProtobufCMessageDescriptor / ProtobufCFieldDescriptor through msgpack-c's
 * packer (it already picks the smallest integer/str/bin/array/map form). Decoding is in
 * msgpack_decode.c.
 */
#define _GNU_SOURCE /* qsort_r */
#include <float.h>
#include <math.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
/* ================================================================== encoding */

typedef struct enc {
    msgpack_packer pk;
    bridge_buffer *out;
    bridge_status status; /* first failure of the write callback */
    char *err;
    size_t err_size;
} enc;

static int enc_write(void *data, const char *buf, size_t len)
{
    enc *e = data;
    if (e->status != BRIDGE_STATUS_OK)
        return -1;
    e->status = bridge__buffer_append(e->out, buf, len);
    return e->status == BRIDGE_STATUS_OK ? 0 : -1;
}

static bridge_status enc_message(enc *e, const ProtobufCMessage *msg, int depth);

static void enc_double(enc *e, double d)
{
    if (isnan(d)) {
        /* One NaN for every language: the quiet NaN 0x7ff8000000000000. */
        static const char qnan[9] = {(char)0xcb, 0x7f, (char)0xf8, 0, 0, 0, 0, 0, 0};
        enc_write(e, qnan, sizeof qnan);
        return;
    }
    msgpack_pack_double(&e->pk, d);
}

/* One singular value of field f stored at v. */
static bridge_status enc_value(enc *e, const ProtobufCFieldDescriptor *f, const void *v, int depth)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_ENUM:
        msgpack_pack_int64(&e->pk, *(const int32_t *)v);
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        msgpack_pack_uint64(&e->pk, *(const uint32_t *)v);
        break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        msgpack_pack_int64(&e->pk, *(const int64_t *)v);
        break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        msgpack_pack_uint64(&e->pk, *(const uint64_t *)v);
        break;
    case PROTOBUF_C_TYPE_BOOL:
        if (*(const protobuf_c_boolean *)v)
            msgpack_pack_true(&e->pk);
        else
            msgpack_pack_false(&e->pk);
        break;
    case PROTOBUF_C_TYPE_FLOAT:
        enc_double(e, (double)*(const float *)v);
        break;
    case PROTOBUF_C_TYPE_DOUBLE:
        enc_double(e, *(const double *)v);
        break;
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(const char *const *)v;
        size_t len = s ? strlen(s) : 0;
        if (!bridge__utf8_valid((const uint8_t *)s, len))
            return bridge__fail(BRIDGE_STATUS_ENCODE_ERROR, e->err, e->err_size,
                                "field %s: string is not valid UTF-8", f->name);
        msgpack_pack_str(&e->pk, len);
        msgpack_pack_str_body(&e->pk, s, len);
        break;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *b = v;
        msgpack_pack_bin(&e->pk, b->len);
        msgpack_pack_bin_body(&e->pk, b->data, b->len);
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *sub = *(const ProtobufCMessage *const *)v;
        if (sub == NULL) {
            msgpack_pack_map(&e->pk, 0); /* an unset map value is the empty message */
            break;
        }
        if (depth >= BRIDGE_MAX_DEPTH)
            return bridge__fail(BRIDGE_STATUS_ENCODE_ERROR, e->err, e->err_size,
                                "messages nested deeper than %d", BRIDGE_MAX_DEPTH);
        return enc_message(e, sub, depth + 1);
    }
    }
    return e->status;
}

/* Map keys, compared as the contract sorts them: numbers numerically, strings by bytes. */

static int key_cmp_values(const ProtobufCFieldDescriptor *kf, const ProtobufCMessage *a,
                          const ProtobufCMessage *b)
{
    const char *pa = (const char *)a + kf->offset;
    const char *pb = (const char *)b + kf->offset;
    switch (kf->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *sa = *(const char *const *)pa, *sb = *(const char *const *)pb;
        int c = strcmp(sa ? sa : "", sb ? sb : ""); /* strcmp compares as unsigned char */
        return (c > 0) - (c < 0);
    }
    case PROTOBUF_C_TYPE_BOOL: {
        int x = *(const protobuf_c_boolean *)pa != 0, y = *(const protobuf_c_boolean *)pb != 0;
        return x - y;
    }
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32: {
        uint32_t x = *(const uint32_t *)pa, y = *(const uint32_t *)pb;
        return (x > y) - (x < y);
    }
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: {
        uint64_t x = *(const uint64_t *)pa, y = *(const uint64_t *)pb;
        return (x > y) - (x < y);
    }
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64: {
        int64_t x = *(const int64_t *)pa, y = *(const int64_t *)pb;
        return (x > y) - (x < y);
    }
    default: {
        int32_t x = *(const int32_t *)pa, y = *(const int32_t *)pb;
        return (x > y) - (x < y);
    }
    }
}

static int map_item_cmp_r(const void *a, const void *b, void *kf)
{
    const map_item *x = a, *y = b;
    int c = key_cmp_values(kf, x->entry, y->entry);
    if (c != 0)
        return c;
    return (x->index > y->index) - (x->index < y->index);
}

/*
 * Sorts the entries of a map field by key; with duplicate keys (legal on the protobuf wire) the
 * last one wins, as in every protobuf runtime. Returns the number of distinct entries in `items`.
 */
size_t bridge__sorted_map_items(ProtobufCMessage *const *entries, size_t count, map_item *items)
{
    if (count == 0)
        return 0;
    const ProtobufCFieldDescriptor *kf = &entries[0]->descriptor->fields[0];
    for (size_t i = 0; i < count; i++) {
        items[i].entry = entries[i];
        items[i].index = i;
    }
    qsort_r(items, count, sizeof *items, map_item_cmp_r, (void *)kf);
    size_t n = 0;
    for (size_t i = 0; i < count; i++) {
        if (i + 1 < count && key_cmp_values(kf, items[i].entry, items[i + 1].entry) == 0)
            continue; /* a later duplicate follows */
        items[n++] = items[i];
    }
    return n;
}

static bridge_status enc_field(enc *e, const ProtobufCMessageDescriptor *owner,
                               const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f,
                               int depth)
{
    const char *base = (const char *)msg;
    size_t name_len = strlen(f->name);
    msgpack_pack_str(&e->pk, name_len);
    msgpack_pack_str_body(&e->pk, f->name, name_len);
    if (f->label != PROTOBUF_C_LABEL_REPEATED)
        return enc_value(e, f, base + f->offset, depth);

    size_t count = *(const size_t *)(base + f->quantifier_offset);
    const char *items = *(const char *const *)(base + f->offset);
    if (bridge__field_is_map(owner, f)) {
        map_item *sorted = malloc(count * sizeof *sorted);
        if (sorted == NULL)
            return BRIDGE_STATUS_NO_MEMORY;
        size_t n = bridge__sorted_map_items((ProtobufCMessage *const *)items, count, sorted);
        const ProtobufCMessageDescriptor *ed = f->descriptor;
        msgpack_pack_map(&e->pk, n);
        bridge_status st = BRIDGE_STATUS_OK;
        for (size_t i = 0; i < n && st == BRIDGE_STATUS_OK; i++) {
            const char *entry = (const char *)sorted[i].entry;
            st = enc_value(e, &ed->fields[0], entry + ed->fields[0].offset, depth);
            if (st == BRIDGE_STATUS_OK) {
                if (depth + 1 >= BRIDGE_MAX_DEPTH && ed->fields[1].type == PROTOBUF_C_TYPE_MESSAGE)
                    st = bridge__fail(BRIDGE_STATUS_ENCODE_ERROR, e->err, e->err_size,
                                      "messages nested deeper than %d", BRIDGE_MAX_DEPTH);
                else
                    st = enc_value(e, &ed->fields[1], entry + ed->fields[1].offset, depth);
            }
        }
        free(sorted);
        return st;
    }
    size_t elem = bridge__repeated_elem_size(f->type);
    msgpack_pack_array(&e->pk, count);
    for (size_t i = 0; i < count; i++) {
        bridge_status st = enc_value(e, f, items + i * elem, depth);
        if (st != BRIDGE_STATUS_OK)
            return st;
    }
    return e->status;
}

static bridge_status enc_message(enc *e, const ProtobufCMessage *msg, int depth)
{
    const ProtobufCMessageDescriptor *desc = msg->descriptor;
    size_t n = 0;
    for (unsigned i = 0; i < desc->n_fields; i++)
        n += bridge__field_present(msg, &desc->fields[i]);
    msgpack_pack_map(&e->pk, n);
    /* protobuf-c's field descriptors are sorted by number: the contract's key order. */
    for (unsigned i = 0; i < desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &desc->fields[i];
        if (!bridge__field_present(msg, f))
            continue;
        bridge_status st = enc_field(e, desc, msg, f, depth);
        if (st != BRIDGE_STATUS_OK)
            return st;
    }
    return e->status;
}

bridge_status bridge__msgpack_encode(const ProtobufCMessage *msg, bridge_buffer *out, char *err,
                                     size_t err_size)
{
    enc e = {.out = out, .status = BRIDGE_STATUS_OK, .err = err, .err_size = err_size};
    msgpack_packer_init(&e.pk, &e, enc_write);
    bridge_status st = enc_message(&e, msg, 0);
    if (st == BRIDGE_STATUS_NO_MEMORY)
        return bridge__fail(st, err, err_size, "out of memory");
    return st;
}
