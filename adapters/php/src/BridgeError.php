<?php

declare(strict_types=1);

namespace Bridge\Runtime;

use Bridge\V1\Code;

/**
 * An error a handler raises on purpose, with a canonical code the caller sees
 * (`throw new BridgeError(Code::NOT_FOUND, "no invoice 42")` reaches Python as `bridge.errors.NotFound`).
 *
 * getCode() returns the canonical code (a Bridge\V1\Code constant).
 */
class BridgeError extends \RuntimeException
{
    /**
     * @param int $code a Bridge\V1\Code constant, 1..16
     * @param array<string, string> $details free-form key/value pairs sent along with the error
     */
    public function __construct(
        int $code,
        string $message,
        private readonly array $details = [],
        ?\Throwable $previous = null,
    ) {
        if ($code <= Code::OK || $code > Code::UNAUTHENTICATED) {
            throw new \InvalidArgumentException("not a canonical error code: {$code}");
        }
        parent::__construct($message, $code, $previous);
    }

    /** @return array<string, string> */
    public function getDetails(): array
    {
        return $this->details;
    }
}
