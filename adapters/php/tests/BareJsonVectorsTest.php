<?php

declare(strict_types=1);

namespace Bridge\Runtime\Tests;

use Bridge\Runtime\Codec\BareJsonCodec;
use Bridge\Runtime\Codec\DecodeError;
use Bridge\Runtime\Codec\FieldPlan;
use Bridge\Runtime\Codec\MsgpackCodec;
use Google\Protobuf\Internal\DescriptorPool;
use Google\Protobuf\Internal\GPBType;
use Google\Protobuf\Internal\Message;
use PHPUnit\Framework\TestCase;

/**
 * Every case of schemas/testdata/bare_json_vectors.json (wire contract, section 8.5), the JSON
 * mapping of bare methods. The message of a written case comes from the protobuf bytes of the
 * case of the same name in vectors.json, read by the protobuf library; what is read back is
 * compared through the canonical msgpack bytes of that case.
 */
final class BareJsonVectorsTest extends TestCase
{
    /** @var array<string, \stdClass>|null vectors.json by name */
    private static ?array $binary = null;

    /** @return array<string, array{\stdClass}> */
    public static function writtenCases(): array
    {
        return self::cases(static fn (\stdClass $c): bool => isset($c->bare_json));
    }

    /** @return array<string, array{\stdClass}> */
    public static function decodeOnlyCases(): array
    {
        return self::cases(static fn (\stdClass $c): bool => ($c->decode_only ?? false) === true);
    }

    /** @return array<string, array{\stdClass}> */
    public static function invalidCases(): array
    {
        return self::cases(static fn (\stdClass $c): bool => ($c->invalid ?? false) === true);
    }

    /** @dataProvider writtenCases */
    public function testWritesTheVectorAndReadsItBack(\stdClass $case): void
    {
        $class = self::classOf($case->type);
        $binary = self::binary()[$case->name] ?? null;
        self::assertNotNull($binary, "vectors.json has no case {$case->name}");
        $message = new $class();
        $message->mergeFromString(hex2bin($binary->protobuf_hex));
        $codec = new BareJsonCodec();

        $written = $codec->encode($message);
        self::assertMatchesRegularExpression('//u', $written, 'UTF-8');
        self::assertStringNotContainsString('\\u00', self::stripControlEscapes($written), 'non-ASCII text as UTF-8, not \\u escapes');
        self::assertSame(
            self::comparable(self::text($case->bare_json), self::floatKeys($class)),
            self::comparable($written, self::floatKeys($class)),
            "written: {$written}"
        );

        // What was written, the vector's own JSON and the canonical JSON all read as the message.
        $nan = str_contains($case->name, 'nan');
        foreach (['written' => $written, 'bare_json' => self::text($case->bare_json), 'json' => self::text($case->json)] as $what => $text) {
            $read = $codec->decode($text, $class);
            if ($nan) {
                self::assertTrue(is_nan($read->getFFloat()) || is_nan($read->getFDouble()), "{$what}: NaN");
                continue;
            }
            self::assertSame($binary->msgpack_hex, bin2hex((new MsgpackCodec())->encode($read)), "{$what} read back: {$text}");
        }
    }

    /** @dataProvider decodeOnlyCases */
    public function testReadsTheLenientForm(\stdClass $case): void
    {
        $class = self::classOf($case->type);
        $codec = new BareJsonCodec();
        $lenient = $codec->decode($case->bare_json_text ?? '', $class);
        $canonical = $codec->decode(self::text($case->json), $class);
        $msgpack = new MsgpackCodec();
        self::assertSame(bin2hex($msgpack->encode($canonical)), bin2hex($msgpack->encode($lenient)));
        if (str_contains($case->bare_json_text ?? '', 'NaN')) {
            self::assertNan($lenient->getFDouble());
        }
    }

    /** @dataProvider invalidCases */
    public function testRefusesTheInvalidInput(\stdClass $case): void
    {
        $text = isset($case->bare_json_text_hex) ? hex2bin($case->bare_json_text_hex) : $case->bare_json_text;
        $this->expectException(DecodeError::class);
        (new BareJsonCodec())->decode($text, self::classOf($case->type));
    }

    /**
     * Reading rule 4: an integer written with a fraction or exponent part is taken only up to
     * 2^53 in magnitude, in nested messages, lists, maps and oneofs too; written as an integer it
     * is exact to the field's range.
     */
    public function testAnIntegerWrittenAsAFloatIsTakenOnlyUpTo2Pow53(): void
    {
        $codec = new BareJsonCodec();
        $class = \Bridge\Interop\V1\Composite::class;
        foreach (['9007199254740992.0', '-9.007199254740992e15', '9007199254740992', '9007199254740993', '-9223372036854775808'] as $n) {
            $message = $codec->decode("{\"inner\": {\"value\": {$n}}, \"items\": [{\"value\": {$n}}], \"by_name\": {\"k\": {\"value\": {$n}}}, \"number\": {$n}}", $class);
            $expected = (int) (str_contains($n, '.') || str_contains($n, 'e') ? (float) $n : $n);
            self::assertSame($expected, $message->getInner()->getValue(), $n);
            self::assertSame($expected, $message->getItems()[0]->getValue(), $n);
            self::assertSame($expected, $message->getByName()['k']->getValue(), $n);
            self::assertSame($expected, $message->getNumber(), $n);
        }
        foreach (['{"inner": {"value": 9007199254740994.0}}', '{"items": [{"value": -1e16}]}',
                  '{"by_name": {"k": {"value": 1.8446744073709552e19}}}', '{"number": 9.2233720368547758e+18}',
                  '{"scalars": {"f_sint64": 1e300}}', '{"scalars": {"f_uint64": 18446744073709551615.0}}'] as $text) {
            try {
                $codec->decode($text, $class);
                self::fail("accepted: {$text}");
            } catch (DecodeError $e) {
                self::assertStringContainsString('exact only up to 2^53', $e->getMessage(), $text);
            }
        }
        $scalars = $codec->decode('{"f_uint64": 18446744073709551615, "f_int64": "-9223372036854775808"}', \Bridge\Interop\V1\Scalars::class);
        self::assertSame(-1, $scalars->getFUint64());  // 2^64-1, held as the int of the same bits
        self::assertSame(PHP_INT_MIN, $scalars->getFInt64());
    }

    public function testEveryCaseRan(): void
    {
        $all = self::load('bare_json_vectors.json');
        self::assertSame(count($all), count(self::writtenCases()) + count(self::decodeOnlyCases()) + count(self::invalidCases()));
        self::assertGreaterThan(100, count($all));
    }

    /** Numbers outside strings become strings "\x01<number>", so that json_decode() keeps them exact. */
    private static function tagNumbers(string $json): string
    {
        return (string) preg_replace_callback(
            '/"[^"\\\\]*+(?:\\\\.[^"\\\\]*+)*+"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/',
            static fn (array $m): string => $m[0][0] === '"' ? $m[0] : '"\u0001' . $m[0] . '"',
            $json
        );
    }

    /** A value of the vector file (numbers tagged) as the JSON text it was written as. */
    private static function text(mixed $value): string
    {
        $json = json_encode($value, JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_THROW_ON_ERROR);
        return (string) preg_replace('/"\\\\u0001([^"]*)"/', '$1', $json);
    }

    /**
     * A JSON text as a value to compare: object keys sorted, every number as a tagged decimal
     * (so a 64-bit integer written as a string is not mistaken for the number), integers exact,
     * other numbers as doubles, and under a `float` field's key rounded to float 32.
     *
     * @param array<string, true> $floatKeys
     */
    private static function comparable(string $json, array $floatKeys): mixed
    {
        $value = json_decode(self::tagNumbers($json), true, 512, JSON_THROW_ON_ERROR);
        return self::normalize($value, $floatKeys, false);
    }

    /** @param array<string, true> $floatKeys */
    private static function normalize(mixed $value, array $floatKeys, bool $isFloat): mixed
    {
        if (is_array($value)) {
            $out = [];
            foreach ($value as $key => $item) {
                $out[$key] = self::normalize($item, $floatKeys, $isFloat || isset($floatKeys[(string) $key]));
            }
            if (!array_is_list($value)) {
                ksort($out, SORT_STRING);
            }
            return $out;
        }
        if (!is_string($value) || !str_starts_with($value, "\x01")) {
            return $value;
        }
        $number = substr($value, 1);
        if (preg_match('/^-?\d+$/', $number)) {
            $digits = ltrim(ltrim($number, '-'), '0');
            return 'int ' . ($digits === '' ? '0' : ($number[0] === '-' ? '-' : '') . $digits);
        }
        $double = (float) $number;
        if ($isFloat) {
            $double = unpack('g', pack('g', $double))[1];
        }
        return 'number ' . ($double == floor($double) && abs($double) < 2 ** 53 ? 'int ' . (int) $double : var_export($double, true));
    }

    /** @return array<string, true> the names of `float` fields in $class and the messages it holds */
    private static function floatKeys(string $class, array &$seen = []): array
    {
        $keys = [];
        $seen[$class] = true;
        foreach (FieldPlan::forClass($class) as $field) {
            if ($field->type === GPBType::FLOAT) {
                $keys[$field->name] = true;
            }
            $inner = $field->messageClass ?? $field->valueClass;
            if ($inner !== null && !isset($seen[$inner])) {
                $keys += self::floatKeys($inner, $seen);
            }
        }
        return $keys;
    }

    /** The text without \u escapes of control characters (JSON must escape those). */
    private static function stripControlEscapes(string $json): string
    {
        return (string) preg_replace('/\\\\u00[01][0-9a-fA-F]/', '', $json);
    }

    /** @return class-string<Message> */
    private static function classOf(string $protoName): string
    {
        $descriptor = DescriptorPool::getGeneratedPool()->getDescriptorByProtoName($protoName);
        self::assertNotNull($descriptor, "no PHP class for {$protoName}");
        return $descriptor->getClass();
    }

    /** @return array<string, \stdClass> */
    private static function binary(): array
    {
        if (self::$binary === null) {
            self::$binary = [];
            foreach (self::load('vectors.json') as $case) {
                self::$binary[$case->name] = $case;
            }
        }
        return self::$binary;
    }

    /** @return list<\stdClass> */
    private static function load(string $file): array
    {
        $text = (string) file_get_contents(BRIDGE_REPO_ROOT . "/schemas/testdata/{$file}");
        return json_decode(
            $file === 'vectors.json' ? $text : self::tagNumbers($text),
            false,
            512,
            JSON_THROW_ON_ERROR | JSON_BIGINT_AS_STRING
        );
    }

    /**
     * @param \Closure(\stdClass): bool $filter
     * @return array<string, array{\stdClass}>
     */
    private static function cases(\Closure $filter): array
    {
        $cases = [];
        foreach (self::load('bare_json_vectors.json') as $case) {
            if ($filter($case)) {
                $cases[$case->name] = [$case];
            }
        }
        return $cases;
    }
}
