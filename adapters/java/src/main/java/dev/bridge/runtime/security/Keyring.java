package dev.bridge.runtime.security;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Base64;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.regex.Pattern;

/**
 * Named HMAC keys (wire contract, section 9): a worker accepts jobs signed by any of them. Parsed
 * from {@code BRIDGE_KEYS=id1:BASE64,id2:BASE64} or the file {@code BRIDGE_KEYS_FILE} (the same
 * entries separated by commas or newlines; {@code #} starts a comment line), or built in code.
 * Keys are at least 16 bytes; ids are 1 to 64 characters of {@code [A-Za-z0-9._-]}.
 *
 * <p>{@link #toString()} shows the key ids only; no message of this class holds a key.
 */
public final class Keyring {
    /** The shortest key accepted, in bytes (32 recommended). */
    public static final int MIN_KEY_BYTES = 16;
    private static final Pattern KEY_ID = Pattern.compile("[A-Za-z0-9._-]{1,64}");

    private final Map<String, byte[]> keys;
    private final String signingId;

    /** {@code keys}: key id → key bytes, in order; {@code signingId} null: the first key. */
    public Keyring(Map<String, byte[]> keys, String signingId) {
        if (keys == null || keys.isEmpty()) {
            throw new IllegalArgumentException("a keyring needs at least one key");
        }
        Map<String, byte[]> copy = new LinkedHashMap<>();
        int number = 0;
        for (Map.Entry<String, byte[]> e : keys.entrySet()) {
            number++;
            String id = e.getKey();
            if (id == null || !KEY_ID.matcher(id).matches()) {
                throw new IllegalArgumentException("key " + name(id, number) + ": the id must be 1 to 64 characters"
                        + " of [A-Za-z0-9._-] (entries are ID:BASE64)");
            }
            if (e.getValue().length < MIN_KEY_BYTES) {
                throw new IllegalArgumentException("key " + name(id, number) + " is " + e.getValue().length
                        + " bytes; at least " + MIN_KEY_BYTES + " are needed");
            }
            copy.put(id, e.getValue().clone());
        }
        this.keys = Collections.unmodifiableMap(copy);
        String chosen = signingId == null || signingId.isEmpty() ? copy.keySet().iterator().next() : signingId;
        if (!copy.containsKey(chosen)) {
            throw new IllegalArgumentException("the signing key id " + name(chosen, 0) + " is not among the keys ("
                    + ids() + "); BRIDGE_SIGNING_KEY names a key id, not a key");
        }
        this.signingId = chosen;
    }

    public Keyring(Map<String, byte[]> keys) {
        this(keys, null);
    }

    /**
     * How an error names a key: its id when that cannot be a key written the wrong way round (a
     * valid id of at most 20 characters: a 16-byte key is 22+ base64 characters), else its entry
     * number ({@code number} 0: none). Errors never show a key.
     */
    private static String name(String keyId, int number) {
        if (keyId != null && keyId.length() <= 20 && KEY_ID.matcher(keyId).matches()) {
            return "'" + keyId + "'";
        }
        return number > 0 ? "entry " + number : "(not shown: it looks like a key)";
    }

    /** The key named {@code keyId} (a copy), or null. */
    public byte[] key(String keyId) {
        byte[] key = keys.get(keyId);
        return key == null ? null : key.clone();
    }

    /** Whether {@code keyId} names one of the keys. */
    public boolean has(String keyId) {
        return keys.containsKey(keyId);
    }

    /** The id a client signs with. */
    public String signingId() {
        return signingId;
    }

    /** The key ids, comma-separated. */
    public String ids() {
        return String.join(", ", keys.keySet());
    }

    /** Key material stays out: the ids only. */
    @Override
    public String toString() {
        return "Keyring(ids=[" + ids() + "], signingId=" + signingId + ")";
    }

    /** {@code id:BASE64} entries separated by commas or newlines; {@code #} starts a comment line. */
    public static Keyring parse(String text, String signingId) {
        Map<String, byte[]> keys = new LinkedHashMap<>();
        StringBuilder joined = new StringBuilder();
        for (String line : text.split("\\r\\n|\\r|\\n", -1)) {
            if (line.stripLeading().startsWith("#")) {
                continue;
            }
            if (joined.length() > 0) {
                joined.append(',');
            }
            joined.append(line);
        }
        int number = 0;
        for (String raw : joined.toString().split(",", -1)) {
            number++;
            String entry = raw.strip();
            if (entry.isEmpty()) {
                continue;
            }
            int colon = entry.indexOf(':');
            if (colon < 0) {
                throw new IllegalArgumentException("key entry " + number + " is not ID:BASE64");
            }
            String id = entry.substring(0, colon).strip();
            byte[] key;
            try {
                key = decodeStrict(entry.substring(colon + 1).strip());
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("key " + name(id, number) + ": not standard base64", null);
            }
            if (keys.containsKey(id)) {
                throw new IllegalArgumentException("key " + name(id, number) + " is listed twice");
            }
            keys.put(id, key);
        }
        return new Keyring(keys, signingId);
    }

    /**
     * {@code BRIDGE_KEYS}, else the file {@code BRIDGE_KEYS_FILE} ({@code BRIDGE_SIGNING_KEY}
     * picks the signing key); null when neither is set (or both are empty).
     */
    public static Keyring fromEnv(Map<String, String> env) {
        String signing = env.get("BRIDGE_SIGNING_KEY");
        if (signing != null && signing.isEmpty()) {
            signing = null;
        }
        String inline = env.get("BRIDGE_KEYS");
        if (inline != null && !inline.isEmpty()) {
            return parse(inline, signing);
        }
        String file = env.get("BRIDGE_KEYS_FILE");
        if (file != null && !file.isEmpty()) {
            String text;
            try {
                text = Files.readString(Path.of(file), StandardCharsets.UTF_8);
            } catch (IOException e) {
                throw new IllegalArgumentException("BRIDGE_KEYS_FILE " + file + ": cannot be read ("
                        + e.getClass().getSimpleName() + ")", null);
            }
            return parse(text, signing);
        }
        return null;
    }

    /** The process environment's keys, or null. */
    public static Keyring fromEnv() {
        return fromEnv(System.getenv());
    }

    /**
     * Standard base64 with padding, as Python's {@code b64decode(validate=True)} reads it: only
     * the alphabet and trailing '=' (no whitespace inside, no URL-safe characters).
     */
    private static byte[] decodeStrict(String text) {
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            boolean ok = c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
                    || c == '+' || c == '/' || c == '=';
            if (!ok) {
                throw new IllegalArgumentException("not base64");
            }
        }
        if (text.length() % 4 != 0) {
            throw new IllegalArgumentException("incorrect padding");
        }
        return Base64.getDecoder().decode(text);
    }
}
