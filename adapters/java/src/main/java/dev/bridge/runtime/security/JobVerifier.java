package dev.bridge.runtime.security;

import java.nio.ByteBuffer;
import java.util.Map;

/**
 * What a worker with keys checks before running a job (wire contract, section 9.2), in order,
 * with this process's replay cache. {@link #check} returns null when the job may run, else the
 * failed check's words ("unsigned job", "unknown key id", "bad signature", "a signed job needs a
 * deadline", "expired", "deadline too far ahead", "replayed"), answered UNAUTHENTICATED, or
 * "replay cache full", answered RESOURCE_EXHAUSTED.
 */
public final class JobVerifier {
    /** How far ahead a signed job's deadline may be, by default (ms). */
    public static final long DEFAULT_WINDOW_MS = 86_400_000L;
    /** Clock difference tolerated between client and worker (ms). */
    public static final long CLOCK_SKEW_MS = 300_000L;

    /** The fields of a job the checks read (the envelope's, and the body's bytes). */
    public record SignedJob(String function, String keyId, byte[] nonce, byte[] mac, int version,
            long deadlineMs, int encoding, Map<String, String> metadata, ByteBuffer body) {
    }

    private volatile Keyring keyring;
    private final long windowMs;
    private final ReplayCache replay;

    public JobVerifier(Keyring keyring, long windowMs, int replayCapacity) {
        if (keyring == null) {
            throw new IllegalArgumentException("no keys");
        }
        if (windowMs <= 0) {
            throw new IllegalArgumentException("the signing window must be positive");
        }
        this.keyring = keyring;
        this.windowMs = windowMs;
        this.replay = new ReplayCache(replayCapacity);
    }

    public JobVerifier(Keyring keyring) {
        this(keyring, DEFAULT_WINDOW_MS, ReplayCache.DEFAULT_CAPACITY);
    }

    public Keyring keyring() {
        return keyring;
    }

    /** Accepts these keys from now on (rotation while serving; the replay cache is kept). */
    public void setKeyring(Keyring keyring) {
        if (keyring == null) {
            throw new IllegalArgumentException("no keys");
        }
        this.keyring = keyring;
    }

    public ReplayCache replayCache() {
        return replay;
    }

    /**
     * The key to sign this job's replies with: its key when the job named a known key and carried
     * a 16-byte nonce, else null (the replies go unsigned).
     */
    public byte[] replyKey(String keyId, byte[] nonce) {
        if (nonce == null || nonce.length != Signing.NONCE_SIZE || keyId == null) {
            return null;
        }
        return keyring.key(keyId);
    }

    /** Null when the job may run, else the failed check. */
    public String check(SignedJob job) {
        return check(job, System.currentTimeMillis());
    }

    /** As {@link #check(SignedJob)} with the worker's clock at {@code nowMs}. */
    public String check(SignedJob job, long nowMs) {
        if (job.keyId() == null || job.keyId().isEmpty()) {
            return "unsigned job";
        }
        byte[] key = keyring.key(job.keyId());
        if (key == null) {
            return "unknown key id";
        }
        if (job.nonce().length != Signing.NONCE_SIZE || job.mac().length != Signing.MAC_SIZE) {
            return "bad signature";
        }
        javax.crypto.Mac mac = Signing.mac(key);
        mac.update(Signing.requestPrefix(job.function(), job.keyId(), job.nonce(), job.version(), job.deadlineMs(),
                job.encoding(), job.metadata(), job.body().remaining()));
        mac.update(job.body().duplicate());
        if (!Signing.equal(mac.doFinal(), job.mac())) {
            return "bad signature";
        }
        if (job.deadlineMs() == 0) {
            return "a signed job needs a deadline";
        }
        if (job.deadlineMs() <= nowMs) {
            return "expired";
        }
        if (job.deadlineMs() > nowMs + windowMs + CLOCK_SKEW_MS) {
            return "deadline too far ahead";
        }
        return replay.admit(job.keyId(), job.nonce(), job.deadlineMs(), nowMs);
    }
}
