package dev.bridge.runtime;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import com.google.protobuf.DynamicMessage;
import com.google.protobuf.Message;
import dev.bridge.runtime.gearman.GearmanWorker;
import dev.bridge.runtime.gearman.PacketType;
import dev.bridge.v1.Code;
import dev.bridge.v1.Encoding;
import dev.bridge.v1.Request;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.logging.Handler;
import java.util.logging.Level;
import java.util.logging.LogRecord;
import java.util.logging.Logger;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The per-job log lines and the trace context of docs/workers.md, through a real gearmand. */
@Timeout(60)
class JobLogTest {
    private static final GearmanWorker.Settings FAST = new GearmanWorker.Settings(Duration.ofSeconds(2),
            Duration.ofSeconds(10), Duration.ofMillis(50), Duration.ofSeconds(5), Duration.ofMillis(20),
            Duration.ofMillis(200), Duration.ofSeconds(10));
    private static final String TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";
    private static final String TRACEPARENT = "00-" + TRACE_ID + "-00f067aa0ba902b7-01";

    private final List<LogRecord> records = new CopyOnWriteArrayList<>();
    private final Handler capture = new Handler() {
        @Override
        public void publish(LogRecord record) {
            records.add(record);
        }

        @Override
        public void flush() {
        }

        @Override
        public void close() {
        }
    };
    private final Logger jobs = Logger.getLogger(Worker.class.getName());
    private Level previous;
    private Gearmand gearmand;
    private Worker worker;
    private DynamicMessage blob;
    private DynamicMessage empty;

    @BeforeEach
    void setUp() throws Exception {
        previous = jobs.getLevel();
        jobs.setLevel(Level.FINE);
        capture.setLevel(Level.ALL);
        jobs.addHandler(capture);
        gearmand = new Gearmand();
        blob = (DynamicMessage) TestSchemas.prototype("bridge.interop.v1.Blob");
        empty = (DynamicMessage) TestSchemas.prototype("bridge.interop.v1.Empty");
        var text = blob.getDescriptorForType().findFieldByName("text");
        worker = Worker.builder().servers(gearmand.address()).clientId("java-log-test").connectionSettings(FAST).build();
        worker.register(Rpc.unary("l.Trace", blob, blob), (request, ctx) -> blob.toBuilder()
                .setField(text, ctx.traceId().orElse("-") + "|" + ctx.traceparent().orElse("-")
                        + "|" + ctx.metadata().getOrDefault("tracestate", "-"))
                .build());
        worker.register(Rpc.unary("l.Coded", blob, empty), (request, ctx) -> {
            throw new BridgeException(Code.NOT_FOUND, (String) request.getField(text));
        });
        worker.register(Rpc.unary("l.Fail", empty, empty), (request, ctx) -> {
            throw new JobFailedException();
        });
        worker.register(Rpc.bare("l.bare", blob, blob, Encoding.JSON), (request, ctx) -> {
            if (ctx.traceparent().isPresent()) {
                throw new AssertionError("a bare job has no metadata, hence no trace");
            }
            return request;
        });
        worker.start();
    }

    @AfterEach
    void tearDown() throws Exception {
        worker.stop();
        assertTrue(worker.awaitTermination(Duration.ofSeconds(10)), "worker threads did not end");
        gearmand.close();
        jobs.removeHandler(capture);
        jobs.setLevel(previous);
    }

    private static byte[] envelope(Message body, Encoding encoding, Map<String, String> metadata) {
        return Request.newBuilder().setVersion(1).setEncoding(encoding).putAllMetadata(metadata)
                .setBody(ByteString.copyFrom(Codecs.encode(body, encoding))).build().toByteArray();
    }

    private DynamicMessage blobOf(String text) {
        return blob.toBuilder().setField(blob.getDescriptorForType().findFieldByName("text"), text).build();
    }

    /** The job line for {@code function} (written after the answer: waits for it). */
    private LogRecord lineFor(String function) throws InterruptedException {
        long until = System.nanoTime() + 5_000_000_000L;
        while (System.nanoTime() < until) {
            for (LogRecord r : records) {
                if (r.getMessage().contains(" function=" + function + " ")) {
                    records.remove(r);
                    return r;
                }
            }
            Thread.sleep(10);
        }
        throw new AssertionError("no job line for " + function + " in " + records.stream().map(LogRecord::getMessage).toList());
    }

    @Test
    void aValidTraceparentReachesTheHandlerAndTheDebugLine() throws Exception {
        try (TestClient client = new TestClient(gearmand.address())) {
            byte[] job = envelope(blobOf("x"), Encoding.MSGPACK, Map.of("traceparent", TRACEPARENT, "tracestate", "k=v"));
            TestClient.Outcome out = client.call("l.Trace", job, 10_000);
            assertEquals(PacketType.WORK_COMPLETE, out.endType());
            Message reply = MsgpackCodec.decode(out.reply(), blob);
            assertEquals(TRACE_ID + "|" + TRACEPARENT + "|k=v",
                    reply.getField(blob.getDescriptorForType().findFieldByName("text")));
            LogRecord line = lineFor("l.Trace");
            assertEquals(Level.FINE, line.getLevel());
            assertTrue(Pattern.matches("job function=l\\.Trace handle=H:\\S+ encoding=msgpack bytes=" + job.length
                    + " seconds=\\d+\\.\\d{6} outcome=OK trace_id=" + TRACE_ID, line.getMessage()), line.getMessage());
        }
    }

    @Test
    void anInvalidTraceparentIsIgnored() throws Exception {
        List<String> invalid = List.of("01-" + TRACE_ID + "-00f067aa0ba902b7-01", "00-" + "0".repeat(32) + "-00f067aa0ba902b7-01",
                "00-" + TRACE_ID + "-0000000000000000-01", "00-" + TRACE_ID.toUpperCase() + "-00f067aa0ba902b7-01",
                TRACEPARENT + "-extra", "00-" + TRACE_ID + "-00f067aa0ba902b7-1", "garbage\nline");
        try (TestClient client = new TestClient(gearmand.address())) {
            for (String value : invalid) {
                TestClient.Outcome out = client.call("l.Trace",
                        envelope(blobOf("x"), Encoding.PROTOBUF, Map.of("traceparent", value)), 10_000);
                assertEquals(PacketType.WORK_COMPLETE, out.endType(), value);
                Message reply = Codecs.decode(ByteString.copyFrom(out.reply()), Encoding.PROTOBUF, blob);
                assertEquals("-|-|-", reply.getField(blob.getDescriptorForType().findFieldByName("text")), value);
                LogRecord line = lineFor("l.Trace");
                assertFalse(line.getMessage().contains("trace_id"), line.getMessage());
                assertTrue(line.getMessage().contains(" encoding=protobuf "), line.getMessage());
            }
        }
    }

    @Test
    void everyErrorAnswerIsAWarningWithItsMessageEscapedAndCut() throws Exception {
        String hostile = "bad \"id\"\nWARNING forged line\u001b[31m " + "x".repeat(300);
        try (TestClient client = new TestClient(gearmand.address())) {
            TestClient.Outcome out = client.call("l.Coded",
                    envelope(blobOf(hostile), Encoding.MSGPACK, Map.of("traceparent", TRACEPARENT)), 10_000);
            assertEquals(Code.NOT_FOUND, out.error().getCode());
            LogRecord line = lineFor("l.Coded");
            assertEquals(Level.WARNING, line.getLevel());
            String m = line.getMessage();
            assertTrue(m.startsWith("job failed function=l.Coded handle=H:"), m);
            assertTrue(m.contains(" encoding=msgpack bytes="), m);
            assertTrue(m.contains(" outcome=NOT_FOUND trace_id=" + TRACE_ID + " message=\"bad \\\"id\\\"\\nWARNING forged"
                    + " line\\u001b[31m xxx"), m);
            assertFalse(m.contains("\n") || m.contains("\u001b"), m);
            assertTrue(m.endsWith("x...\""), m); // "..." marks the cut
            String message = m.substring(m.indexOf("message=\"") + 9, m.length() - 4);
            assertEquals(200, message.replace("\\n", "\n").replace("\\u001b", "\u001b").replace("\\\"", "\"").length());

            assertEquals(PacketType.WORK_FAIL, client.call("l.Fail", envelope(empty, Encoding.PROTOBUF, Map.of()), 10_000)
                    .endType());
            LogRecord fail = lineFor("l.Fail");
            assertEquals(Level.WARNING, fail.getLevel());
            assertTrue(fail.getMessage().startsWith("job failed function=l.Fail "), fail.getMessage());
            assertTrue(fail.getMessage().contains(" outcome=WORK_FAIL message=\"job failed\""), fail.getMessage());

            // Refused before the handler: still a line (the envelope's encoding unknown: protobuf).
            client.call("l.Trace", new byte[] {(byte) 0xff, 0x01}, 10_000);
            LogRecord refused = lineFor("l.Trace");
            assertEquals(Level.WARNING, refused.getLevel());
            assertTrue(refused.getMessage().contains(" outcome=INVALID_ARGUMENT message=\"l.Trace: the job is not"),
                    refused.getMessage());
        }
    }

    @Test
    void bareJobsGetTheirLinesWithTheirEncoding() throws Exception {
        try (TestClient client = new TestClient(gearmand.address())) {
            byte[] json = "{\"text\":\"hi\"}".getBytes(java.nio.charset.StandardCharsets.UTF_8);
            assertEquals(PacketType.WORK_COMPLETE, client.call("l.bare", json, 10_000).endType());
            LogRecord ok = lineFor("l.bare");
            assertEquals(Level.FINE, ok.getLevel());
            assertTrue(ok.getMessage().contains(" encoding=json bytes=" + json.length + " "), ok.getMessage());
            assertTrue(ok.getMessage().endsWith(" outcome=OK"), ok.getMessage());

            client.call("l.bare", "{nope".getBytes(java.nio.charset.StandardCharsets.UTF_8), 10_000);
            LogRecord bad = lineFor("l.bare");
            assertEquals(Level.WARNING, bad.getLevel());
            assertTrue(bad.getMessage().contains(" outcome=INVALID_ARGUMENT message=\""), bad.getMessage());
        }
    }

    @Test
    void messagesAreEscapedAsJsonStrings() {
        assertEquals("a\\\"b\\\\c\\r\\n\\t\\u0007\\u001b\\u0085\\u2028\\u202e \u00e9",
                Logging.quote("a\"b\\c\r\n\t\u0007\u001b\u0085\u2028\u202e \u00e9"));
        String line = Logging.jobLine("f", "H:h:1", "raw", 3, 0.0000042, "INTERNAL", "y".repeat(201), null);
        assertTrue(line.endsWith(" seconds=0.000004 outcome=INTERNAL message=\"" + "y".repeat(200) + "...\""), line);
        line = Logging.jobLine("f", "H:h:1", "raw", 3, 0, "INTERNAL", "y".repeat(200), null);
        assertTrue(line.endsWith(" message=\"" + "y".repeat(200) + "\""), line);
    }

    @Test
    void traceparentValidation() {
        assertTrue(TraceContext.isValid(TRACEPARENT));
        assertEquals(TRACE_ID, TraceContext.traceId(TRACEPARENT));
        assertNull(TraceContext.traceId("00-" + TRACE_ID + "-00f067aa0ba902b7-0g"));
        assertNull(TraceContext.traceId(null));
        assertFalse(TraceContext.isValid("00_" + TRACE_ID + "-00f067aa0ba902b7-01"));
        assertFalse(TraceContext.isValid("00-" + TRACE_ID + "_00f067aa0ba902b7-01"));
    }
}
