package dev.bridge.runtime.gearman;

import java.util.ArrayList;
import java.util.List;

/** One job server, {@code host:port} ({@code [v6]:port}; the port defaults to 4730). */
public record ServerAddress(String host, int port) {
    public static final int DEFAULT_PORT = 4730;

    public ServerAddress {
        if (host == null || host.isEmpty()) {
            throw new IllegalArgumentException("empty job server host");
        }
        if (port <= 0 || port > 65535) {
            throw new IllegalArgumentException("job server port out of range: " + port);
        }
    }

    /** Parses {@code host}, {@code host:port} or {@code [v6]:port}. */
    public static ServerAddress parse(String text) {
        String s = text.strip();
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
        return new ServerAddress(host, port);
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
        try {
            return Integer.parseInt(port);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("bad port in job server address: " + text, e);
        }
    }

    @Override
    public String toString() {
        return (host.indexOf(':') >= 0 ? "[" + host + "]" : host) + ":" + port;
    }
}
