package dev.bridge.runtime;

import java.util.Map;
import java.util.Optional;

/**
 * W3C Trace Context in a job's metadata (docs/workers.md): the keys {@code traceparent} and
 * {@code tracestate}, as in HTTP headers. Only a valid version-00 traceparent counts
 * ({@code 00-<32 lower-case hex, not all zero>-<16 lower-case hex, not all zero>-<2 lower-case hex>});
 * anything else is ignored, never an error. Metadata itself passes through unchanged.
 */
public final class TraceContext {
    /** The metadata key of the W3C traceparent. */
    public static final String TRACEPARENT = "traceparent";
    /** The metadata key of the W3C tracestate. */
    public static final String TRACESTATE = "tracestate";

    private TraceContext() {
    }

    /** Whether {@code value} is a valid version-00 traceparent. */
    public static boolean isValid(String value) {
        if (value == null || value.length() != 55 || !value.startsWith("00-") || value.charAt(35) != '-'
                || value.charAt(52) != '-') {
            return false;
        }
        return hex(value, 3, 35) && hex(value, 36, 52) && hex(value, 53, 55)
                && !zero(value, 3, 35) && !zero(value, 36, 52);
    }

    /** The metadata's traceparent, when valid. */
    public static Optional<String> traceparent(Map<String, String> metadata) {
        String value = metadata.get(TRACEPARENT);
        return isValid(value) ? Optional.of(value) : Optional.empty();
    }

    /** The 32-hex trace id of a valid traceparent, else null. */
    public static String traceId(String traceparent) {
        return isValid(traceparent) ? traceparent.substring(3, 35) : null;
    }

    private static boolean hex(String s, int from, int to) {
        for (int i = from; i < to; i++) {
            char c = s.charAt(i);
            if (!(c >= '0' && c <= '9') && !(c >= 'a' && c <= 'f')) {
                return false;
            }
        }
        return true;
    }

    private static boolean zero(String s, int from, int to) {
        for (int i = from; i < to; i++) {
            if (s.charAt(i) != '0') {
                return false;
            }
        }
        return true;
    }
}
