package dev.bridge.interop.worker;

import com.google.protobuf.ByteString;
import dev.bridge.interop.v1.BareBridge;
import dev.bridge.interop.v1.BareService;
import dev.bridge.interop.v1.Blob;
import dev.bridge.interop.v1.Composite;
import dev.bridge.interop.v1.Empty;
import dev.bridge.interop.v1.InteropBridge;
import dev.bridge.interop.v1.InteropService;
import dev.bridge.interop.v1.ProgressReply;
import dev.bridge.interop.v1.ProgressRequest;
import dev.bridge.interop.v1.RaiseRequest;
import dev.bridge.interop.v1.RawBytes;
import dev.bridge.interop.v1.RawText;
import dev.bridge.interop.v1.Scalars;
import dev.bridge.interop.v1.SleepReply;
import dev.bridge.interop.v1.SleepRequest;
import dev.bridge.interop.v1.StreamItem;
import dev.bridge.interop.v1.StreamRequest;
import dev.bridge.interop.v1.WhoAmIReply;
import dev.bridge.runtime.BridgeException;
import dev.bridge.runtime.CallContext;
import dev.bridge.runtime.CommandLine;
import dev.bridge.runtime.JobFailedException;
import dev.bridge.runtime.ReplyStream;
import dev.bridge.runtime.Worker;
import dev.bridge.v1.Code;
import java.util.Arrays;

/**
 * The interop services in Java: the behaviour interop_tests/README.md describes. One class serves
 * both Interop (enveloped) and Bare (wire contract, section 8): the bare rpcs share the handlers.
 */
public final class InteropWorker implements InteropService, BareService {
    @Override
    public Composite echo(Composite request, CallContext context) {
        return request;
    }

    @Override
    public Scalars echoScalars(Scalars request, CallContext context) {
        return request;
    }

    @Override
    public Blob echoBlob(Blob request, CallContext context) {
        return request;
    }

    @Override
    public Blob legacy(Blob request, CallContext context) {
        return request;
    }

    @Override
    public Empty nothing(Empty request, CallContext context) {
        return Empty.getDefaultInstance();
    }

    @Override
    public void stream(StreamRequest request, ReplyStream<StreamItem> replies, CallContext context)
            throws InterruptedException {
        streamItems(request, replies);
    }

    @Override
    public void streamIdempotent(StreamRequest request, ReplyStream<StreamItem> replies, CallContext context)
            throws InterruptedException {
        streamItems(request, replies);
    }

    /** Stream and StreamIdempotent: count items, each after delay_ms, payload_size bytes of (index % 256). */
    private static void streamItems(StreamRequest request, ReplyStream<StreamItem> replies)
            throws InterruptedException {
        for (int i = 0; i < request.getCount(); i++) {
            if (request.getDelayMs() > 0) {
                Thread.sleep(request.getDelayMs());
            }
            byte[] payload = new byte[Math.max(0, request.getPayloadSize())];
            Arrays.fill(payload, (byte) (i % 256));
            replies.send(StreamItem.newBuilder().setIndex(i).setPayload(ByteString.copyFrom(payload)).build());
        }
    }

    @Override
    public ProgressReply progress(ProgressRequest request, CallContext context) {
        if (!request.getWarning().isEmpty()) {
            context.warn(request.getWarning());
        }
        for (int i = 1; i <= request.getSteps(); i++) {
            context.progress(i, request.getSteps());
        }
        return ProgressReply.newBuilder().setStepsDone(request.getSteps()).build();
    }

    @Override
    public Empty raise(RaiseRequest request, CallContext context) {
        if (request.getFail()) {
            throw new JobFailedException();
        }
        if (request.getNative()) {
            throw new IllegalStateException(request.getMessage());
        }
        Code code = Code.forNumber(request.getCode());
        throw new BridgeException(code != null ? code : Code.UNKNOWN, request.getMessage());
    }

    @Override
    public SleepReply sleep(SleepRequest request, CallContext context) throws InterruptedException {
        Thread.sleep(Math.max(0, request.getMillis()));
        return SleepReply.newBuilder().setSleptMillis(request.getMillis()).setLanguage("java").build();
    }

    @Override
    public WhoAmIReply whoAmI(Empty request, CallContext context) {
        return WhoAmIReply.newBuilder()
                .setLanguage("java")
                .putAllMetadata(context.metadata())
                .setDeadlineMs(context.deadlineMillis())
                .build();
    }

    // notImplemented is left out on purpose: callers get UNIMPLEMENTED.

    // ------------------------------------------------------------ Bare: the same handlers

    @Override
    public Composite echoJson(Composite request, CallContext context) {
        return echo(request, context);
    }

    @Override
    public Scalars echoScalarsJson(Scalars request, CallContext context) {
        return echoScalars(request, context);
    }

    @Override
    public Composite echoMsgpack(Composite request, CallContext context) {
        return echo(request, context);
    }

    @Override
    public Composite echoProtobuf(Composite request, CallContext context) {
        return echo(request, context);
    }

    @Override
    public RawBytes echoRaw(RawBytes request, CallContext context) {
        return request;
    }

    /** The text with its code points in reverse order. */
    @Override
    public RawText reverse(RawText request, CallContext context) {
        int[] points = request.getText().codePoints().toArray();
        StringBuilder reversed = new StringBuilder(request.getText().length());
        for (int i = points.length - 1; i >= 0; i--) {
            reversed.appendCodePoint(points[i]);
        }
        return RawText.newBuilder().setText(reversed.toString()).build();
    }

    @Override
    public ProgressReply progressJson(ProgressRequest request, CallContext context) {
        return progress(request, context);
    }

    @Override
    public Empty raiseJson(RaiseRequest request, CallContext context) {
        return raise(request, context);
    }

    @Override
    public Empty raiseMsgpack(RaiseRequest request, CallContext context) {
        return raise(request, context);
    }

    @Override
    public WhoAmIReply whoAmIJson(Empty request, CallContext context) {
        return whoAmI(request, context);
    }

    // notImplementedJson is left out on purpose: callers get UNIMPLEMENTED in the bare form.

    public static void main(String[] args) throws InterruptedException {
        // The worker command line of docs/workers.md, with the runtime's --max-request-bytes,
        // --read-timeout and --client-id.
        CommandLine options = CommandLine.parse("bridge-interop-java", args);
        Worker worker = options.workerBuilder().clientId(options.clientId().orElse("bridge-interop-java")).build();
        InteropWorker handlers = new InteropWorker();
        InteropBridge.register(worker, handlers);
        BareBridge.register(worker, handlers);
        worker.run();
    }
}
