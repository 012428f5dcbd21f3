<?php

declare(strict_types=1);

namespace Bridge\Runtime;

/** --version was given (CommandLine::read()). */
final class VersionRequested extends \Exception
{
}
