<?php

declare(strict_types=1);

namespace Bridge\Runtime;

/**
 * Sends a job's packets through pecl gearman's GearmanJob.
 *
 * @internal
 */
final class GearmanJobSink implements JobSink
{
    /** Replies larger than this first get the connection's send buffer widened (SendBuffers). */
    private const LARGE_BYTES = 64 * 1024;

    private bool $lost = false;

    /** @param list<int> $serverPorts */
    public function __construct(
        private readonly \GearmanJob $job,
        private readonly array $serverPorts,
        private readonly ?SendWatchdog $watchdog = null,
    ) {
    }

    public function data(string $payload): void
    {
        $this->send(strlen($payload), fn (): bool => $this->job->sendData($payload));
    }

    public function warning(string $text): void
    {
        $this->send(strlen($text), fn (): bool => $this->job->sendWarning($text));
    }

    public function status(int $numerator, int $denominator): void
    {
        $this->send(32, fn (): bool => $this->job->sendStatus($numerator, $denominator));
    }

    public function complete(string $payload): void
    {
        $this->send(strlen($payload), fn (): bool => $this->job->sendComplete($payload));
    }

    public function exception(string $payload): void
    {
        $this->send(strlen($payload), fn (): bool => $this->job->sendException($payload));
    }

    public function fail(): void
    {
        $this->send(0, fn (): bool => $this->job->sendFail());
    }

    /** Whether a packet could not be sent (the connection is gone: nothing more can arrive). */
    public function lost(): bool
    {
        return $this->lost;
    }

    /** @param \Closure(): bool $send */
    private function send(int $bytes, \Closure $send): void
    {
        if ($this->lost) {
            throw new ConnectionLost('the connection to the job server is gone');
        }
        if ($bytes > self::LARGE_BYTES) {
            SendBuffers::widen($this->serverPorts);
        }
        $this->watchdog?->beforeSend($bytes);
        // pecl gearman warns and returns false when libgearman gives up (connection reset or lost).
        if (@$send() === false) {
            $this->lost = true;
            throw new ConnectionLost($this->job->returnCode() === GEARMAN_LOST_CONNECTION
                ? 'the connection to the job server was lost'
                : 'sending to the job server failed (' . $this->job->returnCode() . ')');
        }
    }
}
