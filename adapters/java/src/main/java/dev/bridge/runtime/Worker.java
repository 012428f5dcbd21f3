package dev.bridge.runtime;

import com.google.protobuf.CodedInputStream;
import com.google.protobuf.CodedOutputStream;
import com.google.protobuf.Message;
import com.google.protobuf.UnsafeByteOperations;
import dev.bridge.runtime.gearman.GearmanJob;
import dev.bridge.runtime.gearman.GearmanWorker;
import dev.bridge.runtime.gearman.PacketReader;
import dev.bridge.runtime.gearman.ServerAddress;
import dev.bridge.runtime.gearman.TlsSettings;
import dev.bridge.runtime.security.JobVerifier;
import dev.bridge.runtime.security.Keyring;
import dev.bridge.runtime.security.ReplayCache;
import dev.bridge.runtime.security.Signing;
import dev.bridge.v1.Code;
import dev.bridge.v1.Encoding;
import dev.bridge.v1.Request;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.time.Duration;
import java.util.List;
import java.util.Objects;

/**
 * A bridge worker: serves rpcs to Python callers through one or more Gearman job servers.
 *
 * <pre>{@code
 * Worker worker = Worker.builder().servers("127.0.0.1:4730").concurrency(4).build();
 * GreeterBridge.register(worker, new MyGreeter());
 * worker.run(); // until SIGTERM: stops grabbing, finishes the running jobs, exits 0
 * }</pre>
 *
 * <p>Each job goes through the steps of the wire contract in order (size, envelope, version,
 * encoding, deadline, body, handler) and is always answered: a reply, or an Error envelope whose
 * {@code type} is the Java exception's simple class name.
 */
public final class Worker {
    /** The largest request payload accepted unless configured: 64 MiB + 64 KiB. */
    public static final long DEFAULT_MAX_REQUEST_BYTES = 64L * 1024 * 1024 + 64 * 1024;
    /** The {@code language} every Error envelope from this runtime carries. */
    public static final String LANGUAGE = "java";

    private static final System.Logger LOG = System.getLogger(Worker.class.getName());
    private static final int SUPPORTED_VERSION = 1;
    private static final int MAX_TRACE_CHARS = 16 * 1024;
    private static final byte[] EMPTY = new byte[0];
    private static final int PROTOBUF_WRITE_BUFFER = 8 * 1024;
    private static final int STREAMED_REPLY_BYTES = 32 * 1024;
    /** Why a job that is not an envelope is refused (wire contract, section 2, step 2). */
    private static final String BARE_HINT = "a caller that sends bare payloads (JSON, msgpack, protobuf or raw"
            + " bytes without the envelope) needs the method declared `bare: true` (wire contract, section 8)";

    private final GearmanWorker gearman;
    private final long maxRequestBytes;
    /** The signed-job checks (wire contract, section 9); null: jobs are not checked, replies not signed. */
    private final JobVerifier verifier;

    private Worker(Builder b) {
        this.maxRequestBytes = b.maxRequestBytes;
        Keyring keys = b.keysSet ? b.keys : Keyring.fromEnv();
        this.verifier = keys == null ? null : new JobVerifier(keys, b.signingWindowMs, b.replayCapacity);
        // Room for the packet's handle, function and unique besides a payload at the limit.
        long maxBody = Math.max(PacketReader.DEFAULT_MAX_BODY, b.maxRequestBytes + 64 * 1024);
        // A job over the limit is answered RESOURCE_EXHAUSTED: its payload is not kept while read.
        this.gearman = new GearmanWorker(b.servers, b.concurrency, (int) Math.min(maxBody, Integer.MAX_VALUE - 16),
                b.clientId, b.settings, b.maxRequestBytes + 64 * 1024);
        if (b.servers.stream().anyMatch(ServerAddress::tls)) {
            TlsSettings tls = b.tls != null ? b.tls : TlsSettings.fromEnv();
            tls.check(); // a file that cannot be used stops the worker here, named
            gearman.tls(tls);
        }
    }

    public static Builder builder() {
        return new Builder();
    }

    /** Serves a unary rpc with {@code handler}. */
    public <Q extends Message, R extends Message> Worker register(Rpc<Q, R> rpc, UnaryHandler<Q, R> handler) {
        if (rpc.isServerStreaming()) {
            throw new IllegalArgumentException(rpc + " streams its replies: use registerStreaming");
        }
        Objects.requireNonNull(handler);
        if (rpc.isBare()) {
            gearman.register(rpc.functionName(), job -> {
                if (verifier != null) {
                    refuseBare(rpc, job);
                } else {
                    BareJobs.serve(rpc, job, handler, maxRequestBytes);
                }
            });
            return this;
        }
        gearman.register(rpc.functionName(), job -> serve(rpc, job, (request, context) -> {
            R reply = handler.handle(request, context);
            if (reply == null) {
                throw new BridgeException(Code.INTERNAL, "handler of " + rpc.functionName() + " returned null");
            }
            return reply;
        }));
        return this;
    }

    /** Serves a server-streaming rpc with {@code handler}. */
    public <Q extends Message, R extends Message> Worker registerStreaming(
            Rpc<Q, R> rpc, StreamingHandler<Q, R> handler) {
        if (!rpc.isServerStreaming()) {
            throw new IllegalArgumentException(rpc + " is unary: use register");
        }
        Objects.requireNonNull(handler);
        gearman.register(rpc.functionName(), job -> serve(rpc, job, (request, context) -> {
            handler.handle(request, reply -> {
                Objects.requireNonNull(reply, "a streamed reply cannot be null");
                context.sendItem(Codecs.encode(reply, context.encoding()));
            }, context);
            return null;
        }));
        return this;
    }

    /** The keys jobs must be signed with, or null when jobs are not checked. */
    public Keyring keys() {
        return verifier == null ? null : verifier.keyring();
    }

    /**
     * Accepts jobs signed by these keys from now on (rotation while serving; the replay cache is
     * kept). Only for a worker built with keys.
     */
    public void setKeys(Keyring keys) {
        if (verifier == null) {
            throw new IllegalStateException("this worker was built without keys: give them to the builder");
        }
        verifier.setKeyring(keys);
    }

    /** The Gearman function names registered so far. */
    public List<String> functions() {
        return gearman.functions();
    }

    /** Connects to the job servers and starts serving; returns at once. */
    public void start() {
        gearman.start();
    }

    /** Stops grabbing jobs; the running ones finish. Returns at once. */
    public void stop() {
        gearman.stop();
    }

    /**
     * After {@link #stop()}: waits until no job is running and no grab waits for its answer (one
     * a frozen server leaves unanswered is abandoned a second after stop(), and so is a reply
     * whose write has not moved for a second). A job whose connection is gone (closed because its
     * write made no progress) is not waited for: it could deliver nothing, and its handler was
     * interrupted. The process may then exit; the worker's threads still closing connections do
     * not matter.
     */
    public boolean awaitIdle(Duration timeout) throws InterruptedException {
        return gearman.awaitIdle(timeout);
    }

    /** Waits until the worker has stopped and its running jobs have finished. */
    public boolean awaitTermination(Duration timeout) throws InterruptedException {
        return gearman.awaitTermination(timeout);
    }

    /**
     * Starts, then blocks until stopped. SIGTERM (or SIGINT) triggers a graceful stop through a
     * shutdown hook: no new jobs, the running ones finish, then the JVM exits with status 0.
     */
    public void run() throws InterruptedException {
        java.util.logging.Handler[] handlers = java.util.logging.Logger.getLogger("").getHandlers();
        Thread hook = new Thread(() -> {
            if (gearman.isStopping()) {
                return; // stopped by the program itself: let the JVM exit as it was told
            }
            logFromShutdownHook("signal received: finishing " + gearman.runningJobs() + " running job(s)", handlers);
            gearman.stop();
            try {
                // The running jobs take their own time; a grab a frozen server leaves unanswered is
                // abandoned a second after stop(). Then the threads get a moment to close their
                // connections; one stuck on a frozen server is not waited for.
                gearman.awaitIdle(Duration.ofDays(365));
                gearman.awaitTermination(Duration.ofMillis(500));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            System.out.flush();
            System.err.flush();
            // A graceful stop is a clean exit, whatever signal asked for it.
            Runtime.getRuntime().halt(0);
        }, "bridge-shutdown");
        Runtime.getRuntime().addShutdownHook(hook);
        start();
        LOG.log(System.Logger.Level.INFO, "serving {0} function(s) from {1}", functions().size(),
                gearman.servers().stream().map(ServerAddress::toString).collect(java.util.stream.Collectors.joining(",")));
        while (!gearman.awaitTermination(Duration.ofSeconds(1))) {
            // Wait for the threads; the hook or stop() ends them.
        }
        try {
            Runtime.getRuntime().removeShutdownHook(hook);
        } catch (IllegalStateException shuttingDown) {
            // The hook is already running and will end the JVM.
        }
    }

    /**
     * Logs from the shutdown hook. java.util.logging removes its root handlers from a shutdown
     * hook of its own, which runs at the same time as ours: a record logged after that is lost
     * (which one wins depends on the run). Once that happened, the handlers it had when run()
     * began still write the record (a console handler keeps writing after its close).
     */
    private static void logFromShutdownHook(String message, java.util.logging.Handler[] handlers) {
        if (handlers.length == 0 || java.util.logging.Logger.getLogger("").getHandlers().length > 0) {
            LOG.log(System.Logger.Level.INFO, message);
            return;
        }
        java.util.logging.LogRecord record = new java.util.logging.LogRecord(java.util.logging.Level.INFO, message);
        record.setLoggerName(Worker.class.getName());
        record.setSourceClassName(Worker.class.getName());
        record.setSourceMethodName("run");
        for (java.util.logging.Handler handler : handlers) {
            handler.publish(record);
            handler.flush();
        }
    }

    // ------------------------------------------------------------------------------ the job flow

    /** Runs the handler on the decoded request: the reply, or null for a stream (already sent). */
    @FunctionalInterface
    private interface Body<Q> {
        Message run(Q request, JobContext context) throws Exception;
    }

    private <Q extends Message> void serve(Rpc<Q, ?> rpc, GearmanJob job, Body<Q> body) throws IOException {
        Message reply;
        byte[] header;
        byte[] encoded; // null: a protobuf reply, serialized straight into the connection below
        int size = 0;
        long start = System.nanoTime();
        JobContext context = null;
        try {
            context = open(rpc, job);
            Q request;
            try {
                request = Codecs.decode(context.body(), context.encoding(), rpc.requestPrototype());
            } catch (DecodeException e) {
                throw new BridgeException(Code.INVALID_ARGUMENT, "request body: " + e.getMessage(), e);
            }
            reply = body.run(request, context);
            if (rpc.isServerStreaming()) {
                header = context.streamEndHeader();
                encoded = EMPTY;
            } else {
                header = context.header(ReplyFrame.UNARY_REPLY, 0);
                if (context.encoding() == Encoding.MSGPACK) {
                    encoded = MsgpackCodec.encode(reply);
                } else {
                    size = reply.getSerializedSize();
                    // Small replies as one exact array; large ones skip that copy.
                    encoded = size < STREAMED_REPLY_BYTES ? reply.toByteArray() : null;
                }
            }
        } catch (JobFailedException e) {
            job.fail();
            logJob(job, context, start, "WORK_FAIL", e);
            return;
        } catch (Unauthenticated e) {
            job.exception(errorEnvelope(e.code(), e, false).toBuilder().setType(e.typeName())
                    .setTrace(Unauthenticated.TRACE).build().toByteArray());
            logJob(job, context, start, e.code().name(), e);
            return;
        } catch (BridgeException e) {
            job.exception(errorEnvelope(e.code(), e, false).toByteArray());
            logJob(job, context, start, e.code().name(), e);
            return;
        } catch (Throwable e) {
            job.exception(errorEnvelope(Code.UNKNOWN, e, true).toByteArray());
            logJob(job, context, start, Code.UNKNOWN.name(), e);
            if (e instanceof VirtualMachineError vme && !(e instanceof StackOverflowError)) {
                throw vme; // reported, but the JVM is in no state to go on as if nothing happened
            }
            return;
        }
        if (encoded != null) {
            job.complete(header, encoded);
            logJob(job, context, start, "OK", null);
        } else {
            Message message = reply;
            job.complete(ReplyFrame.HEADER_SIZE + size, out -> {
                out.write(header);
                CodedOutputStream coded = CodedOutputStream.newInstance(out, PROTOBUF_WRITE_BUFFER);
                message.writeTo(coded);
                coded.flush();
            });
            logJob(job, context, start, "OK", null);
        }
    }

    /** The job's log lines (docs/workers.md): its envelope's encoding and trace id, when it got that far. */
    private static void logJob(GearmanJob job, JobContext context, long start, String outcome, Throwable error) {
        String encoding = context == null || context.encoding() == Encoding.PROTOBUF ? "protobuf" : "msgpack";
        String message = error == null ? null : Objects.requireNonNullElse(error.getMessage(), typeName(error));
        String traceId = context == null ? null : context.traceId().orElse(null);
        Logging.job(job, encoding, start, outcome, message, traceId);
    }

    /** Steps 1-5 of the contract: size, envelope, version, encoding, deadline. */
    private JobContext open(Rpc<?, ?> rpc, GearmanJob job) {
        if (job.declaredPayloadLength() > maxRequestBytes) {
            throw new BridgeException(Code.RESOURCE_EXHAUSTED, "request of " + job.declaredPayloadLength()
                    + " bytes exceeds this worker's limit of " + maxRequestBytes + " bytes");
        }
        Request envelope;
        try {
            // An immutable view of the packet (never reused) with aliasing: the body is not copied.
            // (Bytes protobuf-java would read otherwise than upb: read as upb does; see ProtobufWire.)
            byte[] normalized = ProtobufWire.normalize(Request.getDescriptor(), job.payloadArray(),
                    job.payloadOffset(), job.payloadLength());
            CodedInputStream in = normalized != null ? CodedInputStream.newInstance(normalized)
                    : UnsafeByteOperations.unsafeWrap(job.payloadArray(), job.payloadOffset(), job.payloadLength())
                            .newCodedInput();
            in.enableAliasing(true);
            envelope = Request.parseFrom(in);
        } catch (IOException | DecodeException e) { // InvalidProtocolBufferException, from a byte array
            throw new BridgeException(Code.INVALID_ARGUMENT, rpc.functionName() + ": the job is not a bridge envelope"
                    + " (bridge.v1.Request): " + e.getMessage() + "; " + BARE_HINT, e);
        }
        if (envelope.getVersion() == 0) {
            // protobuf read these bytes, but with no version they are no envelope either.
            throw new BridgeException(Code.FAILED_PRECONDITION, rpc.functionName() + ": envelope version 0 is not"
                    + " supported: the job has no envelope version, so it is probably not a bridge envelope; "
                    + BARE_HINT);
        }
        if (envelope.getVersion() != SUPPORTED_VERSION) {
            throw new BridgeException(Code.FAILED_PRECONDITION, "envelope version " + envelope.getVersion()
                    + " is not supported (this worker speaks version " + SUPPORTED_VERSION + ")");
        }
        if (verifier != null) {
            verify(rpc, job, envelope);
        }
        Encoding encoding = switch (envelope.getEncodingValue()) {
            case Encoding.ENCODING_UNSPECIFIED_VALUE, Encoding.PROTOBUF_VALUE -> Encoding.PROTOBUF;
            case Encoding.MSGPACK_VALUE -> Encoding.MSGPACK;
            default -> throw new BridgeException(Code.INVALID_ARGUMENT,
                    "unknown body encoding " + envelope.getEncodingValue());
        };
        long deadline = envelope.getDeadlineMs();
        if (deadline != 0 && System.currentTimeMillis() >= deadline) {
            throw new BridgeException(Code.DEADLINE_EXCEEDED,
                    "deadline passed before the job started (" + (System.currentTimeMillis() - deadline) + " ms ago)");
        }
        return new JobContext(job, envelope, encoding, rpc.replyTypeTag());
    }

    /**
     * Section 9.2, after steps 1-3: throws {@link Unauthenticated} unless the job is signed by a
     * known key, fresh and not replayed. A job naming a known key with a 16-byte nonce gets signed
     * replies (9.3), its refusal included.
     */
    private void verify(Rpc<?, ?> rpc, GearmanJob job, Request envelope) {
        String keyId = envelope.getKeyId();
        byte[] nonce = envelope.getNonce().toByteArray();
        byte[] key = verifier.replyKey(keyId, nonce);
        String function = job.function();
        if (key != null) {
            job.signReplies((type, length) -> {
                javax.crypto.Mac mac = Signing.mac(key);
                mac.update(Signing.replyPrefix(function, keyId, nonce, replyPacket(type), length));
                return mac;
            });
        }
        String failure = verifier.check(new JobVerifier.SignedJob(function, keyId, nonce,
                envelope.getMac().toByteArray(), envelope.getVersion(), envelope.getDeadlineMs(),
                envelope.getEncodingValue(), envelope.getMetadataMap(), envelope.getBody().asReadOnlyByteBuffer()));
        if (failure != null) {
            throw refused(rpc, job, failure, keyId);
        }
    }

    private static int replyPacket(dev.bridge.runtime.gearman.PacketType type) {
        return switch (type) {
            case WORK_DATA -> Signing.PACKET_DATA;
            case WORK_COMPLETE -> Signing.PACKET_COMPLETE;
            case WORK_EXCEPTION -> Signing.PACKET_EXCEPTION;
            default -> throw new IllegalArgumentException(type + " is not signed");
        };
    }

    /**
     * The refusal of a job that failed a check, and its one warning line (never a key):
     * UNAUTHENTICATED, or RESOURCE_EXHAUSTED for a full replay cache (a well-signed job this
     * worker cannot vouch for yet).
     */
    private static Unauthenticated refused(Rpc<?, ?> rpc, GearmanJob job, String failure, String keyId) {
        String id = keyId == null || keyId.isEmpty() ? ""
                : " (key id '" + logQuote(keyId.length() > 64 ? keyId.substring(0, 64) : keyId) + "')";
        Code code = ReplayCache.FULL.equals(failure) ? Code.RESOURCE_EXHAUSTED : Code.UNAUTHENTICATED;
        LOG.log(System.Logger.Level.WARNING, "{0}: job {1} refused ({2}): {3}{4}", job.function(),
                job.handleString(), code.name(), failure, id);
        return new Unauthenticated(code, rpc.functionName() + ": " + failure);
    }

    /**
     * Text a caller chose (a job's key id), safe for one log line: every control, format or
     * unassigned character is written as a Java escape, so no caller can start a line of its own.
     */
    static String logQuote(String text) {
        StringBuilder out = new StringBuilder(text.length());
        text.codePoints().forEach(cp -> {
            int type = Character.getType(cp);
            boolean unsafe = Character.isISOControl(cp) || type == Character.FORMAT
                    || type == Character.UNASSIGNED || type == Character.LINE_SEPARATOR
                    || type == Character.PARAGRAPH_SEPARATOR || type == Character.SURROGATE
                    || cp == '\\';
            if (!unsafe) {
                out.appendCodePoint(cp);
            } else if (cp == '\\') {
                out.append("\\\\");
            } else {
                for (char c : Character.toChars(cp)) {
                    out.append(String.format("\\u%04x", (int) c));
                }
            }
        });
        return out.toString();
    }

    /** A bare job on a worker with keys: it cannot carry a signature (section 9, bare error form). */
    private static void refuseBare(Rpc<?, ?> rpc, GearmanJob job) throws IOException {
        Unauthenticated e = refused(rpc, job, "bare jobs cannot be signed", null);
        job.exception(BareJobs.error(rpc.bareEncoding(), e.code(), e));
    }

    /** The {@code bridge.v1.Error} for an exception. */
    static dev.bridge.v1.Error errorEnvelope(Code code, Throwable error, boolean withTrace) {
        dev.bridge.v1.Error.Builder b = dev.bridge.v1.Error.newBuilder()
                .setCode(code)
                .setMessage(Objects.requireNonNullElse(error.getMessage(), ""))
                .setType(typeName(error))
                .setLanguage(LANGUAGE);
        if (error instanceof BridgeException be) {
            b.putAllDetails(be.details());
        }
        if (withTrace) {
            StringWriter trace = new StringWriter();
            error.printStackTrace(new PrintWriter(trace));
            String text = trace.toString();
            b.setTrace(text.length() > MAX_TRACE_CHARS ? text.substring(0, MAX_TRACE_CHARS) : text);
        }
        return b.build();
    }

    /** The class's simple name ({@code IllegalStateException}); the binary name for anonymous classes. */
    static String typeName(Throwable error) {
        Class<?> c = error.getClass();
        String simple = c.getSimpleName();
        if (!simple.isEmpty()) {
            return simple;
        }
        String name = c.getName();
        return name.substring(name.lastIndexOf('.') + 1);
    }

    /** Worker settings. */
    public static final class Builder {
        private List<ServerAddress> servers = List.of(new ServerAddress("127.0.0.1", ServerAddress.DEFAULT_PORT));
        private int concurrency = 1;
        private long maxRequestBytes = DEFAULT_MAX_REQUEST_BYTES;
        private String clientId;
        private GearmanWorker.Settings settings = GearmanWorker.Settings.DEFAULT;
        private Keyring keys;
        private boolean keysSet;
        private TlsSettings tls;
        private long signingWindowMs = JobVerifier.DEFAULT_WINDOW_MS;
        private int replayCapacity = ReplayCache.DEFAULT_CAPACITY;

        private Builder() {
        }

        /**
         * The keys every job of an enveloped method must be signed with (wire contract, section 9);
         * replies are then signed, and jobs that fail the checks are answered UNAUTHENTICATED.
         * Default: {@code BRIDGE_KEYS} / {@code BRIDGE_KEYS_FILE} when set. Null: no checks, even
         * when the environment has keys.
         */
        public Builder keys(Keyring keys) {
            this.keys = keys;
            this.keysSet = true;
            return this;
        }

        /** How far ahead a signed job's deadline may be (default 86400 s; 300 s of clock skew on top). */
        public Builder signingWindow(Duration window) {
            if (window.isNegative() || window.isZero()) {
                throw new IllegalArgumentException("signingWindow must be positive, got " + window);
            }
            this.signingWindowMs = window.toMillis();
            return this;
        }

        /** The replay cache's bound, in entries (default 100 000). */
        public Builder replayCapacity(int capacity) {
            if (capacity < 1) {
                throw new IllegalArgumentException("replayCapacity must be >= 1, got " + capacity);
            }
            this.replayCapacity = capacity;
            return this;
        }

        /**
         * The CA, client certificate and key for {@code tls://} servers (default: the
         * {@code BRIDGE_TLS_CA}, {@code BRIDGE_TLS_CERT}, {@code BRIDGE_TLS_KEY} and
         * {@code BRIDGE_TLS_SERVER_NAME} environment). Plain servers ignore them.
         */
        public Builder tls(TlsSettings tls) {
            this.tls = tls;
            return this;
        }

        /** Job servers as {@code host:port,tls://host:port}; every one is served. */
        public Builder servers(String servers) {
            this.servers = ServerAddress.parseList(servers);
            return this;
        }

        public Builder servers(List<ServerAddress> servers) {
            if (servers.isEmpty()) {
                throw new IllegalArgumentException("no job server given");
            }
            this.servers = List.copyOf(servers);
            return this;
        }

        /** Jobs run in parallel by this worker (default 1). */
        public Builder concurrency(int concurrency) {
            if (concurrency < 1) {
                throw new IllegalArgumentException("concurrency must be >= 1, got " + concurrency);
            }
            this.concurrency = concurrency;
            return this;
        }

        /** The largest request payload accepted; a larger one is answered RESOURCE_EXHAUSTED. */
        public Builder maxRequestBytes(long maxRequestBytes) {
            if (maxRequestBytes < 0 || maxRequestBytes > Integer.MAX_VALUE - 128 * 1024) {
                throw new IllegalArgumentException("maxRequestBytes out of range: " + maxRequestBytes);
            }
            this.maxRequestBytes = maxRequestBytes;
            return this;
        }

        /** The name gearmand's {@code workers} admin command shows for this worker's connections. */
        public Builder clientId(String clientId) {
            this.clientId = clientId;
            return this;
        }

        /**
         * The read timeout (default 5 s): a job server that leaves an echo or a grab unanswered
         * this long, or takes none of a reply's bytes this long (a write that makes no progress),
         * has its connection closed and reopened with backoff. A job whose reply could not be
         * written gives its slot back at once (gearmand re-queues it) and its handler is
         * interrupted; its later sends fail.
         */
        public Builder readTimeout(Duration timeout) {
            if (timeout.isNegative() || timeout.isZero()) {
                throw new IllegalArgumentException("readTimeout must be positive, got " + timeout);
            }
            GearmanWorker.Settings s = settings;
            this.settings = new GearmanWorker.Settings(s.connectTimeout(), timeout, s.pollInterval(),
                    s.regrabInterval(), s.minBackoff(), s.maxBackoff(), timeout);
            return this;
        }

        /** Connection timings (timeouts, polling, reconnect backoff). */
        public Builder connectionSettings(GearmanWorker.Settings settings) {
            this.settings = Objects.requireNonNull(settings);
            return this;
        }

        public Worker build() {
            return new Worker(this);
        }
    }
}
