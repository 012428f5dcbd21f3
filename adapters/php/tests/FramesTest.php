<?php

declare(strict_types=1);

namespace Bridge\Runtime\Tests;

use Bridge\Interop\V1\Blob;
use Bridge\Interop\V1\Composite;
use Bridge\Interop\V1\PBEmpty;
use Bridge\Interop\V1\ProgressReply;
use Bridge\Interop\V1\StreamItem;
use Bridge\Interop\V1\StreamRequest;
use Bridge\Runtime\Codec\MsgpackCodec;
use Bridge\Runtime\Context;
use Bridge\Runtime\Dispatcher;
use Bridge\Runtime\FramedSink;
use Bridge\Runtime\Method;
use Bridge\V1\Code;
use Bridge\V1\Encoding;
use Bridge\V1\Request;
use PHPUnit\Framework\TestCase;

/**
 * Reply frames (wire contract, section 3) and who is to blame for a failure (section 4): a failure
 * of the worker around the handler is INTERNAL and logged, never INVALID_ARGUMENT or UNKNOWN.
 */
final class FramesTest extends TestCase
{
    /** @var list<string> */
    private array $log = [];
    /** @var list<string> */
    private array $jobLines = [];

    private function dispatcher(): Dispatcher
    {
        $dispatcher = new Dispatcher(log: function (string $line): void {
            if (str_starts_with($line, 'warning: job failed ')) {  // the job lines (LogTest)
                $this->jobLines[] = $line;
            } else {
                $this->log[] = $line;
            }
        });
        $dispatcher->add(Method::unary('t.Echo', Composite::class, Composite::class, static fn (Composite $c): Composite => $c));
        $dispatcher->add(Method::unary('t.Quiet', PBEmpty::class, ProgressReply::class, static function (PBEmpty $e, Context $context): ProgressReply {
            return new ProgressReply(['steps_done' => 1]);
        }));
        $dispatcher->add(Method::unary('t.Progress', PBEmpty::class, ProgressReply::class, static function (PBEmpty $e, Context $context): ProgressReply {
            $context->progress(1, 2);
            $context->warning('half way');
            $context->progress(2, 2);
            return new ProgressReply(['steps_done' => 2]);
        }));
        $dispatcher->add(Method::serverStreaming('t.Stream', StreamRequest::class, StreamItem::class, static function (StreamRequest $r, Context $context): iterable {
            for ($i = 0; $i < $r->getCount(); $i++) {
                if ($i === 1) {
                    $context->progress(1, $r->getCount());
                }
                if ($r->getPayloadSize() === 99 && $i === 2) {
                    throw new \LengthException('the handler gave up at item 2');
                }
                yield new StreamItem(['index' => $i]);
            }
        }));
        // Generated code that is not there (an imported .proto whose PHP classes were not generated).
        $dispatcher->add(Method::unary('t.NoRequestClass', 'Missing\\V1\\Request', PBEmpty::class, static fn (): PBEmpty => new PBEmpty()));
        $dispatcher->add(Method::unary('t.NoReplyClass', PBEmpty::class, 'Missing\\V1\\Reply', static fn (): PBEmpty => new PBEmpty()));
        $dispatcher->add(Method::unary('t.HandlerError', PBEmpty::class, PBEmpty::class, static function (): PBEmpty {
            return \intdiv(1, 0) ? new PBEmpty() : new PBEmpty();
        }));
        return $dispatcher;
    }

    private static function request(string $body, int $encoding = Encoding::PROTOBUF): string
    {
        return (new Request(['version' => 1, 'encoding' => $encoding, 'body' => $body]))->serializeToString();
    }

    public function testUnaryReplyIsOneFrameNamingTypeEncodingAndAttempt(): void
    {
        $composite = new Composite(['text' => 'hi', 'numbers' => [1, 2]]);
        foreach ([[Encoding::ENCODING_UNSPECIFIED, 1], [Encoding::PROTOBUF, 1], [Encoding::MSGPACK, 2]] as [$encoding, $byte]) {
            $codec = $encoding === Encoding::MSGPACK ? new MsgpackCodec() : null;
            $body = $codec ? $codec->encode($composite) : $composite->serializeToString();
            $sink = new RecordingSink();
            $this->dispatcher()->handle('t.Echo', self::request($body, $encoding), $sink);
            self::assertSame(['complete'], array_column($sink->packets, 0));
            $frame = $sink->frame(0);
            self::assertSame(FramedSink::KIND_REPLY, $frame['kind']);
            self::assertSame($byte, $frame['encoding'], 'the encoding the worker replied in, never 0');
            self::assertSame(0x8dc965d8, $frame['tag'], 'CRC-32 of bridge.interop.v1.Composite');
            self::assertNotSame("\0\0\0\0\0\0\0\0", $frame['attempt']);
            self::assertSame(0, $frame['sequence']);
            self::assertSame($body, $frame['body']);
        }
    }

    public function testEveryRunDrawsItsOwnAttemptId(): void
    {
        $attempts = [];
        for ($i = 0; $i < 20; $i++) {
            $sink = new RecordingSink();
            $this->dispatcher()->handle('t.Echo', self::request(''), $sink);
            $attempts[] = $sink->frame(0)['attempt'];
        }
        self::assertCount(20, array_unique($attempts));
    }

    public function testStreamItemsAreNumberedAndTheEndCountsThem(): void
    {
        $sink = new RecordingSink();
        $this->dispatcher()->handle('t.Stream', self::request((new StreamRequest(['count' => 3]))->serializeToString()), $sink);
        self::assertSame(['data', 'status', 'data', 'data', 'complete'], array_column($sink->packets, 0));
        $frames = [$sink->frame(0), $sink->frame(2), $sink->frame(3), $sink->frame(4)];
        self::assertSame([2, 2, 2, 3], array_column($frames, 'kind'));
        self::assertSame([0, 1, 2, 3], array_column($frames, 'sequence'), 'items 0, 1, 2, then the count');
        self::assertCount(1, array_unique(array_column($frames, 'attempt')), 'one attempt id for the whole run');
        self::assertSame([FramedSink::typeTag('bridge.interop.v1.StreamItem')], array_unique(array_column($frames, 'tag')));
        self::assertSame('', $frames[3]['body']);
        $item = new StreamItem();
        $item->mergeFromString($frames[2]['body']);
        self::assertSame(2, $item->getIndex());
    }

    public function testAnAttemptMarkerGoesBeforeTheFirstStatusOrWarningOnly(): void
    {
        $sink = new RecordingSink();
        $this->dispatcher()->handle('t.Progress', self::request(''), $sink);
        self::assertSame(['data', 'status', 'warning', 'status', 'complete'], array_column($sink->packets, 0));
        $marker = $sink->frame(0);
        self::assertSame([FramedSink::KIND_MARKER, 0, ''], [$marker['kind'], $marker['sequence'], $marker['body']]);
        self::assertSame($marker['attempt'], $sink->frame(4)['attempt']);
        self::assertSame(FramedSink::typeTag('bridge.interop.v1.ProgressReply'), $marker['tag']);

        $quiet = new RecordingSink();
        $this->dispatcher()->handle('t.Quiet', self::request(''), $quiet);
        self::assertSame(['complete'], array_column($quiet->packets, 0), 'no marker without status or warning');
    }

    public function testAStreamThatFailsMidWaySendsItsItemsThenAnUnframedException(): void
    {
        $sink = new RecordingSink();
        $request = new StreamRequest(['count' => 5, 'payload_size' => 99]);
        $this->dispatcher()->handle('t.Stream', self::request($request->serializeToString()), $sink);
        self::assertSame(['data', 'status', 'data', 'exception'], array_column($sink->packets, 0));
        $sink->packets = [$sink->packets[3]];
        $error = $sink->error();
        self::assertSame([Code::UNKNOWN, 'LengthException'], [$error->getCode(), $error->getType()], 'the handler threw it');
    }

    public function testAMissingGeneratedClassIsInternalAndLoggedInBothEncodings(): void
    {
        $cases = [
            ['t.NoRequestClass', '', Encoding::PROTOBUF],
            ['t.NoRequestClass', "\x0a\x01x", Encoding::PROTOBUF],
            ['t.NoRequestClass', '', Encoding::MSGPACK],
            ['t.NoRequestClass', "\x81\xa1x\x01", Encoding::MSGPACK],
            ['t.NoReplyClass', '', Encoding::PROTOBUF],
            ['t.NoReplyClass', '', Encoding::MSGPACK],
        ];
        foreach ($cases as [$function, $body, $encoding]) {
            $this->log = [];
            $sink = new RecordingSink();
            $this->dispatcher()->handle($function, self::request($body, $encoding), $sink);
            $error = $sink->error();
            $what = "{$function} encoding {$encoding} body " . bin2hex($body);
            self::assertSame(Code::INTERNAL, $error->getCode(), "{$what}: {$error->getMessage()}");
            self::assertContains($error->getType(), ['Error', 'LogicException'], $what);
            self::assertStringContainsString('not found', $error->getMessage(), $what);
            self::assertStringContainsString('generated', $error->getMessage(), $what);
            self::assertCount(1, $this->log, "{$what}: logged once");
            self::assertStringContainsString('worker-side failure', $this->log[0]);
        }
    }

    public function testAnErrorTheHandlerRaisesIsStillUnknown(): void
    {
        $sink = new RecordingSink();
        $this->dispatcher()->handle('t.HandlerError', self::request(''), $sink);
        $error = $sink->error();
        self::assertSame([Code::UNKNOWN, 'DivisionByZeroError'], [$error->getCode(), $error->getType()]);
        self::assertSame([], $this->log, 'no worker-side failure');
        self::assertCount(1, $this->jobLines);
        self::assertStringContainsString('outcome=UNKNOWN message="DivisionByZeroError: ', $this->jobLines[0]);
    }

    public function testHeaderLayout(): void
    {
        $header = FramedSink::header(2, 1, 0x8dc965d8, "\x01\x02\x03\x04\x05\x06\x07\x08", 258);
        self::assertSame('b702018dc965d80102030405060708' . '0000000000000102', bin2hex($header));
        self::assertSame(FramedSink::HEADER_BYTES, strlen($header));
        $negative = FramedSink::header(3, 2, 0xffffffff, FramedSink::newAttemptId(), -1);
        self::assertSame('ffffffffffffffff', bin2hex(substr($negative, 15)), 'u64 from a PHP int, two\'s complement');
        self::assertSame(0x8dc965d8, FramedSink::typeTagOf(Composite::class));
        self::assertSame(crc32('bridge.interop.v1.Blob'), FramedSink::typeTagOf(Blob::class));
    }
}
