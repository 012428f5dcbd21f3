<?php

declare(strict_types=1);

namespace Bridge\Runtime\Codec;

use Google\Protobuf\DescriptorPool;
use Google\Protobuf\FieldDescriptor;
use Google\Protobuf\Internal\GPBLabel;
use Google\Protobuf\Internal\GPBType;
use Google\Protobuf\Internal\Message;

/**
 * What the msgpack codec needs to know about one field, read once from the protobuf descriptors.
 *
 * @internal
 */
final class FieldPlan
{
    public const SINGULAR = 0;  // plain proto3 scalar: written when not the default
    public const PRESENCE = 1;  // message, `optional` or oneof member: written whenever set
    public const REPEATED = 2;
    public const MAP = 3;

    /** @var array<class-string, array<int, FieldPlan>> field plans per message class, in field-number order */
    private static array $byClass = [];
    /** @var array<class-string, array<string, FieldPlan>> the same, by field name */
    private static array $byClassAndName = [];

    /** The field name already packed as a msgpack str: written in front of every value. */
    public string $packedName;
    public ?string $hasser = null;
    /** The real oneof this field belongs to (decoders refuse two members of one oneof). */
    public ?string $oneof = null;
    /** @var class-string<Message>|null */
    public ?string $messageClass = null;
    public int $keyType = 0;
    public int $valueType = 0;
    /** @var class-string<Message>|null */
    public ?string $valueClass = null;
    /** The field's JSON name (lowerCamelCase, or the .proto's json_name), for BareJsonCodec. */
    public string $jsonName = '';
    /** @var array<int, string>|null the enum's value names by number (an enum field or map value) */
    public ?array $enumNames = null;

    private function __construct(
        public readonly string $name,
        public readonly int $number,
        public readonly int $type,
        public readonly int $shape,
        public readonly string $getter,
        public readonly string $setter,
    ) {
        $this->packedName = MsgpackWriter::str($name);
    }

    /**
     * @param class-string<Message> $class
     * @return array<int, FieldPlan>
     */
    public static function forClass(string $class): array
    {
        return self::$byClass[$class] ?? self::build($class);
    }

    /**
     * @param class-string<Message> $class
     * @return array<string, FieldPlan>
     */
    public static function forClassByName(string $class): array
    {
        if (!isset(self::$byClassAndName[$class])) {
            $byName = [];
            foreach (self::forClass($class) as $field) {
                $byName[$field->name] = $field;
            }
            self::$byClassAndName[$class] = $byName;
        }
        return self::$byClassAndName[$class];
    }

    /** @var array<class-string, array<int, FieldPlan>> */
    private static array $byClassAndNumber = [];

    /**
     * @param class-string<Message> $class
     * @return array<int, FieldPlan> by field number
     */
    public static function forClassByNumber(string $class): array
    {
        if (!isset(self::$byClassAndNumber[$class])) {
            $byNumber = [];
            foreach (self::forClass($class) as $field) {
                $byNumber[$field->number] = $field;
            }
            self::$byClassAndNumber[$class] = $byNumber;
        }
        return self::$byClassAndNumber[$class];
    }

    /**
     * @param class-string<Message> $class
     * @return array<int, FieldPlan>
     */
    private static function build(string $class): array
    {
        // A class that is missing or not a message is the worker's own failure (a \LogicException,
        // which the codecs let through: the caller is not to blame).
        if (!class_exists($class)) {
            throw new \LogicException("generated message class {$class} not found");
        }
        if (!is_subclass_of($class, Message::class)) {
            throw new \LogicException("{$class} is not a generated protobuf message class");
        }
        // Constructing one instance registers the class's file with the descriptor pool.
        new $class();
        $descriptor = DescriptorPool::getGeneratedPool()->getDescriptorByClassName($class);
        if ($descriptor === null) {
            throw new \LogicException("no protobuf descriptor for {$class}");
        }
        // The library's internal descriptor knows each field's JSON name; the public one does not.
        $internal = \Google\Protobuf\Internal\DescriptorPool::getGeneratedPool()->getDescriptorByClassName($class);
        $fields = [];
        for ($i = 0, $n = $descriptor->getFieldCount(); $i < $n; $i++) {
            $field = self::fromDescriptor($descriptor->getField($i));
            $field->jsonName = (string) ($internal?->getFieldByNumber($field->number)?->getJsonName() ?? $field->name);
            $fields[$field->number] = $field;
        }
        ksort($fields, SORT_NUMERIC);
        return self::$byClass[$class] = array_values($fields);
    }

    private static function fromDescriptor(FieldDescriptor $field): self
    {
        $name = $field->getName();
        // The accessor names protoc's PHP generator gives a field (e.g. f_int32 -> getFInt32).
        $camel = implode('', array_map('ucfirst', explode('_', $name)));
        $type = $field->getType();
        if ($field->isMap()) {
            $shape = self::MAP;
        } elseif ($field->getLabel() === GPBLabel::REPEATED) {
            $shape = self::REPEATED;
        } elseif ($type === GPBType::MESSAGE || $field->getContainingOneof() !== null) {
            // A proto3 `optional` field sits in a synthetic oneof; FieldDescriptor's own
            // hasOptionalKeyword() fails in the PHP library 3.21 (it calls a missing method).
            $shape = self::PRESENCE;
        } else {
            $shape = self::SINGULAR;
        }
        $plan = new self($name, $field->getNumber(), $type, $shape, 'get' . $camel, 'set' . $camel);
        if ($shape === self::PRESENCE) {
            $plan->hasser = 'has' . $camel;
            $oneof = $field->getRealContainingOneof();
            $plan->oneof = $oneof?->getName();
        }
        if ($shape === self::MAP) {
            $entry = $field->getMessageType();
            $key = $entry->getField(0);
            $value = $entry->getField(1);
            $plan->keyType = $key->getType();
            $plan->valueType = $value->getType();
            if ($plan->valueType === GPBType::MESSAGE) {
                $plan->valueClass = $value->getMessageType()->getClass();
            } elseif ($plan->valueType === GPBType::ENUM) {
                $plan->enumNames = self::enumNames($value);
            }
        } elseif ($type === GPBType::MESSAGE) {
            $plan->messageClass = $field->getMessageType()->getClass();
        } elseif ($type === GPBType::ENUM) {
            $plan->enumNames = self::enumNames($field);
        }
        return $plan;
    }

    /** @return array<int, string> */
    private static function enumNames(FieldDescriptor $field): array
    {
        $enum = $field->getEnumType();
        $names = [];
        for ($i = 0, $n = $enum->getValueCount(); $i < $n; $i++) {
            $value = $enum->getValue($i);
            $names[$value->getNumber()] ??= $value->getName();  // an alias: the first name wins
        }
        return $names;
    }
}
