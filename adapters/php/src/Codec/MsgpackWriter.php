<?php

declare(strict_types=1);

namespace Bridge\Runtime\Codec;

/**
 * The msgpack forms the wire contract pins down (smallest integers, float 64 only, str vs bin).
 *
 * php-msgpack's msgpack_pack() cannot be used for this: PHP has one string type, so it writes
 * bytes fields as str instead of bin.
 *
 * @internal
 */
final class MsgpackWriter
{
    private const CANONICAL_NAN = "\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00";

    public static function int(int $v): string
    {
        if ($v >= 0) {
            if ($v < 0x80) {
                return chr($v);
            }
            if ($v <= 0xff) {
                return "\xcc" . chr($v);
            }
            if ($v <= 0xffff) {
                return "\xcd" . pack('n', $v);
            }
            if ($v <= 0xffffffff) {
                return "\xce" . pack('N', $v);
            }
            return "\xcf" . pack('J', $v);
        }
        if ($v >= -32) {
            return chr($v & 0xff);
        }
        if ($v >= -0x80) {
            return "\xd0" . chr($v & 0xff);
        }
        if ($v >= -0x8000) {
            return "\xd1" . pack('n', $v & 0xffff);
        }
        if ($v >= -0x80000000) {
            return "\xd2" . pack('N', $v & 0xffffffff);
        }
        return "\xd3" . pack('J', $v);
    }

    /** A 64-bit unsigned value that PHP holds as a (possibly negative) int. */
    public static function uint64(int $v): string
    {
        return $v < 0 ? "\xcf" . pack('J', $v) : self::int($v);
    }

    public static function float64(float $v): string
    {
        return is_nan($v) ? self::CANONICAL_NAN : "\xcb" . pack('E', $v);
    }

    public static function bool(bool $v): string
    {
        return $v ? "\xc3" : "\xc2";
    }

    public static function str(string $s): string
    {
        $n = strlen($s);
        if ($n < 32) {
            return chr(0xa0 | $n) . $s;
        }
        if ($n <= 0xff) {
            return "\xd9" . chr($n) . $s;
        }
        if ($n <= 0xffff) {
            return "\xda" . pack('n', $n) . $s;
        }
        return "\xdb" . pack('N', $n) . $s;
    }

    public static function bin(string $s): string
    {
        $n = strlen($s);
        if ($n <= 0xff) {
            return "\xc4" . chr($n) . $s;
        }
        if ($n <= 0xffff) {
            return "\xc5" . pack('n', $n) . $s;
        }
        return "\xc6" . pack('N', $n) . $s;
    }

    public static function arrayHeader(int $n): string
    {
        if ($n < 16) {
            return chr(0x90 | $n);
        }
        if ($n <= 0xffff) {
            return "\xdc" . pack('n', $n);
        }
        return "\xdd" . pack('N', $n);
    }

    public static function mapHeader(int $n): string
    {
        if ($n < 16) {
            return chr(0x80 | $n);
        }
        if ($n <= 0xffff) {
            return "\xde" . pack('n', $n);
        }
        return "\xdf" . pack('N', $n);
    }
}
