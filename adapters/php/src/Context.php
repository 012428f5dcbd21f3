<?php

declare(strict_types=1);

namespace Bridge\Runtime;

use Bridge\V1\Encoding;

/**
 * What a handler knows about the call it serves, and how it reports progress while it runs.
 */
final class Context
{
    private readonly ?string $traceparent;

    /**
     * @param array<string, string> $metadata
     */
    public function __construct(
        private readonly JobSink $sink,
        private readonly string $functionName,
        private readonly array $metadata = [],
        private readonly int $deadlineMs = 0,
        private readonly int $encoding = Encoding::PROTOBUF,
        private readonly string $handle = '',
        private readonly string $unique = '',
    ) {
        $this->traceparent = TraceContext::traceparentOf($metadata);
    }

    /**
     * The caller's W3C traceparent (metadata key `traceparent`), when it is a valid version-00 one
     * (`00-<trace id>-<parent span id>-<flags>`); null otherwise. The metadata, passed on unchanged
     * to a call the handler makes, keeps the trace.
     */
    public function traceparent(): ?string
    {
        return $this->traceparent;
    }

    /** The trace id (32 lower-case hex digits) of traceparent(), or null. */
    public function traceId(): ?string
    {
        return $this->traceparent === null ? null : TraceContext::traceIdOf($this->traceparent);
    }

    /** The caller's span id (16 hex digits) of traceparent(), or null. */
    public function parentSpanId(): ?string
    {
        return $this->traceparent === null ? null : TraceContext::spanIdOf($this->traceparent);
    }

    /** The W3C tracestate that came with a valid traceparent (metadata key `tracestate`), or null. */
    public function tracestate(): ?string
    {
        $state = $this->metadata['tracestate'] ?? null;
        return $this->traceparent !== null && is_string($state) ? $state : null;
    }

    /** The Gearman function being served, e.g. "billing.v1.Invoices.Render". */
    public function functionName(): string
    {
        return $this->functionName;
    }

    /**
     * The caller's metadata. PHP turns numeric-string keys of an array into ints; cast with
     * (string) when that matters.
     *
     * @return array<string, string>
     */
    public function metadata(): array
    {
        return $this->metadata;
    }

    /** Absolute deadline in Unix epoch milliseconds, 0 when the caller gave none. */
    public function deadlineMs(): int
    {
        return $this->deadlineMs;
    }

    /** Milliseconds left before the deadline (negative once it passed), null without a deadline. */
    public function remainingMs(): ?int
    {
        return $this->deadlineMs === 0 ? null : $this->deadlineMs - self::nowMs();
    }

    /** True once the caller has stopped waiting: finish early or throw. */
    public function isExpired(): bool
    {
        return $this->deadlineMs !== 0 && self::nowMs() >= $this->deadlineMs;
    }

    /** How the request and reply are encoded (a Bridge\V1\Encoding constant). */
    public function encoding(): int
    {
        return $this->encoding;
    }

    /** The job server's handle for this job. */
    public function handle(): string
    {
        return $this->handle;
    }

    /** The caller's unique id (empty unless the caller gave one). */
    public function unique(): string
    {
        return $this->unique;
    }

    /** Sends WORK_STATUS: the caller's on_status callback sees (numerator, denominator). */
    public function progress(int $numerator, int $denominator): void
    {
        $this->sink->status($numerator, $denominator);
    }

    /** Sends WORK_WARNING: UTF-8 text the caller receives without the call failing. */
    public function warning(string $text): void
    {
        $this->sink->warning($text);
    }

    /** Ends the job with a bare WORK_FAIL. */
    public function fail(): never
    {
        throw new JobFailed("{$this->functionName}: the handler gave up");
    }

    public static function nowMs(): int
    {
        return (int) floor(microtime(true) * 1000);
    }
}
