package dev.bridge.runtime;

import com.google.protobuf.Message;
import java.util.Objects;

/**
 * One rpc as the worker serves it: its Gearman function name, its request and reply types, and
 * whether it streams its replies. Generated code declares one constant per rpc.
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

    private Rpc(String functionName, Q requestPrototype, R replyPrototype, boolean serverStreaming) {
        if (functionName.isEmpty() || functionName.indexOf('\0') >= 0) {
            throw new IllegalArgumentException("bad Gearman function name: '" + functionName + "'");
        }
        this.functionName = functionName;
        this.requestPrototype = Objects.requireNonNull(requestPrototype);
        this.replyPrototype = Objects.requireNonNull(replyPrototype);
        this.serverStreaming = serverStreaming;
        this.replyTypeTag = ReplyFrame.typeTag(replyPrototype.getDescriptorForType().getFullName());
    }

    /** An rpc with one reply; the prototypes are the messages' default instances. */
    public static <Q extends Message, R extends Message> Rpc<Q, R> unary(
            String functionName, Q requestPrototype, R replyPrototype) {
        return new Rpc<>(functionName, requestPrototype, replyPrototype, false);
    }

    /** An rpc that streams its replies ({@code returns (stream R)}). */
    public static <Q extends Message, R extends Message> Rpc<Q, R> serverStreaming(
            String functionName, Q requestPrototype, R replyPrototype) {
        return new Rpc<>(functionName, requestPrototype, replyPrototype, true);
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
        return "Rpc(" + functionName + (serverStreaming ? ", server streaming)" : ")");
    }
}
