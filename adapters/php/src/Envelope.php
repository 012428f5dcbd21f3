<?php

declare(strict_types=1);

namespace Bridge\Runtime;

use Bridge\Runtime\Codec\DecodeError;

/**
 * A job payload read as a bridge.v1.Request.
 *
 * Read by hand rather than through the generated Bridge\V1\Request: the envelope is parsed once per
 * job, and the pure-PHP protobuf library takes several times longer for the same bytes. The test
 * suite checks this reader against the library and the shared vectors.
 */
final class Envelope
{
    /**
     * @param array<string, string> $metadata
     */
    private function __construct(
        public readonly int $version,
        public readonly int $deadlineMs,
        public readonly array $metadata,
        public readonly int $encoding,
        public readonly string $body,
        public readonly string $keyId = '',
        public readonly string $nonce = '',
        public readonly string $mac = '',
    ) {
    }

    /** @throws DecodeError when $payload is not a valid protobuf bridge.v1.Request */
    public static function parse(string $payload): self
    {
        $version = 0;
        $deadlineMs = 0;
        $metadata = [];
        $encoding = 0;
        $body = '';
        $keyId = '';
        $nonce = '';
        $mac = '';
        $pos = 0;
        $len = strlen($payload);
        while ($pos < $len) {
            $tag = self::varint($payload, $pos, $len);
            $field = $tag >> 3;
            $wireType = $tag & 7;
            if ($field === 0) {
                throw new DecodeError('invalid protobuf for bridge.v1.Request: field number 0');
            }
            if ($wireType === 0) {
                $value = self::varint($payload, $pos, $len);
                match ($field) {
                    1 => $version = $value & 0xffffffff,
                    2 => $deadlineMs = $value,
                    // An enum is an int32: keep the low 32 bits, sign-extended.
                    4 => $encoding = ($value & 0xffffffff) - (($value & 0x80000000) << 1),
                    default => null,
                };
            } elseif ($wireType === 2) {
                $n = self::varint($payload, $pos, $len);
                if ($n < 0 || $n > $len - $pos) {
                    throw new DecodeError('invalid protobuf for bridge.v1.Request: length past the end');
                }
                if ($field === 5) {
                    $body = substr($payload, $pos, $n);
                } elseif ($field === 6) {
                    $keyId = substr($payload, $pos, $n);
                    if (!preg_match('//u', $keyId)) {
                        throw new DecodeError('invalid protobuf for bridge.v1.Request: key_id is not valid UTF-8');
                    }
                } elseif ($field === 7) {
                    $nonce = substr($payload, $pos, $n);
                } elseif ($field === 8) {
                    $mac = substr($payload, $pos, $n);
                } elseif ($field === 3) {
                    [$key, $value] = self::mapEntry(substr($payload, $pos, $n));
                    $metadata[$key] = $value;
                }
                $pos += $n;
            } elseif ($wireType === 1 || $wireType === 5) {
                $pos += $wireType === 1 ? 8 : 4;
                if ($pos > $len) {
                    throw new DecodeError('invalid protobuf for bridge.v1.Request: truncated');
                }
            } else {
                throw new DecodeError("invalid protobuf for bridge.v1.Request: wire type {$wireType}");
            }
        }
        return new self($version, $deadlineMs, $metadata, $encoding, $body, $keyId, $nonce, $mac);
    }

    /** @return array{string, string} */
    private static function mapEntry(string $entry): array
    {
        $key = '';
        $value = '';
        $pos = 0;
        $len = strlen($entry);
        while ($pos < $len) {
            $tag = self::varint($entry, $pos, $len);
            $wireType = $tag & 7;
            if ($tag >> 3 === 0) {
                throw new DecodeError('invalid protobuf for bridge.v1.Request: field number 0');
            }
            if ($wireType === 0) {
                self::varint($entry, $pos, $len);
                continue;
            }
            if ($wireType === 1 || $wireType === 5) {
                $pos += $wireType === 1 ? 8 : 4;
                if ($pos > $len) {
                    throw new DecodeError('invalid protobuf for bridge.v1.Request: truncated');
                }
                continue;
            }
            if ($wireType !== 2) {
                throw new DecodeError("invalid protobuf for bridge.v1.Request: wire type {$wireType}");
            }
            $n = self::varint($entry, $pos, $len);
            if ($n < 0 || $n > $len - $pos) {
                throw new DecodeError('invalid protobuf for bridge.v1.Request: length past the end');
            }
            $text = substr($entry, $pos, $n);
            $pos += $n;
            if ($tag >> 3 === 1 || $tag >> 3 === 2) {
                if (!preg_match('//u', $text)) {
                    throw new DecodeError('invalid protobuf for bridge.v1.Request: metadata is not valid UTF-8');
                }
                $tag >> 3 === 1 ? $key = $text : $value = $text;
            }
        }
        return [$key, $value];
    }

    private static function varint(string $bytes, int &$pos, int $len): int
    {
        $b = ord($bytes[$pos] ?? "\x80");
        if ($b < 0x80 && $pos < $len) {
            $pos++;
            return $b;  // the common case: one byte
        }
        $value = 0;
        for ($shift = 0; $shift < 70 && $pos < $len; $shift += 7) {
            $b = ord($bytes[$pos++]);
            $value |= ($b & 0x7f) << $shift;
            if ($b < 0x80) {
                return $value;
            }
        }
        throw new DecodeError('invalid protobuf for bridge.v1.Request: truncated varint');
    }
}
