package dev.bridge.runtime;

import com.google.protobuf.ByteOutput;
import com.google.protobuf.ByteString;
import com.google.protobuf.CodedInputStream;
import com.google.protobuf.DynamicMessage;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.Message;
import com.google.protobuf.UnsafeByteOperations;
import dev.bridge.v1.Encoding;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;

/** Encodes and decodes a message in either encoding the envelope names. */
public final class Codecs {
    private Codecs() {
    }

    /** Decodes {@code body} as {@code prototype}'s type in {@code encoding} (PROTOBUF or MSGPACK). */
    @SuppressWarnings("unchecked")
    public static <T extends Message> T decode(ByteString body, Encoding encoding, T prototype)
            throws DecodeException {
        if (encoding == Encoding.MSGPACK) {
            ArraySlice slice = ArraySlice.of(body);
            return MsgpackCodec.decode(slice.array, slice.offset, slice.length, prototype);
        }
        try {
            if (!body.isEmpty()) {
                ArraySlice slice = ArraySlice.of(body);
                byte[] normalized = ProtobufWire.normalize(prototype.getDescriptorForType(), slice.array,
                        slice.offset, slice.length);
                if (normalized != null) {
                    // Bytes protobuf-java would read otherwise than upb does (no encoder writes them).
                    body = UnsafeByteOperations.unsafeWrap(normalized);
                    slice = ArraySlice.of(body);
                }
                if (!(prototype instanceof DynamicMessage) && OneofSwitchBack.occursIn(
                        prototype.getDescriptorForType(), slice.array, slice.offset, slice.length)) {
                    // protobuf-java's generated parser would keep a stale oneof message here;
                    // DynamicMessage parses it right, and its bytes then hold the oneof once.
                    body = DynamicMessage.parseFrom(prototype.getDescriptorForType(), body).toByteString();
                }
            }
            // Bytes fields become views of the job's packet (never reused), not copies.
            CodedInputStream in = body.newCodedInput();
            in.enableAliasing(true);
            return (T) prototype.getParserForType().parseFrom(in);
        } catch (InvalidProtocolBufferException e) {
            throw new DecodeException("malformed protobuf " + prototype.getDescriptorForType().getFullName()
                    + ": " + e.getMessage(), e);
        }
    }

    /**
     * Decodes a bare job's whole payload (wire contract, section 8) as {@code prototype}'s type in
     * {@code encoding}: PROTOBUF, MSGPACK, JSON or RAW. Zero bytes are the empty message in PROTOBUF
     * and RAW; in JSON and MSGPACK only for a type without fields (section 8.1).
     */
    @SuppressWarnings("unchecked")
    public static <T extends Message> T decodeBare(byte[] data, int offset, int length, Encoding encoding,
            T prototype) throws DecodeException {
        return switch (encoding) {
            case JSON -> BareJsonCodec.decode(data, offset, length, prototype);
            case RAW -> RawCodec.decode(data, offset, length, prototype);
            case MSGPACK -> {
                if (length == 0) {
                    yield (T) emptyBarePayload(prototype, "MSGPACK");
                }
                Message.Builder builder = prototype.newBuilderForType();
                MsgpackCodec.decodeInto(data, offset, length, builder, false); // unknown keys refused (8.1)
                yield (T) builder.build();
            }
            default -> decode(UnsafeByteOperations.unsafeWrap(data, offset, length), Encoding.PROTOBUF, prototype);
        };
    }

    /**
     * Zero bytes of bare JSON or MSGPACK (section 8.1): the message of a type without fields
     * ({@code Empty}), else a decoding error — no encoder writes zero bytes for a message that has
     * fields, and a peer whose {@code json_encode} failed or who forgot to return sends exactly that.
     */
    static Message emptyBarePayload(Message prototype, String encoding) throws DecodeException {
        com.google.protobuf.Descriptors.Descriptor type = prototype.getDescriptorForType();
        if (!type.getFields().isEmpty()) {
            throw new DecodeException(encoding.equals("JSON")
                    ? "not a JSON " + type.getFullName() + ": the payload is empty (an empty message is written {})"
                    : "an empty payload is not a bare MSGPACK " + type.getFullName()
                            + " (an empty message is written 0x80)");
        }
        return prototype.getDefaultInstanceForType();
    }

    /** The message's bytes in a bare method's {@code encoding}: PROTOBUF, MSGPACK, JSON or RAW. */
    public static byte[] encodeBare(Message message, Encoding encoding) {
        return switch (encoding) {
            case JSON -> BareJsonCodec.encode(message);
            case RAW -> RawCodec.encode(message);
            default -> encode(message, encoding);
        };
    }

    /** The message's bytes in {@code encoding}. */
    public static byte[] encode(Message message, Encoding encoding) {
        return encoding == Encoding.MSGPACK ? MsgpackCodec.encode(message) : message.toByteArray();
    }

    /** The array behind a ByteString, reached without a copy when it is one flat array. */
    private static final class ArraySlice extends ByteOutput {
        byte[] array = new byte[0];
        int offset;
        int length;
        private int pieces;

        static ArraySlice of(ByteString bytes) {
            ArraySlice slice = new ArraySlice();
            try {
                UnsafeByteOperations.unsafeWriteTo(bytes, slice);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            if (slice.pieces > 1) {
                slice.array = bytes.toByteArray();
                slice.offset = 0;
                slice.length = slice.array.length;
            }
            return slice;
        }

        @Override
        public void write(byte value) {
            pieces = 2; // never called for array-backed strings; fall back to a copy
        }

        @Override
        public void write(byte[] value, int off, int len) {
            writeLazy(value, off, len);
        }

        @Override
        public void writeLazy(byte[] value, int off, int len) {
            pieces++;
            array = value;
            offset = off;
            length = len;
        }

        @Override
        public void write(ByteBuffer value) {
            pieces = 2;
        }

        @Override
        public void writeLazy(ByteBuffer value) {
            pieces = 2;
        }
    }
}
