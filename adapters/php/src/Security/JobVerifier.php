<?php

declare(strict_types=1);

namespace Bridge\Runtime\Security;

use Bridge\Runtime\Envelope;

/**
 * What a worker with keys checks before running a job (wire contract, section 9.2), in order:
 * key id, signature, deadline, replay. check() returns null when the job may run, else the failed
 * check in the words every runtime uses ("unsigned job", "bad signature", "replayed"...).
 */
final class JobVerifier
{
    /** How far ahead a signed job's deadline may be (seconds). */
    public const DEFAULT_WINDOW_S = 86400;
    /** Clock difference tolerated between client and worker (seconds). */
    public const CLOCK_SKEW_S = 300;

    private readonly int $windowMs;
    private readonly int $skewMs;
    private ReplayGuard $replay;

    public function __construct(
        public readonly Keyring $keyring,
        int $windowS = self::DEFAULT_WINDOW_S,
        int $replayCapacity = ReplayCache::DEFAULT_CAPACITY,
    ) {
        $this->windowMs = $windowS * 1000;
        $this->skewMs = self::CLOCK_SKEW_S * 1000;
        $this->replay = new ReplayCache($replayCapacity);
    }

    /** The replay cache this process consults (a forked worker process: its supervisor's). */
    public function replayGuard(): ReplayGuard
    {
        return $this->replay;
    }

    public function useReplayGuard(ReplayGuard $replay): void
    {
        $this->replay = $replay;
    }

    /**
     * The key to sign this job's replies with: its key when the job named a known key and carried
     * a nonce of the right size, else null (the replies go unsigned).
     */
    public function replyKey(Envelope $request): ?string
    {
        if (strlen($request->nonce) !== Signing::NONCE_SIZE) {
            return null;
        }
        return $this->keyring->key($request->keyId);
    }

    /**
     * Null when the job may run, else the failed check's name (answered UNAUTHENTICATED, or
     * RESOURCE_EXHAUSTED for ReplayGuard::REPLAY_CACHE_FULL).
     */
    public function check(string $function, Envelope $request, ?int $nowMs = null): ?string
    {
        if ($request->keyId === '') {
            return 'unsigned job';
        }
        $key = $this->keyring->key($request->keyId);
        if ($key === null) {
            return 'unknown key id';
        }
        if (strlen($request->nonce) !== Signing::NONCE_SIZE || strlen($request->mac) !== Signing::MAC_SIZE) {
            return 'bad signature';
        }
        $expected = Signing::hmac($key, Signing::requestInput(
            $function,
            $request->keyId,
            $request->nonce,
            $request->version,
            $request->deadlineMs,
            $request->encoding,
            $request->metadata,
            $request->body,
        ));
        if (!hash_equals($expected, $request->mac)) {
            return 'bad signature';
        }
        if ($request->deadlineMs === 0) {
            return 'a signed job needs a deadline';
        }
        $nowMs ??= (int) floor(microtime(true) * 1000);
        if ($request->deadlineMs <= $nowMs) {
            return 'expired';
        }
        if ($request->deadlineMs > $nowMs + $this->windowMs + $this->skewMs) {
            return 'deadline too far ahead';
        }
        return $this->replay->admit($request->keyId, $request->nonce, $request->deadlineMs, $nowMs);
    }
}
