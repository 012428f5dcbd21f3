package dev.bridge.runtime;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.bridge.runtime.gearman.PacketType;
import dev.bridge.v1.Error;
import dev.bridge.v1.Request;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A worker serving two real gearmand servers, one of them frozen (SIGSTOP: its sockets stay
 * open, nothing is answered), at the default concurrency (1) and default timings: the healthy
 * server's calls are all answered, whether the freeze came before or after the worker started,
 * and stop() is not held up by the frozen one (wire contract, section 7; issue 11).
 */
@Timeout(90)
class SickServerTest {
    private static final String FUNCTION = "t.Echo";
    private static final int CALLS = 10;

    private static Worker worker(Gearmand a, Gearmand b) {
        Worker w = Worker.builder().servers(a.address() + "," + b.address()).build();
        w.register(Rpc.unary(FUNCTION, Error.getDefaultInstance(), Error.getDefaultInstance()), (q, ctx) -> q);
        return w;
    }

    private static void awaitRegistered(Gearmand server) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (server.status(FUNCTION)[2] < 1) {
            assertTrue(System.nanoTime() < deadline, "the worker did not register on " + server.address());
            Thread.sleep(20);
        }
    }

    /** Ten calls through {@code healthy}, one after another; returns how long they took. */
    private static long tenCalls(Gearmand healthy) throws Exception {
        byte[] job = Request.newBuilder().setVersion(1)
                .setBody(Error.newBuilder().setMessage("hi").build().toByteString()).build().toByteArray();
        long start = System.nanoTime();
        try (TestClient client = new TestClient(healthy.address())) {
            for (int i = 0; i < CALLS; i++) {
                TestClient.Outcome out = client.call(FUNCTION, job, 15_000);
                assertEquals(PacketType.WORK_COMPLETE, out.endType(), "call " + i);
                assertEquals("hi", Error.parseFrom(out.reply()).getMessage());
            }
        }
        return TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
    }

    @Test
    void aServerFrozenWhileServedDoesNotStopTheOther() throws Exception {
        try (Gearmand a = new Gearmand(); Gearmand b = new Gearmand()) {
            Worker w = worker(a, b);
            w.start();
            try {
                awaitRegistered(a);
                awaitRegistered(b);
                a.freeze();
                long millis = tenCalls(b);
                assertTrue(millis < 3000, CALLS + " calls through the healthy server took " + millis + " ms");
                long stop = System.nanoTime();
                w.stop();
                assertTrue(w.awaitIdle(Duration.ofSeconds(2)), "stop() waited for the frozen server");
                assertTrue(TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - stop) < 2000);
            } finally {
                a.thaw();
                w.stop();
                w.awaitTermination(Duration.ofSeconds(10));
            }
        }
    }

    @Test
    void aWorkerStartedDuringTheFreezeServesTheOther() throws Exception {
        try (Gearmand a = new Gearmand(); Gearmand b = new Gearmand()) {
            a.freeze();
            Worker w = worker(a, b);
            try {
                w.start();
                awaitRegistered(b);
                long millis = tenCalls(b);
                assertTrue(millis < 3000, CALLS + " calls through the healthy server took " + millis + " ms");
                // Its server back, the worker serves it too.
                a.thaw();
                assertTrue(tenCalls(a) < 20_000);
            } finally {
                a.thaw();
                w.stop();
                assertTrue(w.awaitTermination(Duration.ofSeconds(10)));
            }
        }
    }

    @Test
    void jobSlotsAreSharedFairlyBetweenBusyServers() throws Exception {
        // Eight 60 ms jobs queued on each server, one job slot: a slot given back goes to the
        // connection waiting longest, so the two queues are served in turn, not one after the other.
        try (Gearmand a = new Gearmand(); Gearmand b = new Gearmand()) {
            java.util.List<String> order = java.util.Collections.synchronizedList(new java.util.ArrayList<>());
            Worker w = Worker.builder().servers(a.address() + "," + b.address()).build();
            w.register(Rpc.unary(FUNCTION, Error.getDefaultInstance(), Error.getDefaultInstance()), (q, ctx) -> {
                order.add(q.getMessage());
                Thread.sleep(60);
                return q;
            });
            w.start();
            java.util.List<TestClient> clients = new java.util.ArrayList<>();
            try {
                awaitRegistered(a);
                awaitRegistered(b);
                for (int i = 0; i < 8; i++) {
                    for (Gearmand server : java.util.List.of(a, b)) {
                        TestClient c = new TestClient(server.address());
                        clients.add(c);
                        c.submit(FUNCTION, Request.newBuilder().setVersion(1).setBody(Error.newBuilder()
                                .setMessage(server == a ? "A" : "B").build().toByteString()).build().toByteArray());
                    }
                }
                for (TestClient c : clients) {
                    assertEquals(PacketType.WORK_COMPLETE, c.await(20_000).endType());
                }
                java.util.List<String> firstHalf = order.subList(0, 8);
                assertTrue(java.util.Collections.frequency(firstHalf, "A") >= 3
                        && java.util.Collections.frequency(firstHalf, "B") >= 3, "served in the order " + order);
            } finally {
                clients.forEach(TestClient::close);
                w.stop();
                w.awaitTermination(Duration.ofSeconds(10));
            }
        }
    }

    @Test
    void aRegrabAfterALongSleepChecksTheServerFirst() throws Exception {
        // With a regrab interval shorter than the test, the frozen server's sleeping connection
        // wakes up on its own: its echo, not a grab, is what waits, so no job slot is lost.
        try (Gearmand a = new Gearmand(); Gearmand b = new Gearmand()) {
            var settings = new dev.bridge.runtime.gearman.GearmanWorker.Settings(Duration.ofSeconds(5),
                    Duration.ofSeconds(5), Duration.ofMillis(200), Duration.ofMillis(300), Duration.ofMillis(100),
                    Duration.ofSeconds(5), Duration.ofSeconds(60));
            Worker w = Worker.builder().servers(a.address() + "," + b.address()).connectionSettings(settings).build();
            w.register(Rpc.unary(FUNCTION, Error.getDefaultInstance(), Error.getDefaultInstance()), (q, ctx) -> q);
            w.start();
            try {
                awaitRegistered(a);
                awaitRegistered(b);
                a.freeze();
                Thread.sleep(1000); // several regrab intervals pass while frozen
                long millis = tenCalls(b);
                assertTrue(millis < 3000, CALLS + " calls through the healthy server took " + millis + " ms");
            } finally {
                a.thaw();
                w.stop();
                w.awaitTermination(Duration.ofSeconds(10));
            }
        }
    }
}
