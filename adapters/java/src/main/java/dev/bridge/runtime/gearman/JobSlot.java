package dev.bridge.runtime.gearman;

import java.util.concurrent.Semaphore;

/**
 * One job slot (a permit of the worker's semaphore) held by a connection thread for a grab and
 * the job it brings. A write stuck on that connection revokes it: the watchdog has closed the
 * connection (gearmand re-queues the job; nothing more can be delivered on it), so the permit goes
 * back at once for the other servers' connections, and a handler still running is interrupted
 * (its sends fail anyway). A handler that ignores the interrupt runs on without a slot, and a
 * graceful stop does not wait for it.
 */
final class JobSlot {
    private static final System.Logger LOG = System.getLogger(JobSlot.class.getName());

    private final Semaphore permits;
    private final Thread owner;
    private boolean released;
    private boolean running;
    private boolean revoked;

    /** For a permit already acquired by {@code owner}. */
    JobSlot(Semaphore permits, Thread owner) {
        this.permits = permits;
        this.owner = owner;
    }

    /** The connection is gone: give the permit back, interrupt the running handler. */
    synchronized void revoke() {
        revoked = true;
        release();
        if (running) {
            LOG.log(System.Logger.Level.WARNING, "{0}: the running job''s connection is gone: its slot is given"
                    + " back and its handler interrupted", owner.getName());
            owner.interrupt();
        }
    }

    synchronized boolean revoked() {
        return revoked;
    }

    /**
     * Called by the owner around the job. Once the job is over no interrupt is sent, and one sent
     * before is cleared: it was meant for the handler, not for the connection loop.
     */
    void running(boolean now) {
        boolean wasRevoked;
        synchronized (this) {
            running = now;
            wasRevoked = revoked;
        }
        if (!now && wasRevoked) {
            Thread.interrupted();
        }
    }

    /** Gives the permit back (once). */
    synchronized void release() {
        if (!released) {
            released = true;
            permits.release();
        }
    }
}
