/*
 * RAW, the bare encoding of a message with one bytes or string field (wire contract, section
 * 8.1): the payload is that field's bytes (a string's must be UTF-8, and without NUL here:
 * protobuf-c strings end at it). Zero bytes are the empty message, an optional field unset.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

const ProtobufCFieldDescriptor *bridge__raw_field(const ProtobufCMessageDescriptor *desc)
{
    if (desc == NULL || desc->n_fields != 1)
        return NULL;
    const ProtobufCFieldDescriptor *f = &desc->fields[0];
    /* A oneof here is proto3 `optional`'s (the only field: the generator refuses real oneofs). */
    if ((f->type != PROTOBUF_C_TYPE_BYTES && f->type != PROTOBUF_C_TYPE_STRING) ||
        f->label == PROTOBUF_C_LABEL_REPEATED)
        return NULL;
    return f;
}

/* RAW: the payload is the bytes of the message's only field (a string's as UTF-8). */
bridge_status bridge__raw_decode(const ProtobufCMessageDescriptor *desc, const uint8_t *data,
                                size_t len, ProtobufCMessage **out, char *err, size_t err_size)
{
    const ProtobufCFieldDescriptor *f = bridge__raw_field(desc);
    if (f == NULL)
        return bridge__fail(BRIDGE_STATUS_INVALID, err, err_size,
                            "%s cannot be RAW: it needs exactly one bytes or string field", desc->name);
    if (f->type == PROTOBUF_C_TYPE_STRING) {
        if (!bridge__utf8_valid(data, len))
            return bridge__fail(BRIDGE_STATUS_DECODE_ERROR, err, err_size,
                                "not a RAW %s: %s is a string and the payload is not UTF-8",
                                desc->name, f->name);
        if (memchr(data, 0, len) != NULL)
            return bridge__fail(BRIDGE_STATUS_DECODE_ERROR, err, err_size,
                                "not a RAW %s: NUL characters cannot be held by protobuf-c strings",
                                desc->name);
    }
    bool presence = (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) || f->label == PROTOBUF_C_LABEL_OPTIONAL;
    ProtobufCMessage *msg = malloc(desc->sizeof_message);
    if (msg == NULL)
        return bridge__fail(BRIDGE_STATUS_NO_MEMORY, err, err_size, "out of memory");
    desc->message_init(msg);
    if (len == 0 && presence) { /* zero bytes: every field unset, an optional one too (8.1) */
        *out = msg;
        return BRIDGE_STATUS_OK;
    }
    uint8_t *copy = NULL;
    if (len > 0 || f->type == PROTOBUF_C_TYPE_STRING) {
        if ((copy = malloc(len + 1)) == NULL) {
            free(msg);
            return bridge__fail(BRIDGE_STATUS_NO_MEMORY, err, err_size, "out of memory");
        }
        memcpy(copy, data, len);
        copy[len] = '\0';
    }
    char *member = (char *)msg + f->offset;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        *(uint32_t *)((char *)msg + f->quantifier_offset) = f->id;
    if (f->type == PROTOBUF_C_TYPE_STRING) {
        *(char **)member = (char *)copy;
    } else {
        ((ProtobufCBinaryData *)member)->data = copy;
        ((ProtobufCBinaryData *)member)->len = len;
        if (f->label == PROTOBUF_C_LABEL_OPTIONAL && !(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
            *(protobuf_c_boolean *)((char *)msg + f->quantifier_offset) = 1;
    }
    *out = msg;
    return BRIDGE_STATUS_OK;
}

bridge_status bridge__raw_encode(const ProtobufCMessage *msg, bridge_buffer *out, char *err,
                                size_t err_size)
{
    const ProtobufCFieldDescriptor *f = bridge__raw_field(msg->descriptor);
    if (f == NULL)
        return bridge__fail(BRIDGE_STATUS_INVALID, err, err_size,
                            "%s cannot be RAW: it needs exactly one bytes or string field",
                            msg->descriptor->name);
    if (!bridge__field_present(msg, f))
        return BRIDGE_STATUS_OK; /* unset (or empty): zero bytes */
    const char *member = (const char *)msg + f->offset;
    if (f->type == PROTOBUF_C_TYPE_BYTES) {
        const ProtobufCBinaryData *b = (const ProtobufCBinaryData *)member;
        return bridge__buffer_append(out, b->data, b->len);
    }
    const char *s = *(const char *const *)member;
    size_t len = s ? strlen(s) : 0;
    if (!bridge__utf8_valid((const uint8_t *)s, len))
        return bridge__fail(BRIDGE_STATUS_ENCODE_ERROR, err, err_size,
                            "field %s: string is not valid UTF-8", f->name);
    return bridge__buffer_append(out, s, len);
}
