<?php

declare(strict_types=1);

namespace Bridge\Runtime\Codec;

use Google\Protobuf\Any;
use Google\Protobuf\Duration;
use Google\Protobuf\FieldMask;
use Google\Protobuf\GPBEmpty;
use Google\Protobuf\Internal\GPBType;
use Google\Protobuf\Internal\Message;
use Google\Protobuf\ListValue;
use Google\Protobuf\Struct;
use Google\Protobuf\Timestamp;
use Google\Protobuf\Value;

/**
 * The well-known types in protobuf's canonical JSON (wire contract 8.2, writing rule 8), for
 * BareJsonCodec. Done here rather than by the library's own JSON support: without bcmath (not in
 * Debian's default PHP) the library cannot write a Timestamp nor read a Duration ("Call to
 * undefined function bccomp()"), and it writes a FieldMask's paths as "." and ",". Only Any is
 * left to the library (it needs the type registry).
 *
 * @internal
 */
final class WellKnownJson
{
    private const TIMESTAMP = '/^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/';
    private const DURATION = '/^(-)?(\d+)(?:\.(\d{1,9}))?s$/';
    private const MIN_SECONDS = -62135596800;   // 0001-01-01T00:00:00Z
    private const MAX_SECONDS = 253402300799;   // 9999-12-31T23:59:59Z
    private const MAX_DURATION = 315576000000;  // 10000 years
    private const WRAPPERS = [
        'Google\\Protobuf\\DoubleValue' => GPBType::DOUBLE,
        'Google\\Protobuf\\FloatValue' => GPBType::FLOAT,
        'Google\\Protobuf\\Int64Value' => GPBType::INT64,
        'Google\\Protobuf\\UInt64Value' => GPBType::UINT64,
        'Google\\Protobuf\\Int32Value' => GPBType::INT32,
        'Google\\Protobuf\\UInt32Value' => GPBType::UINT32,
        'Google\\Protobuf\\BoolValue' => GPBType::BOOL,
        'Google\\Protobuf\\StringValue' => GPBType::STRING,
        'Google\\Protobuf\\BytesValue' => GPBType::BYTES,
    ];

    public static function write(Message $message): string
    {
        $class = $message::class;
        if (isset(self::WRAPPERS[$class])) {
            $type = self::WRAPPERS[$class];
            $json = BareJsonWriter::scalar($type, $message->getValue(), null);
            // 64-bit integers stay canonical strings inside the wrappers (rule 3).
            return $type === GPBType::INT64 || $type === GPBType::UINT64 ? '"' . $json . '"' : $json;
        }
        return match (true) {
            $message instanceof Timestamp => self::writeTimestamp($message),
            $message instanceof Duration => self::writeDuration($message),
            $message instanceof FieldMask => self::writeFieldMask($message),
            $message instanceof Struct => self::writeStruct($message),
            $message instanceof ListValue => self::writeList($message),
            $message instanceof Value => self::writeValue($message),
            $message instanceof GPBEmpty => '{}',
            default => $message->serializeToJsonString(),  // Any (and any other the library knows)
        };
    }

    /** @param class-string<Message> $class */
    public static function read(mixed $value, string $class, int $depth): Message
    {
        if ($depth > BareJsonCodec::MAX_DEPTH) {
            throw new DecodeError("JSON for {$class}: nested deeper than " . BareJsonCodec::MAX_DEPTH);
        }
        if (isset(self::WRAPPERS[$class])) {
            return new $class(['value' => BareJsonCodec::scalar(self::WRAPPERS[$class], $value, null, $class, wrapper: true)]);
        }
        return match ($class) {
            Timestamp::class => self::readTimestamp($value),
            Duration::class => self::readDuration($value),
            FieldMask::class => self::readFieldMask($value),
            Struct::class => self::readStruct($value, $depth),
            ListValue::class => self::readList($value, $depth),
            Value::class => self::readValue($value, $depth),
            GPBEmpty::class => $value === [] || ($value instanceof \stdClass && get_object_vars($value) === [])
                ? new GPBEmpty()
                : throw new DecodeError('JSON for google.protobuf.Empty: expected {}'),
            default => self::byLibrary($value, $class),
        };
    }

    private static function writeTimestamp(Timestamp $t): string
    {
        $seconds = $t->getSeconds();
        $nanos = $t->getNanos();
        if ($seconds < self::MIN_SECONDS || $seconds > self::MAX_SECONDS || $nanos < 0 || $nanos > 999_999_999) {
            throw new \LogicException("google.protobuf.Timestamp out of range: {$seconds}s {$nanos}ns");
        }
        $date = (new \DateTimeImmutable('@' . $seconds))->format('Y-m-d\TH:i:s');
        return '"' . $date . self::fraction($nanos) . 'Z"';
    }

    private static function readTimestamp(mixed $value): Timestamp
    {
        if (!is_string($value) || !preg_match(self::TIMESTAMP, $value, $m)) {
            throw new DecodeError('JSON for google.protobuf.Timestamp: expected an RFC 3339 string');
        }
        $utc = new \DateTimeZone('UTC');
        $local = sprintf('%s-%s-%sT%s:%s:%s', $m[1], $m[2], $m[3], $m[4], $m[5], $m[6]);
        $date = \DateTimeImmutable::createFromFormat('!Y-m-d\TH:i:s', $local, $utc);
        if ($date === false || $date->format('Y-m-d\TH:i:s') !== $local) {
            throw new DecodeError("JSON for google.protobuf.Timestamp: {$value} is not a valid date and time");
        }
        $seconds = $date->getTimestamp();
        if ($m[8] !== 'Z') {
            $offset = ((int) substr($m[8], 1, 2)) * 3600 + ((int) substr($m[8], 4, 2)) * 60;
            $seconds -= $m[8][0] === '-' ? -$offset : $offset;
        }
        if ($seconds < self::MIN_SECONDS || $seconds > self::MAX_SECONDS) {
            throw new DecodeError("JSON for google.protobuf.Timestamp: {$value} is out of range");
        }
        return new Timestamp(['seconds' => $seconds, 'nanos' => self::nanos($m[7] ?? '')]);
    }

    private static function writeDuration(Duration $d): string
    {
        $seconds = $d->getSeconds();
        $nanos = $d->getNanos();
        if (abs($seconds) > self::MAX_DURATION || abs($nanos) > 999_999_999 || ($seconds * $nanos) < 0) {
            throw new \LogicException("google.protobuf.Duration out of range: {$seconds}s {$nanos}ns");
        }
        $sign = $seconds < 0 || $nanos < 0 ? '-' : '';
        return '"' . $sign . abs($seconds) . self::fraction(abs($nanos)) . 's"';
    }

    private static function readDuration(mixed $value): Duration
    {
        if (!is_string($value) || !preg_match(self::DURATION, $value, $m)) {
            throw new DecodeError('JSON for google.protobuf.Duration: expected a string like "1.5s"');
        }
        if (strlen(ltrim($m[2], '0')) > 12 || (int) $m[2] > self::MAX_DURATION) {
            throw new DecodeError("JSON for google.protobuf.Duration: {$value} is out of range");
        }
        $sign = $m[1] === '-' ? -1 : 1;
        return new Duration(['seconds' => $sign * (int) $m[2], 'nanos' => $sign * self::nanos($m[3] ?? '')]);
    }

    /** Nanoseconds as 0, 3, 6 or 9 fractional digits, as canonical writers do. */
    private static function fraction(int $nanos): string
    {
        return match (true) {
            $nanos === 0 => '',
            $nanos % 1_000_000 === 0 => sprintf('.%03d', intdiv($nanos, 1_000_000)),
            $nanos % 1_000 === 0 => sprintf('.%06d', intdiv($nanos, 1_000)),
            default => sprintf('.%09d', $nanos),
        };
    }

    private static function nanos(string $digits): int
    {
        return $digits === '' ? 0 : (int) str_pad($digits, 9, '0');
    }

    private static function writeFieldMask(FieldMask $mask): string
    {
        $paths = [];
        foreach ($mask->getPaths() as $path) {
            $paths[] = preg_replace_callback('/_([a-z])/', static fn (array $m): string => strtoupper($m[1]), $path);
        }
        return json_encode(implode(',', $paths), JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_THROW_ON_ERROR);
    }

    private static function readFieldMask(mixed $value): FieldMask
    {
        if (!is_string($value)) {
            throw new DecodeError('JSON for google.protobuf.FieldMask: expected a string');
        }
        $paths = [];
        foreach ($value === '' ? [] : explode(',', $value) as $path) {
            $paths[] = strtolower((string) preg_replace('/([A-Z])/', '_$1', $path));
        }
        return new FieldMask(['paths' => $paths]);
    }

    private static function writeStruct(Struct $struct): string
    {
        $entries = [];
        foreach ($struct->getFields() as $key => $value) {
            $entries[] = json_encode((string) $key, JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_THROW_ON_ERROR)
                . ':' . self::writeValue($value);
        }
        return '{' . implode(',', $entries) . '}';
    }

    private static function writeList(ListValue $list): string
    {
        $items = [];
        foreach ($list->getValues() as $value) {
            $items[] = self::writeValue($value);
        }
        return '[' . implode(',', $items) . ']';
    }

    private static function writeValue(Value $value): string
    {
        return match ($value->getKind()) {
            'number_value' => BareJsonWriter::double($value->getNumberValue()),
            'string_value' => BareJsonWriter::scalar(GPBType::STRING, $value->getStringValue(), null),
            'bool_value' => $value->getBoolValue() ? 'true' : 'false',
            'struct_value' => self::writeStruct($value->getStructValue()),
            'list_value' => self::writeList($value->getListValue()),
            default => 'null',
        };
    }

    private static function readStruct(mixed $value, int $depth): Struct
    {
        if ($value === []) {
            return new Struct();
        }
        if (!$value instanceof \stdClass) {
            throw new DecodeError('JSON for google.protobuf.Struct: expected an object');
        }
        $struct = new Struct();
        $fields = $struct->getFields();
        foreach (get_object_vars($value) as $key => $item) {
            $fields[(string) $key] = self::readValue($item, $depth + 1);
        }
        return $struct;
    }

    private static function readList(mixed $value, int $depth): ListValue
    {
        if (!is_array($value)) {
            throw new DecodeError('JSON for google.protobuf.ListValue: expected an array');
        }
        $list = new ListValue();
        $values = $list->getValues();
        foreach ($value as $item) {
            $values[] = self::readValue($item, $depth + 1);
        }
        return $list;
    }

    private static function readValue(mixed $value, int $depth): Value
    {
        if ($depth > BareJsonCodec::MAX_DEPTH) {
            throw new DecodeError('JSON for google.protobuf.Value: nested deeper than ' . BareJsonCodec::MAX_DEPTH);
        }
        $out = new Value();
        match (true) {
            $value === null => $out->setNullValue(0),
            is_bool($value) => $out->setBoolValue($value),
            is_int($value), is_float($value) => $out->setNumberValue((float) $value),
            is_string($value) => $out->setStringValue($value),
            is_array($value) => $out->setListValue(self::readList($value, $depth)),
            default => $out->setStructValue(self::readStruct($value, $depth)),
        };
        return $out;
    }

    /** @param class-string<Message> $class */
    private static function byLibrary(mixed $value, string $class): Message
    {
        $message = new $class();
        try {
            $message->mergeFromJsonString(json_encode($value, JSON_PRESERVE_ZERO_FRACTION | JSON_THROW_ON_ERROR));
        } catch (\Exception $e) {
            throw new DecodeError("JSON for {$class}: {$e->getMessage()}", 0, $e);
        }
        return $message;
    }
}
