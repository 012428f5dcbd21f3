package dev.bridge.runtime;

import com.google.protobuf.Message;

/** The body of a unary rpc: one request in, one reply out. */
@FunctionalInterface
public interface UnaryHandler<Q extends Message, R extends Message> {
    R handle(Q request, CallContext context) throws Exception;
}
