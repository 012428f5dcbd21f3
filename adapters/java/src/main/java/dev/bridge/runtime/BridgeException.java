package dev.bridge.runtime;

import dev.bridge.v1.Code;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;

/**
 * An error with a canonical code, thrown by a handler to answer a call with that code (the
 * equivalent of Python's {@code BridgeError(code, message)}). The caller's Python code raises the
 * {@code bridge.errors} class named after the code ({@code NotFound}, {@code InvalidArgument}...);
 * the Error envelope's {@code type} is this exception's class name, so a subclass shows its own.
 */
public class BridgeException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    private final Code code;
    private final Map<String, String> details;

    public BridgeException(Code code, String message) {
        this(code, message, Map.of(), null);
    }

    public BridgeException(Code code, String message, Throwable cause) {
        this(code, message, Map.of(), cause);
    }

    /** With {@code details}: free-form key/value pairs that travel in the Error envelope. */
    public BridgeException(Code code, String message, Map<String, String> details, Throwable cause) {
        super(message, cause);
        this.code = Objects.requireNonNull(code, "code");
        if (code == Code.UNRECOGNIZED) {
            throw new IllegalArgumentException("not a canonical code: UNRECOGNIZED");
        }
        this.details = Map.copyOf(new LinkedHashMap<>(details));
    }

    public Code code() {
        return code;
    }

    public Map<String, String> details() {
        return details;
    }

    @Override
    public String toString() {
        return getClass().getSimpleName() + "(" + code + "): " + getMessage();
    }
}
