<?php

declare(strict_types=1);

namespace Bridge\Runtime;

/**
 * Runs N copies of a job loop in forked child processes (PHP has no threads): forwards SIGTERM and
 * SIGINT to them, restarts a child that dies on its own, and returns once all have stopped.
 *
 * @internal
 */
final class Supervisor
{
    private const RESTART_DELAY_MS = 500;

    /** @var array<int, true> pids of the running children */
    private array $children = [];
    private bool $stopping = false;

    /** @param \Closure(string): void $log */
    public function __construct(private readonly int $processes, private readonly \Closure $log)
    {
    }

    /** @param \Closure(): int $loop the job loop each child runs; its result is the child's exit status */
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
            $pid = pcntl_wait($childStatus);
            if ($pid <= 0) {
                continue;  // interrupted by a signal
            }
            unset($this->children[$pid]);
            $clean = pcntl_wifexited($childStatus) && pcntl_wexitstatus($childStatus) === 0;
            if ($this->stopping) {
                $status = $clean ? $status : 1;
                continue;
            }
            ($this->log)(sprintf(
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

    /** @param \Closure(): int $loop */
    private function spawn(\Closure $loop): void
    {
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
            $status = 1;
            try {
                $status = $loop();
            } catch (\Throwable $e) {
                ($this->log)('worker process failed: ' . $e->getMessage());
            }
            exit($status);
        }
        $this->children[$pid] = true;
    }
}
