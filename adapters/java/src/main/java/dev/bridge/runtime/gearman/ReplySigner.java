package dev.bridge.runtime.gearman;

import javax.crypto.Mac;

/**
 * Signs a job's replies (wire contract, section 9.3): every WORK_DATA, WORK_COMPLETE and
 * WORK_EXCEPTION payload gets a 32-byte HMAC-SHA256 appended.
 */
@FunctionalInterface
public interface ReplySigner {
    /**
     * A keyed MAC already fed with what precedes the payload in the reply input (domain, function,
     * key id, nonce, packet, payload length); the job feeds it the payload, then appends
     * {@code doFinal()}.
     */
    Mac begin(PacketType type, long payloadLength);
}
