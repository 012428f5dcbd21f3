package dev.bridge.runtime;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonPrimitive;
import com.google.protobuf.ByteString;
import com.google.protobuf.Descriptors.Descriptor;
import com.google.protobuf.Descriptors.EnumDescriptor;
import com.google.protobuf.Descriptors.EnumValueDescriptor;
import com.google.protobuf.Descriptors.FieldDescriptor;
import com.google.protobuf.Descriptors.FileDescriptor;
import com.google.protobuf.Descriptors.OneofDescriptor;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.Message;
import com.google.protobuf.util.JsonFormat;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.Base64;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * Reads a parsed bare JSON tree into a message builder (wire contract, section 8.2, reading).
 * protobuf-java-util's parser is more lenient than the contract (a string field takes a number,
 * a bool the string "true", a scalar a one-element array) and reads {@code -0.0} as {@code 0.0},
 * so the fields of ordinary messages are set here; well-known types go to {@link JsonFormat}.
 */
final class BareJsonReader {
    private static final JsonFormat.Parser WKT_PARSER = JsonFormat.parser();
    /** Standard or URL-safe base64, padding optional. */
    private static final Pattern BASE64 = Pattern.compile("[A-Za-z0-9+/_-]*={0,2}");
    private static final Pattern INTEGER = Pattern.compile("-?[0-9]+");
    /** JSON's own number grammar, for numbers written as strings (not ".5", "+1", " 1", "0x10"). */
    private static final Pattern JSON_NUMBER = Pattern.compile("-?(?:0|[1-9][0-9]*)(?:\\.[0-9]+)?(?:[eE][+-]?[0-9]+)?");
    private static final BigInteger UINT32_MAX = BigInteger.valueOf(0xFFFF_FFFFL);
    private static final BigInteger UINT64_MAX = BigInteger.ONE.shiftLeft(64).subtract(BigInteger.ONE);
    private static final BigInteger INT32_MIN = BigInteger.valueOf(Integer.MIN_VALUE);
    private static final BigInteger INT32_MAX = BigInteger.valueOf(Integer.MAX_VALUE);
    private static final BigInteger INT64_MIN = BigInteger.valueOf(Long.MIN_VALUE);
    private static final BigInteger INT64_MAX = BigInteger.valueOf(Long.MAX_VALUE);

    private final String typeName;

    BareJsonReader(String typeName) {
        this.typeName = typeName;
    }

    private DecodeException error(String what) {
        return new DecodeException("not a JSON " + typeName + ": " + what);
    }

    /** Sets {@code json}'s fields on {@code builder}; {@code depth} counts the enclosing messages. */
    void message(JsonObject json, Message.Builder builder, int depth) throws DecodeException {
        Descriptor type = builder.getDescriptorForType();
        if (depth > BareJsonCodec.MAX_NESTING) {
            throw error("messages nested deeper than " + BareJsonCodec.MAX_NESTING + " levels");
        }
        if (BareJsonCodec.isWellKnown(type)) {
            wellKnown(json, builder);
            return;
        }
        Set<FieldDescriptor> seen = new HashSet<>();
        for (Map.Entry<String, JsonElement> entry : json.entrySet()) {
            String key = entry.getKey();
            FieldDescriptor field = type.findFieldByName(key);
            if (field == null) {
                field = byJsonName(type, key);
            }
            if (field == null) {
                throw error("unknown field \"" + key + "\" in " + type.getFullName());
            }
            if (!seen.add(field)) {
                throw error("field " + field.getFullName() + " given twice");
            }
            JsonElement value = entry.getValue();
            if (value.isJsonNull()) {
                continue; // null: unset
            }
            OneofDescriptor oneof = field.getContainingOneof();
            if (oneof != null && builder.hasOneof(oneof)) {
                throw error("two members of oneof " + oneof.getFullName() + " are set");
            }
            if (field.isMapField()) {
                map(field, value, builder, depth);
            } else if (field.isRepeated()) {
                if (!value.isJsonArray()) {
                    throw error(field.getFullName() + " is repeated: expected an array");
                }
                for (JsonElement item : value.getAsJsonArray()) {
                    if (item.isJsonNull()) {
                        throw error(field.getFullName() + ": null inside an array");
                    }
                    builder.addRepeatedField(field, value(field, item, builder, depth));
                }
            } else {
                builder.setField(field, value(field, value, builder, depth));
            }
        }
    }

    private static FieldDescriptor byJsonName(Descriptor type, String key) {
        for (FieldDescriptor f : type.getFields()) {
            if (f.getJsonName().equals(key)) {
                return f;
            }
        }
        return null;
    }

    private void map(FieldDescriptor field, JsonElement value, Message.Builder builder, int depth)
            throws DecodeException {
        if (value.isJsonArray() && value.getAsJsonArray().size() == 0) {
            return; // PHP's empty array: an empty map
        }
        if (!value.isJsonObject()) {
            throw error(field.getFullName() + " is a map: expected an object");
        }
        Descriptor entryType = field.getMessageType();
        FieldDescriptor keyField = entryType.findFieldByNumber(1);
        FieldDescriptor valueField = entryType.findFieldByNumber(2);
        for (Map.Entry<String, JsonElement> e : value.getAsJsonObject().entrySet()) {
            if (e.getValue().isJsonNull()) {
                throw error(field.getFullName() + ": a map value cannot be null");
            }
            Message.Builder entry = builder.newBuilderForField(field);
            entry.setField(keyField, mapKey(keyField, e.getKey()));
            entry.setField(valueField, value(valueField, e.getValue(), entry, depth));
            builder.addRepeatedField(field, entry.build());
        }
    }

    private Object mapKey(FieldDescriptor keyField, String key) throws DecodeException {
        return switch (keyField.getJavaType()) {
            case STRING -> text(keyField, key);
            case BOOLEAN -> {
                if (key.equals("true") || key.equals("false")) {
                    yield key.equals("true");
                }
                throw error(keyField.getFullName() + ": map key \"" + key + "\" is not true or false");
            }
            default -> integer(keyField, new JsonPrimitive(key));
        };
    }

    /** One value of {@code field} (an element, for a repeated field). */
    private Object value(FieldDescriptor field, JsonElement value, Message.Builder parent, int depth)
            throws DecodeException {
        if (field.getJavaType() == FieldDescriptor.JavaType.MESSAGE) {
            Message.Builder sub = parent.newBuilderForField(field);
            if (value.isJsonArray() && value.getAsJsonArray().size() == 0) {
                value = new JsonObject(); // PHP's empty array: an empty message
            }
            if (BareJsonCodec.isWellKnown(field.getMessageType())) {
                wellKnown(value, sub); // a Timestamp's string, a wrapper's number...
                return sub.build();
            }
            if (!value.isJsonObject()) {
                throw error(field.getFullName() + ": expected an object");
            }
            message(value.getAsJsonObject(), sub, depth + 1);
            return sub.build();
        }
        if (!value.isJsonPrimitive()) {
            throw error(field.getFullName() + ": expected a " + field.getType().name().toLowerCase()
                    + ", got " + (value.isJsonArray() ? "an array" : "an object"));
        }
        JsonPrimitive p = value.getAsJsonPrimitive();
        return switch (field.getJavaType()) {
            case STRING -> {
                if (!p.isString()) {
                    throw error(field.getFullName() + ": expected a string");
                }
                yield text(field, p.getAsString());
            }
            case BOOLEAN -> {
                if (p.isBoolean()) {
                    yield p.getAsBoolean();
                }
                String text = p.getAsString();
                if (p.isNumber() && (text.equals("0") || text.equals("1") || text.equals("-0"))) {
                    yield text.equals("1"); // Perl's booleans
                }
                throw error(field.getFullName() + ": expected true or false, got " + value);
            }
            case BYTE_STRING -> bytes(field, p);
            case ENUM -> enumValue(field, p);
            case FLOAT, DOUBLE -> floating(field, p);
            default -> integer(field, p);
        };
    }

    /** A string's value: a lone surrogate ({@code "\\ud800"}) has no UTF-8 form, so it is refused. */
    private String text(FieldDescriptor field, String value) throws DecodeException {
        for (int i = 0; i < value.length(); i++) {
            char c = value.charAt(i);
            if (Character.isHighSurrogate(c) && i + 1 < value.length() && Character.isLowSurrogate(value.charAt(i + 1))) {
                i++;
            } else if (Character.isSurrogate(c)) {
                throw error(field.getFullName() + ": a lone surrogate (\\u" + Integer.toHexString(c)
                        + ") is no Unicode text");
            }
        }
        return value;
    }

    private ByteString bytes(FieldDescriptor field, JsonPrimitive p) throws DecodeException {
        String text = p.isString() ? p.getAsString() : null;
        if (text == null || !BASE64.matcher(text).matches()) {
            throw error(field.getFullName() + ": not base64");
        }
        String standard = text.replace('-', '+').replace('_', '/');
        int end = standard.length();
        while (end > 0 && standard.charAt(end - 1) == '=') {
            end--;
        }
        try {
            return ByteString.copyFrom(Base64.getDecoder().decode(standard.substring(0, end)));
        } catch (IllegalArgumentException e) {
            throw error(field.getFullName() + ": not base64 (" + e.getMessage() + ")");
        }
    }

    private Object enumValue(FieldDescriptor field, JsonPrimitive p) throws DecodeException {
        EnumDescriptor type = field.getEnumType();
        if (p.isString()) {
            EnumValueDescriptor named = type.findValueByName(p.getAsString());
            if (named != null) {
                return named;
            }
            if (!INTEGER.matcher(p.getAsString()).matches()) {
                throw error(field.getFullName() + ": \"" + p.getAsString() + "\" is no value of " + type.getFullName());
            }
        } else if (!p.isNumber()) {
            throw error(field.getFullName() + ": expected an enum name or number");
        }
        int number = ((Number) integerValue(field, p, INT32_MIN, INT32_MAX)).intValue();
        EnumValueDescriptor known = type.findValueByNumber(number);
        if (known != null) {
            return known;
        }
        if (type.getFile().getSyntax() == FileDescriptor.Syntax.PROTO2) {
            throw error(field.getFullName() + ": " + number + " is no value of " + type.getFullName());
        }
        return type.findValueByNumberCreatingIfUnknown(number); // open enum: kept as a number
    }

    private Object floating(FieldDescriptor field, JsonPrimitive p) throws DecodeException {
        double d;
        String text = p.getAsString();
        if (p.isString() && (text.equals("NaN") || text.equals("Infinity") || text.equals("-Infinity"))) {
            d = Double.parseDouble(text);
        } else if (p.isBoolean() || !JSON_NUMBER.matcher(text).matches()) {
            throw error(field.getFullName() + ": expected a number, got " + p);
        } else {
            try {
                d = Double.parseDouble(text);
            } catch (NumberFormatException e) {
                throw error(field.getFullName() + ": expected a number, got " + p);
            }
            if (p.isNumber() && text.equals("-0")) {
                d = 0.0; // an integer literal: PHP, Perl and Python read it as the integer 0 (the string "-0" is -0.0)
            }
            if (Double.isInfinite(d)) {
                throw error(field.getFullName() + ": " + text + " is out of range");
            }
        }
        if (field.getJavaType() == FieldDescriptor.JavaType.DOUBLE) {
            return d;
        }
        if (Double.isFinite(d) && Math.abs(d) > Float.MAX_VALUE) {
            throw error(field.getFullName() + ": " + text + " is out of a float's range");
        }
        return (float) d;
    }

    private Object integer(FieldDescriptor field, JsonPrimitive p) throws DecodeException {
        return switch (field.getType()) {
            case INT32, SINT32, SFIXED32 -> integerValue(field, p, INT32_MIN, INT32_MAX).intValue();
            case UINT32, FIXED32 -> integerValue(field, p, BigInteger.ZERO, UINT32_MAX).intValue();
            case INT64, SINT64, SFIXED64 -> integerValue(field, p, INT64_MIN, INT64_MAX).longValue();
            default -> integerValue(field, p, BigInteger.ZERO, UINT64_MAX).longValue(); // UINT64, FIXED64
        };
    }

    private static final BigInteger EXACT_FLOAT_INTEGERS = BigInteger.ONE.shiftLeft(53);

    /** An integral number (3, 3.0, 3e0), or a string of digits ("3"), within [min, max]. */
    private BigInteger integerValue(FieldDescriptor field, JsonPrimitive p, BigInteger min, BigInteger max)
            throws DecodeException {
        String text = p.getAsString();
        BigInteger value;
        if (p.isString()) {
            if (!INTEGER.matcher(text).matches()) {
                throw error(field.getFullName() + ": \"" + abbreviate(text) + "\" is not an integer");
            }
            String digits = text.startsWith("-") ? text.substring(1) : text;
            if (digits.replaceFirst("^0+", "").length() > 20) {
                throw error(field.getFullName() + ": " + abbreviate(text) + " is out of range");
            }
            value = new BigInteger(text);
        } else if (p.isNumber()) {
            BigDecimal d;
            try {
                d = new BigDecimal(text);
            } catch (NumberFormatException e) {
                throw error(field.getFullName() + ": " + abbreviate(text) + " is not a number");
            }
            if (d.signum() != 0 && d.precision() - d.scale() > 21) {
                throw error(field.getFullName() + ": " + abbreviate(text) + " is out of range");
            }
            try {
                value = d.toBigIntegerExact();
            } catch (ArithmeticException e) {
                throw error(field.getFullName() + ": " + abbreviate(text) + " is not an integer");
            }
            if (text.matches(".*[.eE].*") && value.abs().compareTo(EXACT_FLOAT_INTEGERS) > 0) {
                // 9.2233720368547758e+18: a peer's float (PHP's json_decode of a big uint64), maybe
                // already rounded: only integers written as integers are exact beyond 2^53 (8.2, rule 4).
                throw error(field.getFullName() + ": expected an integer written without a fraction or exponent"
                        + " (a number written as a float is exact only up to 2^53), got " + abbreviate(text));
            }
        } else {
            throw error(field.getFullName() + ": expected an integer, got " + p);
        }
        if (value.compareTo(min) < 0 || value.compareTo(max) > 0) {
            throw error(field.getFullName() + ": " + abbreviate(text) + " is out of range");
        }
        return value;
    }

    private static String abbreviate(String text) {
        return text.length() > 40 ? text.substring(0, 40) + "..." : text;
    }

    /** A well-known type: protobuf-java-util's canonical parser. */
    private void wellKnown(JsonElement json, Message.Builder builder) throws DecodeException {
        try {
            WKT_PARSER.merge(BareJsonCodec.GSON.toJson(json), builder);
        } catch (InvalidProtocolBufferException | RuntimeException e) {
            throw error(builder.getDescriptorForType().getFullName() + ": " + e.getMessage());
        }
    }
}
