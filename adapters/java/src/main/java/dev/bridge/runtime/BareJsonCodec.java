package dev.bridge.runtime;

import com.google.gson.Gson;
import com.google.gson.GsonBuilder;
import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import com.google.gson.JsonPrimitive;
import com.google.gson.internal.bind.TypeAdapters;
import com.google.gson.stream.JsonReader;
import com.google.gson.stream.JsonToken;
import com.google.protobuf.Descriptors.Descriptor;
import com.google.protobuf.Descriptors.FieldDescriptor;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.Message;
import com.google.protobuf.util.JsonFormat;
import java.io.IOException;
import java.io.StringReader;
import java.math.BigInteger;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.List;

/**
 * The JSON encoding of bare methods (wire contract, section 8.2): protobuf's canonical JSON
 * mapping ({@link JsonFormat}) with the differences the contract lists, for the PHP
 * {@code json_decode}, Perl {@code JSON::XS} and Python {@code json} programs on the other side.
 *
 * <p>Writing: {@code JsonFormat.printer().preservingProtoFieldNames().includingDefaultValueFields()}
 * ({@code .proto} field names, every field without presence at its default), then one walk over
 * the message turns the 64-bit integers JsonFormat writes as strings into numbers (outside the
 * well-known types) and drops proto2 fields with presence that are not set.
 *
 * <p>Reading ({@link BareJsonReader}): strict JSON (gson's reader, not lenient), at most 100
 * nested messages (checked on the text before anything recursive runs), then one walk that sets
 * the fields itself, as strictly as Python's {@code json_format} (a string field takes only a
 * string, a bool {@code true} / {@code false} or {@code 0} / {@code 1}), and hands well-known
 * types to {@link JsonFormat#parser()}.
 */
public final class BareJsonCodec {
    /** Nested messages a payload may hold (section 5.9): the top message is level 0. */
    public static final int MAX_NESTING = 100;

    private static final JsonFormat.Printer PRINTER = JsonFormat.printer()
            .preservingProtoFieldNames()
            .includingDefaultValueFields()
            .omittingInsignificantWhitespace();
    static final Gson GSON = new GsonBuilder().disableHtmlEscaping().create();

    private BareJsonCodec() {
    }

    /** The message as bare JSON, UTF-8. */
    public static byte[] encode(Message message) {
        String canonical;
        try {
            canonical = PRINTER.print(message);
        } catch (InvalidProtocolBufferException e) {
            // An Any whose type this runtime cannot resolve: the handler's reply cannot be written.
            throw new IllegalArgumentException("cannot write " + message.getDescriptorForType().getFullName()
                    + " as JSON: " + e.getMessage(), e);
        }
        JsonElement tree = JsonParser.parseString(canonical);
        if (tree.isJsonObject()) {
            adjust(tree.getAsJsonObject(), message);
        }
        return GSON.toJson(tree).getBytes(StandardCharsets.UTF_8);
    }

    /**
     * Decodes a bare JSON payload as {@code prototype}'s type; zero bytes are the empty message of a
     * type without fields, a decoding error for any other (wire contract, section 8.1).
     */
    @SuppressWarnings("unchecked")
    public static <T extends Message> T decode(byte[] data, int offset, int length, T prototype)
            throws DecodeException {
        Descriptor type = prototype.getDescriptorForType();
        if (length == 0) {
            return (T) Codecs.emptyBarePayload(prototype, "JSON");
        }
        String text;
        try {
            text = StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(data, offset, length)).toString();
        } catch (CharacterCodingException e) {
            throw new DecodeException("not a JSON " + type.getFullName() + ": the payload is not UTF-8");
        }
        // A message nests at most two JSON containers per level (a repeated or map field holds
        // it): anything deeper is over the limit, refused before gson's recursive reader runs.
        checkDepth(text, 2 * (MAX_NESTING + 1) + 1, type);
        JsonElement root;
        try {
            JsonReader reader = new JsonReader(new StringReader(text));
            reader.setLenient(false);
            root = TypeAdapters.JSON_ELEMENT.read(reader);
            if (reader.peek() != JsonToken.END_DOCUMENT) {
                throw new DecodeException("not a JSON " + type.getFullName() + ": more than one JSON value");
            }
        } catch (IOException | RuntimeException e) {
            // gson's advice to parse leniently is not for our callers.
            String why = String.valueOf(e.getMessage()).replace("Use JsonReader.setLenient(true) to accept malformed JSON",
                    "malformed JSON");
            throw new DecodeException("not a JSON " + type.getFullName() + ": " + why, e);
        }
        if (root.isJsonArray() && root.getAsJsonArray().size() == 0) {
            return (T) prototype.getDefaultInstanceForType(); // PHP's json_encode of an empty array
        }
        if (!root.isJsonObject()) {
            throw new DecodeException("not a JSON " + type.getFullName() + ": expected an object, got "
                    + (root.isJsonNull() ? "null" : root.isJsonArray() ? "an array" : "a " + kind(root)));
        }
        Message.Builder builder = prototype.newBuilderForType();
        new BareJsonReader(type.getFullName()).message(root.getAsJsonObject(), builder, 0);
        return (T) builder.build();
    }

    private static String kind(JsonElement e) {
        JsonPrimitive p = e.getAsJsonPrimitive();
        return p.isString() ? "string" : p.isBoolean() ? "boolean" : "number";
    }

    /**
     * Refuses text whose arrays and objects nest deeper than {@code limit}, and strings holding a
     * raw control character.
     */
    private static void checkDepth(String text, int limit, Descriptor type) throws DecodeException {
        int depth = 0;
        boolean inString = false;
        for (int i = 0, n = text.length(); i < n; i++) {
            char c = text.charAt(i);
            if (inString) {
                if (c == '\\') {
                    i++;
                } else if (c == '"') {
                    inString = false;
                } else if (c < 0x20) { // gson would take it; JSON (and Python's json) do not
                    throw new DecodeException("not a JSON " + type.getFullName()
                            + ": a control character inside a string must be escaped");
                }
            } else if (c == '"') {
                inString = true;
            } else if (c == '{' || c == '[') {
                if (++depth > limit) {
                    throw new DecodeException("not a JSON " + type.getFullName() + ": messages nested deeper than "
                            + MAX_NESTING + " levels");
                }
            } else if (c == '}' || c == ']') {
                depth--;
            }
        }
    }

    // ------------------------------------------------------------------------------- writing

    static boolean isWellKnown(Descriptor type) {
        return type.getFullName().startsWith("google.protobuf.");
    }

    static boolean is64Bit(FieldDescriptor field) {
        return switch (field.getType()) {
            case INT64, UINT64, SINT64, FIXED64, SFIXED64 -> true;
            default -> false;
        };
    }

    /** Section 8.2 writing rules 2-3 over JsonFormat's output for {@code message}. */
    private static void adjust(JsonObject json, Message message) {
        Descriptor type = message.getDescriptorForType();
        if (isWellKnown(type)) {
            return;
        }
        for (FieldDescriptor field : type.getFields()) {
            JsonElement value = json.get(field.getName());
            if (value == null) {
                continue;
            }
            if (!field.isRepeated() && field.hasPresence() && !message.hasField(field)) {
                json.remove(field.getName()); // proto2 optional: written only when set
            } else if (field.isMapField()) {
                FieldDescriptor valueField = field.getMessageType().findFieldByNumber(2);
                if (!is64Bit(valueField) && valueField.getJavaType() != FieldDescriptor.JavaType.MESSAGE) {
                    continue;
                }
                FieldDescriptor keyField = field.getMessageType().findFieldByNumber(1);
                JsonObject map = value.getAsJsonObject();
                for (Object entry : (List<?>) message.getField(field)) {
                    Message e = (Message) entry;
                    String key = mapKey(keyField, e.getField(keyField));
                    JsonElement item = map.get(key);
                    if (item == null) {
                        continue;
                    }
                    if (is64Bit(valueField)) {
                        map.add(key, number(item));
                    } else if (item.isJsonObject()) {
                        adjust(item.getAsJsonObject(), (Message) e.getField(valueField));
                    }
                }
            } else if (field.isRepeated()) {
                JsonArray items = value.getAsJsonArray();
                for (int i = 0; i < items.size(); i++) {
                    if (is64Bit(field)) {
                        items.set(i, number(items.get(i)));
                    } else if (field.getJavaType() == FieldDescriptor.JavaType.MESSAGE && items.get(i).isJsonObject()) {
                        adjust(items.get(i).getAsJsonObject(), (Message) message.getRepeatedField(field, i));
                    }
                }
            } else if (is64Bit(field)) {
                json.add(field.getName(), number(value));
            } else if (field.getJavaType() == FieldDescriptor.JavaType.MESSAGE && value.isJsonObject()) {
                adjust(value.getAsJsonObject(), (Message) message.getField(field));
            }
        }
    }

    /** A map key as JsonFormat writes it. */
    private static String mapKey(FieldDescriptor keyField, Object key) {
        return switch (keyField.getType()) {
            case UINT32, FIXED32 -> Integer.toUnsignedString((Integer) key);
            case UINT64, FIXED64 -> Long.toUnsignedString((Long) key);
            default -> String.valueOf(key);
        };
    }

    /** JsonFormat's quoted 64-bit integer as a JSON number. */
    private static JsonElement number(JsonElement value) {
        if (value.isJsonPrimitive() && value.getAsJsonPrimitive().isString()) {
            return new JsonPrimitive(new BigInteger(value.getAsString()));
        }
        return value;
    }
}
