<?php

declare(strict_types=1);

namespace Bridge\Runtime;

/**
 * Ends the job with a bare WORK_FAIL (no explanation reaches the caller, who gets WorkerFailed).
 * Prefer BridgeError, which tells the caller what went wrong; Context::fail() throws this.
 */
final class JobFailed extends \RuntimeException
{
}
