<?php

declare(strict_types=1);

namespace Bridge\Runtime\Tests;

use Bridge\Runtime\Codec\DecodeError;
use Bridge\Runtime\Envelope;
use Bridge\V1\Request;
use PHPUnit\Framework\TestCase;

/**
 * The hand-written bridge.v1.Request reader agrees with the protobuf library and the vectors.
 */
final class EnvelopeTest extends TestCase
{
    /** @return array<string, array{string}> */
    public static function requestVectors(): array
    {
        return self::vectors(false);
    }

    /** @return array<string, array{string}> */
    public static function invalidRequestVectors(): array
    {
        return self::vectors(true);
    }

    /** @dataProvider requestVectors */
    public function testReadsWhatTheLibraryReads(string $hex): void
    {
        $bytes = hex2bin($hex);
        $library = new Request();
        $library->mergeFromString($bytes);
        $envelope = Envelope::parse($bytes);
        self::assertSame($library->getVersion(), $envelope->version);
        self::assertSame($library->getDeadlineMs(), $envelope->deadlineMs);
        self::assertSame($library->getEncoding(), $envelope->encoding);
        self::assertSame($library->getBody(), $envelope->body);
        self::assertSame(iterator_to_array($library->getMetadata()), $envelope->metadata);
        self::assertSame([$library->getKeyId(), $library->getNonce(), $library->getMac()], [$envelope->keyId, $envelope->nonce, $envelope->mac]);
    }

    public function testReadsTheSignatureFields(): void
    {
        $request = new Request(['version' => 1, 'key_id' => 'k2026', 'nonce' => str_repeat("\xff", 16), 'mac' => str_repeat("\x00", 32)]);
        $envelope = Envelope::parse($request->serializeToString());
        self::assertSame(['k2026', str_repeat("\xff", 16), str_repeat("\x00", 32)], [$envelope->keyId, $envelope->nonce, $envelope->mac]);
        // key_id is a string: invalid UTF-8 is not an envelope, as for the library.
        $this->expectException(DecodeError::class);
        Envelope::parse("\x08\x01\x32\x02\xc3\x28");
    }

    /** @dataProvider invalidRequestVectors */
    public function testRefusesTheInvalidVector(string $hex): void
    {
        $this->expectException(DecodeError::class);
        Envelope::parse(hex2bin($hex));
    }

    public function testReadsLargeValuesAndSkipsUnknownFields(): void
    {
        $request = new Request([
            'version' => 4294967295,
            'deadline_ms' => -5,
            'encoding' => -1,
            'body' => str_repeat("\x00\xff", 40000),
        ]);
        $request->getMetadata()['ключ'] = 'значение';
        $request->getMetadata()[''] = '';
        // Unknown fields of every wire type, before and after the known ones.
        $bytes = "\x30\x01" . $request->serializeToString() . "\x39" . str_repeat("\x01", 8) . "\x45abcd\x4a\x02zz";
        $envelope = Envelope::parse($bytes);
        self::assertSame(4294967295, $envelope->version);
        self::assertSame(-5, $envelope->deadlineMs);
        self::assertSame(-1, $envelope->encoding);
        self::assertSame(80000, strlen($envelope->body));
        self::assertSame(['ключ' => 'значение', '' => ''], $envelope->metadata);
    }

    public function testRefusesInvalidUtf8Metadata(): void
    {
        $this->expectException(DecodeError::class);
        Envelope::parse("\x08\x01\x1a\x04\x0a\x02\xc3\x28");
    }

    /** @return array<string, array{string}> */
    private static function vectors(bool $invalid): array
    {
        $all = json_decode((string) file_get_contents(BRIDGE_REPO_ROOT . '/schemas/testdata/vectors.json'), true);
        $cases = [];
        foreach ($all as $case) {
            if ($case['type'] === 'bridge.v1.Request' && ($case['invalid'] ?? false) === $invalid) {
                $cases[$case['name']] = [$case['protobuf_hex']];
            }
        }
        self::assertNotEmpty($cases);
        return $cases;
    }
}
