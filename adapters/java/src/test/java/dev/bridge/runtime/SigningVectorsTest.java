package dev.bridge.runtime;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.bridge.runtime.security.JobVerifier;
import dev.bridge.runtime.security.Keyring;
import dev.bridge.runtime.security.Signing;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** Every case of schemas/testdata/signing_vectors.json (wire contract, section 9.4). */
class SigningVectorsTest {
    @SuppressWarnings("unchecked")
    static List<Map<String, Object>> cases() throws Exception {
        String text = Files.readString(TestSchemas.repoRoot().resolve("schemas/testdata/signing_vectors.json"),
                StandardCharsets.UTF_8);
        return (List<Map<String, Object>>) Json.parse(text);
    }

    @Test
    @SuppressWarnings("unchecked")
    void everyCaseComputes() throws Exception {
        int requests = 0;
        int replies = 0;
        for (Map<String, Object> c : cases()) {
            String name = (String) c.get("name");
            byte[] key = Base64.getDecoder().decode((String) c.get("key_base64"));
            String keyId = (String) c.get("key_id");
            String function = (String) c.get("function");
            byte[] nonce = TestSchemas.hex((String) c.get("nonce_hex"));
            if (c.containsKey("request_input_hex")) {
                Map<String, String> metadata = new LinkedHashMap<>((Map<String, String>) c.get("metadata"));
                byte[] body = TestSchemas.hex((String) c.get("body_hex"));
                int version = ((Long) c.get("version")).intValue();
                long deadline = (Long) c.get("deadline_ms");
                int encoding = ((Long) c.get("encoding")).intValue();
                byte[] input = Signing.requestInput(function, keyId, nonce, version, deadline, encoding, metadata, body);
                assertEquals(c.get("request_input_hex"), TestSchemas.hex(input), name + ": request input");
                byte[] mac = Signing.hmacSha256(key, input);
                assertEquals(c.get("request_mac_hex"), TestSchemas.hex(mac), name + ": request MAC");
                // The worker's check computes the same MAC incrementally: it accepts the vector's MAC
                // (its deadline aside: checked with the clock just before it).
                JobVerifier verifier = new JobVerifier(new Keyring(Map.of(keyId, key)));
                String failure = verifier.check(new JobVerifier.SignedJob(function, keyId, nonce, mac,
                        version, deadline, encoding, metadata, ByteBuffer.wrap(body)), deadline - 1);
                assertTrue(failure == null || !failure.equals("bad signature"), name + ": " + failure);
                if (deadline > 0) {
                    assertEquals(null, failure, name);
                }
                requests++;
            }
            if (c.containsKey("reply_input_hex")) {
                byte[] payload = TestSchemas.hex((String) c.get("payload_hex"));
                int packet = ((Long) c.get("packet")).intValue();
                byte[] input = Signing.replyInput(function, keyId, nonce, packet, payload);
                assertEquals(c.get("reply_input_hex"), TestSchemas.hex(input), name + ": reply input");
                assertEquals(c.get("reply_mac_hex"), TestSchemas.hex(Signing.hmacSha256(key, input)),
                        name + ": reply MAC");
                // As the worker signs a reply: the prefix, then the payload.
                javax.crypto.Mac mac = Signing.mac(key);
                mac.update(Signing.replyPrefix(function, keyId, nonce, packet, payload.length));
                mac.update(payload);
                assertArrayEquals(TestSchemas.hex((String) c.get("reply_mac_hex")), mac.doFinal(), name);
                replies++;
            }
        }
        assertTrue(requests >= 3 && replies >= 4, requests + " request and " + replies + " reply cases");
    }
}
