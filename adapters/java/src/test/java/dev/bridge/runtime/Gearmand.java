package dev.bridge.runtime;

import java.io.IOException;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** A real Debian gearmand on a free loopback port, for the tests; close() kills it. */
final class Gearmand implements AutoCloseable {
    private static final String EXECUTABLE = System.getenv().getOrDefault("BRIDGE_GEARMAND", "/usr/sbin/gearmand");

    private final int port;
    private final Path workdir;
    private Process process;

    Gearmand() throws IOException, InterruptedException {
        this.workdir = Files.createTempDirectory("bridge-java-gearmand-");
        try (ServerSocket probe = new ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
            this.port = probe.getLocalPort();
        }
        start();
    }

    int port() {
        return port;
    }

    String address() {
        return "127.0.0.1:" + port;
    }

    void start() throws IOException, InterruptedException {
        process = new ProcessBuilder(List.of(EXECUTABLE, "--listen", "127.0.0.1", "--port", Integer.toString(port),
                "--threads", "1", "--log-file", workdir.resolve("gearmand.log").toString(),
                "--pid-file", workdir.resolve("gearmand.pid").toString(), "--config-file", "/dev/null"))
                .redirectOutput(ProcessBuilder.Redirect.DISCARD)
                .redirectError(ProcessBuilder.Redirect.DISCARD)
                .start();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (!answers()) {
            if (!process.isAlive()) {
                throw new IOException("gearmand exited with status " + process.exitValue() + " on port " + port);
            }
            if (System.nanoTime() > deadline) {
                close();
                throw new IOException("gearmand did not answer on port " + port);
            }
            Thread.sleep(20);
        }
    }

    /** Kills the server abruptly (connections drop without a goodbye); start() brings it back on the same port. */
    void kill() throws InterruptedException, IOException {
        if (process != null) {
            thaw(); // a frozen process would not die before it is continued
            process.destroyForcibly();
            process.waitFor(10, TimeUnit.SECONDS);
            process = null;
        }
    }

    /** SIGSTOP: the process stops, its sockets stay open and nothing is answered (a "frozen" server). */
    void freeze() throws IOException, InterruptedException {
        signal("-STOP");
    }

    /** SIGCONT after {@link #freeze()}. */
    void thaw() throws IOException, InterruptedException {
        signal("-CONT");
    }

    private void signal(String which) throws IOException, InterruptedException {
        if (process != null) {
            new ProcessBuilder("kill", which, Long.toString(process.pid())).inheritIO().start().waitFor();
        }
    }

    private boolean answers() {
        try (Socket s = new Socket()) {
            s.connect(new InetSocketAddress("127.0.0.1", port), 1000);
            s.setSoTimeout(1000);
            s.getOutputStream().write("getpid\n".getBytes(StandardCharsets.US_ASCII));
            byte[] buf = new byte[64];
            InputStream in = s.getInputStream();
            int n = in.read(buf);
            return n > 0 && new String(buf, 0, n, StandardCharsets.US_ASCII).strip().equals("OK " + process.pid());
        } catch (IOException e) {
            return false;
        }
    }

    /** The admin {@code status} line for a function: total, running, available workers. */
    int[] status(String function) throws IOException {
        try (Socket s = new Socket()) {
            s.connect(new InetSocketAddress("127.0.0.1", port), 1000);
            s.setSoTimeout(2000);
            s.getOutputStream().write("status\n".getBytes(StandardCharsets.US_ASCII));
            StringBuilder text = new StringBuilder();
            InputStream in = s.getInputStream();
            byte[] buf = new byte[4096];
            while (!text.toString().endsWith(".\n")) {
                int n = in.read(buf);
                if (n < 0) {
                    break;
                }
                text.append(new String(buf, 0, n, StandardCharsets.US_ASCII));
            }
            for (String line : text.toString().split("\n")) {
                String[] parts = line.split("\t");
                if (parts.length == 4 && parts[0].equals(function)) {
                    return new int[] {Integer.parseInt(parts[1]), Integer.parseInt(parts[2]), Integer.parseInt(parts[3])};
                }
            }
            return new int[] {0, 0, 0};
        }
    }

    @Override
    public void close() throws InterruptedException, IOException {
        kill();
        try (var files = Files.list(workdir)) {
            files.forEach(f -> f.toFile().delete());
            Files.deleteIfExists(workdir);
        } catch (IOException ignored) {
            // A temp folder left behind is harmless.
        }
    }
}
