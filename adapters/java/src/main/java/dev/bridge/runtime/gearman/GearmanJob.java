package dev.bridge.runtime.gearman;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import javax.crypto.Mac;

/**
 * A job a worker grabbed: what the server assigned, and the packets that report on it. A job ends
 * with exactly one of {@link #complete}, {@link #exception} or {@link #fail}; after that every
 * send is refused, so nothing follows a WORK_EXCEPTION. Safe to use from several threads.
 *
 * <p>With a {@link ReplySigner} ({@link #signReplies}), every WORK_DATA, WORK_COMPLETE and
 * WORK_EXCEPTION payload leaves with its MAC appended (wire contract, section 9.3).
 */
public final class GearmanJob {
    private static final byte[] EMPTY = new byte[0];
    private static final int MAC_SIZE = 32;

    private final Connection connection;
    private final byte[] handle;
    private final String function;
    private final byte[] unique;
    private final byte[] body;
    private final int payloadOffset;
    private final int payloadLength;
    private final long dropped;
    private final boolean flushOnEnd;
    private boolean ended;
    private ReplySigner signer;

    /**
     * @param flushOnEnd false when the caller flushes the connection right after the job (the
     *     worker's grab loop does, with its next GRAB_JOB_UNIQ)
     */
    GearmanJob(Connection connection, Packet assign, boolean flushOnEnd) {
        this.connection = connection;
        this.flushOnEnd = flushOnEnd;
        this.handle = assign.argument(0);
        this.function = assign.argumentString(1);
        int data;
        if (assign.type() == PacketType.JOB_ASSIGN_UNIQ) {
            this.unique = assign.argument(2);
            data = 3;
        } else {
            this.unique = EMPTY;
            data = 2;
        }
        this.body = assign.body();
        this.payloadOffset = assign.argumentOffset(data);
        this.payloadLength = assign.argumentLength(data);
        this.dropped = assign.droppedBytes();
    }

    public byte[] handle() {
        return handle.clone();
    }

    public String handleString() {
        return new String(handle, StandardCharsets.UTF_8);
    }

    public String function() {
        return function;
    }

    public byte[] unique() {
        return unique.clone();
    }

    /** A copy of the payload. */
    public byte[] payload() {
        return Arrays.copyOfRange(body, payloadOffset, payloadOffset + payloadLength);
    }

    /** The array holding the payload, shared, to read without a copy through offset and length. */
    public byte[] payloadArray() {
        return body;
    }

    public int payloadOffset() {
        return payloadOffset;
    }

    public int payloadLength() {
        return payloadLength;
    }

    /**
     * The payload's size as the job server sent it. Larger than {@link #payloadLength()} when the
     * worker dropped a payload over its limit while reading it (only its start is kept).
     */
    public long declaredPayloadLength() {
        return payloadLength + dropped;
    }

    /** From now on, every WORK_DATA, WORK_COMPLETE and WORK_EXCEPTION payload is signed by {@code signer}. */
    public synchronized void signReplies(ReplySigner signer) {
        this.signer = signer;
    }

    /** Whether replies are signed. */
    public synchronized boolean signed() {
        return signer != null;
    }

    /** WORK_DATA: one piece of a streamed reply. */
    public void sendData(byte[] data) throws IOException {
        sendData(data, 0, data.length);
    }

    public synchronized void sendData(byte[] data, int offset, int length) throws IOException {
        checkOpen();
        send(PacketType.WORK_DATA, EMPTY, data, offset, length, true);
    }

    /** WORK_DATA whose payload is {@code prefix} followed by {@code data} (a reply frame: header, body). */
    public synchronized void sendData(byte[] prefix, byte[] data) throws IOException {
        checkOpen();
        send(PacketType.WORK_DATA, prefix, data, 0, data.length, true);
    }

    /** WORK_WARNING: a warning that does not end the job. */
    public synchronized void sendWarning(byte[] text) throws IOException {
        checkOpen();
        connection.sendWithData(PacketType.WORK_WARNING, handle, text, 0, text.length);
    }

    /** WORK_STATUS: progress as numerator and denominator, written as decimal ASCII. */
    public synchronized void sendStatus(long numerator, long denominator) throws IOException {
        checkOpen();
        connection.send(PacketType.WORK_STATUS, handle, ascii(numerator), ascii(denominator));
    }

    /** WORK_COMPLETE with this reply; ends the job. */
    public void complete(byte[] reply) throws IOException {
        complete(reply, 0, reply.length);
    }

    public synchronized void complete(byte[] reply, int offset, int length) throws IOException {
        end();
        send(PacketType.WORK_COMPLETE, EMPTY, reply, offset, length, flushOnEnd);
    }

    /** WORK_COMPLETE whose payload is {@code prefix} followed by {@code reply}; ends the job. */
    public synchronized void complete(byte[] prefix, byte[] reply) throws IOException {
        end();
        send(PacketType.WORK_COMPLETE, prefix, reply, 0, reply.length, flushOnEnd);
    }

    /** WORK_COMPLETE whose reply {@code writer} writes, {@code length} bytes; ends the job. */
    public synchronized void complete(int length, PayloadWriter writer) throws IOException {
        end();
        if (signer == null) {
            connection.sendWithData(PacketType.WORK_COMPLETE, handle, length, writer, flushOnEnd);
            return;
        }
        Mac mac = signer.begin(PacketType.WORK_COMPLETE, length);
        connection.sendWithData(PacketType.WORK_COMPLETE, handle, length + MAC_SIZE, out -> {
            writer.writeTo(new OutputStream() {
                @Override
                public void write(int b) throws IOException {
                    out.write(b);
                    mac.update((byte) b);
                }

                @Override
                public void write(byte[] b, int off, int len) throws IOException {
                    out.write(b, off, len);
                    mac.update(b, off, len);
                }
            });
            out.write(mac.doFinal());
        }, flushOnEnd);
    }

    /** WORK_EXCEPTION with this payload; ends the job. */
    public synchronized void exception(byte[] payload) throws IOException {
        end();
        send(PacketType.WORK_EXCEPTION, EMPTY, payload, 0, payload.length, flushOnEnd);
    }

    /** WORK_FAIL: the worker gives up without an explanation; ends the job. */
    public synchronized void fail() throws IOException {
        end();
        connection.send(flushOnEnd, PacketType.WORK_FAIL, handle);
    }

    /** Whether complete, exception or fail was called. */
    public synchronized boolean isEnded() {
        return ended;
    }

    /** {@code prefix} then {@code data[offset, offset+length)} as the payload; signed when a signer is set. */
    private void send(PacketType type, byte[] prefix, byte[] data, int offset, int length, boolean flush)
            throws IOException {
        if (signer == null) {
            connection.sendWithData(type, handle, prefix, data, offset, length, flush);
            return;
        }
        Mac mac = signer.begin(type, (long) prefix.length + length);
        mac.update(prefix);
        mac.update(data, offset, length);
        byte[] tag = mac.doFinal();
        connection.sendWithData(type, handle, prefix.length + length + tag.length, out -> {
            out.write(prefix);
            out.write(data, offset, length);
            out.write(tag);
        }, flush);
    }

    private void checkOpen() {
        if (ended) {
            throw new IllegalStateException("job " + handleString() + " has already ended");
        }
    }

    private void end() {
        checkOpen();
        ended = true;
    }

    private static byte[] ascii(long value) {
        return Long.toString(value).getBytes(StandardCharsets.US_ASCII);
    }

    @Override
    public String toString() {
        return "GearmanJob(" + function + " " + handleString() + ", " + payloadLength + " bytes)";
    }
}
