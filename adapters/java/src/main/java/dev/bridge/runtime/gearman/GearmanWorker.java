package dev.bridge.runtime.gearman;

import java.io.IOException;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Semaphore;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The worker side of the Gearman protocol on plain sockets.
 *
 * <p>Each job server gets {@code concurrency} connections, one per thread, each grabbing jobs
 * with GRAB_JOB_UNIQ and sleeping with PRE_SLEEP until NOOP. A semaphore caps the jobs running at
 * once at {@code concurrency} across all servers; a thread holds one of its permits only for a
 * grab on a connection whose server has answered since it connected (an ECHO_REQ after CAN_DO,
 * and again before a grab that follows a long sleep), so a job server that stops answering
 * (frozen, link cut) cannot take the slots the others need. A grab or an echo left unanswered for
 * the read timeout ({@link Settings#responseTimeout()}) closes that connection, and so does a
 * write that makes no progress for {@link Settings#writeTimeout()}: the job it carried gives its
 * slot back at once and its handler is interrupted (see {@link JobSlot}). A connection that
 * breaks (server gone, protocol error, read timeout) is closed and opened again with exponential
 * backoff; its running job, if any, is re-queued by gearmand. {@link #stop()} stops grabbing;
 * running jobs finish and the threads end; a grab still unanswered a second after stop() is
 * abandoned (its connection closed).
 */
public final class GearmanWorker {
    private static final System.Logger LOG = System.getLogger(GearmanWorker.class.getName());

    private final List<ServerAddress> servers;
    private final int concurrency;
    private final int maxBody;
    private final String clientId;
    private final Settings settings;
    private final long dropPayloadsAbove;
    private static final byte[] ECHO = "bridge".getBytes(StandardCharsets.US_ASCII);

    private final Map<String, JobFunction> functions = new LinkedHashMap<>();
    /** Open connections, for stop(). */
    private final Set<Connection> live = ConcurrentHashMap.newKeySet();
    private final List<Thread> threads = new ArrayList<>();
    private final Semaphore permits;
    private final CountDownLatch stopSignal = new CountDownLatch(1);
    private final AtomicInteger running = new AtomicInteger();
    private volatile boolean stopping;
    private boolean started;
    /** For tls:// servers; null: the BRIDGE_TLS_* environment. */
    private volatile TlsSettings tls;

    /** How long an unanswered grab may hold up stop() before its connection is closed. */
    static final long STOP_GRACE_MILLIS = 1000;

    /**
     * Timings; the defaults suit a LAN, tests shorten them. {@code responseTimeout}: the read
     * timeout for a reply to ECHO_REQ or GRAB_JOB_UNIQ (a server that leaves one unanswered that
     * long is treated as gone). {@code regrabInterval}: a sleeping connection checks the server
     * with an echo and grabs again after this long, in case a wake-up was lost.
     * {@code writeTimeout}: how long a write may make no progress (a server that stopped
     * reading) before the connection is closed, its job's slot given back and its handler
     * interrupted; by default the read timeout, 5 s.
     */
    public record Settings(Duration connectTimeout, Duration responseTimeout, Duration pollInterval,
                           Duration regrabInterval, Duration minBackoff, Duration maxBackoff,
                           Duration writeTimeout) {
        public static final Settings DEFAULT = new Settings(Duration.ofSeconds(5), Duration.ofSeconds(5),
                Duration.ofMillis(200), Duration.ofSeconds(10), Duration.ofMillis(100), Duration.ofSeconds(5),
                Duration.ofSeconds(5));
    }

    public GearmanWorker(List<ServerAddress> servers, int concurrency, int maxBody, String clientId,
                         Settings settings) {
        this(servers, concurrency, maxBody, clientId, settings, Long.MAX_VALUE);
    }

    /**
     * @param dropPayloadsAbove a job whose assignment packet is larger than this is read without
     *     keeping its payload (see {@link GearmanJob#declaredPayloadLength()}), so memory does not
     *     grow with a job that will be refused anyway
     */
    public GearmanWorker(List<ServerAddress> servers, int concurrency, int maxBody, String clientId,
                         Settings settings, long dropPayloadsAbove) {
        if (servers.isEmpty()) {
            throw new IllegalArgumentException("no job server given");
        }
        if (concurrency < 1) {
            throw new IllegalArgumentException("concurrency must be >= 1, got " + concurrency);
        }
        this.servers = List.copyOf(servers);
        this.concurrency = concurrency;
        this.maxBody = maxBody;
        this.clientId = clientId;
        this.settings = Objects.requireNonNull(settings);
        // Fair: a slot given back while other connections wait goes to the one waiting longest,
        // so a server with a long queue cannot keep the slots from the others.
        this.permits = new Semaphore(concurrency, true);
        this.dropPayloadsAbove = dropPayloadsAbove;
    }

    /** The TLS settings of the {@code tls://} servers (null: the {@code BRIDGE_TLS_*} environment). */
    public void tls(TlsSettings tls) {
        this.tls = tls;
    }

    /** Serves {@code function} with {@code code}; call before {@link #start()}. */
    public synchronized void register(String function, JobFunction code) {
        if (started) {
            throw new IllegalStateException("register functions before start()");
        }
        if (function.isEmpty() || function.indexOf('\0') >= 0) {
            throw new IllegalArgumentException("bad function name: '" + function + "'");
        }
        if (functions.putIfAbsent(function, Objects.requireNonNull(code)) != null) {
            throw new IllegalArgumentException("function registered twice: " + function);
        }
    }

    /** The job servers this worker serves, in order. */
    public List<ServerAddress> servers() {
        return servers;
    }

    public synchronized List<String> functions() {
        return List.copyOf(functions.keySet());
    }

    /** Starts the connection threads and returns. */
    public synchronized void start() {
        if (started) {
            throw new IllegalStateException("worker already started");
        }
        if (functions.isEmpty()) {
            throw new IllegalStateException("no function registered");
        }
        started = true;
        for (ServerAddress server : servers) {
            for (int slot = 0; slot < concurrency; slot++) {
                Thread t = new Thread(() -> serve(server), "bridge-worker-" + server + "-" + slot);
                threads.add(t);
                t.start();
            }
        }
    }

    /**
     * Stops grabbing jobs; running jobs go on to their end. Returns at once. From now on a write
     * that does not move for a second (a frozen server that stopped reading a large reply) closes
     * its connection instead of holding up the stop.
     */
    public void stop() {
        stopping = true;
        stopSignal.countDown();
        for (Connection c : live) {
            c.setWriteTimeout(STOP_GRACE_MILLIS);
        }
    }

    public boolean isStopping() {
        return stopping;
    }

    /** Jobs running now. */
    public int runningJobs() {
        return running.get();
    }

    /** Waits until every connection thread has ended (after {@link #stop()}). */
    public boolean awaitTermination(Duration timeout) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        List<Thread> snapshot;
        synchronized (this) {
            snapshot = List.copyOf(threads);
        }
        for (Thread t : snapshot) {
            long left = deadline - System.nanoTime();
            if (left <= 0) {
                return false;
            }
            TimeUnit.NANOSECONDS.timedJoin(t, left);
            if (t.isAlive()) {
                return false;
            }
        }
        return true;
    }

    /** Whether no job is running and no grab is waiting for its answer (after stop(): the worker may exit). */
    public boolean isIdle() {
        return permits.availablePermits() == concurrency;
    }

    /** Waits until {@link #isIdle()}; call after {@link #stop()}. */
    public boolean awaitIdle(Duration timeout) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (!isIdle()) {
            if (System.nanoTime() - deadline > 0) {
                return false;
            }
            Thread.sleep(10);
        }
        return true;
    }

    private void serve(ServerAddress server) {
        long backoff = settings.minBackoff().toMillis();
        while (!stopping) {
            Connection connection;
            try {
                connection = Connection.open(server, (int) settings.connectTimeout().toMillis(), maxBody,
                        settings.writeTimeout().toMillis(), dropPayloadsAbove, tls);
            } catch (javax.net.ssl.SSLException e) {
                // A TLS front that refuses us (no or a wrong client certificate, a server
                // certificate we do not trust): a setup error worth a line each try.
                LOG.log(System.Logger.Level.WARNING, "TLS handshake with {0} failed ({1}); retrying", server,
                        e.toString());
                pause(jittered(backoff));
                backoff = Math.min(backoff * 2, settings.maxBackoff().toMillis());
                continue;
            } catch (IOException e) {
                // docs/workers.md: a job server that cannot be reached is a warning naming it.
                LOG.log(System.Logger.Level.WARNING, "cannot reach {0} ({1}); retrying in {2} ms", server,
                        e.toString(), backoff);
                pause(jittered(backoff));
                backoff = Math.min(backoff * 2, settings.maxBackoff().toMillis());
                continue;
            }
            live.add(connection);
            if (stopping) {
                connection.setWriteTimeout(STOP_GRACE_MILLIS);
            }
            boolean answered = false;
            try {
                announce(connection);
                if (!awaitEcho(connection)) {
                    return; // stopped
                }
                answered = true;
                backoff = settings.minBackoff().toMillis(); // the server answers: a healthy connection
                work(connection);
            } catch (IOException e) {
                if (!stopping && server.tls() && !answered) {
                    // With TLS 1.3 a front that refuses our certificate says so after the handshake.
                    LOG.log(System.Logger.Level.WARNING, "TLS front {0} dropped the connection before the job server"
                            + " answered ({1}): is this worker''s client certificate (BRIDGE_TLS_CERT, BRIDGE_TLS_KEY)"
                            + " accepted? retrying", server, e.toString());
                    pause(jittered(backoff));
                    backoff = Math.min(backoff * 2, settings.maxBackoff().toMillis());
                } else if (!stopping) {
                    LOG.log(System.Logger.Level.WARNING, "connection to {0} lost ({1}); reconnecting", server,
                            e.toString());
                    pause(jittered(backoff));
                    backoff = Math.min(backoff * 2, settings.maxBackoff().toMillis());
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            } catch (RuntimeException e) {
                // A bug here must not silently cost a connection: report it and start over.
                LOG.log(System.Logger.Level.ERROR, "worker connection to " + server + " failed", e);
                pause(jittered(backoff));
                backoff = Math.min(backoff * 2, settings.maxBackoff().toMillis());
            } finally {
                live.remove(connection);
                connection.close();
            }
        }
    }

    private void announce(Connection connection) throws IOException {
        if (clientId != null && !clientId.isEmpty()) {
            connection.send(false, PacketType.SET_CLIENT_ID, clientId.getBytes(StandardCharsets.UTF_8));
        }
        for (String function : functions()) {
            connection.send(false, PacketType.CAN_DO, function.getBytes(StandardCharsets.UTF_8));
        }
    }

    /**
     * ECHO_REQ, then waits for its ECHO_RES (a NOOP counts too: the server is alive) without
     * holding a job slot. False when stop() came first; a read timeout when the server is silent.
     */
    private boolean awaitEcho(Connection connection) throws IOException {
        connection.send(PacketType.ECHO_REQ, ECHO);
        while (true) {
            Packet p = receive(connection, 0, "ECHO_REQ");
            if (p == null) {
                return false;
            }
            switch (p.type()) {
                case ECHO_RES, NOOP:
                    return true;
                case ERROR:
                    throw new IOException("job server error " + p.argumentString(0) + ": " + p.argumentString(1));
                default:
                    throw new ProtocolException("unexpected " + p.type() + " while waiting for ECHO_RES");
            }
        }
    }

    /**
     * The next packet, waiting at most the read timeout in poll-sized slices so that stop() is
     * seen: null once stopping for {@code stopGraceMillis}; a {@link SocketTimeoutException}
     * (the connection is then closed) when the server stays silent for the whole read timeout.
     */
    private Packet receive(Connection connection, long stopGraceMillis, String waitingFor) throws IOException {
        long start = System.nanoTime();
        long timeout = settings.responseTimeout().toMillis();
        long poll = Math.max(1, settings.pollInterval().toMillis());
        while (true) {
            long waited = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
            if (stopping && waited >= stopGraceMillis) {
                return null;
            }
            long left = timeout - waited;
            if (left <= 0) {
                throw new SocketTimeoutException(connection.address() + " left " + waitingFor + " unanswered for "
                        + timeout + " ms");
            }
            try {
                return connection.receive((int) Math.min(poll, left));
            } catch (SocketTimeoutException e) {
                // look up: stop, or the whole read timeout
            }
        }
    }

    /** The grab / run / sleep loop on one connection, until stop or an I/O error. */
    private void work(Connection connection) throws IOException, InterruptedException {
        try {
            while (!stopping) {
                if (!permits.tryAcquire(0, TimeUnit.MILLISECONDS)) { // unlike tryAcquire(), queues fairly
                    // Waiting for a permit: the last job's answer must not wait with us.
                    connection.flush();
                    if (!permits.tryAcquire(settings.pollInterval().toMillis(), TimeUnit.MILLISECONDS)) {
                        continue;
                    }
                }
                JobSlot slot = new JobSlot(permits, Thread.currentThread());
                connection.onStuckWrite(slot::revoke);
                boolean gotJob = false;
                boolean answered = false;
                try {
                    if (stopping) {
                        return;
                    }
                    // Flushes the previous job's final packet too: one write for both.
                    connection.send(PacketType.GRAB_JOB_UNIQ);
                    Packet reply = awaitGrabReply(connection);
                    if (reply == null) {
                        return; // stopped while the server kept the grab unanswered
                    }
                    answered = true;
                    if (reply.type() == PacketType.JOB_ASSIGN_UNIQ || reply.type() == PacketType.JOB_ASSIGN) {
                        gotJob = true;
                        slot.running(true);
                        try {
                            run(new GearmanJob(connection, reply, false));
                        } finally {
                            slot.running(false);
                        }
                    }
                } finally {
                    try {
                        if (gotJob && stopping && !slot.revoked()) {
                            connection.flush(); // the reply is out before the slot says the worker is idle
                        }
                    } finally {
                        connection.onStuckWrite(null);
                        slot.release();
                    }
                }
                if (!gotJob && answered && !sleepUntilWoken(connection)) {
                    return;
                }
            }
        } finally {
            connection.flush(); // a job answered just before stop() still reaches the server
        }
    }

    private Packet awaitGrabReply(Connection connection) throws IOException {
        while (true) {
            Packet p = receive(connection, STOP_GRACE_MILLIS, "GRAB_JOB_UNIQ");
            if (p == null) {
                return null;
            }
            switch (p.type()) {
                case JOB_ASSIGN_UNIQ, JOB_ASSIGN, NO_JOB:
                    return p;
                case NOOP, ECHO_RES:
                    continue;
                case ERROR:
                    throw new IOException("job server error " + p.argumentString(0) + ": " + p.argumentString(1));
                default:
                    throw new ProtocolException("unexpected " + p.type() + " while grabbing a job");
            }
        }
    }

    /**
     * PRE_SLEEP, then wait for NOOP, looking up every poll interval to notice stop. After the
     * regrab interval without a NOOP, an echo checks that the server still answers before the
     * next grab takes a job slot. False when stopped.
     */
    private boolean sleepUntilWoken(Connection connection) throws IOException {
        connection.send(PacketType.PRE_SLEEP);
        int poll = (int) settings.pollInterval().toMillis();
        long regrabAt = System.nanoTime() + settings.regrabInterval().toNanos();
        while (!stopping) {
            if (System.nanoTime() - regrabAt >= 0) {
                return awaitEcho(connection);
            }
            Packet p;
            try {
                p = connection.receive(poll);
            } catch (SocketTimeoutException e) {
                continue;
            }
            switch (p.type()) {
                case NOOP:
                    return true;
                case ECHO_RES:
                    continue;
                case ERROR:
                    throw new IOException("job server error " + p.argumentString(0) + ": " + p.argumentString(1));
                default:
                    throw new ProtocolException("unexpected " + p.type() + " while sleeping");
            }
        }
        return false;
    }

    private void run(GearmanJob job) throws IOException {
        JobFunction code;
        synchronized (this) {
            code = functions.get(job.function());
        }
        running.incrementAndGet();
        try {
            if (code == null) {
                LOG.log(System.Logger.Level.WARNING, "job for unregistered function {0}", job.function());
                job.fail();
                return;
            }
            try {
                code.run(job);
            } catch (IOException e) {
                throw e; // the connection broke while the job answered: a connection problem, not the function's
            } catch (Throwable e) {
                // The function failed without ending the job: say so rather than leave the caller waiting.
                LOG.log(System.Logger.Level.ERROR, "function " + job.function() + " failed", e);
                if (!job.isEnded()) {
                    job.fail();
                }
                if (e instanceof VirtualMachineError vme && !(e instanceof StackOverflowError)) {
                    throw vme;
                }
                return;
            }
            if (!job.isEnded()) {
                job.complete(new byte[0]);
            }
        } finally {
            running.decrementAndGet();
        }
    }

    private void pause(long millis) {
        try {
            stopSignal.await(millis, TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            stop();
        }
    }

    private static long jittered(long millis) {
        return millis / 2 + ThreadLocalRandom.current().nextLong(millis / 2 + 1);
    }
}
