<?php

declare(strict_types=1);

namespace Bridge\Runtime;

use Bridge\Runtime\Security\JobVerifier;
use Bridge\Runtime\Security\Keyring;
use Bridge\Runtime\Security\ReplayCache;
use Bridge\Runtime\Security\SharedReplayCache;

/**
 * A bridge worker: serves the registered methods on every job server given, until SIGTERM.
 *
 *     $worker = new Worker('127.0.0.1:4730', concurrency: 4);
 *     InvoicesRegistration::register($worker, new MyInvoices());
 *     exit($worker->run());
 *
 * PHP runs one job at a time per process, so `concurrency: N` forks N worker processes from this
 * one (pcntl), each with its own connections; this process supervises them, restarts one that dies,
 * and passes SIGTERM on. SIGTERM (or SIGINT) stops grabbing jobs, lets the running job finish, and
 * run() returns 0.
 *
 * With keys (`keys:`, else `BRIDGE_KEYS` / `BRIDGE_KEYS_FILE`), every job must be signed by one of
 * them (wire contract, section 9); the forked processes share one replay cache, kept by this one.
 */
final class Worker
{
    /** How long one wait for a server lasts at most, so a stop request is seen promptly. */
    private const POLL_MS = 200;
    /** The same with several servers, each watched in turn. */
    private const SHARED_POLL_MS = 10;
    /** A GRAB unanswered this long (a healthy server answers in well under a millisecond) no
     * longer keeps the process from asking the other servers. */
    private const GRAB_STALL_MS = 100;
    /** How long a job server may owe an answer before its connection is closed and reopened. */
    public const DEFAULT_READ_TIMEOUT_MS = 5000;

    private readonly Dispatcher $dispatcher;
    /** @var list<array{string, int}> */
    private readonly array $servers;
    /** @var list<int> */
    private readonly array $serverPorts;
    private bool $stopping = false;
    /** Waits on several servers' sockets at once (null without FFI: they are watched in turn). */
    private ?SocketPoll $poll = null;
    private readonly Log $log;
    /** Resets a connection whose server stopped taking a job's reply (null: none can run here). */
    private ?SendWatchdog $watchdog = null;

    /**
     * @param string|list<string> $servers "host:port,host:port" or a list of "host:port"
     * @param int $concurrency jobs run in parallel: worker processes forked from this one
     * @param int $maxRequestBytes larger job payloads are answered RESOURCE_EXHAUSTED
     * @param \Closure(string): void|null $log where log lines go, each as "LEVEL: message"
     *        (default: stderr, "[bridge-php PID] LEVEL: message")
     * @param string|null $clientId the id `gearadmin --workers` shows (default "bridge-php-<pid>")
     * @param int $readTimeoutMs a job server that owes an answer this long (frozen, link cut) has its
     *        connection closed and reopened with backoff; the other servers are served meanwhile
     * @param Keyring|null $keys the keys signed jobs may use; null: BRIDGE_KEYS or BRIDGE_KEYS_FILE
     *        when set (Keyring::fromEnv()), else jobs are not checked
     * @param int $signingWindowS how far ahead (seconds) a signed job's deadline may be
     * @param int $replayCapacity the most (key id, nonce) pairs the replay cache holds
     * @param string|int|null $logLevel the lowest level logged: "debug", "info", "warning" ("warn"),
     *        "error" or a Log constant; null: BRIDGE_LOG_LEVEL when set, else info. At debug, one
     *        line per job (docs/workers.md); every error answer is logged at warning.
     * @throws \InvalidArgumentException for a bad concurrency, read timeout or log level
     * @throws Security\KeyringError when the keys given or in the environment cannot be used
     */
    public function __construct(
        string|array $servers = '127.0.0.1:4730',
        private readonly int $concurrency = 1,
        int $maxRequestBytes = Dispatcher::DEFAULT_MAX_REQUEST_BYTES,
        ?\Closure $log = null,
        private readonly ?string $clientId = null,
        private readonly int $readTimeoutMs = self::DEFAULT_READ_TIMEOUT_MS,
        ?Keyring $keys = null,
        int $signingWindowS = JobVerifier::DEFAULT_WINDOW_S,
        int $replayCapacity = ReplayCache::DEFAULT_CAPACITY,
        string|int|null $logLevel = null,
    ) {
        if ($concurrency < 1) {
            throw new \InvalidArgumentException("concurrency must be at least 1, got {$concurrency}");
        }
        if ($readTimeoutMs < 1) {
            throw new \InvalidArgumentException("readTimeoutMs must be positive, got {$readTimeoutMs}");
        }
        $this->servers = self::parseServers($servers);
        $this->serverPorts = array_values(array_unique(array_column($this->servers, 1)));
        $this->log = new Log(is_int($logLevel) ? $logLevel : Log::levelFrom($logLevel), $log);
        $this->dispatcher = new Dispatcher($maxRequestBytes, $this->log);
        $keys ??= Keyring::fromEnv();
        if ($keys !== null) {
            $this->dispatcher->setVerifier(new JobVerifier($keys, $signingWindowS, $replayCapacity));
        }
    }

    public function addMethod(Method $method): void
    {
        $this->dispatcher->add($method);
    }

    public function dispatcher(): Dispatcher
    {
        return $this->dispatcher;
    }

    /** Asks run() to return once the running job is finished (what SIGTERM does). */
    public function stop(): void
    {
        $this->stopping = true;
    }

    /** Serves until stopped; returns the process exit status. */
    public function run(): int
    {
        if ($this->dispatcher->methods() === []) {
            throw new \LogicException('no methods registered: nothing to serve');
        }
        if ($this->concurrency > 1) {
            if (!function_exists('pcntl_fork')) {
                throw new \RuntimeException('concurrency > 1 needs the pcntl extension; start several processes instead');
            }
            $verifier = $this->dispatcher->verifier();
            // The replay cache lives in this process; each forked one asks it (SharedReplayCache).
            $service = $verifier === null
                ? null
                : static fn (string $request): string => SharedReplayCache::answer($verifier->replayGuard(), $request);
            return (new Supervisor($this->concurrency, $this->log, $service))->run(fn (mixed $channel): int => $this->serve($channel));
        }
        return $this->serve();
    }

    /**
     * The job loop of one process: each job server's link moves on without blocking on the others
     * (ServerLink); in between, the loop waits for any server to send something.
     */
    private function serve(mixed $supervisor = null): int
    {
        $this->installSignalHandlers();
        $verifier = $this->dispatcher->verifier();
        if ($verifier !== null && $supervisor !== null) {
            $verifier->useReplayGuard(new SharedReplayCache($supervisor));
        }
        $this->watchdog = SendWatchdog::start($this->readTimeoutMs);
        $clientId = $this->clientId ?? 'bridge-php-' . getmypid();
        $links = [];
        foreach ($this->servers as [$host, $port]) {
            $links[] = new ServerLink($host, $port, $this->register(...), $clientId, $this->readTimeoutMs, $this->log);
        }
        $this->log->info(sprintf(
            'serving %d functions on %s%s',
            count($this->dispatcher->methods()),
            implode(',', array_map(static fn (ServerLink $l): string => $l->name(), $links)),
            $verifier === null ? '' : "; signed jobs only (key ids: {$verifier->keyring->ids()})"
        ));
        // One server: wait on it alone for a while. Several: wait on each in turn, briefly, so a
        // job on one is picked up at most a few milliseconds late while the others are watched.
        $waitMs = count($links) === 1 ? self::POLL_MS : self::SHARED_POLL_MS;
        $this->poll = count($links) > 1 && SocketPoll::available() ? new SocketPoll($links) : null;
        while (!$this->stopRequested()) {
            $ran = false;
            $deferred = [];
            foreach ($links as $i => $link) {
                if ($this->stopRequested()) {
                    break;
                }
                $now = hrtime(true) / 1e9;
                // One process runs one job: it asks one server at a time, or a second server's job
                // would wait behind the first one's while other processes sit idle. A server that
                // leaves its GRAB unanswered past GRAB_STALL_MS (frozen) no longer holds the others.
                if ($link->readyToGrab() && self::grabInFlight($links, $link, $now) > 0.0) {
                    $deferred[$i] = true;
                    continue;
                }
                $ran = $link->step($now) || $ran;
            }
            if ($ran || $this->stopRequested()) {
                continue;
            }
            $this->waitForAny(array_values(array_diff_key($links, $deferred)), $links, $deferred === [] ? $waitMs : null);
        }
        foreach ($links as $link) {
            $link->close();
        }
        $this->watchdog?->close();
        $this->log->info('stopped');
        return 0;
    }

    /**
     * Seconds until the GRAB another server owes counts as stalled (0: none in flight).
     *
     * @param list<ServerLink> $links
     */
    private static function grabInFlight(array $links, ServerLink $except, float $now): float
    {
        $left = 0.0;
        foreach ($links as $link) {
            $owed = $link->owedFor($now);
            // A link whose server has not spoken yet (connecting: link cut, server down) has no GRAB out.
            if ($link !== $except && $link->heard() && $owed > 0.0 && $owed < self::GRAB_STALL_MS / 1000) {
                $left = max($left, self::GRAB_STALL_MS / 1000 - $owed);
            }
        }
        return $left;
    }

    /**
     * Waits until a server in $watched sends something. $waitMs null: a server is held back until
     * another's GRAB is answered or stalls, so wait no longer than that.
     *
     * @param list<ServerLink> $watched
     * @param list<ServerLink> $links
     */
    private function waitForAny(array $watched, array $links, ?int $waitMs): void
    {
        if ($waitMs === null) {
            $now = hrtime(true) / 1e9;
            $left = max(array_map(static fn (ServerLink $l): float => self::grabInFlight($links, $l, $now), $links));
            $waitMs = max(1, (int) ceil($left * 1000));
        }
        $connected = array_values(array_filter($watched, static fn (ServerLink $l): bool => $l->connected()));
        if ($connected === []) {
            // Every server is down: sleep until the first one may be retried.
            $next = min(array_map(static fn (ServerLink $l): float => $l->retryAt(), $links));
            $this->sleepUnlessStopping((int) max(1, min(self::POLL_MS, ($next - hrtime(true) / 1e9) * 1000)));
            return;
        }
        if (count($links) > 1 && $this->poll?->poll($connected, min($waitMs, self::POLL_MS))) {
            return;  // one poll(2) on every server's socket
        }
        // Each server in turn, the one that started owing an answer last first (a healthy server
        // answers within a millisecond; a frozen one owes it for seconds).
        $now = hrtime(true) / 1e9;
        usort($connected, static function (ServerLink $a, ServerLink $b) use ($now): int {
            [$owedA, $owedB] = [$a->owedFor($now), $b->owedFor($now)];
            return ($owedA === 0.0) <=> ($owedB === 0.0) ?: $owedA <=> $owedB;
        });
        $each = count($links) === 1 ? $waitMs : min($waitMs, self::SHARED_POLL_MS);
        foreach ($connected as $link) {
            // A server that has not spoken yet may be a connect that never completes (link cut):
            // a glance at it, so it costs the others no more than a millisecond per turn.
            if ($link->wait(count($links) === 1 || $link->heard() ? $each : 1) || $this->stopRequested()) {
                return;
            }
        }
    }

    /** Adds every method to a new GearmanWorker of $link. */
    private function register(\GearmanWorker $gearman, ServerLink $link): void
    {
        foreach ($this->dispatcher->methods() as $name => $method) {
            // No timeout argument: it would send CAN_DO_TIMEOUT, which gearmand 1.1.20 breaks.
            $gearman->addFunction($name, fn (\GearmanJob $job): ?string => $this->onJob($job, $link));
        }
    }

    /**
     * The pecl gearman callback. It must never let an exception escape: pecl gearman would rethrow
     * it from work() and end the process. It sends the job's final packet itself and returns null
     * (libgearman sends nothing more for a job that has finished).
     */
    private function onJob(\GearmanJob $job, ServerLink $link): ?string
    {
        // A send that a server stops taking never returns from libgearman: the watchdog resets it.
        $this->watchdog?->jobStarted($link);
        try {
            $link->jobStarted();
            $this->dispatcher->handle(
                $job->functionName(),
                $job->workload(),
                new GearmanJobSink($job, $this->serverPorts, $this->watchdog),
                $job->handle(),
                $job->unique(),
            );
        } catch (ConnectionLost $e) {
            // The server took nothing for the read timeout (or hung up): the job ends here, and
            // libgearman closes the connection without sending more (GEARMAN_LOST_CONNECTION from
            // the callback); gearmand re-queues the job, and the loop reconnects with backoff.
            $job->setReturn(GEARMAN_LOST_CONNECTION);
            $this->log->warning(sprintf(
                'job server %s stopped taking the reply of %s job %s: %s; connection closed, the job is left to the server to re-queue',
                $link->name(),
                $job->functionName(),
                $job->handle(),
                $e->getMessage()
            ));
        } catch (\Throwable $e) {
            // Sending the final packet itself failed (connection lost): the server re-queues the job.
            $this->log->error(sprintf('%s: could not answer job %s: %s', $job->functionName(), $job->handle(), $e->getMessage()));
        } finally {
            $this->watchdog?->jobEnded();
        }
        return null;
    }

    /**
     * SIGTERM and SIGINT stay blocked while the worker serves, and the loop takes them from the
     * pending set (stopRequested()) between jobs and waits, each at most POLL_MS long. A job is
     * never interrupted by one, and with no PHP handler installed none can end the process: PHP
     * puts a handled signal back to its default action while it shuts down, so a second SIGTERM in
     * the last milliseconds of a clean stop ended the worker with status -15 instead of 0. A
     * forked child starts with them blocked already (see Supervisor).
     */
    private function installSignalHandlers(): void
    {
        if (function_exists('pcntl_sigprocmask') && function_exists('pcntl_sigtimedwait')) {
            pcntl_sigprocmask(SIG_BLOCK, [SIGTERM, SIGINT]);
        } elseif (function_exists('pcntl_signal')) {
            // No sigtimedwait (macOS): a handler, with the shutdown race described above.
            pcntl_async_signals(true);
            $stop = function (): void {
                $this->stopping = true;
            };
            pcntl_signal(SIGTERM, $stop);
            pcntl_signal(SIGINT, $stop);
            pcntl_sigprocmask(SIG_UNBLOCK, [SIGTERM, SIGINT]);
        }
    }

    /** Whether stop() was called or a SIGTERM / SIGINT has arrived. */
    private function stopRequested(): bool
    {
        if (!$this->stopping && function_exists('pcntl_sigtimedwait')) {
            $this->stopping = @pcntl_sigtimedwait([SIGTERM, SIGINT], $info, 0, 0) > 0;
        }
        return $this->stopping;
    }

    private function sleepUnlessStopping(int $ms): void
    {
        $until = microtime(true) + $ms / 1000;
        while (!$this->stopRequested() && ($left = $until - microtime(true)) > 0) {
            usleep((int) (min($left, 0.05) * 1_000_000));
        }
    }

    /**
     * @param string|list<string> $servers
     * @return list<array{string, int}>
     */
    private static function parseServers(string|array $servers): array
    {
        $list = is_array($servers) ? $servers : explode(',', $servers);
        $parsed = [];
        foreach ($list as $server) {
            $server = trim($server);
            if ($server === '') {
                continue;
            }
            if (!preg_match('/^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/', $server, $m)) {
                throw new \InvalidArgumentException("not a host:port job server address: '{$server}'");
            }
            $parsed[] = [trim($m[1], '[]'), isset($m[2]) ? (int) $m[2] : 4730];
        }
        if ($parsed === []) {
            throw new \InvalidArgumentException('no job server given');
        }
        return $parsed;
    }
}
