package dev.bridge.runtime;

import dev.bridge.runtime.gearman.Connection;
import dev.bridge.runtime.gearman.Packet;
import dev.bridge.runtime.gearman.PacketType;
import dev.bridge.runtime.gearman.ServerAddress;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * A minimal Gearman client for the tests: submits one foreground job (with OPTION_REQ exceptions)
 * and records every packet the job produces until it ends.
 */
final class TestClient implements AutoCloseable {
    private final Connection connection;

    /** A reply frame (wire contract, section 3), parsed. */
    record Frame(int kind, int encoding, int tag, long attempt, long sequence, byte[] body) {
        static Frame parse(byte[] payload) {
            if (payload.length < ReplyFrame.HEADER_SIZE || payload[0] != ReplyFrame.MAGIC) {
                throw new AssertionError("not a reply frame: " + java.util.HexFormat.of().formatHex(payload));
            }
            ByteBuffer b = ByteBuffer.wrap(payload);
            b.get();
            int kind = b.get();
            int encoding = b.get();
            int tag = b.getInt();
            long attempt = b.getLong();
            long sequence = b.getLong();
            return new Frame(kind, encoding, tag, attempt, sequence,
                    java.util.Arrays.copyOfRange(payload, ReplyFrame.HEADER_SIZE, payload.length));
        }
    }

    /** What a job produced: WORK_DATA / WORK_STATUS / WORK_WARNING in order, then how it ended. */
    record Outcome(List<Packet> events, Packet end) {
        PacketType endType() {
            return end.type();
        }

        byte[] endPayload() {
            return end.argumentCount() > 1 ? end.argument(1) : new byte[0];
        }

        /** The WORK_COMPLETE's frame. */
        Frame endFrame() {
            if (end.type() != PacketType.WORK_COMPLETE) {
                throw new AssertionError("expected WORK_COMPLETE, got " + end.type());
            }
            return Frame.parse(endPayload());
        }

        /** The body of a unary reply frame. */
        byte[] reply() {
            Frame f = endFrame();
            if (f.kind() != ReplyFrame.UNARY_REPLY || f.attempt() == 0 || f.sequence() != 0) {
                throw new AssertionError("not a unary reply frame: " + f);
            }
            return f.body();
        }

        dev.bridge.v1.Error error() throws IOException {
            if (end.type() != PacketType.WORK_EXCEPTION) {
                throw new AssertionError("expected WORK_EXCEPTION, got " + end.type());
            }
            return dev.bridge.v1.Error.parseFrom(endPayload());
        }
    }

    TestClient(String address) throws IOException {
        connection = Connection.open(ServerAddress.parse(address), 5000, 1 << 28);
        connection.send(PacketType.OPTION_REQ, bytes("exceptions"));
        Packet reply = connection.receive(5000);
        if (reply.type() != PacketType.OPTION_RES) {
            throw new IOException("OPTION_REQ exceptions answered with " + reply.type());
        }
    }

    /** Submits and returns the handle. */
    byte[] submit(String function, byte[] payload) throws IOException {
        connection.send(PacketType.SUBMIT_JOB, bytes(function), new byte[0], payload);
        Packet created = connection.receive(5000);
        if (created.type() != PacketType.JOB_CREATED) {
            throw new IOException("SUBMIT_JOB answered with " + created.type());
        }
        return created.argument(0);
    }

    /** Waits for the end of the one job submitted on this client. */
    Outcome await(int timeoutMillis) throws IOException {
        List<Packet> events = new ArrayList<>();
        long deadline = System.currentTimeMillis() + timeoutMillis;
        while (true) {
            int left = (int) Math.max(1, deadline - System.currentTimeMillis());
            Packet p = connection.receive(left);
            switch (p.type()) {
                case WORK_DATA, WORK_STATUS, WORK_WARNING -> events.add(p);
                case WORK_COMPLETE, WORK_EXCEPTION, WORK_FAIL -> {
                    return new Outcome(events, p);
                }
                default -> throw new IOException("unexpected " + p.type());
            }
        }
    }

    Outcome call(String function, byte[] payload, int timeoutMillis) throws IOException {
        submit(function, payload);
        return await(timeoutMillis);
    }

    static byte[] bytes(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    @Override
    public void close() {
        connection.close();
    }
}
