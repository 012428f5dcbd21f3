package dev.bridge.runtime.gearman;

import java.io.IOException;
import java.io.OutputStream;

/**
 * Writes a packet's data argument straight into the connection's stream (a serializer that
 * knows its size in advance), so a large reply is not first copied into an array of its own.
 * It must write exactly the length announced with it.
 */
@FunctionalInterface
public interface PayloadWriter {
    void writeTo(OutputStream out) throws IOException;
}
