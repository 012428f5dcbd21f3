package dev.bridge.runtime.gearman;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * One decoded packet. The arguments are views into the single body array the packet was read
 * into, so a large job payload is never copied on its way to the handler.
 */
public final class Packet {
    /** Bytes in a packet header: magic, type and body size. */
    public static final int HEADER_SIZE = 12;

    private final Magic magic;
    private final PacketType type;
    private final byte[] body;
    private final int[] starts;
    private final int[] ends;
    private final long dropped;

    Packet(Magic magic, PacketType type, byte[] body, int[] starts, int[] ends) {
        this(magic, type, body, starts, ends, 0);
    }

    private Packet(Magic magic, PacketType type, byte[] body, int[] starts, int[] ends, long dropped) {
        this.magic = magic;
        this.type = type;
        this.body = body;
        this.starts = starts;
        this.ends = ends;
        this.dropped = dropped;
    }

    /** The same packet, its last argument cut short by {@code dropped} bytes the reader threw away. */
    Packet withDroppedBytes(long dropped) {
        return new Packet(magic, type, body, starts, ends, dropped);
    }

    /** Bytes of the last argument the reader threw away unread (a payload over its limit); 0 normally. */
    public long droppedBytes() {
        return dropped;
    }

    /**
     * Splits a body into the type's arguments, exactly as gearmand does: the first n-1 end at a
     * NUL each, the last is the rest. A text last argument may end with a NUL some senders add
     * (gearmand's own WORK_FAIL does not, clients do): it is dropped.
     */
    static Packet parse(Magic magic, PacketType type, byte[] body) throws ProtocolException {
        int argc = type.argumentCount();
        if (argc == 0) {
            if (body.length != 0) {
                throw new ProtocolException(type + " carries no arguments, got a body of " + body.length + " bytes");
            }
            return new Packet(magic, type, body, new int[0], new int[0]);
        }
        int[] starts = new int[argc];
        int[] ends = new int[argc];
        int pos = 0;
        for (int i = 0; i < argc - 1; i++) {
            int nul = indexOfNul(body, pos);
            if (nul < 0) {
                throw new ProtocolException(type + " needs " + argc + " arguments, got " + (i + 1));
            }
            starts[i] = pos;
            ends[i] = nul;
            pos = nul + 1;
        }
        int end = body.length;
        if (!type.lastArgumentIsData() && end > pos && body[end - 1] == 0) {
            end--;
        }
        starts[argc - 1] = pos;
        ends[argc - 1] = end;
        return new Packet(magic, type, body, starts, ends);
    }

    private static int indexOfNul(byte[] body, int from) {
        for (int i = from; i < body.length; i++) {
            if (body[i] == 0) {
                return i;
            }
        }
        return -1;
    }

    /** Builds a packet from its arguments (copies them); mostly for tests and small packets. */
    public static Packet of(Magic magic, PacketType type, byte[]... args) throws ProtocolException {
        return parse(magic, type, encodeBody(type, args));
    }

    public Magic magic() {
        return magic;
    }

    public PacketType type() {
        return type;
    }

    public int argumentCount() {
        return starts.length;
    }

    /** A copy of argument {@code index}. */
    public byte[] argument(int index) {
        return Arrays.copyOfRange(body, starts[index], ends[index]);
    }

    /** Argument {@code index} as UTF-8 text. */
    public String argumentString(int index) {
        return new String(body, starts[index], ends[index] - starts[index], StandardCharsets.UTF_8);
    }

    /** The body array the arguments live in; read it through offset and length, never write it. */
    public byte[] body() {
        return body;
    }

    public int argumentOffset(int index) {
        return starts[index];
    }

    public int argumentLength(int index) {
        return ends[index] - starts[index];
    }

    /** The whole packet as it goes on the wire. */
    public byte[] encode() {
        byte[] out = new byte[HEADER_SIZE + body.length];
        writeHeader(out, magic, type, body.length);
        System.arraycopy(body, 0, out, HEADER_SIZE, body.length);
        return out;
    }

    /** The NUL-joined body of a packet with these arguments, checked against the type's layout. */
    static byte[] encodeBody(PacketType type, byte[]... args) throws ProtocolException {
        checkArguments(type, args);
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (int i = 0; i < args.length; i++) {
            if (i > 0) {
                out.write(0);
            }
            out.write(args[i], 0, args[i].length);
        }
        return out.toByteArray();
    }

    static void checkArguments(PacketType type, byte[]... args) throws ProtocolException {
        if (args.length != type.argumentCount()) {
            throw new ProtocolException(type + " takes " + type.argumentCount() + " argument(s), got " + args.length);
        }
        for (int i = 0; i < args.length - 1; i++) {
            if (indexOfNul(args[i], 0) >= 0) {
                throw new ProtocolException(type + ": only the last argument may contain NUL bytes");
            }
        }
    }

    static void writeHeader(byte[] out, Magic magic, PacketType type, long bodySize) {
        byte[] m = magic.bytes();
        System.arraycopy(m, 0, out, 0, 4);
        putInt(out, 4, type.number());
        putInt(out, 8, (int) bodySize);
    }

    private static void putInt(byte[] out, int offset, int value) {
        out[offset] = (byte) (value >>> 24);
        out[offset + 1] = (byte) (value >>> 16);
        out[offset + 2] = (byte) (value >>> 8);
        out[offset + 3] = (byte) value;
    }

    @Override
    public String toString() {
        return "Packet(" + magic + " " + type + ", " + body.length + " body bytes)";
    }
}
