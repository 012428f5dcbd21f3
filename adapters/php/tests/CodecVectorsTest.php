<?php

declare(strict_types=1);

namespace Bridge\Runtime\Tests;

use Bridge\Runtime\Codec\Codec;
use Bridge\Runtime\Codec\DecodeError;
use Bridge\Runtime\Codec\MsgpackCodec;
use Bridge\Runtime\Codec\ProtobufCodec;
use Google\Protobuf\Internal\DescriptorPool;
use Google\Protobuf\Internal\Message;
use PHPUnit\Framework\TestCase;

/**
 * Every case of schemas/testdata/vectors.json, the bytes five languages must agree on.
 */
final class CodecVectorsTest extends TestCase
{
    /** @return array<string, array{array<string, mixed>}> */
    public static function validCases(): array
    {
        return self::cases(false);
    }

    /** @return array<string, array{array<string, mixed>}> */
    public static function invalidCases(): array
    {
        return self::cases(true);
    }

    /** @return array<string, array{array<string, mixed>}> */
    public static function decodeOnlyCases(): array
    {
        return self::cases(false, true);
    }

    /**
     * Bytes no encoder writes (a repeated map value, a oneof switching back, a wrong wire type, an
     * unknown msgpack extension, an empty body) must decode to the vector's JSON message.
     *
     * @dataProvider decodeOnlyCases
     * @param array<string, mixed> $case
     */
    public function testDecodesTheDecodeOnlyVector(array $case): void
    {
        $class = self::classOf($case['type']);
        [$codec, $hex] = isset($case['msgpack_hex'])
            ? [new MsgpackCodec(), $case['msgpack_hex']]
            : [new ProtobufCodec(), $case['protobuf_hex']];
        $decoded = $codec->decode(hex2bin($hex), $class);
        // The library's JSON writer (no bcmath needed to write) gives protobuf's canonical JSON.
        $json = json_decode($decoded->serializeToJsonString(), true, 512, JSON_THROW_ON_ERROR | JSON_BIGINT_AS_STRING);
        self::assertSame(self::canonical($case['json']), self::canonical($json ?: []));
    }

    /** Object keys sorted, so two JSON values compare by content. */
    private static function canonical(mixed $value): mixed
    {
        if (!is_array($value)) {
            return $value;
        }
        $value = array_map(self::canonical(...), $value);
        if (!array_is_list($value)) {
            ksort($value, SORT_STRING);
        }
        return $value;
    }

    /**
     * @dataProvider validCases
     * @param array<string, mixed> $case
     */
    public function testEncodesAndDecodesTheVector(array $case): void
    {
        // The vector's JSON form is not used: the PHP library's JSON parser needs bcmath for
        // 64-bit values. The protobuf bytes, decoded by the library, stand in for the message.
        $class = self::classOf($case['type']);
        $msgpack = new MsgpackCodec();
        $protobuf = new ProtobufCodec();

        $fromProtobuf = $protobuf->decode(hex2bin($case['protobuf_hex']), $class);
        self::assertSame($case['msgpack_hex'], bin2hex($msgpack->encode($fromProtobuf)), 'msgpack encoding');

        $fromLibrary = new $class();
        $fromLibrary->mergeFromString(hex2bin($case['protobuf_hex']));
        self::assertSame($case['msgpack_hex'], bin2hex($msgpack->encode($fromLibrary)), 'the protobuf library agrees');

        $fromMsgpack = $msgpack->decode(hex2bin($case['msgpack_hex']), $class);
        self::assertSame($case['msgpack_hex'], bin2hex($msgpack->encode($fromMsgpack)), 'msgpack round trip');
        if (!str_contains($case['name'], 'nan')) {
            self::assertEquals($fromProtobuf, $fromMsgpack, 'msgpack decoding');
        }
        if ($case['canonical_protobuf']) {
            self::assertSame($case['protobuf_hex'], bin2hex($protobuf->encode($fromMsgpack)), 'protobuf encoding');
        }
        $reencoded = $protobuf->decode($protobuf->encode($fromProtobuf), $class);
        self::assertSame($case['msgpack_hex'], bin2hex($msgpack->encode($reencoded)), 'protobuf round trip');
    }

    /**
     * @dataProvider invalidCases
     * @param array<string, mixed> $case
     */
    public function testRejectsTheInvalidVector(array $case): void
    {
        $class = self::classOf($case['type']);
        [$codec, $hex] = isset($case['msgpack_hex'])
            ? [new MsgpackCodec(), $case['msgpack_hex']]
            : [new ProtobufCodec(), $case['protobuf_hex']];
        $this->expectException(DecodeError::class);
        $codec->decode(hex2bin($hex), $class);
    }

    public function testEmptyPayloadIsTheEmptyMessageInBothEncodings(): void
    {
        $class = self::classOf('bridge.interop.v1.Scalars');
        foreach ([new MsgpackCodec(), new ProtobufCodec()] as $codec) {
            /** @var Codec $codec */
            self::assertSame('', $codec->decode('', $class)->serializeToString());
        }
    }

    /** @return class-string<Message> */
    private static function classOf(string $protoName): string
    {
        $descriptor = DescriptorPool::getGeneratedPool()->getDescriptorByProtoName($protoName);
        self::assertNotNull($descriptor, "no PHP class for {$protoName}");
        return $descriptor->getClass();
    }

    /** @return array<string, array{array<string, mixed>}> */
    private static function cases(bool $invalid, bool $decodeOnly = false): array
    {
        $all = json_decode(
            (string) file_get_contents(BRIDGE_REPO_ROOT . '/schemas/testdata/vectors.json'),
            true,
            512,
            JSON_THROW_ON_ERROR | JSON_BIGINT_AS_STRING
        );
        $cases = [];
        foreach ($all as $case) {
            if (($case['invalid'] ?? false) === $invalid && ($case['decode_only'] ?? false) === $decodeOnly) {
                $cases[$case['name']] = [$case];
            }
        }
        return $cases;
    }
}
