package dev.bridge.runtime.gearman;

/** The four bytes that open every binary packet. */
public enum Magic {
    /** Client or worker to server: {@code \0REQ}. */
    REQ(new byte[] {0, 'R', 'E', 'Q'}),
    /** Server to client or worker: {@code \0RES}. */
    RES(new byte[] {0, 'R', 'E', 'S'});

    private final byte[] bytes;

    Magic(byte[] bytes) {
        this.bytes = bytes;
    }

    byte[] bytes() {
        return bytes.clone();
    }

    /** The magic these four bytes spell, or null. */
    static Magic of(byte[] buf, int offset) {
        if (buf[offset] != 0 || buf[offset + 1] != 'R' || buf[offset + 2] != 'E') {
            return null;
        }
        if (buf[offset + 3] == 'Q') {
            return REQ;
        }
        return buf[offset + 3] == 'S' ? RES : null;
    }
}
