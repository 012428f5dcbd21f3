package dev.bridge.runtime;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import com.google.protobuf.DynamicMessage;
import com.google.protobuf.Message;
import dev.bridge.runtime.gearman.GearmanWorker;
import dev.bridge.runtime.gearman.PacketType;
import dev.bridge.v1.Code;
import dev.bridge.v1.Encoding;
import dev.bridge.v1.Request;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The worker's job flow against a real gearmand (wire contract, sections 2-4 and 7). */
@Timeout(60)
class WorkerTest {
    private static final GearmanWorker.Settings FAST = new GearmanWorker.Settings(Duration.ofSeconds(2),
            Duration.ofSeconds(10), Duration.ofMillis(50), Duration.ofSeconds(5), Duration.ofMillis(20), Duration.ofMillis(200), Duration.ofSeconds(10));

    private Gearmand gearmand;
    private Worker worker;
    private final AtomicInteger handlerRuns = new AtomicInteger();
    private final CountDownLatch slowStarted = new CountDownLatch(1);

    private DynamicMessage blob;
    private DynamicMessage empty;
    private DynamicMessage whoAmI;
    private DynamicMessage streamItem;
    private DynamicMessage streamRequest;

    @BeforeEach
    void setUp() throws Exception {
        gearmand = new Gearmand();
        blob = (DynamicMessage) TestSchemas.prototype("bridge.interop.v1.Blob");
        empty = (DynamicMessage) TestSchemas.prototype("bridge.interop.v1.Empty");
        whoAmI = (DynamicMessage) TestSchemas.prototype("bridge.interop.v1.WhoAmIReply");
        streamItem = (DynamicMessage) TestSchemas.prototype("bridge.interop.v1.StreamItem");
        streamRequest = (DynamicMessage) TestSchemas.prototype("bridge.interop.v1.StreamRequest");
    }

    @AfterEach
    void tearDown() throws Exception {
        if (worker != null) {
            worker.stop();
            assertTrue(worker.awaitTermination(Duration.ofSeconds(10)), "worker threads did not end");
        }
        gearmand.close();
    }

    private Worker startWorker(String servers, int concurrency, long maxRequestBytes) {
        Worker w = Worker.builder().servers(servers).concurrency(concurrency).maxRequestBytes(maxRequestBytes)
                .clientId("java-test").connectionSettings(FAST).build();
        w.register(Rpc.unary("t.Echo", blob, blob), (request, ctx) -> {
            handlerRuns.incrementAndGet();
            return request;
        });
        w.register(Rpc.unary("t.WhoAmI", empty, whoAmI), (request, ctx) -> {
            var b = whoAmI.toBuilder();
            var fields = whoAmI.getDescriptorForType();
            b.setField(fields.findFieldByName("language"), "java");
            for (Map.Entry<String, String> e : ctx.metadata().entrySet()) {
                var entry = b.newBuilderForField(fields.findFieldByName("metadata"));
                entry.setField(entry.getDescriptorForType().findFieldByNumber(1), e.getKey());
                entry.setField(entry.getDescriptorForType().findFieldByNumber(2), e.getValue());
                b.addRepeatedField(fields.findFieldByName("metadata"), entry.build());
            }
            b.setField(fields.findFieldByName("deadline_ms"), ctx.deadlineMillis());
            return b.build();
        });
        w.register(Rpc.unary("t.Native", empty, empty), (request, ctx) -> {
            throw new IllegalStateException("native trouble");
        });
        w.register(Rpc.unary("t.Coded", empty, empty), (request, ctx) -> {
            throw new BridgeException(Code.NOT_FOUND, "no such thing", Map.of("id", "42"), null);
        });
        w.register(Rpc.unary("t.Fail", empty, empty), (request, ctx) -> {
            throw new JobFailedException();
        });
        w.register(Rpc.unary("t.Null", empty, empty), (request, ctx) -> null);
        Rpc<DynamicMessage, DynamicMessage> unimplemented = Rpc.unary("t.Unimplemented", empty, empty);
        w.register(unimplemented, (request, ctx) -> {
            throw unimplemented.unimplemented();
        });
        w.registerStreaming(Rpc.serverStreaming("t.Stream", streamRequest, streamItem), (request, out, ctx) -> {
            int count = (Integer) request.getField(streamRequest.getDescriptorForType().findFieldByName("count"));
            ctx.warn("starting ✓");
            for (int i = 0; i < count; i++) {
                ctx.progress(i + 1, count);
                out.send(streamItem.toBuilder()
                        .setField(streamItem.getDescriptorForType().findFieldByName("index"), i)
                        .setField(streamItem.getDescriptorForType().findFieldByName("payload"),
                                ByteString.copyFrom(new byte[] {0, (byte) i, 0}))
                        .build());
            }
        });
        w.register(Rpc.unary("t.Slow", blob, blob), (request, ctx) -> {
            slowStarted.countDown();
            Thread.sleep(Long.parseLong(((ByteString) request.getField(blob.getDescriptorForType()
                    .findFieldByName("data"))).toStringUtf8()));
            return request;
        });
        w.start();
        worker = w;
        return w;
    }

    private static byte[] envelope(Message body, Encoding encoding, long deadlineMs, Map<String, String> metadata) {
        return Request.newBuilder().setVersion(1).setEncoding(encoding).setDeadlineMs(deadlineMs)
                .putAllMetadata(metadata).setBody(ByteString.copyFrom(Codecs.encode(body, encoding)))
                .build().toByteArray();
    }

    private DynamicMessage blobOf(byte[] data, String text) {
        return blob.toBuilder()
                .setField(blob.getDescriptorForType().findFieldByName("data"), ByteString.copyFrom(data))
                .setField(blob.getDescriptorForType().findFieldByName("text"), text).build();
    }

    @Test
    void echoesInBothEncodingsBinarySafe() throws Exception {
        startWorker(gearmand.address(), 1, Worker.DEFAULT_MAX_REQUEST_BYTES);
        byte[] data = new byte[200_000];
        for (int i = 0; i < data.length; i++) {
            data[i] = (byte) (i * 7);
        }
        DynamicMessage request = blobOf(data, "héllo\u0000wörld");
        try (TestClient client = new TestClient(gearmand.address())) {
            for (Encoding encoding : List.of(Encoding.PROTOBUF, Encoding.MSGPACK, Encoding.ENCODING_UNSPECIFIED)) {
                TestClient.Outcome out = client.call("t.Echo", envelope(request, encoding, 0, Map.of()), 10_000);
                assertEquals(PacketType.WORK_COMPLETE, out.endType());
                assertTrue(out.events().isEmpty(), "a unary reply with no progress sends no WORK_DATA");
                Encoding replyEncoding = encoding == Encoding.MSGPACK ? Encoding.MSGPACK : Encoding.PROTOBUF;
                TestClient.Frame frame = out.endFrame();
                assertEquals(ReplyFrame.UNARY_REPLY, frame.kind());
                assertEquals(replyEncoding == Encoding.MSGPACK ? 2 : 1, frame.encoding(), encoding.toString());
                assertEquals(ReplyFrame.typeTag("bridge.interop.v1.Blob"), frame.tag());
                assertEquals(0, frame.sequence());
                assertArrayEquals(Codecs.encode(request, replyEncoding), out.reply(), encoding.toString());
            }
        }
    }

    @Test
    void handlerSeesMetadataAndDeadline() throws Exception {
        startWorker(gearmand.address(), 1, Worker.DEFAULT_MAX_REQUEST_BYTES);
        long deadline = System.currentTimeMillis() + 60_000;
        try (TestClient client = new TestClient(gearmand.address())) {
            TestClient.Outcome out = client.call("t.WhoAmI",
                    envelope(empty, Encoding.MSGPACK, deadline, Map.of("trace-id", "abc", "ключ", "значение")), 10_000);
            assertEquals(PacketType.WORK_COMPLETE, out.endType());
            Message reply = MsgpackCodec.decode(out.reply(), whoAmI);
            var fields = whoAmI.getDescriptorForType();
            assertEquals("java", reply.getField(fields.findFieldByName("language")));
            assertEquals(deadline, reply.getField(fields.findFieldByName("deadline_ms")));
            assertEquals(2, reply.getRepeatedFieldCount(fields.findFieldByName("metadata")));
        }
    }

    @Test
    void everyStepOfTheJobFlowAnswersWithItsCodeAndTheWorkerGoesOn() throws Exception {
        startWorker(gearmand.address(), 1, 1000);
        long past = System.currentTimeMillis() - 1000;
        byte[] good = envelope(blobOf(new byte[] {1, 2, 3}, "x"), Encoding.PROTOBUF, 0, Map.of());
        try (TestClient client = new TestClient(gearmand.address())) {
            assertError(client.call("t.Echo", new byte[2000], 10_000), Code.RESOURCE_EXHAUSTED);
            assertError(client.call("t.Echo", new byte[] {(byte) 0xff, 0x01}, 10_000), Code.INVALID_ARGUMENT);
            assertError(client.call("t.Echo", Request.newBuilder().setVersion(2).setDeadlineMs(past).build().toByteArray(),
                    10_000), Code.FAILED_PRECONDITION);
            assertError(client.call("t.Echo", Request.newBuilder().setVersion(1).setEncodingValue(9).setDeadlineMs(past)
                    .build().toByteArray(), 10_000), Code.INVALID_ARGUMENT);
            assertError(client.call("t.Echo", Request.newBuilder().setVersion(1).setDeadlineMs(past)
                    .setEncoding(Encoding.MSGPACK).setBody(ByteString.copyFrom(new byte[] {(byte) 0xc1})).build()
                    .toByteArray(), 10_000), Code.DEADLINE_EXCEEDED);
            assertEquals(0, handlerRuns.get(), "the handler must not run for a job refused before it");
            assertError(client.call("t.Echo", Request.newBuilder().setVersion(1).setEncoding(Encoding.MSGPACK)
                    .setBody(ByteString.copyFrom(new byte[] {(byte) 0xc1})).build().toByteArray(), 10_000),
                    Code.INVALID_ARGUMENT);
            assertError(client.call("t.Echo", Request.newBuilder().setVersion(1)
                    .setBody(ByteString.copyFrom(new byte[] {0x0a, 0x7f})).build().toByteArray(), 10_000),
                    Code.INVALID_ARGUMENT);
            assertError(client.call("t.Unimplemented", envelope(empty, Encoding.PROTOBUF, 0, Map.of()), 10_000),
                    Code.UNIMPLEMENTED);

            dev.bridge.v1.Error nativeError = client.call("t.Native", envelope(empty, Encoding.MSGPACK, 0, Map.of()),
                    10_000).error();
            assertEquals(Code.UNKNOWN, nativeError.getCode());
            assertEquals("IllegalStateException", nativeError.getType());
            assertEquals("native trouble", nativeError.getMessage());
            assertEquals("java", nativeError.getLanguage());
            assertTrue(nativeError.getTrace().contains("IllegalStateException"), nativeError.getTrace());

            dev.bridge.v1.Error coded = client.call("t.Coded", envelope(empty, Encoding.PROTOBUF, 0, Map.of()),
                    10_000).error();
            assertEquals(Code.NOT_FOUND, coded.getCode());
            assertEquals("BridgeException", coded.getType());
            assertEquals("no such thing", coded.getMessage());
            assertEquals(Map.of("id", "42"), coded.getDetailsMap());

            assertEquals(PacketType.WORK_FAIL,
                    client.call("t.Fail", envelope(empty, Encoding.PROTOBUF, 0, Map.of()), 10_000).endType());
            assertError(client.call("t.Null", envelope(empty, Encoding.PROTOBUF, 0, Map.of()), 10_000), Code.INTERNAL);

            TestClient.Outcome ok = client.call("t.Echo", good, 10_000);
            assertEquals(PacketType.WORK_COMPLETE, ok.endType());
            assertEquals(1, handlerRuns.get());
        }
    }

    @Test
    void aJobOverTheLimitIsRefusedWithoutBeingKept() throws Exception {
        startWorker(gearmand.address(), 1, 1000);
        byte[] huge = new byte[8 * 1024 * 1024];
        try (TestClient client = new TestClient(gearmand.address())) {
            dev.bridge.v1.Error error = client.call("t.Echo", huge, 20_000).error();
            assertEquals(Code.RESOURCE_EXHAUSTED, error.getCode());
            assertTrue(error.getMessage().contains(Integer.toString(huge.length)), error.getMessage());
            // the connection read past it in step: the next job is served
            byte[] good = envelope(blobOf(new byte[] {1}, "after"), Encoding.PROTOBUF, 0, Map.of());
            assertEquals(PacketType.WORK_COMPLETE, client.call("t.Echo", good, 10_000).endType());
        }
    }

    private static void assertError(TestClient.Outcome outcome, Code code) throws Exception {
        dev.bridge.v1.Error error = outcome.error();
        assertEquals(code, error.getCode(), error.toString());
        assertEquals("java", error.getLanguage());
        assertFalse(error.getMessage().isEmpty());
    }

    @Test
    void streamsItemsWithProgressAndWarningsInOrder() throws Exception {
        startWorker(gearmand.address(), 1, Worker.DEFAULT_MAX_REQUEST_BYTES);
        DynamicMessage request = streamRequest.toBuilder()
                .setField(streamRequest.getDescriptorForType().findFieldByName("count"), 3).build();
        try (TestClient client = new TestClient(gearmand.address())) {
            TestClient.Outcome out = client.call("t.Stream", envelope(request, Encoding.MSGPACK, 0, Map.of()), 10_000);
            assertEquals(PacketType.WORK_COMPLETE, out.endType());
            List<PacketType> types = out.events().stream().map(p -> p.type()).toList();
            // The warning comes first: an attempt marker goes before it.
            assertEquals(List.of(PacketType.WORK_DATA, PacketType.WORK_WARNING, PacketType.WORK_STATUS,
                    PacketType.WORK_DATA, PacketType.WORK_STATUS, PacketType.WORK_DATA, PacketType.WORK_STATUS,
                    PacketType.WORK_DATA), types);
            TestClient.Frame marker = TestClient.Frame.parse(out.events().get(0).argument(1));
            assertEquals(ReplyFrame.ATTEMPT_MARKER, marker.kind());
            assertEquals(0, marker.sequence());
            assertEquals(0, marker.body().length);
            assertEquals(2, marker.encoding());
            assertEquals(ReplyFrame.typeTag("bridge.interop.v1.StreamItem"), marker.tag());
            assertTrue(marker.attempt() != 0);
            for (int i = 0; i < 3; i++) {
                TestClient.Frame item = TestClient.Frame.parse(out.events().get(3 + 2 * i).argument(1));
                assertEquals(ReplyFrame.STREAM_ITEM, item.kind());
                assertEquals(i, item.sequence());
                assertEquals(marker.attempt(), item.attempt());
                assertEquals(marker.tag(), item.tag());
            }
            TestClient.Frame end = out.endFrame();
            assertEquals(ReplyFrame.STREAM_END, end.kind());
            assertEquals(3, end.sequence());
            assertEquals(0, end.body().length);
            assertEquals(marker.attempt(), end.attempt());
            assertEquals("starting ✓", new String(out.events().get(1).argument(1), StandardCharsets.UTF_8));
            assertEquals("2", out.events().get(4).argumentString(1));
            assertEquals("3", out.events().get(4).argumentString(2));
            Message second = MsgpackCodec.decode(TestClient.Frame.parse(out.events().get(5).argument(1)).body(),
                    streamItem);
            assertEquals(1, second.getField(streamItem.getDescriptorForType().findFieldByName("index")));
            assertEquals(ByteString.copyFrom(new byte[] {0, 1, 0}),
                    second.getField(streamItem.getDescriptorForType().findFieldByName("payload")));
        }
    }

    @Test
    void everyRunOfAJobHasItsOwnAttempt() throws Exception {
        startWorker(gearmand.address(), 1, Worker.DEFAULT_MAX_REQUEST_BYTES);
        byte[] job = envelope(blobOf(new byte[] {7}, ""), Encoding.PROTOBUF, 0, Map.of());
        java.util.Set<Long> attempts = new java.util.HashSet<>();
        try (TestClient client = new TestClient(gearmand.address())) {
            for (int i = 0; i < 20; i++) {
                TestClient.Frame frame = client.call("t.Echo", job, 10_000).endFrame();
                assertTrue(frame.attempt() != 0);
                attempts.add(frame.attempt());
            }
        }
        assertEquals(20, attempts.size(), "attempt ids must be drawn per run");
    }

    @Test
    void runsJobsInParallel() throws Exception {
        startWorker(gearmand.address(), 3, Worker.DEFAULT_MAX_REQUEST_BYTES);
        byte[] slow = envelope(blobOf("600".getBytes(StandardCharsets.US_ASCII), ""), Encoding.PROTOBUF, 0, Map.of());
        TestClient[] clients = {new TestClient(gearmand.address()), new TestClient(gearmand.address()),
                new TestClient(gearmand.address())};
        try {
            long start = System.nanoTime();
            for (TestClient c : clients) {
                c.submit("t.Slow", slow);
            }
            for (TestClient c : clients) {
                assertEquals(PacketType.WORK_COMPLETE, c.await(10_000).endType());
            }
            long millis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
            assertTrue(millis < 1500, "three 600 ms jobs with concurrency 3 took " + millis + " ms");
        } finally {
            for (TestClient c : clients) {
                c.close();
            }
        }
    }

    @Test
    void stopFinishesTheRunningJob() throws Exception {
        Worker w = startWorker(gearmand.address(), 1, Worker.DEFAULT_MAX_REQUEST_BYTES);
        try (TestClient client = new TestClient(gearmand.address())) {
            client.submit("t.Slow", envelope(blobOf("700".getBytes(StandardCharsets.US_ASCII), ""), Encoding.PROTOBUF, 0, Map.of()));
            assertTrue(slowStarted.await(10, TimeUnit.SECONDS));
            w.stop();
            assertEquals(PacketType.WORK_COMPLETE, client.await(10_000).endType());
            assertTrue(w.awaitTermination(Duration.ofSeconds(5)));
            // Gone from the server: a new job finds no worker (still queued after a while).
            client.submit("t.Echo", envelope(blob, Encoding.PROTOBUF, 0, Map.of()));
            Thread.sleep(300);
            assertEquals(0, gearmand.status("t.Echo")[2], "no worker should remain registered");
        }
    }

    @Test
    void reconnectsWhenTheServerComesBack() throws Exception {
        startWorker(gearmand.address(), 1, Worker.DEFAULT_MAX_REQUEST_BYTES);
        byte[] job = envelope(blobOf(new byte[] {9}, "again"), Encoding.PROTOBUF, 0, Map.of());
        try (TestClient client = new TestClient(gearmand.address())) {
            assertEquals(PacketType.WORK_COMPLETE, client.call("t.Echo", job, 10_000).endType());
        }
        gearmand.kill();
        Thread.sleep(300);
        gearmand.start();
        try (TestClient client = new TestClient(gearmand.address())) {
            assertEquals(PacketType.WORK_COMPLETE, client.call("t.Echo", job, 15_000).endType());
        }
    }

    @Test
    void servesEveryJobServer() throws Exception {
        try (Gearmand second = new Gearmand()) {
            startWorker(gearmand.address() + "," + second.address(), 1, Worker.DEFAULT_MAX_REQUEST_BYTES);
            byte[] job = envelope(blobOf(new byte[] {1}, "both"), Encoding.MSGPACK, 0, Map.of());
            for (String address : List.of(gearmand.address(), second.address())) {
                try (TestClient client = new TestClient(address)) {
                    assertEquals(PacketType.WORK_COMPLETE, client.call("t.Echo", job, 10_000).endType(), address);
                }
            }
        }
    }
}
