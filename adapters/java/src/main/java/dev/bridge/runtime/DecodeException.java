package dev.bridge.runtime;

/**
 * Bytes that do not decode as the expected message (malformed, truncated, a wrong type for a
 * field, an integer out of range). The runtime answers such a job with INVALID_ARGUMENT.
 */
public class DecodeException extends Exception {
    private static final long serialVersionUID = 1L;

    public DecodeException(String message) {
        super(message);
    }

    public DecodeException(String message, Throwable cause) {
        super(message, cause);
    }
}
