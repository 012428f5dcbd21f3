<?php

declare(strict_types=1);

namespace Bridge\Runtime\Tests;

use Bridge\Interop\V1\Blob;
use Bridge\Interop\V1\Composite;
use Bridge\Interop\V1\PBEmpty;
use Bridge\Runtime\BridgeError;
use Bridge\Runtime\CommandLine;
use Bridge\Runtime\Context;
use Bridge\Runtime\Dispatcher;
use Bridge\Runtime\Log;
use Bridge\Runtime\Method;
use Bridge\Runtime\TraceContext;
use Bridge\Runtime\UsageError;
use Bridge\V1\Code;
use Bridge\V1\Encoding;
use Bridge\V1\Request;
use PHPUnit\Framework\TestCase;

/**
 * docs/workers.md in the PHP runtime: the job lines and their level switch, the trace context on
 * the handler's Context, and the command line (CommandLine::read(); the process side, exit
 * statuses and stderr, is tests/adapters/test_php_command_line.py).
 */
final class LogTest extends TestCase
{
    private const TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    private const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';

    /** @var list<string> */
    private array $lines = [];
    private ?Context $seen = null;

    private function dispatcher(int $level): Dispatcher
    {
        $dispatcher = new Dispatcher(log: new Log($level, function (string $line): void {
            $this->lines[] = $line;
        }));
        $dispatcher->add(Method::unary('t.Echo', Blob::class, Blob::class, function (Blob $blob, Context $context): Blob {
            $this->seen = $context;
            return $blob;
        }));
        $dispatcher->add(Method::unary('t.Throws', Composite::class, PBEmpty::class, static function (Composite $c, Context $context): PBEmpty {
            match ($c->getText()) {
                'fail' => $context->fail(),
                'native' => throw new \DomainException('native trouble'),
                default => throw new BridgeError(Code::NOT_FOUND, $c->getText()),
            };
        }));
        $dispatcher->add(Method::bare('t.BareEcho', Blob::class, Blob::class, Encoding::JSON, static fn (Blob $b): Blob => $b));
        return $dispatcher;
    }

    /** @param array<string, string> $metadata */
    private static function request(string $body, int $encoding = Encoding::PROTOBUF, array $metadata = []): string
    {
        $request = new Request(['version' => 1, 'encoding' => $encoding, 'body' => $body]);
        foreach ($metadata as $key => $value) {
            $request->getMetadata()[$key] = $value;
        }
        return $request->serializeToString();
    }

    public function testOneDebugLinePerJobWithItsTraceId(): void
    {
        $payload = self::request((new Blob(['text' => 'hi']))->serializeToString(), Encoding::PROTOBUF, ['traceparent' => self::TRACEPARENT, 'tracestate' => 'k=v']);
        $this->dispatcher(Log::DEBUG)->handle('t.Echo', $payload, new RecordingSink(), 'H:host:42');
        self::assertCount(1, $this->lines);
        self::assertMatchesRegularExpression(
            '/^debug: job function=t\.Echo handle=H:host:42 encoding=protobuf bytes=' . strlen($payload)
                . ' seconds=\d+\.\d{6} outcome=OK trace_id=' . self::TRACE_ID . '$/D',
            $this->lines[0]
        );
        self::assertSame(self::TRACEPARENT, $this->seen?->traceparent());
        self::assertSame(self::TRACE_ID, $this->seen?->traceId());
        self::assertSame('00f067aa0ba902b7', $this->seen?->parentSpanId());
        self::assertSame('k=v', $this->seen?->tracestate());
        self::assertSame(self::TRACEPARENT, $this->seen?->metadata()['traceparent'], 'metadata passes through unchanged');
    }

    public function testNoJobLineAtInfoForASuccess(): void
    {
        $this->dispatcher(Log::INFO)->handle('t.Echo', self::request(''), new RecordingSink(), 'H:1');
        self::assertSame([], $this->lines);
    }

    public function testAnInvalidTraceparentIsIgnored(): void
    {
        $bad = [
            '', 'garbage', '01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
            '00-00000000000000000000000000000000-00f067aa0ba902b7-01',
            '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01',
            '00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01',
            self::TRACEPARENT . '-extra', self::TRACEPARENT . "\n",
        ];
        foreach ($bad as $value) {
            $this->lines = [];
            $this->seen = null;
            $sink = new RecordingSink();
            $this->dispatcher(Log::DEBUG)->handle('t.Echo', self::request('', Encoding::MSGPACK, ['traceparent' => $value, 'tracestate' => 'k=v']), $sink, 'H:1');
            self::assertSame('complete', $sink->packets[array_key_last($sink->packets)][0], "'{$value}' is no error");
            self::assertNull($this->seen?->traceparent(), $value);
            self::assertNull($this->seen?->traceId(), $value);
            self::assertNull($this->seen?->tracestate(), $value);
            self::assertStringContainsString(' encoding=msgpack ', $this->lines[0]);
            self::assertStringEndsWith(' outcome=OK', $this->lines[0], $value);
        }
        self::assertFalse(TraceContext::isValid('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1'));
    }

    public function testEveryErrorAnswerIsAWarningLineWithItsMessageEscapedAndCut(): void
    {
        $hostile = "no invoice\n[bridge-php 1] info: forged \"line\"\r\t\x1b[31m\u{202e}é\\" . str_repeat('x', 300);
        $payload = self::request((new Composite(['text' => $hostile]))->serializeToString(), Encoding::PROTOBUF, ['traceparent' => self::TRACEPARENT]);
        $this->dispatcher(Log::WARNING)->handle('t.Throws', $payload, new RecordingSink(), 'H:host:7');
        self::assertCount(1, $this->lines);
        $line = $this->lines[0];
        self::assertStringStartsWith(
            'warning: job failed function=t.Throws handle=H:host:7 encoding=protobuf bytes=' . strlen($payload) . ' seconds=',
            $line
        );
        self::assertStringContainsString(' outcome=NOT_FOUND trace_id=' . self::TRACE_ID . ' message="no invoice\\n[bridge-php 1] info: forged \\"line\\"\\r\\t\\u001b[31m\\u202eé\\\\xxx', $line);
        $kept = 200 - preg_match_all('/./su', $hostile) + 300;  // the x's within the first 200 characters
        self::assertStringEndsWith('\\' . str_repeat('x', $kept) . '..."', $line, 'cut at 200 characters, then "..."');
        self::assertDoesNotMatchRegularExpression('/[\x00-\x1f\x7f]/', $line, 'no raw control character');
    }

    public function testWorkFailNativeErrorsAndRuntimeAnswersAreWarnings(): void
    {
        $d = $this->dispatcher(Log::WARNING);
        $d->handle('t.Throws', self::request((new Composite(['text' => 'fail']))->serializeToString()), new RecordingSink(), 'H:1');
        $d->handle('t.Throws', self::request((new Composite(['text' => 'native']))->serializeToString()), new RecordingSink(), 'H:2');
        $d->handle('t.Echo', 'not an envelope', new RecordingSink(), 'H:3');
        $d->handle('t.BareEcho', '{"text": 5}', new RecordingSink(), 'H:4');
        $d->handle('t.Echo', self::request('', 9), new RecordingSink(), 'H:5');
        self::assertCount(5, $this->lines);
        self::assertStringContainsString('handle=H:1 encoding=protobuf bytes=', $this->lines[0]);
        self::assertStringContainsString(' outcome=WORK_FAIL message="t.Throws: the handler gave up"', $this->lines[0]);
        self::assertStringContainsString(' outcome=UNKNOWN message="DomainException: native trouble"', $this->lines[1]);
        self::assertStringContainsString(' bytes=15 ', $this->lines[2]);
        self::assertStringContainsString(' outcome=INVALID_ARGUMENT message="t.Echo: the job is not a bridge envelope', $this->lines[2]);
        self::assertStringContainsString('handle=H:4 encoding=json bytes=11 ', $this->lines[3]);
        self::assertStringContainsString(' outcome=INVALID_ARGUMENT ', $this->lines[3]);
        self::assertStringContainsString('encoding=encoding-9 ', $this->lines[4]);
        foreach ($this->lines as $line) {
            self::assertStringStartsWith('warning: job failed function=', $line);
            self::assertStringNotContainsString('trace_id=', $line);
        }
        $this->lines = [];
        $this->dispatcher(Log::ERROR)->handle('t.Throws', self::request(''), new RecordingSink(), 'H:6');
        self::assertSame([], $this->lines, 'an error answer is a warning, not an error');
    }

    public function testLevels(): void
    {
        self::assertSame(Log::WARNING, Log::levelNamed('WARN'));
        self::assertSame(Log::DEBUG, Log::levelNamed('Debug'));
        self::assertNull(Log::levelNamed('verbose'));
        self::assertSame(Log::ERROR, Log::levelFrom('error'));
        $this->expectExceptionMessage("--log-level must be one of debug, info, warning, error, not 'loud'");
        Log::levelFrom('loud');
    }

    public function testTheCommandLineTakesFlagsThenTheEnvironmentThenDefaults(): void
    {
        $defaults = CommandLine::read(['w.php']);
        self::assertSame([['127.0.0.1:4730'], 1, Log::INFO], [$defaults->servers, $defaults->concurrency, $defaults->logLevel]);
        $env = ['BRIDGE_SERVERS' => 'a:1,b:2', 'BRIDGE_CONCURRENCY' => '3', 'BRIDGE_LOG_LEVEL' => 'debug'];
        $fromEnv = CommandLine::read(['w.php'], [], $env);
        self::assertSame([['a:1', 'b:2'], 3, Log::DEBUG], [$fromEnv->servers, $fromEnv->concurrency, $fromEnv->logLevel]);
        $flags = CommandLine::read(['w.php', '--servers=c:3', '--concurrency', '4', '--log-level', 'WARN', '--max-request-bytes=100', '--gen', 'x'], ['gen' => 'DIR  code'], $env);
        self::assertSame([['c:3'], 4, Log::WARNING, 100, 'x'], [$flags->servers, $flags->concurrency, $flags->logLevel, $flags->maxRequestBytes, $flags->option('gen')]);
        $empty = CommandLine::read(['w.php'], [], ['BRIDGE_SERVERS' => '', 'BRIDGE_CONCURRENCY' => '', 'BRIDGE_LOG_LEVEL' => '']);
        self::assertSame([['127.0.0.1:4730'], 1, Log::INFO], [$empty->servers, $empty->concurrency, $empty->logLevel]);
        // The command line wins over a bad environment value.
        self::assertSame(2, CommandLine::read(['w.php', '--concurrency', '2'], [], ['BRIDGE_CONCURRENCY' => 'many'])->concurrency);
    }

    public function testReadTimeoutInSecondsOrMilliseconds(): void
    {
        self::assertSame(2500, CommandLine::read(['w.php', '--read-timeout', '2.5'])->readTimeoutMs);
        self::assertSame(100, CommandLine::read(['w.php', '--read-timeout=0.1'])->readTimeoutMs);
        self::assertSame(1, CommandLine::read(['w.php', '--read-timeout=0.0001'])->readTimeoutMs, 'rounded up');
        self::assertSame(3_600_000, CommandLine::read(['w.php', '--read-timeout', '3600'])->readTimeoutMs);
        self::assertSame(250, CommandLine::read(['w.php', '--read-timeout-ms', '250'])->readTimeoutMs);
        self::assertSame(5000, CommandLine::read(['w.php'])->readTimeoutMs);
    }

    public function testEscapingIsJsonStringStyle(): void
    {
        self::assertSame('a\\"b\\\\c\\nd\\re\\tf\\u0001g\\u007f', Log::escape("a\"b\\c\nd\re\tf\x01g\x7f"));
        self::assertSame('caf' . "\u{e9}" . ' \\u2028 \\u0085 \\xff \\ufeff \\u00ad \\u200b',
            Log::escape("caf\u{e9} \u{2028} \u{85} \xff \u{feff} \u{ad} \u{200b}"), 'bad bytes alone, UTF-8 kept');
        self::assertSame('\\udb40\\udc01 ' . "\u{1f600}" . ' \\xc3', Log::escape("\u{e0001} \u{1f600} \xc3"), 'a tag as a UTF-16 pair');
        self::assertSame(str_repeat('\\xff', 200) . '...', Log::escape(str_repeat("\xff", 300)));
    }

    public function testABadCommandLineIsOneUsageError(): void
    {
        $cases = [
            [['--concurrency', '0'], [], "--concurrency must be an integer from 1 to 1024, not '0'"],
            [['--concurrency=1025'], [], "--concurrency must be an integer from 1 to 1024, not '1025'"],
            [[], ['BRIDGE_CONCURRENCY' => 'x'], "BRIDGE_CONCURRENCY must be an integer from 1 to 1024, not 'x'"],
            [[], ['BRIDGE_LOG_LEVEL' => 'loud'], "BRIDGE_LOG_LEVEL must be one of debug, info, warning, error, not 'loud'"],
            [['--log-level'], [], '--log-level needs a value'],
            [['--frobnicate'], [], "unknown flag '--frobnicate'"],
            [['extra'], [], "unexpected argument 'extra'"],
            [['--servers', 'a b'], [], "--servers: 'a b' is not a HOST:PORT job server address"],
            [['--servers', ','], [], '--servers names no job server'],
            [['--max-request-bytes', '-1'], [], "--max-request-bytes must be a positive integer, not '-1'"],
            [['--servers', '127.0.0.1:0'], [], "--servers: '127.0.0.1:0' is not a HOST:PORT job server address"],
            [['--servers', '127.0.0.1:99999'], [], "--servers: '127.0.0.1:99999' is not a HOST:PORT job server address"],
            [['--servers', '127.0.0.1:notaport'], [], "--servers: '127.0.0.1:notaport' is not a HOST:PORT job server address"],
            [['--servers', ':4730'], [], "--servers: ':4730' is not a HOST:PORT job server address"],
            [['--servers', 'a:1,,b:2'], [], "--servers: 'a:1,,b:2' names an empty job server"],
            [[], ['BRIDGE_SERVERS' => 'a:65536'], "BRIDGE_SERVERS: 'a:65536' is not a HOST:PORT job server address"],
            [['--servers', 'tls://a:1'], [], "--servers: 'tls://a:1': the PHP runtime has no TLS of its own, run the worker under `bridge tunnel`"],
            [['--concurrency=+4'], [], "--concurrency must be an integer from 1 to 1024, not '+4'"],
            [['--concurrency', "4\n"], [], "--concurrency must be an integer from 1 to 1024, not '4\\n'"],
            [['--version=1'], [], '--version takes no value'],
            [['--help=yes'], [], '--help takes no value'],
            [['--read-timeout', '0'], [], "--read-timeout must be a number of seconds, more than 0 and at most 3600, not '0'"],
            [['--read-timeout=3600.001'], [], "--read-timeout must be a number of seconds, more than 0 and at most 3600, not '3600.001'"],
            [['--read-timeout', '1e3'], [], "--read-timeout must be a number of seconds, more than 0 and at most 3600, not '1e3'"],
            [['--read-timeout', '1.'], [], "--read-timeout must be a number of seconds, more than 0 and at most 3600, not '1.'"],
            [['--read-timeout=1', '--read-timeout-ms=5'], [], 'give --read-timeout or --read-timeout-ms, not both'],
        ];
        foreach ($cases as [$args, $env, $message]) {
            try {
                CommandLine::read(['w.php', ...$args], [], $env);
                self::fail('accepted ' . implode(' ', $args));
            } catch (UsageError $e) {
                self::assertSame($message, $e->getMessage());
            }
        }
    }
}
