package dev.bridge.runtime;

import com.google.protobuf.UnsafeByteOperations;
import java.io.IOException;
import java.util.Arrays;
import org.msgpack.core.MessageFormat;
import org.msgpack.core.MessageUnpacker;

/**
 * Skips the msgpack value under an unknown key (wire contract, 5.8: whatever its value) the way
 * bridge's Python codec reads it, so that the same bytes get the same answer: without recursion,
 * every declared length and count checked against the bytes left, every str checked to be UTF-8
 * (map keys included), and no chain of more than {@link #MAX_CONTAINERS} non-empty arrays and maps
 * (msgpack-python's unpacker stack; the enclosing message maps count too). Extensions of any
 * type, {@code nil} keys and repeated keys pass; {@code 0xc1} does not.
 */
final class MsgpackSkip {
    /** Open non-empty containers allowed in one chain, the top-level map included. */
    static final int MAX_CONTAINERS = 1023;

    private MsgpackSkip() {
    }

    /**
     * Skips one value. {@code data}/{@code offset} is the array the unpacker reads (its byte 0),
     * {@code end} the input's length; {@code openContainers} the non-empty containers around it.
     */
    static void skip(MessageUnpacker unpacker, byte[] data, int offset, long end, int openContainers)
            throws IOException, DecodeException {
        int[] left = new int[8]; // values still to skip in each open container; [0]: the value itself
        left[0] = 1;
        int top = 0;
        while (top >= 0) {
            if (left[top] == 0) {
                top--;
                continue;
            }
            left[top]--;
            if (!unpacker.hasNext()) {
                throw new DecodeException("truncated: input ends where a value is due");
            }
            MessageFormat format = unpacker.getNextFormat();
            long count;
            switch (format.getValueType()) {
                case MAP -> count = 2L * unpacker.unpackMapHeader();
                case ARRAY -> count = unpacker.unpackArrayHeader();
                case STRING -> {
                    int length = checked(unpacker.unpackRawStringHeader(), unpacker, end, "str");
                    int at = offset + (int) unpacker.getTotalReadBytes();
                    if (!UnsafeByteOperations.unsafeWrap(data, at, length).isValidUtf8()) {
                        throw new DecodeException("str is not valid UTF-8");
                    }
                    unpacker.readPayloadAsReference(length); // a view: the input is one array
                    continue;
                }
                case BINARY -> {
                    unpacker.readPayloadAsReference(checked(unpacker.unpackBinaryHeader(), unpacker, end, "bin"));
                    continue;
                }
                case EXTENSION -> {
                    int length = unpacker.unpackExtensionTypeHeader().getLength();
                    unpacker.readPayloadAsReference(checked(length, unpacker, end, "ext"));
                    continue;
                }
                default -> { // nil, boolean, integer, float; 0xc1 throws
                    unpacker.skipValue();
                    continue;
                }
            }
            if (count < 0 || count > end - unpacker.getTotalReadBytes()) {
                throw new DecodeException("truncated: " + format.getValueType().name().toLowerCase()
                        + " of " + count + " values announced, " + (end - unpacker.getTotalReadBytes())
                        + " bytes left");
            }
            if (count == 0) {
                continue;
            }
            if (openContainers + top + 1 > MAX_CONTAINERS) {
                throw new DecodeException("msgpack containers nested deeper than " + MAX_CONTAINERS);
            }
            if (++top == left.length) {
                left = Arrays.copyOf(left, left.length * 2);
            }
            left[top] = (int) count;
        }
    }

    private static int checked(int length, MessageUnpacker unpacker, long end, String what) throws DecodeException {
        long left = end - unpacker.getTotalReadBytes();
        if (length < 0 || length > left) {
            throw new DecodeException("truncated: " + what + " of " + length + " announced, " + left + " bytes left");
        }
        return length;
    }

}
