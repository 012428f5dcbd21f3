package dev.bridge.runtime;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import com.google.protobuf.ByteString;
import com.google.protobuf.DynamicMessage;
import dev.bridge.runtime.gearman.GearmanWorker;
import dev.bridge.runtime.gearman.PacketType;
import dev.bridge.v1.Code;
import dev.bridge.v1.Encoding;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Bare methods (wire contract, section 8) served to a raw Gearman client through a real gearmand. */
@Timeout(60)
class BareWorkerTest {
    private static final GearmanWorker.Settings FAST = new GearmanWorker.Settings(Duration.ofSeconds(2),
            Duration.ofSeconds(10), Duration.ofMillis(50), Duration.ofSeconds(5), Duration.ofMillis(20),
            Duration.ofMillis(200), Duration.ofSeconds(10));

    private Gearmand gearmand;
    private Worker worker;
    private DynamicMessage blob;
    private DynamicMessage empty;
    private DynamicMessage whoAmI;
    private DynamicMessage rawText;

    @BeforeEach
    void setUp() throws Exception {
        gearmand = new Gearmand();
        blob = (DynamicMessage) TestSchemas.prototype("bridge.interop.v1.Blob");
        empty = (DynamicMessage) TestSchemas.prototype("bridge.interop.v1.Empty");
        whoAmI = (DynamicMessage) TestSchemas.prototype("bridge.interop.v1.WhoAmIReply");
        rawText = (DynamicMessage) TestSchemas.prototype("bridge.interop.v1.RawText");
        worker = Worker.builder().servers(gearmand.address()).maxRequestBytes(1000).clientId("java-bare-test")
                .connectionSettings(FAST).build();
        for (Encoding e : List.of(Encoding.JSON, Encoding.MSGPACK, Encoding.PROTOBUF)) {
            worker.register(Rpc.bare("b.echo_" + e, blob, blob, e), (request, ctx) -> {
                ctx.warn("w \u2713");
                ctx.progress(1, 2);
                return request;
            });
            worker.register(Rpc.bare("b.coded_" + e, empty, empty, e), (request, ctx) -> {
                throw new BridgeException(Code.NOT_FOUND, "no such th\u00efng");
            });
            worker.register(Rpc.bare("b.native_" + e, empty, empty, e), (request, ctx) -> {
                throw new IllegalStateException("native trouble");
            });
        }
        worker.register(Rpc.bare("b.fail", empty, empty, Encoding.JSON), (request, ctx) -> {
            throw new JobFailedException();
        });
        Rpc<DynamicMessage, DynamicMessage> unimplemented = Rpc.bare("b.unimplemented", empty, empty, Encoding.JSON);
        worker.register(unimplemented, (request, ctx) -> {
            throw unimplemented.unimplemented();
        });
        worker.register(Rpc.bare("b.whoami", empty, whoAmI, Encoding.JSON), (request, ctx) -> whoAmI.toBuilder()
                .setField(whoAmI.getDescriptorForType().findFieldByName("language"), "java")
                .setField(whoAmI.getDescriptorForType().findFieldByName("deadline_ms"), ctx.deadlineMillis()
                        + ctx.metadata().size())
                .build());
        worker.register(Rpc.bare("b.reverse", rawText, rawText, Encoding.RAW), (request, ctx) -> {
            var field = rawText.getDescriptorForType().getFields().get(0);
            String text = (String) request.getField(field);
            return rawText.toBuilder().setField(field, new StringBuilder(text).reverse().toString()).build();
        });
        worker.register(Rpc.unary("b.enveloped", blob, blob), (request, ctx) -> request);
        worker.start();
    }

    @AfterEach
    void tearDown() throws Exception {
        worker.stop();
        assertTrue(worker.awaitTermination(Duration.ofSeconds(10)), "worker threads did not end");
        gearmand.close();
    }

    private DynamicMessage blobOf(String text) {
        return blob.toBuilder()
                .setField(blob.getDescriptorForType().findFieldByName("data"), ByteString.copyFrom(new byte[] {0, 1, -1}))
                .setField(blob.getDescriptorForType().findFieldByName("text"), text).build();
    }

    @Test
    void echoesInEveryEncodingWithoutFramesOrAttemptMarkers() throws Exception {
        DynamicMessage request = blobOf("h\u00e9llo");
        try (TestClient client = new TestClient(gearmand.address())) {
            for (Encoding e : List.of(Encoding.JSON, Encoding.MSGPACK, Encoding.PROTOBUF)) {
                TestClient.Outcome out = client.call("b.echo_" + e, Codecs.encodeBare(request, e), 10_000);
                assertEquals(PacketType.WORK_COMPLETE, out.endType(), e.toString());
                // The reply alone, and only the warning and the status before it: no WORK_DATA.
                assertArrayEquals(Codecs.encodeBare(request, e), out.endPayload(), e.toString());
                assertEquals(List.of(PacketType.WORK_WARNING, PacketType.WORK_STATUS),
                        out.events().stream().map(p -> p.type()).toList(), e.toString());
                assertEquals("w \u2713", new String(out.events().get(0).argument(1), StandardCharsets.UTF_8));
            }
            // What a PHP worker's json_encode writes reads too; the reply has every field.
            TestClient.Outcome php = client.call("b.echo_JSON", TestClient.bytes("{\"text\":\"x\",\"data\":null}"), 10_000);
            assertEquals(JsonParser.parseString("{\"data\":\"\",\"text\":\"x\"}"),
                    JsonParser.parseString(new String(php.endPayload(), StandardCharsets.UTF_8)));
            assertEquals(JsonParser.parseString("{\"data\":\"\",\"text\":\"\"}"), JsonParser.parseString(
                    new String(client.call("b.echo_JSON", TestClient.bytes("{}"), 10_000).endPayload(),
                            StandardCharsets.UTF_8)));
            // Zero bytes for a type with fields (a failed json_encode, a forgotten return): refused (8.1).
            assertJsonError(client.call("b.echo_JSON", new byte[0], 10_000), Code.INVALID_ARGUMENT,
                    "the payload is empty");
            assertExceptionText(client.call("b.echo_MSGPACK", new byte[0], 10_000), "an empty payload is not a bare");
        }
    }

    @Test
    void rawAndNoMetadataNoDeadline() throws Exception {
        try (TestClient client = new TestClient(gearmand.address())) {
            TestClient.Outcome out = client.call("b.reverse", TestClient.bytes("ab\u00e9\uD83D\uDE00"), 10_000);
            assertEquals("\uD83D\uDE00\u00e9ba", new String(out.endPayload(), StandardCharsets.UTF_8));
            TestClient.Outcome who = client.call("b.whoami", new byte[0], 10_000);
            JsonObject reply = JsonParser.parseString(new String(who.endPayload(), StandardCharsets.UTF_8))
                    .getAsJsonObject();
            assertEquals(0, reply.get("deadline_ms").getAsLong());
            assertEquals("java", reply.get("language").getAsString());
            assertEquals(new JsonObject(), reply.get("metadata"));
            assertExceptionText(client.call("b.reverse", new byte[] {(byte) 0xff}, 10_000), "not UTF-8");
        }
    }

    @Test
    void errorsInTheBareForm() throws Exception {
        try (TestClient client = new TestClient(gearmand.address())) {
            assertJsonError(client.call("b.coded_JSON", new byte[0], 10_000), Code.NOT_FOUND, "no such th\u00efng");
            assertJsonError(client.call("b.native_JSON", new byte[0], 10_000), Code.UNKNOWN, "native trouble");
            assertJsonError(client.call("b.unimplemented", TestClient.bytes("{}"), 10_000), Code.UNIMPLEMENTED,
                    "not implemented");
            // Undecodable before unimplemented, the size limit before both.
            assertJsonError(client.call("b.unimplemented", TestClient.bytes("{\"x\":1}"), 10_000),
                    Code.INVALID_ARGUMENT, "unknown field \"x\"");
            assertJsonError(client.call("b.unimplemented", new byte[2000], 10_000), Code.RESOURCE_EXHAUSTED, "2000");
            for (Encoding e : List.of(Encoding.MSGPACK, Encoding.PROTOBUF)) {
                TestClient.Outcome coded = client.call("b.coded_" + e, new byte[0], 10_000);
                assertEquals("no such th\u00efng", new String(coded.endPayload(), StandardCharsets.UTF_8));
                assertExceptionText(client.call("b.native_" + e, new byte[0], 10_000), "native trouble");
            }
            assertEquals(PacketType.WORK_FAIL, client.call("b.fail", new byte[0], 10_000).endType());
            // And the worker goes on.
            assertEquals(PacketType.WORK_COMPLETE, client.call("b.echo_JSON", TestClient.bytes("{}"), 10_000).endType());
        }
    }

    @Test
    void anEnvelopedMethodRefusesABarePayloadNamingBare() throws Exception {
        try (TestClient client = new TestClient(gearmand.address())) {
            for (byte[] payload : List.of(TestClient.bytes("{\"text\": \"x\"}"), TestClient.bytes("hello"),
                    MsgpackCodec.encode(blobOf("x")))) {
                dev.bridge.v1.Error error = client.call("b.enveloped", payload, 10_000).error();
                assertTrue(error.getCode() == Code.INVALID_ARGUMENT || error.getCode() == Code.FAILED_PRECONDITION,
                        error.toString());
                assertTrue(error.getMessage().contains("not a bridge envelope")
                        && error.getMessage().contains("`bare: true`"), error.getMessage());
            }
        }
    }

    private static void assertJsonError(TestClient.Outcome out, Code code, String messagePart) {
        assertEquals(PacketType.WORK_EXCEPTION, out.endType());
        JsonObject error = JsonParser.parseString(new String(out.endPayload(), StandardCharsets.UTF_8)).getAsJsonObject();
        assertEquals(code.getNumber(), error.get("code").getAsInt(), error.toString());
        assertEquals(code.name(), error.get("status").getAsString());
        assertTrue(error.get("message").getAsString().contains(messagePart), error.toString());
    }

    private static void assertExceptionText(TestClient.Outcome out, String part) {
        assertEquals(PacketType.WORK_EXCEPTION, out.endType());
        String text = new String(out.endPayload(), StandardCharsets.UTF_8);
        assertTrue(text.contains(part) && !text.startsWith("{"), text);
    }
}
