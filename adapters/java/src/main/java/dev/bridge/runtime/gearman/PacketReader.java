package dev.bridge.runtime.gearman;

import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.net.SocketTimeoutException;
import java.util.Arrays;

/**
 * Reads whole packets from a stream, however the bytes arrive. A read that times out
 * ({@link SocketTimeoutException}) keeps what was already read, so the next {@link #read()} goes
 * on where it stopped: socket timeouts are a way to look up, not a broken stream.
 *
 * <p>Bad magic, an unknown type, a body over {@code maxBody} or too few arguments raise
 * {@link ProtocolException} before the body is buffered; the reader then refuses to go on. The
 * body's buffer grows with the bytes received, not with the size the header announces.
 */
public final class PacketReader {
    /** The default body limit, as in the Python protocol layer: 256 MiB. */
    public static final int DEFAULT_MAX_BODY = 256 * 1024 * 1024;
    /**
     * A body up to this size is read into an array of its announced size at once; a larger one
     * into an array that doubles as its bytes arrive, so a header claiming a large body costs at
     * most twice the bytes that actually came (never the claim).
     */
    static final int INITIAL_BODY_BUFFER = 1024 * 1024;

    /** What is kept of a job assignment whose payload is dropped: its handle, function and unique, and a bit more. */
    static final int KEPT_OF_DROPPED = 64 * 1024;

    private final InputStream in;
    private final int maxBody;
    private final Magic expect;
    private final long dropPayloadsAbove;
    private byte[] skipBuffer;
    /** Bytes of the current body still to be read and thrown away. */
    private long skipLeft;
    private long dropped;
    private final byte[] header = new byte[Packet.HEADER_SIZE];
    private int headerFilled;
    private byte[] body;
    private int bodySize;
    private int bodyFilled;
    private Magic magic;
    private PacketType type;
    private ProtocolException broken;

    /**
     * @param expect the magic to accept ({@link Magic#RES} on a worker), or null for both
     */
    public PacketReader(InputStream in, int maxBody, Magic expect) {
        this(in, maxBody, expect, Long.MAX_VALUE);
    }

    /**
     * @param dropPayloadsAbove a JOB_ASSIGN / JOB_ASSIGN_UNIQ whose body is larger than this is
     *     read without being kept: its first {@link #KEPT_OF_DROPPED} bytes (the handle, function
     *     and unique) make the packet, the rest is thrown away as it arrives, whatever its size
     *     ({@code maxBody} then does not apply), and {@link Packet#droppedBytes()} says how much
     */
    public PacketReader(InputStream in, int maxBody, Magic expect, long dropPayloadsAbove) {
        if (maxBody < 0) {
            throw new IllegalArgumentException("maxBody must be >= 0");
        }
        this.in = in;
        this.maxBody = maxBody;
        this.expect = expect;
        this.dropPayloadsAbove = dropPayloadsAbove;
    }

    /**
     * The next packet. Throws {@link EOFException} when the stream ends (cleanly between packets
     * or not), {@link ProtocolException} on broken framing, and lets a socket timeout through
     * with the partial packet kept.
     */
    public Packet read() throws IOException {
        if (broken != null) {
            throw new ProtocolException("stream already broken: " + broken.getMessage());
        }
        while (headerFilled < Packet.HEADER_SIZE) {
            int n = in.read(header, headerFilled, Packet.HEADER_SIZE - headerFilled);
            if (n < 0) {
                throw new EOFException(headerFilled == 0 ? "connection closed"
                        : "connection closed inside a packet header");
            }
            headerFilled += n;
            if (headerFilled == Packet.HEADER_SIZE) {
                startBody();
            }
        }
        while (bodyFilled < bodySize) {
            if (bodyFilled == body.length) {
                // The header's size is a claim: the buffer grows with the bytes that really arrive.
                body = Arrays.copyOf(body, (int) Math.min(bodySize, 2L * body.length));
            }
            int n = in.read(body, bodyFilled, body.length - bodyFilled);
            if (n < 0) {
                throw new EOFException("connection closed inside a " + type + " body");
            }
            bodyFilled += n;
        }
        while (skipLeft > 0) {
            if (skipBuffer == null) {
                skipBuffer = new byte[64 * 1024];
            }
            int n = in.read(skipBuffer, 0, (int) Math.min(skipLeft, skipBuffer.length));
            if (n < 0) {
                throw new EOFException("connection closed inside a " + type + " body");
            }
            skipLeft -= n;
        }
        byte[] complete = body;
        Magic completeMagic = magic;
        PacketType completeType = type;
        long completeDropped = dropped;
        headerFilled = 0;
        body = null;
        bodyFilled = 0;
        dropped = 0;
        try {
            Packet packet = Packet.parse(completeMagic, completeType, complete);
            return completeDropped == 0 ? packet : packet.withDroppedBytes(completeDropped);
        } catch (ProtocolException e) {
            broken = e;
            throw e;
        }
    }

    private void startBody() throws ProtocolException {
        try {
            Magic m = Magic.of(header, 0);
            if (m == null) {
                throw new ProtocolException(String.format(
                        "bad magic %02x %02x %02x %02x: not a Gearman packet",
                        header[0], header[1], header[2], header[3]));
            }
            if (expect != null && m != expect) {
                throw new ProtocolException("unexpected magic " + m + ", want " + expect);
            }
            long number = readUint32(header, 4);
            PacketType t = PacketType.fromNumber(number);
            if (t == null) {
                throw new ProtocolException("unknown packet type " + number);
            }
            long size = readUint32(header, 8);
            boolean assignment = t == PacketType.JOB_ASSIGN || t == PacketType.JOB_ASSIGN_UNIQ;
            if (assignment && size > dropPayloadsAbove && size > KEPT_OF_DROPPED) {
                dropped = size - KEPT_OF_DROPPED;
                skipLeft = dropped;
                size = KEPT_OF_DROPPED;
            } else if (size > maxBody) {
                throw new ProtocolException(
                        t + " body of " + size + " bytes exceeds the limit of " + maxBody);
            }
            magic = m;
            type = t;
            bodySize = (int) size;
            body = new byte[Math.min(bodySize, INITIAL_BODY_BUFFER)];
            bodyFilled = 0;
        } catch (ProtocolException e) {
            broken = e;
            throw e;
        }
    }

    private static long readUint32(byte[] b, int offset) {
        return ((b[offset] & 0xffL) << 24) | ((b[offset + 1] & 0xffL) << 16)
                | ((b[offset + 2] & 0xffL) << 8) | (b[offset + 3] & 0xffL);
    }
}
