<?php

/**
 * The PHP interop worker: user code written against the generated shim of
 * schemas/interop/v1/interop.proto (see interop_tests/README.md for what each rpc does): the
 * Interop service, and the Bare service (jobs without the envelope), whose handlers are Interop's.
 *
 *     php worker.php --servers HOST:PORT[,HOST:PORT...] [--concurrency N] [--log-level LEVEL] [--max-request-bytes N]
 *
 * (the command line of every bridge worker, docs/workers.md: Bridge\Runtime\CommandLine; --help lists it)
 *
 * BRIDGE_PHP_GEN names the folder `bridge generate --lang php` wrote the interop code to. With
 * BRIDGE_KEYS or BRIDGE_KEYS_FILE set, the runtime serves signed jobs only (wire contract, section 9).
 */

declare(strict_types=1);

use Bridge\Interop\V1\BareBase;
use Bridge\Interop\V1\BareRegistration;
use Bridge\Interop\V1\Blob;
use Bridge\Interop\V1\Composite;
use Bridge\Interop\V1\InteropBase;
use Bridge\Interop\V1\InteropRegistration;
use Bridge\Interop\V1\PBEmpty;
use Bridge\Interop\V1\ProgressReply;
use Bridge\Interop\V1\ProgressRequest;
use Bridge\Interop\V1\RaiseRequest;
use Bridge\Interop\V1\RawBytes;
use Bridge\Interop\V1\RawText;
use Bridge\Interop\V1\Scalars;
use Bridge\Interop\V1\SleepReply;
use Bridge\Interop\V1\SleepRequest;
use Bridge\Interop\V1\StreamItem;
use Bridge\Interop\V1\StreamRequest;
use Bridge\Interop\V1\WhoAmIReply;
use Bridge\Runtime\BridgeError;
use Bridge\Runtime\CommandLine;
use Bridge\Runtime\Context;

require dirname(__DIR__, 3) . '/adapters/php/autoload.php';
$commandLine = CommandLine::parse($argv, description: 'The PHP interop worker: the Interop and Bare services of schemas/interop/v1/interop.proto.');
require (getenv('BRIDGE_PHP_GEN') ?: __DIR__ . '/gen') . '/autoload.php';

final class Interop extends InteropBase
{
    public function echo(Composite $request, Context $context): Composite
    {
        return $request;
    }

    public function echoScalars(Scalars $request, Context $context): Scalars
    {
        return $request;
    }

    public function echoBlob(Blob $request, Context $context): Blob
    {
        return $request;
    }

    public function legacy(Blob $request, Context $context): Blob
    {
        return $request;
    }

    public function nothing(PBEmpty $request, Context $context): PBEmpty
    {
        return new PBEmpty();
    }

    public function stream(StreamRequest $request, Context $context): iterable
    {
        for ($i = 0; $i < $request->getCount(); $i++) {
            if ($request->getDelayMs() > 0) {
                self::pause($request->getDelayMs());
            }
            yield new StreamItem([
                'index' => $i,
                'payload' => str_repeat(chr($i % 256), $request->getPayloadSize()),
            ]);
        }
    }

    /** The same stream, declared idempotent in the schema (clients drop a restarted run's repeats). */
    public function streamIdempotent(StreamRequest $request, Context $context): iterable
    {
        return $this->stream($request, $context);
    }

    public function progress(ProgressRequest $request, Context $context): ProgressReply
    {
        if ($request->getWarning() !== '') {
            $context->warning($request->getWarning());
        }
        for ($i = 1; $i <= $request->getSteps(); $i++) {
            $context->progress($i, $request->getSteps());
        }
        return new ProgressReply(['steps_done' => $request->getSteps()]);
    }

    public function raise(RaiseRequest $request, Context $context): PBEmpty
    {
        if ($request->getFail()) {
            $context->fail();
        }
        if ($request->getNative()) {
            throw new RuntimeException($request->getMessage());
        }
        throw new BridgeError($request->getCode(), $request->getMessage());
    }

    public function sleep(SleepRequest $request, Context $context): SleepReply
    {
        self::pause($request->getMillis());
        return new SleepReply(['slept_millis' => $request->getMillis(), 'language' => 'php']);
    }

    private static function pause(int $millis): void
    {
        $until = hrtime(true) + $millis * 1_000_000;
        while (($left = $until - hrtime(true)) > 0) {
            usleep(intdiv($left, 1000));
        }
    }

    public function whoAmI(PBEmpty $request, Context $context): WhoAmIReply
    {
        $reply = new WhoAmIReply(['language' => 'php', 'deadline_ms' => $context->deadlineMs()]);
        foreach ($context->metadata() as $key => $value) {
            $reply->getMetadata()[(string) $key] = $value;
        }
        return $reply;
    }
}

/** The Bare service: the same handlers as Interop's, for jobs without the envelope. */
final class Bare extends BareBase
{
    public function __construct(private readonly Interop $interop)
    {
    }

    public function echoJson(Composite $request, Context $context): Composite
    {
        return $this->interop->echo($request, $context);
    }

    public function echoScalarsJson(Scalars $request, Context $context): Scalars
    {
        return $this->interop->echoScalars($request, $context);
    }

    public function echoMsgpack(Composite $request, Context $context): Composite
    {
        return $this->interop->echo($request, $context);
    }

    public function echoProtobuf(Composite $request, Context $context): Composite
    {
        return $this->interop->echo($request, $context);
    }

    public function echoRaw(RawBytes $request, Context $context): RawBytes
    {
        return $request;
    }

    /** The text with its code points in reverse order. */
    public function reverse(RawText $request, Context $context): RawText
    {
        return new RawText(['text' => implode('', array_reverse(mb_str_split($request->getText(), 1, 'UTF-8')))]);
    }

    public function progressJson(ProgressRequest $request, Context $context): ProgressReply
    {
        return $this->interop->progress($request, $context);
    }

    public function raiseJson(RaiseRequest $request, Context $context): PBEmpty
    {
        return $this->interop->raise($request, $context);
    }

    public function raiseMsgpack(RaiseRequest $request, Context $context): PBEmpty
    {
        return $this->interop->raise($request, $context);
    }

    public function whoAmIJson(PBEmpty $request, Context $context): WhoAmIReply
    {
        return $this->interop->whoAmI($request, $context);
    }
}

$worker = $commandLine->worker();
$interop = new Interop();
InteropRegistration::register($worker, $interop);
BareRegistration::register($worker, new Bare($interop));
exit($worker->run());
