<?php

declare(strict_types=1);

namespace Bridge\Runtime\Security;

/**
 * The exact bytes a request and a reply MAC cover (wire contract, sections 9.1 and 9.3), with
 * PHP's hash_hmac (HMAC-SHA256) and hash_equals (constant-time comparison).
 */
final class Signing
{
    public const MAC_SIZE = 32;
    public const NONCE_SIZE = 16;
    /** Reply packets a MAC covers. */
    public const DATA = 1;
    public const COMPLETE = 2;
    public const EXCEPTION = 3;

    private const REQUEST_DOMAIN = "bridge.v1.request\0";
    private const REPLY_DOMAIN = "bridge.v1.reply\0";

    /**
     * The bytes a request MAC covers (section 9.1). Metadata keys are sorted by their UTF-8 bytes;
     * an int key (PHP's reading of a numeric-string array key) counts as its digits.
     *
     * @param array<array-key, string> $metadata
     */
    public static function requestInput(
        string $function,
        string $keyId,
        string $nonce,
        int $version,
        int $deadlineMs,
        int $encoding,
        array $metadata,
        string $body,
    ): string {
        $entries = [];
        foreach ($metadata as $key => $value) {
            $entries[] = [(string) $key, (string) $value];
        }
        usort($entries, static fn (array $a, array $b): int => strcmp($a[0], $b[0]));
        $input = self::REQUEST_DOMAIN . self::str($function) . self::str($keyId) . self::str($nonce)
            // u32 version, i64 deadline (two's complement), u32 encoding, u32 count
            . pack('NJNN', $version & 0xffffffff, $deadlineMs, $encoding & 0xffffffff, count($entries));
        foreach ($entries as [$key, $value]) {
            $input .= self::str($key) . self::str($value);
        }
        return $input . pack('J', strlen($body)) . $body;
    }

    /** The bytes a reply MAC covers (section 9.3); $packet is DATA, COMPLETE or EXCEPTION. */
    public static function replyInput(string $function, string $keyId, string $nonce, int $packet, string $payload): string
    {
        return self::REPLY_DOMAIN . self::str($function) . self::str($keyId) . self::str($nonce)
            . pack('CJ', $packet, strlen($payload)) . $payload;
    }

    public static function hmac(#[\SensitiveParameter] string $key, string $data): string
    {
        return hash_hmac('sha256', $data, $key, true);
    }

    /** The 32-byte MAC a worker appends to a reply packet's payload. */
    public static function replyMac(#[\SensitiveParameter] string $key, string $function, string $keyId, string $nonce, int $packet, string $payload): string
    {
        return self::hmac($key, self::replyInput($function, $keyId, $nonce, $packet, $payload));
    }

    /** A signed reply's payload when its MAC is right (constant-time check), else null. */
    public static function splitSigned(#[\SensitiveParameter] string $key, string $function, string $keyId, string $nonce, int $packet, string $signed): ?string
    {
        if (strlen($signed) < self::MAC_SIZE) {
            return null;
        }
        $payload = substr($signed, 0, -self::MAC_SIZE);
        $expected = self::replyMac($key, $function, $keyId, $nonce, $packet, $payload);
        return hash_equals($expected, substr($signed, -self::MAC_SIZE)) ? $payload : null;
    }

    private static function str(string $bytes): string
    {
        return pack('N', strlen($bytes)) . $bytes;
    }
}
