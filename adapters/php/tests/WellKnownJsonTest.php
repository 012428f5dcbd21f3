<?php

declare(strict_types=1);

namespace Bridge\Runtime\Tests;

use Bridge\Runtime\Codec\BareJsonCodec;
use Bridge\Runtime\Codec\DecodeError;
use Google\Protobuf\BoolValue;
use Google\Protobuf\BytesValue;
use Google\Protobuf\DoubleValue;
use Google\Protobuf\Duration;
use Google\Protobuf\FieldMask;
use Google\Protobuf\GPBEmpty;
use Google\Protobuf\Int32Value;
use Google\Protobuf\Int64Value;
use Google\Protobuf\ListValue;
use Google\Protobuf\Struct;
use Google\Protobuf\Timestamp;
use Google\Protobuf\UInt64Value;
use Google\Protobuf\Value;
use PHPUnit\Framework\TestCase;

/**
 * The well-known types in bare JSON keep protobuf's canonical form (wire contract 8.2, rule 8),
 * without bcmath (the library's own JSON support for them needs it).
 */
final class WellKnownJsonTest extends TestCase
{
    /** @return array<string, array{class-string, string, string}> class, input, canonical output */
    public static function roundTrips(): array
    {
        return [
            'timestamp' => [Timestamp::class, '"2020-01-02T03:04:05.500Z"', '"2020-01-02T03:04:05.500Z"'],
            'timestamp offset' => [Timestamp::class, '"2020-01-02T03:04:05.123456789+01:30"', '"2020-01-02T01:34:05.123456789Z"'],
            'timestamp first' => [Timestamp::class, '"0001-01-01T00:00:00Z"', '"0001-01-01T00:00:00Z"'],
            'timestamp last' => [Timestamp::class, '"9999-12-31T23:59:59.999999999Z"', '"9999-12-31T23:59:59.999999999Z"'],
            'duration' => [Duration::class, '"1.5s"', '"1.500s"'],
            'duration negative' => [Duration::class, '"-0.000001s"', '"-0.000001s"'],
            'duration whole' => [Duration::class, '"315576000000s"', '"315576000000s"'],
            'field mask' => [FieldMask::class, '"a.bC,fooBar"', '"a.bC,fooBar"'],
            'int64 wrapper' => [Int64Value::class, '9007199254740993', '"9007199254740993"'],
            // Canonical (rule 8): reading rule 4's 2^53 limit is for the fields of other messages.
            'int64 wrapper as a float' => [Int64Value::class, '18014398509481984.0', '"18014398509481984"'],
            'uint64 wrapper' => [UInt64Value::class, '"18446744073709551615"', '"18446744073709551615"'],
            'int32 wrapper' => [Int32Value::class, '"-7"', '-7'],
            'double wrapper' => [DoubleValue::class, '"-Infinity"', '"-Infinity"'],
            'bool wrapper' => [BoolValue::class, 'true', 'true'],
            'bytes wrapper' => [BytesValue::class, '"AAE"', '"AAE="'],
            'struct' => [Struct::class, '{"a": [1, "x", null, {"b": true}], "": {}}', '{"a":[1.0,"x",null,{"b":true}],"":{}}'],
            'list' => [ListValue::class, '[1.5, []]', '[1.5,[]]'],
            'value null' => [Value::class, 'null', 'null'],
            'empty' => [GPBEmpty::class, '{}', '{}'],
            'empty from zero bytes' => [GPBEmpty::class, '', '{}'],
        ];
    }

    /**
     * @dataProvider roundTrips
     * @param class-string<\Google\Protobuf\Internal\Message> $class
     */
    public function testReadsAndWritesTheCanonicalForm(string $class, string $input, string $output): void
    {
        $codec = new BareJsonCodec();
        $message = $codec->decode($input, $class);
        self::assertSame($output, $codec->encode($message));
        self::assertEquals($message, $codec->decode($codec->encode($message), $class));
    }

    /** @return array<string, array{class-string, string}> */
    public static function invalid(): array
    {
        return [
            'no such day' => [Timestamp::class, '"2020-02-30T00:00:00Z"'],
            'no zone' => [Timestamp::class, '"2020-01-01T00:00:00"'],
            'timestamp number' => [Timestamp::class, '5'],
            'duration unit' => [Duration::class, '"5m"'],
            'duration range' => [Duration::class, '"315576000001s"'],
            'int32 wrapper range' => [Int32Value::class, '2147483648'],
            'struct not an object' => [Struct::class, '"x"'],
            'timestamp zero bytes' => [Timestamp::class, ''],
            'int64 wrapper zero bytes' => [Int64Value::class, ''],
            'value too deep' => [Value::class, str_repeat('[', 102) . str_repeat(']', 102)],
        ];
    }

    /**
     * @dataProvider invalid
     * @param class-string<\Google\Protobuf\Internal\Message> $class
     */
    public function testRefuses(string $class, string $input): void
    {
        $this->expectException(DecodeError::class);
        (new BareJsonCodec())->decode($input, $class);
    }
}
