package dev.bridge.runtime;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.DynamicTest.dynamicTest;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import com.google.gson.JsonPrimitive;
import com.google.protobuf.Descriptors.Descriptor;
import com.google.protobuf.Descriptors.FieldDescriptor;
import com.google.protobuf.Message;
import com.google.protobuf.util.JsonFormat;
import dev.bridge.v1.Encoding;
import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

/**
 * The bare JSON codec against every case of schemas/testdata/bare_json_vectors.json (wire
 * contract, section 8.5). Written JSON is compared as parsed values: numbers by value, a float
 * field after rounding to float 32, key order ignored.
 */
class BareJsonVectorsTest {
    static JsonArray vectors() throws Exception {
        String text = Files.readString(TestSchemas.repoRoot().resolve("schemas/testdata/bare_json_vectors.json"));
        JsonElement root = JsonParser.parseString(text);
        return root.isJsonArray() ? root.getAsJsonArray() : root.getAsJsonObject().getAsJsonArray("cases");
    }

    @TestFactory
    Stream<DynamicTest> everyVector() throws Exception {
        List<DynamicTest> tests = new ArrayList<>();
        for (JsonElement e : vectors()) {
            JsonObject c = e.getAsJsonObject();
            String name = c.get("name").getAsString();
            Message prototype = TestSchemas.prototype(c.get("type").getAsString());
            if (flag(c, "invalid")) {
                tests.add(dynamicTest(name, () -> checkInvalid(c, prototype)));
            } else if (flag(c, "decode_only")) {
                tests.add(dynamicTest(name, () -> checkDecodeOnly(c, prototype)));
            } else {
                tests.add(dynamicTest(name, () -> checkValid(c, prototype)));
            }
        }
        assertTrue(tests.size() >= 100, "expected the full vector file, got " + tests.size() + " cases");
        return tests.stream();
    }

    private static boolean flag(JsonObject c, String key) {
        return c.has(key) && c.get(key).getAsBoolean();
    }

    /** The case's canonical {@code json}, read by protobuf-java-util. */
    private static Message fromJson(JsonObject c, Message prototype) throws Exception {
        Message.Builder builder = prototype.newBuilderForType();
        JsonFormat.parser().merge(c.get("json").toString(), builder);
        return builder.build();
    }

    private static Message decode(byte[] payload, Message prototype) throws DecodeException {
        return Codecs.decodeBare(payload, 0, payload.length, Encoding.JSON, prototype);
    }

    private static void checkValid(JsonObject c, Message prototype) throws Exception {
        JsonElement expected = c.get("bare_json");
        Descriptor type = prototype.getDescriptorForType();
        // The bare JSON reads as the message, which writes the same JSON again...
        Message read = decode(expected.toString().getBytes(StandardCharsets.UTF_8), prototype);
        assertJsonEquals(expected, written(read), type, "$");
        // ...and that message is the case's canonical json (compared as written JSON: map order
        // is not significant). JsonFormat's reader turns -0.0 into 0.0: there the comparison
        // above, which tells -0.0 from 0.0, is the check.
        if (!c.get("json").toString().contains("-0.0")) {
            Message reference = fromJson(c, prototype);
            assertJsonEquals(written(reference), written(read), type, "$");
            // The canonical message writes the bare JSON.
            assertJsonEquals(expected, written(reference), type, "$");
        }
    }

    private static JsonElement written(Message message) {
        String text = new String(Codecs.encodeBare(message, Encoding.JSON), StandardCharsets.UTF_8);
        return JsonParser.parseString(text);
    }

    private static void checkDecodeOnly(JsonObject c, Message prototype) throws Exception {
        byte[] payload = c.get("bare_json_text").getAsString().getBytes(StandardCharsets.UTF_8);
        assertJsonEquals(written(fromJson(c, prototype)), written(decode(payload, prototype)),
                prototype.getDescriptorForType(), "$");
    }

    private static void checkInvalid(JsonObject c, Message prototype) {
        byte[] payload = c.has("bare_json_text_hex") ? TestSchemas.hex(c.get("bare_json_text_hex").getAsString())
                : c.get("bare_json_text").getAsString().getBytes(StandardCharsets.UTF_8);
        DecodeException e = assertThrows(DecodeException.class, () -> decode(payload, prototype));
        assertTrue(e.getMessage().startsWith("not a JSON "), e.getMessage());
    }

    // --------------------------------------------------------------------- JSON comparison

    static void assertJsonEquals(JsonElement expected, JsonElement actual, Descriptor type, String path) {
        assertTrue(expected.isJsonObject() && actual.isJsonObject(), path + ": " + expected + " vs " + actual);
        JsonObject e = expected.getAsJsonObject();
        JsonObject a = actual.getAsJsonObject();
        assertEquals(new TreeSet<>(e.keySet()), new TreeSet<>(a.keySet()), path + ": keys");
        for (Map.Entry<String, JsonElement> entry : e.entrySet()) {
            FieldDescriptor field = type.findFieldByName(entry.getKey());
            String at = path + "." + entry.getKey();
            JsonElement av = a.get(entry.getKey());
            if (field.isMapField()) {
                JsonObject em = entry.getValue().getAsJsonObject();
                JsonObject am = av.getAsJsonObject();
                assertEquals(new TreeSet<>(em.keySet()), new TreeSet<>(am.keySet()), at + ": map keys");
                FieldDescriptor valueField = field.getMessageType().findFieldByNumber(2);
                for (String k : em.keySet()) {
                    assertValueEquals(valueField, em.get(k), am.get(k), at + "[" + k + "]");
                }
            } else if (field.isRepeated()) {
                JsonArray ea = entry.getValue().getAsJsonArray();
                JsonArray aa = av.getAsJsonArray();
                assertEquals(ea.size(), aa.size(), at + ": length");
                for (int i = 0; i < ea.size(); i++) {
                    assertValueEquals(field, ea.get(i), aa.get(i), at + "[" + i + "]");
                }
            } else {
                assertValueEquals(field, entry.getValue(), av, at);
            }
        }
    }

    private static void assertValueEquals(FieldDescriptor field, JsonElement e, JsonElement a, String at) {
        if (field.getJavaType() == FieldDescriptor.JavaType.MESSAGE
                && !field.getMessageType().getFullName().startsWith("google.protobuf.")) {
            assertJsonEquals(e, a, field.getMessageType(), at);
            return;
        }
        boolean numbers = e.isJsonPrimitive() && e.getAsJsonPrimitive().isNumber();
        if (!numbers) {
            assertEquals(e, a, at);
            return;
        }
        assertTrue(a.isJsonPrimitive() && a.getAsJsonPrimitive().isNumber(), at + ": " + a + " is not a number");
        switch (field.getJavaType()) {
            case FLOAT -> assertEquals(Float.floatToIntBits((float) e.getAsDouble()),
                    Float.floatToIntBits((float) a.getAsDouble()), at + ": " + e + " vs " + a);
            case DOUBLE -> assertEquals(Double.doubleToLongBits(e.getAsDouble()),
                    Double.doubleToLongBits(a.getAsDouble()), at + ": " + e + " vs " + a);
            default -> assertEquals(0, new BigDecimal(e.getAsString()).compareTo(new BigDecimal(a.getAsString())),
                    at + ": " + e + " vs " + a);
        }
    }

    // ---------------------------------------------------------------------------- more cases

    @Test
    void deepArraysAreRefusedNotAStackOverflow() throws Exception {
        Message prototype = TestSchemas.prototype("bridge.interop.v1.Composite");
        byte[] deep = ("{\"items\":" + "[".repeat(200_000)).getBytes(StandardCharsets.UTF_8);
        DecodeException e = assertThrows(DecodeException.class, () -> decode(deep, prototype));
        assertTrue(e.getMessage().contains("deeper"), e.getMessage());
    }

    @Test
    void emptyArrayIsTheEmptyMessageAndZeroBytesOnlyForAFieldlessType() throws Exception {
        Message prototype = TestSchemas.prototype("bridge.interop.v1.Scalars");
        // Zero bytes (a failed json_encode, a forgotten return) for a type with fields: refused (8.1).
        assertThrows(DecodeException.class, () -> decode(new byte[0], prototype));
        assertThrows(DecodeException.class,
                () -> Codecs.decodeBare(new byte[0], 0, 0, Encoding.MSGPACK, prototype));
        Message empty = TestSchemas.prototype("bridge.interop.v1.Empty");
        assertEquals(empty, decode(new byte[0], empty));
        assertEquals(empty, Codecs.decodeBare(new byte[0], 0, 0, Encoding.MSGPACK, empty));
        assertEquals(prototype, Codecs.decodeBare(new byte[0], 0, 0, Encoding.PROTOBUF, prototype));
        assertEquals(prototype, decode("[]".getBytes(StandardCharsets.UTF_8), prototype));
        assertEquals(prototype, decode(" {} ".getBytes(StandardCharsets.UTF_8), prototype));
    }

    @Test
    void stricterThanJsonFormat() throws Exception {
        Message prototype = TestSchemas.prototype("bridge.interop.v1.Scalars");
        for (String text : List.of("{\"f_int32\": [5]}", "{\"f_string\": true}", "{\"f_bytes\": 5}",
                "{\"f_double\": \"0x1p3\"}", "{\"f_float\": 1e39}", "{\"f_double\": 1e400}", "{\"f_enum\": true}",
                "{'f_int32': 1}", "{\"f_int32\": 1,}", "{\"f_int32\": 1, \"fInt32\": 2}",
                "{\"f_string\": \"\\ud800\"}", "{\"f_string\": \"a\u0001\"}", "{\"f_double\": \".5\"}")) {
            byte[] payload = text.getBytes(StandardCharsets.UTF_8);
            assertThrows(DecodeException.class, () -> decode(payload, prototype), text);
        }
    }

    @Test
    void bareMsgpackRefusesUnknownKeysAtEveryLevel() throws Exception {
        Message inner = TestSchemas.prototype("bridge.interop.v1.Composite");
        // {"text": "t", "zzz": 1} and {"inner": {"zzz": 1}}: skipped inside an envelope, refused bare
        for (String hex : List.of("82a474657874a174a37a7a7a01", "81a5696e6e657281a37a7a7a01")) {
            byte[] payload = TestSchemas.hex(hex);
            MsgpackCodec.decode(payload, inner);
            DecodeException e = assertThrows(DecodeException.class,
                    () -> Codecs.decodeBare(payload, 0, payload.length, Encoding.MSGPACK, inner));
            assertTrue(e.getMessage().contains("unknown key 'zzz'"), e.getMessage());
        }
    }

    @Test
    void rawCarriesTheOnlyField() throws Exception {
        Message bytes = TestSchemas.prototype("bridge.interop.v1.RawBytes");
        byte[] payload = {0, (byte) 0xff, 'a'};
        Message m = Codecs.decodeBare(payload, 0, payload.length, Encoding.RAW, bytes);
        assertArrayEquals(payload, Codecs.encodeBare(m, Encoding.RAW));
        Message text = TestSchemas.prototype("bridge.interop.v1.RawText");
        byte[] utf8 = "h\u00e9".getBytes(StandardCharsets.UTF_8);
        Message t = Codecs.decodeBare(utf8, 0, utf8.length, Encoding.RAW, text);
        assertEquals("h\u00e9", t.getField(text.getDescriptorForType().getFields().get(0)));
        assertArrayEquals(utf8, Codecs.encodeBare(t, Encoding.RAW));
        byte[] bad = {(byte) 0xff};
        assertThrows(DecodeException.class, () -> Codecs.decodeBare(bad, 0, 1, Encoding.RAW, text));
    }
}
