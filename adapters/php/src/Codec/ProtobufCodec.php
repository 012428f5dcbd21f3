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
     * The PHP library accepts field number 0, which protobuf forbids; this walks the top-level
     * fields to refuse it (nested messages are left to the library).
     */
    private static function checkFieldNumbers(string $bytes, string $class): void
    {
        $pos = 0;
        $len = strlen($bytes);
        while ($pos < $len) {
            $tag = self::varint($bytes, $pos, $len);
            if ($tag === null) {
                return;  // truncated: the library reports it
            }
            if ($tag >> 3 === 0) {
                throw new DecodeError("invalid protobuf for {$class}: field number 0");
            }
            switch ($tag & 7) {
                case 0:
                    if (self::varint($bytes, $pos, $len) === null) {
                        return;
                    }
                    break;
                case 1:
                    $pos += 8;
                    break;
                case 2:
                    $n = self::varint($bytes, $pos, $len);
                    if ($n === null || $n < 0) {
                        return;
                    }
                    $pos += $n;
                    break;
                case 5:
                    $pos += 4;
                    break;
                default:
                    return;  // groups and invalid wire types: the library decides
            }
        }
    }

    private static function varint(string $bytes, int &$pos, int $len): ?int
    {
        $value = 0;
        for ($shift = 0; $shift < 64 && $pos < $len; $shift += 7) {
            $b = ord($bytes[$pos++]);
            $value |= ($b & 0x7f) << $shift;
            if ($b < 0x80) {
                return $value;
            }
        }
        return null;
    }
}
