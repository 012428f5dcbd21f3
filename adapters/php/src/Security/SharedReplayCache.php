<?php

declare(strict_types=1);

namespace Bridge\Runtime\Security;

use Bridge\Runtime\Supervisor;

/**
 * The replay cache of a forked worker process: its supervisor's one ReplayCache, asked over the
 * channel the supervisor gave the child, so a replayed job is refused whichever of the worker's
 * processes gets it (wire contract, section 9.2: one cache per worker, not per fork).
 *
 * @internal
 */
final class SharedReplayCache implements ReplayGuard
{
    /** @param resource $channel */
    public function __construct(private readonly mixed $channel)
    {
    }

    public function admit(string $keyId, string $nonce, int $deadlineMs, int $nowMs): ?string
    {
        $answer = Supervisor::ask($this->channel, self::request($keyId, $nonce, $deadlineMs));
        return $answer === '' ? null : $answer;
    }

    /** The supervisor's side: $request admitted to $cache at the supervisor's clock; '' = may run. */
    public static function answer(ReplayGuard $cache, string $request): string
    {
        $keyIdLength = unpack('n', $request)[1];
        $nonceLength = unpack('n', $request, 2 + $keyIdLength)[1];
        $keyId = substr($request, 2, $keyIdLength);
        $nonce = substr($request, 4 + $keyIdLength, $nonceLength);
        $deadlineMs = unpack('J', $request, 4 + $keyIdLength + $nonceLength)[1];
        $nowMs = (int) floor(microtime(true) * 1000);
        return $cache->admit($keyId, $nonce, $deadlineMs, $nowMs) ?? '';
    }

    private static function request(string $keyId, string $nonce, int $deadlineMs): string
    {
        return pack('n', strlen($keyId)) . $keyId . pack('n', strlen($nonce)) . $nonce . pack('J', $deadlineMs);
    }
}
