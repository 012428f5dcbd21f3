<?php

declare(strict_types=1);

namespace Bridge\Runtime\Security;

use Bridge\Runtime\JobSink;

/**
 * The replies of a signed job (wire contract, section 9.3): every WORK_DATA (reply frames and
 * attempt markers), WORK_COMPLETE and WORK_EXCEPTION payload gets the 32-byte MAC of the job's key
 * appended. WORK_STATUS, WORK_WARNING and WORK_FAIL carry no data and pass through.
 *
 * @internal
 */
final class SignedSink implements JobSink
{
    public function __construct(
        private readonly JobSink $sink,
        #[\SensitiveParameter] private readonly string $key,
        private readonly string $function,
        private readonly string $keyId,
        private readonly string $nonce,
    ) {
    }

    public function data(string $payload): void
    {
        $this->sink->data($this->sign(Signing::DATA, $payload));
    }

    public function warning(string $text): void
    {
        $this->sink->warning($text);
    }

    public function status(int $numerator, int $denominator): void
    {
        $this->sink->status($numerator, $denominator);
    }

    public function complete(string $payload): void
    {
        $this->sink->complete($this->sign(Signing::COMPLETE, $payload));
    }

    public function exception(string $payload): void
    {
        $this->sink->exception($this->sign(Signing::EXCEPTION, $payload));
    }

    public function fail(): void
    {
        $this->sink->fail();
    }

    private function sign(int $packet, string $payload): string
    {
        return $payload . Signing::replyMac($this->key, $this->function, $this->keyId, $this->nonce, $packet, $payload);
    }
}
