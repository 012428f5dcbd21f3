<?php

declare(strict_types=1);

namespace Bridge\Runtime\Codec;

use Google\Protobuf\Internal\GPBType;
use Google\Protobuf\Internal\Message;

/**
 * Encoding RAW of bare methods (wire contract, section 8.1): the payload is the bytes of the
 * message's only field, a `bytes` or a `string` (UTF-8; invalid UTF-8 is a decoding error).
 * The generator allows RAW only on such messages; another one here is the worker's own failure
 * (a \LogicException, answered INTERNAL).
 */
final class RawCodec implements Codec
{
    public function encode(Message $message): string
    {
        return (string) $message->{self::field($message::class)->getter}();
    }

    public function decode(string $bytes, string $class): Message
    {
        $field = self::field($class);
        if ($field->type === GPBType::STRING && !preg_match('//u', $bytes)) {
            throw new DecodeError("not a RAW {$class}: {$field->name} is a string and the payload is not valid UTF-8");
        }
        $message = new $class();
        if ($bytes !== '' || $field->shape === FieldPlan::SINGULAR) {
            $message->{$field->setter}($bytes);
        }
        return $message;
    }

    /** @param class-string<Message> $class */
    private static function field(string $class): FieldPlan
    {
        $fields = FieldPlan::forClass($class);
        $field = $fields[0] ?? null;
        if (count($fields) !== 1 || ($field->type !== GPBType::STRING && $field->type !== GPBType::BYTES)
            || ($field->shape !== FieldPlan::SINGULAR && $field->shape !== FieldPlan::PRESENCE) || $field->oneof !== null) {
            throw new \LogicException("encoding RAW needs a message with exactly one bytes or string field, not {$class}");
        }
        return $field;
    }
}
