<?php

declare(strict_types=1);

namespace Bridge\Runtime\Codec;

use Google\Protobuf\Internal\GPBType;
use Google\Protobuf\Internal\Message;

/**
 * Encoding JSON of bare methods (wire contract, section 8.2): protobuf's canonical proto3 JSON
 * mapping with the listed differences (.proto field names, every field without presence written,
 * 64-bit integers as numbers; on input `[]` for an empty message or map and 0 / 1 for a bool).
 *
 * Why not the library's own `mergeFromJsonString()` / `serializeToJsonString()` (php-google-protobuf
 * 3.21, pure PHP), with the differences patched on top, as the Python codec does with json_format:
 * - its reader range-checks every integer with bcmath (`bccomp`), which Debian's PHP does not load
 *   by default: any int32 or int64 field ends in "Call to undefined function bccomp()";
 * - its writer knows only lowerCamelCase names and leaves defaults out, so rules 1 and 2 would mean
 *   re-walking its output against the descriptors anyway, and it writes uint64 above 2^63 with
 *   bcmath too;
 * - json_decode() without JSON_BIGINT_AS_STRING (what the library calls) reads a uint64 above
 *   2^63 as a float, so it cannot be exact.
 * So this codec walks the same descriptors as the msgpack codec (FieldPlan): json_decode() with
 * JSON_BIGINT_AS_STRING (every integer exact) into objects (so `{}` and `[]` stay apart), then each
 * value checked and converted by the canonical rules. The well-known types (Timestamp, Duration,
 * Struct, wrappers...) keep their canonical form (writing rule 8): WellKnownJson, since the
 * library's own support for them needs bcmath as well.
 *
 * Nesting deeper than 100 messages is refused; json_decode()'s own depth limit keeps the parser
 * from going deeper than about twice that before the walk starts.
 */
final class BareJsonCodec implements Codec
{
    public const MAX_DEPTH = 100;
    /** JSON levels: a message costs at most two (a map or list, then the value object). */
    private const JSON_DEPTH = 2 * (self::MAX_DEPTH + 2);
    private const TWO_POW_63 = 9223372036854775808.0;
    private const TWO_POW_53 = 9007199254740992.0;
    private const FLOAT_MAX = 3.4028234663852886e38;
    private const INTEGER = '/^-?[0-9]+$/';
    private const NUMBER = '/^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?$/';  // JSON's number syntax
    private const BASE64 = '/^[A-Za-z0-9+\/_-]*={0,2}$/';

    public function encode(Message $message): string
    {
        return BareJsonWriter::encode($message);
    }

    public function decode(string $bytes, string $class): Message
    {
        if ($bytes === '') {
            return self::emptyPayload($class, 'JSON');
        }
        try {
            $value = json_decode($bytes, false, self::JSON_DEPTH, JSON_BIGINT_AS_STRING | JSON_THROW_ON_ERROR);
        } catch (\JsonException $e) {
            throw new DecodeError("not a JSON {$class}: {$e->getMessage()}");
        }
        if ($value === []) {
            return new $class();  // PHP's json_encode([]) (reading rule 1)
        }
        if (!$value instanceof \stdClass && !self::isWellKnown($class)) {
            throw new DecodeError(sprintf('not a JSON %s: expected an object, got %s', $class, self::kind($value)));
        }
        return $this->message($value, $class, 0);
    }

    /**
     * Zero bytes of bare JSON or MSGPACK (section 8.1): the message of a type without fields
     * (google.protobuf.Empty), else a decoding error: no encoder writes zero bytes for a message
     * that has fields, and a peer whose json_encode() failed (it returns false) or whose handler
     * forgot to return sends exactly that.
     *
     * @internal
     * @template T of Message
     * @param class-string<T> $class
     * @return T
     */
    public static function emptyPayload(string $class, string $encoding): Message
    {
        if (FieldPlan::forClass($class) !== []) {
            throw new DecodeError(sprintf(
                'an empty payload is not a bare %s %s (an empty message is written %s)',
                $encoding,
                $class,
                $encoding === 'JSON' ? '{}' : '0x80'
            ));
        }
        return new $class();
    }

    /** Whether $class is one of protobuf's well-known types (canonical JSON, rule 8). */
    public static function isWellKnown(string $class): bool
    {
        return str_starts_with($class, 'Google\\Protobuf\\');
    }

    /**
     * @template T of Message
     * @param class-string<T> $class
     * @return T
     */
    private function message(mixed $value, string $class, int $depth): Message
    {
        if ($depth > self::MAX_DEPTH) {
            throw new DecodeError("JSON for {$class}: nested deeper than " . self::MAX_DEPTH);
        }
        if (self::isWellKnown($class)) {
            return WellKnownJson::read($value, $class, $depth);
        }
        if ($value === []) {
            return new $class();  // reading rule 9
        }
        if (!$value instanceof \stdClass) {
            throw new DecodeError(sprintf('JSON for %s: expected an object, got %s', $class, self::kind($value)));
        }
        $byName = FieldPlan::forClassByName($class);
        $message = new $class();
        $oneofs = [];
        foreach (get_object_vars($value) as $key => $item) {
            $key = (string) $key;  // PHP makes numeric property names int keys
            $field = $byName[$key] ?? self::byJsonName($class, $key)
                ?? throw new DecodeError("JSON for {$class}: no field named \"{$key}\"");
            if ($item === null && !self::isValue($field)) {
                continue;  // null means unset (reading rule 3); a google.protobuf.Value reads it as NULL_VALUE
            }
            if ($field->oneof !== null) {
                $other = $oneofs[$field->oneof] ?? null;
                if ($other !== null && $other !== $field->name) {
                    throw new DecodeError("JSON for {$class}: both {$other} and {$field->name} of oneof {$field->oneof} are set");
                }
                $oneofs[$field->oneof] = $field->name;
            }
            $where = "{$class}.{$field->name}";
            try {
                switch ($field->shape) {
                    case FieldPlan::SINGULAR:
                    case FieldPlan::PRESENCE:
                        $message->{$field->setter}($field->type === GPBType::MESSAGE
                            ? $this->message($item, $field->messageClass, $depth + 1)
                            : self::scalar($field->type, $item, $field->enumNames, $where));
                        break;
                    case FieldPlan::REPEATED:
                        if (!is_array($item)) {
                            throw new DecodeError("JSON for {$where}: expected an array, got " . self::kind($item));
                        }
                        $list = $message->{$field->getter}();
                        foreach ($item as $element) {
                            if ($element === null && !self::isValue($field)) {
                                throw new DecodeError("JSON for {$where}: null in a list");
                            }
                            $list[] = $field->type === GPBType::MESSAGE
                                ? $this->message($element, $field->messageClass, $depth + 1)
                                : self::scalar($field->type, $element, $field->enumNames, $where);
                        }
                        break;
                    default:
                        $this->map($message, $field, $item, $where, $depth);
                }
            } catch (DecodeError | \LogicException $e) {
                throw $e;  // \LogicException: a generated class missing (the worker's failure)
            } catch (\Exception $e) {
                // A setter refused the value (the library checks types and UTF-8).
                throw new DecodeError("JSON for {$where}: {$e->getMessage()}", 0, $e);
            }
        }
        return $message;
    }

    private function map(Message $message, FieldPlan $field, mixed $item, string $where, int $depth): void
    {
        if ($item === []) {
            return;  // reading rule 9
        }
        if (!$item instanceof \stdClass) {
            throw new DecodeError("JSON for {$where}: expected an object (a map), got " . self::kind($item));
        }
        $map = $message->{$field->getter}();
        foreach (get_object_vars($item) as $key => $value) {
            $key = self::mapKey($field->keyType, (string) $key, $where);
            if ($value === null && $field->valueClass !== \Google\Protobuf\Value::class) {
                throw new DecodeError("JSON for {$where}: null as a map value");
            }
            $map[$key] = $field->valueType === GPBType::MESSAGE
                ? $this->message($value, $field->valueClass, $depth + 1)
                : self::scalar($field->valueType, $value, $field->enumNames, $where);
        }
    }

    private static function mapKey(int $type, string $key, string $where): string|int|bool
    {
        return match ($type) {
            GPBType::STRING => $key,
            GPBType::BOOL => match ($key) {
                'true' => true,
                'false' => false,
                default => throw new DecodeError("JSON for {$where}: map key \"{$key}\" is not a bool"),
            },
            default => preg_match(self::INTEGER, $key)
                ? self::integer($type, $key, $where)
                : throw new DecodeError("JSON for {$where}: map key \"{$key}\" is not an integer"),
        };
    }

    /**
     * A scalar field's value read from JSON by the canonical rules, with this mapping's leniency.
     * $wrapper: the value of a well-known wrapper (Int64Value...), read as canonical, where an
     * integer written as a float is not limited to 2^53 (reading rule 4 is for fields).
     *
     * @internal
     * @param array<int, string>|null $enumNames
     */
    public static function scalar(int $type, mixed $value, ?array $enumNames, string $where, bool $wrapper = false): mixed
    {
        switch ($type) {
            case GPBType::STRING:
                if (!is_string($value)) {
                    throw new DecodeError("JSON for {$where}: expected a string, got " . self::kind($value));
                }
                return $value;  // json_decode() refused invalid UTF-8 and lone surrogates
            case GPBType::BYTES:
                if (!is_string($value) || !preg_match(self::BASE64, $value) || strlen(rtrim($value, '=')) % 4 === 1) {
                    throw new DecodeError("JSON for {$where}: not base64");
                }
                $bytes = base64_decode(strtr(rtrim($value, '='), '-_', '+/'), true);
                if ($bytes === false) {
                    throw new DecodeError("JSON for {$where}: not base64");
                }
                return $bytes;
            case GPBType::BOOL:
                if (is_bool($value)) {
                    return $value;
                }
                if ($value === 0 || $value === 1) {
                    return $value === 1;  // Perl's booleans (reading rule 5)
                }
                throw new DecodeError("JSON for {$where}: expected true or false, got " . self::kind($value));
            case GPBType::DOUBLE:
            case GPBType::FLOAT:
                $number = self::float($value, $where);
                if ($type === GPBType::FLOAT && is_finite($number) && abs($number) > self::FLOAT_MAX) {
                    throw new DecodeError("JSON for {$where}: {$number} is out of the range of a float");
                }
                return $number;
            case GPBType::ENUM:
                if (is_string($value) && !preg_match(self::INTEGER, $value)) {
                    $number = array_search($value, $enumNames ?? [], true);
                    if ($number === false) {
                        throw new DecodeError("JSON for {$where}: the enum has no value named \"{$value}\"");
                    }
                    return $number;
                }
                return self::integer(GPBType::INT32, $value, $where);  // a number the enum may not define
            default:
                return self::integer($type, $value, $where, $wrapper);
        }
    }

    private static function float(mixed $value, string $where): float
    {
        if (is_int($value) || is_float($value)) {
            return (float) $value;
        }
        if (is_string($value)) {
            if (preg_match(self::NUMBER, $value)) {
                return (float) $value;  // a numeric string, or an integer too big for an int
            }
            $special = ['NaN' => NAN, 'Infinity' => INF, '-Infinity' => -INF][$value] ?? null;
            if ($special !== null) {
                return $special;
            }
        }
        throw new DecodeError("JSON for {$where}: expected a number, got " . self::kind($value));
    }

    /**
     * An integer field's value from a JSON number with an integral value or a string of digits,
     * range-checked for its type. uint64 above 2^63 comes back as the negative int the library
     * holds it as. A number written with a fraction or exponent part (json_decode() makes it a
     * float; with JSON_BIGINT_AS_STRING an integer too big for an int stays digits) is taken only
     * up to 2^53 in magnitude (reading rule 4): beyond, it may already be a peer's rounded float,
     * e.g. what PHP's own json_decode() makes of a uint64 above PHP_INT_MAX, written back.
     */
    private static function integer(int $type, mixed $value, string $where, bool $wrapper = false): int
    {
        $unsigned64 = $type === GPBType::UINT64 || $type === GPBType::FIXED64;
        $huge = false;  // a uint64 above PHP_INT_MAX
        if (is_int($value)) {
            $n = $value;
        } elseif (is_float($value)) {
            if (!is_finite($value) || floor($value) !== $value) {
                throw new DecodeError("JSON for {$where}: {$value} is not an integer");
            }
            if (!$wrapper && abs($value) > self::TWO_POW_53) {
                throw new DecodeError(sprintf(
                    'JSON for %s: %s is written as a float, exact only up to 2^53: write an integer without a fraction or exponent',
                    $where,
                    json_encode($value)
                ));
            }
            if ($value >= -self::TWO_POW_63 && $value < self::TWO_POW_63) {
                $n = (int) $value;
            } elseif ($unsigned64 && $value >= self::TWO_POW_63 && $value < 2 * self::TWO_POW_63) {
                $n = (int) ($value - 2 * self::TWO_POW_63);
                $huge = true;
            } else {
                throw new DecodeError("JSON for {$where}: {$value} is out of range");
            }
        } elseif (is_string($value) && preg_match(self::INTEGER, $value)) {
            [$n, $huge] = self::digits($value, $where);
        } else {
            throw new DecodeError("JSON for {$where}: expected an integer, got " . self::kind($value));
        }
        $ok = match ($type) {
            GPBType::INT32, GPBType::SINT32, GPBType::SFIXED32, GPBType::ENUM => !$huge && $n >= -0x80000000 && $n <= 0x7fffffff,
            GPBType::UINT32, GPBType::FIXED32 => !$huge && $n >= 0 && $n <= 0xffffffff,
            GPBType::UINT64, GPBType::FIXED64 => $huge || $n >= 0,
            default => !$huge,
        };
        if (!$ok) {
            throw new DecodeError(sprintf('JSON for %s: %s is out of range', $where, is_string($value) ? $value : json_encode($value)));
        }
        return $n;
    }

    /**
     * A string of decimal digits (optionally negative) as [int, whether it is a uint64 above
     * PHP_INT_MAX, wrapped to the negative int of the same bits].
     *
     * @return array{int, bool}
     */
    private static function digits(string $text, string $where): array
    {
        $negative = $text[0] === '-';
        $digits = ltrim($negative ? substr($text, 1) : $text, '0');
        if ($digits === '') {
            return [0, false];
        }
        $n = (int) ($negative ? "-{$digits}" : $digits);  // saturates at PHP_INT_MIN / PHP_INT_MAX
        if ((string) $n === ($negative ? "-{$digits}" : $digits)) {
            return [$n, false];
        }
        if ($negative || strlen($digits) > 20 || (strlen($digits) === 20 && strcmp($digits, '18446744073709551615') > 0)) {
            throw new DecodeError("JSON for {$where}: {$text} is out of range");
        }
        // 2^63 <= value < 2^64: value - 2^64 = (high - 1844674407370955161) * 10 + (low - 6),
        // computed so that no step leaves the int range.
        $high = (int) substr($digits, 0, -1);
        $low = (int) substr($digits, -1);
        return [($high - 1844674407370955160) * 10 + ($low - 16), true];
    }

    private static function isValue(FieldPlan $field): bool
    {
        return $field->messageClass === \Google\Protobuf\Value::class;
    }

    private static function byJsonName(string $class, string $key): ?FieldPlan
    {
        foreach (FieldPlan::forClass($class) as $field) {
            if ($field->jsonName === $key) {
                return $field;
            }
        }
        return null;
    }

    private static function kind(mixed $value): string
    {
        return match (true) {
            $value === null => 'null',
            $value instanceof \stdClass => 'an object',
            is_array($value) => 'an array',
            is_string($value) => 'a string',
            is_bool($value) => 'a bool',
            default => 'a number',
        };
    }
}
