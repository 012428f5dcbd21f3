<?php

declare(strict_types=1);

namespace Bridge\Runtime\Codec;

use Google\Protobuf\Internal\Message;

/**
 * Protocol buffers binary encoding, done by the protobuf library itself.
 */
final class ProtobufCodec implements Codec
{
    public function encode(Message $message): string
    {
        return $message->serializeToString();
    }

    public function decode(string $bytes, string $class): Message
    {
        self::checkFieldNumbers($bytes, $class);
        $message = new $class();
        try {
            $message->mergeFromString($bytes);
        } catch (\Throwable $e) {
            // The PHP library reports truncation, bad wire types and invalid UTF-8 with a mix of
            // exception classes; callers only need to know the bytes were bad.
            throw new DecodeError("invalid protobuf for {$class}: {$e->getMessage()}", 0, $e);
        }
        return $message;
    }

    /**
     * The PHP library accepts field number 0 and a truncated tag at the end of the input, which
     * protobuf forbids; this walks the top-level fields to refuse them (nested messages are left
     * to the library).
     */
    private static function checkFieldNumbers(string $bytes, string $class): void
    {
        $pos = 0;
        $len = strlen($bytes);
        while ($pos < $len) {
            $tag = self::varint($bytes, $pos, $len, $class);
            if ($tag >> 3 === 0) {
                throw new DecodeError("invalid protobuf for {$class}: field number 0");
            }
            $skip = match ($tag & 7) {
                0 => self::varint($bytes, $pos, $len, $class) * 0,
                1 => 8,
                2 => self::varint($bytes, $pos, $len, $class),
                5 => 4,
                3, 4 => null,  // groups: the library decides
                default => throw new DecodeError(sprintf('invalid protobuf for %s: wire type %d', $class, $tag & 7)),
            };
            if ($skip === null) {
                return;
            }
            if ($skip < 0 || $skip > $len - $pos) {
                throw new DecodeError("invalid protobuf for {$class}: truncated");
            }
            $pos += $skip;
        }
    }

    private static function varint(string $bytes, int &$pos, int $len, string $class): int
    {
        $value = 0;
        for ($shift = 0; $shift < 70 && $pos < $len; $shift += 7) {
            $b = ord($bytes[$pos++]);
            $value |= ($b & 0x7f) << $shift;
            if ($b < 0x80) {
                return $value;
            }
        }
        throw new DecodeError("invalid protobuf for {$class}: truncated varint");
    }
}
