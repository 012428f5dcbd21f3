package dev.bridge.runtime;

import com.google.protobuf.CodedInputStream;
import com.google.protobuf.Descriptors.Descriptor;
import com.google.protobuf.Descriptors.FieldDescriptor;
import com.google.protobuf.Descriptors.OneofDescriptor;
import com.google.protobuf.WireFormat;
import java.io.IOException;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Finds the protobuf input that protobuf-java's generated parsers get wrong: a oneof whose
 * message member appears, then another member of the same oneof, then the message member again
 * (wire contract 5.9, vector {@code protobuf_oneof_switch_back}). The generated builder keeps the
 * first occurrence's sub-builder when the oneof switches away and merges the last occurrence into
 * it, so {@code nested{name:"n"}, text:"t", nested{value:3}} parses as {@code nested{name:"n" value:3}}
 * instead of {@code nested{value:3}}. This is so in protobuf-java 3.21.12 and in 4.36.2 alike
 * (generated code of either protoc); {@link com.google.protobuf.DynamicMessage} parses it right.
 *
 * <p>{@link #occursIn} walks the wire bytes (no allocation but small per-message arrays) only
 * through message types that can reach such a oneof; message types that cannot are never
 * scanned, so most requests cost nothing. Input it cannot read is reported as clean: the real
 * parser then reports the error.
 */
final class OneofSwitchBack {
    private static final Map<Descriptor, Plan> PLANS = new ConcurrentHashMap<>();
    private static final Map<Descriptor, Boolean> REACHES = new ConcurrentHashMap<>();

    /** Per message type: what the scan needs to know about each field number; null = never affected. */
    private static final class Plan {
        final int oneofCount;
        final Map<Integer, Field> fields = new HashMap<>();

        Plan(int oneofCount) {
            this.oneofCount = oneofCount;
        }
    }

    /**
     * One field of a plan: its wire type, its oneof (-1: none), whether it is a singular message
     * field, and its message type when that type can reach such a oneof (scanned into), else null.
     */
    private record Field(int number, int wireType, int oneof, boolean singularMessage, Descriptor type) {
    }

    private OneofSwitchBack() {
    }

    /** Whether {@code bytes}, read as {@code type}, hold a oneof that switches away from a message member and back. */
    static boolean occursIn(Descriptor type, byte[] bytes, int offset, int length) {
        Plan plan = plan(type);
        if (plan == null) {
            return false;
        }
        try {
            return scan(CodedInputStream.newInstance(bytes, offset, length), plan, 0);
        } catch (IOException | RuntimeException malformed) {
            return false; // the parser proper reports it
        }
    }

    private static boolean scan(CodedInputStream in, Plan plan, int depth) throws IOException {
        if (depth > MsgpackCodec.MAX_DEPTH) {
            return false; // the parser proper refuses this depth
        }
        int[] current = plan.oneofCount == 0 ? null : new int[plan.oneofCount];
        List<Integer> seen = null; // singular message fields met so far in this message
        while (true) {
            int tag = in.readTag();
            if (tag == 0) {
                return false;
            }
            Field field = plan.fields.get(WireFormat.getTagFieldNumber(tag));
            if (field == null || WireFormat.getTagWireType(tag) != field.wireType()) {
                in.skipField(tag); // unknown, or a known field with the wrong wire type: skipped by the parser too
                continue;
            }
            if (field.singularMessage()) {
                if (seen == null) {
                    seen = new ArrayList<>(2);
                }
                if (seen.contains(field.number())) {
                    boolean switchedBack = field.oneof() >= 0 && current[field.oneof()] != field.number();
                    // A second occurrence merges into the first: of a type that holds such a oneof
                    // itself, the merged builder may switch back too. Rare (no encoder writes it):
                    // counted as found, so the slower, right parse runs.
                    if (switchedBack || field.type() != null) {
                        return true;
                    }
                } else {
                    seen.add(field.number());
                }
            }
            if (field.oneof() >= 0) {
                current[field.oneof()] = field.number();
            }
            if (field.type() == null) {
                in.skipField(tag);
                continue;
            }
            int length = in.readRawVarint32();
            int limit = in.pushLimit(length);
            if (scan(in, plan(field.type()), depth + 1)) {
                return true;
            }
            in.skipRawBytes(in.getBytesUntilLimit());
            in.popLimit(limit);
        }
    }

    /** The plan of a type that can reach a oneof with a message member; null for any other type. */
    private static Plan plan(Descriptor type) {
        Plan cached = PLANS.get(type);
        if (cached == null) {
            cached = reaches(type) ? build(type) : NONE;
            PLANS.put(type, cached);
        }
        return cached == NONE ? null : cached;
    }

    private static final Plan NONE = new Plan(0);

    /** Whether {@code type} or a message type below it has a real oneof with a message member. */
    private static boolean reaches(Descriptor type) {
        Boolean known = REACHES.get(type);
        if (known != null) {
            return known;
        }
        Deque<Descriptor> todo = new ArrayDeque<>(List.of(type));
        Set<Descriptor> seen = new HashSet<>(todo);
        boolean found = false;
        while (!found && !todo.isEmpty()) {
            Descriptor d = todo.pop();
            for (OneofDescriptor oneof : d.getRealOneofs()) {
                for (FieldDescriptor member : oneof.getFields()) {
                    found |= member.getType() == FieldDescriptor.Type.MESSAGE;
                }
            }
            for (FieldDescriptor field : d.getFields()) {
                if (field.getType() == FieldDescriptor.Type.MESSAGE && seen.add(field.getMessageType())) {
                    todo.push(field.getMessageType());
                }
            }
        }
        REACHES.put(type, found);
        return found;
    }

    private static Plan build(Descriptor type) {
        Plan plan = new Plan(type.getRealOneofs().size());
        for (FieldDescriptor field : type.getFields()) {
            OneofDescriptor oneof = field.getRealContainingOneof();
            boolean message = field.getType() == FieldDescriptor.Type.MESSAGE;
            boolean nested = message && reaches(field.getMessageType());
            if (oneof == null && !nested) {
                continue; // neither tracked nor scanned into: skipped like an unknown field
            }
            plan.fields.put(field.getNumber(), new Field(field.getNumber(), field.getLiteType().getWireType(),
                    oneof == null ? -1 : oneof.getIndex(), message && !field.isRepeated(),
                    nested ? field.getMessageType() : null));
        }
        return plan;
    }
}
