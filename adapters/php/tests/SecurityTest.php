<?php

declare(strict_types=1);

namespace Bridge\Runtime\Tests;

use Bridge\Runtime\Envelope;
use Bridge\Runtime\Security\JobVerifier;
use Bridge\Runtime\Security\Keyring;
use Bridge\Runtime\Security\KeyringError;
use Bridge\Runtime\Security\ReplayCache;
use Bridge\Runtime\Security\SharedReplayCache;
use Bridge\Runtime\Security\Signing;
use Bridge\Runtime\Supervisor;
use Bridge\V1\Request;
use PHPUnit\Framework\TestCase;

/**
 * Keys (BRIDGE_KEYS syntax and checks), the checks of wire contract section 9.2 in order, and the
 * bounded replay cache with its eviction floor (the same behaviour as bridge/security/verify.py).
 */
final class SecurityTest extends TestCase
{
    private const FN = 'bridge.interop.v1.Interop.Echo';
    private const KEY = 'k2026';

    private static function key(): string
    {
        return implode('', array_map('chr', range(100, 131)));
    }

    private static function keyring(): Keyring
    {
        return Keyring::parse(self::KEY . ':' . base64_encode(self::key()) . ',old:' . base64_encode(str_repeat('o', 16)));
    }

    /** @param array<string, string> $metadata */
    private static function signed(
        int $deadlineMs,
        string $body = "\x0a\x02hi",
        array $metadata = ['tenant' => 'a', '7' => 'numeric key'],
        ?string $nonce = null,
        string $keyId = self::KEY,
        ?string $key = null,
        int $encoding = 1,
    ): Envelope {
        $nonce ??= random_bytes(16);
        $mac = Signing::hmac($key ?? self::key(), Signing::requestInput(self::FN, $keyId, $nonce, 1, $deadlineMs, $encoding, $metadata, $body));
        $request = new Request(['version' => 1, 'deadline_ms' => $deadlineMs, 'encoding' => $encoding, 'body' => $body,
            'key_id' => $keyId, 'nonce' => $nonce, 'mac' => $mac]);
        foreach ($metadata as $k => $v) {
            $request->getMetadata()[(string) $k] = $v;
        }
        return Envelope::parse($request->serializeToString());
    }

    private static function with(Envelope $e, string $field, mixed $value): Envelope
    {
        $request = new Request(['version' => $e->version, 'deadline_ms' => $e->deadlineMs, 'encoding' => $e->encoding,
            'body' => $e->body, 'key_id' => $e->keyId, 'nonce' => $e->nonce, 'mac' => $e->mac]);
        foreach ($e->metadata as $k => $v) {
            $request->getMetadata()[(string) $k] = $v;
        }
        $request->{'set' . str_replace('_', '', ucwords($field, '_'))}($value);
        return Envelope::parse($request->serializeToString());
    }

    public function testKeysParseAsBridgeKeysDoes(): void
    {
        $keys = Keyring::parse("# rotation\nk2026:" . base64_encode(self::key()) . "\n\n old : " . base64_encode(str_repeat('o', 16)) . ' ,');
        self::assertSame(self::key(), $keys->key('k2026'));
        self::assertSame(str_repeat('o', 16), $keys->key('old'));
        self::assertNull($keys->key('k1999'));
        self::assertSame('k2026', $keys->signingId);
        self::assertSame('old', Keyring::parse('k2026:' . base64_encode(self::key()) . ',old:' . base64_encode(str_repeat('o', 16)), 'old')->signingId);
        self::assertSame('k2026, old', $keys->ids());
    }

    public function testBadKeyListsAreRefusedWithoutShowingTheKey(): void
    {
        $short = base64_encode('fifteen-bytes!!');
        $cases = [
            '' => 'a keyring needs at least one key',
            'k1' => 'key entry 1 is not ID:BASE64',
            "k1:{$short}" => "key 'k1' is 15 bytes; at least 16 are needed",
            'k1:c2VjcmV0LXNlY3JldC1zZWNyZXQ' => "key 'k1': not standard base64",  // padding missing
            'k1:c2VjcmV0LXNl Y3JldC1zZWNyZXQ=' => "key 'k1': not standard base64",
            'k1:c2VjcmV0LXNlY3JldC1zZWNyZXQ=,k1:c2VjcmV0LXNlY3JldC1zZWNyZXQ=' => "key 'k1' is listed twice",
            'bad/id:c2VjcmV0LXNlY3JldC1zZWNyZXQ=' => 'key entry 1: the id must be 1 to 64 characters of [A-Za-z0-9._-]',
            'k0:c2VjcmV0LXNlY3JldC1zZWNyZXQ=,bad/id:c2VjcmV0LXNlY3JldC1zZWNyZXQ=' => 'key entry 2: the id must be',
            'k0:c2VjcmV0LXNlY3JldC1zZWNyZXQ=,' . str_repeat('i', 21) . ':c2VjcmV0!' => 'key entry 2: not standard base64',
            str_repeat('i', 65) . ':c2VjcmV0LXNlY3JldC1zZWNyZXQ=' => '1 to 64 characters',
        ];
        foreach ($cases as $text => $message) {
            try {
                Keyring::parse((string) $text);
                self::fail("accepted: {$text}");
            } catch (KeyringError $e) {
                self::assertStringContainsString($message, $e->getMessage(), (string) $text);
                self::assertStringNotContainsString('c2VjcmV0', $e->getMessage());
            }
        }
        $this->expectExceptionMessage(
            "the signing key id 'k9' is not among the keys (k1); BRIDGE_SIGNING_KEY names a key id, not a key"
        );
        Keyring::parse('k1:c2VjcmV0LXNlY3JldC1zZWNyZXQ=', 'k9');
    }

    /**
     * An entry written the wrong way round (KEY:ID), a key where an id is due, a key given as
     * BRIDGE_SIGNING_KEY: the error names the entry by its number, never by the key.
     */
    public function testKeyErrorsNeverEchoAKeyGivenInTheWrongPlace(): void
    {
        $key = base64_encode(str_repeat('s', 16));
        $other = base64_encode(str_repeat('t', 16));
        $cases = [
            [['BRIDGE_KEYS' => "{$key}:k1"], 'key entry 1: not standard base64'],
            [['BRIDGE_KEYS' => "k0:{$other},{$key}:{$key}"], 'key entry 2: the id must be 1 to 64 characters of [A-Za-z0-9._-] (entries are ID:BASE64)'],
            [['BRIDGE_KEYS' => "k1:{$key}", 'BRIDGE_SIGNING_KEY' => $key],
                'the signing key id (not shown: it looks like a key) is not among the keys (k1); '
                . 'BRIDGE_SIGNING_KEY names a key id, not a key'],
            [['BRIDGE_KEYS' => "{$key}:k1", 'BRIDGE_SIGNING_KEY' => $key], 'key entry 1: not standard base64'],
        ];
        foreach ($cases as [$env, $message]) {
            try {
                Keyring::fromEnv($env);
                self::fail('accepted: ' . json_encode($env));
            } catch (KeyringError $e) {
                self::assertSame($message, $e->getMessage());
                self::assertStringNotContainsString(substr($key, 0, 22), $e->getMessage());
            }
        }
        // A short valid id is shown; a longer one could be a key (no padding, no + or /): not.
        try {
            new Keyring(['k1' => self::key(), str_repeat('A', 21) => 'short']);
            self::fail('accepted a short key');
        } catch (KeyringError $e) {
            self::assertSame('key entry 2 is 5 bytes; at least 16 are needed', $e->getMessage());
        }
    }

    public function testKeysFromTheEnvironmentOrAFile(): void
    {
        self::assertNull(Keyring::fromEnv([]));
        $keys = Keyring::fromEnv(['BRIDGE_KEYS' => 'a:' . base64_encode(self::key()) . ',b:' . base64_encode(self::key()), 'BRIDGE_SIGNING_KEY' => 'b']);
        self::assertSame('b', $keys?->signingId);
        $file = tempnam(sys_get_temp_dir(), 'keys');
        file_put_contents($file, "# keys\nf1:" . base64_encode(self::key()) . "\n");
        try {
            self::assertSame(self::key(), Keyring::fromEnv(['BRIDGE_KEYS_FILE' => $file])?->key('f1'));
        } finally {
            unlink($file);
        }
        $this->expectException(KeyringError::class);
        Keyring::fromEnv(['BRIDGE_KEYS_FILE' => '/nonexistent/keys']);
    }

    public function testADumpOfTheKeyringShowsIdsOnly(): void
    {
        $dump = print_r(self::keyring(), true) . var_export(self::keyring()->ids(), true);
        self::assertStringContainsString('k2026', $dump);
        self::assertStringNotContainsString(self::key(), $dump);
        self::assertStringNotContainsString(base64_encode(self::key()), $dump);
    }

    public function testTheChecksInOrder(): void
    {
        $verifier = new JobVerifier(self::keyring());
        $now = 1_800_000_000_000;
        $good = self::signed($now + 30_000);
        $unsigned = Envelope::parse((new Request(['version' => 1, 'deadline_ms' => $now + 30_000, 'body' => 'x']))->serializeToString());
        $cases = [
            'unsigned job' => $unsigned,
            'unknown key id' => self::signed($now + 30_000, keyId: 'k1999'),
            // A wrong key, a short nonce, a short MAC, one bit of the body, a metadata value.
            'bad signature' => [
                self::signed($now + 30_000, key: str_repeat('x', 32)),
                self::with($good, 'nonce', substr($good->nonce, 1)),
                self::with($good, 'mac', substr($good->mac, 1)),
                self::with($good, 'body', "\x0a\x02hj"),
                self::with($good, 'encoding', 2),
                self::with($good, 'deadline_ms', $now + 30_001),
            ],
            // The signature is checked before the deadline: a forged job never learns about it.
            'a signed job needs a deadline' => self::signed(0),
            'expired' => [self::signed($now), self::signed($now - 1)],
            'deadline too far ahead' => self::signed($now + 86_400_000 + 300_000 + 1),
        ];
        foreach ($cases as $reason => $envelopes) {
            foreach (is_array($envelopes) ? $envelopes : [$envelopes] as $i => $envelope) {
                self::assertSame($reason, $verifier->check(self::FN, $envelope, $now), "{$reason} #{$i}");
            }
        }
        self::assertSame('bad signature', $verifier->check('other.Function', $good, $now));
        self::assertNull($verifier->check(self::FN, self::signed($now + 86_400_000 + 300_000), $now));
        // Runs once; the same job again is a replay, whatever its handle (a restarted gearmand, or
        // another one on a host of the same name, gives out the same handles again).
        self::assertNull($verifier->check(self::FN, $good, $now));
        self::assertSame('replayed', $verifier->check(self::FN, $good, $now + 1));
        // The older key is accepted too (rotation).
        self::assertNull($verifier->check(self::FN, self::signed($now + 30_000, keyId: 'old', key: str_repeat('o', 16)), $now));
    }

    public function testRepliesAreSignedOnlyForAKnownKeyAndA16ByteNonce(): void
    {
        $verifier = new JobVerifier(self::keyring());
        $good = self::signed(1);
        self::assertSame(self::key(), $verifier->replyKey($good));
        self::assertNull($verifier->replyKey(self::with($good, 'nonce', 'short')));
        self::assertNull($verifier->replyKey(self::with($good, 'key_id', 'k1999')));
    }

    public function testTheReplayCacheForgetsAtTheDeadline(): void
    {
        $cache = new ReplayCache(10);
        self::assertNull($cache->admit('k', 'n1', 1000, 0));
        self::assertSame('replayed', $cache->admit('k', 'n1', 1000, 999));
        self::assertNull($cache->admit('other', 'n1', 1000, 999), 'the key id is part of the entry');
        self::assertNull($cache->admit('k', 'n1', 2000, 1000), 'gone at its deadline');
        self::assertSame(1, $cache->count());
        self::assertSame(0, $cache->floorMs);
    }

    public function testAFullReplayCacheEvictsTheEarliestAndRefusesAtOrBelowTheFloor(): void
    {
        $cache = new ReplayCache(3);
        foreach ([[500, 'a'], [300, 'b'], [400, 'c']] as [$deadline, $nonce]) {
            self::assertNull($cache->admit('k', $nonce, $deadline, 0));
        }
        // Full: the earliest (b, 300) goes; its deadline is the floor.
        self::assertNull($cache->admit('k', 'd', 600, 0));
        self::assertSame(300, $cache->floorMs);
        self::assertSame(3, $cache->count());
        // b could run again now: refused, as is every job due at or before the floor.
        self::assertSame('replay cache full', $cache->admit('k', 'b', 300, 0));
        self::assertSame('replay cache full', $cache->admit('k', 'e', 250, 0));
        // A job due before the next eviction's deadline is refused once it would raise the floor past it.
        self::assertSame('replay cache full', $cache->admit('k', 'f', 350, 0));
        self::assertSame(400, $cache->floorMs);
        self::assertSame(2, $cache->count());
        // Still remembered: a and d.
        self::assertSame('replayed', $cache->admit('k', 'a', 500, 0));
        self::assertNull($cache->admit('k', 'g', 700, 0));
        self::assertNull($cache->admit('k', 'h', 800, 0));
        self::assertSame(500, $cache->floorMs);
        self::assertSame('replay cache full', $cache->admit('k', 'a', 500, 0), 'evicted a never runs again');
        $this->expectException(\InvalidArgumentException::class);
        new ReplayCache(0);
    }

    public function testAForkedProcessAsksTheSupervisorsCache(): void
    {
        [$supervisorEnd, $childEnd] = stream_socket_pair(STREAM_PF_UNIX, STREAM_SOCK_STREAM, STREAM_IPPROTO_IP);
        $cache = new ReplayCache();
        $shared = new SharedReplayCache($childEnd);
        $deadline = (int) floor(microtime(true) * 1000) + 60_000;
        $answers = [];
        foreach (['n' . str_repeat("\0", 15), 'n' . str_repeat("\0", 15)] as $nonce) {
            // One process plays both ends: the supervisor's answer is queued before the child asks.
            Supervisor::send($supervisorEnd, '');
            $shared->admit('k:1', $nonce, $deadline, 0);
            $request = Supervisor::receive($supervisorEnd);
            self::assertIsString($request);
            $answers[] = SharedReplayCache::answer($cache, $request);
        }
        self::assertSame(['', 'replayed'], $answers);
        Supervisor::send($supervisorEnd, 'replayed');
        self::assertSame('replayed', $shared->admit('k', 'n', $deadline, 0));
        // The supervisor gone: the job cannot be admitted (answered INTERNAL, never run).
        fclose($supervisorEnd);
        $this->expectExceptionMessage('the worker supervisor process did not answer');
        $shared->admit('k', 'n', $deadline, 0);
    }
}
