<?php

declare(strict_types=1);

namespace Bridge\Runtime;

/** --help or -h was given (CommandLine::read()). */
final class HelpRequested extends \Exception
{
}
