package dev.bridge.runtime.security;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

/**
 * The exact bytes signed (wire contract, sections 9.1 and 9.3) and HMAC-SHA256 with the JDK's
 * {@code javax.crypto.Mac}; MACs are compared with {@link MessageDigest#isEqual} (constant time).
 */
public final class Signing {
    public static final int MAC_SIZE = 32;
    public static final int NONCE_SIZE = 16;
    /** Reply packet numbers in the reply MAC (section 9.3). */
    public static final int PACKET_DATA = 1;
    public static final int PACKET_COMPLETE = 2;
    public static final int PACKET_EXCEPTION = 3;

    private static final byte[] REQUEST_DOMAIN = "bridge.v1.request\0".getBytes(StandardCharsets.US_ASCII);
    private static final byte[] REPLY_DOMAIN = "bridge.v1.reply\0".getBytes(StandardCharsets.US_ASCII);

    private Signing() {
    }

    /** The bytes a request MAC covers (section 9.1), body excluded: {@link #requestInput} adds it. */
    public static byte[] requestPrefix(String function, String keyId, byte[] nonce, int version, long deadlineMs,
            int encoding, Map<String, String> metadata, long bodyLength) {
        List<byte[][]> entries = new ArrayList<>();
        for (Map.Entry<String, String> e : metadata.entrySet()) {
            entries.add(new byte[][] {utf8(e.getKey()), utf8(e.getValue())});
        }
        entries.sort((a, b) -> Arrays.compareUnsigned(a[0], b[0]));
        ByteArrayOutputStream out = new ByteArrayOutputStream(128);
        out.writeBytes(REQUEST_DOMAIN);
        str(out, utf8(function));
        str(out, utf8(keyId));
        str(out, nonce);
        out.writeBytes(ByteBuffer.allocate(20).putInt(version).putLong(deadlineMs).putInt(encoding)
                .putInt(entries.size()).array());
        for (byte[][] entry : entries) {
            str(out, entry[0]);
            str(out, entry[1]);
        }
        out.writeBytes(ByteBuffer.allocate(8).putLong(bodyLength).array());
        return out.toByteArray();
    }

    /** The whole request input (section 9.1). */
    public static byte[] requestInput(String function, String keyId, byte[] nonce, int version, long deadlineMs,
            int encoding, Map<String, String> metadata, byte[] body) {
        byte[] prefix = requestPrefix(function, keyId, nonce, version, deadlineMs, encoding, metadata, body.length);
        byte[] all = Arrays.copyOf(prefix, prefix.length + body.length);
        System.arraycopy(body, 0, all, prefix.length, body.length);
        return all;
    }

    /** The bytes a reply MAC covers before the payload (section 9.3): domain to payload length. */
    public static byte[] replyPrefix(String function, String keyId, byte[] nonce, int packet, long payloadLength) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(96);
        out.writeBytes(REPLY_DOMAIN);
        str(out, utf8(function));
        str(out, utf8(keyId));
        str(out, nonce);
        out.write(packet);
        out.writeBytes(ByteBuffer.allocate(8).putLong(payloadLength).array());
        return out.toByteArray();
    }

    /** The whole reply input (section 9.3). */
    public static byte[] replyInput(String function, String keyId, byte[] nonce, int packet, byte[] payload) {
        byte[] prefix = replyPrefix(function, keyId, nonce, packet, payload.length);
        byte[] all = Arrays.copyOf(prefix, prefix.length + payload.length);
        System.arraycopy(payload, 0, all, prefix.length, payload.length);
        return all;
    }

    /** A fresh HMAC-SHA256 keyed with {@code key}. */
    public static Mac mac(byte[] key) {
        try {
            Mac mac = Mac.getInstance("HmacSHA256");
            mac.init(new SecretKeySpec(key, "HmacSHA256"));
            return mac;
        } catch (GeneralSecurityException e) {
            // Every JDK has HmacSHA256; the key is never part of the message.
            throw new IllegalStateException("HmacSHA256 unavailable: " + e.getClass().getSimpleName(), null);
        }
    }

    public static byte[] hmacSha256(byte[] key, byte[] data) {
        return mac(key).doFinal(data);
    }

    /** Constant-time comparison. */
    public static boolean equal(byte[] a, byte[] b) {
        return MessageDigest.isEqual(a, b);
    }

    private static byte[] utf8(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    private static void str(ByteArrayOutputStream out, byte[] value) {
        out.writeBytes(ByteBuffer.allocate(4).putInt(value.length).array());
        out.writeBytes(value);
    }
}
