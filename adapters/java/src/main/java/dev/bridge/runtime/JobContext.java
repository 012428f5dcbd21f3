package dev.bridge.runtime;

import dev.bridge.runtime.gearman.GearmanJob;
import dev.bridge.v1.Encoding;
import dev.bridge.v1.Request;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.Map;

/**
 * The {@link CallContext} of one run of a Gearman job. It owns the run's attempt id and frames
 * what it sends (wire contract, section 3): stream items numbered from 0, and an attempt marker
 * before the first status or warning of a run that has sent no WORK_DATA yet.
 */
final class JobContext implements CallContext {
    private static final byte[] EMPTY = new byte[0];

    private final GearmanJob job;
    private final Request request;
    private final Encoding encoding;
    private final int typeTag;
    private final long attempt;
    /** Stream items sent so far; guarded by this. */
    private long items;
    /** Whether this run has sent a WORK_DATA (an item or the marker); guarded by this. */
    private boolean sentData;

    JobContext(GearmanJob job, Request request, Encoding encoding, int typeTag) {
        this.job = job;
        this.request = request;
        this.encoding = encoding;
        this.typeTag = typeTag;
        this.attempt = ReplyFrame.newAttemptId();
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
    public synchronized void progress(long numerator, long denominator) {
        try {
            markAttempt();
            job.sendStatus(numerator, denominator);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot report progress: " + e.getMessage(), e);
        }
    }

    @Override
    public synchronized void warn(String text) {
        try {
            markAttempt();
            job.sendWarning(text.getBytes(StandardCharsets.UTF_8));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot send a warning: " + e.getMessage(), e);
        }
    }

    private void markAttempt() throws IOException {
        if (!sentData) {
            job.sendData(header(ReplyFrame.ATTEMPT_MARKER, 0), EMPTY);
            sentData = true;
        }
    }

    /** The frame header of this run: its encoding, reply type and attempt. */
    byte[] header(byte kind, long sequence) {
        return ReplyFrame.header(kind, ReplyFrame.encodingByte(encoding), typeTag, attempt, sequence);
    }

    /** The attempt id drawn for this run. */
    long attempt() {
        return attempt;
    }

    /** The encoded request message. */
    com.google.protobuf.ByteString body() {
        return request.getBody();
    }

    /** Sends one already-encoded streamed reply as the next stream item. */
    synchronized void sendItem(byte[] encoded) {
        try {
            job.sendData(header(ReplyFrame.STREAM_ITEM, items), encoded);
            items++;
            sentData = true;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot send a streamed reply: " + e.getMessage(), e);
        }
    }

    /** The stream end's header: its sequence is the number of items sent. */
    synchronized byte[] streamEndHeader() {
        return header(ReplyFrame.STREAM_END, items);
    }
}
