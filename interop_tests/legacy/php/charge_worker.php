<?php
// A worker that gives up with WORK_FAIL (sendFail, GEARMAN_WORK_FAIL): no reason travels.
// legacy.proto declares it as Legacy.Charge (bare: true, encoding: JSON).

$worker = new GearmanWorker();
$worker->addServers(getenv('GEARMAN_SERVERS') ?: '127.0.0.1:4730');

$worker->addFunction('charge_card', function (GearmanJob $job) {
    $req = json_decode($job->workload(), true);
    if ($req['cents'] > 100000) {
        $job->sendFail();
        return GEARMAN_WORK_FAIL;
    }
    return json_encode(['receipt' => 'R-' . substr(md5($req['card'] . ':' . $req['cents']), 0, 8)]);
});

while ($worker->work()) {
    if ($worker->returnCode() != GEARMAN_SUCCESS) {
        echo 'return_code: ' . $worker->returnCode() . "\n";
        break;
    }
}
