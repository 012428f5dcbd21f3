package dev.bridge.runtime;

import dev.bridge.v1.Encoding;
import java.nio.charset.StandardCharsets;
import java.security.SecureRandom;
import java.util.zip.CRC32;

/**
 * The reply frame (wire contract, section 3): the 23-byte header in front of every WORK_DATA and
 * WORK_COMPLETE of a bridge method. Big-endian: magic {@code 0xB7}, kind, encoding, type tag
 * (CRC-32 of the reply type's full name), attempt id, sequence; then the body.
 */
public final class ReplyFrame {
    /** Bytes before the body. */
    public static final int HEADER_SIZE = 23;
    public static final byte MAGIC = (byte) 0xB7;
    /** WORK_COMPLETE of a unary rpc: the encoded reply. */
    public static final byte UNARY_REPLY = 1;
    /** WORK_DATA of a streaming rpc: one encoded item; sequence = its index. */
    public static final byte STREAM_ITEM = 2;
    /** WORK_COMPLETE of a streaming rpc: no body; sequence = the number of items sent. */
    public static final byte STREAM_END = 3;
    /** WORK_DATA before a run's first status or warning when it has sent no data yet; no body. */
    public static final byte ATTEMPT_MARKER = 4;

    private static final SecureRandom RANDOM = new SecureRandom();

    private ReplyFrame() {
    }

    /** The type tag of a message type: CRC-32 (zlib's) of its UTF-8 full name. */
    public static int typeTag(String fullName) {
        CRC32 crc = new CRC32();
        crc.update(fullName.getBytes(StandardCharsets.UTF_8));
        return (int) crc.getValue();
    }

    /** A random attempt id for one run of a job: 64 bits, never 0. */
    public static long newAttemptId() {
        long id;
        do {
            id = RANDOM.nextLong();
        } while (id == 0);
        return id;
    }

    /** The encoding byte: 1 for protobuf, 2 for msgpack (the encoding the reply is written in). */
    public static byte encodingByte(Encoding encoding) {
        return encoding == Encoding.MSGPACK ? (byte) 2 : (byte) 1;
    }

    /** A new header. */
    public static byte[] header(byte kind, byte encoding, int typeTag, long attempt, long sequence) {
        byte[] h = new byte[HEADER_SIZE];
        h[0] = MAGIC;
        h[1] = kind;
        h[2] = encoding;
        putInt(h, 3, typeTag);
        putLong(h, 7, attempt);
        putLong(h, 15, sequence);
        return h;
    }

    private static void putInt(byte[] b, int at, int v) {
        for (int i = 0; i < 4; i++) {
            b[at + i] = (byte) (v >>> (24 - 8 * i));
        }
    }

    private static void putLong(byte[] b, int at, long v) {
        for (int i = 0; i < 8; i++) {
            b[at + i] = (byte) (v >>> (56 - 8 * i));
        }
    }
}
