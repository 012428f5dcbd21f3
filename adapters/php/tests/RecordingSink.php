<?php

declare(strict_types=1);

namespace Bridge\Runtime\Tests;

use Bridge\Runtime\JobSink;
use Bridge\V1\Error;
use PHPUnit\Framework\TestCase;

/** Keeps every packet a job sends, in order. */
class RecordingSink implements JobSink
{
    /** @var list<array{string, mixed}> */
    public array $packets = [];

    public function data(string $payload): void
    {
        $this->packets[] = ['data', $payload];
    }

    public function warning(string $text): void
    {
        $this->packets[] = ['warning', $text];
    }

    public function status(int $numerator, int $denominator): void
    {
        $this->packets[] = ['status', [$numerator, $denominator]];
    }

    public function complete(string $payload): void
    {
        $this->packets[] = ['complete', $payload];
    }

    public function exception(string $payload): void
    {
        $this->packets[] = ['exception', $payload];
    }

    public function fail(): void
    {
        $this->packets[] = ['fail', null];
    }

    /** The body of packet $i, a reply frame, after its 23-byte header. */
    public function body(int $i): string
    {
        return $this->frame($i)['body'];
    }

    /**
     * Packet $i read as a reply frame.
     *
     * @return array{kind: int, encoding: int, tag: int, attempt: string, sequence: int, body: string}
     */
    public function frame(int $i): array
    {
        $payload = $this->packets[$i][1];
        TestCase::assertIsString($payload);
        TestCase::assertGreaterThanOrEqual(23, strlen($payload), 'a reply frame has a 23-byte header');
        $header = unpack('Cmagic/Ckind/Cencoding/Ntag', $payload);
        TestCase::assertSame(0xB7, $header['magic']);
        return [
            'kind' => $header['kind'],
            'encoding' => $header['encoding'],
            'tag' => $header['tag'],
            'attempt' => substr($payload, 7, 8),
            'sequence' => unpack('J', $payload, 15)[1],
            'body' => substr($payload, 23),
        ];
    }

    public function error(): Error
    {
        TestCase::assertCount(1, $this->packets, 'an exception ends the job alone');
        [$kind, $payload] = $this->packets[0];
        TestCase::assertSame('exception', $kind);
        $error = new Error();
        $error->mergeFromString($payload);
        return $error;
    }
}
