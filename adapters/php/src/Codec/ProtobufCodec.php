<?php

declare(strict_types=1);

namespace Bridge\Runtime\Codec;

use Google\Protobuf\Internal\GPBType;
use Google\Protobuf\Internal\Message;

/**
 * Protocol buffers binary encoding. Decoding is the protobuf library's; encoding walks the
 * descriptors (FieldPlan) itself, because the pure-PHP library copies every output byte in a PHP
 * loop (about 9 µs for a 100-byte message, and seconds for 64 MiB). The output is what the C++
 * and upb runtimes write: field-number order, packed repeated scalars, map entries with key and
 * value always written (sorted by key, as deterministic serialization does).
 */
final class ProtobufCodec implements Codec
{
    private const VARINT = 0;
    private const FIXED64 = 1;
    private const LENGTH_DELIMITED = 2;
    private const FIXED32 = 5;

    /** @var \Closure(Message): string reads the library's private store of unknown fields */
    private readonly \Closure $unknownFields;

    public function __construct()
    {
        $this->unknownFields = \Closure::bind(static fn (Message $m): string => $m->unknown ?? '', null, Message::class);
    }

    public function encode(Message $message): string
    {
        return $this->encodeMessage($message);
    }

    private function encodeMessage(Message $message): string
    {
        $out = '';
        foreach (FieldPlan::forClass($message::class) as $field) {
            switch ($field->shape) {
                case FieldPlan::SINGULAR:
                    $value = $message->{$field->getter}();
                    if ($field->type === GPBType::DOUBLE || $field->type === GPBType::FLOAT) {
                        if ($value === 0.0 && fdiv(1.0, $value) > 0) {
                            continue 2;
                        }
                    } elseif ($value === 0 || $value === '' || $value === false) {
                        continue 2;
                    }
                    $out .= $this->field($field->number, $field->type, $value);
                    break;
                case FieldPlan::PRESENCE:
                    if ($message->{$field->hasser}()) {
                        $out .= $this->field($field->number, $field->type, $message->{$field->getter}());
                    }
                    break;
                case FieldPlan::REPEATED:
                    $values = $message->{$field->getter}();
                    if (count($values) === 0) {
                        break;
                    }
                    if ($field->type === GPBType::STRING || $field->type === GPBType::BYTES
                        || $field->type === GPBType::MESSAGE) {
                        foreach ($values as $item) {
                            $out .= $this->field($field->number, $field->type, $item);
                        }
                    } else {
                        $packed = '';
                        foreach ($values as $item) {
                            $packed .= $this->scalar($field->type, $item);
                        }
                        $out .= self::varint($field->number << 3 | self::LENGTH_DELIMITED)
                            . self::varint(strlen($packed)) . $packed;
                    }
                    break;
                default:
                    $out .= $this->mapEntries($field, $message->{$field->getter}());
            }
        }
        return $out . ($this->unknownFields)($message);
    }

    /** @param iterable<mixed, mixed> $entries */
    private function mapEntries(FieldPlan $field, iterable $entries): string
    {
        $byKey = [];
        foreach ($entries as $key => $value) {
            $byKey[] = [$key, $value];
        }
        if ($field->keyType === GPBType::STRING) {
            usort($byKey, static fn (array $a, array $b): int => strcmp((string) $a[0], (string) $b[0]));
        } else {
            usort($byKey, static fn (array $a, array $b): int => $a[0] <=> $b[0]);
        }
        $tag = self::varint($field->number << 3 | self::LENGTH_DELIMITED);
        $out = '';
        foreach ($byKey as [$key, $value]) {
            if ($field->keyType === GPBType::STRING) {
                $key = (string) $key;
            }
            $entry = $this->field(1, $field->keyType, $key) . $this->field(2, $field->valueType, $value);
            $out .= $tag . self::varint(strlen($entry)) . $entry;
        }
        return $out;
    }

    private function field(int $number, int $type, mixed $value): string
    {
        switch ($type) {
            case GPBType::STRING:
            case GPBType::BYTES:
                return self::varint($number << 3 | self::LENGTH_DELIMITED) . self::varint(strlen($value)) . $value;
            case GPBType::MESSAGE:
                $bytes = $this->encodeMessage($value);
                return self::varint($number << 3 | self::LENGTH_DELIMITED) . self::varint(strlen($bytes)) . $bytes;
            case GPBType::DOUBLE:
            case GPBType::FIXED64:
            case GPBType::SFIXED64:
                return self::varint($number << 3 | self::FIXED64) . $this->scalar($type, $value);
            case GPBType::FLOAT:
            case GPBType::FIXED32:
            case GPBType::SFIXED32:
                return self::varint($number << 3 | self::FIXED32) . $this->scalar($type, $value);
            default:
                return self::varint($number << 3 | self::VARINT) . $this->scalar($type, $value);
        }
    }

    /** A scalar's bytes without a tag (what a packed repeated field concatenates). */
    private function scalar(int $type, mixed $value): string
    {
        return match ($type) {
            GPBType::DOUBLE => pack('e', $value),
            GPBType::FLOAT => pack('g', $value),
            GPBType::FIXED64, GPBType::SFIXED64 => pack('P', $value),
            GPBType::FIXED32, GPBType::SFIXED32 => pack('V', $value & 0xffffffff),
            GPBType::BOOL => $value ? "\x01" : "\x00",
            GPBType::UINT32 => self::varint($value & 0xffffffff),
            GPBType::SINT32 => self::varint((($value << 1) ^ ($value >> 31)) & 0xffffffff),
            GPBType::SINT64 => self::varint(($value << 1) ^ ($value >> 63)),
            // int32 and enums: negative values are sign-extended to ten bytes, as protobuf does.
            default => self::varint($value),
        };
    }

    private static function varint(int $v): string
    {
        if ($v >= 0 && $v < 0x80) {
            return chr($v);
        }
        $out = '';
        while (($v & ~0x7f) !== 0) {
            $out .= chr(($v & 0x7f) | 0x80);
            $v = ($v >> 7) & 0x01ffffffffffffff;  // a logical shift: PHP's >> keeps the sign
        }
        return $out . chr($v);
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
            $tag = self::readVarint($bytes, $pos, $len, $class);
            if ($tag >> 3 === 0) {
                throw new DecodeError("invalid protobuf for {$class}: field number 0");
            }
            $skip = match ($tag & 7) {
                0 => self::readVarint($bytes, $pos, $len, $class) * 0,
                1 => 8,
                2 => self::readVarint($bytes, $pos, $len, $class),
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

    private static function readVarint(string $bytes, int &$pos, int $len, string $class): int
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
