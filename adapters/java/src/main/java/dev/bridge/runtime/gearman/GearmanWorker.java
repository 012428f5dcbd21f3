package dev.bridge.runtime.gearman;

import java.io.EOFException;
import java.io.IOException;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
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
 * once at {@code concurrency} across all servers. A connection that breaks (server gone, protocol
 * error) is closed and opened again with exponential backoff; its running job, if any, is
 * re-queued by gearmand. {@link #stop()} stops grabbing; running jobs finish and the threads end.
 */
public final class GearmanWorker {
    private static final System.Logger LOG = System.getLogger(GearmanWorker.class.getName());

    private final List<ServerAddress> servers;
    private final int concurrency;
    private final int maxBody;
    private final String clientId;
    private final Settings settings;
    private final Map<String, JobFunction> functions = new LinkedHashMap<>();
    private final List<Thread> threads = new ArrayList<>();
    private final Semaphore permits;
    private final CountDownLatch stopSignal = new CountDownLatch(1);
    private final AtomicInteger running = new AtomicInteger();
    private volatile boolean stopping;
    private boolean started;

    /**
     * Timings; the defaults suit a LAN, tests shorten them. {@code writeTimeout}: how long one
     * write may stay stuck (a server that stopped reading) before the connection is closed.
     */
    public record Settings(Duration connectTimeout, Duration responseTimeout, Duration pollInterval,
                           Duration regrabInterval, Duration minBackoff, Duration maxBackoff,
                           Duration writeTimeout) {
        public static final Settings DEFAULT = new Settings(Duration.ofSeconds(5), Duration.ofSeconds(30),
                Duration.ofMillis(200), Duration.ofSeconds(10), Duration.ofMillis(100), Duration.ofSeconds(5),
                Duration.ofSeconds(60));
    }

    public GearmanWorker(List<ServerAddress> servers, int concurrency, int maxBody, String clientId,
                         Settings settings) {
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
        this.permits = new Semaphore(concurrency);
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

    /** Stops grabbing jobs; running jobs go on to their end. Returns at once. */
    public void stop() {
        stopping = true;
        stopSignal.countDown();
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

    private void serve(ServerAddress server) {
        long backoff = settings.minBackoff().toMillis();
        while (!stopping) {
            Connection connection;
            try {
                connection = Connection.open(server, (int) settings.connectTimeout().toMillis(), maxBody,
                        settings.writeTimeout().toMillis());
            } catch (IOException e) {
                LOG.log(System.Logger.Level.DEBUG, "cannot reach {0}: {1}", server, e.toString());
                pause(jittered(backoff));
                backoff = Math.min(backoff * 2, settings.maxBackoff().toMillis());
                continue;
            }
            try {
                announce(connection);
                backoff = settings.minBackoff().toMillis();
                work(connection);
            } catch (IOException e) {
                if (!stopping) {
                    LOG.log(e instanceof EOFException ? System.Logger.Level.INFO : System.Logger.Level.WARNING,
                            "connection to {0} lost ({1}); reconnecting", server, e.toString());
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
                connection.close();
            }
        }
    }

    private void announce(Connection connection) throws IOException {
        if (clientId != null && !clientId.isEmpty()) {
            connection.send(PacketType.SET_CLIENT_ID, clientId.getBytes(StandardCharsets.UTF_8));
        }
        for (String function : functions()) {
            connection.send(PacketType.CAN_DO, function.getBytes(StandardCharsets.UTF_8));
        }
    }

    /** The grab / run / sleep loop on one connection, until stop or an I/O error. */
    private void work(Connection connection) throws IOException, InterruptedException {
        int responseTimeout = (int) settings.responseTimeout().toMillis();
        try {
            while (!stopping) {
                if (!permits.tryAcquire()) {
                    // Waiting for a permit: the last job's answer must not wait with us.
                    connection.flush();
                    if (!permits.tryAcquire(settings.pollInterval().toMillis(), TimeUnit.MILLISECONDS)) {
                        continue;
                    }
                }
                boolean gotJob = false;
                try {
                    if (stopping) {
                        return;
                    }
                    // Flushes the previous job's final packet too: one write for both.
                    connection.send(PacketType.GRAB_JOB_UNIQ);
                    Packet reply = awaitGrabReply(connection, responseTimeout);
                    if (reply.type() == PacketType.JOB_ASSIGN_UNIQ || reply.type() == PacketType.JOB_ASSIGN) {
                        gotJob = true;
                        run(new GearmanJob(connection, reply, false));
                    }
                } finally {
                    permits.release();
                }
                if (!gotJob) {
                    sleepUntilWoken(connection);
                }
            }
        } finally {
            connection.flush(); // a job answered just before stop() still reaches the server
        }
    }

    private Packet awaitGrabReply(Connection connection, int timeout) throws IOException {
        while (true) {
            Packet p = connection.receive(timeout);
            switch (p.type()) {
                case JOB_ASSIGN_UNIQ, JOB_ASSIGN, NO_JOB:
                    return p;
                case NOOP:
                    continue;
                case ERROR:
                    throw new IOException("job server error " + p.argumentString(0) + ": " + p.argumentString(1));
                default:
                    throw new ProtocolException("unexpected " + p.type() + " while grabbing a job");
            }
        }
    }

    /** PRE_SLEEP, then wait for NOOP; wakes up regularly to notice stop, and grabs again after a while anyway. */
    private void sleepUntilWoken(Connection connection) throws IOException {
        connection.send(PacketType.PRE_SLEEP);
        int poll = (int) settings.pollInterval().toMillis();
        long regrabAt = System.nanoTime() + settings.regrabInterval().toNanos();
        while (!stopping && System.nanoTime() < regrabAt) {
            Packet p;
            try {
                p = connection.receive(poll);
            } catch (SocketTimeoutException e) {
                continue;
            }
            if (p.type() == PacketType.NOOP) {
                return;
            }
            if (p.type() == PacketType.ERROR) {
                throw new IOException("job server error " + p.argumentString(0) + ": " + p.argumentString(1));
            }
            throw new ProtocolException("unexpected " + p.type() + " while sleeping");
        }
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
