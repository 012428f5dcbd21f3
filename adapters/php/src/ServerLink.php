<?php

declare(strict_types=1);

namespace Bridge\Runtime;

/**
 * One job server as a worker process sees it: its own GearmanWorker (one connection), driven in
 * non-blocking mode so that a server that stops answering never holds up the others.
 *
 * libgearman walks the servers of one GearmanWorker in turn and waits for each one's answer to
 * GRAB_JOB: one frozen server (TCP up, nothing answered) stopped a worker serving all the others.
 * Here each server has its own GearmanWorker, and work() never blocks: it returns IO_WAIT while the
 * server owes an answer. A server that owes one for longer than the read timeout has its connection
 * closed (gearmand re-queues whatever it had assigned on it) and is reconnected with backoff.
 *
 * @internal
 */
final class ServerLink
{
    private const BACKOFF_MIN_MS = 50;
    private const BACKOFF_MAX_MS = 2000;
    /** How long addServer() may wait for the TCP handshake and OPTION_RES: the loop serving the
     * other servers stands still meanwhile. A connect not done by then goes on in the background. */
    private const CONNECT_WAIT_MS = 5;

    private ?\GearmanWorker $gearman = null;
    /** When the server started owing an answer (hrtime seconds), null while it owes none. */
    private ?float $waitingSince = null;
    /** PRE_SLEEP sent: nothing to do until the server wakes us (wait() sees its NOOP). */
    private bool $sleeping = false;
    private float $retryAt = 0.0;
    private int $backoffMs = 0;
    private bool $failing = false;
    /** The server has sent bytes on this connection. */
    private bool $heard = false;
    /** @var list<string>|null */
    private ?array $addresses = null;

    /**
     * @param \Closure(\GearmanWorker, ServerLink): void $register adds the functions to a new GearmanWorker
     * @param Log $log where its connection events go
     */
    public function __construct(
        public readonly string $host,
        public readonly int $port,
        private readonly \Closure $register,
        private readonly string $clientId,
        private readonly int $readTimeoutMs,
        private readonly Log $log,
    ) {
    }

    public function name(): string
    {
        return str_contains($this->host, ':') ? "[{$this->host}]:{$this->port}" : "{$this->host}:{$this->port}";
    }

    /** Whether wait() has something to wait for (a connection that owes an answer or sleeps). */
    public function connected(): bool
    {
        return $this->gearman !== null;
    }

    /** Whether this server has sent bytes on its connection (else it may still be connecting). */
    public function heard(): bool
    {
        return $this->heard;
    }

    /** When a link in backoff may try again (hrtime seconds); 0 when connected. */
    public function retryAt(): float
    {
        return $this->gearman === null ? $this->retryAt : 0.0;
    }

    /**
     * Moves this server's state machine on without blocking: connects, grabs, runs a job it was
     * assigned. Returns true when a job ran (there may be another one waiting).
     */
    public function step(float $now): bool
    {
        if ($this->gearman === null) {
            if ($now < $this->retryAt) {
                return false;
            }
            $this->connect();
            if ($this->gearman === null) {
                return false;
            }
        }
        if ($this->sleeping) {
            return false;
        }
        $gearman = $this->gearman;
        if (!$this->heard) {
            // Connecting, or connected to a server that has not said a word: libgearman's work()
            // polls the socket for the whole timeout even in non-blocking mode, and a connect to a
            // host behind a cut link (SYN never answered) stayed pending for the read timeout while
            // the other servers waited 10 ms per loop turn. Look, never wait; the loop comes back.
            $gearman->setTimeout(0);
        }
        $ran = @$gearman->work();
        // A job runs in blocking mode (jobStarted()); the loop is non-blocking again afterwards.
        $gearman->addOptions(GEARMAN_WORKER_NON_BLOCKING);
        if ($ran) {
            $this->answered();
            return true;
        }
        $rc = $gearman->returnCode();
        if ($rc === GEARMAN_IO_WAIT || ($rc === GEARMAN_TIMEOUT && !$this->heard)) {
            $this->waitingSince ??= $now;
            if (($now - $this->waitingSince) * 1000 >= $this->readTimeoutMs) {
                $this->drop(sprintf('no answer for %.1f s; reconnecting', $now - $this->waitingSince));
            }
            return false;
        }
        if ($rc === GEARMAN_NO_JOBS) {
            // NO_JOB answered and PRE_SLEEP sent. A refused connect can end here too, so only a
            // server that has sent bytes on this connection counts as answering.
            if ($this->heard) {
                $this->answered();
            }
            $this->waitingSince = null;
            $this->sleeping = true;
            return false;
        }
        if ($rc === GEARMAN_WORK_FAIL || $rc === GEARMAN_WORK_EXCEPTION || $rc === GEARMAN_TIMEOUT) {
            return false;
        }
        $this->drop("unreachable ({$gearman->error()}); retrying");
        return false;
    }

    /**
     * Waits up to $timeoutMs for this server to send something. Returns true when it did (a NOOP
     * after PRE_SLEEP, an answer it owed): step() has work to do.
     */
    public function wait(int $timeoutMs): bool
    {
        if ($this->gearman === null) {
            return false;
        }
        $this->gearman->setTimeout($timeoutMs);
        if (@$this->gearman->wait()) {
            $this->awake(true);
            return true;
        }
        $rc = $this->gearman->returnCode();
        if ($rc !== GEARMAN_TIMEOUT && $rc !== GEARMAN_IO_WAIT) {
            $this->drop("unreachable ({$this->gearman->error()}); retrying");
        }
        return false;
    }

    /**
     * Something happened on the connection (SocketPoll saw it): step() has work to do. $data: the
     * server sent bytes (not only an error or a hang-up).
     */
    public function awake(bool $data): void
    {
        $this->sleeping = false;
        $this->heard = $this->heard || $data;
    }

    /** Whether step() would send a new GRAB_JOB (connected, awake, owing nothing). */
    public function readyToGrab(): bool
    {
        return $this->gearman !== null && !$this->sleeping && $this->waitingSince === null;
    }

    /** How long the server has owed an answer, in seconds (0 when it owes none). */
    public function owedFor(float $now): float
    {
        return $this->waitingSince === null ? 0.0 : $now - $this->waitingSince;
    }

    /** @return list<string> the server's IP addresses (to find its socket by peer address) */
    public function addresses(): array
    {
        if ($this->addresses === null) {
            $this->addresses = filter_var($this->host, FILTER_VALIDATE_IP)
                ? [(string) inet_ntop((string) inet_pton($this->host))]
                : array_merge(gethostbynamel($this->host) ?: [], $this->host === 'localhost' ? ['::1'] : []);
        }
        return $this->addresses;
    }

    /** Called inside work() when a job arrives: its packets are sent in blocking mode. */
    public function jobStarted(): void
    {
        $this->answered();
        // A reply is sent whole. libgearman retries a send that times out for ever: a server that
        // stops taking it is cut off by the SendWatchdog, which makes the send fail.
        $this->gearman?->removeOptions(GEARMAN_WORKER_NON_BLOCKING);
        $this->gearman?->setTimeout($this->readTimeoutMs);
    }

    public function close(): void
    {
        $this->release();
    }

    private function connect(): void
    {
        $gearman = new \GearmanWorker();
        // GRAB_JOB_UNIQ: the handler sees the caller's unique id.
        $gearman->addOptions(GEARMAN_WORKER_GRAB_UNIQ | GEARMAN_WORKER_NON_BLOCKING);
        $gearman->setId($this->clientId);
        // addServer() connects and waits for the answer to OPTION_REQ "exceptions" (pecl gearman
        // 2.1 always asks), blocking for up to the timeout: keep it short. When the server is down
        // or slow it throws, but the server is added: an answer that comes later is read by work()
        // as a NO_JOB, and a server that never answers is dropped after the read timeout.
        $gearman->setTimeout(self::CONNECT_WAIT_MS);
        try {
            $gearman->addServer($this->host, $this->port);
        } catch (\GearmanException) {
            if (str_contains($gearman->error(), 'GEARMAN_COULD_NOT_CONNECT')) {
                // Refused or no route: a warning naming the server (docs/workers.md), then backoff.
                $this->drop('unreachable (could not connect); retrying');
                return;
            }
        }
        ($this->register)($gearman, $this);
        $this->gearman = $gearman;
        $this->waitingSince = null;
        $this->sleeping = false;
        $this->heard = false;
    }

    private function answered(): void
    {
        $this->waitingSince = null;
        $this->heard = true;
        if ($this->failing) {
            $this->log->info("job server {$this->name()} answers again");
        }
        $this->failing = false;
        $this->backoffMs = 0;
    }

    /** Closes the connection (gearmand re-queues what it assigned on it); retries after a backoff. */
    private function drop(string $why): void
    {
        if (!$this->failing) {
            $this->log->warning("job server {$this->name()}: {$why}");
            $this->failing = true;
        }
        $this->release();
        $this->waitingSince = null;
        $this->sleeping = false;
        $this->backoffMs = min(self::BACKOFF_MAX_MS, max(self::BACKOFF_MIN_MS, $this->backoffMs * 2));
        $this->retryAt = hrtime(true) / 1e9 + $this->backoffMs / 1000;
    }

    /**
     * Lets go of the connection without waiting. libgearman sets SO_LINGER (10 s) on its sockets:
     * closing one whose bytes the server never took (link cut: a GRAB, a WORK_COMPLETE) blocked
     * close(2), and with it every other server's loop and SIGTERM, for 10 s. Without lingering the
     * kernel goes on delivering those bytes in the background.
     */
    private function release(): void
    {
        if ($this->gearman !== null) {
            SocketPoll::unlinger($this);
        }
        $this->gearman = null;
    }
}
