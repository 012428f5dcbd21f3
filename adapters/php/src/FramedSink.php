<?php

declare(strict_types=1);

namespace Bridge\Runtime;

/**
 * The reply frames of one run (attempt) of a job, wire contract section 3: every WORK_DATA and
 * WORK_COMPLETE is a 23-byte header, then the encoded message.
 *
 *     0xB7 | kind | encoding | CRC-32 of the reply type's full name (u32 BE)
 *          | attempt id (u64 BE) | sequence (u64 BE) | body
 *
 * data() sends a stream item (sequence 0, 1, 2 ...); complete() sends the unary reply, or for a
 * stream the end frame whose sequence is the number of items. Before the first WORK_STATUS or
 * WORK_WARNING of a run that has sent no WORK_DATA yet, an attempt marker (kind 4, empty body) goes
 * out as WORK_DATA, so every status and warning follows a frame naming its attempt. Exceptions and
 * WORK_FAIL pass through unframed.
 *
 * @internal
 */
final class FramedSink implements JobSink
{
    public const MAGIC = 0xB7;
    public const HEADER_BYTES = 23;
    public const KIND_REPLY = 1;
    public const KIND_ITEM = 2;
    public const KIND_END = 3;
    public const KIND_MARKER = 4;

    /** @var array<class-string, int> reply type tags by PHP message class */
    private static array $tags = [];

    private int $items = 0;
    private bool $sentData = false;

    /**
     * @param int $encoding the body encoding on the wire: 1 protobuf, 2 msgpack (never 0)
     * @param int $typeTag typeTag() of the reply message type
     * @param string $attempt this run's attempt id, 8 bytes (newAttemptId())
     */
    public function __construct(
        private readonly JobSink $sink,
        private readonly int $encoding,
        private readonly int $typeTag,
        private readonly string $attempt,
        private readonly bool $streaming,
    ) {
    }

    /** A random 64-bit attempt id, never 0, as 8 big-endian bytes: drawn once per run of a job. */
    public static function newAttemptId(): string
    {
        do {
            $id = random_bytes(8);
        } while ($id === "\0\0\0\0\0\0\0\0");
        return $id;
    }

    /** CRC-32 (zlib's, PHP's crc32()) of a message type's full name, e.g. bridge.interop.v1.Composite. */
    public static function typeTag(string $fullName): int
    {
        return crc32($fullName);
    }

    /**
     * The type tag of a generated message class, read from its descriptor (once per class). Loading
     * the descriptor can fail with an \Error when generated code is missing: the worker's failure.
     *
     * @param class-string<\Google\Protobuf\Internal\Message> $class
     */
    public static function typeTagOf(string $class): int
    {
        if (!isset(self::$tags[$class])) {
            new $class();  // registers the class's file with the descriptor pool
            $descriptor = \Google\Protobuf\Internal\DescriptorPool::getGeneratedPool()->getDescriptorByClassName($class);
            if ($descriptor === null) {
                throw new \LogicException("no protobuf descriptor for {$class}");
            }
            self::$tags[$class] = self::typeTag($descriptor->getFullName());
        }
        return self::$tags[$class];
    }

    public static function header(int $kind, int $encoding, int $typeTag, string $attempt, int $sequence): string
    {
        return pack('CCCN', self::MAGIC, $kind, $encoding, $typeTag) . $attempt . pack('J', $sequence);
    }

    /** One stream item. */
    public function data(string $payload): void
    {
        $this->sentData = true;
        $this->sink->data($this->frame(self::KIND_ITEM, $this->items++) . $payload);
    }

    public function warning(string $text): void
    {
        $this->marker();
        $this->sink->warning($text);
    }

    public function status(int $numerator, int $denominator): void
    {
        $this->marker();
        $this->sink->status($numerator, $denominator);
    }

    /** The unary reply, or (streaming: $payload is empty) the end of the stream. */
    public function complete(string $payload): void
    {
        $this->sink->complete($this->streaming
            ? $this->frame(self::KIND_END, $this->items)
            : $this->frame(self::KIND_REPLY, 0) . $payload);
    }

    public function exception(string $payload): void
    {
        $this->sink->exception($payload);
    }

    public function fail(): void
    {
        $this->sink->fail();
    }

    private function marker(): void
    {
        if (!$this->sentData) {
            $this->sentData = true;
            $this->sink->data($this->frame(self::KIND_MARKER, 0));
        }
    }

    private function frame(int $kind, int $sequence): string
    {
        return self::header($kind, $this->encoding, $this->typeTag, $this->attempt, $sequence);
    }
}
