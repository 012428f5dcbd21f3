<?php

declare(strict_types=1);

namespace Bridge\Runtime\Codec;

use Google\Protobuf\Internal\GPBType;
use Google\Protobuf\Internal\Message;

/**
 * The writing half of BareJsonCodec: a message to the JSON of wire contract section 8.2 (writing
 * rules 1-9), one walk over the descriptors (FieldPlan), the text built directly.
 *
 * @internal
 */
final class BareJsonWriter
{
    private const STRING_FLAGS = JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_THROW_ON_ERROR;

    /** Whether json_encode() writes a double as its shortest round-trip form (php.ini default). */
    private static ?bool $shortestDoubles = null;

    public static function encode(Message $message): string
    {
        if (BareJsonCodec::isWellKnown($message::class)) {
            return WellKnownJson::write($message);  // rule 8: their canonical form
        }
        $parts = [];
        foreach (FieldPlan::forClass($message::class) as $field) {
            $key = '"' . $field->name . '":';  // rule 1: the .proto name (an identifier: no escaping)
            switch ($field->shape) {
                case FieldPlan::SINGULAR:
                    // Rule 2: every field without presence, also at its default.
                    $parts[] = $key . self::scalar($field->type, $message->{$field->getter}(), $field->enumNames);
                    break;
                case FieldPlan::PRESENCE:
                    if (!$message->{$field->hasser}()) {
                        break;
                    }
                    $value = $message->{$field->getter}();
                    $parts[] = $key . ($field->type === GPBType::MESSAGE
                        ? self::encode($value)
                        : self::scalar($field->type, $value, $field->enumNames));
                    break;
                case FieldPlan::REPEATED:
                    $items = [];
                    foreach ($message->{$field->getter}() as $item) {
                        $items[] = $field->type === GPBType::MESSAGE
                            ? self::encode($item)
                            : self::scalar($field->type, $item, $field->enumNames);
                    }
                    $parts[] = $key . '[' . implode(',', $items) . ']';
                    break;
                default:
                    $entries = [];
                    foreach ($message->{$field->getter}() as $k => $value) {
                        $entries[] = self::mapKey($field->keyType, $k) . ':' . ($field->valueType === GPBType::MESSAGE
                            ? self::encode($value)
                            : self::scalar($field->valueType, $value, $field->enumNames));
                    }
                    $parts[] = $key . '{' . implode(',', $entries) . '}';
            }
        }
        return '{' . implode(',', $parts) . '}';
    }

    /**
     * @internal
     * @param array<int, string>|null $enumNames
     */
    public static function scalar(int $type, mixed $value, ?array $enumNames): string
    {
        switch ($type) {
            case GPBType::STRING:
                return json_encode((string) $value, self::STRING_FLAGS);  // rule 9: UTF-8, not \u escapes
            case GPBType::BYTES:
                return '"' . base64_encode((string) $value) . '"';  // rule 5
            case GPBType::BOOL:
                return $value ? 'true' : 'false';
            case GPBType::DOUBLE:
                return self::double((float) $value);
            case GPBType::FLOAT:
                return self::float32((float) $value);
            case GPBType::ENUM:
                // Rule 4: by name; a number the enum does not define, as a number.
                return isset($enumNames[$value]) ? '"' . $enumNames[$value] . '"' : (string) (int) $value;
            case GPBType::UINT32:
            case GPBType::FIXED32:
                return (string) ((int) $value & 0xffffffff);  // the library sign-extends above 2^31
            case GPBType::UINT64:
            case GPBType::FIXED64:
                return sprintf('%u', (int) $value);  // rule 3: numbers; held negative above 2^63
            default:
                return (string) (int) $value;
        }
    }

    /** Rule 7: map keys are strings: integers in decimal, bools "true" / "false". */
    private static function mapKey(int $type, mixed $key): string
    {
        return match ($type) {
            GPBType::STRING => json_encode((string) $key, self::STRING_FLAGS),
            GPBType::BOOL => $key ? '"true"' : '"false"',
            GPBType::UINT32, GPBType::FIXED32 => '"' . ((int) $key & 0xffffffff) . '"',
            GPBType::UINT64, GPBType::FIXED64 => '"' . sprintf('%u', (int) $key) . '"',
            default => '"' . (int) $key . '"',
        };
    }

    /** Rule 6: the shortest decimal that reads back as the same double; NaN and infinities as strings. */
    public static function double(float $value): string
    {
        if (!is_finite($value)) {
            return is_nan($value) ? '"NaN"' : ($value > 0 ? '"Infinity"' : '"-Infinity"');
        }
        self::$shortestDoubles ??= ini_get('serialize_precision') === '-1';
        if (self::$shortestDoubles || $value == 0.0) {
            return json_encode($value, JSON_PRESERVE_ZERO_FRACTION | JSON_THROW_ON_ERROR);
        }
        for ($digits = 0; $digits < 17; $digits++) {
            $text = sprintf("%.{$digits}e", $value);  // %e is not locale-aware (%g and %f are)
            if ((float) $text === $value) {
                return $text;
            }
        }
        return sprintf('%.17e', $value);
    }

    /** Rule 6 for a float: the shortest decimal that reads back as the same float 32. */
    public static function float32(float $value): string
    {
        if (!is_finite($value) || $value == 0.0) {
            return self::double($value);  // a zero keeps its sign (which %e would drop)
        }
        $single = unpack('g', pack('g', $value))[1];
        for ($digits = 0; $digits < 9; $digits++) {
            $candidate = (float) sprintf("%.{$digits}e", $single);
            if (unpack('g', pack('g', $candidate))[1] === $single) {
                // The nearest double to those few digits: its own shortest form is no longer.
                return self::double($candidate);
            }
        }
        return self::double($single);
    }
}
