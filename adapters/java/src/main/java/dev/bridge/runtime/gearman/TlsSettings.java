package dev.bridge.runtime.gearman;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.security.spec.PKCS8EncodedKeySpec;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManagerFactory;

/**
 * TLS settings for {@code tls://host:port} job servers (docs/security.md): gearmand speaks no TLS,
 * a TLS front before it (stunnel, requiring client certificates) does. The worker connects to it
 * with TLS 1.2 or newer, checks the server's certificate against {@code ca} and its name against
 * the address's host (or {@code serverName}: endpoint identification "HTTPS"), and presents
 * {@code cert}/{@code key} as its client certificate.
 *
 * <p>PEM files, as the other runtimes take them: {@code ca} one or more certificates (null: the
 * JDK's trusted CAs); {@code cert} the client certificate (chain allowed); {@code key} its
 * unencrypted PKCS#8 private key ({@code BEGIN PRIVATE KEY}; RSA, EC or EdDSA), null when it is in
 * the {@code cert} file. From the environment: {@code BRIDGE_TLS_CA}, {@code BRIDGE_TLS_CERT},
 * {@code BRIDGE_TLS_KEY}, {@code BRIDGE_TLS_SERVER_NAME} (empty counts as unset). The files are
 * read again for a connection when one of them changed (a renewed certificate). Messages name
 * files, never their contents.
 */
public record TlsSettings(Path ca, Path cert, Path key, String serverName) {
    private static final Pattern PEM = Pattern.compile(
            "-----BEGIN ([A-Z0-9 ]+)-----([A-Za-z0-9+/=\\s]*?)-----END \\1-----");
    private static final String[] PROTOCOLS = {"TLSv1.3", "TLSv1.2"};
    private static final char[] STORE_PASSWORD = "bridge".toCharArray();

    public TlsSettings {
        if (key != null && cert == null) {
            throw new IllegalArgumentException("a TLS key without a certificate: give cert too");
        }
        if (serverName != null && serverName.isEmpty()) {
            serverName = null;
        }
    }

    /** {@code BRIDGE_TLS_CA}, {@code BRIDGE_TLS_CERT}, {@code BRIDGE_TLS_KEY}, {@code BRIDGE_TLS_SERVER_NAME}. */
    public static TlsSettings fromEnv(Map<String, String> env) {
        try {
            return new TlsSettings(path(env, "BRIDGE_TLS_CA"), path(env, "BRIDGE_TLS_CERT"),
                    path(env, "BRIDGE_TLS_KEY"), text(env, "BRIDGE_TLS_SERVER_NAME"));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(e.getMessage() + " (BRIDGE_TLS_KEY is set, BRIDGE_TLS_CERT is not)");
        }
    }

    public static TlsSettings fromEnv() {
        return fromEnv(System.getenv());
    }

    private static String text(Map<String, String> env, String name) {
        String value = env.get(name);
        return value == null || value.isBlank() ? null : value.strip();
    }

    private static Path path(Map<String, String> env, String name) {
        String value = text(env, name);
        return value == null ? null : Path.of(value);
    }

    // ----------------------------------------------------------------------------- the context

    private record Stamp(Path path, long modified, long size) {
        static Stamp of(Path path) {
            if (path == null) {
                return null;
            }
            try {
                return new Stamp(path, Files.getLastModifiedTime(path).toMillis(), Files.size(path));
            } catch (IOException e) {
                return new Stamp(path, -1, -1); // reported when read, with the setting's name
            }
        }
    }

    private static final Map<TlsSettings, Object[]> CACHE = new java.util.concurrent.ConcurrentHashMap<>();

    /**
     * The client-side context for these files: built once, and again when one of them changed.
     * Throws {@link IllegalArgumentException} naming the file that cannot be used.
     */
    public SSLContext context() {
        List<Stamp> stamps = java.util.Arrays.asList(Stamp.of(ca), Stamp.of(cert), Stamp.of(key));
        Object[] cached = CACHE.get(this);
        if (cached != null && cached[0].equals(stamps)) {
            return (SSLContext) cached[1];
        }
        SSLContext context = build();
        CACHE.put(this, new Object[] {stamps, context});
        return context;
    }

    /** Reads the files now (throws {@link IllegalArgumentException} naming the one that is wrong). */
    public void check() {
        context();
    }

    private SSLContext build() {
        try {
            TrustManagerFactory trust = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
            if (ca == null) {
                trust.init((KeyStore) null);
            } else {
                List<Certificate> cas = certificates(read(ca, "CA"), "CA", ca);
                KeyStore store = KeyStore.getInstance("PKCS12");
                store.load(null, null);
                for (int i = 0; i < cas.size(); i++) {
                    store.setCertificateEntry("ca" + i, cas.get(i));
                }
                trust.init(store);
            }
            KeyManagerFactory keys = null;
            if (cert != null) {
                String certText = read(cert, "certificate");
                List<Certificate> chain = certificates(certText, "certificate", cert);
                PrivateKey privateKey = privateKey(key != null ? read(key, "key") : certText, key != null ? key : cert);
                KeyStore store = KeyStore.getInstance("PKCS12");
                store.load(null, null);
                store.setKeyEntry("client", privateKey, STORE_PASSWORD, chain.toArray(new Certificate[0]));
                keys = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
                keys.init(store, STORE_PASSWORD);
            }
            SSLContext context = SSLContext.getInstance("TLS");
            context.init(keys == null ? null : keys.getKeyManagers(), trust.getTrustManagers(), null);
            return context;
        } catch (GeneralSecurityException | IOException e) {
            throw new IllegalArgumentException("TLS settings (CA " + ca + ", certificate " + cert + ", key "
                    + (key != null ? key : cert) + ") cannot be used: " + e.getClass().getSimpleName(), null);
        }
    }

    private static String read(Path file, String what) {
        try {
            return Files.readString(file, StandardCharsets.US_ASCII);
        } catch (IOException e) {
            throw new IllegalArgumentException("TLS " + what + " file " + file + " cannot be read ("
                    + e.getClass().getSimpleName() + ")", null);
        } catch (RuntimeException e) { // not ASCII: no PEM
            throw new IllegalArgumentException("TLS " + what + " file " + file + " is not PEM", null);
        }
    }

    private static List<Certificate> certificates(String pem, String what, Path file) {
        List<Certificate> out = new ArrayList<>();
        Matcher m = PEM.matcher(pem);
        try {
            CertificateFactory factory = CertificateFactory.getInstance("X.509");
            while (m.find()) {
                if (m.group(1).equals("CERTIFICATE")) {
                    out.add(factory.generateCertificate(new ByteArrayInputStream(der(m.group(2)))));
                }
            }
        } catch (GeneralSecurityException | IllegalArgumentException e) {
            throw new IllegalArgumentException("TLS " + what + " file " + file + ": a certificate in it cannot be"
                    + " read (" + e.getClass().getSimpleName() + ")", null);
        }
        if (out.isEmpty()) {
            throw new IllegalArgumentException("TLS " + what + " file " + file + " holds no PEM certificate");
        }
        return out;
    }

    private static PrivateKey privateKey(String pem, Path file) {
        Matcher m = PEM.matcher(pem);
        while (m.find()) {
            String type = m.group(1);
            if (type.equals("PRIVATE KEY")) {
                PKCS8EncodedKeySpec spec;
                try {
                    spec = new PKCS8EncodedKeySpec(der(m.group(2)));
                } catch (IllegalArgumentException e) {
                    break;
                }
                for (String algorithm : new String[] {"EC", "RSA", "Ed25519", "Ed448", "RSASSA-PSS"}) {
                    try {
                        return KeyFactory.getInstance(algorithm).generatePrivate(spec);
                    } catch (GeneralSecurityException ignored) {
                        // Not this algorithm: try the next.
                    }
                }
                break;
            }
            if (type.endsWith("PRIVATE KEY")) {
                throw new IllegalArgumentException("TLS key file " + file + " holds a '" + type + "': give an"
                        + " unencrypted PKCS#8 key (BEGIN PRIVATE KEY; openssl pkcs8 -topk8 -nocrypt converts one)");
            }
        }
        throw new IllegalArgumentException("TLS key file " + file + " holds no usable PKCS#8 private key"
                + " (BEGIN PRIVATE KEY: RSA, EC or EdDSA)");
    }

    private static byte[] der(String base64) {
        return Base64.getMimeDecoder().decode(base64);
    }

    // -------------------------------------------------------------------------------- the socket

    /**
     * TLS over the connected {@code plain} socket to {@code address}: TLS 1.2+, the server's
     * certificate checked for {@code serverName} or the address's host; the handshake is done
     * within {@code timeoutMillis}. Closing the result closes {@code plain}.
     */
    public SSLSocket handshake(Socket plain, ServerAddress address, int timeoutMillis) throws IOException {
        String name = Objects.requireNonNullElse(serverName, address.host());
        SSLContext context;
        try {
            context = context();
        } catch (IllegalArgumentException e) {
            throw new IOException(e.getMessage());
        }
        SSLSocket ssl = (SSLSocket) context.getSocketFactory().createSocket(plain, name, address.port(), true);
        SSLParameters parameters = ssl.getSSLParameters();
        parameters.setEndpointIdentificationAlgorithm("HTTPS");
        List<String> enabled = new ArrayList<>();
        List<String> supported = List.of(ssl.getSupportedProtocols());
        for (String protocol : PROTOCOLS) {
            if (supported.contains(protocol)) {
                enabled.add(protocol);
            }
        }
        parameters.setProtocols(enabled.toArray(new String[0]));
        ssl.setSSLParameters(parameters);
        ssl.setSoTimeout(timeoutMillis);
        ssl.startHandshake();
        return ssl;
    }

    /** File names only. */
    @Override
    public String toString() {
        return "TlsSettings(ca=" + ca + ", cert=" + cert + ", key=" + key + ", serverName=" + serverName + ")";
    }
}
