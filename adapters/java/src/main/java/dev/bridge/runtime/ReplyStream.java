package dev.bridge.runtime;

import com.google.protobuf.Message;

/** Where a server-streaming rpc sends its replies: each {@link #send} is one WORK_DATA, in order. */
@FunctionalInterface
public interface ReplyStream<R extends Message> {
    void send(R reply);
}
