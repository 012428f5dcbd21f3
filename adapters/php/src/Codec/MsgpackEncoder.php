<?php

declare(strict_types=1);

namespace Bridge\Runtime\Codec;

use Google\Protobuf\Internal\GPBType;
use Google\Protobuf\Internal\Message;

/**
 * The encoding half of MsgpackCodec: a message to the bytes of the msgpack mapping (wire contract,
 * section 5), byte-identical in every language.
 *
 * @internal
 */
final class MsgpackEncoder
{
    public static function encode(Message $message): string
    {
        $out = '';
        $count = 0;
        foreach (FieldPlan::forClass($message::class) as $field) {
            switch ($field->shape) {
                case FieldPlan::SINGULAR:
                    $value = $message->{$field->getter}();
                    if ($field->type === GPBType::DOUBLE || $field->type === GPBType::FLOAT) {
                        // -0.0 has a bit pattern other than +0.0, so it is written.
                        if ($value === 0.0 && fdiv(1.0, $value) > 0) {
                            continue 2;
                        }
                    } elseif ($value === 0 || $value === '' || $value === false) {
                        continue 2;
                    }
                    $out .= $field->packedName . self::encodeScalar($field->type, $value);
                    break;
                case FieldPlan::PRESENCE:
                    if (!$message->{$field->hasser}()) {
                        continue 2;
                    }
                    $value = $message->{$field->getter}();
                    $out .= $field->packedName . ($field->type === GPBType::MESSAGE
                        ? self::encode($value)
                        : self::encodeScalar($field->type, $value));
                    break;
                case FieldPlan::REPEATED:
                    $values = $message->{$field->getter}();
                    $n = count($values);
                    if ($n === 0) {
                        continue 2;
                    }
                    $out .= $field->packedName . MsgpackWriter::arrayHeader($n);
                    if ($field->type === GPBType::MESSAGE) {
                        foreach ($values as $item) {
                            $out .= self::encode($item);
                        }
                    } else {
                        foreach ($values as $item) {
                            $out .= self::encodeScalar($field->type, $item);
                        }
                    }
                    break;
                default:
                    $entries = $message->{$field->getter}();
                    if (count($entries) === 0) {
                        continue 2;
                    }
                    $out .= $field->packedName . self::encodeMap($field, $entries);
            }
            $count++;
        }
        return MsgpackWriter::mapHeader($count) . $out;
    }

    /** @param iterable<mixed, mixed> $entries */
    private static function encodeMap(FieldPlan $field, iterable $entries): string
    {
        $keys = [];
        $values = [];
        foreach ($entries as $key => $value) {
            $key = self::normalizeKey($field->keyType, $key);
            $keys[] = $key;
            $values[] = $value;
        }
        // Entries in key order: strings by their bytes, integers by value (unsigned 64-bit keys,
        // held by PHP as negative ints above PHP_INT_MAX, are shifted into signed order first).
        $order = array_keys($keys);
        if ($field->keyType === GPBType::STRING) {
            usort($order, static fn (int $a, int $b): int => strcmp($keys[$a], $keys[$b]));
        } elseif ($field->keyType === GPBType::UINT64 || $field->keyType === GPBType::FIXED64) {
            usort($order, static fn (int $a, int $b): int
                => ($keys[$a] ^ PHP_INT_MIN) <=> ($keys[$b] ^ PHP_INT_MIN));
        } else {
            usort($order, static fn (int $a, int $b): int => $keys[$a] <=> $keys[$b]);
        }
        $out = MsgpackWriter::mapHeader(count($order));
        foreach ($order as $i) {
            $out .= self::encodeScalar($field->keyType, $keys[$i]);
            $out .= $field->valueType === GPBType::MESSAGE
                ? self::encode($values[$i])
                : self::encodeScalar($field->valueType, $values[$i]);
        }
        return $out;
    }

    private static function normalizeKey(int $type, mixed $key): string|int|bool
    {
        return match ($type) {
            GPBType::STRING => (string) $key,
            GPBType::BOOL => (bool) $key,
            GPBType::UINT32, GPBType::FIXED32 => (int) $key & 0xffffffff,
            default => (int) $key,
        };
    }

    private static function encodeScalar(int $type, mixed $value): string
    {
        switch ($type) {
            case GPBType::STRING:
                return MsgpackWriter::str($value);
            case GPBType::BYTES:
                return MsgpackWriter::bin($value);
            case GPBType::DOUBLE:
            case GPBType::FLOAT:
                return MsgpackWriter::float64((float) $value);
            case GPBType::BOOL:
                return MsgpackWriter::bool($value);
            case GPBType::UINT32:
            case GPBType::FIXED32:
                // The PHP library sign-extends 32-bit unsigned values above 2^31.
                return MsgpackWriter::int($value & 0xffffffff);
            case GPBType::UINT64:
            case GPBType::FIXED64:
                return MsgpackWriter::uint64($value);
            default:
                return MsgpackWriter::int($value);
        }
    }
}
