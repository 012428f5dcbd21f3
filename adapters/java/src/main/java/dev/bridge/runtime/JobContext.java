package dev.bridge.runtime;

import dev.bridge.runtime.gearman.GearmanJob;
import dev.bridge.v1.Encoding;
import dev.bridge.v1.Request;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.Map;

/** The {@link CallContext} of one Gearman job. */
final class JobContext implements CallContext {
    private final GearmanJob job;
    private final Request request;
    private final Encoding encoding;

    JobContext(GearmanJob job, Request request, Encoding encoding) {
        this.job = job;
        this.request = request;
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
        return request.getMetadataMap();
    }

    @Override
    public long deadlineMillis() {
        return request.getDeadlineMs();
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

    /** The encoded request message. */
    com.google.protobuf.ByteString body() {
        return request.getBody();
    }

    /** Sends one already-encoded streamed reply. */
    void sendData(byte[] encoded) {
        try {
            job.sendData(encoded);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot send a streamed reply: " + e.getMessage(), e);
        }
    }
}
