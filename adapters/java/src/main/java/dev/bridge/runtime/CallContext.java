package dev.bridge.runtime;

import dev.bridge.v1.Encoding;
import java.time.Duration;
import java.time.Instant;
import java.util.Map;
import java.util.Optional;

/**
 * What a handler knows about the call it serves, and how it talks back before its reply:
 * progress, warnings. Errors with a code are thrown as {@link BridgeException}. Safe to use from
 * any thread while the handler runs; after the job has ended, reporting methods throw
 * {@link IllegalStateException}.
 */
public interface CallContext {
    /** The Gearman function this job was submitted to. */
    String functionName();

    /** The job handle gearmand gave the job. */
    String jobHandle();

    /** The caller's metadata from the request envelope (never null; empty when none). */
    Map<String, String> metadata();

    /**
     * The caller's W3C traceparent ({@code metadata().get("traceparent")}), when it is a valid
     * version-00 one; an invalid value is ignored. A handler that calls on passes the metadata on.
     */
    default Optional<String> traceparent() {
        return TraceContext.traceparent(metadata());
    }

    /** The trace id (32 lower-case hex digits) of {@link #traceparent()}, when valid. */
    default Optional<String> traceId() {
        return traceparent().map(TraceContext::traceId);
    }

    /** The caller's absolute deadline in Unix epoch milliseconds, 0 when none. */
    long deadlineMillis();

    /** The caller's deadline, if it gave one. */
    default Optional<Instant> deadline() {
        long ms = deadlineMillis();
        return ms == 0 ? Optional.empty() : Optional.of(Instant.ofEpochMilli(ms));
    }

    /** Time left until the deadline (negative once passed), if the caller gave one. */
    default Optional<Duration> remaining() {
        return deadline().map(d -> Duration.between(Instant.now(), d));
    }

    /** Whether the caller's deadline has passed: it has stopped waiting, so the work may stop too. */
    default boolean isDeadlineExceeded() {
        long ms = deadlineMillis();
        return ms != 0 && System.currentTimeMillis() >= ms;
    }

    /** How the request arrived, and so how the reply is encoded. */
    Encoding encoding();

    /** Reports progress (WORK_STATUS): {@code numerator} out of {@code denominator}. */
    void progress(long numerator, long denominator);

    /** Sends a warning (WORK_WARNING) the caller sees without the call ending. */
    void warn(String text);
}
