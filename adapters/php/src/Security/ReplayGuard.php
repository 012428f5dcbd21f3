<?php

declare(strict_types=1);

namespace Bridge\Runtime\Security;

/** Where a worker records the nonces of the signed jobs it runs (wire contract, section 9.2 step 4). */
interface ReplayGuard
{
    /** The one check that is no authentication failure: RESOURCE_EXHAUSTED (section 9.2, step 4). */
    public const REPLAY_CACHE_FULL = 'replay cache full';

    /**
     * Records the job; null when it may run, else why not ("replayed", "replay cache full"). A
     * nonce seen before is a replay whatever job handle it comes with: handles are gearmand's
     * counters, given out again by a restarted gearmand or another one on a host of the same name.
     */
    public function admit(string $keyId, string $nonce, int $deadlineMs, int $nowMs): ?string;
}
