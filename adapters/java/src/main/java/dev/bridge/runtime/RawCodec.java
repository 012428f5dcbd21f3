package dev.bridge.runtime;

import com.google.protobuf.ByteString;
import com.google.protobuf.Descriptors.Descriptor;
import com.google.protobuf.Descriptors.FieldDescriptor;
import com.google.protobuf.Message;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;

/**
 * The RAW encoding of bare methods (wire contract, section 8.1): the payload is the bytes of the
 * message's only field, a {@code bytes} field, or a {@code string} field as UTF-8.
 */
public final class RawCodec {
    private RawCodec() {
    }

    /** The one field a RAW payload stands for; the generator checked there is exactly one. */
    public static FieldDescriptor rawField(Descriptor type) {
        if (type.getFields().size() != 1) {
            throw new IllegalArgumentException(
                    "encoding RAW needs a message with exactly one bytes or string field, not " + type.getFullName());
        }
        FieldDescriptor field = type.getFields().get(0);
        if (field.isRepeated() || (field.getType() != FieldDescriptor.Type.BYTES
                && field.getType() != FieldDescriptor.Type.STRING)) {
            throw new IllegalArgumentException(
                    "encoding RAW needs a message with exactly one bytes or string field, not " + type.getFullName());
        }
        return field;
    }

    /** The message's only field's bytes. */
    public static byte[] encode(Message message) {
        FieldDescriptor field = rawField(message.getDescriptorForType());
        Object value = message.getField(field);
        return value instanceof ByteString bytes ? bytes.toByteArray()
                : ((String) value).getBytes(StandardCharsets.UTF_8);
    }

    /** The message whose only field holds {@code data}; a string field needs valid UTF-8. */
    @SuppressWarnings("unchecked")
    public static <T extends Message> T decode(byte[] data, int offset, int length, T prototype)
            throws DecodeException {
        Descriptor type = prototype.getDescriptorForType();
        FieldDescriptor field = rawField(type);
        Message.Builder builder = prototype.newBuilderForType();
        if (field.getType() == FieldDescriptor.Type.STRING) {
            try {
                builder.setField(field, StandardCharsets.UTF_8.newDecoder()
                        .onMalformedInput(CodingErrorAction.REPORT)
                        .onUnmappableCharacter(CodingErrorAction.REPORT)
                        .decode(ByteBuffer.wrap(data, offset, length)).toString());
            } catch (CharacterCodingException e) {
                throw new DecodeException("not a RAW " + type.getFullName() + ": " + field.getName()
                        + " is a string and the payload is not UTF-8");
            }
        } else {
            builder.setField(field, ByteString.copyFrom(data, offset, length));
        }
        return (T) builder.build();
    }
}
