package dev.bridge.runtime;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

import com.google.protobuf.ByteString;
import com.google.protobuf.Message;
import dev.bridge.v1.Encoding;
import org.junit.jupiter.api.Test;

/**
 * Bytes no encoder writes, on which protobuf-java and msgpack-core on their own answer otherwise
 * than bridge's Python codecs (upb and msgpack-python): the runtime answers as Python does
 * ({@link ProtobufWire}, {@link MsgpackSkip}). Each expectation is what the Python codecs give,
 * as the msgpack of the decoded message, or ERR for a decoding error. (A differential run over
 * 25,000 one-bit flips and 160,000 random mutations of the shared vectors found no other
 * difference.)
 */
class UpbAgreementTest {
    private static String decode(String type, Encoding encoding, String hex) throws Exception {
        Message prototype = TestSchemas.prototype("bridge.interop.v1." + type);
        try {
            Message m = Codecs.decode(ByteString.copyFrom(TestSchemas.hex(hex.replace(" ", ""))), encoding, prototype);
            return TestSchemas.hex(MsgpackCodec.encode(m));
        } catch (DecodeException e) {
            return "ERR";
        } catch (RuntimeException e) {
            fail("not a typed decoding error: " + e, e);
            return null;
        }
    }

    private static void protobuf(String expected, String type, String hex) throws Exception {
        assertEquals(expected, decode(type, Encoding.PROTOBUF, hex), type + " " + hex);
    }

    private static void msgpack(String expected, String type, String hex) throws Exception {
        assertEquals(expected, decode(type, Encoding.MSGPACK, hex), type + " " + hex);
    }

    @Test
    void tenByteVarintsReadAsUpbReadsThem() throws Exception {
        // protobuf-java's fast path sets bit 63 of a ten-byte varint whatever its last byte says
        protobuf("81a7665f696e743634cf7ffffffffffffffe", "Scalars", "20 feffffffffffffffff00");
        protobuf("81a7665f696e743634fe", "Scalars", "20 feffffffffffffffff03");
        protobuf("80", "Scalars", "68 80808080808080808000");
        protobuf("80", "Scalars", "68 80808080808080808002");
        protobuf("81a6665f626f6f6cc3", "Scalars", "68 80808080808080808001");
    }

    @Test
    void lengthsAndTagsBeyondFiveBytesOr32BitsAreRefused() throws Exception {
        protobuf("ERR", "Blob", "0a 8080808010 41");     // 2^32: protobuf-java reads 0
        protobuf("ERR", "Blob", "12 808080808000");      // 0 in six bytes
        protobuf("80", "Blob", "12 8080808000");         // 0 in five bytes
        protobuf("ERR", "Blob", "8a808080800000");       // field 1 tag in six bytes
        protobuf("80", "Blob", "8a8080800000");          // ... in five
        protobuf("ERR", "Blob", "0a00 80808080808080808001");
    }

    @Test
    void aMapEntryWithStrayFieldsIsLeftOut() throws Exception {
        protobuf("80", "Composite", "3a05 0801 1a0178");          // labels entry with a field 3
        protobuf("80", "Composite", "3a06 0a0131 120178");        // its key length-delimited
        protobuf("81a762795f6e616d6581a16b80", "Composite", "3207 0a016b 12021805"); // the value's own unknown field: kept
        protobuf("ERR", "Composite", "3a07 0801 1201ff 1800");    // left out, but its string is still checked
        protobuf("ERR", "Composite", "3a04 0801 1201ff");
    }

    @Test
    void unknownGroupsCountInTheDepth() throws Exception {
        protobuf("80", "Composite", "a301".repeat(100) + "a401".repeat(100));
        protobuf("ERR", "Composite", "a301".repeat(101) + "a401".repeat(101));
        protobuf("80", "Empty", "0000"); // field number 0 where there are no fields at all
    }

    @Test
    void anUnknownKeysValueIsReadAsPythonReadsIt() throws Exception {
        msgpack("ERR", "Inner", "81a17a a2c328");              // a str that is not UTF-8
        msgpack("ERR", "Inner", "81a17a 81a2c32801");          // ... as a key of a skipped map
        msgpack("80", "Inner", "81a17a d40500");               // an extension
        msgpack("ERR", "Inner", "81a17a c1");
        msgpack("81a576616c756505", "Inner", "82a17a 81c0c0 a576616c756505"); // a nil key
        // a oneof member given twice, the second time nil: the last one wins, the other member may follow
        msgpack("81a66e657374656480", "Composite", "83 a474657874a161 a474657874c0 a66e6573746564 80");
        msgpack("80", "Inner", "81a17a" + "91".repeat(1022) + "90");     // 1023 open containers
        msgpack("ERR", "Inner", "81a17a" + "91".repeat(1023) + "90");
        msgpack("80", "Inner", "81a17a" + "81a17a".repeat(1022) + "80");
        msgpack("ERR", "Inner", "81a17a" + "81a17a".repeat(1023) + "80");
    }
}
