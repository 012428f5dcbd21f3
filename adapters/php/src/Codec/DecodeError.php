<?php

declare(strict_types=1);

namespace Bridge\Runtime\Codec;

/**
 * Bytes that are not a valid encoding of the expected message (the worker answers INVALID_ARGUMENT).
 */
final class DecodeError extends \RuntimeException
{
}
