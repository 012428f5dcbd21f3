package dev.bridge.runtime;

import com.google.gson.JsonObject;
import com.google.protobuf.Message;
import dev.bridge.runtime.gearman.GearmanJob;
import dev.bridge.v1.Code;
import dev.bridge.v1.Encoding;
import java.io.IOException;
import java.nio.charset.StandardCharsets;

/**
 * Serves the jobs of a bare rpc (wire contract, section 8.4), in order: payload over the size
 * limit → RESOURCE_EXHAUSTED; payload not decodable in the method's encoding → INVALID_ARGUMENT;
 * then the handler (a method left out answers UNIMPLEMENTED). The reply goes out alone as the
 * WORK_COMPLETE payload, without a frame; errors as section 8.3 says: for a JSON method the
 * object {@code {"code":5,"status":"NOT_FOUND","message":"..."}}, otherwise the message text
 * alone, UTF-8; a {@link JobFailedException} is a WORK_FAIL.
 */
final class BareJobs {
    private static final System.Logger LOG = System.getLogger(BareJobs.class.getName());

    private BareJobs() {
    }

    static <Q extends Message, R extends Message> void serve(Rpc<Q, R> rpc, GearmanJob job,
            UnaryHandler<Q, R> handler, long maxRequestBytes) throws IOException {
        Encoding encoding = rpc.bareEncoding();
        byte[] reply;
        long start = System.nanoTime();
        String name = encoding.name().toLowerCase(java.util.Locale.ROOT);
        try {
            if (job.declaredPayloadLength() > maxRequestBytes) {
                throw new BridgeException(Code.RESOURCE_EXHAUSTED, rpc.functionName() + ": request of "
                        + job.declaredPayloadLength() + " bytes exceeds this worker's limit of " + maxRequestBytes
                        + " bytes");
            }
            Q request;
            try {
                request = Codecs.decodeBare(job.payloadArray(), job.payloadOffset(), job.payloadLength(), encoding,
                        rpc.requestPrototype());
            } catch (DecodeException e) {
                throw new BridgeException(Code.INVALID_ARGUMENT, rpc.functionName() + ": the request is not a valid "
                        + rpc.requestPrototype().getDescriptorForType().getFullName() + " in bare " + encoding + ": "
                        + e.getMessage(), e);
            }
            R result = handler.handle(request, new BareContext(job, encoding));
            if (result == null) {
                throw new BridgeException(Code.INTERNAL, "handler of " + rpc.functionName() + " returned null");
            }
            reply = Codecs.encodeBare(result, encoding);
        } catch (JobFailedException e) {
            job.fail();
            Logging.job(job, name, start, "WORK_FAIL", messageOf(e), null);
            return;
        } catch (BridgeException e) {
            job.exception(error(encoding, e.code(), e));
            Logging.job(job, name, start, e.code().name(), messageOf(e), null);
            return;
        } catch (Throwable e) {
            // A bare error carries no trace: the log keeps it.
            LOG.log(System.Logger.Level.WARNING, rpc.functionName() + ": handler threw " + e, e);
            job.exception(error(encoding, Code.UNKNOWN, e));
            Logging.job(job, name, start, Code.UNKNOWN.name(), messageOf(e), null);
            if (e instanceof VirtualMachineError vme && !(e instanceof StackOverflowError)) {
                throw vme; // reported, but the JVM is in no state to go on as if nothing happened
            }
            return;
        }
        job.complete(reply);
        Logging.job(job, name, start, "OK", null, null);
    }

    private static String messageOf(Throwable e) {
        String message = e.getMessage();
        return message == null || message.isEmpty() ? Worker.typeName(e) : message;
    }

    /** The WORK_EXCEPTION payload of section 8.3 for {@code error}. */
    static byte[] error(Encoding encoding, Code code, Throwable error) {
        if (code == null || code == Code.UNRECOGNIZED) {
            code = Code.UNKNOWN;
        }
        String message = error.getMessage();
        if (message == null || message.isEmpty()) {
            message = error instanceof BridgeException ? "" : Worker.typeName(error);
        }
        if (encoding == Encoding.JSON) {
            JsonObject json = new JsonObject();
            json.addProperty("code", code.getNumber());
            json.addProperty("status", code.name());
            json.addProperty("message", message);
            return BareJsonCodec.GSON.toJson(json).getBytes(StandardCharsets.UTF_8);
        }
        return (message.isEmpty() ? code.name() : message).getBytes(StandardCharsets.UTF_8);
    }
}
