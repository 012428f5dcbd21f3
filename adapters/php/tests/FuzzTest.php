<?php

declare(strict_types=1);

namespace Bridge\Runtime\Tests;

use Bridge\Runtime\Codec\BareJsonCodec;
use Bridge\Runtime\Codec\Codec;
use Bridge\Runtime\Codec\DecodeError;
use Bridge\Runtime\Codec\MsgpackCodec;
use Bridge\Runtime\Codec\ProtobufCodec;
use Bridge\Runtime\Dispatcher;
use Bridge\Runtime\Envelope;
use Bridge\V1\Code;
use Google\Protobuf\Internal\DescriptorPool;
use PHPUnit\Framework\TestCase;

/**
 * A mutation loop over every case of schemas/testdata/vectors.json (wire contract, section 5.9):
 * whatever the bytes, a decoder returns a message or throws DecodeError. No other error, no PHP
 * warning (PHPUnit turns them into failures), no allocation of a size the bytes only claim.
 * Deterministic: the same seed gives the same mutations on every run.
 */
final class FuzzTest extends TestCase
{
    private const SEED = 20261130;
    /** Mutations per vector; about five seconds for the whole corpus. */
    private const ROUNDS = 750;
    /** About 5 s on an idle machine; a loaded CI machine (load 11 on this one) took 25 s. */
    private const TIME_CAP_SECONDS = 60.0;
    /** Bytes that start a msgpack str/bin/ext/array/map with a 32-bit length, and other edges. */
    private const INTERESTING = [0x00, 0x01, 0x7f, 0x80, 0xff, 0xc1, 0xc6, 0xc9, 0xca, 0xcb, 0xd4, 0xd8, 0xdb, 0xdd, 0xdf, 0x0a, 0x12, 0x1a, 0x22, 0x0b, 0x0c];

    public function testMutatedVectorsDecodeOrFailWithADecodeErrorOnly(): void
    {
        mt_srand(self::SEED);
        $corpus = self::corpus();
        self::assertGreaterThan(80, count($corpus));
        $memoryBefore = memory_get_usage();
        $started = microtime(true);
        $decoded = $rejected = 0;
        for ($round = 0; $round < self::ROUNDS && microtime(true) - $started < self::TIME_CAP_SECONDS; $round++) {
            foreach ($corpus as [$name, $codec, $class, $bytes]) {
                $mutant = self::mutate($bytes);
                try {
                    $message = $codec->decode($mutant, $class);
                } catch (DecodeError) {
                    $rejected++;
                    continue;
                } catch (\Throwable $e) {
                    self::fail(sprintf("%s, mutant %s: %s: %s", $name, bin2hex($mutant), $e::class, $e->getMessage()));
                }
                $decoded++;
                // What decodes encodes, and what this codec encodes it decodes again.
                $again = $codec->encode($message);
                $codec->decode($again, $class);
            }
        }
        self::assertSame(self::ROUNDS, $round, 'the time cap cut the loop short');
        self::assertGreaterThan(1000, $decoded);
        self::assertGreaterThan(1000, $rejected);
        self::assertLessThan(64 << 20, memory_get_usage() - $memoryBefore, 'memory held after the loop');
    }

    public function testMutatedEnvelopesParseOrFailWithADecodeErrorOnly(): void
    {
        mt_srand(self::SEED + 1);
        $envelopes = array_values(array_filter(self::corpus(), static fn (array $c): bool => $c[2] === \Bridge\V1\Request::class));
        self::assertNotEmpty($envelopes);
        for ($i = 0; $i < 20 * self::ROUNDS; $i++) {
            [$name, , , $bytes] = $envelopes[$i % count($envelopes)];
            $mutant = self::mutate($bytes);
            try {
                Envelope::parse($mutant);
            } catch (DecodeError) {
            } catch (\Throwable $e) {
                self::fail(sprintf("%s, mutant %s: %s: %s", $name, bin2hex($mutant), $e::class, $e->getMessage()));
            }
        }
        $this->addToAssertionCount(1);
    }

    /**
     * The bare JSON codec (wire contract, section 8.2) on mutations of what it writes for every
     * vector, and of the lenient and invalid texts of bare_json_vectors.json.
     */
    public function testMutatedBareJsonReadsOrFailsWithADecodeErrorOnly(): void
    {
        mt_srand(self::SEED + 2);
        $json = new BareJsonCodec();
        $corpus = [];
        foreach (self::corpus() as [$name, $codec, $class, $bytes]) {
            if ($codec instanceof ProtobufCodec && $class !== \Bridge\V1\Request::class) {
                try {
                    $corpus[] = [$name, $class, $json->encode($codec->decode($bytes, $class))];
                } catch (DecodeError) {
                    // an invalid vector
                }
            }
        }
        $bare = json_decode((string) file_get_contents(BRIDGE_REPO_ROOT . '/schemas/testdata/bare_json_vectors.json'), true, 512, JSON_THROW_ON_ERROR);
        foreach ($bare as $case) {
            if (isset($case['bare_json_text']) && strlen($case['bare_json_text']) < 4096) {
                $class = DescriptorPool::getGeneratedPool()->getDescriptorByProtoName($case['type'])?->getClass();
                $corpus[] = [$case['name'], $class, $case['bare_json_text']];
            }
        }
        self::assertGreaterThan(100, count($corpus));
        $started = microtime(true);
        $decoded = $rejected = 0;
        $rounds = intdiv(self::ROUNDS, 3);
        for ($round = 0; $round < $rounds && microtime(true) - $started < self::TIME_CAP_SECONDS; $round++) {
            foreach ($corpus as [$name, $class, $text]) {
                $mutant = self::mutate($text);
                try {
                    $message = $json->decode($mutant, $class);
                } catch (DecodeError) {
                    $rejected++;
                    continue;
                } catch (\Throwable $e) {
                    self::fail(sprintf("%s, mutant %s: %s: %s", $name, bin2hex($mutant), $e::class, $e->getMessage()));
                }
                $decoded++;
                $again = $json->encode($message);
                self::assertMatchesRegularExpression('//u', $again);
                $json->decode($again, $class);
            }
        }
        self::assertSame($rounds, $round, 'the time cap cut the loop short');
        // About 300 of the mutants are zero bytes: a decoding error unless the type has no fields
        // (section 8.1), so no longer counted here.
        self::assertGreaterThan(250, $decoded);
        self::assertGreaterThan(1000, $rejected);
    }

    /** Claimed sizes far beyond the bytes present: refused at once, nothing of that size allocated. */
    public function testHugeDeclaredSizesAreRefusedBeforeAllocating(): void
    {
        $composite = 'Bridge\\Interop\\V1\\Composite';
        $msgpack = [
            "\x81\xa7numbers\xdd\xff\xff\xff\xff",        // array 32 of 4 billion items
            "\x81\xa6by_name\xdf\xff\xff\xff\xff",        // map 32
            "\x81\xa4text\xdb\xff\xff\xff\xff",           // str 32
            "\x81\xa3zzz\xc9\xff\xff\xff\xff\x01",        // ext 32 under an unknown key
            "\x81\xa3zzz\xdd\xff\xff\xff\xff",            // skipped array 32
            "\xdf\xff\xff\xff\xff",                       // top-level map 32
        ];
        $protobuf = [
            "\x4a\xff\xff\xff\xff\x0f",                   // text, length 4 GiB
            "\x12\xff\xff\xff\xff\xff\xff\xff\xff\x7f",   // inner, length 2^63-1
            "\x22\xff\xff\xff\xff\x0f\x01",               // packed numbers
            "\xfa\x01\xff\xff\xff\xff\x0f",               // unknown field 31, length-delimited
        ];
        $peak = memory_get_peak_usage();
        foreach ([[new MsgpackCodec(), $msgpack], [new ProtobufCodec(), $protobuf]] as [$codec, $cases]) {
            foreach ($cases as $bytes) {
                try {
                    $codec->decode($bytes, $composite);
                    self::fail('decoded ' . bin2hex($bytes));
                } catch (DecodeError) {
                }
            }
        }
        self::assertLessThan($peak + (8 << 20), memory_get_peak_usage());
    }

    /** The 20-byte poison job of issue 11 (msgpack array header claiming 4 billion items). */
    public function testThePoisonJobIsInvalidArgument(): void
    {
        $dispatcher = new Dispatcher();
        $dispatcher->add(\Bridge\Runtime\Method::unary('Echo', 'Bridge\\Interop\\V1\\Composite', 'Bridge\\Interop\\V1\\Composite', static fn ($c) => $c));
        $sink = new RecordingSink();
        $dispatcher->handle('Echo', hex2bin('080120022a0e81a76e756d62657273ddffffffff'), $sink);
        self::assertSame(Code::INVALID_ARGUMENT, $sink->error()->getCode());
    }

    private static function mutate(string $bytes): string
    {
        $n = mt_rand(1, 4);
        for ($i = 0; $i < $n; $i++) {
            $len = strlen($bytes);
            $at = $len === 0 ? 0 : mt_rand(0, $len - 1);
            switch ($len === 0 ? 4 : mt_rand(0, 7)) {
                case 0:  // flip one bit
                    $bytes[$at] = chr(ord($bytes[$at]) ^ (1 << mt_rand(0, 7)));
                    break;
                case 1:  // an interesting byte
                    $bytes[$at] = chr(self::INTERESTING[mt_rand(0, count(self::INTERESTING) - 1)]);
                    break;
                case 2:  // a random byte
                    $bytes[$at] = chr(mt_rand(0, 255));
                    break;
                case 3:  // truncate
                    $bytes = substr($bytes, 0, $at);
                    break;
                case 4:  // insert random bytes
                    $insert = '';
                    for ($k = mt_rand(1, 5); $k > 0; $k--) {
                        $insert .= chr(mt_rand(0, 255));
                    }
                    $bytes = substr($bytes, 0, $at) . $insert . substr($bytes, $at);
                    break;
                case 5:  // a length or count of 0xffffffff
                    $bytes = substr($bytes, 0, $at + 1) . "\xff\xff\xff\xff" . substr($bytes, $at + 1);
                    break;
                case 6:  // duplicate a slice (repeated fields, merges)
                    $slice = substr($bytes, $at, mt_rand(1, 16));
                    $bytes = substr($bytes, 0, $at) . $slice . substr($bytes, $at);
                    break;
                default:  // delete a slice
                    $bytes = substr($bytes, 0, $at) . substr($bytes, $at + mt_rand(1, 8));
            }
        }
        return $bytes;
    }

    /** @return list<array{string, Codec, string, string}> name, codec, class, bytes */
    private static function corpus(): array
    {
        $all = json_decode((string) file_get_contents(BRIDGE_REPO_ROOT . '/schemas/testdata/vectors.json'), true, 512, JSON_THROW_ON_ERROR);
        $msgpack = new MsgpackCodec();
        $protobuf = new ProtobufCodec();
        $corpus = [];
        foreach ($all as $case) {
            $class = DescriptorPool::getGeneratedPool()->getDescriptorByProtoName($case['type'])?->getClass();
            self::assertNotNull($class, $case['type']);
            if (isset($case['msgpack_hex'])) {
                $corpus[] = ["{$case['name']} (msgpack)", $msgpack, $class, (string) hex2bin($case['msgpack_hex'])];
            }
            if (isset($case['protobuf_hex'])) {
                $corpus[] = ["{$case['name']} (protobuf)", $protobuf, $class, (string) hex2bin($case['protobuf_hex'])];
            }
        }
        return $corpus;
    }
}
