package dev.bridge.runtime;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.Descriptors.Descriptor;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * Which protobuf bytes send a generated message's parse through the slower, right path: a oneof
 * that switches away from a message member and back (vector protobuf_oneof_switch_back), and
 * nothing the encoders write. (That the generated classes then decode it right is checked by
 * tests/adapters/test_java_runtime.py, which compiles the interop schema's generated code.)
 */
class OneofSwitchBackTest {
    private static boolean found(String type, String hex) throws Exception {
        Descriptor d = TestSchemas.prototype(type).getDescriptorForType();
        byte[] bytes = TestSchemas.hex(hex.replace(" ", ""));
        return OneofSwitchBack.occursIn(d, bytes, 0, bytes.length);
    }

    @Test
    void theVectorAndItsVariantsAreFound() throws Exception {
        String composite = "bridge.interop.v1.Composite";
        // nested{name:"n"}, text:"t", nested{value:3}
        assertTrue(found(composite, "52030a016e 4a0174 52021003"));
        // via number instead of text
        assertTrue(found(composite, "52030a016e 5805 52021003"));
        // one level down, inside child
        assertTrue(found(composite, "6a0c 52030a016e4a017452021003"));
        // child twice: the merged child switches back across the two occurrences
        assertTrue(found(composite, "6a05 52030a016e 6a07 4a017452021003"));
    }

    @Test
    void harmlessBytesAreNot() throws Exception {
        String composite = "bridge.interop.v1.Composite";
        assertFalse(found(composite, "52030a016e"));                 // nested once
        assertFalse(found(composite, "4a0174 52021003"));            // text, then nested for the first time
        assertFalse(found(composite, "52030a016e 52021003"));        // nested twice: a plain merge
        assertFalse(found(composite, "52030a016e 4a0174 4a0175"));   // away and not back
        assertFalse(found(composite, "1a 037a7a7a 52030a016e 5a0174 52021003")); // wrong wire type: skipped
        assertFalse(found(composite, ""));
        assertFalse(found(composite, "52ff"));                       // truncated: the parser reports it
        // types that cannot reach a oneof with a message member are never scanned
        assertFalse(found("bridge.interop.v1.Scalars", "52030a016e4a017452021003"));
    }

    @Test
    void noEncodedVectorIsFound() throws Exception {
        int scanned = 0;
        for (Map<String, Object> c : MsgpackVectorsTest.vectors()) {
            if (c.containsKey("protobuf_hex") && !"protobuf_oneof_switch_back".equals(c.get("name"))) {
                assertFalse(found((String) c.get("type"), (String) c.get("protobuf_hex")), (String) c.get("name"));
                scanned++;
            }
        }
        assertTrue(scanned > 50, "scanned " + scanned);
        assertEquals(true, found("bridge.interop.v1.Composite", "52030a016e4a017452021003"));
    }
}
