package dev.bridge.runtime;

import com.google.protobuf.Descriptors.Descriptor;
import com.google.protobuf.Descriptors.FieldDescriptor;
import com.google.protobuf.UnsafeByteOperations;
import com.google.protobuf.WireFormat;
import java.io.ByteArrayOutputStream;

/**
 * Makes protobuf-java read protobuf bytes as upb (Python, Ruby, PHP's protobuf, and the C
 * runtime's rules) does, so that the same bytes get the same answer in every language (wire
 * contract, 5.9). Where protobuf-java's reading departs from upb's, on bytes no encoder writes:
 *
 * <ul>
 *   <li>a length prefix or tag beyond 32 bits, or written in more than five bytes: protobuf-java
 *       keeps the low 32 bits (a length of 2^32 reads as 0), upb refuses the message; refused
 *       here too;
 *   <li>a 64-bit varint in a non-canonical 10-byte form: protobuf-java's fast path sets bit 63
 *       whatever the tenth byte says; such varints (any overlong varint of a known field) are
 *       rewritten in their shortest form, with upb's value;
 *   <li>a map entry holding anything but its key and value with their wire types: upb leaves
 *       the whole entry out of the map (it keeps it as an unknown field); protobuf-java adds an
 *       entry with defaults; such entries are dropped;
 *   <li>unknown groups nested deeper than the recursion limit: upb counts them with the
 *       messages (100 levels in all), protobuf-java recurses without a limit; refused;
 *   <li>field number 0 in a message type without fields: upb skips it as an unknown field there
 *       (only there), protobuf-java refuses it; left out.
 * </ul>
 *
 * {@link #normalize} walks the bytes once (no allocation) and returns null when protobuf-java
 * can take them as they are, which is the case for everything an encoder writes.
 */
final class ProtobufWire {
    private static final int MAX_DEPTH = MsgpackCodec.MAX_DEPTH;
    /** Flags of a walk: the bytes need rewriting; the message held a field it does not know. */
    private static final int REWRITE = 1;
    private static final int UNKNOWN = 2;

    private final byte[] b;
    private int pos;
    /** Whether the last varint read was in its shortest form. */
    private boolean canonical;

    private ProtobufWire(byte[] bytes) {
        this.b = bytes;
    }

    /**
     * The bytes protobuf-java should parse as {@code type}: null for {@code data} itself, else a
     * rewritten copy. Throws for bytes upb refuses (truncated, a bad tag or length, too deep).
     */
    static byte[] normalize(Descriptor type, byte[] data, int offset, int length) throws DecodeException {
        ProtobufWire wire = new ProtobufWire(data);
        wire.pos = offset;
        if ((wire.walk(type, offset + length, 0) & REWRITE) == 0) {
            return null;
        }
        Out out = new Out(length);
        wire.pos = offset;
        wire.rewrite(type, offset + length, out);
        return out.toByteArray();
    }

    /** Checks one message's fields up to {@code end}; the flags found. */
    private int walk(Descriptor type, int end, int depth) throws DecodeException {
        int flags = 0;
        boolean fieldless = type.getFields().isEmpty();
        while (pos < end) {
            long tag = readTag(end, fieldless);
            if (tag >>> 3 == 0) {
                flags |= REWRITE | UNKNOWN; // left out: protobuf-java refuses field number 0
            }
            int wireType = (int) (tag & 7);
            FieldDescriptor field = field(type, tag);
            if (field == null || !accepts(field, wireType)) {
                flags |= UNKNOWN;
                skip(tag, end, depth);
                continue;
            }
            if (wireType == WireFormat.WIRETYPE_LENGTH_DELIMITED
                    && field.getJavaType() == FieldDescriptor.JavaType.MESSAGE) {
                int length = readLength(end);
                if (depth + 1 > MAX_DEPTH) {
                    throw new DecodeException("protobuf messages nested deeper than " + MAX_DEPTH);
                }
                int inner = walk(field.getMessageType(), pos + length, depth + 1);
                if ((inner & REWRITE) != 0 || (field.isMapField() && (inner & UNKNOWN) != 0)) {
                    flags |= REWRITE;
                }
            } else if (wireType == WireFormat.WIRETYPE_VARINT) {
                readVarint(end);
                if (!canonical) {
                    flags |= REWRITE;
                }
            } else if (wireType == WireFormat.WIRETYPE_LENGTH_DELIMITED && isPackedVarint(field)) {
                int length = readLength(end);
                int limit = pos + length;
                while (pos < limit) {
                    readVarint(limit);
                    if (!canonical) {
                        flags |= REWRITE;
                    }
                }
            } else {
                skip(tag, end, depth);
            }
        }
        return flags;
    }

    /** Copies one message's fields up to {@code end} into {@code out}, in the form protobuf-java reads as upb does. */
    private void rewrite(Descriptor type, int end, Out out) throws DecodeException {
        boolean fieldless = type.getFields().isEmpty();
        while (pos < end) {
            int start = pos;
            long tag = readTag(end, fieldless);
            int wireType = (int) (tag & 7);
            FieldDescriptor field = field(type, tag);
            if (field == null || !accepts(field, wireType)) {
                skip(tag, end, 0);
                if (tag >>> 3 != 0) {
                    out.write(b, start, pos - start);
                }
            } else if (wireType == WireFormat.WIRETYPE_LENGTH_DELIMITED
                    && field.getJavaType() == FieldDescriptor.JavaType.MESSAGE) {
                int length = readLength(end);
                int limit = pos + length;
                if (field.isMapField()) {
                    int entryStart = pos;
                    int flags = walk(field.getMessageType(), limit, 0);
                    pos = entryStart;
                    if ((flags & UNKNOWN) != 0) {
                        // upb leaves such an entry out of the map, after reading it whole: a
                        // string in it that is not UTF-8 fails the message all the same.
                        pos = entryStart;
                        checkStrings(field.getMessageType(), limit);
                        continue;
                    }
                }
                Out inner = new Out(length);
                rewrite(field.getMessageType(), limit, inner);
                out.varint(tag);
                out.varint(inner.size());
                inner.appendTo(out);
            } else if (wireType == WireFormat.WIRETYPE_VARINT) {
                out.varint(tag);
                out.varint(readVarint(end));
            } else if (wireType == WireFormat.WIRETYPE_LENGTH_DELIMITED && isPackedVarint(field)) {
                int length = readLength(end);
                int limit = pos + length;
                Out inner = new Out(length);
                while (pos < limit) {
                    inner.varint(readVarint(limit));
                }
                out.varint(tag);
                out.varint(inner.size());
                inner.appendTo(out);
            } else {
                skip(tag, end, 0);
                out.write(b, start, pos - start);
            }
        }
    }

    /** Checks that every string field up to {@code end}, nested ones included, is UTF-8 (the walk checked the rest). */
    private void checkStrings(Descriptor type, int end) throws DecodeException {
        boolean fieldless = type.getFields().isEmpty();
        while (pos < end) {
            long tag = readTag(end, fieldless);
            int wireType = (int) (tag & 7);
            FieldDescriptor field = field(type, tag);
            if (field == null || !accepts(field, wireType) || wireType != WireFormat.WIRETYPE_LENGTH_DELIMITED) {
                skip(tag, end, 0);
                continue;
            }
            int length = readLength(end);
            int limit = pos + length;
            if (field.getType() == FieldDescriptor.Type.STRING) {
                if (!UnsafeByteOperations.unsafeWrap(b, pos, length).isValidUtf8()) {
                    throw new DecodeException("protobuf string field " + field.getFullName() + " is not UTF-8");
                }
                pos = limit;
            } else if (field.getJavaType() == FieldDescriptor.JavaType.MESSAGE) {
                checkStrings(field.getMessageType(), limit);
            } else {
                pos = limit;
            }
        }
    }

    private static FieldDescriptor field(Descriptor type, long tag) {
        return type.findFieldByNumber((int) (tag >>> 3)); // tags are checked to fit 32 bits
    }

    /** Whether protobuf-java and upb read {@code wireType} as this field's value (else: an unknown field). */
    private static boolean accepts(FieldDescriptor field, int wireType) {
        int own = field.getLiteType().getWireType();
        return wireType == own
                || (field.isRepeated() && field.isPackable() && wireType == WireFormat.WIRETYPE_LENGTH_DELIMITED);
    }

    private static boolean isPackedVarint(FieldDescriptor field) {
        return field.isRepeated() && field.isPackable()
                && field.getLiteType().getWireType() == WireFormat.WIRETYPE_VARINT;
    }

    /** Skips the value of a field of any wire type; groups to their end, counted in the depth. */
    private void skip(long tag, int end, int depth) throws DecodeException {
        switch ((int) (tag & 7)) {
            case WireFormat.WIRETYPE_VARINT -> readVarint(end);
            case WireFormat.WIRETYPE_FIXED64 -> advance(8, end);
            case WireFormat.WIRETYPE_LENGTH_DELIMITED -> advance(readLength(end), end);
            case WireFormat.WIRETYPE_FIXED32 -> advance(4, end);
            case WireFormat.WIRETYPE_START_GROUP -> {
                if (depth + 1 > MAX_DEPTH) {
                    throw new DecodeException("protobuf groups nested deeper than " + MAX_DEPTH);
                }
                while (true) {
                    if (pos >= end) {
                        throw new DecodeException("truncated protobuf: a group without its end");
                    }
                    long inner = readTag(end, false);
                    if ((inner & 7) == WireFormat.WIRETYPE_END_GROUP) {
                        if (inner >>> 3 != tag >>> 3) {
                            throw new DecodeException("protobuf group ends with another field's end-group tag");
                        }
                        return;
                    }
                    skip(inner, end, depth + 1);
                }
            }
            case WireFormat.WIRETYPE_END_GROUP -> throw new DecodeException("protobuf end-group tag outside a group");
            default -> throw new DecodeException("protobuf wire type " + (tag & 7) + " does not exist");
        }
    }

    /** A tag: at most five bytes and 32 bits; field number 0 only where upb lets it through. */
    private long readTag(int end, boolean zeroAllowed) throws DecodeException {
        int start = pos;
        long tag = readVarint(end);
        if (pos - start > 5 || (tag >>> 32) != 0 || (tag >>> 3 == 0 && !zeroAllowed)) {
            throw new DecodeException("bad protobuf tag " + Long.toUnsignedString(tag));
        }
        return tag;
    }

    /** A length prefix, checked against the bytes left before anything uses it. */
    private int readLength(int end) throws DecodeException {
        int start = pos;
        long length = readVarint(end);
        if (pos - start > 5) {
            throw new DecodeException("protobuf length prefix longer than five bytes");
        }
        if (length < 0 || length > end - pos) {
            throw new DecodeException("truncated protobuf: a length of " + Long.toUnsignedString(length)
                    + " with " + (end - pos) + " bytes left");
        }
        return (int) length;
    }

    private void advance(int n, int end) throws DecodeException {
        if (n > end - pos) {
            throw new DecodeException("truncated protobuf: " + n + " bytes due, " + (end - pos) + " left");
        }
        pos += n;
    }

    /** A varint as upb reads it: the low 7 bits of up to ten bytes, modulo 2^64. */
    private long readVarint(int end) throws DecodeException {
        long value = 0;
        for (int i = 0; i < 10; i++) {
            if (pos >= end) {
                throw new DecodeException("truncated protobuf varint");
            }
            int x = b[pos++];
            value |= (long) (x & 0x7f) << (7 * i);
            if (x >= 0) {
                canonical = i == 0 || (x != 0 && (i < 9 || x == 1));
                return value;
            }
        }
        throw new DecodeException("protobuf varint longer than ten bytes");
    }

    /** A growable byte buffer that also writes varints. */
    private static final class Out extends ByteArrayOutputStream {
        Out(int size) {
            super(Math.max(16, size));
        }

        void appendTo(Out other) {
            other.write(buf, 0, count);
        }

        void varint(long value) {
            while ((value & ~0x7fL) != 0) {
                write((int) ((value & 0x7f) | 0x80));
                value >>>= 7;
            }
            write((int) value);
        }
    }
}
