<?php

declare(strict_types=1);

namespace Bridge\Runtime\Codec;

use Google\Protobuf\Internal\GPBType;
use Google\Protobuf\Internal\Message;

/**
 * The msgpack mapping of protobuf messages (wire contract, section 5), driven by the protobuf
 * descriptors so that one codec serves every generated message class.
 *
 * `new MsgpackCodec(unknownKeys: false)` is the bare form (section 8.1): a key the type does not
 * have is a decoding error, at every level, instead of being skipped, and zero bytes are a decoding
 * error unless the type has no fields.
 */
final class MsgpackCodec implements Codec
{
    /** Deeper nesting than this is refused rather than risking the PHP stack. */
    private const MAX_DEPTH = 100;

    private string $buf = '';
    private int $pos = 0;
    private int $len = 0;
    /** Set by readInt() when it read a uint 64 above PHP_INT_MAX (returned as a negative int). */
    private bool $hugeUnsigned = false;
    /** @var (\Closure(Message, int): void)|null unsets a real oneof's member (Message::writeOneof) */
    private ?\Closure $clearOneof = null;

    public function __construct(private readonly bool $unknownKeys = true)
    {
    }

    public function encode(Message $message): string
    {
        return MsgpackEncoder::encode($message);
    }

    public function decode(string $bytes, string $class): Message
    {
        if ($bytes === '') {
            // Zero bytes: every field unset in an envelope's body (wire contract, section 5); bare,
            // only a type without fields (section 8.1).
            return $this->unknownKeys ? new $class() : BareJsonCodec::emptyPayload($class, 'MSGPACK');
        }
        $this->buf = $bytes;
        $this->pos = 0;
        $this->len = strlen($bytes);
        try {
            $message = $this->readMessage($class, 0);
            if ($this->pos !== $this->len) {
                throw new DecodeError(sprintf(
                    'msgpack for %s: %d unexpected bytes after the message',
                    $class,
                    $this->len - $this->pos
                ));
            }
            return $message;
        } finally {
            $this->buf = '';  // do not keep a large request alive
        }
    }

    // ---------------------------------------------------------------------------------------
    // Decoding

    /**
     * @template T of Message
     * @param class-string<T> $class
     * @return T
     */
    private function readMessage(string $class, int $depth): Message
    {
        if ($depth > self::MAX_DEPTH) {
            throw new DecodeError("msgpack for {$class}: nested deeper than " . self::MAX_DEPTH);
        }
        $entries = $this->readMapHeader($class);
        $fields = FieldPlan::forClassByName($class);
        $message = new $class();
        $oneofsSet = [];
        for ($i = 0; $i < $entries; $i++) {
            $name = $this->readKeyName($class);
            $field = $fields[$name] ?? null;
            if ($field === null) {
                if (!$this->unknownKeys) {
                    throw new DecodeError(sprintf(
                        'msgpack for %s: unknown key %s (a bare MSGPACK payload uses only its type\'s '
                            . 'field names: wire contract, section 8.1)',
                        $class,
                        json_encode($name, JSON_INVALID_UTF8_SUBSTITUTE | JSON_UNESCAPED_UNICODE)
                    ));
                }
                $this->skip(0);  // unknown keys are skipped
                continue;
            }
            if ($this->peekNil()) {
                // nil means unset, for this field only: a oneof member that is not the set one
                // leaves the set one alone; a repeated key unsets what the earlier one set.
                $this->pos++;
                if ($field->oneof === null || ($oneofsSet[$field->oneof] ?? null) === $name) {
                    $this->clearField($message, $field);
                    unset($oneofsSet[$field->oneof ?? '']);
                }
                continue;
            }
            if ($field->oneof !== null) {
                if (isset($oneofsSet[$field->oneof]) && $oneofsSet[$field->oneof] !== $name) {
                    throw new DecodeError(sprintf(
                        'msgpack for %s: both %s and %s of oneof %s are set',
                        $class,
                        $oneofsSet[$field->oneof],
                        $name,
                        $field->oneof
                    ));
                }
                $oneofsSet[$field->oneof] = $name;
            }
            try {
                switch ($field->shape) {
                    case FieldPlan::SINGULAR:
                    case FieldPlan::PRESENCE:
                        $value = $field->type === GPBType::MESSAGE
                            ? $this->readMessage($field->messageClass, $depth + 1)
                            : $this->readScalar($field->type, $class, $name);
                        $message->{$field->setter}($value);
                        break;
                    case FieldPlan::REPEATED:
                        $message->{$field->setter}([]);  // a repeated key replaces, as elsewhere
                        $this->readRepeated($message, $field, $class, $depth);
                        break;
                    default:
                        $message->{$field->setter}([]);
                        $this->readMap($message, $field, $class, $depth);
                }
            } catch (DecodeError $e) {
                throw $e;
            } catch (\LogicException $e) {
                throw $e;  // FieldPlan: a generated class missing (the worker's failure, INTERNAL)
            } catch (\Exception $e) {
                // A setter refused the value (the library checks UTF-8 and types). An \Error (a
                // missing generated class) is the worker's own failure and goes up as it is.
                throw new DecodeError("msgpack for {$class}.{$name}: {$e->getMessage()}", 0, $e);
            }
        }
        return $message;
    }

    /** Unsets a field: what a later nil under the same key does to an earlier value. */
    private function clearField(Message $message, FieldPlan $field): void
    {
        switch ($field->shape) {
            case FieldPlan::REPEATED:
            case FieldPlan::MAP:
                $message->{$field->setter}([]);
                return;
            case FieldPlan::SINGULAR:
                $message->{$field->setter}(match ($field->type) {
                    GPBType::STRING, GPBType::BYTES => '',
                    GPBType::BOOL => false,
                    GPBType::DOUBLE, GPBType::FLOAT => 0.0,
                    default => 0,
                });
                return;
        }
        if ($field->oneof === null) {
            $message->{'clear' . substr((string) $field->hasser, 3)}();  // message, `optional`
        } elseif ($message->{$field->hasser}()) {
            // A real oneof member has no generated clear method: the library's own writeOneof.
            $this->clearOneof ??= \Closure::bind(
                static fn (Message $m, int $number) => $m->writeOneof($number, null),
                null,
                Message::class
            );
            ($this->clearOneof)($message, $field->number);
        }
    }

    private function readRepeated(Message $message, FieldPlan $field, string $class, int $depth): void
    {
        $n = $this->readArrayHeader($class, $field->name);
        $list = $message->{$field->getter}();
        for ($i = 0; $i < $n; $i++) {
            $list[] = $field->type === GPBType::MESSAGE
                ? $this->readMessage($field->messageClass, $depth + 1)
                : $this->readScalar($field->type, $class, $field->name);
        }
    }

    private function readMap(Message $message, FieldPlan $field, string $class, int $depth): void
    {
        $n = $this->readMapHeader("{$class}.{$field->name}");
        $map = $message->{$field->getter}();
        for ($i = 0; $i < $n; $i++) {
            $key = $this->readScalar($field->keyType, $class, $field->name);
            $map[$key] = $field->valueType === GPBType::MESSAGE
                ? $this->readMessage($field->valueClass, $depth + 1)
                : $this->readScalar($field->valueType, $class, $field->name);
        }
    }

    private function readScalar(int $type, string $class, string $name): mixed
    {
        switch ($type) {
            case GPBType::STRING:
                $s = $this->readStrOrBin(true, $class, $name);
                if (!preg_match('//u', $s)) {
                    throw new DecodeError("msgpack for {$class}.{$name}: string is not valid UTF-8");
                }
                return $s;
            case GPBType::BYTES:
                return $this->readStrOrBin(false, $class, $name);
            case GPBType::BOOL:
                $b = $this->byte($class);
                if ($b === 0xc2 || $b === 0xc3) {
                    return $b === 0xc3;
                }
                throw $this->wrongType($b, 'bool', $class, $name);
            case GPBType::DOUBLE:
            case GPBType::FLOAT:
                $b = $this->byte($class);
                if ($b === 0xcb) {
                    return unpack('E', $this->take(8, $class))[1];
                }
                if ($b === 0xca) {
                    return unpack('G', $this->take(4, $class))[1];
                }
                throw $this->wrongType($b, 'float', $class, $name);
            default:
                return $this->readIntegerField($type, $class, $name);
        }
    }

    private function readIntegerField(int $type, string $class, string $name): int
    {
        $v = $this->readInt($class, $name);
        $ok = match ($type) {
            GPBType::INT32, GPBType::SINT32, GPBType::SFIXED32, GPBType::ENUM
                => !$this->hugeUnsigned && $v >= -0x80000000 && $v <= 0x7fffffff,
            GPBType::UINT32, GPBType::FIXED32 => !$this->hugeUnsigned && $v >= 0 && $v <= 0xffffffff,
            GPBType::UINT64, GPBType::FIXED64 => $this->hugeUnsigned || $v >= 0,
            default => !$this->hugeUnsigned,  // the signed 64-bit types
        };
        if (!$ok) {
            $shown = $this->hugeUnsigned ? sprintf('%u', $v) : (string) $v;
            throw new DecodeError("msgpack for {$class}.{$name}: {$shown} is out of range");
        }
        return $v;
    }

    private function readInt(string $class, string $name): int
    {
        $this->hugeUnsigned = false;
        $b = $this->byte($class);
        if ($b < 0x80) {
            return $b;
        }
        if ($b >= 0xe0) {
            return $b - 0x100;
        }
        switch ($b) {
            case 0xcc:
                return $this->byte($class);
            case 0xcd:
                return unpack('n', $this->take(2, $class))[1];
            case 0xce:
                return unpack('N', $this->take(4, $class))[1];
            case 0xcf:
                $v = unpack('J', $this->take(8, $class))[1];
                $this->hugeUnsigned = $v < 0;
                return $v;
            case 0xd0:
                $v = $this->byte($class);
                return $v >= 0x80 ? $v - 0x100 : $v;
            case 0xd1:
                $v = unpack('n', $this->take(2, $class))[1];
                return $v >= 0x8000 ? $v - 0x10000 : $v;
            case 0xd2:
                $v = unpack('N', $this->take(4, $class))[1];
                return $v >= 0x80000000 ? $v - 0x100000000 : $v;
            case 0xd3:
                return unpack('J', $this->take(8, $class))[1];
        }
        throw $this->wrongType($b, 'integer', $class, $name);
    }

    private function readStrOrBin(bool $wantStr, string $class, string $name): string
    {
        $b = $this->byte($class);
        if ($wantStr) {
            if (($b & 0xe0) === 0xa0) {
                $n = $b & 0x1f;
            } elseif ($b === 0xd9) {
                $n = $this->byte($class);
            } elseif ($b === 0xda) {
                $n = unpack('n', $this->take(2, $class))[1];
            } elseif ($b === 0xdb) {
                $n = unpack('N', $this->take(4, $class))[1];
            } else {
                throw $this->wrongType($b, 'str', $class, $name);
            }
        } elseif ($b === 0xc4) {
            $n = $this->byte($class);
        } elseif ($b === 0xc5) {
            $n = unpack('n', $this->take(2, $class))[1];
        } elseif ($b === 0xc6) {
            $n = unpack('N', $this->take(4, $class))[1];
        } else {
            throw $this->wrongType($b, 'bin', $class, $name);
        }
        return $this->take($n, $class);
    }

    private function readKeyName(string $class): string
    {
        $b = $this->byte($class);
        $this->pos--;
        if (($b & 0xe0) !== 0xa0 && ($b < 0xd9 || $b > 0xdb)) {
            throw new DecodeError(sprintf('msgpack for %s: map key must be a field name (str), got 0x%02x', $class, $b));
        }
        return $this->readStrOrBin(true, $class, '<key>');
    }

    private function readMapHeader(string $what): int
    {
        $b = $this->byte($what);
        if (($b & 0xf0) === 0x80) {
            return $b & 0x0f;
        }
        if ($b === 0xde || $b === 0xdf) {
            return $this->count(unpack($b === 0xde ? 'n' : 'N', $this->take($b === 0xde ? 2 : 4, $what))[1], 2, $what);
        }
        throw new DecodeError(sprintf('msgpack for %s: expected a map, got 0x%02x', $what, $b));
    }

    private function readArrayHeader(string $class, string $name): int
    {
        $b = $this->byte($class);
        if (($b & 0xf0) === 0x90) {
            return $b & 0x0f;
        }
        if ($b === 0xdc || $b === 0xdd) {
            return $this->count(unpack($b === 0xdc ? 'n' : 'N', $this->take($b === 0xdc ? 2 : 4, $class))[1], 1, $class);
        }
        throw $this->wrongType($b, 'array', $class, $name);
    }

    private function peekNil(): bool
    {
        return $this->pos < $this->len && $this->buf[$this->pos] === "\xc0";
    }

    /** Skips one msgpack value of any type (the value of an unknown key). */
    private function skip(int $depth): void
    {
        if ($depth > self::MAX_DEPTH) {
            throw new DecodeError('msgpack: nested deeper than ' . self::MAX_DEPTH);
        }
        $b = $this->byte('value');
        if ($b < 0x80 || $b >= 0xe0 || $b === 0xc0 || $b === 0xc2 || $b === 0xc3) {
            return;
        }
        if (($b & 0xe0) === 0xa0) {
            $this->advance($b & 0x1f);
            return;
        }
        if (($b & 0xf0) === 0x90 || ($b & 0xf0) === 0x80) {
            $items = ($b & 0x0f) * (($b & 0xf0) === 0x80 ? 2 : 1);
            for ($i = 0; $i < $items; $i++) {
                $this->skip($depth + 1);
            }
            return;
        }
        switch ($b) {
            case 0xcc: case 0xd0: $this->advance(1); return;
            case 0xcd: case 0xd1: $this->advance(2); return;
            case 0xce: case 0xd2: case 0xca: $this->advance(4); return;
            case 0xcf: case 0xd3: case 0xcb: $this->advance(8); return;
            case 0xd4: $this->advance(2); return;  // fixext 1
            case 0xd5: $this->advance(3); return;
            case 0xd6: $this->advance(5); return;
            case 0xd7: $this->advance(9); return;
            case 0xd8: $this->advance(17); return;
            case 0xc4: case 0xd9: $this->advance($this->byte('value')); return;
            case 0xc5: case 0xda: $this->advance(unpack('n', $this->take(2, 'value'))[1]); return;
            case 0xc6: case 0xdb: $this->advance(unpack('N', $this->take(4, 'value'))[1]); return;
            case 0xc7: $n = $this->byte('value'); $this->advance($n + 1); return;
            case 0xc8: $n = unpack('n', $this->take(2, 'value'))[1]; $this->advance($n + 1); return;
            case 0xc9: $n = unpack('N', $this->take(4, 'value'))[1]; $this->advance($n + 1); return;
            case 0xdc: case 0xdd: case 0xde: case 0xdf:
                $n = $b === 0xdc || $b === 0xde
                    ? unpack('n', $this->take(2, 'value'))[1]
                    : unpack('N', $this->take(4, 'value'))[1];
                $items = $b >= 0xde ? 2 * $n : $n;
                $this->count($items, 1, 'value');
                for ($i = 0; $i < $items; $i++) {
                    $this->skip($depth + 1);
                }
                return;
        }
        throw new DecodeError(sprintf('msgpack: 0x%02x is not a valid msgpack type', $b));
    }

    /**
     * A declared array or map size, checked against the bytes that remain before anything is
     * read or allocated: each item takes at least one byte (wire contract, section 5.9).
     */
    private function count(int $n, int $bytesPerItem, string $what): int
    {
        if ($n * $bytesPerItem > $this->len - $this->pos) {
            throw new DecodeError(sprintf(
                'msgpack for %s: %d items declared, only %d bytes left',
                $what,
                $n,
                $this->len - $this->pos
            ));
        }
        return $n;
    }

    private function byte(string $what): int
    {
        if ($this->pos >= $this->len) {
            throw new DecodeError("msgpack for {$what}: truncated");
        }
        return ord($this->buf[$this->pos++]);
    }

    /** Moves past $n bytes of a skipped value without copying them. */
    private function advance(int $n): void
    {
        if ($n > $this->len - $this->pos) {
            throw new DecodeError('msgpack: truncated');
        }
        $this->pos += $n;
    }

    private function take(int $n, string $what): string
    {
        if ($n > $this->len - $this->pos) {
            throw new DecodeError("msgpack for {$what}: truncated");
        }
        $s = substr($this->buf, $this->pos, $n);
        $this->pos += $n;
        return $s;
    }

    private function wrongType(int $b, string $expected, string $class, string $name): DecodeError
    {
        return new DecodeError(sprintf(
            'msgpack for %s.%s: expected %s, got type byte 0x%02x',
            $class,
            $name,
            $expected,
            $b
        ));
    }
}
