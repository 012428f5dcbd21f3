<?php

declare(strict_types=1);

namespace Bridge\Runtime;

/**
 * Where the packets of one job go. GearmanJobSink sends them to the job server; tests record them.
 */
interface JobSink
{
    public function data(string $payload): void;

    public function warning(string $text): void;

    public function status(int $numerator, int $denominator): void;

    public function complete(string $payload): void;

    /** $payload is a protobuf-encoded bridge.v1.Error. */
    public function exception(string $payload): void;

    public function fail(): void;
}
