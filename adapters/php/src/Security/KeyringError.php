<?php

declare(strict_types=1);

namespace Bridge\Runtime\Security;

/** A key list that cannot be used: bad syntax, a short key, a bad key id (never the key itself). */
final class KeyringError extends \InvalidArgumentException
{
}
