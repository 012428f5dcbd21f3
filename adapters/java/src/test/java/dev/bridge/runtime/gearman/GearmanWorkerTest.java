package dev.bridge.runtime.gearman;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayInputStream;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A job server that breaks the framing: the worker drops that connection and connects again.
 * (A real gearmand never sends bad magic, so this peer is a plain socket playing one.)
 */
@Timeout(30)
class GearmanWorkerTest {
    private static final GearmanWorker.Settings FAST = new GearmanWorker.Settings(Duration.ofSeconds(2),
            Duration.ofSeconds(5), Duration.ofMillis(50), Duration.ofSeconds(5), Duration.ofMillis(20),
            Duration.ofMillis(100), Duration.ofSeconds(10));

    @Test
    void aProtocolErrorClosesTheConnectionAndTheWorkerReconnects() throws Exception {
        try (ServerSocket server = new ServerSocket(0, 5, InetAddress.getLoopbackAddress())) {
            server.setSoTimeout(10_000);
            GearmanWorker worker = new GearmanWorker(
                    List.of(new ServerAddress("127.0.0.1", server.getLocalPort())), 1, 1 << 20, "t", FAST);
            worker.register("f", job -> job.complete(new byte[0]));
            worker.start();
            try {
                try (Socket first = server.accept()) {
                    PacketReader in = new PacketReader(first.getInputStream(), 1 << 20, Magic.REQ);
                    assertEquals(PacketType.SET_CLIENT_ID, in.read().type());
                    assertEquals(PacketType.CAN_DO, in.read().type());
                    answerEcho(first, in);
                    assertEquals(PacketType.GRAB_JOB_UNIQ, in.read().type());
                    first.getOutputStream().write("HTTP/1.1 400 Bad Request\r\n\r\n".getBytes(StandardCharsets.US_ASCII));
                    first.getOutputStream().flush();
                    // The worker hangs up on garbage: the next read sees the end of the stream.
                    first.setSoTimeout(5000);
                    InputStream raw = first.getInputStream();
                    assertEquals(-1, raw.read());
                }
                try (Socket second = server.accept()) {
                    PacketReader in = new PacketReader(second.getInputStream(), 1 << 20, Magic.REQ);
                    assertEquals(PacketType.SET_CLIENT_ID, in.read().type());
                    Packet canDo = in.read();
                    assertEquals(PacketType.CAN_DO, canDo.type());
                    assertEquals("f", canDo.argumentString(0));
                    // An unknown packet type from the server is a protocol error too.
                    answerEcho(second, in);
                    assertEquals(PacketType.GRAB_JOB_UNIQ, in.read().type());
                    second.getOutputStream().write(new byte[] {0, 'R', 'E', 'S', 0, 0, 0, 99, 0, 0, 0, 0});
                    second.getOutputStream().flush();
                    second.setSoTimeout(5000);
                    assertEquals(-1, second.getInputStream().read());
                }
                try (Socket third = server.accept()) {
                    assertTrue(third.isConnected());
                }
            } finally {
                worker.stop();
                assertTrue(worker.awaitTermination(Duration.ofSeconds(10)));
            }
        }
    }

    private static void answerEcho(Socket peer, PacketReader in) throws Exception {
        Packet echo = in.read();
        assertEquals(PacketType.ECHO_REQ, echo.type());
        peer.getOutputStream().write(Packet.of(Magic.RES, PacketType.ECHO_RES, echo.argument(0)).encode());
        peer.getOutputStream().flush();
    }

    @Test
    void aServerThatNeverAnswersGetsNoGrabAndIsLeftAfterTheReadTimeout() throws Exception {
        try (ServerSocket server = new ServerSocket(0, 5, InetAddress.getLoopbackAddress())) {
            server.setSoTimeout(10_000);
            Duration readTimeout = Duration.ofMillis(500);
            GearmanWorker worker = new GearmanWorker(List.of(new ServerAddress("127.0.0.1", server.getLocalPort())), 1,
                    1 << 20, null, new GearmanWorker.Settings(Duration.ofSeconds(2), readTimeout, Duration.ofMillis(50),
                    Duration.ofSeconds(5), Duration.ofMillis(20), Duration.ofMillis(100), Duration.ofSeconds(10)));
            worker.register("f", job -> job.complete(new byte[0]));
            worker.start();
            try {
                try (Socket silent = server.accept()) {
                    long start = System.nanoTime();
                    PacketReader in = new PacketReader(silent.getInputStream(), 1 << 20, Magic.REQ);
                    assertEquals(PacketType.CAN_DO, in.read().type());
                    assertEquals(PacketType.ECHO_REQ, in.read().type());
                    assertTrue(worker.isIdle(), "waiting for the echo holds no job slot");
                    // No answer: no grab follows, and the worker hangs up after the read timeout.
                    silent.setSoTimeout(5000);
                    assertThrows(java.io.EOFException.class, in::read);
                    long millis = Duration.ofNanos(System.nanoTime() - start).toMillis();
                    assertTrue(millis >= 400 && millis < 3000, "hung up after " + millis + " ms");
                }
                try (Socket again = server.accept()) { // and comes back
                    assertTrue(again.isConnected());
                }
                long stop = System.nanoTime();
                worker.stop();
                assertTrue(worker.awaitTermination(Duration.ofSeconds(2)));
                assertTrue(Duration.ofNanos(System.nanoTime() - stop).toMillis() < 1500);
            } finally {
                worker.stop();
            }
        }
    }

    @Test
    void stopIsNotHeldUpByALargeReplyToAServerThatStoppedReading() throws Exception {
        // The server assigns a job, then reads nothing more (frozen): the 32 MiB reply cannot go
        // out. Once stop() is called, a write that has not moved for a second closes the connection.
        try (ServerSocket server = new ServerSocket(0, 5, InetAddress.getLoopbackAddress())) {
            server.setSoTimeout(10_000);
            GearmanWorker worker = new GearmanWorker(List.of(new ServerAddress("127.0.0.1", server.getLocalPort())), 1,
                    1 << 20, null, FAST);
            java.util.concurrent.CountDownLatch answering = new java.util.concurrent.CountDownLatch(1);
            worker.register("f", job -> {
                answering.countDown();
                job.complete(new byte[32 * 1024 * 1024]);
            });
            worker.start();
            try (Socket peer = server.accept()) {
                PacketReader in = new PacketReader(peer.getInputStream(), 1 << 20, Magic.REQ);
                assertEquals(PacketType.CAN_DO, in.read().type());
                answerEcho(peer, in);
                assertEquals(PacketType.GRAB_JOB_UNIQ, in.read().type());
                peer.getOutputStream().write(Packet.of(Magic.RES, PacketType.JOB_ASSIGN_UNIQ, "H:1".getBytes(
                        StandardCharsets.US_ASCII), "f".getBytes(StandardCharsets.US_ASCII), new byte[0], new byte[0])
                        .encode());
                peer.getOutputStream().flush();
                assertTrue(answering.await(5, java.util.concurrent.TimeUnit.SECONDS));
                Thread.sleep(300); // the reply fills the socket buffers and its write blocks
                assertTrue(!worker.isIdle(), "the job is still answering");
                long stop = System.nanoTime();
                worker.stop();
                assertTrue(worker.awaitIdle(Duration.ofSeconds(5)), "stop() waited for the stuck reply");
                long millis = Duration.ofNanos(System.nanoTime() - stop).toMillis();
                assertTrue(millis < 2000, "stop took " + millis + " ms");
            } finally {
                worker.stop();
                worker.awaitTermination(Duration.ofSeconds(10));
            }
        }
    }

    @Test
    void aWriteToAServerThatStoppedReadingFailsInsteadOfBlockingForever() throws Exception {
        try (ServerSocket server = new ServerSocket(0, 5, InetAddress.getLoopbackAddress())) {
            Connection connection = Connection.open(new ServerAddress("127.0.0.1", server.getLocalPort()), 2000,
                    1 << 20, 300);
            try (Socket peer = server.accept()) { // accepts, never reads
                long start = System.nanoTime();
                byte[] big = new byte[64 * 1024 * 1024]; // far more than the socket buffers hold
                assertThrows(java.io.IOException.class,
                        () -> connection.sendWithData(PacketType.WORK_DATA, "H:1".getBytes(StandardCharsets.US_ASCII),
                                big, 0, big.length));
                long millis = Duration.ofNanos(System.nanoTime() - start).toMillis();
                assertTrue(millis < 10_000, "the stuck write took " + millis + " ms to fail");
                assertTrue(peer.isConnected());
            } finally {
                connection.close();
            }
        }
    }

    @Test
    void aPayloadWriterThatBreaksItsLengthClosesTheConnection() throws Exception {
        try (ServerSocket server = new ServerSocket(0, 5, InetAddress.getLoopbackAddress())) {
            Connection connection = Connection.open(new ServerAddress("127.0.0.1", server.getLocalPort()), 2000,
                    1 << 20, 0);
            try (Socket peer = server.accept()) {
                byte[] handle = "H:1".getBytes(StandardCharsets.US_ASCII);
                connection.sendWithData(PacketType.WORK_COMPLETE, handle, 3, out -> out.write(new byte[] {1, 2, 3}), true);
                assertThrows(ProtocolException.class, () -> connection.sendWithData(PacketType.WORK_COMPLETE, handle, 5,
                        out -> out.write(new byte[] {1, 2}), true));
                PacketReader in = new PacketReader(peer.getInputStream(), 1 << 20, Magic.REQ);
                Packet first = in.read();
                assertEquals(PacketType.WORK_COMPLETE, first.type());
                assertEquals(3, first.argumentLength(1));
                peer.setSoTimeout(5000);
                // No complete packet follows: the stream just ends.
                assertThrows(java.io.EOFException.class, in::read);
            } finally {
                connection.close();
            }
        }
    }

    @Test
    void anEmptyStreamIsACleanEndNotAProtocolError() {
        // PacketReader over an empty stream reports a clean end, not a protocol error.
        PacketReader reader = new PacketReader(new ByteArrayInputStream(new byte[0]), 10, null);
        try {
            reader.read();
        } catch (java.io.EOFException expected) {
            return;
        } catch (java.io.IOException other) {
            throw new AssertionError(other);
        }
        throw new AssertionError("no EOF");
    }
}
