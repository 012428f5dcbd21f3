<?php

declare(strict_types=1);

namespace Bridge\Runtime;

use Bridge\Runtime\Codec\BareJsonCodec;
use Bridge\Runtime\Codec\Codec;
use Bridge\Runtime\Codec\DecodeError;
use Bridge\Runtime\Codec\MsgpackCodec;
use Bridge\Runtime\Codec\ProtobufCodec;
use Bridge\Runtime\Codec\RawCodec;
use Bridge\Runtime\Security\JobVerifier;
use Bridge\Runtime\Security\ReplayGuard;
use Bridge\Runtime\Security\SignedSink;
use Bridge\V1\Code;
use Bridge\V1\Encoding;
use Bridge\V1\Error;
use Google\Protobuf\Internal\Message;

/**
 * Runs one job through the steps of the wire contract (section 2; section 8.4 for a bare method),
 * whatever the job server is. With a JobVerifier (keys), a job is run only when its signature,
 * deadline and nonce pass the checks of section 9.2, and the replies of a job that named a known
 * key are signed (section 9.3).
 * handle() throws only ConnectionLost (the job server's connection is gone: nothing more can be
 * sent); otherwise every job ends with exactly one WORK_COMPLETE, WORK_EXCEPTION or WORK_FAIL.
 */
final class Dispatcher
{
    public const DEFAULT_MAX_REQUEST_BYTES = 64 * 1024 * 1024 + 64 * 1024;
    private const BARE_HINT = 'a caller that sends bare payloads (JSON, msgpack, protobuf or raw bytes without the '
        . 'envelope) needs the method declared `bare: true` (wire contract, section 8)';

    /** @var array<string, Method> */
    private array $methods = [];
    private readonly ProtobufCodec $protobuf;
    private readonly MsgpackCodec $msgpack;
    private ?BareJsonCodec $json = null;
    /** Bare MSGPACK refuses keys its type does not have (section 8.1); enveloped MSGPACK skips them. */
    private ?MsgpackCodec $bareMsgpack = null;
    private ?RawCodec $raw = null;
    /** True while the handler's own code runs: what it throws is UNKNOWN, anything else INTERNAL. */
    private bool $inHandler = false;
    /** Set when the worker has keys: every job must be signed by one of them. */
    private ?JobVerifier $verifier = null;
    private readonly ?Log $log;
    /** What the running job's log line says: its encoding and trace id, once known. */
    private string $jobEncoding = 'protobuf';
    private ?string $jobTraceId = null;

    /**
     * @param Log|\Closure(string): void|null $log where log lines go (a Closure gets every line at
     *        info and above); null: none
     */
    public function __construct(
        private readonly int $maxRequestBytes = self::DEFAULT_MAX_REQUEST_BYTES,
        Log|\Closure|null $log = null,
    ) {
        $this->log = $log instanceof \Closure ? new Log(Log::INFO, $log) : $log;
        $this->protobuf = new ProtobufCodec();
        $this->msgpack = new MsgpackCodec();
    }

    public function add(Method $method): void
    {
        if (isset($this->methods[$method->functionName])) {
            throw new \LogicException("{$method->functionName} is registered twice");
        }
        $this->methods[$method->functionName] = $method;
    }

    /** With keys: jobs must be signed (wire contract, section 9); null turns the checks off. */
    public function setVerifier(?JobVerifier $verifier): void
    {
        $this->verifier = $verifier;
    }

    public function verifier(): ?JobVerifier
    {
        return $this->verifier;
    }

    /** @return array<string, Method> by Gearman function name */
    public function methods(): array
    {
        return $this->methods;
    }

    /**
     * Runs one job and sends its answer; then writes its line (docs/workers.md): at debug, or at
     * warning with the message for an error answer.
     */
    public function handle(string $functionName, string $payload, JobSink $sink, string $handle = '', string $unique = ''): void
    {
        $started = hrtime(true);
        // The attempt id names this run of the job in every reply frame (wire contract, section 3).
        $attempt = FramedSink::newAttemptId();
        $this->inHandler = false;
        $method = $this->methods[$functionName] ?? null;
        $this->jobEncoding = $method?->bare ? self::encodingWord($method->encoding) : 'protobuf';
        $this->jobTraceId = null;
        $outcome = 'OK';
        $message = null;
        try {
            if ($method === null) {
                // Only reachable when the job server hands us a function we never registered.
                throw new Rejected(Code::UNIMPLEMENTED, "{$functionName} is not served by this worker");
            }
            if ($method->bare && $this->verifier !== null) {
                // A bare job has nowhere to carry a signature (section 9).
                throw $this->refuse($functionName, $handle, 'bare jobs cannot be signed');
            }
            // 1. size
            if (strlen($payload) > $this->maxRequestBytes) {
                throw new Rejected(Code::RESOURCE_EXHAUSTED, sprintf(
                    'request of %d bytes is larger than this worker accepts (%d)',
                    strlen($payload),
                    $this->maxRequestBytes
                ));
            }
            if ($method->bare) {
                $this->runBare($method, $payload, $sink, $handle, $unique);
            } else {
                $this->run($method, $payload, $sink, $handle, $unique, $attempt);
            }
        } catch (ConnectionLost $e) {
            throw $e;  // nothing more can reach the server: the worker drops the connection
        } catch (JobFailed $e) {
            $sink->fail();
            [$outcome, $message] = ['WORK_FAIL', $e->getMessage()];
        } catch (\Throwable $e) {
            // Anything the handler, a codec or the runtime threw ends this job only; the worker
            // lives on. A failure outside the handler's own code is the worker's, never the caller's.
            $internal = !$this->inHandler;
            $error = self::errorFor($e, $internal, $functionName);
            $sink->exception($method?->bare ? self::bareError($error, $method->encoding) : $error->serializeToString());
            $outcome = self::codeName($error->getCode());
            $message = $error->getMessage();
            if (!$e instanceof BridgeError && !$e instanceof Rejected && !$e instanceof DecodeError && !$e instanceof Unimplemented && !$internal) {
                $message = $e::class . ($message === '' ? '' : ": {$message}");  // the handler's own exception
            }
            if ($internal && !$e instanceof BridgeError && !$e instanceof DecodeError) {
                // Not the caller's fault: the worker (its generated code, a codec) failed.
                $this->log?->error(sprintf(
                    '%s: worker-side failure (answered INTERNAL): %s: %s',
                    $functionName,
                    $e::class,
                    $e->getMessage()
                ));
            }
        } finally {
            $this->inHandler = false;
        }
        $this->log?->job(
            $functionName,
            $handle,
            $this->jobEncoding,
            strlen($payload),
            (hrtime(true) - $started) / 1e9,
            $outcome,
            $this->jobTraceId,
            $message,
        );
    }

    /** The name of a bridge.v1.Code, or the number of one this runtime does not know. */
    private static function codeName(int $code): string
    {
        try {
            return Code::name($code);
        } catch (\UnexpectedValueException) {
            return (string) $code;
        }
    }

    /** How a job line names an encoding: protobuf, msgpack, json, raw. */
    private static function encodingWord(int $encoding): string
    {
        return match ($encoding) {
            Encoding::ENCODING_UNSPECIFIED, Encoding::PROTOBUF => 'protobuf',
            Encoding::MSGPACK => 'msgpack',
            Encoding::JSON => 'json',
            Encoding::RAW => 'raw',
            default => "encoding-{$encoding}",
        };
    }

    /** $sink becomes the signing sink once the job has named a known key (its refusal is signed too). */
    private function run(Method $method, string $payload, JobSink &$sink, string $handle, string $unique, string $attempt): void
    {
        $functionName = $method->functionName;
        // 2. envelope
        try {
            $request = Envelope::parse($payload);
        } catch (DecodeError $e) {
            throw new Rejected(Code::INVALID_ARGUMENT, sprintf(
                '%s: the job is not a bridge envelope (bridge.v1.Request): %s; %s',
                $functionName,
                $e->getMessage(),
                self::BARE_HINT
            ));
        }
        $this->jobTraceId = ($traceparent = TraceContext::traceparentOf($request->metadata)) === null
            ? null
            : TraceContext::traceIdOf($traceparent);
        $this->jobEncoding = self::encodingWord($request->encoding);
        // 3. version
        if ($request->version !== 1) {
            throw new Rejected(Code::FAILED_PRECONDITION, $request->version === 0
                // Bytes protobuf can read, but with no version at all: most likely no envelope.
                ? "{$functionName}: envelope version 0 is not supported (this worker speaks version 1): "
                    . 'the job has no envelope version, so it is probably not a bridge envelope; ' . self::BARE_HINT
                : "envelope version {$request->version} is not supported (this worker speaks version 1)");
        }
        // Signed jobs (section 9.2): after steps 1-3, before anything else.
        if ($this->verifier !== null) {
            $key = $this->verifier->replyKey($request);
            if ($key !== null) {
                $sink = new SignedSink($sink, $key, $functionName, $request->keyId, $request->nonce);
            }
            $failure = $this->verifier->check($functionName, $request);
            if ($failure !== null) {
                throw $this->refuse($functionName, $handle, $failure, $request->keyId);
            }
        }
        // 4. encoding
        $encoding = $request->encoding ?: Encoding::PROTOBUF;
        $codec = $this->codecFor($encoding);
        // 5. deadline
        $deadlineMs = $request->deadlineMs;
        if ($deadlineMs !== 0 && Context::nowMs() >= $deadlineMs) {
            throw new Rejected(Code::DEADLINE_EXCEEDED, "the deadline passed before {$functionName} started");
        }
        // 6. body
        $message = $codec->decode($request->body, $method->requestClass);
        $framed = new FramedSink($sink, $encoding, FramedSink::typeTagOf($method->replyClass), $attempt, $method->serverStreaming);
        $context = new Context($framed, $functionName, $request->metadata, $deadlineMs, $encoding, $handle, $unique);
        // 7. (Unimplemented is thrown by the generated base class) 8. run the handler. Its own code
        // runs in the call and, for a generator, in each step of the foreach.
        $this->inHandler = true;
        $result = ($method->handler)($message, $context);
        if ($method->serverStreaming) {
            if (!is_iterable($result)) {
                $this->inHandler = false;
                throw new Rejected(Code::INTERNAL, sprintf(
                    '%s must return an iterable of %s, got %s',
                    $functionName,
                    $method->replyClass,
                    get_debug_type($result)
                ));
            }
            foreach ($result as $item) {
                $this->inHandler = false;
                $framed->data($codec->encode(self::checkReply($item, $method, $functionName)));
                $this->inHandler = true;
            }
            $this->inHandler = false;
            $framed->complete('');
            return;
        }
        $this->inHandler = false;
        $framed->complete($codec->encode(self::checkReply($result, $method, $functionName)));
    }

    /**
     * A bare job (wire contract, section 8.4): the payload is the request alone in the method's
     * encoding; no deadline or metadata; the reply alone, with no frame; progress and warnings
     * without attempt markers.
     */
    private function runBare(Method $method, string $payload, JobSink $sink, string $handle, string $unique): void
    {
        $codec = $this->bareCodecFor($method->encoding);
        try {
            $message = $codec->decode($payload, $method->requestClass);
        } catch (DecodeError $e) {
            throw new DecodeError(sprintf(
                '%s: the request is not a valid %s in bare %s: %s',
                $method->functionName,
                \Google\Protobuf\Internal\DescriptorPool::getGeneratedPool()
                    ->getDescriptorByClassName($method->requestClass)?->getFullName() ?? $method->requestClass,
                Encoding::name($method->encoding),
                $e->getMessage()
            ), 0, $e);
        }
        $context = new Context($sink, $method->functionName, [], 0, $method->encoding, $handle, $unique);
        $this->inHandler = true;
        $result = ($method->handler)($message, $context);
        $this->inHandler = false;
        $sink->complete($codec->encode(self::checkReply($result, $method, $method->functionName)));
    }

    /**
     * The answer to a job that failed a check of section 9.2, and its one warning line: the
     * function, the job handle and the check (and the key id the job named, escaped: every control
     * byte and every byte above 0x7e as \ooo; never a key). UNAUTHENTICATED, or RESOURCE_EXHAUSTED
     * for a full replay cache (a well-signed job this worker cannot vouch for yet).
     */
    private function refuse(string $functionName, string $handle, string $failure, string $keyId = ''): Rejected
    {
        $code = $failure === ReplayGuard::REPLAY_CACHE_FULL ? Code::RESOURCE_EXHAUSTED : Code::UNAUTHENTICATED;
        if ($this->log !== null) {
            $this->log->warning(sprintf(
                '%s: job %s refused (%s): %s%s',
                $functionName,
                addcslashes($handle, "\0..\37\177..\377\\"),
                Code::name($code),
                $failure,
                $keyId === '' ? '' : " (key id '" . addcslashes(substr($keyId, 0, 64), "\0..\37\177..\377'\\") . "')"
            ));
        }
        return new Rejected($code, "{$functionName}: {$failure}");
    }

    private function bareCodecFor(int $encoding): Codec
    {
        return match ($encoding) {
            Encoding::PROTOBUF => $this->protobuf,
            Encoding::MSGPACK => $this->bareMsgpack ??= new MsgpackCodec(unknownKeys: false),
            Encoding::JSON => $this->json ??= new BareJsonCodec(),
            Encoding::RAW => $this->raw ??= new RawCodec(),
            default => throw new \LogicException("no bare codec for encoding {$encoding}"),
        };
    }

    /**
     * A bare method's error as its peer can read it (wire contract, section 8.3): for JSON the
     * object {"code": 5, "status": "NOT_FOUND", "message": "..."}, for the others the message
     * text alone.
     */
    public static function bareError(Error $error, int $encoding): string
    {
        $code = $error->getCode();
        try {
            $status = Code::name($code);
        } catch (\UnexpectedValueException) {
            [$code, $status] = [Code::UNKNOWN, 'UNKNOWN'];
        }
        $message = $error->getMessage() !== '' ? $error->getMessage() : ($error->getType() ?: $status);
        if ($encoding === Encoding::JSON) {
            return json_encode(
                ['code' => $code, 'status' => $status, 'message' => $message],
                JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_THROW_ON_ERROR
            );
        }
        return $message;
    }

    private function codecFor(int $encoding): Codec
    {
        return match ($encoding) {
            Encoding::ENCODING_UNSPECIFIED, Encoding::PROTOBUF => $this->protobuf,
            Encoding::MSGPACK => $this->msgpack,
            default => throw new Rejected(Code::INVALID_ARGUMENT, "unknown body encoding {$encoding}"),
        };
    }

    private static function checkReply(mixed $reply, Method $method, string $functionName): Message
    {
        if (!$reply instanceof $method->replyClass) {
            throw new Rejected(Code::INTERNAL, sprintf(
                '%s returned %s where %s was expected',
                $functionName,
                get_debug_type($reply),
                $method->replyClass
            ));
        }
        return $reply;
    }

    /**
     * The bridge.v1.Error that reports $e to the caller. $internal: $e did not come from the
     * handler's own code but from the runtime around it (a generated class that is missing, a reply
     * that cannot be encoded): INTERNAL, not UNKNOWN.
     */
    public static function errorFor(\Throwable $e, bool $internal = false, string $functionName = ''): Error
    {
        $error = new Error();
        $error->setLanguage('php');
        $error->setMessage(self::utf8($e->getMessage()));
        if ($e instanceof BridgeError) {
            $error->setCode($e->getCode());
            foreach ($e->getDetails() as $key => $value) {
                $error->getDetails()[(string) $key] = self::utf8((string) $value);
            }
        } elseif ($e instanceof DecodeError) {
            $error->setCode(Code::INVALID_ARGUMENT);
        } elseif ($internal) {
            $error->setCode(Code::INTERNAL);
            $hint = str_contains($e->getMessage(), 'not found')
                ? ' (is the PHP code generated for every .proto file the schema imports?)'
                : '';
            $error->setMessage(self::utf8(sprintf(
                '%sthe PHP worker failed: %s%s',
                $functionName === '' ? '' : "{$functionName}: ",
                $e->getMessage(),
                $hint
            )));
        } else {
            $error->setCode(Code::UNKNOWN);
        }
        if ($e instanceof Rejected || $e instanceof DecodeError || $e instanceof Unimplemented) {
            // The runtime's own answers are typed by their code: "InvalidArgument", "Unimplemented".
            $error->setType(str_replace('_', '', ucwords(strtolower(Code::name($error->getCode())), '_')));
        } else {
            $error->setType($e::class);
            $error->setTrace(self::utf8($e->getTraceAsString()));
        }
        return $error;
    }

    /** Error strings must be valid UTF-8 for protobuf; a message quoting raw bytes is repaired. */
    private static function utf8(string $s): string
    {
        return preg_match('//u', $s)
            ? $s
            : htmlspecialchars_decode(htmlspecialchars($s, ENT_SUBSTITUTE | ENT_NOQUOTES, 'UTF-8'), ENT_NOQUOTES);
    }
}
