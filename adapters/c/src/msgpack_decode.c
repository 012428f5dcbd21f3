/*
 * The msgpack mapping of protobuf messages (wire contract, section 5), decoding: a bounds-checked
 * cursor over the input instead of msgpack_unpack(). It decodes straight into protobuf-c structs
 * with no intermediate object tree, and it refuses a declared array/map/str length larger than
 * the bytes left before allocating anything (msgpack-c's unpacker allocates the declared element
 * count up front, which malformed input can abuse).
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ================================================================== decoding */

typedef struct dec {
    const uint8_t *p;
    const uint8_t *end;
    char *err;
    size_t err_size;
    bool strict; /* bare MSGPACK (wire contract 8.1): a key the type does not have is an error */
} dec;

#define DEC_FAIL(d, ...) bridge__fail(BRIDGE_STATUS_DECODE_ERROR, (d)->err, (d)->err_size, __VA_ARGS__)

static size_t dec_left(const dec *d)
{
    return (size_t)(d->end - d->p);
}

static bool dec_be(dec *d, size_t n, uint64_t *v)
{
    if (dec_left(d) < n)
        return false;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++)
        x = (x << 8) | d->p[i];
    d->p += n;
    *v = x;
    return true;
}

/* What a msgpack value header says. */
typedef enum mp_kind { MP_NIL, MP_BOOL, MP_UINT, MP_INT, MP_F32, MP_F64, MP_STR, MP_BIN, MP_ARRAY, MP_MAP, MP_EXT } mp_kind;

typedef struct mp_head {
    mp_kind kind;
    uint64_t u;    /* MP_UINT value, MP_BOOL, lengths/counts */
    int64_t i;     /* MP_INT value (negative) */
    double f;      /* MP_F32 / MP_F64 value */
} mp_head;

static const char *mp_kind_name(mp_kind k)
{
    static const char *const names[] = {"nil", "bool", "integer", "integer", "float 32", "float 64",
                                        "str", "bin", "array", "map", "ext"};
    return names[k];
}

/* Reads one header. For str/bin/ext the payload follows at d->p (u bytes, checked to exist). */
static bridge_status dec_head(dec *d, mp_head *h)
{
    if (d->p >= d->end)
        return DEC_FAIL(d, "msgpack: truncated input");
    uint8_t b = *d->p++;
    uint64_t v;
    if (b <= 0x7f) {
        h->kind = MP_UINT;
        h->u = b;
        return BRIDGE_STATUS_OK;
    }
    if (b >= 0xe0) {
        h->kind = MP_INT;
        h->i = (int8_t)b;
        return BRIDGE_STATUS_OK;
    }
    if ((b & 0xf0) == 0x80 || (b & 0xf0) == 0x90 || (b & 0xe0) == 0xa0) {
        h->kind = (b & 0xf0) == 0x80 ? MP_MAP : (b & 0xf0) == 0x90 ? MP_ARRAY : MP_STR;
        h->u = (b & 0xe0) == 0xa0 ? (b & 0x1f) : (b & 0x0f);
    } else {
        size_t n = 0;
        switch (b) {
        case 0xc0: h->kind = MP_NIL; return BRIDGE_STATUS_OK;
        case 0xc2: case 0xc3: h->kind = MP_BOOL; h->u = b == 0xc3; return BRIDGE_STATUS_OK;
        case 0xc4: case 0xc5: case 0xc6: h->kind = MP_BIN; n = (size_t)1 << (b - 0xc4); break;
        case 0xc7: case 0xc8: case 0xc9: h->kind = MP_EXT; n = (size_t)1 << (b - 0xc7); break;
        case 0xca: case 0xcb: {
            if (!dec_be(d, b == 0xca ? 4 : 8, &v))
                return DEC_FAIL(d, "msgpack: truncated float");
            if (b == 0xca) {
                uint32_t bits = (uint32_t)v;
                float f;
                memcpy(&f, &bits, 4);
                h->kind = MP_F32;
                h->f = f;
            } else {
                memcpy(&h->f, &v, 8);
                h->kind = MP_F64;
            }
            return BRIDGE_STATUS_OK;
        }
        case 0xcc: case 0xcd: case 0xce: case 0xcf:
            if (!dec_be(d, (size_t)1 << (b - 0xcc), &v))
                return DEC_FAIL(d, "msgpack: truncated integer");
            h->kind = MP_UINT;
            h->u = v;
            return BRIDGE_STATUS_OK;
        case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
            size_t w = (size_t)1 << (b - 0xd0);
            if (!dec_be(d, w, &v))
                return DEC_FAIL(d, "msgpack: truncated integer");
            int64_t x = w == 1 ? (int8_t)v : w == 2 ? (int16_t)v : w == 4 ? (int32_t)v : (int64_t)v;
            if (x >= 0) {
                h->kind = MP_UINT;
                h->u = (uint64_t)x;
            } else {
                h->kind = MP_INT;
                h->i = x;
            }
            return BRIDGE_STATUS_OK;
        }
        case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
            /* fixext: type byte + 1..16 bytes */
            h->kind = MP_EXT;
            h->u = ((uint64_t)1 << (b - 0xd4)) + 1;
            if (dec_left(d) < h->u)
                return DEC_FAIL(d, "msgpack: truncated ext");
            return BRIDGE_STATUS_OK;
        case 0xd9: case 0xda: case 0xdb: h->kind = MP_STR; n = (size_t)1 << (b - 0xd9); break;
        case 0xdc: case 0xdd: h->kind = MP_ARRAY; n = b == 0xdc ? 2 : 4; break;
        case 0xde: case 0xdf: h->kind = MP_MAP; n = b == 0xde ? 2 : 4; break;
        default:
            return DEC_FAIL(d, "msgpack: invalid byte 0x%02x", b);
        }
        if (!dec_be(d, n, &v))
            return DEC_FAIL(d, "msgpack: truncated header");
        h->u = v;
        if (h->kind == MP_EXT)
            h->u += 1; /* the ext type byte */
    }
    /* Every element takes at least one byte: a count beyond the input is malformed. */
    if (h->u > dec_left(d) || (h->kind == MP_MAP && h->u > dec_left(d) / 2))
        return DEC_FAIL(d, "msgpack: %s length %llu exceeds the input", mp_kind_name(h->kind),
                        (unsigned long long)h->u);
    return BRIDGE_STATUS_OK;
}

/*
 * Skips one whole value (under an unknown key), however deeply it nests, without recursing: only
 * the number of values still to skip is kept (each declared count was checked against the bytes
 * left, so it cannot overflow). Its strs must still be UTF-8, as in the other runtimes, whose
 * msgpack libraries decode every str they meet.
 */
static bridge_status dec_skip(dec *d)
{
    uint64_t left = 1;
    while (left > 0) {
        left--;
        mp_head h;
        bridge_status st = dec_head(d, &h);
        if (st)
            return st;
        switch (h.kind) {
        case MP_STR:
            if (!bridge__utf8_valid(d->p, h.u))
                return DEC_FAIL(d, "msgpack: a str under an unknown key is not valid UTF-8");
            d->p += h.u;
            break;
        case MP_BIN:
        case MP_EXT:
            d->p += h.u;
            break;
        case MP_ARRAY:
            left += h.u;
            break;
        case MP_MAP:
            left += 2 * h.u;
            break;
        default:
            break;
        }
    }
    return BRIDGE_STATUS_OK;
}

static bridge_status dec_message_body(dec *d, ProtobufCMessage *msg, uint64_t entries, int depth);

/* Frees what a singular member holds and resets it, so a later value can replace it. */
static void clear_value(const ProtobufCFieldDescriptor *f, void *member)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
        char **s = member;
        if (*s != NULL && *s != f->default_value && *s != protobuf_c_empty_string)
            free(*s);
        *s = f->label == PROTOBUF_C_LABEL_NONE ? (char *)protobuf_c_empty_string : NULL;
        break;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        ProtobufCBinaryData *b = member;
        free(b->data);
        b->data = NULL;
        b->len = 0;
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        ProtobufCMessage **m = member;
        if (*m != NULL)
            protobuf_c_message_free_unpacked(*m, NULL);
        *m = NULL;
        break;
    }
    default:
        memset(member, 0, bridge__repeated_elem_size(f->type));
    }
}

/* Frees whatever field f holds in msg and marks it unset (repeated: empties it). */
static void clear_field(ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f)
{
    char *base = (char *)msg;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        size_t *count = (size_t *)(base + f->quantifier_offset);
        char **items = (char **)(base + f->offset);
        size_t elem = bridge__repeated_elem_size(f->type);
        for (size_t i = 0; i < *count; i++)
            if (f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_BYTES ||
                f->type == PROTOBUF_C_TYPE_MESSAGE)
                clear_value(f, *items + i * elem);
        free(*items);
        *items = NULL;
        *count = 0;
        return;
    }
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        uint32_t *which = (uint32_t *)(base + f->quantifier_offset);
        if (*which == 0)
            return;
        /* The union holds whichever member is set: clear it through that member's type. */
        const ProtobufCMessageDescriptor *desc = msg->descriptor;
        const ProtobufCFieldDescriptor *set = protobuf_c_message_descriptor_get_field(desc, *which);
        if (set != NULL) {
            if (set->type == PROTOBUF_C_TYPE_STRING) {
                char **s = (char **)(base + set->offset);
                if (*s != NULL && *s != set->default_value && *s != protobuf_c_empty_string)
                    free(*s);
                *s = NULL;
            } else {
                clear_value(set, base + set->offset);
            }
        }
        *which = 0;
        return;
    }
    clear_value(f, base + f->offset);
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_STRING &&
        f->type != PROTOBUF_C_TYPE_MESSAGE)
        *(protobuf_c_boolean *)(base + f->quantifier_offset) = 0;
}

static bridge_status type_error(dec *d, const ProtobufCFieldDescriptor *f, const char *want,
                                const mp_head *h)
{
    return DEC_FAIL(d, "field %s: expected %s, got msgpack %s", f->name, want, mp_kind_name(h->kind));
}

/* double -> float rounded to nearest, overflowing to infinity (a plain cast would be UB). */
static float narrow_float(double x)
{
    if (isfinite(x) && fabs(x) > FLT_MAX) {
        /* Half an ulp above FLT_MAX (2^103) and beyond rounds to infinity (ties to even). */
        if (fabs(x) >= (double)FLT_MAX + 0x1p103)
            return x > 0 ? INFINITY : -INFINITY;
        return x > 0 ? FLT_MAX : -FLT_MAX;
    }
    return (float)x;
}

/* Decodes one singular value of f (header already read into h) into member. */
static bridge_status dec_value(dec *d, const ProtobufCFieldDescriptor *f, const mp_head *h,
                               void *member, int depth)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_ENUM:
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64: {
        bool wide = bridge__repeated_elem_size(f->type) == 8;
        int64_t lo = wide ? INT64_MIN : INT32_MIN;
        uint64_t hi = wide ? (uint64_t)INT64_MAX : (uint64_t)INT32_MAX;
        int64_t x;
        if (h->kind == MP_UINT) {
            if (h->u > hi)
                return DEC_FAIL(d, "field %s: %llu out of range", f->name, (unsigned long long)h->u);
            x = (int64_t)h->u;
        } else if (h->kind == MP_INT) {
            if (h->i < lo)
                return DEC_FAIL(d, "field %s: %lld out of range", f->name, (long long)h->i);
            x = h->i;
        } else {
            return type_error(d, f, "an integer", h);
        }
        if (wide)
            *(int64_t *)member = x;
        else
            *(int32_t *)member = (int32_t)x;
        return BRIDGE_STATUS_OK;
    }
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: {
        bool wide = bridge__repeated_elem_size(f->type) == 8;
        if (h->kind == MP_INT)
            return DEC_FAIL(d, "field %s: %lld out of range", f->name, (long long)h->i);
        if (h->kind != MP_UINT)
            return type_error(d, f, "an integer", h);
        if (!wide && h->u > UINT32_MAX)
            return DEC_FAIL(d, "field %s: %llu out of range", f->name, (unsigned long long)h->u);
        if (wide)
            *(uint64_t *)member = h->u;
        else
            *(uint32_t *)member = (uint32_t)h->u;
        return BRIDGE_STATUS_OK;
    }
    case PROTOBUF_C_TYPE_BOOL:
        if (h->kind != MP_BOOL)
            return type_error(d, f, "a bool", h);
        *(protobuf_c_boolean *)member = h->u != 0;
        return BRIDGE_STATUS_OK;
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE:
        if (h->kind != MP_F32 && h->kind != MP_F64)
            return type_error(d, f, "a float", h);
        if (f->type == PROTOBUF_C_TYPE_FLOAT)
            *(float *)member = narrow_float(h->f);
        else
            *(double *)member = h->f;
        return BRIDGE_STATUS_OK;
    case PROTOBUF_C_TYPE_STRING: {
        if (h->kind != MP_STR)
            return type_error(d, f, "a str", h);
        if (!bridge__utf8_valid(d->p, h->u))
            return DEC_FAIL(d, "field %s: string is not valid UTF-8", f->name);
        if (memchr(d->p, 0, h->u) != NULL)
            return DEC_FAIL(d, "field %s: NUL characters cannot be held by protobuf-c strings", f->name);
        char *s = malloc(h->u + 1);
        if (s == NULL)
            return BRIDGE_STATUS_NO_MEMORY;
        memcpy(s, d->p, h->u);
        s[h->u] = '\0';
        d->p += h->u;
        *(char **)member = s;
        return BRIDGE_STATUS_OK;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        if (h->kind != MP_BIN)
            return type_error(d, f, "a bin", h);
        ProtobufCBinaryData *b = member;
        b->len = h->u;
        b->data = NULL;
        if (h->u > 0) {
            if ((b->data = malloc(h->u)) == NULL) {
                b->len = 0;
                return BRIDGE_STATUS_NO_MEMORY;
            }
            memcpy(b->data, d->p, h->u);
        }
        d->p += h->u;
        return BRIDGE_STATUS_OK;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        if (h->kind != MP_MAP)
            return type_error(d, f, "a map (message)", h);
        if (depth >= BRIDGE_MAX_DEPTH)
            return DEC_FAIL(d, "msgpack: messages nested deeper than %d", BRIDGE_MAX_DEPTH);
        const ProtobufCMessageDescriptor *sd = f->descriptor;
        ProtobufCMessage *sub = malloc(sd->sizeof_message);
        if (sub == NULL)
            return BRIDGE_STATUS_NO_MEMORY;
        sd->message_init(sub);
        *(ProtobufCMessage **)member = sub; /* owned by the parent from here on */
        return dec_message_body(d, sub, h->u, depth + 1);
    }
    }
    return DEC_FAIL(d, "field %s: unsupported type", f->name);
}

/* Orders a decoded map's entries by key, keeping the last of duplicate keys (freeing the rest). */
void bridge__dedupe_map(ProtobufCMessage **entries, size_t *count)
{
    size_t n = *count;
    if (n < 2)
        return;
    map_item *items = malloc(n * sizeof *items);
    bool *keep = calloc(n, sizeof *keep);
    if (items == NULL || keep == NULL) {
        free(items);
        free(keep);
        return; /* duplicates stay; the encoders dedupe again anyway */
    }
    size_t m = bridge__sorted_map_items(entries, n, items);
    for (size_t i = 0; i < m; i++)
        keep[items[i].index] = true;
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        if (keep[i])
            entries[w++] = entries[i];
        else
            protobuf_c_message_free_unpacked(entries[i], NULL);
    }
    *count = w;
    free(items);
    free(keep);
}

static bridge_status dec_field(dec *d, ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f,
                               int depth)
{
    char *base = (char *)msg;
    mp_head h;
    bridge_status st = dec_head(d, &h);
    if (st)
        return st;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        uint32_t set = *(const uint32_t *)(base + f->quantifier_offset);
        if (set != 0 && set != f->id) {
            /* nil unsets this member only, never the member that is set (wire contract 5.8). */
            if (h.kind == MP_NIL)
                return BRIDGE_STATUS_OK;
            return DEC_FAIL(d, "field %s: another member of its oneof is already set", f->name);
        }
    }
    clear_field(msg, f); /* a repeated key replaces the earlier value; nil leaves it unset */
    if (h.kind == MP_NIL)
        return BRIDGE_STATUS_OK;

    if (f->label != PROTOBUF_C_LABEL_REPEATED) {
        /* A oneof case is set first so that a half-decoded member is still freed with msg. */
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
            *(uint32_t *)(base + f->quantifier_offset) = f->id;
        if ((st = dec_value(d, f, &h, base + f->offset, depth)))
            return st;
        if (!(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) && f->label == PROTOBUF_C_LABEL_OPTIONAL &&
            f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE)
            *(protobuf_c_boolean *)(base + f->quantifier_offset) = 1;
        return BRIDGE_STATUS_OK;
    }

    size_t *count = (size_t *)(base + f->quantifier_offset);
    void **items = (void **)(base + f->offset);
    if (bridge__field_is_map(msg->descriptor, f)) {
        if (h.kind != MP_MAP)
            return type_error(d, f, "a map", &h);
        if (depth >= BRIDGE_MAX_DEPTH)
            return DEC_FAIL(d, "msgpack: messages nested deeper than %d", BRIDGE_MAX_DEPTH);
        const ProtobufCMessageDescriptor *ed = f->descriptor;
        ProtobufCMessage **entries = calloc(h.u ? h.u : 1, sizeof *entries);
        if (entries == NULL)
            return BRIDGE_STATUS_NO_MEMORY;
        *items = entries;
        for (uint64_t i = 0; i < h.u; i++) {
            ProtobufCMessage *entry = malloc(ed->sizeof_message);
            if (entry == NULL)
                return BRIDGE_STATUS_NO_MEMORY;
            ed->message_init(entry);
            entries[(*count)++] = entry;
            for (unsigned k = 0; k < 2; k++) {
                const ProtobufCFieldDescriptor *ef = &ed->fields[k];
                mp_head eh;
                if ((st = dec_head(d, &eh)))
                    return st;
                if (eh.kind == MP_NIL)
                    return DEC_FAIL(d, "field %s: nil map %s", f->name, k == 0 ? "key" : "value");
                if ((st = dec_value(d, ef, &eh, (char *)entry + ef->offset, depth + 1)))
                    return st;
            }
        }
        bridge__dedupe_map(entries, count);
        return BRIDGE_STATUS_OK;
    }

    if (h.kind != MP_ARRAY)
        return type_error(d, f, "an array", &h);
    size_t elem = bridge__repeated_elem_size(f->type);
    if ((*items = calloc(h.u ? h.u : 1, elem)) == NULL)
        return BRIDGE_STATUS_NO_MEMORY;
    for (uint64_t i = 0; i < h.u; i++) {
        mp_head eh;
        if ((st = dec_head(d, &eh)))
            return st;
        if (eh.kind == MP_NIL)
            return DEC_FAIL(d, "field %s: nil inside a repeated field", f->name);
        void *slot = (char *)*items + i * elem;
        if ((st = dec_value(d, f, &eh, slot, depth))) {
            if (f->type == PROTOBUF_C_TYPE_MESSAGE && *(void **)slot != NULL)
                (*count)++; /* the half-decoded message is freed with msg */
            return st;
        }
        (*count)++; /* counted only once complete, so a failure frees exactly what was made */
    }
    return BRIDGE_STATUS_OK;
}

static bridge_status dec_message_body(dec *d, ProtobufCMessage *msg, uint64_t entries, int depth)
{
    const ProtobufCMessageDescriptor *desc = msg->descriptor;
    for (uint64_t i = 0; i < entries; i++) {
        mp_head kh;
        bridge_status st = dec_head(d, &kh);
        if (st)
            return st;
        if (kh.kind != MP_STR)
            return DEC_FAIL(d, "%s: map key is a msgpack %s; field names must be str", desc->name,
                            mp_kind_name(kh.kind));
        char name[256];
        const ProtobufCFieldDescriptor *f = NULL;
        if (kh.u < sizeof name) {
            memcpy(name, d->p, kh.u);
            name[kh.u] = '\0';
            f = protobuf_c_message_descriptor_get_field_by_name(desc, name);
        }
        if (f == NULL && !bridge__utf8_valid(d->p, kh.u))
            return DEC_FAIL(d, "%s: a field name is not valid UTF-8", desc->name);
        d->p += kh.u;
        if (f == NULL && d->strict)
            return DEC_FAIL(d, "%s has no field \"%.*s\"", desc->name, (int)(kh.u < 60 ? kh.u : 60),
                            (const char *)d->p - kh.u);
        if (f == NULL) {
            if ((st = dec_skip(d))) /* unknown key: skipped */
                return st;
            continue;
        }
        if ((st = dec_field(d, msg, f, depth)))
            return st;
    }
    return BRIDGE_STATUS_OK;
}

bridge_status bridge__msgpack_decode(const ProtobufCMessageDescriptor *desc, const uint8_t *data,
                                     size_t len, ProtobufCMessage **out, char *err, size_t err_size)
{
    return bridge__msgpack_decode_as(desc, data, len, false, out, err, err_size);
}

bridge_status bridge__msgpack_decode_as(const ProtobufCMessageDescriptor *desc, const uint8_t *data,
                                        size_t len, bool strict, ProtobufCMessage **out, char *err,
                                        size_t err_size)
{
    dec d = {.p = data, .end = data + len, .err = err, .err_size = err_size, .strict = strict};
    /* Bare (8.1): zero bytes are only the message of a type without fields; for any other type
     * no encoder writes them, and a peer whose handler forgot to return sends exactly that. */
    if (strict && len == 0 && desc->n_fields > 0)
        return DEC_FAIL(&d, "an empty payload is not a bare MSGPACK %s (an empty message is written "
                            "0x80)", desc->name);
    mp_head h = {.kind = MP_MAP, .u = 0};
    bridge_status st = BRIDGE_STATUS_OK;
    /* Zero bytes are the message with every field unset (encoders still write 0x80). */
    if (len > 0 && (st = dec_head(&d, &h)))
        return st;
    if (h.kind != MP_MAP)
        return DEC_FAIL(&d, "%s: expected a msgpack map, got %s", desc->name, mp_kind_name(h.kind));
    ProtobufCMessage *msg = malloc(desc->sizeof_message);
    if (msg == NULL)
        return bridge__fail(BRIDGE_STATUS_NO_MEMORY, err, err_size, "out of memory");
    desc->message_init(msg);
    st = dec_message_body(&d, msg, h.u, 0);
    if (st == BRIDGE_STATUS_OK && d.p != d.end)
        st = DEC_FAIL(&d, "%s: %zu trailing bytes after the message", desc->name, dec_left(&d));
    if (st != BRIDGE_STATUS_OK) {
        protobuf_c_message_free_unpacked(msg, NULL);
        if (st == BRIDGE_STATUS_NO_MEMORY)
            bridge__fail(st, err, err_size, "out of memory");
        return st;
    }
    *out = msg;
    return BRIDGE_STATUS_OK;
}
