<?php

declare(strict_types=1);

namespace Bridge\Runtime;

use Bridge\V1\Code;

/**
 * Thrown by the generated base class for every rpc the implementation leaves out: UNIMPLEMENTED.
 */
final class Unimplemented extends BridgeError
{
    public function __construct(string $functionName)
    {
        parent::__construct(Code::UNIMPLEMENTED, "{$functionName} is not implemented by this worker");
    }
}
