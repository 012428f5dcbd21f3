<?php
// A fire-and-forget audit worker: JSON in, nothing out (its result is empty), a side effect on a
// file (AUDIT_LOG). legacy.proto declares it as Legacy.Audit (bare: true, encoding: JSON) returning
// Empty; mistakes.proto as Unaware.Audit (no bare), the second silent failure of issue 12: this
// worker runs its side effect on the envelope's bytes and answers "success".

$log = getenv('AUDIT_LOG') ?: '/tmp/audit.log';

$worker = new GearmanWorker();
$worker->addServers(getenv('GEARMAN_SERVERS') ?: '127.0.0.1:4730');

$worker->addFunction('audit_log', function (GearmanJob $job) use ($log) {
    $event = json_decode($job->workload(), true);
    file_put_contents($log, $event['user'] . ' ' . $event['action'] . "\n", FILE_APPEND | LOCK_EX);
});

while ($worker->work()) {
    if ($worker->returnCode() != GEARMAN_SUCCESS) {
        echo 'return_code: ' . $worker->returnCode() . "\n";
        break;
    }
}
