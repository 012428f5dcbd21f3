/*
 * Decodes messages given one per line on stdin, "TYPE ENCODING HEX" (HEX "-" for no bytes), and
 * prints one line each: "OK <the message as canonical msgpack, hex>" or "ERR <reason>". The
 * differential test (tests/adapters/test_c_runtime.py) feeds it the same bytes as the Python
 * codecs to check that both runtimes give the same answer. ENCODING is protobuf, msgpack or json
 * (the bare JSON mapping); msgpack>json reads msgpack and answers with the bare JSON written.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge/bridge.h"
#include "bridge/v1/envelope.pb-c.h"
#include "interop/v1/interop.pb-c.h"

static const ProtobufCMessageDescriptor *const all[] = {
    &bridge__interop__v1__scalars__descriptor, &bridge__interop__v1__composite__descriptor,
    &bridge__interop__v1__blob__descriptor,    &bridge__interop__v1__empty__descriptor,
    &bridge__interop__v1__who_am_ireply__descriptor, &bridge__interop__v1__inner__descriptor,
    &bridge__interop__v1__stream_item__descriptor, &bridge__v1__request__descriptor,
    &bridge__v1__error__descriptor};

int main(void)
{
    static char text[1 << 21];
    static uint8_t data[1 << 20];
    char type[128], encoding[16];
    while (scanf("%127s %15s %2097151s", type, encoding, text) == 3) {
        const ProtobufCMessageDescriptor *desc = NULL;
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
            if (strcmp(all[i]->name, type) == 0)
                desc = all[i];
        size_t n = strcmp(text, "-") == 0 ? 0 : strlen(text) / 2;
        for (size_t i = 0; i < n; i++) {
            unsigned v;
            sscanf(text + 2 * i, "%2x", &v);
            data[i] = (uint8_t)v;
        }
        if (desc == NULL) {
            printf("ERR unknown type %s\n", type);
            continue;
        }
        ProtobufCMessage *msg = NULL;
        char err[256] = "";
        /* "msgpack>json": read msgpack, answer the message written as bare JSON */
        bool to_json = strcmp(encoding, "msgpack>json") == 0;
        bridge_encoding enc = strcmp(encoding, "protobuf") == 0 ? BRIDGE_ENCODING_PROTOBUF
                              : strcmp(encoding, "json") == 0   ? BRIDGE_ENCODING_JSON
                                                                 : BRIDGE_ENCODING_MSGPACK;
        if (bridge_decode(desc, enc, data, n, &msg, err, sizeof err) != BRIDGE_STATUS_OK) {
            for (char *c = err; *c; c++)
                if (*c == '\n' || *c == '\r')
                    *c = ' '; /* one answer per line (a reason may quote the input) */
            printf("ERR %s\n", err);
            continue;
        }
        bridge_buffer out = BRIDGE_BUFFER_INIT;
        if (bridge_encode(msg, to_json ? BRIDGE_ENCODING_JSON : BRIDGE_ENCODING_MSGPACK, &out, err,
                          sizeof err) != BRIDGE_STATUS_OK) {
            printf("ERR %s\n", err);
            bridge_buffer_free(&out);
            bridge_message_free(msg);
            continue;
        }
        printf("OK ");
        for (size_t i = 0; i < out.len; i++)
            printf("%02x", out.data[i]);
        printf("\n");
        bridge_buffer_free(&out);
        bridge_message_free(msg);
    }
    return 0;
}
