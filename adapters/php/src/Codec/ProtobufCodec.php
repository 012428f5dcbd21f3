<?php

declare(strict_types=1);

namespace Bridge\Runtime\Codec;

use Google\Protobuf\Internal\GPBType;
use Google\Protobuf\Internal\Message;

/**
 * Protocol buffers binary encoding, walking the descriptors (FieldPlan) rather than using the
 * pure-PHP library's own serializer and parser: those copy bytes one at a time through a stream
 * object (about 9 µs to encode a 100-byte message, seconds for 64 MiB), and the parser accepts
 * field number 0 and a truncated last tag. The output is what the C++ and upb runtimes write:
 * field-number order, packed repeated scalars, map entries with key and value always written
 * (sorted by key, as deterministic serialization does). Unknown fields are kept, in the library's
 * own store, and written back.
 */
final class ProtobufCodec implements Codec
{
    private const VARINT = 0;
    private const FIXED64 = 1;
    private const LENGTH_DELIMITED = 2;
    private const START_GROUP = 3;
    private const END_GROUP = 4;
    private const FIXED32 = 5;
    /**
     * Deeper nesting than this is refused (protobuf's own default limit). Groups count as levels
     * too: a top-level message (depth 0) holds at most 100 groups nested one in another.
     */
    private const MAX_DEPTH = 100;
    /** Field numbers run from 1 to 2^29 - 1; a tag naming another is malformed. */
    private const MAX_FIELD_NUMBER = (1 << 29) - 1;

    /** The wire type each field type travels with. */
    private const WIRE_TYPES = [
        GPBType::DOUBLE => self::FIXED64, GPBType::FLOAT => self::FIXED32,
        GPBType::INT64 => self::VARINT, GPBType::UINT64 => self::VARINT, GPBType::INT32 => self::VARINT,
        GPBType::FIXED64 => self::FIXED64, GPBType::FIXED32 => self::FIXED32, GPBType::BOOL => self::VARINT,
        GPBType::STRING => self::LENGTH_DELIMITED, GPBType::GROUP => self::START_GROUP,
        GPBType::MESSAGE => self::LENGTH_DELIMITED, GPBType::BYTES => self::LENGTH_DELIMITED,
        GPBType::UINT32 => self::VARINT, GPBType::ENUM => self::VARINT, GPBType::SFIXED32 => self::FIXED32,
        GPBType::SFIXED64 => self::FIXED64, GPBType::SINT32 => self::VARINT, GPBType::SINT64 => self::VARINT,
    ];

    /** A map entry's key or value when the entry leaves it out. */
    private const DEFAULTS = [
        GPBType::DOUBLE => 0.0, GPBType::FLOAT => 0.0, GPBType::INT64 => 0, GPBType::UINT64 => 0,
        GPBType::INT32 => 0, GPBType::FIXED64 => 0, GPBType::FIXED32 => 0, GPBType::BOOL => false,
        GPBType::STRING => '', GPBType::BYTES => '', GPBType::UINT32 => 0, GPBType::ENUM => 0,
        GPBType::SFIXED32 => 0, GPBType::SFIXED64 => 0, GPBType::SINT32 => 0, GPBType::SINT64 => 0,
    ];

    private string $buf = '';
    private int $pos = 0;

    /** @var \Closure(Message): string reads the library's private store of unknown fields */
    private readonly \Closure $unknownFields;
    /** @var \Closure(Message, string): void appends to it, so unknown fields survive a round trip */
    private readonly \Closure $keepUnknownFields;

    public function __construct()
    {
        $this->unknownFields = \Closure::bind(static fn (Message $m): string => $m->unknown ?? '', null, Message::class);
        $this->keepUnknownFields = \Closure::bind(static function (Message $m, string $bytes): void {
            $m->unknown = ($m->unknown ?? '') . $bytes;
        }, null, Message::class);
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
        $this->buf = $bytes;
        $this->pos = 0;
        try {
            return $this->readMessage($class, strlen($bytes), 0);
        } catch (DecodeError $e) {
            throw $e;
        } catch (\LogicException $e) {
            throw $e;  // FieldPlan: a generated class missing (the worker's failure, INTERNAL)
        } catch (\Exception $e) {
            // A setter refused a value (the library checks ranges and types with \Exception). An
            // \Error (a generated class that is missing, a bug) is the worker's failure, not the
            // caller's: it goes up as it is, and the dispatcher answers INTERNAL.
            throw new DecodeError("invalid protobuf for {$class}: {$e->getMessage()}", 0, $e);
        } finally {
            $this->buf = '';  // do not keep a large request alive
        }
    }

    /**
     * Reads a message's fields up to $end, into $into when given (a message field seen twice
     * merges, as protobuf specifies), else into a new message.
     *
     * @template T of Message
     * @param class-string<T> $class
     * @param T|null $into
     * @return T
     */
    private function readMessage(string $class, int $end, int $depth, ?Message $into = null): Message
    {
        if ($depth > self::MAX_DEPTH) {
            throw new DecodeError("invalid protobuf for {$class}: nested deeper than " . self::MAX_DEPTH);
        }
        $fields = FieldPlan::forClassByNumber($class);
        $message = $into ?? new $class();
        $unknown = '';
        while ($this->pos < $end) {
            $start = $this->pos;
            $tag = $this->readVarint($end, $class);
            $number = $tag >> 3;
            $wireType = $tag & 7;
            if ($number < 1 || $number > self::MAX_FIELD_NUMBER) {
                throw new DecodeError("invalid protobuf for {$class}: field number {$number}");
            }
            $field = $fields[$number] ?? null;
            if ($field !== null) {
                $expected = self::WIRE_TYPES[$field->type];
                if ($field->shape === FieldPlan::MAP) {
                    if ($wireType === self::LENGTH_DELIMITED) {
                        $this->readMapEntry($message, $field, $end, $class, $depth);
                        continue;
                    }
                } elseif ($field->shape === FieldPlan::REPEATED) {
                    if ($wireType === $expected) {
                        $message->{$field->getter}()[] = $this->readValue($field, $end, $class, $depth);
                        continue;
                    }
                    if ($wireType === self::LENGTH_DELIMITED) {  // packed
                        $packedEnd = $this->readLength($end, $class);
                        $list = $message->{$field->getter}();
                        while ($this->pos < $packedEnd) {
                            $list[] = $this->readScalar($field->type, $packedEnd, $class);
                        }
                        if ($this->pos !== $packedEnd) {
                            throw new DecodeError("invalid protobuf for {$class}: packed field overruns its length");
                        }
                        continue;
                    }
                } elseif ($wireType === $expected) {
                    if ($field->type === GPBType::MESSAGE && $message->{$field->hasser}()) {
                        // A message field seen twice is merged, as protobuf specifies (a oneof
                        // member that is not the set one reads as unset: it starts empty).
                        $this->readMessage(
                            $field->messageClass,
                            $this->readLength($end, $class),
                            $depth + 1,
                            $message->{$field->getter}()
                        );
                    } else {
                        $message->{$field->setter}($this->readValue($field, $end, $class, $depth));
                    }
                    continue;
                }
                // A known field with another wire type is skipped and kept as an unknown field,
                // as protobuf's reference parsers do (wire contract, section 5.9).
            }
            $this->skipField($wireType, $number, $end, $class, $depth);
            $unknown .= substr($this->buf, $start, $this->pos - $start);
        }
        if ($this->pos !== $end) {
            throw new DecodeError("invalid protobuf for {$class}: a field overruns the message");
        }
        if ($unknown !== '') {
            ($this->keepUnknownFields)($message, $unknown);
        }
        return $message;
    }

    private function readValue(FieldPlan $field, int $end, string $class, int $depth): mixed
    {
        if ($field->type === GPBType::MESSAGE) {
            $messageEnd = $this->readLength($end, $class);
            return $this->readMessage($field->messageClass, $messageEnd, $depth + 1);
        }
        return $this->readScalar($field->type, $end, $class);
    }

    private function readMapEntry(Message $message, FieldPlan $field, int $end, string $class, int $depth): void
    {
        $entryEnd = $this->readLength($end, $class);
        $key = self::DEFAULTS[$field->keyType];
        $value = null;
        $stray = false;
        while ($this->pos < $entryEnd) {
            $tag = $this->readVarint($entryEnd, $class);
            $number = $tag >> 3;
            $wireType = $tag & 7;
            if ($number === 1 && $wireType === self::WIRE_TYPES[$field->keyType]) {
                $key = $this->readScalar($field->keyType, $entryEnd, $class);
            } elseif ($number === 2 && $wireType === self::WIRE_TYPES[$field->valueType]) {
                if ($field->valueType === GPBType::MESSAGE) {
                    // The entry's value message seen twice merges too (section 5.9).
                    $messageEnd = $this->readLength($entryEnd, $class);
                    $value = $this->readMessage($field->valueClass, $messageEnd, $depth + 1, $value);
                } else {
                    $value = $this->readScalar($field->valueType, $entryEnd, $class);
                }
            } elseif ($number < 1 || $number > self::MAX_FIELD_NUMBER) {
                throw new DecodeError("invalid protobuf for {$class}: field number {$number}");
            } else {
                $this->skipField($wireType, $number, $entryEnd, $class, $depth);
                $stray = true;
            }
        }
        if ($this->pos !== $entryEnd) {
            throw new DecodeError("invalid protobuf for {$class}: a map entry overruns its length");
        }
        if ($stray) {
            // An entry with anything besides its key and value is left out of the map, as upb
            // does (wire contract 5.9, vector protobuf_map_entry_with_stray_field).
            return;
        }
        if ($value === null) {
            $value = $field->valueType === GPBType::MESSAGE
                ? new ($field->valueClass)()
                : self::DEFAULTS[$field->valueType];
        }
        $message->{$field->getter}()[$key] = $value;
    }

    private function readScalar(int $type, int $end, string $class): mixed
    {
        switch ($type) {
            case GPBType::STRING:
                $s = $this->take($this->readLength($end, $class) - $this->pos, $class);
                if (!preg_match('//u', $s)) {
                    throw new DecodeError("invalid protobuf for {$class}: a string is not valid UTF-8");
                }
                return $s;
            case GPBType::BYTES:
                return $this->take($this->readLength($end, $class) - $this->pos, $class);
            case GPBType::DOUBLE:
                return unpack('e', $this->fixed(8, $end, $class))[1];
            case GPBType::FLOAT:
                return unpack('g', $this->fixed(4, $end, $class))[1];
            case GPBType::FIXED64:
            case GPBType::SFIXED64:
                return unpack('P', $this->fixed(8, $end, $class))[1];
            case GPBType::FIXED32:
                return unpack('V', $this->fixed(4, $end, $class))[1];
            case GPBType::SFIXED32:
                $v = unpack('V', $this->fixed(4, $end, $class))[1];
                return $v > 0x7fffffff ? $v - 0x100000000 : $v;
            case GPBType::BOOL:
                return $this->readVarint($end, $class) !== 0;
            case GPBType::UINT32:
                return $this->readVarint($end, $class) & 0xffffffff;
            case GPBType::SINT32:
                $z = $this->readVarint($end, $class) & 0xffffffff;
                return ($z >> 1) ^ -($z & 1);
            case GPBType::SINT64:
                $z = $this->readVarint($end, $class);
                return (($z >> 1) & PHP_INT_MAX) ^ -($z & 1);
            case GPBType::INT32:
            case GPBType::ENUM:
                // Keep the low 32 bits, sign-extended (a negative int32 travels as ten bytes).
                $v = $this->readVarint($end, $class) & 0xffffffff;
                return $v > 0x7fffffff ? $v - 0x100000000 : $v;
            default:  // INT64, UINT64: PHP holds uint64 values above PHP_INT_MAX as negative ints
                return $this->readVarint($end, $class);
        }
    }

    private function skipField(int $wireType, int $number, int $end, string $class, int $depth): void
    {
        switch ($wireType) {
            case self::VARINT:
                $this->readVarint($end, $class);
                return;
            case self::FIXED64:
                $this->fixed(8, $end, $class);
                return;
            case self::LENGTH_DELIMITED:
                $this->pos = $this->readLength($end, $class);
                return;
            case self::FIXED32:
                $this->fixed(4, $end, $class);
                return;
            case self::START_GROUP:
                if ($depth >= self::MAX_DEPTH) {  // the group is one level below $depth
                    throw new DecodeError("invalid protobuf for {$class}: nested deeper than " . self::MAX_DEPTH);
                }
                while (true) {
                    if ($this->pos >= $end) {
                        throw new DecodeError("invalid protobuf for {$class}: unterminated group");
                    }
                    $tag = $this->readVarint($end, $class);
                    if ($tag >> 3 < 1 || $tag >> 3 > self::MAX_FIELD_NUMBER) {
                        throw new DecodeError("invalid protobuf for {$class}: field number " . ($tag >> 3));
                    }
                    if (($tag & 7) === self::END_GROUP) {
                        if ($tag >> 3 !== $number) {
                            throw new DecodeError("invalid protobuf for {$class}: mismatched end of group");
                        }
                        return;
                    }
                    $this->skipField($tag & 7, $tag >> 3, $end, $class, $depth + 1);
                }
            default:
                throw new DecodeError("invalid protobuf for {$class}: wire type {$wireType}");
        }
    }

    /** Reads a length prefix; returns where the delimited value ends. */
    private function readLength(int $end, string $class): int
    {
        $n = $this->readVarint($end, $class);
        if ($n < 0 || $n > $end - $this->pos) {
            throw new DecodeError("invalid protobuf for {$class}: a length runs past the end");
        }
        return $this->pos + $n;
    }

    private function fixed(int $n, int $end, string $class): string
    {
        if ($n > $end - $this->pos) {
            throw new DecodeError("invalid protobuf for {$class}: truncated");
        }
        $this->pos += $n;
        return substr($this->buf, $this->pos - $n, $n);
    }

    private function take(int $n, string $class): string
    {
        $this->pos += $n;
        return substr($this->buf, $this->pos - $n, $n);
    }

    private function readVarint(int $end, string $class): int
    {
        if ($this->pos < $end) {
            $b = ord($this->buf[$this->pos]);
            if ($b < 0x80) {
                $this->pos++;
                return $b;  // the common case: one byte
            }
        }
        $value = 0;
        for ($shift = 0; $shift < 70 && $this->pos < $end; $shift += 7) {
            $b = ord($this->buf[$this->pos++]);
            $value |= ($b & 0x7f) << $shift;
            if ($b < 0x80) {
                return $value;
            }
        }
        throw new DecodeError("invalid protobuf for {$class}: truncated varint");
    }
}
