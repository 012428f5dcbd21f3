package dev.bridge.runtime;

import com.google.protobuf.Message;
import dev.bridge.v1.Encoding;
import java.util.Objects;

/**
 * One rpc as the worker serves it: its Gearman function name, its request and reply types,
 * whether it streams its replies, and for a bare method (wire contract, section 8) the encoding
 * its jobs carry without the envelope. Generated code declares one constant per rpc.
 *
 * @param <Q> the request message
 * @param <R> the reply message (each streamed item, for a streaming rpc)
 */
public final class Rpc<Q extends Message, R extends Message> {
    private final String functionName;
    private final Q requestPrototype;
    private final R replyPrototype;
    private final boolean serverStreaming;
    private final int replyTypeTag;
    /** The bare encoding (PROTOBUF, MSGPACK, JSON or RAW); null for an enveloped rpc. */
    private final Encoding bareEncoding;

    private Rpc(String functionName, Q requestPrototype, R replyPrototype, boolean serverStreaming,
            Encoding bareEncoding) {
        if (functionName.isEmpty() || functionName.indexOf('\0') >= 0) {
            throw new IllegalArgumentException("bad Gearman function name: '" + functionName + "'");
        }
        this.functionName = functionName;
        this.requestPrototype = Objects.requireNonNull(requestPrototype);
        this.replyPrototype = Objects.requireNonNull(replyPrototype);
        this.serverStreaming = serverStreaming;
        this.replyTypeTag = ReplyFrame.typeTag(replyPrototype.getDescriptorForType().getFullName());
        this.bareEncoding = bareEncoding;
        if (bareEncoding == Encoding.RAW) {
            RawCodec.rawField(requestPrototype.getDescriptorForType());
            RawCodec.rawField(replyPrototype.getDescriptorForType());
        }
    }

    /** An rpc with one reply; the prototypes are the messages' default instances. */
    public static <Q extends Message, R extends Message> Rpc<Q, R> unary(
            String functionName, Q requestPrototype, R replyPrototype) {
        return new Rpc<>(functionName, requestPrototype, replyPrototype, false, null);
    }

    /**
     * A bare rpc (wire contract, section 8): its jobs carry the request alone in {@code encoding}
     * (PROTOBUF, MSGPACK, JSON or RAW) and are answered with the reply alone, no frame; errors go
     * out in the bare form of section 8.3. Always unary.
     */
    public static <Q extends Message, R extends Message> Rpc<Q, R> bare(
            String functionName, Q requestPrototype, R replyPrototype, Encoding encoding) {
        switch (Objects.requireNonNull(encoding, "encoding")) {
            case PROTOBUF, MSGPACK, JSON, RAW -> {
            }
            default -> throw new IllegalArgumentException("a bare rpc needs the encoding PROTOBUF, MSGPACK, JSON or RAW,"
                    + " not " + encoding);
        }
        return new Rpc<>(functionName, requestPrototype, replyPrototype, false, encoding);
    }

    /** An rpc that streams its replies ({@code returns (stream R)}). */
    public static <Q extends Message, R extends Message> Rpc<Q, R> serverStreaming(
            String functionName, Q requestPrototype, R replyPrototype) {
        return new Rpc<>(functionName, requestPrototype, replyPrototype, true, null);
    }

    public String functionName() {
        return functionName;
    }

    public Q requestPrototype() {
        return requestPrototype;
    }

    public R replyPrototype() {
        return replyPrototype;
    }

    public boolean isServerStreaming() {
        return serverStreaming;
    }

    /** Whether jobs carry the request without the envelope (wire contract, section 8). */
    public boolean isBare() {
        return bareEncoding != null;
    }

    /** A bare rpc's encoding, fixed by the schema; null for an enveloped rpc. */
    public Encoding bareEncoding() {
        return bareEncoding;
    }

    /** The reply frames' type tag: CRC-32 of the reply message type's full name. */
    public int replyTypeTag() {
        return replyTypeTag;
    }

    /** The error a method the implementation left out answers with. */
    public BridgeException unimplemented() {
        return new BridgeException(dev.bridge.v1.Code.UNIMPLEMENTED,
                "method " + functionName + " is not implemented by this worker");
    }

    @Override
    public String toString() {
        return "Rpc(" + functionName + (serverStreaming ? ", server streaming" : "")
                + (bareEncoding != null ? ", bare " + bareEncoding : "") + ")";
    }
}
