package dev.bridge.runtime.gearman;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class PacketReaderTest {
    private static byte[] utf8(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    private static byte[] binaryPayload() {
        byte[] payload = new byte[1000];
        for (int i = 0; i < payload.length; i++) {
            payload[i] = (byte) (i % 256); // every byte value, NULs included
        }
        return payload;
    }

    /** Hands out at most {@code chunk} bytes per read, so every packet arrives split. */
    private static final class Trickle extends InputStream {
        private final byte[] data;
        private final int chunk;
        private int pos;

        Trickle(byte[] data, int chunk) {
            this.data = data;
            this.chunk = chunk;
        }

        @Override
        public int read() {
            return pos < data.length ? data[pos++] & 0xff : -1;
        }

        @Override
        public int read(byte[] b, int off, int len) {
            if (pos >= data.length) {
                return -1;
            }
            int n = Math.min(Math.min(len, chunk), data.length - pos);
            System.arraycopy(data, pos, b, off, n);
            pos += n;
            return n;
        }
    }

    @Test
    void everyTypeRoundTripsWithItsArgumentCount() throws IOException {
        for (PacketType type : PacketType.values()) {
            byte[][] args = new byte[type.argumentCount()][];
            for (int i = 0; i < args.length; i++) {
                boolean last = i == args.length - 1;
                args[i] = last && type.lastArgumentIsData() ? binaryPayload() : utf8("arg" + i);
            }
            Packet packet = Packet.of(Magic.RES, type, args);
            Packet back = new PacketReader(new ByteArrayInputStream(packet.encode()), 1 << 20, null).read();
            assertEquals(type, back.type());
            assertEquals(Magic.RES, back.magic());
            assertEquals(args.length, back.argumentCount());
            for (int i = 0; i < args.length; i++) {
                assertArrayEquals(args[i], back.argument(i), type + " argument " + i);
            }
        }
    }

    @Test
    void typeNumbersMatchTheProtocol() {
        assertEquals(1, PacketType.CAN_DO.number());
        assertEquals(4, PacketType.PRE_SLEEP.number());
        assertEquals(6, PacketType.NOOP.number());
        assertEquals(13, PacketType.WORK_COMPLETE.number());
        assertEquals(25, PacketType.WORK_EXCEPTION.number());
        assertEquals(30, PacketType.GRAB_JOB_UNIQ.number());
        assertEquals(31, PacketType.JOB_ASSIGN_UNIQ.number());
        assertEquals(42, PacketType.STATUS_RES_UNIQUE.number());
        assertEquals(null, PacketType.fromNumber(0));
        assertEquals(null, PacketType.fromNumber(5));
        assertEquals(null, PacketType.fromNumber(43));
    }

    @Test
    void splitReadsOneByteAtATimeGiveTheSamePackets() throws IOException {
        byte[] payload = binaryPayload();
        ByteArrayOutputStream stream = new ByteArrayOutputStream();
        stream.writeBytes(Packet.of(Magic.RES, PacketType.NOOP).encode());
        stream.writeBytes(Packet.of(Magic.RES, PacketType.JOB_ASSIGN_UNIQ,
                utf8("H:host:1"), utf8("fn"), utf8("uniq"), payload).encode());
        stream.writeBytes(Packet.of(Magic.RES, PacketType.NO_JOB).encode());
        for (int chunk : new int[] {1, 2, 5, 11, 13, 4096}) {
            PacketReader reader = new PacketReader(new Trickle(stream.toByteArray(), chunk), 1 << 20, Magic.RES);
            assertEquals(PacketType.NOOP, reader.read().type());
            Packet assign = reader.read();
            assertEquals(PacketType.JOB_ASSIGN_UNIQ, assign.type());
            assertEquals("H:host:1", assign.argumentString(0));
            assertEquals("fn", assign.argumentString(1));
            assertEquals("uniq", assign.argumentString(2));
            assertArrayEquals(payload, assign.argument(3));
            assertEquals(PacketType.NO_JOB, reader.read().type());
            assertThrows(EOFException.class, reader::read);
        }
    }

    @Test
    void dataArgumentKeepsNulsAndEmptyPayloadIsEmpty() throws IOException {
        byte[] nuls = {0, 0, 'a', 0};
        Packet p = read(Packet.of(Magic.RES, PacketType.JOB_ASSIGN_UNIQ, utf8("H:1"), utf8("f"), new byte[0], nuls).encode());
        assertArrayEquals(nuls, p.argument(3));
        assertEquals(0, p.argumentLength(2));
        Packet empty = read(Packet.of(Magic.RES, PacketType.WORK_COMPLETE, utf8("H:1"), new byte[0]).encode());
        assertEquals(0, empty.argumentLength(1));
    }

    @Test
    void textLastArgumentMayEndWithANul() throws IOException {
        // gearmand's own WORK_FAIL omits it, other senders add it: both mean the same handle.
        byte[] withNul = header(Magic.RES, 14, 4);
        byte[] packet = concat(withNul, new byte[] {'H', ':', '1', 0});
        assertEquals("H:1", read(packet).argumentString(0));
    }

    @Test
    void badMagicIsAProtocolError() {
        byte[] packet = header(Magic.RES, PacketType.NOOP.number(), 0);
        packet[1] = 'X';
        ProtocolException e = assertThrows(ProtocolException.class, () -> read(packet));
        assertTrue(e.getMessage().contains("magic"), e.getMessage());
    }

    @Test
    void requestMagicIsRefusedWhenResponsesAreExpected() {
        byte[] packet = header(Magic.REQ, PacketType.NOOP.number(), 0);
        assertThrows(ProtocolException.class,
                () -> new PacketReader(new ByteArrayInputStream(packet), 100, Magic.RES).read());
    }

    @Test
    void unknownTypesAreProtocolErrors() {
        for (int number : new int[] {0, 5, 43, 1000, -1}) {
            byte[] packet = header(Magic.RES, number, 0);
            ProtocolException e = assertThrows(ProtocolException.class, () -> read(packet));
            assertTrue(e.getMessage().contains("unknown packet type"), e.getMessage());
        }
    }

    @Test
    void overLimitBodyFailsBeforeItIsBuffered() throws IOException {
        // Announces 4 GiB - 1 with no body at all: refused on the header alone.
        byte[] packet = header(Magic.RES, PacketType.WORK_DATA.number(), -1);
        PacketReader reader = new PacketReader(new ByteArrayInputStream(packet), 1024, null);
        ProtocolException e = assertThrows(ProtocolException.class, reader::read);
        assertTrue(e.getMessage().contains("exceeds the limit"), e.getMessage());
        // The stream is lost after a protocol error: the reader refuses to go on.
        assertThrows(ProtocolException.class, reader::read);
    }

    @Test
    void bodyAtTheLimitIsAccepted() throws IOException {
        Packet p = Packet.of(Magic.RES, PacketType.ECHO_RES, new byte[1024]);
        assertEquals(1024, new PacketReader(new ByteArrayInputStream(p.encode()), 1024, null).read().argumentLength(0));
    }

    @Test
    void tooFewArgumentsOrAnUnexpectedBodyAreProtocolErrors() {
        byte[] noNul = concat(header(Magic.RES, PacketType.JOB_ASSIGN_UNIQ.number(), 3), utf8("H:1"));
        assertThrows(ProtocolException.class, () -> read(noNul));
        byte[] noopWithBody = concat(header(Magic.RES, PacketType.NOOP.number(), 1), new byte[] {'x'});
        assertThrows(ProtocolException.class, () -> read(noopWithBody));
    }

    @Test
    void encodingChecksTheLayout() {
        assertThrows(ProtocolException.class, () -> Packet.of(Magic.REQ, PacketType.CAN_DO));
        assertThrows(ProtocolException.class,
                () -> Packet.of(Magic.REQ, PacketType.WORK_COMPLETE, new byte[] {'H', 0}, new byte[0]));
    }

    @Test
    void aTimeoutInsideAPacketKeepsWhatWasRead() throws IOException {
        byte[] packet = Packet.of(Magic.RES, PacketType.WORK_DATA, utf8("H:1"), binaryPayload()).encode();
        // Delivers 7 bytes, then times out, then the rest: the partial header must survive.
        InputStream flaky = new InputStream() {
            private int pos;
            private final List<Integer> plan = new ArrayList<>(List.of(7, -2, 20, -2, Integer.MAX_VALUE));

            @Override
            public int read() {
                throw new UnsupportedOperationException();
            }

            @Override
            public int read(byte[] b, int off, int len) throws IOException {
                if (pos >= packet.length) {
                    return -1;
                }
                int step = plan.isEmpty() ? Integer.MAX_VALUE : plan.remove(0);
                if (step == -2) {
                    throw new SocketTimeoutException("read timed out");
                }
                int n = Math.min(Math.min(step, len), packet.length - pos);
                System.arraycopy(packet, pos, b, off, n);
                pos += n;
                return n;
            }
        };
        PacketReader reader = new PacketReader(flaky, 1 << 20, null);
        assertThrows(SocketTimeoutException.class, reader::read);
        assertThrows(SocketTimeoutException.class, reader::read);
        Packet p = reader.read();
        assertEquals(PacketType.WORK_DATA, p.type());
        assertArrayEquals(binaryPayload(), p.argument(1));
    }

    @Test
    void eofInsideAPacketIsReported() throws ProtocolException {
        byte[] packet = Packet.of(Magic.RES, PacketType.WORK_DATA, utf8("H:1"), binaryPayload()).encode();
        byte[] cut = java.util.Arrays.copyOf(packet, 40);
        assertThrows(EOFException.class, () -> read(cut));
        assertThrows(EOFException.class, () -> read(java.util.Arrays.copyOf(packet, 5)));
    }

    @Test
    void serverAddressesParse() {
        assertEquals(new ServerAddress("127.0.0.1", 4730), ServerAddress.parse("127.0.0.1"));
        assertEquals(new ServerAddress("h", 1), ServerAddress.parse(" h:1 "));
        assertEquals(new ServerAddress("::1", 4731), ServerAddress.parse("[::1]:4731"));
        assertEquals(List.of(new ServerAddress("a", 1), new ServerAddress("b", 2)), ServerAddress.parseList("a:1,b:2"));
        assertThrows(IllegalArgumentException.class, () -> ServerAddress.parse("h:notaport"));
        assertThrows(IllegalArgumentException.class, () -> ServerAddress.parseList(" , "));
    }

    @Test
    void aJobOverTheDropLimitIsReadWithoutKeepingItsPayload() throws Exception {
        byte[] payload = new byte[20 * 1024 * 1024];
        java.util.Arrays.fill(payload, (byte) 7);
        byte[] assign = Packet.of(Magic.RES, PacketType.JOB_ASSIGN_UNIQ, bytes("H:x:1"), bytes("fn"), bytes("u1"),
                payload).encode();
        byte[] noop = Packet.of(Magic.RES, PacketType.NOOP).encode();
        // maxBody (1 MiB) is lower than the packet: a dropped payload does not count against it
        PacketReader reader = new PacketReader(new Trickle(concat(assign, noop), 1 << 16), 1 << 20, Magic.RES,
                1 << 20);
        var threads = (com.sun.management.ThreadMXBean) java.lang.management.ManagementFactory.getThreadMXBean();
        long before = threads.getCurrentThreadAllocatedBytes();
        Packet p = reader.read();
        long allocated = threads.getCurrentThreadAllocatedBytes() - before;
        assertEquals(PacketType.JOB_ASSIGN_UNIQ, p.type());
        assertEquals("H:x:1", p.argumentString(0));
        assertEquals("fn", p.argumentString(1));
        assertEquals("u1", p.argumentString(2));
        assertEquals(payload.length, p.argumentLength(3) + p.droppedBytes());
        assertTrue(p.droppedBytes() > payload.length - PacketReader.KEPT_OF_DROPPED);
        assertTrue(allocated < 1024 * 1024, "reading a dropped 20 MiB payload allocated " + allocated + " bytes");
        assertEquals(PacketType.NOOP, reader.read().type()); // the stream stays in step
        // Under the limit, the same packet is kept whole; other packet types are never dropped.
        Packet kept = new PacketReader(new ByteArrayInputStream(assign), 1 << 26, Magic.RES, 1 << 26).read();
        assertEquals(0, kept.droppedBytes());
        assertArrayEquals(payload, kept.argument(3));
        byte[] data = Packet.of(Magic.RES, PacketType.WORK_DATA, bytes("H:x:1"), payload).encode();
        assertThrows(ProtocolException.class,
                () -> new PacketReader(new ByteArrayInputStream(data), 1 << 20, Magic.RES, 1 << 20).read());
    }

    private static byte[] bytes(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    private static Packet read(byte[] bytes) throws IOException {
        return new PacketReader(new ByteArrayInputStream(bytes), 1 << 20, null).read();
    }

    private static byte[] header(Magic magic, int type, int size) {
        byte[] h = new byte[12];
        System.arraycopy(magic == Magic.REQ ? new byte[] {0, 'R', 'E', 'Q'} : new byte[] {0, 'R', 'E', 'S'}, 0, h, 0, 4);
        for (int i = 0; i < 4; i++) {
            h[4 + i] = (byte) (type >>> (24 - 8 * i));
            h[8 + i] = (byte) (size >>> (24 - 8 * i));
        }
        return h;
    }

    private static byte[] concat(byte[] a, byte[] b) {
        byte[] out = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }
}
