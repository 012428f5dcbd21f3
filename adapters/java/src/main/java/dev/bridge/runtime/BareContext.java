package dev.bridge.runtime;

import dev.bridge.runtime.gearman.GearmanJob;
import dev.bridge.v1.Encoding;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.Map;

/**
 * The {@link CallContext} of a bare job (wire contract, section 8.4): no metadata and no deadline
 * travel, and progress and warnings go out as they are, without attempt markers.
 */
final class BareContext implements CallContext {
    private final GearmanJob job;
    private final Encoding encoding;

    BareContext(GearmanJob job, Encoding encoding) {
        this.job = job;
        this.encoding = encoding;
    }

    @Override
    public String functionName() {
        return job.function();
    }

    @Override
    public String jobHandle() {
        return job.handleString();
    }

    @Override
    public Map<String, String> metadata() {
        return Map.of();
    }

    @Override
    public long deadlineMillis() {
        return 0;
    }

    @Override
    public Encoding encoding() {
        return encoding;
    }

    @Override
    public void progress(long numerator, long denominator) {
        try {
            job.sendStatus(numerator, denominator);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot report progress: " + e.getMessage(), e);
        }
    }

    @Override
    public void warn(String text) {
        try {
            job.sendWarning(text.getBytes(StandardCharsets.UTF_8));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot send a warning: " + e.getMessage(), e);
        }
    }
}
