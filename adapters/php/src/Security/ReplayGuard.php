<?php

declare(strict_types=1);

namespace Bridge\Runtime\Security;

/** Where a worker records the nonces of the signed jobs it runs (wire contract, section 9.2 step 4). */
interface ReplayGuard
{
    /**
     * Records the job; null when it may run, else why not ("replayed", "replay cache full").
     */
    public function admit(string $keyId, string $nonce, string $handle, int $deadlineMs, int $nowMs): ?string;
}
