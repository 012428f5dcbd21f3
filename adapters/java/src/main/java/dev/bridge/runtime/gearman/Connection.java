package dev.bridge.runtime.gearman;

import java.io.BufferedOutputStream;
import java.io.Closeable;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;

/**
 * One TCP connection to a job server, worker side. Writes are serialized (a handler may report
 * progress from any thread); reads belong to the one thread that owns the connection.
 */
public final class Connection implements Closeable {
    private static final int WRITE_BUFFER = 64 * 1024;

    private final ServerAddress address;
    private final Socket socket;
    private final OutputStream out;
    private final PacketReader reader;
    private final byte[] header = new byte[Packet.HEADER_SIZE];

    private Connection(ServerAddress address, Socket socket, int maxBody) throws IOException {
        this.address = address;
        this.socket = socket;
        this.out = new BufferedOutputStream(socket.getOutputStream(), WRITE_BUFFER);
        this.reader = new PacketReader(socket.getInputStream(), maxBody, Magic.RES);
    }

    /** Connects, waiting at most {@code connectTimeoutMillis}. */
    public static Connection open(ServerAddress address, int connectTimeoutMillis, int maxBody)
            throws IOException {
        Socket socket = new Socket();
        try {
            socket.connect(new InetSocketAddress(address.host(), address.port()), connectTimeoutMillis);
            socket.setTcpNoDelay(true);
            socket.setKeepAlive(true);
            return new Connection(address, socket, maxBody);
        } catch (IOException | RuntimeException e) {
            socket.close();
            throw e;
        }
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
        Packet.checkArguments(type, handle, new byte[0]);
        long size = (long) handle.length + 1 + length;
        checkSize(type, size);
        synchronized (this) {
            Packet.writeHeader(header, Magic.REQ, type, size);
            out.write(header);
            out.write(handle);
            out.write(0);
            out.write(data, offset, length);
            if (flush) {
                out.flush();
            }
        }
    }

    /** Writes out whatever waits in the write buffer. */
    public synchronized void flush() throws IOException {
        out.flush();
    }

    private static void checkSize(PacketType type, long size) throws ProtocolException {
        if (size > 0xffffffffL) {
            throw new ProtocolException(type + " body of " + size + " bytes does not fit a packet");
        }
    }

    @Override
    public void close() {
        try {
            socket.close();
        } catch (IOException ignored) {
            // Closing a socket that is already broken has nothing left to report.
        }
    }

    @Override
    public String toString() {
        return "Connection(" + address + ")";
    }
}
