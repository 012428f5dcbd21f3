<?php

declare(strict_types=1);

namespace Bridge\Runtime;

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
 */
final class Worker
{
    /** How often work() returns without a job, so a stop request is seen promptly. */
    private const POLL_MS = 200;
    private const BACKOFF_MIN_MS = 50;
    private const BACKOFF_MAX_MS = 2000;

    private readonly Dispatcher $dispatcher;
    /** @var list<array{string, int}> */
    private readonly array $servers;
    /** @var list<int> */
    private readonly array $serverPorts;
    private bool $stopping = false;
    /** @var \Closure(string): void */
    private readonly \Closure $log;

    /**
     * @param string|list<string> $servers "host:port,host:port" or a list of "host:port"
     * @param int $concurrency jobs run in parallel: worker processes forked from this one
     * @param int $maxRequestBytes larger job payloads are answered RESOURCE_EXHAUSTED
     * @param \Closure(string): void|null $log where log lines go (default: stderr)
     * @param string|null $clientId the id `gearadmin --workers` shows (default "bridge-php-<pid>")
     */
    public function __construct(
        string|array $servers = '127.0.0.1:4730',
        private readonly int $concurrency = 1,
        int $maxRequestBytes = Dispatcher::DEFAULT_MAX_REQUEST_BYTES,
        ?\Closure $log = null,
        private readonly ?string $clientId = null,
    ) {
        if ($concurrency < 1) {
            throw new \InvalidArgumentException("concurrency must be at least 1, got {$concurrency}");
        }
        $this->servers = self::parseServers($servers);
        $this->serverPorts = array_values(array_unique(array_column($this->servers, 1)));
        $this->log = $log ?? static function (string $line): void {
            fwrite(STDERR, sprintf("[bridge-php %d] %s\n", getmypid(), $line));
        };
        $this->dispatcher = new Dispatcher($maxRequestBytes, $this->log);
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
            return (new Supervisor($this->concurrency, $this->log))->run(fn (): int => $this->serve());
        }
        return $this->serve();
    }

    /** The job loop of one process. */
    private function serve(): int
    {
        $this->installSignalHandlers();
        $gearman = $this->connect();
        ($this->log)(sprintf(
            'serving %d functions on %s',
            count($this->dispatcher->methods()),
            implode(',', array_map(static fn (array $s): string => "{$s[0]}:{$s[1]}", $this->servers))
        ));
        $backoffMs = 0;
        $failing = false;
        while (!$this->stopping) {
            $ok = @$gearman->work();
            if ($ok) {
                $backoffMs = 0;
                $failing = false;
                continue;
            }
            $rc = $gearman->returnCode();
            if ($rc === GEARMAN_TIMEOUT || $rc === GEARMAN_IO_WAIT || $rc === GEARMAN_NO_JOBS
                || $rc === GEARMAN_WORK_FAIL || $rc === GEARMAN_WORK_EXCEPTION) {
                $backoffMs = 0;
                continue;
            }
            // Every job server is gone (gearmand restarting): libgearman reconnects on the next
            // work() call; wait a little longer each time so a dead server is not hammered.
            if (!$failing) {
                ($this->log)("job server unreachable, retrying: {$gearman->error()}");
                $failing = true;
            }
            $backoffMs = min(self::BACKOFF_MAX_MS, max(self::BACKOFF_MIN_MS, $backoffMs * 2));
            $this->sleepUnlessStopping($backoffMs);
        }
        ($this->log)('stopped');
        return 0;
    }

    private function connect(): \GearmanWorker
    {
        $gearman = new \GearmanWorker();
        // GRAB_JOB_UNIQ: the handler sees the caller's unique id.
        $gearman->addOptions(GEARMAN_WORKER_GRAB_UNIQ);
        $gearman->setTimeout(self::POLL_MS);
        // Each process names itself, so `gearadmin --workers` tells the processes apart.
        $gearman->setId($this->clientId ?? 'bridge-php-' . getmypid());
        foreach ($this->servers as [$host, $port]) {
            try {
                $gearman->addServer($host, $port);
            } catch (\GearmanException) {
                // pecl gearman throws when it cannot set an option on a server that is down, but it
                // has added the server: libgearman connects once the server is up.
            }
        }
        foreach ($this->dispatcher->methods() as $name => $method) {
            // No timeout argument: it would send CAN_DO_TIMEOUT, which gearmand 1.1.20 breaks.
            $gearman->addFunction($name, $this->onJob(...));
        }
        return $gearman;
    }

    /**
     * The pecl gearman callback. It must never let an exception escape: pecl gearman would rethrow
     * it from work() and end the process. It sends the job's final packet itself and returns null
     * (libgearman sends nothing more for a job that has finished).
     */
    private function onJob(\GearmanJob $job): ?string
    {
        // Hold SIGTERM until the job is done, so it cannot interrupt the handler's sleeps or I/O.
        $blocked = function_exists('pcntl_sigprocmask') && pcntl_sigprocmask(SIG_BLOCK, [SIGTERM, SIGINT]);
        try {
            $this->dispatcher->handle(
                $job->functionName(),
                $job->workload(),
                new GearmanJobSink($job, $this->serverPorts),
                $job->handle(),
                $job->unique(),
            );
        } catch (\Throwable $e) {
            // Sending the final packet itself failed (connection lost): the server re-queues the job.
            ($this->log)(sprintf('%s: could not answer job %s: %s', $job->functionName(), $job->handle(), $e->getMessage()));
        } finally {
            if ($blocked) {
                pcntl_sigprocmask(SIG_UNBLOCK, [SIGTERM, SIGINT]);
            }
        }
        return null;
    }

    private function installSignalHandlers(): void
    {
        if (!function_exists('pcntl_signal')) {
            return;
        }
        pcntl_async_signals(true);
        $stop = function (): void {
            $this->stopping = true;
        };
        pcntl_signal(SIGTERM, $stop);
        pcntl_signal(SIGINT, $stop);
        // A forked child starts with them blocked (see Supervisor); a pending one arrives now.
        pcntl_sigprocmask(SIG_UNBLOCK, [SIGTERM, SIGINT]);
    }

    private function sleepUnlessStopping(int $ms): void
    {
        $until = microtime(true) + $ms / 1000;
        while (!$this->stopping && ($left = $until - microtime(true)) > 0) {
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
