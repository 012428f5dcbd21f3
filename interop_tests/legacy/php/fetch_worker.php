<?php
// A worker that reports errors with WORK_EXCEPTION, as PHP workers do: sendException with a plain
// text, or with a JSON object carrying a code. legacy.proto declares it as Legacy.Fetch
// (bare: true, encoding: JSON).

$images = ['/srv/images/cat.png' => 48213, '/srv/images/dog.jpg' => 9007199254740993];

$worker = new GearmanWorker();
$worker->addServers(getenv('GEARMAN_SERVERS') ?: '127.0.0.1:4730');

$worker->addFunction('fetch_image', function (GearmanJob $job) use ($images) {
    $req = json_decode($job->workload(), true);
    $path = $req['path'];

    if (strpos($path, '..') !== false) {
        $job->sendException("Refusing path with '..': $path");
        return GEARMAN_WORK_EXCEPTION;
    }
    if (!isset($images[$path])) {
        $job->sendException(json_encode(['code' => 5, 'message' => "no image at $path"]));
        return GEARMAN_WORK_EXCEPTION;
    }
    return json_encode(['path' => $path, 'size' => $images[$path]]);
});

while ($worker->work()) {
    if ($worker->returnCode() != GEARMAN_SUCCESS) {
        echo 'return_code: ' . $worker->returnCode() . "\n";
        break;
    }
}
