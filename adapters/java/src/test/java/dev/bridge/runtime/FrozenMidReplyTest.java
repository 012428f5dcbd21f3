package dev.bridge.runtime;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import dev.bridge.runtime.gearman.PacketType;
import dev.bridge.v1.Error;
import dev.bridge.v1.Request;
import java.io.UncheckedIOException;
import java.time.Duration;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A job server that freezes (SIGSTOP) while the worker sends it a job's replies (1 MiB items):
 * the write that no longer moves closes that connection after the read timeout (5 s, the
 * default), the job's slot goes back at once so the other server is served at the default
 * concurrency (1), the handler is interrupted and its sends fail, and stop() is not held up by
 * the job, even by a handler that ignores the interrupt (issue 11).
 */
@Timeout(120)
class FrozenMidReplyTest {
    private static final String ECHO = "t.Echo";
    private static final String STREAM = "t.Stream";
    private static final int CALLS = 10;
    private static final long READ_TIMEOUT_MILLIS = 5000;

    /** What the streaming handler saw. */
    private static final class Seen {
        final AtomicInteger sent = new AtomicInteger();
        final AtomicReference<Throwable> sendError = new AtomicReference<>();
        final AtomicLong interruptedAt = new AtomicLong();
        final AtomicBoolean ended = new AtomicBoolean();
    }

    /**
     * A helper thread sends up to 400 items of 1 MiB, 5 ms apart, while the handler's own thread
     * waits (as a handler waiting on its helpers does); {@code ignoreInterrupt}: it waits on
     * until {@code release} whatever happens.
     */
    private static Worker worker(Gearmand a, Gearmand b, Seen seen, boolean ignoreInterrupt, CountDownLatch release) {
        Worker w = Worker.builder().servers(a.address() + "," + b.address()).build();
        w.register(Rpc.unary(ECHO, Error.getDefaultInstance(), Error.getDefaultInstance()), (q, ctx) -> q);
        Error item = Error.newBuilder().setMessageBytes(ByteString.copyFrom(new byte[1 << 20])).build();
        w.registerStreaming(Rpc.serverStreaming(STREAM, Error.getDefaultInstance(), Error.getDefaultInstance()),
                (q, replies, ctx) -> {
                    Thread helper = new Thread(() -> {
                        try {
                            for (int i = 0; i < 400; i++) {
                                Thread.sleep(5);
                                replies.send(item);
                                seen.sent.incrementAndGet();
                            }
                        } catch (InterruptedException | RuntimeException e) {
                            seen.sendError.set(e);
                        }
                    }, "stream-helper");
                    helper.setDaemon(true);
                    helper.start();
                    try {
                        while (true) {
                            try {
                                release.await();
                                return;
                            } catch (InterruptedException e) {
                                seen.interruptedAt.compareAndSet(0, System.nanoTime());
                                if (!ignoreInterrupt) {
                                    throw e;
                                }
                            }
                        }
                    } finally {
                        seen.ended.set(true);
                    }
                });
        return w;
    }

    private static void awaitRegistered(Gearmand server, String function) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (server.status(function)[2] < 1) {
            assertTrue(System.nanoTime() < deadline, "the worker did not register on " + server.address());
            Thread.sleep(20);
        }
    }

    /** Starts the stream on {@code a}, freezes {@code a} after 3 items; returns when it froze. */
    private static long freezeMidStream(Gearmand a, Seen seen, TestClient client) throws Exception {
        client.submit(STREAM, Request.newBuilder().setVersion(1).build().toByteArray());
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (seen.sent.get() < 3) {
            assertTrue(System.nanoTime() < deadline, "the stream did not start");
            Thread.sleep(5);
        }
        a.freeze();
        return System.nanoTime();
    }

    /** Calls through {@code healthy}, one after another; returns how long they took in all. */
    private static long calls(Gearmand healthy) throws Exception {
        byte[] job = Request.newBuilder().setVersion(1)
                .setBody(Error.newBuilder().setMessage("hi").build().toByteString()).build().toByteArray();
        long start = System.nanoTime();
        try (TestClient client = new TestClient(healthy.address())) {
            for (int i = 0; i < CALLS; i++) {
                TestClient.Outcome out = client.call(ECHO, job, 30_000);
                assertEquals(PacketType.WORK_COMPLETE, out.endType(), "call " + i);
                assertEquals("hi", Error.parseFrom(out.reply()).getMessage());
            }
        }
        return TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
    }

    private static long millisSince(long nanos) {
        return TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - nanos);
    }

    @Test
    void aReplyStuckOnAFrozenServerGivesTheSlotBackAndInterruptsTheHandler() throws Exception {
        Seen seen = new Seen();
        CountDownLatch release = new CountDownLatch(1);
        try (Gearmand a = new Gearmand(); Gearmand b = new Gearmand(); TestClient onA = new TestClient(a.address())) {
            Worker w = worker(a, b, seen, false, release);
            w.start();
            try {
                awaitRegistered(a, STREAM);
                awaitRegistered(b, ECHO);
                long frozen = freezeMidStream(a, seen, onA);
                long millis = calls(b);
                // The slot comes back when the stuck write is given up: the read timeout, not 60 s.
                assertTrue(millisSince(frozen) < READ_TIMEOUT_MILLIS + 3000,
                        CALLS + " calls through the healthy server ended " + millisSince(frozen)
                                + " ms after the freeze (" + millis + " ms for the calls)");
                long interrupted = seen.interruptedAt.get();
                assertTrue(interrupted != 0, "the handler was not interrupted");
                long after = TimeUnit.NANOSECONDS.toMillis(interrupted - frozen);
                assertTrue(after < READ_TIMEOUT_MILLIS + 2000, "interrupted " + after + " ms after the freeze");
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
                while (seen.sendError.get() == null && System.nanoTime() < deadline) {
                    Thread.sleep(10);
                }
                assertNotNull(seen.sendError.get(), "the helper's sends did not fail");
                assertTrue(seen.sendError.get() instanceof UncheckedIOException, seen.sendError.get().toString());
                assertTrue(seen.ended.get());
                long stop = System.nanoTime();
                w.stop();
                assertTrue(w.awaitIdle(Duration.ofSeconds(2)), "stop() waited for the frozen server");
                assertTrue(millisSince(stop) < 2000);
            } finally {
                release.countDown();
                a.thaw();
                w.stop();
                w.awaitTermination(Duration.ofSeconds(10));
            }
        }
    }

    @Test
    void aHandlerIgnoringTheInterruptHoldsNeitherTheSlotNorTheStop() throws Exception {
        Seen seen = new Seen();
        CountDownLatch release = new CountDownLatch(1);
        try (Gearmand a = new Gearmand(); Gearmand b = new Gearmand(); TestClient onA = new TestClient(a.address())) {
            Worker w = worker(a, b, seen, true, release);
            w.start();
            try {
                awaitRegistered(a, STREAM);
                awaitRegistered(b, ECHO);
                long frozen = freezeMidStream(a, seen, onA);
                calls(b);
                assertTrue(millisSince(frozen) < READ_TIMEOUT_MILLIS + 3000,
                        "the healthy server was served " + millisSince(frozen) + " ms after the freeze");
                assertTrue(seen.interruptedAt.get() != 0, "the handler was not interrupted");
                assertTrue(!seen.ended.get(), "the handler was meant to run on");
                long stop = System.nanoTime();
                w.stop();
                assertTrue(w.awaitIdle(Duration.ofSeconds(2)), "stop() waited for a job whose connection is gone");
                assertTrue(millisSince(stop) < 2000);
                assertTrue(!seen.ended.get());
            } finally {
                release.countDown();
                a.thaw();
                w.stop();
                w.awaitTermination(Duration.ofSeconds(10));
            }
        }
    }
}
