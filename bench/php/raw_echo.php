<?php

/**
 * The baseline for the PHP shim benchmark: a minimal pecl gearman echo worker, no bridge runtime.
 *
 *     php raw_echo.php HOST:PORT[,HOST:PORT...] [FUNCTION]
 */

declare(strict_types=1);

$worker = new GearmanWorker();
$worker->setTimeout(200);
foreach (explode(',', $argv[1] ?? '127.0.0.1:4730') as $server) {
    [$host, $port] = explode(':', $server) + [1 => '4730'];
    $worker->addServer($host, (int) $port);
}
$worker->addFunction($argv[2] ?? 'echo', static fn (GearmanJob $job): string => $job->workload());

$stopping = false;
pcntl_async_signals(true);
pcntl_signal(SIGTERM, static function () use (&$stopping): void {
    $stopping = true;
});
while (!$stopping) {
    @$worker->work();
}
