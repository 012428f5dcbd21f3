<?php
// A thumbnail worker the way PHP shops have written them for years: pecl gearman, JSON in and out
// with json_decode / json_encode, no bridge code. legacy.proto declares it as Legacy.Thumbnail
// (bare: true, encoding: JSON), and image_md5 as Legacy.ImageMd5 (RAW). Servers from
// GEARMAN_SERVERS (host:port[,host:port]).

$worker = new GearmanWorker();
$worker->addServers(getenv('GEARMAN_SERVERS') ?: '127.0.0.1:4730');

$worker->addFunction('thumbnail', function (GearmanJob $job) {
    $req = json_decode($job->workload(), true);
    $job->sendStatus(1, 3);

    $scale = min(1.0, $req['max_side'] / max($req['width'], $req['height']));
    if ($scale == 1.0) {
        $job->sendWarning("{$req['path']} is within {$req['max_side']}px: not scaled");
    }
    $job->sendStatus(2, 3);
    $info = pathinfo($req['path']);
    $reply = [
        'thumb_path' => $info['dirname'] . '/' . $info['filename'] . '_thumb.' . $info['extension'],
        'width' => (int) round($req['width'] * $scale),
        'height' => (int) round($req['height'] * $scale),
        'scale' => $scale,
        'format' => $req['format'] == 'IMAGE_FORMAT_UNSPECIFIED' ? 'PNG' : $req['format'],
        'exif_kept' => $req['keep_exif'],
        'source_bytes' => $req['source_bytes'],
        'tags' => array_map('strtoupper', $req['tags']),
        'preview' => base64_encode("\x89PNG\r\n\x1a\n\0" . $info['filename']),
        'meta' => $req['keep_exif'] ? ['exif' => 'kept', 'by' => 'php'] : [],
    ];
    if (isset($req['crop'])) {
        $reply['crop'] = $req['crop'];
    }
    $job->sendStatus(3, 3);
    return json_encode($reply);
});

// Raw bytes in, raw bytes out: the 16-byte MD5 of an uploaded image.
$worker->addFunction('image_md5', function (GearmanJob $job) {
    if ($job->workloadSize() == 0) {
        $job->sendException('empty image');
        return GEARMAN_WORK_EXCEPTION;
    }
    return md5($job->workload(), true);
});

while ($worker->work()) {
    if ($worker->returnCode() != GEARMAN_SUCCESS) {
        echo 'return_code: ' . $worker->returnCode() . "\n";
        break;
    }
}
