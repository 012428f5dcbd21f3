package dev.bridge.runtime.gearman;

import java.io.BufferedOutputStream;
import java.io.Closeable;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;

/**
 * One TCP connection to a job server, worker side. Writes are serialized (a handler may report
 * progress from any thread); reads belong to the one thread that owns the connection.
 *
 * <p>Reads take a timeout each. Java sockets have none for writes, so with a write timeout a
 * watchdog closes the socket when one write has made no progress that long (a server that stopped
 * reading): the writer then gets an IOException instead of waiting forever, every later send
 * fails at once, and the action given to {@link #onStuckWrite} runs (the worker gives the job's
 * slot back and tells its handler).
 */
public final class Connection implements Closeable {
    private static final System.Logger LOG = System.getLogger(Connection.class.getName());
    private static final int WRITE_BUFFER = 64 * 1024;
    private static final byte[] NO_PREFIX = new byte[0];
    private static final ScheduledExecutorService WATCHDOG = Executors.newSingleThreadScheduledExecutor(r -> {
        Thread t = new Thread(r, "bridge-write-watchdog");
        t.setDaemon(true);
        return t;
    });

    private final ServerAddress address;
    /** The socket read and written: the TLS socket over {@link #plain} for a tls:// server. */
    private final Socket socket;
    /** The TCP socket. */
    private final Socket plain;
    private final OutputStream out;
    private final PacketReader reader;
    private final byte[] header = new byte[Packet.HEADER_SIZE];
    private volatile long writeTimeoutNanos;
    /** System.nanoTime() when the write in progress began; 0 when none is. */
    private volatile long writeStarted;
    /** System.nanoTime() when the write in progress last moved (a chunk of at most 64 KiB went out). */
    private volatile long writeMoved;
    private volatile ScheduledFuture<?> watch;
    /** Run (on the watchdog's thread) after a stuck write closed the connection; may be null. */
    private volatile Runnable stuckAction;

    private Connection(ServerAddress address, Socket socket, Socket plain, int maxBody, long writeTimeoutMillis,
                       long dropPayloadsAbove) throws IOException {
        this.address = address;
        this.socket = socket;
        this.plain = plain;
        OutputStream raw = socket.getOutputStream();
        // Large arrays go to the socket in chunks, so the watchdog sees a slow write move on.
        this.out = new BufferedOutputStream(new OutputStream() {
            @Override
            public void write(int b) throws IOException {
                raw.write(b);
                writeMoved = System.nanoTime();
            }

            @Override
            public void write(byte[] b, int off, int len) throws IOException {
                for (int done = 0; done < len; ) {
                    int n = Math.min(len - done, WRITE_BUFFER);
                    raw.write(b, off + done, n);
                    done += n;
                    writeMoved = System.nanoTime();
                }
            }

            @Override
            public void flush() throws IOException {
                raw.flush();
            }
        }, WRITE_BUFFER);
        this.reader = new PacketReader(socket.getInputStream(), maxBody, Magic.RES, dropPayloadsAbove);
        this.writeTimeoutNanos = TimeUnit.MILLISECONDS.toNanos(writeTimeoutMillis);
    }

    /** Connects, waiting at most {@code connectTimeoutMillis}; writes are not watched. */
    public static Connection open(ServerAddress address, int connectTimeoutMillis, int maxBody)
            throws IOException {
        return open(address, connectTimeoutMillis, maxBody, 0);
    }

    /**
     * Connects, waiting at most {@code connectTimeoutMillis}; a write stuck for
     * {@code writeTimeoutMillis} (0: no limit) closes the connection.
     */
    public static Connection open(ServerAddress address, int connectTimeoutMillis, int maxBody,
                                  long writeTimeoutMillis) throws IOException {
        return open(address, connectTimeoutMillis, maxBody, writeTimeoutMillis, Long.MAX_VALUE);
    }

    /** As above; a job assignment over {@code dropPayloadsAbove} bytes is read without keeping its payload. */
    public static Connection open(ServerAddress address, int connectTimeoutMillis, int maxBody,
                                  long writeTimeoutMillis, long dropPayloadsAbove) throws IOException {
        return open(address, connectTimeoutMillis, maxBody, writeTimeoutMillis, dropPayloadsAbove, null);
    }

    /**
     * As above; a {@code tls://} server is reached over TLS with {@code tls} (null: the
     * {@code BRIDGE_TLS_*} environment), the handshake done within {@code connectTimeoutMillis}.
     */
    public static Connection open(ServerAddress address, int connectTimeoutMillis, int maxBody,
                                  long writeTimeoutMillis, long dropPayloadsAbove, TlsSettings tls) throws IOException {
        Socket plain = new Socket();
        Socket socket = plain;
        try {
            plain.connect(new InetSocketAddress(address.host(), address.port()), connectTimeoutMillis);
            plain.setTcpNoDelay(true);
            plain.setKeepAlive(true);
            if (address.tls()) {
                socket = (tls != null ? tls : TlsSettings.fromEnv()).handshake(plain, address, connectTimeoutMillis);
            }
            Connection connection = new Connection(address, socket, plain, maxBody, writeTimeoutMillis,
                    dropPayloadsAbove);
            if (writeTimeoutMillis > 0) {
                long period = Math.max(50, Math.min(250, writeTimeoutMillis / 4));
                connection.watch = WATCHDOG.scheduleWithFixedDelay(connection::checkWrite, period, period,
                        TimeUnit.MILLISECONDS);
            }
            return connection;
        } catch (IOException | RuntimeException e) {
            plain.close();
            throw e;
        }
    }

    private void checkWrite() {
        long started = writeStarted;
        if (started != 0 && System.nanoTime() - Math.max(started, writeMoved) > writeTimeoutNanos) {
            LOG.log(System.Logger.Level.WARNING, "a write to {0} made no progress for {1} ms: closing the connection"
                    + " (the job server re-queues its job)", address, TimeUnit.NANOSECONDS.toMillis(writeTimeoutNanos));
            close();
            Runnable action = stuckAction;
            if (action != null) {
                try {
                    action.run();
                } catch (RuntimeException e) {
                    LOG.log(System.Logger.Level.ERROR, "after closing " + address, e);
                }
            }
        }
    }

    /**
     * What to do once a stuck write has closed this connection (null: nothing). It runs on the
     * watchdog's thread, while the writer may still be unwinding.
     */
    public void onStuckWrite(Runnable action) {
        stuckAction = action;
    }

    /** Whether the connection was closed (by its owner or by the write watchdog). */
    public boolean isClosed() {
        return socket.isClosed();
    }

    /**
     * Shortens (or lengthens) how long a write may stay stuck before the connection is closed;
     * a worker that is stopping gives a server that stopped reading one second. Only for a
     * connection opened with a write timeout.
     */
    public void setWriteTimeout(long millis) {
        writeTimeoutNanos = TimeUnit.MILLISECONDS.toNanos(millis);
    }

    private void beginWrite() {
        long now = Math.max(1, System.nanoTime());
        writeMoved = now;
        writeStarted = now;
    }

    public ServerAddress address() {
        return address;
    }

    /**
     * The next packet from the server, waiting at most {@code timeoutMillis} (0: no limit). A
     * {@link java.net.SocketTimeoutException} leaves the connection usable.
     */
    public Packet receive(int timeoutMillis) throws IOException {
        socket.setSoTimeout(timeoutMillis);
        return reader.read();
    }

    /** Sends a packet whose arguments are all given (only the last may hold NUL bytes). */
    public void send(PacketType type, byte[]... args) throws IOException {
        send(true, type, args);
    }

    /** Sends a packet, leaving it in the write buffer when {@code flush} is false. */
    public void send(boolean flush, PacketType type, byte[]... args) throws IOException {
        Packet.checkArguments(type, args);
        long size = Math.max(0, args.length - 1);
        for (byte[] arg : args) {
            size += arg.length;
        }
        checkSize(type, size);
        synchronized (this) {
            beginWrite();
            try {
                Packet.writeHeader(header, Magic.REQ, type, size);
                out.write(header);
                for (int i = 0; i < args.length; i++) {
                    if (i > 0) {
                        out.write(0);
                    }
                    out.write(args[i]);
                }
                if (flush) {
                    out.flush();
                }
            } finally {
                writeStarted = 0;
            }
        }
    }

    /** Sends {@code handle \0 data[offset, offset+length)}: the shape of every WORK_* packet that carries data. */
    public void sendWithData(PacketType type, byte[] handle, byte[] data, int offset, int length)
            throws IOException {
        sendWithData(type, handle, data, offset, length, true);
    }

    /**
     * As above; with {@code flush} false the packet may wait in the write buffer until the next
     * flushing send or {@link #flush()} (so a job's last packet and the next GRAB_JOB_UNIQ leave
     * in one write).
     */
    public void sendWithData(PacketType type, byte[] handle, byte[] data, int offset, int length,
                             boolean flush) throws IOException {
        sendWithData(type, handle, NO_PREFIX, data, offset, length, flush);
    }

    /**
     * Sends {@code handle \0 prefix data[offset, offset+length)}: the data argument written in two
     * pieces (a reply frame's header and its body) without joining them in a new array first.
     */
    public void sendWithData(PacketType type, byte[] handle, byte[] prefix, byte[] data, int offset, int length,
                             boolean flush) throws IOException {
        Packet.checkArguments(type, handle, NO_PREFIX);
        long size = (long) handle.length + 1 + prefix.length + length;
        checkSize(type, size);
        synchronized (this) {
            beginWrite();
            try {
                Packet.writeHeader(header, Magic.REQ, type, size);
                out.write(header);
                out.write(handle);
                out.write(0);
                out.write(prefix);
                out.write(data, offset, length);
                if (flush) {
                    out.flush();
                }
            } finally {
                writeStarted = 0;
            }
        }
    }

    /**
     * Sends {@code handle \0 <length bytes from writer>}. A writer that fails or writes another
     * length has broken the stream: the connection is closed and the call throws.
     */
    public void sendWithData(PacketType type, byte[] handle, int length, PayloadWriter writer, boolean flush)
            throws IOException {
        Packet.checkArguments(type, handle, new byte[0]);
        long size = (long) handle.length + 1 + length;
        checkSize(type, size);
        synchronized (this) {
            beginWrite();
            try {
                Packet.writeHeader(header, Magic.REQ, type, size);
                out.write(header);
                out.write(handle);
                out.write(0);
                long[] written = {0};
                OutputStream counted = new OutputStream() {
                    @Override
                    public void write(int b) throws IOException {
                        out.write(b);
                        written[0]++;
                    }

                    @Override
                    public void write(byte[] b, int off, int len) throws IOException {
                        out.write(b, off, len);
                        written[0] += len;
                    }
                };
                try {
                    writer.writeTo(counted);
                } catch (RuntimeException e) {
                    close();
                    throw new IOException("payload writer failed mid-packet; connection closed", e);
                }
                if (written[0] != length) {
                    close();
                    throw new ProtocolException(type + " payload writer wrote " + written[0]
                            + " bytes, announced " + length + "; connection closed");
                }
                if (flush) {
                    out.flush();
                }
            } finally {
                writeStarted = 0;
            }
        }
    }

    /** Writes out whatever waits in the write buffer. */
    public synchronized void flush() throws IOException {
        beginWrite();
        try {
            out.flush();
        } finally {
            writeStarted = 0;
        }
    }

    private static void checkSize(PacketType type, long size) throws ProtocolException {
        if (size > 0xffffffffL) {
            throw new ProtocolException(type + " body of " + size + " bytes does not fit a packet");
        }
    }

    @Override
    public void close() {
        ScheduledFuture<?> w = watch;
        if (w != null) {
            w.cancel(false);
        }
        try {
            if (socket != plain && writeStarted != 0) {
                // A TLS close would queue its close_notify behind the stuck write: drop the TCP
                // connection under it first, so the writer gets its IOException at once.
                plain.close();
            }
            socket.close();
        } catch (IOException ignored) {
            // Closing a socket that is already broken has nothing left to report.
        } finally {
            try {
                plain.close();
            } catch (IOException ignored) {
                // Already closed.
            }
        }
    }

    @Override
    public String toString() {
        return "Connection(" + address + ")";
    }
}
