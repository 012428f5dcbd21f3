<?php

declare(strict_types=1);

namespace Bridge\Runtime\Tests;

use Bridge\Interop\V1\Composite;
use Bridge\Interop\V1\Inner;
use Bridge\Interop\V1\PBEmpty;
use Bridge\Interop\V1\WhoAmIReply;
use Bridge\Runtime\Codec\DecodeError;
use Bridge\Runtime\Codec\MsgpackCodec;
use Bridge\Runtime\Dispatcher;
use Bridge\Runtime\Method;
use Bridge\V1\Encoding;
use Bridge\V1\Request;
use Google\Protobuf\GPBEmpty;
use PHPUnit\Framework\TestCase;

/**
 * A bare MSGPACK payload names only its type's fields, at every level (wire contract, section
 * 8.1): an unknown key is a decoding error, where an enveloped MSGPACK body (section 5) skips it.
 */
final class BareMsgpackStrictTest extends TestCase
{
    /** @return array<string, array{string}> an unknown key "zz" at each level of a Composite */
    public static function unknownKeys(): array
    {
        return [
            'top level' => [msgpack_pack(['text' => 'a', 'zz' => 1])],
            'nested message' => [msgpack_pack(['inner' => ['name' => 'n', 'zz' => [1, ['x' => null]]]])],
            'nested twice' => [msgpack_pack(['child' => ['child' => ['inner' => ['value' => 1, 'zz' => null]]]])],
            'map value message' => [msgpack_pack(['by_name' => ['k' => ['name' => 'n', 'zz' => 'x']]])],
            'repeated message' => [msgpack_pack(['items' => [['name' => 'ok'], ['zz' => 1.5]]])],
            'oneof message' => [msgpack_pack(['nested' => ['zz' => true]])],
        ];
    }

    private static function strict(string $bytes): Composite
    {
        $message = (new MsgpackCodec(unknownKeys: false))->decode($bytes, Composite::class);
        self::assertInstanceOf(Composite::class, $message);
        return $message;
    }

    private static function lenient(string $bytes): Composite
    {
        $message = (new MsgpackCodec())->decode($bytes, Composite::class);
        self::assertInstanceOf(Composite::class, $message);
        return $message;
    }

    /** @dataProvider unknownKeys */
    public function testBareDecodingRefusesAnUnknownKeyAtEveryLevel(string $bytes): void
    {
        try {
            self::strict($bytes);
            self::fail('an unknown key was accepted');
        } catch (DecodeError $e) {
            self::assertMatchesRegularExpression('/unknown key "zz".*section 8\.1/', $e->getMessage());
        }
    }

    /** @dataProvider unknownKeys */
    public function testEnvelopedDecodingStillSkipsIt(string $bytes): void
    {
        $message = self::lenient($bytes);
        $codec = new MsgpackCodec();
        // What is left is the payload without its "zz" keys: it decodes strictly, to the same message.
        self::assertSame($codec->encode($message), $codec->encode(self::strict($codec->encode($message))));
    }

    public function testWhatIsLeftWhenSkipping(): void
    {
        $codec = new MsgpackCodec();
        self::assertSame('a', self::lenient(self::unknownKeys()['top level'][0])->getText());
        $items = self::lenient(self::unknownKeys()['repeated message'][0])->getItems();
        self::assertCount(2, $items);
        self::assertSame($codec->encode(new Inner()), $codec->encode($items[1]));
        self::assertSame('n', self::lenient(self::unknownKeys()['map value message'][0])->getByName()['k']->getName());
    }

    public function testANonStringKeyIsRefusedInBothForms(): void
    {
        $cases = [
            msgpack_pack([1 => 'x']),
            msgpack_pack(['inner' => [2 => 3]]),
            msgpack_pack(['items' => [[5 => 1]]]),
            "\x81\xa7by_name\x81\xa1k\x81\xc3\x01",  // {"by_name": {"k": {true: 1}}}
        ];
        foreach ($cases as $bytes) {
            foreach ([new MsgpackCodec(), new MsgpackCodec(unknownKeys: false)] as $codec) {
                try {
                    $codec->decode($bytes, Composite::class);
                    self::fail('a non-string key was accepted: ' . bin2hex($bytes));
                } catch (DecodeError $e) {
                    self::assertStringContainsString('map key must be a field name (str)', $e->getMessage());
                }
            }
        }
    }

    public function testKnownKeysEverywhereStillDecode(): void
    {
        $message = new Composite([
            'text' => 't',
            'inner' => new Inner(['name' => 'i', 'value' => -1]),
            'items' => [new Inner(['name' => 'x'])],
            'by_name' => ['k' => new Inner(['value' => 2])],
            'labels' => [7 => 's'],
            'blobs' => ['zz' => "\x00"],  // a map's own keys are never field names
            'child' => new Composite(['nested' => new Inner(['name' => 'deep'])]),
        ]);
        $codec = new MsgpackCodec();
        self::assertSame($codec->encode($message), $codec->encode(self::strict($codec->encode($message))));
        self::assertSame('a', self::strict(msgpack_pack(['text' => 'a', 'inner' => null]))->getText(), 'nil is still unset');
        self::assertSame(100, self::depth(self::strict(str_repeat("\x81\xa5child", 100) . "\x80")));
        $this->expectException(DecodeError::class);
        self::strict(str_repeat("\x81\xa5child", 101) . "\x80");
    }

    public function testZeroBytesAreTheEmptyMessageOnlyForATypeWithoutFields(): void
    {
        // Section 8.1: bare, zero bytes are what a failed encoder or a forgotten return sends.
        foreach ([Composite::class, Inner::class, WhoAmIReply::class] as $class) {
            try {
                (new MsgpackCodec(unknownKeys: false))->decode('', $class);
                self::fail("zero bytes were read as a {$class}");
            } catch (DecodeError $e) {
                self::assertSame("an empty payload is not a bare MSGPACK {$class} (an empty message is written 0x80)", $e->getMessage());
            }
            // An enveloped body (section 5) and the empty map stay the empty message.
            self::assertSame('', (new MsgpackCodec())->decode('', $class)->serializeToString());
            self::assertSame('', (new MsgpackCodec(unknownKeys: false))->decode("\x80", $class)->serializeToString());
        }
        foreach ([PBEmpty::class, GPBEmpty::class] as $class) {
            self::assertInstanceOf($class, (new MsgpackCodec(unknownKeys: false))->decode('', $class));
        }
    }

    private static function depth(Composite $message): int
    {
        for ($n = 0; ($message = $message->getChild()) !== null; $n++) {
        }
        return $n;
    }

    private static function dispatcher(): Dispatcher
    {
        $dispatcher = new Dispatcher();
        $echo = static fn (Composite $c): Composite => $c;
        $dispatcher->add(Method::bare('interop_bare_echo_msgpack', Composite::class, Composite::class, Encoding::MSGPACK, $echo));
        $dispatcher->add(Method::unary('enveloped.echo', Composite::class, Composite::class, $echo));
        return $dispatcher;
    }

    public function testABareMsgpackJobWithAnUnknownKeyIsInvalidArgumentInPlainText(): void
    {
        // The interop test's hostile job: {"text": "a", "zz": 1}.
        $sink = new RecordingSink();
        self::dispatcher()->handle('interop_bare_echo_msgpack', (string) hex2bin('82a474657874a161a27a7a01'), $sink);
        self::assertCount(1, $sink->packets);
        [$kind, $text] = $sink->packets[0];
        self::assertSame('exception', $kind);
        self::assertIsString($text);
        self::assertMatchesRegularExpression('/not a valid bridge\.interop\.v1\.Composite in bare MSGPACK: .*unknown key "zz"/', $text);
        foreach (self::unknownKeys() as $where => [$bytes]) {
            $sink = new RecordingSink();
            self::dispatcher()->handle('interop_bare_echo_msgpack', $bytes, $sink);
            self::assertSame(['exception'], array_column($sink->packets, 0), $where);
        }
        $sink = new RecordingSink();
        self::dispatcher()->handle('interop_bare_echo_msgpack', msgpack_pack(['text' => 'a']), $sink);
        self::assertSame([['complete', msgpack_pack(['text' => 'a'])]], $sink->packets);
    }

    /** @dataProvider unknownKeys */
    public function testAnEnvelopedMsgpackJobWithUnknownKeysStillRuns(string $bytes): void
    {
        $sink = new RecordingSink();
        $request = new Request(['version' => 1, 'encoding' => Encoding::MSGPACK, 'body' => $bytes]);
        self::dispatcher()->handle('enveloped.echo', $request->serializeToString(), $sink);
        self::assertSame(['complete'], array_column($sink->packets, 0));
        $codec = new MsgpackCodec();
        self::assertSame($codec->encode(self::lenient($bytes)), $sink->body(0));
    }
}
