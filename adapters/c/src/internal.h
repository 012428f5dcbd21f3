/* Private declarations shared by libbridge's source files. */
#ifndef BRIDGE_INTERNAL_H
#define BRIDGE_INTERNAL_H

#include <stdarg.h>

#include "bridge/bridge.h"

/* Private to libbridge: not exported from libbridge.so. */
#pragma GCC visibility push(hidden)

/* Nesting limit for decoded messages (protobuf's own default): deeper input is malformed. */
#define BRIDGE_MAX_DEPTH 100

/* printf into err (when not NULL); always returns `status` for tail calls. */
bridge_status bridge__fail(bridge_status status, char *err, size_t err_size, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

bridge_status bridge__buffer_reserve(bridge_buffer *buf, size_t extra);
bridge_status bridge__buffer_append(bridge_buffer *buf, const void *data, size_t len);

/* True when [s, s+len) is well-formed UTF-8 (no surrogates, no overlongs). */
bool bridge__utf8_valid(const uint8_t *s, size_t len);

/* True when `field` (repeated message) is a protobuf map<K,V> field of `owner`. */
bool bridge__field_is_map(const ProtobufCMessageDescriptor *owner, const ProtobufCFieldDescriptor *field);

/* Whether a singular/oneof/optional field is set, by the presence rules of the wire contract. */
bool bridge__field_present(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *field);

bridge_status bridge__msgpack_encode(const ProtobufCMessage *msg, bridge_buffer *out, char *err,
                                     size_t err_size);
bridge_status bridge__msgpack_decode(const ProtobufCMessageDescriptor *desc, const uint8_t *data,
                                     size_t len, ProtobufCMessage **out, char *err, size_t err_size);
/* `strict`: a key the message type does not have is a decoding error (bare MSGPACK, 8.1). */
bridge_status bridge__msgpack_decode_as(const ProtobufCMessageDescriptor *desc, const uint8_t *data,
                                        size_t len, bool strict, ProtobufCMessage **out, char *err,
                                        size_t err_size);
bridge_status bridge__protobuf_encode(const ProtobufCMessage *msg, bridge_buffer *out, char *err,
                                      size_t err_size);
bridge_status bridge__protobuf_decode(const ProtobufCMessageDescriptor *desc, const uint8_t *data,
                                      size_t len, ProtobufCMessage **out, char *err,
                                      size_t err_size);

bridge_status bridge__json_encode(const ProtobufCMessage *msg, bridge_buffer *out, char *err,
                                  size_t err_size);
bridge_status bridge__json_decode(const ProtobufCMessageDescriptor *desc, const uint8_t *data,
                                  size_t len, ProtobufCMessage **out, char *err, size_t err_size);
/* JSON text parsed as the JSON codec reads it (integer literals beyond int64 become strings
 * "\u0000<literal>"); NULL with a reason in err when it is not JSON. For the codec and tests. */
struct json_t;
struct json_t *bridge__json_parse(const uint8_t *data, size_t len, char *err, size_t err_size);
/* The one field a RAW payload stands for: a message's only field, a singular bytes or string
 * outside any oneof; NULL when the message has another shape. */
const ProtobufCFieldDescriptor *bridge__raw_field(const ProtobufCMessageDescriptor *desc);

bridge_status bridge__raw_decode(const ProtobufCMessageDescriptor *desc, const uint8_t *data,
                                 size_t len, ProtobufCMessage **out, char *err, size_t err_size);
bridge_status bridge__raw_encode(const ProtobufCMessage *msg, bridge_buffer *out, char *err,
                                 size_t err_size);

/* Orders a decoded map's entries by key, keeping the last of duplicate keys (freeing the rest). */
void bridge__dedupe_map(ProtobufCMessage **entries, size_t *count);

/* The protobuf wire type a singular value of `type` is written with (0, 1, 2 or 5). */
int bridge__pb_wire_type(ProtobufCType type);

/* A map field's entries sorted by key as the msgpack mapping orders them; with duplicate keys the
 * last one wins. Fills `items` (count of them) and returns how many distinct entries it holds. */
typedef struct map_item {
    const ProtobufCMessage *entry;
    size_t index;
} map_item;
size_t bridge__sorted_map_items(ProtobufCMessage *const *entries, size_t count, map_item *items);

/* Element size of one repeated value of `type` inside protobuf-c's arrays. */
size_t bridge__repeated_elem_size(ProtobufCType type);

#pragma GCC visibility pop

#endif
