package dev.bridge.runtime;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.DynamicTest.dynamicTest;

import com.google.protobuf.ByteString;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.Message;
import com.google.protobuf.UnknownFieldSet;
import com.google.protobuf.util.JsonFormat;
import dev.bridge.v1.Encoding;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

/**
 * The codecs against every case of schemas/testdata/vectors.json (wire contract, section 6).
 * The protobuf bytes, decoded by protobuf-java, are the reference message of each case.
 */
class MsgpackVectorsTest {
    @SuppressWarnings("unchecked")
    static List<Map<String, Object>> vectors() throws Exception {
        String text = Files.readString(TestSchemas.repoRoot().resolve("schemas/testdata/vectors.json"));
        return (List<Map<String, Object>>) Json.parse(text);
    }

    @TestFactory
    Stream<DynamicTest> everyVector() throws Exception {
        List<DynamicTest> tests = new ArrayList<>();
        for (Map<String, Object> c : vectors()) {
            String name = (String) c.get("name");
            Message prototype = TestSchemas.prototype((String) c.get("type"));
            if (Boolean.TRUE.equals(c.get("invalid"))) {
                tests.add(dynamicTest(name, () -> checkInvalid(c, prototype)));
            } else if (Boolean.TRUE.equals(c.get("decode_only"))) {
                tests.add(dynamicTest(name, () -> checkDecodeOnly(c, prototype)));
            } else {
                tests.add(dynamicTest(name, () -> checkValid(c, prototype)));
            }
        }
        assertTrue(tests.size() >= 100, "expected the full vector file, got " + tests.size() + " cases");
        return tests.stream();
    }

    private static void checkValid(Map<String, Object> c, Message prototype) throws Exception {
        byte[] protobuf = TestSchemas.hex((String) c.get("protobuf_hex"));
        byte[] msgpack = TestSchemas.hex((String) c.get("msgpack_hex"));
        Message reference = prototype.getParserForType().parseFrom(protobuf);

        // msgpack encoding is byte-exact...
        assertEquals(TestSchemas.hex(msgpack), TestSchemas.hex(MsgpackCodec.encode(reference)), "msgpack encoding");
        // ...and decodes back to the same message (compared through canonical bytes, so NaN == NaN).
        Message decoded = MsgpackCodec.decode(msgpack, prototype);
        assertEquals(TestSchemas.hex(MsgpackCodec.encode(reference)), TestSchemas.hex(MsgpackCodec.encode(decoded)));
        assertEquals(reference.getAllFields().keySet(), decoded.getAllFields().keySet(), "fields set");
        if (!"float_nan".equals(c.get("name"))) {
            assertEquals(reference, decoded, "msgpack decoding");
        }
        // Through the envelope's decoder too, as a worker reads a body.
        Message viaCodecs = Codecs.decode(ByteString.copyFrom(msgpack), Encoding.MSGPACK, prototype);
        assertEquals(TestSchemas.hex(msgpack), TestSchemas.hex(MsgpackCodec.encode(viaCodecs)));

        if (Boolean.TRUE.equals(c.get("canonical_protobuf"))) {
            assertEquals(TestSchemas.hex(protobuf), TestSchemas.hex(reference.toByteArray()), "canonical protobuf");
            assertEquals(TestSchemas.hex(protobuf), TestSchemas.hex(decoded.toByteArray()), "protobuf of the msgpack-decoded");
        }
    }

    /**
     * The case's {@code json} (protobuf's canonical JSON) as a message, read by protobuf-java-util
     * (whose parser turns -0.0 into 0.0: fine for the decode-only cases, which hold none).
     */
    static Message fromJson(Map<String, Object> c, Message prototype) throws Exception {
        Message.Builder builder = prototype.newBuilderForType();
        JsonFormat.parser().merge(Json.write(c.get("json")), builder);
        return builder.build();
    }

    /** Bytes no encoder writes (wire contract, section 6): they decode to the case's json. */
    private static void checkDecodeOnly(Map<String, Object> c, Message prototype) throws Exception {
        Message expected = fromJson(c, prototype);
        if (c.containsKey("protobuf_hex")) {
            byte[] protobuf = TestSchemas.hex((String) c.get("protobuf_hex"));
            Message decoded = Codecs.decode(ByteString.copyFrom(protobuf), Encoding.PROTOBUF, prototype);
            // Skipped fields (a wrong wire type) stay as unknown fields, as in protobuf-java itself.
            assertEquals(expected, withoutUnknownFields(decoded), "protobuf decoding");
        } else {
            byte[] msgpack = TestSchemas.hex((String) c.get("msgpack_hex"));
            assertEquals(expected, MsgpackCodec.decode(msgpack, prototype), "msgpack decoding");
            assertEquals(expected, Codecs.decode(ByteString.copyFrom(msgpack), Encoding.MSGPACK, prototype),
                    "msgpack decoding through the envelope's decoder");
        }
    }

    static Message withoutUnknownFields(Message message) {
        return message.toBuilder().setUnknownFields(UnknownFieldSet.getDefaultInstance()).build();
    }

    private static void checkInvalid(Map<String, Object> c, Message prototype) {
        if (c.containsKey("msgpack_hex")) {
            byte[] msgpack = TestSchemas.hex((String) c.get("msgpack_hex"));
            assertThrows(DecodeException.class, () -> MsgpackCodec.decode(msgpack, prototype));
            assertThrows(DecodeException.class,
                    () -> Codecs.decode(ByteString.copyFrom(msgpack), Encoding.MSGPACK, prototype));
        } else {
            byte[] protobuf = TestSchemas.hex((String) c.get("protobuf_hex"));
            assertThrows(InvalidProtocolBufferException.class, () -> prototype.getParserForType().parseFrom(protobuf));
            assertThrows(DecodeException.class,
                    () -> Codecs.decode(ByteString.copyFrom(protobuf), Encoding.PROTOBUF, prototype));
        }
    }

    @Test
    void emptyPayloadDecodesAsTheEmptyMessage() throws Exception {
        Message prototype = TestSchemas.prototype("bridge.interop.v1.Scalars");
        assertEquals(prototype, MsgpackCodec.decode(new byte[0], prototype));
        assertEquals("80", TestSchemas.hex(MsgpackCodec.encode(prototype)));
    }

    @Test
    void deepNestingIsRefusedNotAStackOverflow() throws Exception {
        Message prototype = TestSchemas.prototype("bridge.interop.v1.Composite");
        // {"child": {"child": ... }} 5000 levels deep
        StringBuilder hex = new StringBuilder();
        for (int i = 0; i < 5000; i++) {
            hex.append("81a56368696c64");
        }
        hex.append("80");
        byte[] deep = TestSchemas.hex(hex.toString());
        DecodeException e = assertThrows(DecodeException.class, () -> MsgpackCodec.decode(deep, prototype));
        assertTrue(e.getMessage().contains("deeper"), e.getMessage());
    }

    @Test
    void hugeAnnouncedLengthsFailWithoutAllocating() throws Exception {
        Message prototype = TestSchemas.prototype("bridge.interop.v1.Blob");
        // {"data": bin32 of 2 GiB} with 3 bytes behind it
        byte[] lie = TestSchemas.hex("81a464617461c67fffffff010203");
        assertThrows(DecodeException.class, () -> MsgpackCodec.decode(lie, prototype));
        // an array of 2^31-1 elements announced in a few bytes
        Message composite = TestSchemas.prototype("bridge.interop.v1.Composite");
        byte[] array = TestSchemas.hex("81a76e756d62657273dd7fffffff01");
        assertThrows(DecodeException.class, () -> MsgpackCodec.decode(array, composite));
    }

    @Test
    void unknownKeysAreSkippedAndNilMeansUnset() throws Exception {
        Message prototype = TestSchemas.prototype("bridge.interop.v1.Inner");
        // {"zzz": [1, {"a": 2}], "name": nil, "value": 5}
        byte[] bytes = TestSchemas.hex("83a37a7a7a9201 81a16102 a46e616d65c0 a576616c756505".replace(" ", ""));
        Message m = MsgpackCodec.decode(bytes, prototype);
        assertEquals("81a576616c756505", TestSchemas.hex(MsgpackCodec.encode(m)));
    }
}
