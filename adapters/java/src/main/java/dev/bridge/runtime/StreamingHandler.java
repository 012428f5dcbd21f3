package dev.bridge.runtime;

import com.google.protobuf.Message;

/** The body of a server-streaming rpc: one request in, any number of replies sent through {@code replies}. */
@FunctionalInterface
public interface StreamingHandler<Q extends Message, R extends Message> {
    void handle(Q request, ReplyStream<R> replies, CallContext context) throws Exception;
}
