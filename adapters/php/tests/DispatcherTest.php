<?php

declare(strict_types=1);

namespace Bridge\Runtime\Tests;

use Bridge\Interop\V1\Blob;
use Bridge\Interop\V1\Composite;
use Bridge\Interop\V1\PBEmpty;
use Bridge\Interop\V1\StreamItem;
use Bridge\Interop\V1\StreamRequest;
use Bridge\Runtime\BridgeError;
use Bridge\Runtime\Codec\MsgpackCodec;
use Bridge\Runtime\ConnectionLost;
use Bridge\Runtime\Context;
use Bridge\Runtime\Dispatcher;
use Bridge\Runtime\Method;
use Bridge\Runtime\Unimplemented;
use Bridge\V1\Code;
use Bridge\V1\Encoding;
use Bridge\V1\Request;
use PHPUnit\Framework\TestCase;

/**
 * The job flow of wire contract section 2, in order, without a job server.
 */
final class DispatcherTest extends TestCase
{
    private const ECHO = 'test.Echo';
    private const STREAM = 'test.Stream';
    private const THROWS = 'test.Throws';
    private const MISSING = 'test.Missing';

    private int $handlerRuns = 0;

    private function dispatcher(int $maxRequestBytes = Dispatcher::DEFAULT_MAX_REQUEST_BYTES): Dispatcher
    {
        $dispatcher = new Dispatcher($maxRequestBytes);
        $dispatcher->add(Method::unary(self::ECHO, Blob::class, Blob::class, function (Blob $blob, Context $context): Blob {
            $this->handlerRuns++;
            $context->warning('careful');
            $context->progress(1, 2);
            $blob->setText($blob->getText() . '|' . ($context->metadata()['who'] ?? '') . '|' . $context->deadlineMs());
            return $blob;
        }));
        $dispatcher->add(Method::serverStreaming(self::STREAM, StreamRequest::class, StreamItem::class, function (StreamRequest $request): iterable {
            for ($i = 0; $i < $request->getCount(); $i++) {
                yield new StreamItem(['index' => $i]);
            }
        }));
        $dispatcher->add(Method::unary(self::THROWS, Composite::class, PBEmpty::class, function (Composite $c, Context $context): object {
            return match ($c->getText()) {
                'native' => throw new \DomainException('native trouble'),
                'coded' => throw new BridgeError(Code::NOT_FOUND, 'no such thing', ['id' => '42']),
                'fail' => $context->fail(),
                'wrong-type' => new Blob(),
                default => new PBEmpty(),
            };
        }));
        $dispatcher->add(Method::unary(self::MISSING, PBEmpty::class, PBEmpty::class, static function (): PBEmpty {
            throw new Unimplemented(self::MISSING);
        }));
        return $dispatcher;
    }

    private static function request(string $body, int $encoding = Encoding::PROTOBUF, int $deadlineMs = 0, int $version = 1): string
    {
        $request = new Request(['version' => $version, 'encoding' => $encoding, 'body' => $body, 'deadline_ms' => $deadlineMs]);
        $request->getMetadata()['who'] = 'tester';
        return $request->serializeToString();
    }

    public function testUnaryCallSendsWarningStatusThenTheReply(): void
    {
        $sink = new RecordingSink();
        $deadline = Context::nowMs() + 60_000;
        $this->dispatcher()->handle(self::ECHO, self::request((new Blob(['text' => 'hi']))->serializeToString(), deadlineMs: $deadline), $sink);
        // The attempt marker goes before the first warning or status (wire contract, section 3).
        self::assertSame(['data', 'warning', 'status', 'complete'], array_column($sink->packets, 0));
        self::assertSame([1, 2], $sink->packets[2][1]);
        $reply = new Blob();
        $reply->mergeFromString($sink->body(3));
        self::assertSame("hi|tester|{$deadline}", $reply->getText());
    }

    public function testRepliesInTheRequestsEncoding(): void
    {
        $msgpack = new MsgpackCodec();
        $sink = new RecordingSink();
        $this->dispatcher()->handle(self::ECHO, self::request($msgpack->encode(new Blob(['data' => "\x00\x01"])), Encoding::MSGPACK), $sink);
        $reply = $msgpack->decode($sink->body(3), Blob::class);
        self::assertSame("\x00\x01", $reply->getData());
        self::assertSame('|tester|0', $reply->getText());
    }

    public function testStreamingSendsOneDataPacketPerItemThenAnEmptyComplete(): void
    {
        $sink = new RecordingSink();
        $this->dispatcher()->handle(self::STREAM, self::request((new StreamRequest(['count' => 3]))->serializeToString()), $sink);
        self::assertSame(['data', 'data', 'data', 'complete'], array_column($sink->packets, 0));
        self::assertSame('', $sink->body(3));
        $item = new StreamItem();
        $item->mergeFromString($sink->body(2));
        self::assertSame(2, $item->getIndex());
    }

    public function testALostConnectionEndsTheJobAtOnceWithoutAnotherPacket(): void
    {
        // The job server stopped taking the reply (the watchdog reset its connection): nothing
        // more can arrive, so the stream stops there and no exception or WORK_FAIL is attempted.
        $sink = new class () extends RecordingSink {
            public function data(string $payload): void
            {
                if (count($this->packets) === 2) {
                    throw new ConnectionLost('the connection to the job server was lost');
                }
                parent::data($payload);
            }
        };
        try {
            $this->dispatcher()->handle(self::STREAM, self::request((new StreamRequest(['count' => 100]))->serializeToString()), $sink);
            self::fail('ConnectionLost was swallowed');
        } catch (ConnectionLost) {
        }
        self::assertSame(['data', 'data'], array_column($sink->packets, 0));
    }

    public function testOversizedPayloadIsResourceExhaustedBeforeAnythingElse(): void
    {
        $sink = new RecordingSink();
        $this->dispatcher(maxRequestBytes: 10)->handle(self::ECHO, str_repeat("\xff", 11), $sink);
        $error = $sink->error();
        self::assertSame(Code::RESOURCE_EXHAUSTED, $error->getCode());
        self::assertSame('ResourceExhausted', $error->getType());
        self::assertSame(0, $this->handlerRuns);
    }

    public function testMalformedEnvelopeIsInvalidArgument(): void
    {
        foreach (["\xff\xff", "\x08", 'ValueError: boom', "\x2a\x05abc"] as $payload) {
            $sink = new RecordingSink();
            $this->dispatcher()->handle(self::ECHO, $payload, $sink);
            $error = $sink->error();
            self::assertSame(Code::INVALID_ARGUMENT, $error->getCode(), bin2hex($payload));
            self::assertSame('InvalidArgument', $error->getType());
            self::assertSame('php', $error->getLanguage());
        }
    }

    public function testOtherEnvelopeVersionIsFailedPrecondition(): void
    {
        $sink = new RecordingSink();
        $this->dispatcher()->handle(self::ECHO, self::request('', version: 2), $sink);
        self::assertSame(Code::FAILED_PRECONDITION, $sink->error()->getCode());
    }

    public function testUnknownEncodingIsInvalidArgument(): void
    {
        $sink = new RecordingSink();
        $this->dispatcher()->handle(self::ECHO, self::request('', 7), $sink);
        self::assertSame(Code::INVALID_ARGUMENT, $sink->error()->getCode());
    }

    public function testPassedDeadlineIsDeadlineExceededWithoutRunningTheHandler(): void
    {
        $sink = new RecordingSink();
        $this->dispatcher()->handle(self::ECHO, self::request('', deadlineMs: Context::nowMs() - 1), $sink);
        $error = $sink->error();
        self::assertSame(Code::DEADLINE_EXCEEDED, $error->getCode());
        self::assertSame('DeadlineExceeded', $error->getType(), 'the runtime types its own answers by code');
        self::assertSame(0, $this->handlerRuns);
    }

    public function testBodyThatDoesNotDecodeIsInvalidArgument(): void
    {
        foreach ([[Encoding::PROTOBUF, "\x0a\x05ab"], [Encoding::MSGPACK, "\x81\xa4data\xa1x"]] as [$encoding, $body]) {
            $sink = new RecordingSink();
            $this->dispatcher()->handle(self::ECHO, self::request($body, $encoding), $sink);
            self::assertSame(Code::INVALID_ARGUMENT, $sink->error()->getCode());
        }
        self::assertSame(0, $this->handlerRuns);
    }

    public function testUnimplementedMethod(): void
    {
        $sink = new RecordingSink();
        $this->dispatcher()->handle(self::MISSING, self::request(''), $sink);
        $error = $sink->error();
        self::assertSame(Code::UNIMPLEMENTED, $error->getCode());
        self::assertSame('Unimplemented', $error->getType());
    }

    public function testNativeExceptionIsUnknownWithItsClassMessageAndTrace(): void
    {
        $sink = new RecordingSink();
        $this->dispatcher()->handle(self::THROWS, self::request((new Composite(['text' => 'native']))->serializeToString()), $sink);
        $error = $sink->error();
        self::assertSame(Code::UNKNOWN, $error->getCode());
        self::assertSame('DomainException', $error->getType());
        self::assertSame('native trouble', $error->getMessage());
        self::assertStringContainsString('DispatcherTest', $error->getTrace());
    }

    public function testBridgeErrorKeepsItsCodeAndDetails(): void
    {
        $sink = new RecordingSink();
        $this->dispatcher()->handle(self::THROWS, self::request((new Composite(['text' => 'coded']))->serializeToString()), $sink);
        $error = $sink->error();
        self::assertSame(Code::NOT_FOUND, $error->getCode());
        self::assertSame('no such thing', $error->getMessage());
        self::assertSame(BridgeError::class, $error->getType());
        self::assertSame('42', $error->getDetails()['id']);
    }

    public function testContextFailSendsWorkFail(): void
    {
        $sink = new RecordingSink();
        $this->dispatcher()->handle(self::THROWS, self::request((new Composite(['text' => 'fail']))->serializeToString()), $sink);
        self::assertSame([['fail', null]], $sink->packets);
    }

    public function testHandlerReturningTheWrongTypeIsAnError(): void
    {
        $sink = new RecordingSink();
        $this->dispatcher()->handle(self::THROWS, self::request((new Composite(['text' => 'wrong-type']))->serializeToString()), $sink);
        self::assertSame(Code::INTERNAL, $sink->error()->getCode());
    }

    public function testTheSameDispatcherServesTheNextJobAfterAnError(): void
    {
        $dispatcher = $this->dispatcher();
        $dispatcher->handle(self::THROWS, self::request((new Composite(['text' => 'native']))->serializeToString()), new RecordingSink());
        $sink = new RecordingSink();
        $dispatcher->handle(self::ECHO, self::request(''), $sink);
        self::assertSame('complete', $sink->packets[3][0]);
    }

    public function testBridgeErrorRefusesCodeOk(): void
    {
        $this->expectException(\InvalidArgumentException::class);
        new BridgeError(Code::OK, 'not an error');
    }
}
