package dev.bridge.runtime;

import com.google.protobuf.ByteString;
import com.google.protobuf.Descriptors.Descriptor;
import com.google.protobuf.Descriptors.EnumValueDescriptor;
import com.google.protobuf.Descriptors.FieldDescriptor;
import com.google.protobuf.Descriptors.OneofDescriptor;
import com.google.protobuf.Message;
import com.google.protobuf.MessageOrBuilder;
import com.google.protobuf.UnsafeByteOperations;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.math.BigInteger;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.msgpack.core.MessageBufferPacker;
import org.msgpack.core.MessageFormat;
import org.msgpack.core.MessagePack;
import org.msgpack.core.MessagePackException;
import org.msgpack.core.MessagePacker;
import org.msgpack.core.MessageUnpacker;
import org.msgpack.value.ValueType;

/**
 * The msgpack mapping of protobuf messages (wire contract, section 5), driven by the protobuf
 * descriptors: one codec for every message type, generated or dynamic.
 *
 * <p>Encoding writes a map keyed by the {@code .proto} field names in field-number order, integers
 * in their smallest form, floats always as float 64, strings and bytes with the smallest header,
 * map entries sorted by key. Decoding is lenient only where the contract allows it (any integer
 * width, float 32 or 64, unknown keys skipped, nil as unset) and throws {@link DecodeException}
 * for everything else. An unknown key's value is skipped as bridge's Python codec reads it
 * ({@link MsgpackSkip}: strs UTF-8, nesting bounded).
 */
public final class MsgpackCodec {
    /** Nesting deeper than this is refused, as protobuf's own parser refuses it. */
    public static final int MAX_DEPTH = 100;

    private static final BigInteger TWO_64 = BigInteger.ONE.shiftLeft(64);
    private static final int ADD_PAYLOAD_THRESHOLD = 4096;
    private static final Map<Descriptor, FieldDescriptor[]> FIELDS_BY_NUMBER = new ConcurrentHashMap<>();
    private static final Map<FieldDescriptor, byte[]> KEYS = new ConcurrentHashMap<>();

    private MsgpackCodec() {
    }

    // ---------------------------------------------------------------------------------- encoding

    /** The message's msgpack bytes. */
    public static byte[] encode(MessageOrBuilder message) {
        MessageBufferPacker packer = MessagePack.newDefaultBufferPacker();
        try {
            writeMessage(packer, message);
            return packer.toByteArray();
        } catch (IOException e) {
            // A buffer packer writes to memory only.
            throw new UncheckedIOException(e);
        }
    }

    private static FieldDescriptor[] fieldsByNumber(Descriptor descriptor) {
        return FIELDS_BY_NUMBER.computeIfAbsent(descriptor, d -> {
            FieldDescriptor[] fields = d.getFields().toArray(new FieldDescriptor[0]);
            Arrays.sort(fields, Comparator.comparingInt(FieldDescriptor::getNumber));
            return fields;
        });
    }

    private static byte[] key(FieldDescriptor field) {
        return KEYS.computeIfAbsent(field, f -> f.getName().getBytes(StandardCharsets.UTF_8));
    }

    private static void writeMessage(MessagePacker packer, MessageOrBuilder message) throws IOException {
        FieldDescriptor[] fields = fieldsByNumber(message.getDescriptorForType());
        boolean[] written = new boolean[fields.length];
        int count = 0;
        for (int i = 0; i < fields.length; i++) {
            if (isWritten(message, fields[i])) {
                written[i] = true;
                count++;
            }
        }
        packer.packMapHeader(count);
        for (int i = 0; i < fields.length; i++) {
            if (!written[i]) {
                continue;
            }
            FieldDescriptor field = fields[i];
            byte[] key = key(field);
            packer.packRawStringHeader(key.length);
            packer.writePayload(key);
            if (field.isMapField()) {
                writeMap(packer, field, message);
            } else if (field.isRepeated()) {
                int n = message.getRepeatedFieldCount(field);
                packer.packArrayHeader(n);
                for (int j = 0; j < n; j++) {
                    writeValue(packer, field, message.getRepeatedField(field, j));
                }
            } else {
                writeValue(packer, field, message.getField(field));
            }
        }
    }

    private static boolean isWritten(MessageOrBuilder message, FieldDescriptor field) {
        if (field.isRepeated()) {
            return message.getRepeatedFieldCount(field) > 0;
        }
        if (field.hasPresence()) {
            return message.hasField(field);
        }
        Object value = message.getField(field);
        return switch (field.getJavaType()) {
            case INT -> (Integer) value != 0;
            case LONG -> (Long) value != 0L;
            // -0.0 differs from the default: its bit pattern is not +0.0.
            case FLOAT -> Float.floatToRawIntBits((Float) value) != 0;
            case DOUBLE -> Double.doubleToRawLongBits((Double) value) != 0L;
            case BOOLEAN -> (Boolean) value;
            case STRING -> !((String) value).isEmpty();
            case BYTE_STRING -> !((ByteString) value).isEmpty();
            case ENUM -> ((EnumValueDescriptor) value).getNumber() != 0;
            case MESSAGE -> message.hasField(field);
        };
    }

    private static void writeValue(MessagePacker packer, FieldDescriptor field, Object value) throws IOException {
        switch (field.getType()) {
            case INT32, SINT32, SFIXED32 -> packer.packLong((Integer) value);
            case INT64, SINT64, SFIXED64 -> packer.packLong((Long) value);
            case UINT32, FIXED32 -> packer.packLong(Integer.toUnsignedLong((Integer) value));
            case UINT64, FIXED64 -> {
                long v = (Long) value;
                if (v >= 0) {
                    packer.packLong(v);
                } else {
                    packer.packBigInteger(BigInteger.valueOf(v).add(TWO_64));
                }
            }
            case BOOL -> packer.packBoolean((Boolean) value);
            case FLOAT -> packer.packDouble(canonicalDouble((Float) value));
            case DOUBLE -> packer.packDouble(canonicalDouble((Double) value));
            case STRING -> {
                // Own UTF-8 bytes and header, so the smallest str form is chosen however long the text.
                byte[] utf8 = ((String) value).getBytes(StandardCharsets.UTF_8);
                packer.packRawStringHeader(utf8.length);
                writePayload(packer, utf8);
            }
            case BYTES -> {
                ByteString bytes = (ByteString) value;
                packer.packBinaryHeader(bytes.size());
                writePayload(packer, bytes.toByteArray());
            }
            case ENUM -> packer.packLong(((EnumValueDescriptor) value).getNumber());
            case MESSAGE, GROUP -> writeMessage(packer, (MessageOrBuilder) value);
        }
    }

    private static double canonicalDouble(double value) {
        // Every NaN is written as the one quiet NaN, 0x7ff8000000000000.
        return Double.isNaN(value) ? Double.NaN : value;
    }

    private static void writePayload(MessagePacker packer, byte[] bytes) throws IOException {
        if (bytes.length >= ADD_PAYLOAD_THRESHOLD) {
            packer.addPayload(bytes); // a reference, not a copy: the array is ours and never changes
        } else {
            packer.writePayload(bytes);
        }
    }

    private static void writeMap(MessagePacker packer, FieldDescriptor field, MessageOrBuilder message)
            throws IOException {
        FieldDescriptor keyField = field.getMessageType().findFieldByNumber(1);
        FieldDescriptor valueField = field.getMessageType().findFieldByNumber(2);
        int n = message.getRepeatedFieldCount(field);
        List<Message> entries = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            entries.add((Message) message.getRepeatedField(field, i));
        }
        Comparator<Object> order = keyOrder(keyField);
        entries.sort((a, b) -> order.compare(a.getField(keyField), b.getField(keyField)));
        // A map holds each key once; should a message carry a key twice, the last one wins, as in protobuf.
        List<Message> unique = new ArrayList<>(n);
        for (Message entry : entries) {
            int last = unique.size() - 1;
            if (last >= 0 && order.compare(unique.get(last).getField(keyField), entry.getField(keyField)) == 0) {
                unique.set(last, entry);
            } else {
                unique.add(entry);
            }
        }
        packer.packMapHeader(unique.size());
        for (Message entry : unique) {
            writeValue(packer, keyField, entry.getField(keyField));
            writeValue(packer, valueField, entry.getField(valueField));
        }
    }

    private static Comparator<Object> keyOrder(FieldDescriptor keyField) {
        return switch (keyField.getType()) {
            case UINT32, FIXED32 -> (a, b) -> Integer.compareUnsigned((Integer) a, (Integer) b);
            case UINT64, FIXED64 -> (a, b) -> Long.compareUnsigned((Long) a, (Long) b);
            case INT32, SINT32, SFIXED32 -> (a, b) -> Integer.compare((Integer) a, (Integer) b);
            case INT64, SINT64, SFIXED64 -> (a, b) -> Long.compare((Long) a, (Long) b);
            case BOOL -> (a, b) -> Boolean.compare((Boolean) a, (Boolean) b);
            // By UTF-8 bytes: String.compareTo orders UTF-16 units, which differs above U+FFFF.
            case STRING -> (a, b) -> Arrays.compareUnsigned(
                    ((String) a).getBytes(StandardCharsets.UTF_8), ((String) b).getBytes(StandardCharsets.UTF_8));
            default -> throw new IllegalArgumentException("not a map key type: " + keyField.getType());
        };
    }

    // ---------------------------------------------------------------------------------- decoding

    /** Decodes {@code data} as a message of {@code prototype}'s type. */
    @SuppressWarnings("unchecked")
    public static <T extends Message> T decode(byte[] data, T prototype) throws DecodeException {
        return decode(data, 0, data.length, prototype);
    }

    @SuppressWarnings("unchecked")
    public static <T extends Message> T decode(byte[] data, int offset, int length, T prototype)
            throws DecodeException {
        Message.Builder builder = prototype.newBuilderForType();
        decodeInto(data, offset, length, builder);
        return (T) builder.build();
    }

    /** Decodes {@code data} into {@code builder}, merging into what it already holds. */
    public static void decodeInto(byte[] data, int offset, int length, Message.Builder builder)
            throws DecodeException {
        decodeInto(data, offset, length, builder, true);
    }

    /** As above; {@code skipUnknownKeys} false for a bare payload (wire contract 8.1): an unknown key is an error. */
    public static void decodeInto(byte[] data, int offset, int length, Message.Builder builder,
            boolean skipUnknownKeys) throws DecodeException {
        if (length == 0) {
            return; // zero bytes: every field unset (encoders still write 0x80)
        }
        Reader reader = new Reader(data, offset, length, skipUnknownKeys);
        try {
            reader.readMessage(builder, 0);
            if (reader.unpacker.hasNext()) {
                throw new DecodeException("trailing bytes after the "
                        + builder.getDescriptorForType().getFullName() + " message");
            }
        } catch (MessagePackException | IOException e) {
            throw new DecodeException("malformed msgpack: " + e.getMessage(), e);
        } catch (IllegalArgumentException | ClassCastException e) {
            throw new DecodeException("msgpack does not fit "
                    + builder.getDescriptorForType().getFullName() + ": " + e.getMessage(), e);
        }
    }

    private static final class Reader {
        final MessageUnpacker unpacker;
        final byte[] data;
        final int offset;
        final long end;
        /** Non-empty maps and arrays open around the value being read (see {@link MsgpackSkip}). */
        int open;
        final CharsetDecoder utf8 = StandardCharsets.UTF_8.newDecoder()
                .onMalformedInput(CodingErrorAction.REPORT)
                .onUnmappableCharacter(CodingErrorAction.REPORT);

        /** False for a bare payload: an unknown key is an error. */
        final boolean skipUnknownKeys;

        Reader(byte[] data, int offset, int length, boolean skipUnknownKeys) {
            this.skipUnknownKeys = skipUnknownKeys;
            this.unpacker = MessagePack.newDefaultUnpacker(data, offset, length);
            this.data = data;
            this.offset = offset;
            this.end = length;
        }

        private long remaining() {
            return end - unpacker.getTotalReadBytes();
        }

        /** Refuses a length or count the rest of the input cannot hold, before anything is allocated. */
        private int checkLength(int length, String what) throws DecodeException {
            if (length < 0 || length > remaining()) {
                throw new DecodeException("truncated: " + what + " of " + length
                        + " announced, " + remaining() + " bytes left");
            }
            return length;
        }

        private ValueType nextType() throws IOException, DecodeException {
            if (!unpacker.hasNext()) {
                throw new DecodeException("truncated: input ends where a value is due");
            }
            return unpacker.getNextFormat().getValueType();
        }

        void readMessage(Message.Builder builder, int depth) throws IOException, DecodeException {
            Descriptor descriptor = builder.getDescriptorForType();
            if (depth > MAX_DEPTH) {
                throw new DecodeException("messages nested deeper than " + MAX_DEPTH);
            }
            ValueType type = nextType();
            if (type != ValueType.MAP) {
                throw new DecodeException(descriptor.getFullName() + " must be a msgpack map, got " + type);
            }
            int n = checkLength(unpacker.unpackMapHeader(), "map");
            int opened = n > 0 ? 1 : 0;
            open += opened;
            FieldDescriptor[] oneofMembers = null; // the member seen per oneof, by oneof index
            for (int i = 0; i < n; i++) {
                ValueType keyType = nextType();
                if (keyType != ValueType.STRING) {
                    throw new DecodeException(descriptor.getFullName() + ": field keys must be str, got " + keyType);
                }
                String name = readString();
                FieldDescriptor field = descriptor.findFieldByName(name);
                if (field == null) {
                    if (!skipUnknownKeys) {
                        throw new DecodeException(descriptor.getFullName() + ": unknown key '" + name
                                + "' (a bare MSGPACK payload uses only its type's field names: wire contract, section 8.1)");
                    }
                    MsgpackSkip.skip(unpacker, data, offset, end, open);
                    continue;
                }
                OneofDescriptor oneof = field.getRealContainingOneof();
                if (nextType() == ValueType.NIL) {
                    unpacker.unpackNil();
                    builder.clearField(field);
                    // A key given twice: the last one wins, nil included (as a Python dict keeps it).
                    if (oneof != null && oneofMembers != null && oneofMembers[oneof.getIndex()] == field) {
                        oneofMembers[oneof.getIndex()] = null;
                    }
                    continue;
                }
                if (oneof != null) {
                    if (oneofMembers == null) {
                        oneofMembers = new FieldDescriptor[descriptor.getOneofs().size()];
                    }
                    FieldDescriptor seen = oneofMembers[oneof.getIndex()];
                    if (seen != null && seen != field) {
                        throw new DecodeException(descriptor.getFullName() + ": oneof " + oneof.getName()
                                + " has two members set, " + seen.getName() + " and " + field.getName());
                    }
                    oneofMembers[oneof.getIndex()] = field;
                }
                if (field.isMapField()) {
                    builder.clearField(field);
                    readMap(builder, field, depth);
                } else if (field.isRepeated()) {
                    builder.clearField(field);
                    ValueType arrayType = nextType();
                    if (arrayType != ValueType.ARRAY) {
                        throw new DecodeException(where(field) + " must be an array, got " + arrayType);
                    }
                    int count = checkLength(unpacker.unpackArrayHeader(), "array");
                    open += count > 0 ? 1 : 0;
                    for (int j = 0; j < count; j++) {
                        builder.addRepeatedField(field, readValue(builder, field, depth));
                    }
                    open -= count > 0 ? 1 : 0;
                } else {
                    builder.setField(field, readValue(builder, field, depth));
                }
            }
            open -= opened;
        }

        private void readMap(Message.Builder builder, FieldDescriptor field, int depth)
                throws IOException, DecodeException {
            ValueType type = nextType();
            if (type != ValueType.MAP) {
                throw new DecodeException(where(field) + " must be a map, got " + type);
            }
            Descriptor entryType = field.getMessageType();
            FieldDescriptor keyField = entryType.findFieldByNumber(1);
            FieldDescriptor valueField = entryType.findFieldByNumber(2);
            int n = checkLength(unpacker.unpackMapHeader(), "map");
            open += n > 0 ? 1 : 0;
            for (int i = 0; i < n; i++) {
                Message.Builder entry = builder.newBuilderForField(field);
                if (nextType() == ValueType.NIL) {
                    throw new DecodeException(where(field) + ": a map key cannot be nil");
                }
                entry.setField(keyField, readValue(entry, keyField, depth));
                if (nextType() == ValueType.NIL) {
                    throw new DecodeException(where(field) + ": a map value cannot be nil");
                }
                entry.setField(valueField, readValue(entry, valueField, depth));
                builder.addRepeatedField(field, entry.build());
            }
            open -= n > 0 ? 1 : 0;
        }

        private Object readValue(Message.Builder owner, FieldDescriptor field, int depth)
                throws IOException, DecodeException {
            ValueType type = nextType();
            switch (field.getType()) {
                case INT32, SINT32, SFIXED32 -> {
                    return (int) readInteger(field, type, Integer.MIN_VALUE, Integer.MAX_VALUE);
                }
                case INT64, SINT64, SFIXED64 -> {
                    return readInteger(field, type, Long.MIN_VALUE, Long.MAX_VALUE);
                }
                case UINT32, FIXED32 -> {
                    return (int) readInteger(field, type, 0, 0xffffffffL);
                }
                case UINT64, FIXED64 -> {
                    return readUint64(field, type);
                }
                case ENUM -> {
                    int number = (int) readInteger(field, type, Integer.MIN_VALUE, Integer.MAX_VALUE);
                    return field.getEnumType().findValueByNumberCreatingIfUnknown(number);
                }
                case BOOL -> {
                    expect(field, type, ValueType.BOOLEAN);
                    return unpacker.unpackBoolean();
                }
                case FLOAT -> {
                    expect(field, type, ValueType.FLOAT);
                    return (float) unpacker.unpackDouble();
                }
                case DOUBLE -> {
                    expect(field, type, ValueType.FLOAT);
                    return unpacker.unpackDouble();
                }
                case STRING -> {
                    expect(field, type, ValueType.STRING);
                    return readString();
                }
                case BYTES -> {
                    expect(field, type, ValueType.BINARY);
                    int length = checkLength(unpacker.unpackBinaryHeader(), "bin");
                    return UnsafeByteOperations.unsafeWrap(unpacker.readPayload(length));
                }
                case MESSAGE -> {
                    Message.Builder nested = owner.newBuilderForField(field);
                    readMessage(nested, depth + 1);
                    return nested.build();
                }
                default -> throw new DecodeException(where(field) + ": unsupported field type " + field.getType());
            }
        }

        private long readInteger(FieldDescriptor field, ValueType type, long min, long max)
                throws IOException, DecodeException {
            expect(field, type, ValueType.INTEGER);
            if (unpacker.getNextFormat() == MessageFormat.UINT64) {
                BigInteger big = unpacker.unpackBigInteger();
                if (big.bitLength() > 63 || big.longValue() > max) {
                    throw new DecodeException(where(field) + ": " + big + " is out of range");
                }
                return big.longValue();
            }
            long value = unpacker.unpackLong();
            if (value < min || value > max) {
                throw new DecodeException(where(field) + ": " + value + " is out of range");
            }
            return value;
        }

        private long readUint64(FieldDescriptor field, ValueType type) throws IOException, DecodeException {
            expect(field, type, ValueType.INTEGER);
            if (unpacker.getNextFormat() == MessageFormat.UINT64) {
                BigInteger big = unpacker.unpackBigInteger();
                if (big.signum() < 0 || big.bitLength() > 64) {
                    throw new DecodeException(where(field) + ": " + big + " is out of range");
                }
                return big.longValue();
            }
            long value = unpacker.unpackLong();
            if (value < 0) {
                throw new DecodeException(where(field) + ": " + value + " is out of range");
            }
            return value;
        }

        private String readString() throws IOException, DecodeException {
            int length = checkLength(unpacker.unpackRawStringHeader(), "str");
            byte[] bytes = unpacker.readPayload(length);
            try {
                return utf8.decode(ByteBuffer.wrap(bytes)).toString();
            } catch (CharacterCodingException e) {
                throw new DecodeException("str is not valid UTF-8", e);
            }
        }

        private static void expect(FieldDescriptor field, ValueType actual, ValueType wanted) throws DecodeException {
            if (actual != wanted) {
                throw new DecodeException(where(field) + " must be " + wanted.name().toLowerCase()
                        + ", got " + actual.name().toLowerCase());
            }
        }

        private static String where(FieldDescriptor field) {
            return field.getFullName();
        }
    }
}
