<?php

declare(strict_types=1);

namespace Bridge\Runtime;

/**
 * Runs N copies of a job loop in forked child processes (PHP has no threads): forwards SIGTERM and
 * SIGINT to them, restarts a child that dies on its own, and returns once all have stopped.
 *
 * With a $service, each child gets a channel (a Unix socket pair) to this process, which answers
 * its requests with $service: state every child must share lives here once, in the supervisor
 * (the replay cache of signed jobs: a replayed job must be refused whichever child gets it).
 *
 * @internal
 */
final class Supervisor
{
    private const RESTART_DELAY_MS = 500;
    /** How often the supervisor looks for children that ended while it serves their channels. */
    private const REAP_MS = 100;
    /** How long a child waits for the supervisor's answer before giving up on it. */
    private const ANSWER_TIMEOUT_S = 10;

    /** @var array<int, true> pids of the running children */
    private array $children = [];
    /** @var array<int, resource> the supervisor's end of each child's channel, by pid */
    private array $channels = [];
    private bool $stopping = false;

    /**
     * @param Log $log where its events go
     * @param (\Closure(string): string)|null $service answers a child's request
     */
    public function __construct(
        private readonly int $processes,
        private readonly Log $log,
        private readonly ?\Closure $service = null,
    ) {
    }

    /**
     * @param \Closure(resource|null): int $loop the job loop each child runs, given its channel to
     *        this process (null without a service); its result is the child's exit status
     */
    public function run(\Closure $loop): int
    {
        pcntl_async_signals(true);
        $forward = function (int $signal): void {
            $this->stopping = true;
            foreach (array_keys($this->children) as $pid) {
                posix_kill($pid, SIGTERM);
            }
        };
        // restart_syscalls: false, so that a signal interrupts pcntl_wait() and the handler runs.
        pcntl_signal(SIGTERM, $forward, false);
        pcntl_signal(SIGINT, $forward, false);

        for ($i = 0; $i < $this->processes; $i++) {
            $this->spawn($loop);
        }
        $status = 0;
        while ($this->children !== []) {
            $pid = $this->service === null ? pcntl_wait($childStatus) : $this->serveUntilOneEnds($childStatus);
            if ($pid <= 0) {
                continue;  // interrupted by a signal
            }
            unset($this->children[$pid]);
            if (isset($this->channels[$pid])) {
                fclose($this->channels[$pid]);
                unset($this->channels[$pid]);
            }
            $clean = pcntl_wifexited($childStatus) && pcntl_wexitstatus($childStatus) === 0;
            if ($this->stopping) {
                $status = $clean ? $status : 1;
                continue;
            }
            $this->log->warning(sprintf(
                'worker process %d ended (%s); starting another',
                $pid,
                pcntl_wifsignaled($childStatus)
                    ? 'signal ' . pcntl_wtermsig($childStatus)
                    : 'exit ' . pcntl_wexitstatus($childStatus)
            ));
            usleep(self::RESTART_DELAY_MS * 1000);
            if (!$this->stopping) {
                $this->spawn($loop);
            }
        }
        return $status;
    }

    /** Sends one message on a channel. */
    public static function send(mixed $stream, string $message): bool
    {
        $data = pack('N', strlen($message)) . $message;
        while ($data !== '') {
            $sent = @fwrite($stream, $data);
            if ($sent === false || $sent === 0) {
                return false;
            }
            $data = substr($data, $sent);
        }
        return true;
    }

    /** Reads one message from a channel; null at its end (or a timeout). */
    public static function receive(mixed $stream): ?string
    {
        $head = self::read($stream, 4);
        if ($head === null) {
            return null;
        }
        $length = unpack('N', $head)[1];
        return $length === 0 ? '' : self::read($stream, $length);
    }

    /** A child's request to the supervisor, and its answer. */
    public static function ask(mixed $channel, string $request): string
    {
        if (!self::send($channel, $request) || ($answer = self::receive($channel)) === null) {
            throw new \RuntimeException('the worker supervisor process did not answer (has it ended?)');
        }
        return $answer;
    }

    private static function read(mixed $stream, int $length): ?string
    {
        $data = '';
        while (strlen($data) < $length) {
            $chunk = @fread($stream, $length - strlen($data));
            if ($chunk === false || $chunk === '') {
                return null;  // the end, or a timeout (stream_set_timeout)
            }
            $data .= $chunk;
        }
        return $data;
    }

    /**
     * Answers the children's requests until one of them ends: returns its pid (0 when a signal
     * interrupted the wait), with its wait status in $childStatus.
     */
    private function serveUntilOneEnds(mixed &$childStatus): int
    {
        while (true) {
            $pid = pcntl_waitpid(-1, $childStatus, WNOHANG);
            if ($pid !== 0) {
                return $pid;
            }
            $ready = array_values($this->channels);
            $none = null;
            if ($ready === []) {
                usleep(self::REAP_MS * 1000);
                continue;
            }
            // A signal interrupts the wait: the handler has run, return to the loop.
            if (@stream_select($ready, $none, $none, 0, self::REAP_MS * 1000) === false) {
                return 0;
            }
            foreach ($ready as $channel) {
                $request = self::receive($channel);
                if ($request === null) {
                    // The child closed it (it is ending): stop watching, waitpid reaps it.
                    $this->channels = array_filter($this->channels, static fn ($c): bool => $c !== $channel);
                    fclose($channel);
                    continue;
                }
                self::send($channel, ($this->service)($request));
            }
        }
    }

    /** @param \Closure(resource|null): int $loop */
    private function spawn(\Closure $loop): void
    {
        $pair = null;
        if ($this->service !== null) {
            $pair = stream_socket_pair(STREAM_PF_UNIX, STREAM_SOCK_STREAM, STREAM_IPPROTO_IP);
            if ($pair === false) {
                throw new \RuntimeException('stream_socket_pair failed');
            }
        }
        // Hold SIGTERM across the fork: the child unblocks it once its own stop handler is set
        // (Worker::installSignalHandlers), so a stop sent right after the fork is not lost.
        pcntl_sigprocmask(SIG_BLOCK, [SIGTERM, SIGINT]);
        $pid = pcntl_fork();
        if ($pid !== 0) {
            pcntl_sigprocmask(SIG_UNBLOCK, [SIGTERM, SIGINT]);
        }
        if ($pid === -1) {
            throw new \RuntimeException('pcntl_fork failed');
        }
        if ($pid === 0) {
            // The child: drop the parent's signal forwarding; the loop installs its own handlers.
            pcntl_signal(SIGTERM, SIG_DFL);
            pcntl_signal(SIGINT, SIG_DFL);
            foreach ($this->channels as $sibling) {
                fclose($sibling);
            }
            $this->channels = [];
            $channel = null;
            if ($pair !== null) {
                fclose($pair[0]);
                $channel = $pair[1];
                stream_set_timeout($channel, self::ANSWER_TIMEOUT_S);
            }
            $status = 1;
            try {
                $status = $loop($channel);
            } catch (\Throwable $e) {
                $this->log->error('worker process failed: ' . $e->getMessage());
            }
            exit($status);
        }
        $this->children[$pid] = true;
        if ($pair !== null) {
            fclose($pair[1]);
            $this->channels[$pid] = $pair[0];
        }
    }
}
