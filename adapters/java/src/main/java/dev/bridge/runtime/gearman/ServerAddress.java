package dev.bridge.runtime.gearman;

import java.util.ArrayList;
import java.util.List;

/**
 * One job server, {@code host:port} ({@code [v6]:port}; the port defaults to 4730), or
 * {@code tls://host:port}: a TLS front before the job server (see {@link TlsSettings}).
 */
public record ServerAddress(String host, int port, boolean tls) {
    public static final int DEFAULT_PORT = 4730;
    /** The scheme of a server reached over TLS. */
    public static final String TLS_SCHEME = "tls://";

    public ServerAddress {
        if (host == null || host.isEmpty()) {
            throw new IllegalArgumentException("empty job server host");
        }
        if (port <= 0 || port > 65535) {
            throw new IllegalArgumentException("job server port out of range: " + port);
        }
    }

    /** A plain (not TLS) server. */
    public ServerAddress(String host, int port) {
        this(host, port, false);
    }

    /** Parses {@code host}, {@code host:port} or {@code [v6]:port}, each with an optional {@code tls://} or {@code tcp://}. */
    public static ServerAddress parse(String text) {
        String s = text.strip();
        boolean tls = false;
        String lower = s.toLowerCase(java.util.Locale.ROOT);
        if (lower.startsWith(TLS_SCHEME)) {
            tls = true;
            s = s.substring(TLS_SCHEME.length());
        } else if (lower.startsWith("tcp://")) {
            s = s.substring("tcp://".length());
        } else if (s.contains("://")) {
            throw new IllegalArgumentException("bad job server address (scheme tls:// or none): " + text);
        }
        String host = s;
        int port = DEFAULT_PORT;
        if (s.startsWith("[")) {
            int close = s.indexOf(']');
            if (close < 0) {
                throw new IllegalArgumentException("bad job server address: " + text);
            }
            host = s.substring(1, close);
            if (close + 1 < s.length()) {
                if (s.charAt(close + 1) != ':') {
                    throw new IllegalArgumentException("bad job server address: " + text);
                }
                port = parsePort(s.substring(close + 2), text);
            }
        } else {
            int colon = s.lastIndexOf(':');
            if (colon >= 0) {
                host = s.substring(0, colon);
                port = parsePort(s.substring(colon + 1), text);
            }
        }
        return new ServerAddress(host, port, tls);
    }

    /** Parses a comma-separated list, {@code host:port,host:port}. */
    public static List<ServerAddress> parseList(String text) {
        List<ServerAddress> out = new ArrayList<>();
        for (String part : text.split(",")) {
            if (!part.isBlank()) {
                out.add(parse(part));
            }
        }
        if (out.isEmpty()) {
            throw new IllegalArgumentException("no job server given");
        }
        return out;
    }

    private static int parsePort(String port, String text) {
        if (!port.matches("[0-9]{1,9}")) { // plain decimal digits: no sign, no space
            throw new IllegalArgumentException("bad port in job server address: " + text);
        }
        try {
            return Integer.parseInt(port);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("bad port in job server address: " + text, e);
        }
    }

    @Override
    public String toString() {
        return (tls ? TLS_SCHEME : "") + (host.indexOf(':') >= 0 ? "[" + host + "]" : host) + ":" + port;
    }
}
