<?php

declare(strict_types=1);

namespace Bridge\Runtime;

use Google\Protobuf\Internal\Message;

/**
 * One rpc bound to the PHP callable that serves it. The generated registration code builds these.
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
    ) {
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
}
