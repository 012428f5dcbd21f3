<?php

declare(strict_types=1);

namespace Bridge\Runtime\Tests;

use Bridge\Runtime\Envelope;
use Bridge\Runtime\Security\Keyring;
use Bridge\Runtime\Security\Signing;
use Bridge\V1\Request;
use PHPUnit\Framework\TestCase;

/**
 * Every case of schemas/testdata/signing_vectors.json (wire contract, section 9.4): the request
 * input and MAC, the reply input and MAC, computed with hash_hmac.
 */
final class SigningVectorsTest extends TestCase
{
    /** @return array<string, array{array<string, mixed>}> */
    public static function cases(): array
    {
        $cases = json_decode((string) file_get_contents(BRIDGE_REPO_ROOT . '/schemas/testdata/signing_vectors.json'), true, 512, JSON_THROW_ON_ERROR);
        $out = [];
        foreach ($cases as $case) {
            $out[$case['name']] = [$case];
        }
        return $out;
    }

    public function testTheFileHoldsRequestAndReplyCases(): void
    {
        $cases = array_column(self::cases(), 0);
        self::assertNotEmpty(array_filter($cases, static fn (array $c): bool => isset($c['request_mac_hex'])));
        self::assertNotEmpty(array_filter($cases, static fn (array $c): bool => isset($c['reply_mac_hex'])));
    }

    /**
     * @dataProvider cases
     * @param array<string, mixed> $case
     */
    public function testVector(array $case): void
    {
        $key = base64_decode($case['key_base64'], true);
        self::assertIsString($key);
        // The key is read as BRIDGE_KEYS would carry it.
        self::assertSame($key, Keyring::parse("{$case['key_id']}:{$case['key_base64']}")->key($case['key_id']));
        $nonce = (string) hex2bin($case['nonce_hex']);
        if (isset($case['request_mac_hex'])) {
            $input = Signing::requestInput(
                $case['function'],
                $case['key_id'],
                $nonce,
                $case['version'],
                $case['deadline_ms'],
                $case['encoding'],
                $case['metadata'],
                (string) hex2bin($case['body_hex']),
            );
            self::assertSame($case['request_input_hex'], bin2hex($input));
            self::assertSame($case['request_mac_hex'], bin2hex(Signing::hmac($key, $input)));
            // The same values through an envelope as a client sends it, read by the worker's reader.
            $request = new Request([
                'version' => $case['version'],
                'deadline_ms' => $case['deadline_ms'],
                'encoding' => $case['encoding'],
                'body' => hex2bin($case['body_hex']),
                'key_id' => $case['key_id'],
                'nonce' => $nonce,
                'mac' => hex2bin($case['request_mac_hex']),
            ]);
            foreach ($case['metadata'] as $k => $v) {
                $request->getMetadata()[(string) $k] = $v;
            }
            $envelope = Envelope::parse($request->serializeToString());
            self::assertSame($case['request_input_hex'], bin2hex(Signing::requestInput(
                $case['function'],
                $envelope->keyId,
                $envelope->nonce,
                $envelope->version,
                $envelope->deadlineMs,
                $envelope->encoding,
                $envelope->metadata,
                $envelope->body,
            )));
            self::assertSame($case['request_mac_hex'], bin2hex($envelope->mac));
        }
        if (isset($case['reply_mac_hex'])) {
            $payload = (string) hex2bin($case['payload_hex']);
            $input = Signing::replyInput($case['function'], $case['key_id'], $nonce, $case['packet'], $payload);
            self::assertSame($case['reply_input_hex'], bin2hex($input));
            $mac = Signing::replyMac($key, $case['function'], $case['key_id'], $nonce, $case['packet'], $payload);
            self::assertSame($case['reply_mac_hex'], bin2hex($mac));
            self::assertSame($payload, Signing::splitSigned($key, $case['function'], $case['key_id'], $nonce, $case['packet'], $payload . $mac));
            $flipped = $payload . $mac;
            $flipped[0] = chr(ord($flipped[0]) ^ 1);
            self::assertNull(Signing::splitSigned($key, $case['function'], $case['key_id'], $nonce, $case['packet'], $flipped));
        }
    }
}
