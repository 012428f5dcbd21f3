<?php

declare(strict_types=1);

namespace Bridge\Runtime\Codec;

use Google\Protobuf\Internal\Message;

/**
 * Turns messages into bytes and back. One instance serves every message type.
 */
interface Codec
{
    public function encode(Message $message): string;

    /**
     * @template T of Message
     * @param class-string<T> $class
     * @return T
     * @throws DecodeError when the bytes are not a valid encoding of $class
     */
    public function decode(string $bytes, string $class): Message;
}
