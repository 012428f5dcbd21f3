package dev.bridge.runtime;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import com.google.protobuf.DynamicMessage;
import dev.bridge.runtime.gearman.GearmanWorker;
import dev.bridge.runtime.gearman.Packet;
import dev.bridge.runtime.gearman.PacketType;
import dev.bridge.runtime.security.Keyring;
import dev.bridge.runtime.security.Signing;
import dev.bridge.v1.Code;
import dev.bridge.v1.Encoding;
import dev.bridge.v1.Request;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** A worker with keys (wire contract, section 9) and a raw client, through a real gearmand. */
@Timeout(60)
class SignedWorkerTest {
    private static final GearmanWorker.Settings FAST = new GearmanWorker.Settings(Duration.ofSeconds(2),
            Duration.ofSeconds(10), Duration.ofMillis(50), Duration.ofSeconds(5), Duration.ofMillis(20),
            Duration.ofMillis(200), Duration.ofSeconds(10));
    private static final byte[] KEY = "0123456789abcdef0123456789abcdef".getBytes(StandardCharsets.US_ASCII);
    private static final String ECHO = "s.echo";
    private static final String STREAM = "s.stream";

    private Gearmand gearmand;
    private Worker worker;
    private DynamicMessage blob;

    @BeforeEach
    void setUp() throws Exception {
        gearmand = new Gearmand();
        blob = (DynamicMessage) TestSchemas.prototype("bridge.interop.v1.Blob");
        // A cache of two entries: its floor shows after a few calls.
        worker = Worker.builder().servers(gearmand.address()).connectionSettings(FAST)
                .keys(new Keyring(Map.of("k1", KEY))).replayCapacity(2).build();
        worker.register(Rpc.unary(ECHO, blob, blob), (request, ctx) -> request);
        worker.registerStreaming(Rpc.serverStreaming(STREAM, blob, blob), (request, out, ctx) -> {
            ctx.progress(1, 2); // after an attempt marker, itself signed
            out.send(request);
            out.send(request);
        });
        worker.register(Rpc.bare("s.bare", blob, blob, Encoding.JSON), (request, ctx) -> request);
        worker.start();
    }

    @AfterEach
    void tearDown() throws Exception {
        worker.stop();
        assertTrue(worker.awaitTermination(Duration.ofSeconds(10)), "worker threads did not end");
        gearmand.close();
    }

    private static byte[] nonce(int n) {
        byte[] nonce = new byte[16];
        Arrays.fill(nonce, (byte) n);
        return nonce;
    }

    private byte[] job(String function, byte[] nonce, long deadline, byte[] key) {
        byte[] body = blob.toBuilder().setField(blob.getDescriptorForType().findFieldByName("text"), "t")
                .setField(blob.getDescriptorForType().findFieldByName("data"), ByteString.copyFromUtf8("d"))
                .build().toByteArray();
        byte[] mac = Signing.hmacSha256(key, Signing.requestInput(function, "k1", nonce, 1, deadline, 1,
                Map.of("m", "v"), body));
        return Request.newBuilder().setVersion(1).setEncodingValue(1).setDeadlineMs(deadline).putMetadata("m", "v")
                .setBody(ByteString.copyFrom(body)).setKeyId("k1").setNonce(ByteString.copyFrom(nonce))
                .setMac(ByteString.copyFrom(mac)).build().toByteArray();
    }

    /** The payload without its MAC, checked as a client does (section 9.3). */
    private static byte[] unsigned(String function, byte[] nonce, int packet, byte[] signed) {
        assertTrue(signed.length >= 32, "too short to be signed");
        byte[] payload = Arrays.copyOf(signed, signed.length - 32);
        byte[] mac = Signing.hmacSha256(KEY, Signing.replyInput(function, "k1", nonce, packet, payload));
        assertArrayEquals(mac, Arrays.copyOfRange(signed, signed.length - 32, signed.length), "reply MAC");
        return payload;
    }

    private static dev.bridge.v1.Error error(TestClient.Outcome out) throws Exception {
        assertEquals(PacketType.WORK_EXCEPTION, out.endType());
        return dev.bridge.v1.Error.parseFrom(out.endPayload());
    }

    @Test
    void signedJobsRunWithSignedRepliesAndTheRestIsRefused() throws Exception {
        long deadline = System.currentTimeMillis() + 30_000;
        try (TestClient client = new TestClient(gearmand.address())) {
            TestClient.Outcome ok = client.call(ECHO, job(ECHO, nonce(1), deadline, KEY), 10_000);
            assertEquals(PacketType.WORK_COMPLETE, ok.endType());
            TestClient.Frame frame = TestClient.Frame.parse(unsigned(ECHO, nonce(1), Signing.PACKET_COMPLETE,
                    ok.endPayload()));
            assertEquals("t", ((DynamicMessage) blob.getParserForType().parseFrom(frame.body()))
                    .getField(blob.getDescriptorForType().findFieldByName("text")));

            // A stream: the attempt marker and both items (WORK_DATA) and the end, each signed; the
            // status is not.
            TestClient.Outcome stream = client.call(STREAM, job(STREAM, nonce(2), deadline + 1, KEY), 10_000);
            List<PacketType> kinds = stream.events().stream().map(Packet::type).toList();
            assertEquals(List.of(PacketType.WORK_DATA, PacketType.WORK_STATUS, PacketType.WORK_DATA,
                    PacketType.WORK_DATA), kinds);
            for (Packet p : stream.events()) {
                if (p.type() == PacketType.WORK_DATA) {
                    TestClient.Frame.parse(unsigned(STREAM, nonce(2), Signing.PACKET_DATA, p.argument(1)));
                }
            }
            assertEquals(ReplyFrame.STREAM_END, TestClient.Frame.parse(unsigned(STREAM, nonce(2),
                    Signing.PACKET_COMPLETE, stream.endPayload())).kind());

            // The same job again (another handle): replayed, and the refusal is signed.
            TestClient.Outcome replay = client.call(ECHO, job(ECHO, nonce(1), deadline, KEY), 10_000);
            assertEquals(PacketType.WORK_EXCEPTION, replay.endType());
            dev.bridge.v1.Error e = dev.bridge.v1.Error.parseFrom(unsigned(ECHO, nonce(1), Signing.PACKET_EXCEPTION,
                    replay.endPayload()));
            assertEquals(Code.UNAUTHENTICATED, e.getCode());
            assertEquals(ECHO + ": replayed", e.getMessage());
            assertEquals("Unauthenticated", e.getType());
            assertTrue(e.getTrace().contains("section 9.2"), e.getTrace());

            // Forged (another key): bad signature; the refusal names a known key, so it is signed.
            byte[] forged = job(ECHO, nonce(3), deadline, "another-key-another-key-another!".getBytes(
                    StandardCharsets.US_ASCII));
            e = dev.bridge.v1.Error.parseFrom(unsigned(ECHO, nonce(3), Signing.PACKET_EXCEPTION,
                    client.call(ECHO, forged, 10_000).endPayload()));
            assertEquals(ECHO + ": bad signature", e.getMessage());

            // Unsigned: refused, unsigned itself (no key named).
            byte[] plain = Request.newBuilder().setVersion(1).setDeadlineMs(deadline).build().toByteArray();
            e = error(client.call(ECHO, plain, 10_000));
            assertEquals(Code.UNAUTHENTICATED, e.getCode());
            assertEquals(ECHO + ": unsigned job", e.getMessage());

            // The cache holds two entries: a third job evicts the earliest deadline; from then on a
            // job due no later than that is RESOURCE_EXHAUSTED, well signed as it is.
            assertEquals(PacketType.WORK_COMPLETE, client.call(ECHO, job(ECHO, nonce(4), deadline + 2, KEY), 10_000)
                    .endType());
            e = dev.bridge.v1.Error.parseFrom(unsigned(ECHO, nonce(5), Signing.PACKET_EXCEPTION,
                    client.call(ECHO, job(ECHO, nonce(5), deadline, KEY), 10_000).endPayload()));
            assertEquals(Code.RESOURCE_EXHAUSTED, e.getCode());
            assertEquals(ECHO + ": replay cache full", e.getMessage());
            assertEquals("ResourceExhausted", e.getType());

            // A bare job cannot be signed: refused in the bare form (JSON), and the worker serves on.
            TestClient.Outcome bare = client.call("s.bare", TestClient.bytes("{\"text\":\"x\"}"), 10_000);
            assertEquals(PacketType.WORK_EXCEPTION, bare.endType());
            String text = new String(bare.endPayload(), StandardCharsets.UTF_8);
            assertTrue(text.contains("\"code\":16") && text.contains("bare jobs cannot be signed"), text);
            assertEquals(PacketType.WORK_COMPLETE, client.call(ECHO, job(ECHO, nonce(6), deadline + 3, KEY), 10_000)
                    .endType());
        }
    }
}
