package dev.bridge.runtime.gearman;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** tls:// addresses and the PEM files of a TLS front's client (made with the openssl CLI). */
class TlsSettingsTest {
    private static void openssl(Path dir, String... args) throws Exception {
        String[] argv = new String[args.length + 1];
        argv[0] = "openssl";
        System.arraycopy(args, 0, argv, 1, args.length);
        Process p = new ProcessBuilder(argv).directory(dir.toFile()).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes());
        assertEquals(0, p.waitFor(), out);
    }

    @Test
    void tlsAddresses() {
        assertEquals(new ServerAddress("h", 4731, true), ServerAddress.parse("tls://h:4731"));
        assertEquals(new ServerAddress("::1", 4730, true), ServerAddress.parse(" TLS://[::1] "));
        assertEquals(new ServerAddress("h", 1), ServerAddress.parse("tcp://h:1"));
        assertEquals("tls://h:4731", ServerAddress.parse("tls://h:4731").toString());
        assertEquals(List.of(new ServerAddress("a", 1, true), new ServerAddress("b", 2)),
                ServerAddress.parseList("tls://a:1,b:2"));
        assertThrows(IllegalArgumentException.class, () -> ServerAddress.parse("ssl://h:1"));
    }

    @Test
    void pemFilesLoadAndBadOnesAreNamed(@TempDir Path dir) throws Exception {
        openssl(dir, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", "key.pem", "-out", "cert.pem", "-days", "2", "-subj", "/CN=t");
        assertTrue(Files.readString(dir.resolve("key.pem")).contains("BEGIN PRIVATE KEY"));
        TlsSettings ok = new TlsSettings(dir.resolve("cert.pem"), dir.resolve("cert.pem"), dir.resolve("key.pem"), null);
        assertSame(ok.context(), ok.context(), "built once");
        // The key in the certificate file.
        Files.writeString(dir.resolve("both.pem"), Files.readString(dir.resolve("cert.pem"))
                + Files.readString(dir.resolve("key.pem")));
        new TlsSettings(null, dir.resolve("both.pem"), null, null).check();
        // A renewed file builds a new context.
        javax.net.ssl.SSLContext before = ok.context();
        Files.writeString(dir.resolve("cert.pem"), Files.readString(dir.resolve("cert.pem")) + "\n");
        assertNotSame(before, ok.context());

        String keyText = Files.readString(dir.resolve("key.pem"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new TlsSettings(dir.resolve("missing.pem"), null, null, null).check());
        assertTrue(e.getMessage().contains("missing.pem"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> new TlsSettings(null, dir.resolve("cert.pem"), dir.resolve("cert.pem"), null).check());
        assertTrue(e.getMessage().contains("no usable PKCS#8 private key"), e.getMessage());
        openssl(dir, "ec", "-in", "key.pem", "-out", "sec1.pem");
        e = assertThrows(IllegalArgumentException.class,
                () -> new TlsSettings(null, dir.resolve("cert.pem"), dir.resolve("sec1.pem"), null).check());
        assertTrue(e.getMessage().contains("EC PRIVATE KEY") && e.getMessage().contains("pkcs8"), e.getMessage());
        assertFalse(e.getMessage().contains(keyText.substring(30, 60)), "no key material in messages");
        e = assertThrows(IllegalArgumentException.class,
                () -> new TlsSettings(null, dir.resolve("key.pem"), null, null).check());
        assertTrue(e.getMessage().contains("no PEM certificate"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> TlsSettings.fromEnv(Map.of("BRIDGE_TLS_KEY", "k.pem")));
        assertTrue(e.getMessage().contains("BRIDGE_TLS_CERT is not"), e.getMessage());
        TlsSettings env = TlsSettings.fromEnv(Map.of("BRIDGE_TLS_CA", " /ca.pem ", "BRIDGE_TLS_SERVER_NAME", ""));
        assertEquals(Path.of("/ca.pem"), env.ca());
        assertEquals(null, env.serverName());
    }
}
