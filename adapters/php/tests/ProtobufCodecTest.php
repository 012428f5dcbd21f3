<?php

declare(strict_types=1);

namespace Bridge\Runtime\Tests;

use Bridge\Interop\V1\Blob;
use Bridge\Interop\V1\Composite;
use Bridge\Interop\V1\Inner;
use Bridge\Runtime\Codec\DecodeError;
use Bridge\Runtime\Codec\ProtobufCodec;
use PHPUnit\Framework\TestCase;

/**
 * What the vectors do not pin down: wire forms other encoders may write, and unknown fields.
 */
final class ProtobufCodecTest extends TestCase
{
    private ProtobufCodec $codec;

    protected function setUp(): void
    {
        $this->codec = new ProtobufCodec();
    }

    public function testUnknownFieldsSurviveARoundTrip(): void
    {
        // Blob{text: "t"} plus field 9 (varint), field 10 (fixed32) and a group 11 (start/end).
        $unknown = "\x48\x2a" . "\x55abcd" . "\x5b\x08\x01\x5c";
        $blob = $this->codec->decode("\x12\x01t" . $unknown, Blob::class);
        self::assertSame('t', $blob->getText());
        self::assertSame("\x12\x01t" . $unknown, $this->codec->encode($blob));
    }

    public function testReadsUnpackedRepeatedScalarsAndMergesARepeatedMessageField(): void
    {
        // numbers = 1, 2 unpacked, then 3 packed; inner given twice: {name: "a"} then {value: 5}.
        $bytes = "\x20\x01\x20\x02\x22\x01\x03" . "\x12\x03\x0a\x01a" . "\x12\x02\x10\x05";
        $composite = $this->codec->decode($bytes, Composite::class);
        self::assertSame([1, 2, 3], iterator_to_array($composite->getNumbers()));
        self::assertSame('a', $composite->getInner()->getName());
        self::assertSame(5, $composite->getInner()->getValue());
    }

    public function testAMapEntryMissingItsValueGetsTheDefault(): void
    {
        // by_name {key: "k"} (no value), labels {value: "v"} (no key)
        $composite = $this->codec->decode("\x32\x03\x0a\x01k" . "\x3a\x03\x12\x01v", Composite::class);
        self::assertEquals(new Inner(), $composite->getByName()['k']);
        self::assertSame('v', $composite->getLabels()[0]);
    }

    /** @return array<string, array{string}> */
    public static function malformed(): array
    {
        return [
            'field number 0 in a nested message' => ["\x12\x02\x00\x01"],
            'nested length past its parent' => ["\x12\x05\x0a\x01a"],
            'end group without a start' => ["\x0c"],
            'unterminated group' => ["\x0b\x08\x01"],
            'packed field overrunning' => ["\x22\x02\x80\x80"],
            'invalid UTF-8 in a nested string' => ["\x12\x04\x0a\x02\xc3\x28"],
            'wire type 6' => ["\x0e"],
        ];
    }

    /** @dataProvider malformed */
    public function testRefusesMalformedInput(string $bytes): void
    {
        $this->expectException(DecodeError::class);
        $this->codec->decode($bytes, Composite::class);
    }

    public function testRefusesNestingDeeperThanTheLimit(): void
    {
        $deep = '';
        for ($i = 0; $i < 120; $i++) {
            $deep = "\x6a" . self::varint(strlen($deep)) . $deep;  // child (13), length-delimited
        }
        $this->expectException(DecodeError::class);
        $this->codec->decode($deep, Composite::class);
    }

    public function testEncodesALargeBytesFieldQuickly(): void
    {
        $blob = new Blob(['data' => str_repeat("\xab", 16 << 20)]);
        $started = hrtime(true);
        $bytes = $this->codec->encode($blob);
        self::assertLessThan(2.0, (hrtime(true) - $started) / 1e9, 'no byte-by-byte copy');
        self::assertSame(16 << 20, strlen($this->codec->decode($bytes, Blob::class)->getData()));
    }

    private static function varint(int $n): string
    {
        $out = '';
        while ($n >= 0x80) {
            $out .= chr($n & 0x7f | 0x80);
            $n >>= 7;
        }
        return $out . chr($n);
    }
}
