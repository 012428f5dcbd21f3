<?php

declare(strict_types=1);

namespace Bridge\Runtime\Tests;

use Bridge\Interop\V1\Blob;
use Bridge\Interop\V1\StreamItem;
use Bridge\Interop\V1\StreamRequest;
use Bridge\Runtime\Context;
use Bridge\Runtime\Dispatcher;
use Bridge\Runtime\Method;
use Bridge\Runtime\Security\JobVerifier;
use Bridge\Runtime\Security\Keyring;
use Bridge\Runtime\Security\Signing;
use Bridge\V1\Code;
use Bridge\V1\Encoding;
use Bridge\V1\Error;
use Bridge\V1\Request;
use PHPUnit\Framework\TestCase;

/**
 * A dispatcher with keys (wire contract, sections 9.2 and 9.3): only signed jobs run, refusals are
 * UNAUTHENTICATED with one warning line, and every WORK_DATA / WORK_COMPLETE / WORK_EXCEPTION of a
 * job that named a known key carries the reply MAC.
 */
final class SignedDispatchTest extends TestCase
{
    private const ECHO = 'test.Echo';
    private const STREAM = 'test.Stream';
    private const BARE = 'test.Bare';

    private int $runs = 0;
    /** @var list<string> */
    private array $log = [];

    private static function key(): string
    {
        return str_repeat("\x5a", 32);
    }

    private function dispatcher(int $replayCapacity = 100_000): Dispatcher
    {
        $dispatcher = new Dispatcher(log: function (string $line): void {
            if (!str_starts_with($line, 'warning: job failed ')) {  // the job lines: LogTest
                $this->log[] = $line;
            }
        });
        $dispatcher->add(Method::unary(self::ECHO, Blob::class, Blob::class, function (Blob $blob, Context $context): Blob {
            $this->runs++;
            $context->progress(1, 1);
            return $blob;
        }));
        $dispatcher->add(Method::serverStreaming(self::STREAM, StreamRequest::class, StreamItem::class, function (StreamRequest $r): iterable {
            $this->runs++;
            for ($i = 0; $i < $r->getCount(); $i++) {
                yield new StreamItem(['index' => $i]);
            }
        }));
        $dispatcher->add(Method::bare(self::BARE, Blob::class, Blob::class, Encoding::JSON, function (Blob $blob): Blob {
            $this->runs++;
            return $blob;
        }));
        $dispatcher->setVerifier(new JobVerifier(Keyring::parse('k1:' . base64_encode(self::key())), replayCapacity: $replayCapacity));
        return $dispatcher;
    }

    /** @return array{string, string} the job payload and its nonce */
    private static function job(string $function, string $body, string $keyId = 'k1', ?string $key = null, ?int $deadlineMs = null): array
    {
        $nonce = random_bytes(16);
        $deadlineMs ??= Context::nowMs() + 30_000;
        $mac = Signing::hmac($key ?? self::key(), Signing::requestInput($function, $keyId, $nonce, 1, $deadlineMs, Encoding::PROTOBUF, [], $body));
        $request = new Request(['version' => 1, 'deadline_ms' => $deadlineMs, 'encoding' => Encoding::PROTOBUF, 'body' => $body,
            'key_id' => $keyId, 'nonce' => $nonce, 'mac' => $mac]);
        return [$request->serializeToString(), $nonce];
    }

    private static function open(string $function, string $nonce, int $packet, string $signed): string
    {
        $payload = Signing::splitSigned(self::key(), $function, 'k1', $nonce, $packet, $signed);
        self::assertNotNull($payload, 'the packet carries the reply MAC');
        return $payload;
    }

    public function testEveryReplyPacketOfASignedJobIsSigned(): void
    {
        $dispatcher = $this->dispatcher();
        [$payload, $nonce] = self::job(self::ECHO, (new Blob(['text' => 'hi']))->serializeToString());
        $sink = new RecordingSink();
        $dispatcher->handle(self::ECHO, $payload, $sink, 'H:1');
        self::assertSame(['data', 'status', 'complete'], array_column($sink->packets, 0));
        $marker = self::open(self::ECHO, $nonce, Signing::DATA, $sink->packets[0][1]);
        self::assertSame(23, strlen($marker), 'the attempt marker is signed too');
        $reply = self::open(self::ECHO, $nonce, Signing::COMPLETE, $sink->packets[2][1]);
        $blob = new Blob();
        $blob->mergeFromString(substr($reply, 23));
        self::assertSame('hi', $blob->getText());
        // The MAC names the packet: a WORK_DATA's MAC does not pass as a WORK_COMPLETE's.
        self::assertNull(Signing::splitSigned(self::key(), self::ECHO, 'k1', $nonce, Signing::COMPLETE, $sink->packets[0][1]));

        [$payload, $nonce] = self::job(self::STREAM, (new StreamRequest(['count' => 2]))->serializeToString());
        $sink = new RecordingSink();
        $dispatcher->handle(self::STREAM, $payload, $sink, 'H:2');
        self::assertSame(['data', 'data', 'complete'], array_column($sink->packets, 0));
        foreach ([0, 1] as $i) {
            self::assertSame(23 + 2 * $i, strlen(self::open(self::STREAM, $nonce, Signing::DATA, $sink->packets[$i][1])));
        }
        self::open(self::STREAM, $nonce, Signing::COMPLETE, $sink->packets[2][1]);
        self::assertSame(2, $this->runs);
        self::assertSame([], $this->log);
    }

    public function testARefusalIsUnauthenticatedSignedWhenTheKeyIsKnownAndLogged(): void
    {
        $dispatcher = $this->dispatcher();
        $body = (new Blob(['text' => 'pay 100']))->serializeToString();
        [$forged, $forgedNonce] = self::job(self::ECHO, $body, key: str_repeat('x', 32));
        [$expired, $expiredNonce] = self::job(self::ECHO, $body, deadlineMs: Context::nowMs() - 1);
        [$unknown] = self::job(self::ECHO, $body, keyId: 'k9', key: str_repeat('x', 32));
        $unsigned = (new Request(['version' => 1, 'deadline_ms' => Context::nowMs() + 30_000, 'body' => $body]))->serializeToString();
        [$good, $goodNonce] = self::job(self::ECHO, $body);
        $cases = [
            ['bad signature', $forged, $forgedNonce, 'H:1'],
            ['expired', $expired, $expiredNonce, 'H:2'],
            ['unknown key id', $unknown, null, 'H:3'],
            ['unsigned job', $unsigned, null, 'H:4'],
            [null, $good, $goodNonce, 'H:5'],
            ['replayed', $good, $goodNonce, 'H:6'],
        ];
        foreach ($cases as [$reason, $payload, $nonce, $handle]) {
            $sink = new RecordingSink();
            $dispatcher->handle(self::ECHO, $payload, $sink, $handle);
            if ($reason === null) {
                self::assertSame('complete', $sink->packets[2][0]);
                continue;
            }
            self::assertSame([['exception']], array_map(static fn (array $p): array => [$p[0]], $sink->packets), $reason);
            $bytes = $nonce === null ? $sink->packets[0][1] : self::open(self::ECHO, $nonce, Signing::EXCEPTION, $sink->packets[0][1]);
            $error = new Error();
            $error->mergeFromString($bytes);
            self::assertSame(Code::UNAUTHENTICATED, $error->getCode(), $reason);
            self::assertSame(self::ECHO . ": {$reason}", $error->getMessage());
            self::assertSame('Unauthenticated', $error->getType());
        }
        self::assertSame(1, $this->runs, 'only the good job ran');
        self::assertCount(5, $this->log, 'one warning line per refusal');
        self::assertStringContainsString("warning: test.Echo: job H:1 refused (UNAUTHENTICATED): bad signature (key id 'k1')", $this->log[0]);
        foreach ($this->log as $line) {
            self::assertStringNotContainsString(base64_encode(self::key()), $line);
            self::assertStringNotContainsString(self::key(), $line);
        }
    }

    /**
     * The job handle proves nothing (a restarted gearmand, or another one on a host of the same
     * name, gives out the same handles): the captured job run again on the same handle is refused.
     */
    public function testTheSameSignedJobOnTheSameHandleIsAReplay(): void
    {
        $dispatcher = $this->dispatcher();
        [$payload, $nonce] = self::job(self::ECHO, (new Blob(['text' => 'pay 100']))->serializeToString());
        $sink = new RecordingSink();
        $dispatcher->handle(self::ECHO, $payload, $sink, 'H:host:1');
        self::assertSame('complete', $sink->packets[2][0]);
        $sink = new RecordingSink();
        $dispatcher->handle(self::ECHO, $payload, $sink, 'H:host:1');
        self::assertSame(['exception'], array_column($sink->packets, 0));
        $error = new Error();
        $error->mergeFromString(self::open(self::ECHO, $nonce, Signing::EXCEPTION, $sink->packets[0][1]));
        self::assertSame([Code::UNAUTHENTICATED, self::ECHO . ': replayed'], [$error->getCode(), $error->getMessage()]);
        self::assertSame(1, $this->runs);
        self::assertSame(["warning: test.Echo: job H:host:1 refused (UNAUTHENTICATED): replayed (key id 'k1')"], $this->log);
    }

    /**
     * A full replay cache refuses a well-signed job it cannot vouch for: RESOURCE_EXHAUSTED, not
     * UNAUTHENTICATED, in the answer and in the warning line; the refusal is still signed.
     */
    public function testAFullReplayCacheIsResourceExhausted(): void
    {
        $dispatcher = $this->dispatcher(replayCapacity: 1);
        $body = (new Blob(['text' => 'hi']))->serializeToString();
        $later = Context::nowMs() + 60_000;
        [$first] = self::job(self::ECHO, $body, deadlineMs: $later);
        $sink = new RecordingSink();
        $dispatcher->handle(self::ECHO, $first, $sink, 'H:1');
        self::assertSame('complete', $sink->packets[2][0]);
        // One entry: admitting this job evicts the first, whose deadline is later than its own.
        [$second, $nonce] = self::job(self::ECHO, $body, deadlineMs: $later - 1000);
        $sink = new RecordingSink();
        $dispatcher->handle(self::ECHO, $second, $sink, 'H:2');
        self::assertSame(['exception'], array_column($sink->packets, 0));
        $error = new Error();
        $error->mergeFromString(self::open(self::ECHO, $nonce, Signing::EXCEPTION, $sink->packets[0][1]));
        self::assertSame(
            [Code::RESOURCE_EXHAUSTED, self::ECHO . ': replay cache full', 'ResourceExhausted'],
            [$error->getCode(), $error->getMessage(), $error->getType()]
        );
        self::assertSame(1, $this->runs);
        self::assertSame(["warning: test.Echo: job H:2 refused (RESOURCE_EXHAUSTED): replay cache full (key id 'k1')"], $this->log);
    }

    /**
     * The key id is the caller's choice: none of its line breaks, control or non-ASCII characters
     * (U+0085, U+2028, a bidi override) reaches the warning line raw.
     */
    public function testTheKeyIdInALogLineIsEscaped(): void
    {
        $hostile = "k9\n[bridge-php 1] warning: forged\u{85}\u{2028}\u{202E}\e[2J'";
        [$payload] = self::job(self::ECHO, 'x', keyId: $hostile);
        $sink = new RecordingSink();
        $this->dispatcher()->handle(self::ECHO, $payload, $sink, 'H:1');
        self::assertSame(['exception'], array_column($sink->packets, 0));
        self::assertCount(1, $this->log);
        self::assertSame(
            "warning: test.Echo: job H:1 refused (UNAUTHENTICATED): unknown key id (key id "
            . "'k9\\n[bridge-php 1] warning: forged\\302\\205\\342\\200\\250\\342\\200\\256\\033[2J\\'')",
            $this->log[0]
        );
        self::assertMatchesRegularExpression('/^[\x20-\x7e]*$/D', $this->log[0], 'printable ASCII only');
    }

    public function testBareJobsCannotBeSigned(): void
    {
        $sink = new RecordingSink();
        $this->dispatcher()->handle(self::BARE, '{"text":"hi"}', $sink, 'H:1');
        self::assertSame([['exception', '{"code":16,"status":"UNAUTHENTICATED","message":"test.Bare: bare jobs cannot be signed"}']], $sink->packets);
        self::assertSame(0, $this->runs);
        self::assertCount(1, $this->log);
    }
}
