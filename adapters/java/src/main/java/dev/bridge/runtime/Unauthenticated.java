package dev.bridge.runtime;

import dev.bridge.v1.Code;

/**
 * A job refused by the signed-job checks (wire contract, section 9.2): UNAUTHENTICATED (or
 * RESOURCE_EXHAUSTED for a full replay cache), with the failed check's words. Its Error
 * envelope's {@code type} is "Unauthenticated" ("ResourceExhausted"), as the other runtimes', and
 * it carries no stack trace of the worker's code.
 */
final class Unauthenticated extends BridgeException {
    private static final long serialVersionUID = 1L;
    /** The Error envelope's {@code trace} of a refusal: nothing of the worker's code. */
    static final String TRACE = "refused by the signed-job checks (wire contract, section 9.2)";

    Unauthenticated(Code code, String message) {
        super(code, message);
    }

    /** The Error envelope's {@code type}. */
    String typeName() {
        return code() == Code.RESOURCE_EXHAUSTED ? "ResourceExhausted" : "Unauthenticated";
    }
}
