package dev.bridge.runtime.security;

import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.Map;
import java.util.PriorityQueue;

/**
 * (key id, nonce) → deadline, kept until the deadline; bounded (wire contract, section 9.2, step
 * 4). A nonce seen before is a replay whatever job handle it comes with: handles are gearmand's
 * counters, given out again by a restarted gearmand or another one on a host of the same name, so
 * they prove nothing. When full, the entry with the earliest deadline is evicted and its
 * deadline becomes the <em>floor</em>: a job whose deadline is not later than the floor is refused
 * from then on ("replay cache full"), so no evicted nonce can ever run again. Thread-safe: two
 * copies of one job checked at once in two threads are admitted once. Behaves as the Python
 * reference, {@code bridge.security.verify.ReplayCache}.
 */
public final class ReplayCache {
    public static final int DEFAULT_CAPACITY = 100_000;
    /**
     * The one refusal that is no authentication failure: the job is well signed, the worker cannot
     * vouch for it (RESOURCE_EXHAUSTED, section 9.2).
     */
    public static final String FULL = "replay cache full";

    private record Id(String keyId, ByteBuffer nonce) {
    }

    private record Expiry(long deadlineMs, String keyId, byte[] nonce) {
    }

    private static final Comparator<Expiry> ORDER = Comparator.comparingLong(Expiry::deadlineMs)
            .thenComparing(Expiry::keyId)
            .thenComparing(Expiry::nonce, Arrays::compareUnsigned);

    private final int capacity;
    private final Map<Id, Long> byNonce = new HashMap<>();
    private final PriorityQueue<Expiry> expiry = new PriorityQueue<>(ORDER);
    private long floorMs;

    public ReplayCache(int capacity) {
        if (capacity < 1) {
            throw new IllegalArgumentException("capacity must be at least 1");
        }
        this.capacity = capacity;
    }

    public ReplayCache() {
        this(DEFAULT_CAPACITY);
    }

    public synchronized int size() {
        return byNonce.size();
    }

    /** The latest deadline evicted so far (0: none). */
    public synchronized long floorMs() {
        return floorMs;
    }

    /** Records the job: null when it may run, else why not ("replayed", {@link #FULL}). */
    public synchronized String admit(String keyId, byte[] nonce, long deadlineMs, long nowMs) {
        expire(nowMs);
        if (deadlineMs <= floorMs) {
            return FULL;
        }
        byte[] nonceCopy = nonce.clone();
        Id id = new Id(keyId, ByteBuffer.wrap(nonceCopy));
        if (byNonce.containsKey(id)) {
            return "replayed";
        }
        while (byNonce.size() >= capacity) {
            Expiry oldest = expiry.poll();
            byNonce.remove(new Id(oldest.keyId(), ByteBuffer.wrap(oldest.nonce())));
            floorMs = Math.max(floorMs, oldest.deadlineMs());
            if (deadlineMs <= floorMs) {
                return FULL;
            }
        }
        byNonce.put(id, deadlineMs);
        expiry.add(new Expiry(deadlineMs, keyId, nonceCopy));
        return null;
    }

    private void expire(long nowMs) {
        while (!expiry.isEmpty() && expiry.peek().deadlineMs() <= nowMs) {
            Expiry gone = expiry.poll();
            byNonce.remove(new Id(gone.keyId(), ByteBuffer.wrap(gone.nonce())));
        }
    }
}
