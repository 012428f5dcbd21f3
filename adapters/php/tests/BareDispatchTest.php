<?php

declare(strict_types=1);

namespace Bridge\Runtime\Tests;

use Bridge\Interop\V1\Blob;
use Bridge\Interop\V1\Composite;
use Bridge\Interop\V1\PBEmpty;
use Bridge\Interop\V1\RawBytes;
use Bridge\Interop\V1\RawText;
use Bridge\Interop\V1\Scalars;
use Bridge\Interop\V1\WhoAmIReply;
use Bridge\Runtime\BridgeError;
use Bridge\Runtime\Codec\MsgpackCodec;
use Bridge\Runtime\Context;
use Bridge\Runtime\Dispatcher;
use Bridge\Runtime\Method;
use Bridge\Runtime\Unimplemented;
use Bridge\V1\Code;
use Bridge\V1\Encoding;
use PHPUnit\Framework\TestCase;

/**
 * Bare methods (wire contract, section 8.4): no envelope, no frames, no attempt markers, errors in
 * the bare form of section 8.3; and an enveloped method refusing a bare payload, naming `bare`.
 */
final class BareDispatchTest extends TestCase
{
    private ?Context $seen = null;

    private function dispatcher(int $maxRequestBytes = Dispatcher::DEFAULT_MAX_REQUEST_BYTES): Dispatcher
    {
        $dispatcher = new Dispatcher($maxRequestBytes);
        $echo = function (Composite $c, Context $context): Composite {
            $this->seen = $context;
            $context->warning('careful');
            $context->progress(1, 2);
            return $c;
        };
        $throws = static function (Composite $c, Context $context): object {
            return match ($c->getText()) {
                'native' => throw new \DomainException('native trouble'),
                'coded' => throw new BridgeError(Code::NOT_FOUND, 'no such thing ü', ['id' => '42']),
                'fail' => $context->fail(),
                'wrong-type' => new Blob(),
                default => new PBEmpty(),
            };
        };
        $dispatcher->add(Method::bare('json.echo', Composite::class, Composite::class, Encoding::JSON, $echo));
        $dispatcher->add(Method::bare('msgpack.echo', Composite::class, Composite::class, Encoding::MSGPACK, $echo));
        $dispatcher->add(Method::bare('protobuf.echo', Composite::class, Composite::class, Encoding::PROTOBUF, $echo));
        $dispatcher->add(Method::bare('json.throws', Composite::class, PBEmpty::class, Encoding::JSON, $throws));
        $dispatcher->add(Method::bare('raw.throws', Composite::class, PBEmpty::class, Encoding::MSGPACK, $throws));
        $dispatcher->add(Method::bare('raw.bytes', RawBytes::class, RawBytes::class, Encoding::RAW, static fn (RawBytes $r): RawBytes => $r));
        $dispatcher->add(Method::bare('raw.reverse', RawText::class, RawText::class, Encoding::RAW, static function (RawText $r): RawText {
            return new RawText(['text' => implode('', array_reverse(mb_str_split($r->getText())))]);
        }));
        $dispatcher->add(Method::bare('json.missing', PBEmpty::class, PBEmpty::class, Encoding::JSON, static function (): PBEmpty {
            throw new Unimplemented('json.missing');
        }));
        $dispatcher->add(Method::bare('json.who', PBEmpty::class, WhoAmIReply::class, Encoding::JSON, function (PBEmpty $e, Context $context): WhoAmIReply {
            $this->seen = $context;
            return new WhoAmIReply(['language' => 'php', 'deadline_ms' => $context->deadlineMs()]);
        }));
        $dispatcher->add(Method::bare('msgpack.who', PBEmpty::class, WhoAmIReply::class, Encoding::MSGPACK, static fn (): WhoAmIReply => new WhoAmIReply(['language' => 'php'])));
        $dispatcher->add(Method::unary('enveloped.echo', Blob::class, Blob::class, static fn (Blob $b): Blob => $b));
        return $dispatcher;
    }

    /** @return array<string, mixed> */
    private static function jsonError(RecordingSink $sink): array
    {
        self::assertSame(['exception'], array_column($sink->packets, 0));
        return json_decode($sink->packets[0][1], true, 512, JSON_THROW_ON_ERROR);
    }

    public function testJsonJobIsAnsweredAloneWithoutMarkersOrFrames(): void
    {
        $sink = new RecordingSink();
        $this->dispatcher()->handle('json.echo', '{"text": "hi", "numbers": [1, 2], "labels": {"7": "x"}}', $sink);
        self::assertSame(['warning', 'status', 'complete'], array_column($sink->packets, 0));
        $reply = json_decode($sink->packets[2][1], true, 512, JSON_THROW_ON_ERROR);
        self::assertSame('hi', $reply['text']);
        self::assertSame([1, 2], $reply['numbers']);
        self::assertSame(['7' => 'x'], $reply['labels']);
        self::assertSame([], $reply['items'], 'fields without presence are written');
        self::assertSame([], $this->seen?->metadata());
        self::assertSame(0, $this->seen?->deadlineMs());
        self::assertSame(Encoding::JSON, $this->seen?->encoding());
    }

    public function testMsgpackAndProtobufJobsCarryTheMessageAlone(): void
    {
        $message = new Composite(['text' => 'hi', 'numbers' => [3]]);
        $msgpack = new MsgpackCodec();
        $sink = new RecordingSink();
        $this->dispatcher()->handle('msgpack.echo', $msgpack->encode($message), $sink);
        self::assertSame($msgpack->encode($message), $sink->packets[2][1]);
        $sink = new RecordingSink();
        $this->dispatcher()->handle('protobuf.echo', $message->serializeToString(), $sink);
        self::assertSame($message->serializeToString(), $sink->packets[2][1]);
    }

    public function testEmptyPayloadIsTheEmptyMessageInProtobufAndForAFieldlessType(): void
    {
        $sink = new RecordingSink();
        $this->dispatcher()->handle('protobuf.echo', '', $sink);
        self::assertSame(['complete', ''], $sink->packets[2]);
        $sink = new RecordingSink();
        $this->dispatcher()->handle('json.who', '', $sink);
        self::assertSame(['language' => 'php', 'metadata' => [], 'deadline_ms' => 0], json_decode($sink->packets[0][1], true));
        $sink = new RecordingSink();
        $this->dispatcher()->handle('msgpack.who', '', $sink);
        self::assertSame(['complete', msgpack_pack(['language' => 'php'])], $sink->packets[0]);
    }

    /**
     * Zero bytes of bare JSON or MSGPACK for a type with fields are INVALID_ARGUMENT (section 8.1):
     * what a PHP json_encode() that failed or a handler that forgot to return sends. The handler
     * does not run.
     */
    public function testEmptyJsonOrMsgpackPayloadOfATypeWithFieldsIsInvalidArgument(): void
    {
        $sink = new RecordingSink();
        $this->dispatcher()->handle('json.echo', '', $sink);
        $error = self::jsonError($sink);
        self::assertSame([3, 'INVALID_ARGUMENT'], [$error['code'], $error['status']]);
        self::assertStringContainsString('an empty payload is not a bare JSON', $error['message']);
        $sink = new RecordingSink();
        $this->dispatcher()->handle('msgpack.echo', '', $sink);
        self::assertSame(['exception'], array_column($sink->packets, 0));
        self::assertStringContainsString('an empty payload is not a bare MSGPACK', $sink->packets[0][1]);
        self::assertNull($this->seen, 'the handler ran');
    }

    public function testRawCarriesTheFieldsBytes(): void
    {
        $sink = new RecordingSink();
        $this->dispatcher()->handle('raw.bytes', "\x00\xff\x01", $sink);
        self::assertSame([['complete', "\x00\xff\x01"]], $sink->packets);
        $sink = new RecordingSink();
        $this->dispatcher()->handle('raw.reverse', 'añb😀', $sink);
        self::assertSame([['complete', '😀bña']], $sink->packets);
    }

    public function testRawTextThatIsNotUtf8IsInvalidArgumentAsText(): void
    {
        $sink = new RecordingSink();
        $this->dispatcher()->handle('raw.reverse', "a\xffb", $sink);
        self::assertSame('exception', $sink->packets[0][0]);
        self::assertStringContainsString('not valid UTF-8', $sink->packets[0][1]);
        self::assertStringStartsWith('raw.reverse: the request is not a valid', $sink->packets[0][1]);
    }

    public function testJsonErrorsAreJsonObjects(): void
    {
        $sink = new RecordingSink();
        $this->dispatcher()->handle('json.throws', '{"text": "coded"}', $sink);
        self::assertSame(['code' => 5, 'status' => 'NOT_FOUND', 'message' => 'no such thing ü'], self::jsonError($sink));
        self::assertStringContainsString('ü', $sink->packets[0][1], 'UTF-8, not \u escapes');

        $sink = new RecordingSink();
        $this->dispatcher()->handle('json.throws', '{"text": "native"}', $sink);
        self::assertSame(['code' => 2, 'status' => 'UNKNOWN', 'message' => 'native trouble'], self::jsonError($sink));

        $sink = new RecordingSink();
        $this->dispatcher()->handle('json.throws', '{"text": "wrong-type"}', $sink);
        self::assertSame(13, self::jsonError($sink)['code']);

        $sink = new RecordingSink();
        $this->dispatcher()->handle('json.missing', '{}', $sink);
        self::assertSame(['code' => 12, 'status' => 'UNIMPLEMENTED', 'message' => 'json.missing is not implemented by this worker'], self::jsonError($sink));
    }

    public function testUndecodableJsonIsInvalidArgument(): void
    {
        foreach (['{"text": ', '{"no_such_field": 1}', 'null', "\xff"] as $payload) {
            $sink = new RecordingSink();
            $this->dispatcher()->handle('json.echo', $payload, $sink);
            $error = self::jsonError($sink);
            self::assertSame([3, 'INVALID_ARGUMENT'], [$error['code'], $error['status']], $payload);
            self::assertStringContainsString('in bare JSON', $error['message']);
        }
        self::assertNull($this->seen, 'the handler never ran');
    }

    public function testOversizedJobIsResourceExhaustedBeforeDecoding(): void
    {
        $sink = new RecordingSink();
        $this->dispatcher(16)->handle('json.echo', '{"text": "far too long for sixteen"}', $sink);
        self::assertSame(8, self::jsonError($sink)['code']);
    }

    public function testOtherEncodingsSendTheMessageTextAlone(): void
    {
        $msgpack = new MsgpackCodec();
        $sink = new RecordingSink();
        $this->dispatcher()->handle('raw.throws', $msgpack->encode(new Composite(['text' => 'coded'])), $sink);
        self::assertSame([['exception', 'no such thing ü']], $sink->packets);
    }

    public function testExplicitFailIsWorkFail(): void
    {
        $sink = new RecordingSink();
        $this->dispatcher()->handle('json.throws', '{"text": "fail"}', $sink);
        self::assertSame([['fail', null]], $sink->packets);
    }

    public function testAnEnvelopedMethodRefusesABarePayloadNamingBare(): void
    {
        // JSON is no protobuf at all ('{' is wire type 3): INVALID_ARGUMENT.
        $sink = new RecordingSink();
        $this->dispatcher()->handle('enveloped.echo', '{"text": "hi"}', $sink);
        $error = $sink->error();
        self::assertSame(Code::INVALID_ARGUMENT, $error->getCode());
        self::assertStringContainsString('not a bridge envelope', $error->getMessage());
        self::assertStringContainsString('`bare: true`', $error->getMessage());
        // A bare protobuf Blob reads as protobuf, but has no envelope version.
        $sink = new RecordingSink();
        $this->dispatcher()->handle('enveloped.echo', (new Blob(['text' => 'hi']))->serializeToString(), $sink);
        $error = $sink->error();
        self::assertSame(Code::FAILED_PRECONDITION, $error->getCode());
        self::assertStringContainsString('probably not a bridge envelope', $error->getMessage());
        self::assertStringContainsString('`bare: true`', $error->getMessage());
    }

    public function testABareMethodCannotStream(): void
    {
        $this->expectException(\LogicException::class);
        new Method('x', Scalars::class, Scalars::class, true, static fn () => [], true, Encoding::JSON);
    }
}
