<?php

declare(strict_types=1);

namespace Bridge\Runtime;

/**
 * A job the runtime itself refuses before or around the handler (oversized, bad envelope, passed
 * deadline, a reply of the wrong type...). Reported with the code's name as its type
 * ("ResourceExhausted", "DeadlineExceeded"), as every bridge runtime does.
 *
 * @internal
 */
final class Rejected extends BridgeError
{
}
