package dev.bridge.runtime;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.bridge.runtime.security.JobVerifier;
import dev.bridge.runtime.security.Keyring;
import dev.bridge.runtime.security.ReplayCache;
import dev.bridge.runtime.security.Signing;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The keys, the checks of section 9.2 in order, and the replay cache. */
class SignedJobChecksTest {
    private static final byte[] KEY = "0123456789abcdef0123456789abcdef".getBytes(StandardCharsets.US_ASCII);
    private static final byte[] OTHER = "another-key-of-32-bytes-exactly!".getBytes(StandardCharsets.US_ASCII);
    private static final String FN = "bridge.interop.v1.Interop.Echo";
    private static final long NOW = 1_800_000_000_000L;

    private static String b64(byte[] key) {
        return Base64.getEncoder().encodeToString(key);
    }

    private static byte[] nonce(int n) {
        byte[] nonce = new byte[16];
        nonce[15] = (byte) n;
        nonce[0] = (byte) (n >> 8);
        return nonce;
    }

    /** A job as a client signs it; {@code tamper} flips one bit of the body after signing. */
    private static JobVerifier.SignedJob job(String keyId, byte[] key, byte[] nonce, long deadline, boolean tamper) {
        byte[] body = {0x0a, 0x03, 'a', 'b', 'c'};
        Map<String, String> metadata = Map.of("b", "2", "a", "1");
        byte[] mac = Signing.hmacSha256(key, Signing.requestInput(FN, keyId, nonce, 1, deadline, 2, metadata, body));
        byte[] sent = body.clone();
        if (tamper) {
            sent[4] ^= 1;
        }
        return new JobVerifier.SignedJob(FN, keyId, nonce, mac, 1, deadline, 2, metadata, ByteBuffer.wrap(sent));
    }

    private static JobVerifier verifier() {
        return new JobVerifier(Keyring.parse("k2026:" + b64(KEY) + ",k2025:" + b64(OTHER), null));
    }

    @Test
    void keyringParsesValidatesAndHidesKeys(@TempDir Path dir) throws Exception {
        Keyring keys = Keyring.parse("# rotation\nk2026:" + b64(KEY) + "\n k2025 : " + b64(OTHER) + " ,", null);
        assertEquals("k2026", keys.signingId());
        assertEquals("k2026, k2025", keys.ids());
        assertTrue(keys.has("k2025"));
        assertFalse(keys.toString().contains(b64(KEY)), keys.toString());
        assertTrue(keys.toString().contains("k2026"));
        assertEquals("k2025", Keyring.parse("k2026:" + b64(KEY) + ",k2025:" + b64(OTHER), "k2025").signingId());
        for (String bad : List.of("k1", "k1:" + b64("short".getBytes(StandardCharsets.US_ASCII)),
                "bad id!:" + b64(KEY), "k1:" + b64(KEY) + ",k1:" + b64(OTHER), "k1:not base64!",
                "k1:" + b64(KEY).replace("=", ""), "", "# only a comment")) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Keyring.parse(bad, null),
                    bad);
            assertFalse(e.getMessage().contains(b64(KEY)), e.getMessage());
        }
        assertThrows(IllegalArgumentException.class, () -> Keyring.parse("k1:" + b64(KEY), "k9"));
        // Never the key, not even written the wrong way round (ID and key swapped, or the key given
        // where a key id is due).
        String a = b64(KEY);
        for (String[] bad : new String[][] {{a + ":k1", null}, {a + ":" + a, null}, {"k1:" + a, a},
                {"k1:" + a + "," + a + ":k2", null}}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> Keyring.parse(bad[0], bad[1]), bad[0]);
            assertFalse(e.getMessage().contains(a.substring(0, 22)), e.getMessage());
        }
        assertTrue(assertThrows(IllegalArgumentException.class, () -> Keyring.parse("k1:" + a, a)).getMessage()
                .contains("names a key id, not a key"));
        Path file = dir.resolve("keys");
        Files.writeString(file, "# keys\nk2026:" + b64(KEY) + "\nk2025:" + b64(OTHER) + "\n");
        Keyring fromFile = Keyring.fromEnv(Map.of("BRIDGE_KEYS_FILE", file.toString(), "BRIDGE_SIGNING_KEY", "k2025"));
        assertEquals("k2025", fromFile.signingId());
        assertEquals("k2026, k2025", fromFile.ids());
        assertNull(Keyring.fromEnv(Map.of()));
        assertEquals("k1", Keyring.fromEnv(Map.of("BRIDGE_KEYS", "k1:" + b64(KEY),
                "BRIDGE_KEYS_FILE", file.toString())).ids());
        assertThrows(IllegalArgumentException.class,
                () -> Keyring.fromEnv(Map.of("BRIDGE_KEYS_FILE", dir.resolve("missing").toString())));
    }

    @Test
    void theChecksInOrder() {
        JobVerifier v = verifier();
        long deadline = NOW + 30_000;
        assertNull(v.check(job("k2026", KEY, nonce(1), deadline, false), NOW));
        assertNull(v.check(job("k2025", OTHER, nonce(2), deadline, false), NOW), "rotation: the older key");
        assertEquals("unsigned job", v.check(job("", KEY, nonce(3), deadline, false), NOW));
        assertEquals("unknown key id", v.check(job("k1999", KEY, nonce(3), deadline, false), NOW));
        assertEquals("bad signature", v.check(job("k2026", OTHER, nonce(3), deadline, false), NOW));
        assertEquals("bad signature", v.check(job("k2026", KEY, nonce(3), deadline, true), NOW));
        JobVerifier.SignedJob good = job("k2026", KEY, nonce(3), deadline, false);
        assertEquals("bad signature", v.check(new JobVerifier.SignedJob(FN, "k2026", new byte[15],
                good.mac(), 1, deadline, 2, good.metadata(), good.body()), NOW));
        assertEquals("bad signature", v.check(new JobVerifier.SignedJob(FN, "k2026", good.nonce(),
                new byte[31], 1, deadline, 2, good.metadata(), good.body()), NOW));
        // The signature is checked before the deadline: a forged job learns nothing of the clock.
        assertEquals("bad signature", v.check(job("k2026", KEY, nonce(3), 0, true), NOW));
        assertEquals("a signed job needs a deadline", v.check(job("k2026", KEY, nonce(3), 0, false), NOW));
        assertEquals("expired", v.check(job("k2026", KEY, nonce(3), NOW, false), NOW));
        long farthest = NOW + JobVerifier.DEFAULT_WINDOW_MS + JobVerifier.CLOCK_SKEW_MS;
        assertEquals("deadline too far ahead", v.check(job("k2026", KEY, nonce(3), farthest + 1, false), NOW));
        assertNull(v.check(job("k2026", KEY, nonce(4), farthest, false), NOW));
        // A nonce seen before is a replay whatever job handle it comes with (handles prove nothing).
        assertEquals("replayed", v.check(job("k2026", KEY, nonce(1), deadline, false), NOW));
        assertNull(v.check(job("k2025", OTHER, nonce(1), deadline, false), NOW), "same nonce, other key");
        // Failed checks took no room in the cache.
        assertEquals(4, v.replayCache().size());
        assertEquals(new byte[0].length, v.replyKey("k2026", new byte[15]) == null ? 0 : 1);
        assertNull(v.replyKey("k1999", nonce(1)));
        assertTrue(java.util.Arrays.equals(KEY, v.replyKey("k2026", nonce(1))));
    }

    @Test
    void theCacheForgetsExpiredEntriesAndKeepsAFloorWhenFull() {
        ReplayCache cache = new ReplayCache(2);
        assertNull(cache.admit("k", nonce(1), 1000, 0));
        assertNull(cache.admit("k", nonce(2), 2000, 0));
        assertEquals("replayed", cache.admit("k", nonce(1), 1000, 0));
        assertEquals(ReplayCache.FULL, "replay cache full");
        // Full: the earliest deadline (1000) goes and becomes the floor.
        assertNull(cache.admit("k", nonce(3), 3000, 0));
        assertEquals(1000, cache.floorMs());
        assertEquals(2, cache.size());
        assertEquals("replay cache full", cache.admit("k", nonce(1), 1000, 0), "the evicted nonce never runs again");
        assertEquals("replay cache full", cache.admit("k", nonce(9), 999, 0));
        // Evicting down to a deadline not later than the newcomer's refuses it too.
        assertEquals("replay cache full", cache.admit("k", nonce(4), 2000, 0));
        assertEquals(2000, cache.floorMs());
        assertEquals(1, cache.size());
        // Expired entries leave on their own (at or before now) without raising the floor.
        assertNull(cache.admit("k", nonce(5), 5000, 3000));
        assertEquals(1, cache.size());
        assertEquals(2000, cache.floorMs());
        assertNull(cache.admit("k", nonce(3), 3500, 3000), "its entry expired at 3000");
        assertThrows(IllegalArgumentException.class, () -> new ReplayCache(0));
    }

    @Test
    void theCacheAdmitsOneOfTwoCopiesCheckedAtOnce() throws Exception {
        for (int round = 0; round < 200; round++) {
            ReplayCache cache = new ReplayCache(1000);
            CountDownLatch go = new CountDownLatch(1);
            AtomicInteger admitted = new AtomicInteger();
            List<Thread> threads = new ArrayList<>();
            for (int t = 0; t < 4; t++) {
                Thread thread = new Thread(() -> {
                    try {
                        go.await();
                    } catch (InterruptedException e) {
                        return;
                    }
                    if (cache.admit("k", nonce(7), 10_000, 0) == null) {
                        admitted.incrementAndGet();
                    }
                });
                thread.start();
                threads.add(thread);
            }
            go.countDown();
            for (Thread thread : threads) {
                thread.join(5000);
            }
            assertEquals(1, admitted.get(), "round " + round);
        }
    }

    @Test
    void aKeyIdInALogLineCannotStartALineOfItsOwn() {
        // The key id is the caller's choice: a refusal's log line must stay one line.
        String hostile = "k9')\nFAKE LOG LINE: job accepted\r\u0085\u2028\u202e\u001b[31m\\";
        String quoted = Worker.logQuote(hostile);
        for (char c : quoted.toCharArray()) {
            assertFalse(Character.isISOControl(c) || c == '\u2028' || c == '\u202e',
                    "unescaped " + (int) c + " in " + quoted);
        }
        assertTrue(quoted.contains("\\u000a") && quoted.contains("\\\\"), quoted);
        assertEquals("k2026.ops_B-1", Worker.logQuote("k2026.ops_B-1"));
    }
}
