/*
 * The bridge.v1.Request envelope (wire contract, section 2), decoded without copying its body.
 */
#include <stdlib.h>
#include <string.h>

#include "job.h"

static bool read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t x = 0;
    for (int shift = 0; shift < 70 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return true;
        }
    }
    return false;
}

/*
 * Decodes the Request envelope without copying its body: the top-level fields other than `body`
 * (small) are copied into a scratch buffer and unpacked by protobuf-c, which checks them, while
 * the body stays where the connection received it (*body points into `payload`). Anything the scan does not
 * understand is left in the scratch buffer for protobuf-c to reject.
 */
bridge_status bridge__decode_envelope(const uint8_t *payload, size_t size,
                                     ProtobufCMessage **envelope, ProtobufCBinaryData *body,
                                     char *err, size_t err_size)
{
    uint8_t *rest = malloc(size ? size : 1);
    if (rest == NULL)
        return bridge__fail(BRIDGE_STATUS_NO_MEMORY, err, err_size, "out of memory");
    size_t rest_len = 0;
    const uint8_t *p = payload, *end = payload + size;
    body->data = NULL;
    body->len = 0;
    while (p < end) {
        const uint8_t *field = p;
        uint64_t key, len;
        if (!read_varint(&p, end, &key))
            goto copy_all;
        if (key == ((5 << 3) | 2)) {
            if (!read_varint(&p, end, &len) || len > (uint64_t)(end - p))
                goto copy_all;
            body->data = (uint8_t *)p; /* the last body wins, as in protobuf */
            body->len = (size_t)len;
            p += len;
            continue;
        }
        /* Any other field is copied as it is; what cannot be skipped ends the scan and is
         * copied whole, for protobuf-c to judge. */
        switch (key & 7) {
        case 0:
            if (!read_varint(&p, end, &len))
                goto copy_all;
            break;
        case 1:
            if (end - p < 8)
                goto copy_all;
            p += 8;
            break;
        case 5:
            if (end - p < 4)
                goto copy_all;
            p += 4;
            break;
        case 2:
            if (!read_varint(&p, end, &len) || len > (uint64_t)(end - p))
                goto copy_all;
            p += len;
            break;
        default:
            goto copy_all;
        }
        memcpy(rest + rest_len, field, (size_t)(p - field));
        rest_len += (size_t)(p - field);
        continue;
    copy_all:
        memcpy(rest + rest_len, field, (size_t)(end - field));
        rest_len += (size_t)(end - field);
        break;
    }
    bridge_status st = bridge_decode(&bridge__v1__request__descriptor, BRIDGE_ENCODING_PROTOBUF,
                                     rest, rest_len, envelope, err, err_size);
    free(rest);
    return st;
}
