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

    /** @param list<int> $serverPorts */
    public function __construct(private readonly \GearmanJob $job, private readonly array $serverPorts)
    {
    }

    public function data(string $payload): void
    {
        if (strlen($payload) > self::LARGE_BYTES) {
            SendBuffers::widen($this->serverPorts);
        }
        $this->job->sendData($payload);
    }

    public function warning(string $text): void
    {
        $this->job->sendWarning($text);
    }

    public function status(int $numerator, int $denominator): void
    {
        $this->job->sendStatus($numerator, $denominator);
    }

    public function complete(string $payload): void
    {
        if (strlen($payload) > self::LARGE_BYTES) {
            SendBuffers::widen($this->serverPorts);
        }
        $this->job->sendComplete($payload);
    }

    public function exception(string $payload): void
    {
        $this->job->sendException($payload);
    }

    public function fail(): void
    {
        $this->job->sendFail();
    }
}
