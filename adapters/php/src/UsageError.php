<?php

declare(strict_types=1);

namespace Bridge\Runtime;

/** A bad worker command line: its message is the one line CommandLine::parse() prints (without the program and "(see --help)"). */
final class UsageError extends \Exception
{
}
