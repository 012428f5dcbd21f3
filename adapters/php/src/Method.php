<?php

declare(strict_types=1);

namespace Bridge\Runtime;

use Bridge\V1\Encoding;
use Google\Protobuf\Internal\Message;

/**
 * One rpc bound to the PHP callable that serves it. The generated registration code builds these.
 *
 * A bare method (wire contract, section 8) takes jobs without the envelope: the whole payload is
 * the request in $encoding (a Bridge\V1\Encoding constant: PROTOBUF, MSGPACK, JSON or RAW) and the
 * reply goes out alone, for Gearman peers that know nothing of bridge.
 */
final class Method
{
    /**
     * @param class-string<Message> $requestClass
     * @param class-string<Message> $replyClass
     * @param \Closure(Message, Context): (Message|iterable<Message>) $handler
     *        returns the reply, or for a server-streaming rpc an iterable (typically a generator)
     *        of reply items, each sent as soon as it is produced
     */
    public function __construct(
        public readonly string $functionName,
        public readonly string $requestClass,
        public readonly string $replyClass,
        public readonly bool $serverStreaming,
        public readonly \Closure $handler,
        public readonly bool $bare = false,
        public readonly int $encoding = Encoding::ENCODING_UNSPECIFIED,
    ) {
        if ($bare && $serverStreaming) {
            throw new \LogicException("{$functionName}: a bare method cannot stream (wire contract, section 8)");
        }
        if ($bare && !in_array($encoding, [Encoding::PROTOBUF, Encoding::MSGPACK, Encoding::JSON, Encoding::RAW], true)) {
            throw new \LogicException("{$functionName}: a bare method needs its encoding (PROTOBUF, MSGPACK, JSON or RAW), got {$encoding}");
        }
    }

    /**
     * @param class-string<Message> $requestClass
     * @param class-string<Message> $replyClass
     */
    public static function unary(string $functionName, string $requestClass, string $replyClass, \Closure $handler): self
    {
        return new self($functionName, $requestClass, $replyClass, false, $handler);
    }

    /**
     * @param class-string<Message> $requestClass
     * @param class-string<Message> $itemClass
     */
    public static function serverStreaming(string $functionName, string $requestClass, string $itemClass, \Closure $handler): self
    {
        return new self($functionName, $requestClass, $itemClass, true, $handler);
    }

    /**
     * A unary method whose jobs carry the request alone, in $encoding (a Bridge\V1\Encoding
     * constant), and whose reply is sent alone in the same encoding.
     *
     * @param class-string<Message> $requestClass
     * @param class-string<Message> $replyClass
     */
    public static function bare(string $functionName, string $requestClass, string $replyClass, int $encoding, \Closure $handler): self
    {
        return new self($functionName, $requestClass, $replyClass, false, $handler, true, $encoding);
    }
}
