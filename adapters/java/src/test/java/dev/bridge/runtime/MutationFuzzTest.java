package dev.bridge.runtime;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.google.protobuf.ByteString;
import com.google.protobuf.Message;
import dev.bridge.runtime.gearman.Magic;
import dev.bridge.runtime.gearman.Packet;
import dev.bridge.runtime.gearman.PacketReader;
import dev.bridge.runtime.gearman.PacketType;
import dev.bridge.v1.Encoding;
import dev.bridge.v1.Request;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A mutation loop over every case of schemas/testdata/vectors.json (issue 11, "poison jobs"):
 * bit flips, interesting bytes, cuts, duplications and lying length headers, decoded in both
 * encodings, as envelopes, and as whole Gearman packets. Every outcome must be a decoded message
 * or the typed decode error ({@link DecodeException}; IOException for packets), never another
 * exception, an OutOfMemoryError or a stack overflow; and no input may make the decoder allocate
 * much more than its own size (a header claiming 4 GiB is refused, not allocated).
 * Deterministic seed; about five seconds.
 */
@Timeout(60)
class MutationFuzzTest {
    private static final long SEED = 0xB71D6E5EEDL;
    private static final long BUDGET_NANOS = 5_000_000_000L;
    /** Allocation allowed per decode: a fixed allowance plus a multiple of the input's size. */
    private static final long ALLOWANCE = 2L * 1024 * 1024;
    private static final int PER_BYTE = 256;
    private static final byte[][] LIES = {
        hex("ddffffffff"), hex("dd7fffffff"), hex("dbffffffff"), hex("c6ffffffff"), hex("df7fffffff"),
        hex("c9ffffffff01"), hex("dc ffff"), hex("ffffffff07"), hex("ffffffff0f"), hex("80808080808080808001"),
        hex("c1"), hex("00"),
    };
    private static final int[] INTERESTING = {0x00, 0x01, 0x7f, 0x80, 0xff, 0xc0, 0xc1, 0xc2, 0xc3, 0xcb, 0xd4, 0xd9,
        0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0x90, 0x9f, 0x8f, 0xa0, 0xbf, 0x0a, 0x12, 0x52, 0x6a, 0x08, 0x2a};

    private static final com.sun.management.ThreadMXBean THREADS =
            (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();

    private record Seed(String name, Message prototype, byte[] bytes) {
    }

    @Test
    void mutatedVectorsDecodeOrFailTypedWithBoundedAllocation() throws Exception {
        List<Seed> seeds = new ArrayList<>();
        for (Map<String, Object> c : MsgpackVectorsTest.vectors()) {
            Message prototype = TestSchemas.prototype((String) c.get("type"));
            for (String key : List.of("protobuf_hex", "msgpack_hex")) {
                if (c.containsKey(key)) {
                    seeds.add(new Seed(c.get("name") + "/" + key, prototype, TestSchemas.hex((String) c.get(key))));
                }
            }
        }
        SplittableRandom random = new SplittableRandom(SEED);
        long start = System.nanoTime();
        long inputs = 0;
        long decoded = 0;
        while (System.nanoTime() - start < BUDGET_NANOS || inputs < 20L * seeds.size()) {
            Seed seed = seeds.get((int) (inputs % seeds.size()));
            byte[] input = mutate(seed.bytes(), random);
            inputs++;
            for (Encoding encoding : List.of(Encoding.PROTOBUF, Encoding.MSGPACK)) {
                if (decode(seed, input, encoding, seed.prototype())) {
                    decoded++;
                }
            }
            decode(seed, input, Encoding.PROTOBUF, Request.getDefaultInstance());
            readPacket(seed, input, random);
        }
        System.out.printf("mutation fuzz: %d inputs from %d seeds, %d decoded, the rest refused%n",
                inputs, seeds.size(), decoded);
        assertTrue(inputs >= 20L * seeds.size(), "too few inputs: " + inputs);
    }

    /** Decodes one input; true when it decoded. Anything but DecodeException fails the test. */
    private static boolean decode(Seed seed, byte[] input, Encoding encoding, Message prototype) {
        long before = THREADS.getCurrentThreadAllocatedBytes();
        boolean ok;
        try {
            Codecs.decode(ByteString.copyFrom(input), encoding, prototype);
            ok = true;
        } catch (DecodeException expected) {
            ok = false;
        } catch (Throwable e) { // an OutOfMemoryError or StackOverflowError included
            throw new AssertionError(seed.name() + " mutated to " + TestSchemas.hex(input) + " in " + encoding
                    + " as " + prototype.getDescriptorForType().getFullName() + ": " + e, e);
        }
        checkAllocation(seed, input, before, encoding.toString());
        return ok;
    }

    /** The input as the payload of a JOB_ASSIGN_UNIQ, the whole packet mutated once more. */
    private static void readPacket(Seed seed, byte[] input, SplittableRandom random) throws Exception {
        byte[] packet = Packet.of(Magic.RES, PacketType.JOB_ASSIGN_UNIQ, "H:x:1".getBytes(StandardCharsets.US_ASCII),
                "f".getBytes(StandardCharsets.US_ASCII), new byte[0], input).encode();
        if (random.nextInt(3) == 0) {
            // A size field that claims far more than follows.
            int claim = random.nextInt(4) == 0 ? 0x7fffffff : PacketReader.DEFAULT_MAX_BODY - random.nextInt(1000);
            packet[8] = (byte) (claim >>> 24);
            packet[9] = (byte) (claim >>> 16);
            packet[10] = (byte) (claim >>> 8);
            packet[11] = (byte) claim;
        } else {
            packet = mutate(packet, random);
        }
        long before = THREADS.getCurrentThreadAllocatedBytes();
        PacketReader reader = new PacketReader(new ByteArrayInputStream(packet), PacketReader.DEFAULT_MAX_BODY, null);
        try {
            for (int i = 0; i < 4; i++) {
                reader.read();
            }
        } catch (IOException expected) {
            // EOFException or ProtocolException: the typed ends of a packet stream
        } catch (Throwable e) {
            fail(seed.name() + " as a packet " + TestSchemas.hex(packet) + ": " + e, e);
        }
        checkAllocation(seed, packet, before, "packet");
    }

    private static void checkAllocation(Seed seed, byte[] input, long before, String what) {
        long used = THREADS.getCurrentThreadAllocatedBytes() - before;
        long allowed = ALLOWANCE + (long) PER_BYTE * input.length;
        if (used > allowed) {
            fail(seed.name() + " (" + what + ", " + input.length + " bytes) allocated " + used + " bytes, more than "
                    + allowed + ": " + TestSchemas.hex(Arrays.copyOf(input, Math.min(input.length, 64))));
        }
    }

    static byte[] mutate(byte[] original, SplittableRandom random) {
        byte[] b = original.clone();
        int rounds = 1 + random.nextInt(3);
        for (int r = 0; r < rounds; r++) {
            int op = random.nextInt(7);
            int at = b.length == 0 ? 0 : random.nextInt(b.length);
            switch (op) {
                case 0 -> { // flip one bit
                    if (b.length > 0) {
                        b[at] ^= (byte) (1 << random.nextInt(8));
                    }
                }
                case 1 -> { // an interesting byte
                    if (b.length > 0) {
                        b[at] = (byte) INTERESTING[random.nextInt(INTERESTING.length)];
                    }
                }
                case 2 -> b = Arrays.copyOf(b, at); // cut
                case 3 -> { // drop a few bytes
                    int n = Math.min(b.length - at, 1 + random.nextInt(4));
                    b = concat(Arrays.copyOf(b, at), Arrays.copyOfRange(b, at + n, b.length));
                }
                case 4 -> { // duplicate a stretch
                    int n = Math.min(b.length - at, 1 + random.nextInt(16));
                    byte[] piece = Arrays.copyOfRange(b, at, at + n);
                    b = concat(concat(Arrays.copyOf(b, at + n), piece), Arrays.copyOfRange(b, at + n, b.length));
                }
                default -> { // a lying length or count header
                    byte[] lie = LIES[random.nextInt(LIES.length)];
                    boolean replace = random.nextBoolean() && b.length - at >= lie.length;
                    byte[] rest = Arrays.copyOfRange(b, replace ? at + lie.length : at, b.length);
                    b = concat(concat(Arrays.copyOf(b, at), lie), rest);
                }
            }
        }
        return b;
    }

    private static byte[] concat(byte[] a, byte[] b) {
        byte[] out = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }

    private static byte[] hex(String s) {
        return TestSchemas.hex(s.replace(" ", ""));
    }
}
