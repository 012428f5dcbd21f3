<?php

declare(strict_types=1);

namespace Bridge\Runtime;

/**
 * W3C Trace Context as it travels in a job's metadata (docs/workers.md): the keys `traceparent`
 * and `tracestate`, exactly as in HTTP headers. Only a valid version-00 traceparent counts; any
 * other value is ignored, never an error.
 */
final class TraceContext
{
    private const PATTERN = '/\A00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}\z/';

    /** The valid traceparent of $metadata, else null. @param array<array-key, string> $metadata */
    public static function traceparentOf(array $metadata): ?string
    {
        $value = $metadata['traceparent'] ?? null;
        return is_string($value) && self::isValid($value) ? $value : null;
    }

    /** Whether $traceparent is `00-<32 hex, not all zero>-<16 hex, not all zero>-<2 hex>` (lower case). */
    public static function isValid(string $traceparent): bool
    {
        return preg_match(self::PATTERN, $traceparent, $m) === 1
            && $m[1] !== str_repeat('0', 32)
            && $m[2] !== str_repeat('0', 16);
    }

    /** The trace id (32 hex digits) of a valid traceparent. */
    public static function traceIdOf(string $traceparent): string
    {
        return substr($traceparent, 3, 32);
    }

    /** The parent span id (16 hex digits) of a valid traceparent. */
    public static function spanIdOf(string $traceparent): string
    {
        return substr($traceparent, 36, 16);
    }
}
