package dev.bridge.runtime.gearman;

import java.io.IOException;

/**
 * The byte stream broke the Gearman framing: bad magic, an unknown packet type, a body over the
 * limit or too few arguments. The stream cannot be trusted after it: close that connection.
 */
public class ProtocolException extends IOException {
    private static final long serialVersionUID = 1L;

    public ProtocolException(String message) {
        super(message);
    }
}
