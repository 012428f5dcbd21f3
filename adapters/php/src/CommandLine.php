<?php

declare(strict_types=1);

namespace Bridge\Runtime;

use Bridge\Runtime\Security\KeyringError;

/**
 * The worker command line every bridge runtime shares (docs/workers.md):
 *
 *     $worker = CommandLine::parse($argv)->worker();
 *     InvoicesRegistration::register($worker, new Invoices());
 *     exit($worker->run());
 *
 * `--servers`, `--concurrency` (forked worker processes), `--log-level`, `--help` / `-h`,
 * `--version`, with the environment fallbacks BRIDGE_SERVERS, BRIDGE_CONCURRENCY and
 * BRIDGE_LOG_LEVEL (an empty variable counts as unset; the command line wins), and the PHP
 * runtime's own `--max-request-bytes`, `--read-timeout` SECONDS (or `--read-timeout-ms`) and
 * `--client-id`. Servers are plain TCP: `tls://` is refused (run the worker under `bridge tunnel`). A program adds its
 * own flags with $extra (name => help text, "VALUE  what it is"); their values are option().
 *
 * A bad flag or value is one line on stderr, "PROGRAM: error: ... (see --help)", and exit status 2.
 */
final class CommandLine
{
    /** The runtime's version, as `--version` prints it. */
    public const VERSION = '0.1.0';
    public const DEFAULT_SERVERS = '127.0.0.1:4730';
    public const MAX_CONCURRENCY = 1024;

    private const FLAGS = [
        'servers' => 'HOST:PORT[,HOST:PORT...]  job servers (env BRIDGE_SERVERS; default ' . self::DEFAULT_SERVERS . ')',
        'concurrency' => 'N  jobs run at once: worker processes forked from this one, 1-' . self::MAX_CONCURRENCY
            . ' (env BRIDGE_CONCURRENCY; default 1)',
        'log-level' => 'LEVEL  debug, info, warning (warn) or error; debug logs every job (env BRIDGE_LOG_LEVEL; default info)',
        'max-request-bytes' => 'N  larger job payloads are answered RESOURCE_EXHAUSTED (default '
            . Dispatcher::DEFAULT_MAX_REQUEST_BYTES . ')',
        'read-timeout' => 'SECONDS  a job server that leaves a GRAB or ECHO unanswered this long is reconnected,'
            . ' more than 0 and at most 3600 (default ' . (Worker::DEFAULT_READ_TIMEOUT_MS / 1000) . ')',
        'read-timeout-ms' => 'N  the same in milliseconds, 1-3600000',
        'client-id' => 'ID  the id gearadmin --workers shows (default bridge-php-PID)',
    ];

    /**
     * @param list<string> $servers
     * @param array<string, string> $options the program's own flags given, by name
     */
    private function __construct(
        public readonly string $program,
        public readonly array $servers,
        public readonly int $concurrency,
        public readonly int $logLevel,
        public readonly int $maxRequestBytes,
        public readonly int $readTimeoutMs,
        public readonly ?string $clientId,
        private readonly array $options,
    ) {
    }

    /**
     * Reads the command line; prints the usage or the version and exits 0 for --help / --version,
     * prints one error line and exits 2 for a bad flag or value.
     *
     * @param list<string> $argv the script's $argv ($argv[0] names the program)
     * @param array<string, string> $extra the program's own flags: name (without "--") => "VALUE  help"
     * @param string $description one line under the usage
     */
    public static function parse(array $argv, array $extra = [], string $description = ''): self
    {
        $program = basename((string) ($argv[0] ?? 'worker'));
        try {
            return self::read($argv, $extra, self::environment());
        } catch (HelpRequested) {
            fwrite(STDOUT, self::usage($program, $extra, $description));
            exit(0);
        } catch (VersionRequested) {
            fwrite(STDOUT, self::version($program) . "\n");
            exit(0);
        } catch (UsageError $e) {
            self::fail($program, $e->getMessage());
        }
    }

    /**
     * The same, throwing instead of exiting: UsageError for a bad flag or value, HelpRequested,
     * VersionRequested.
     *
     * @param list<string> $argv
     * @param array<string, string> $extra
     * @param array<string, string> $env the environment to read BRIDGE_* from
     * @throws UsageError
     */
    public static function read(array $argv, array $extra = [], array $env = []): self
    {
        $program = basename((string) ($argv[0] ?? 'worker'));
        $known = self::FLAGS + $extra;
        $given = [];
        $args = array_values(array_slice($argv, 1));
        for ($i = 0; $i < count($args); $i++) {
            $arg = (string) $args[$i];
            if ($arg === '--help' || $arg === '-h') {
                throw new HelpRequested();
            }
            if ($arg === '--version') {
                throw new VersionRequested();
            }
            if (!str_starts_with($arg, '--') || $arg === '--') {
                throw new UsageError(sprintf("unexpected argument '%s'", Log::printable($arg)));
            }
            [$name, $value] = str_contains($arg, '=') ? explode('=', substr($arg, 2), 2) : [substr($arg, 2), null];
            if ($name === 'help' || $name === 'version') {
                throw new UsageError("--{$name} takes no value");
            }
            if (!isset($known[$name])) {
                throw new UsageError(sprintf("unknown flag '--%s'", Log::printable($name)));
            }
            if ($value === null) {
                if ($i + 1 >= count($args)) {
                    throw new UsageError("--{$name} needs a value");
                }
                $value = (string) $args[++$i];
            }
            $given[$name] = $value;
        }
        $pick = static function (string $flag, string $variable) use ($given, $env): ?array {
            if (isset($given[$flag])) {
                return [$given[$flag], "--{$flag}"];
            }
            $value = $env[$variable] ?? '';
            return $value === '' ? null : [$value, $variable];
        };
        [$servers, $from] = $pick('servers', 'BRIDGE_SERVERS') ?? [self::DEFAULT_SERVERS, ''];
        [$concurrency, $concurrencyFrom] = $pick('concurrency', 'BRIDGE_CONCURRENCY') ?? ['1', ''];
        [$level, $levelFrom] = $pick('log-level', 'BRIDGE_LOG_LEVEL') ?? ['info', ''];
        $logLevel = Log::levelNamed($level) ?? throw new UsageError(sprintf(
            "%s must be one of debug, info, warning, error, not '%s'",
            $levelFrom,
            Log::printable($level)
        ));
        return new self(
            $program,
            self::servers($servers, $from),
            self::integer($concurrency, $concurrencyFrom, 1, self::MAX_CONCURRENCY),
            $logLevel,
            isset($given['max-request-bytes']) ? self::integer($given['max-request-bytes'], '--max-request-bytes', 1, PHP_INT_MAX) : Dispatcher::DEFAULT_MAX_REQUEST_BYTES,
            self::readTimeoutMs($given),
            $given['client-id'] ?? null,
            array_diff_key($given, self::FLAGS),
        );
    }

    /** The value of one of the program's own flags ($extra), or $default when not given. */
    public function option(string $name, ?string $default = null): ?string
    {
        return $this->options[$name] ?? $default;
    }

    /**
     * A Worker with these settings; keys come from BRIDGE_KEYS / BRIDGE_KEYS_FILE as usual. A key
     * list that cannot be used is one error line and exit 2, like a bad flag.
     *
     * @param array<string, mixed> $settings more Worker constructor arguments by name (keys:, log:...)
     */
    public function worker(array $settings = []): Worker
    {
        try {
            return new Worker(...($settings + [
                'servers' => $this->servers,
                'concurrency' => $this->concurrency,
                'maxRequestBytes' => $this->maxRequestBytes,
                'clientId' => $this->clientId,
                'readTimeoutMs' => $this->readTimeoutMs,
                'logLevel' => $this->logLevel,
            ]));
        } catch (KeyringError $e) {
            self::fail($this->program, $e->getMessage());
        }
    }

    /** The text --help prints. @param array<string, string> $extra */
    public static function usage(string $program, array $extra = [], string $description = ''): string
    {
        $text = "usage: {$program} [--servers HOST:PORT[,...]] [--concurrency N] [--log-level LEVEL] [options]\n\n";
        $text .= ($description !== '' ? $description : 'Serves bridge functions to their callers over Gearman.')
            . "\n\noptions:\n";
        $rows = [['-h, --help', 'show this help and exit'], ['--version', 'show the version and exit']];
        foreach (self::FLAGS + $extra as $name => $help) {
            [$value, $what] = array_pad(explode('  ', $help, 2), 2, '');
            $rows[] = ["--{$name} {$value}", $what];
        }
        foreach ($rows as [$flag, $what]) {
            $text .= strlen($flag) > 30
                ? sprintf("  %s\n  %30s  %s\n", $flag, '', $what)
                : sprintf("  %-30s  %s\n", $flag, $what);
        }
        return $text . "\nThe command line wins over the environment; an empty variable counts as unset.\n"
            . "BRIDGE_KEYS / BRIDGE_KEYS_FILE: serve signed jobs only (docs/security.md).\n";
    }

    /** The line --version prints. */
    public static function version(string $program): string
    {
        return "{$program} (bridge php runtime " . self::VERSION . ')';
    }

    /** Prints "PROGRAM: error: MESSAGE (see --help)" on stderr and exits 2. */
    public static function fail(string $program, string $message): never
    {
        fwrite(STDERR, sprintf("%s: error: %s (see --help)\n", $program, str_replace(["\r", "\n"], ' ', $message)));
        exit(2);
    }

    /** @return list<string> */
    private static function servers(string $value, string $from): array
    {
        $servers = [];
        $items = array_map('trim', explode(',', $value));
        if (array_filter($items, static fn (string $item): bool => $item !== '') === []) {
            throw new UsageError("{$from} names no job server");
        }
        foreach ($items as $server) {
            if ($server === '') {
                throw new UsageError(sprintf("%s: '%s' names an empty job server", $from, Log::printable($value)));
            }
            if (str_starts_with($server, 'tls://')) {
                throw new UsageError(sprintf(
                    "%s: '%s': the PHP runtime has no TLS of its own, run the worker under `bridge tunnel`",
                    $from,
                    Log::printable($server)
                ));
            }
            if (!preg_match('/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+)(:(\d{1,5}))?$/D', $server, $m)
                || (isset($m[3]) && ((int) $m[3] < 1 || (int) $m[3] > 65535))) {
                throw new UsageError(sprintf("%s: '%s' is not a HOST:PORT job server address", $from, Log::printable($server)));
            }
            $servers[] = $server;
        }
        return $servers;
    }

    /** @param array<string, string> $given */
    private static function readTimeoutMs(array $given): int
    {
        if (isset($given['read-timeout'], $given['read-timeout-ms'])) {
            throw new UsageError('give --read-timeout or --read-timeout-ms, not both');
        }
        if (isset($given['read-timeout-ms'])) {
            return self::integer($given['read-timeout-ms'], '--read-timeout-ms', 1, 3_600_000);
        }
        if (!isset($given['read-timeout'])) {
            return Worker::DEFAULT_READ_TIMEOUT_MS;
        }
        // SECONDS: digits, optionally a point and digits; milliseconds rounded up, without floats
        $value = $given['read-timeout'];
        $ok = preg_match('/^(\d{1,6})(?:\.(\d{1,30}))?$/D', $value, $m) === 1;
        $fraction = $m[2] ?? '';
        $ms = $ok ? (int) $m[1] * 1000 + (int) str_pad(substr($fraction, 0, 3), 3, '0')
            + (trim(substr($fraction, 3), '0') !== '' ? 1 : 0) : 0;
        if ($ms < 1 || $ms > 3_600_000) {
            throw new UsageError(sprintf(
                "--read-timeout must be a number of seconds, more than 0 and at most 3600, not '%s'",
                Log::printable($value)
            ));
        }
        return $ms;
    }

    private static function integer(string $value, string $from, int $min, int $max): int
    {
        if (preg_match('/^\d{1,18}$/D', $value) !== 1 || (int) $value < $min || (int) $value > $max) {
            throw new UsageError(sprintf(
                "%s must be %s, not '%s'",
                $from,
                $max === PHP_INT_MAX ? 'a positive integer' : "an integer from {$min} to {$max}",
                Log::printable($value)
            ));
        }
        return (int) $value;
    }

    /** @return array<string, string> the BRIDGE_* variables of the process */
    private static function environment(): array
    {
        $env = [];
        foreach (['BRIDGE_SERVERS', 'BRIDGE_CONCURRENCY', 'BRIDGE_LOG_LEVEL'] as $name) {
            $value = getenv($name);
            if (is_string($value)) {
                $env[$name] = $value;
            }
        }
        return $env;
    }
}
