<?php
// An unchanged PHP web app's job submissions (pecl GearmanClient) to functions that bridge workers
// serve bare (the Bare service of schemas/interop/v1/interop.proto). Prints one JSON line per
// call for the test to check: {"call": NAME, "rc": returnCode, "reply": ..., ...}.
// Usage: php client.php HOST:PORT[,HOST:PORT]

$client = new GearmanClient();
$client->addServers($argv[1] ?? '127.0.0.1:4730');
$client->setTimeout(10000);

function report(string $call, GearmanClient $client, array $fields): void
{
    echo json_encode(['call' => $call, 'rc' => $client->returnCode()] + $fields), "\n";
}

// Foreground, JSON: a PHP array as json_encode writes it (map keys that are numbers, floats, bools).
$order = [
    'text' => "h\u{e9}llo from PHP",
    'numbers' => [1, -2, 300],
    'tags' => ['new', 'caf' . "\u{e9}"],
    'inner' => ['name' => 'box', 'value' => 9007199254740993],
    'labels' => [7 => 'seven', -1 => 'minus one'],
    'scalars' => ['f_double' => 2.5, 'f_bool' => true, 'f_string' => 'x/y', 'f_enum' => 'COLOR_BLUE'],
];
$result = $client->doNormal('interop_bare_echo_json', json_encode($order));
report('echo_json', $client, ['reply' => json_decode($result, true), 'sent' => $order]);

// Foreground, msgpack: the same kind of array through msgpack_pack (enums as numbers here).
$packed = msgpack_pack([
    'text' => "h\u{e9}llo in msgpack",
    'numbers' => [1, -2, 300],
    'inner' => ['name' => 'box', 'value' => -9007199254740993],
    'labels' => [7 => 'seven', -1 => 'minus one'],
    'scalars' => ['f_double' => 2.5, 'f_bool' => true, 'f_enum' => 3, 'f_uint64' => PHP_INT_MAX],
]);
$result = $client->doNormal('interop_bare_echo_msgpack', $packed);
report('echo_msgpack', $client, [
    'reply_base64' => base64_encode($result),
    'sent_base64' => base64_encode($packed),
    'reply' => msgpack_unpack($result),
]);

// An empty request as PHP writes it: json_encode([]) is "[]".
$result = $client->doNormal('interop_bare_whoami_json', json_encode([]));
report('whoami_json', $client, ['reply' => json_decode($result, true)]);

// Foreground, raw text.
$result = $client->doNormal('interop_bare_reverse', "h\u{e9}llo \u{2713} \u{1d11e}");
report('reverse', $client, ['reply' => $result]);

// An error: without exception handling gearmand turns WORK_EXCEPTION into WORK_FAIL.
$result = $client->doNormal('interop_bare_raise_json', json_encode(['code' => 5, 'message' => 'no such order']));
report('raise_json', $client, ['reply' => $result]);

// With the exception callback (OPTION_REQ exceptions) the worker's JSON error object arrives.
$errors = new GearmanClient();
$errors->addServers($argv[1] ?? '127.0.0.1:4730');
$errors->setTimeout(10000);
$errors->enableExceptionHandler();
$exception = null;
$errors->setExceptionCallback(function (GearmanTask $task) use (&$exception) {
    $exception = $task->data();
});
$errors->addTask('interop_bare_raise_json', json_encode(['code' => 5, 'message' => 'no such order']));
$errors->runTasks();
report('raise_json_exception', $errors, ['exception' => json_decode((string) $exception, true)]);

// A function the bridge worker serves with the envelope (not bare): refused, saying why.
$exception = null;
$errors->addTask('bridge.interop.v1.Interop.Echo', json_encode(['text' => 'hi']));
$errors->runTasks();
report('enveloped_function', $errors, ['exception_base64' => base64_encode((string) $exception)]);

// Background, then poll the status until the job server no longer knows the job.
$handle = $client->doBackground('interop_bare_echo_json', json_encode(['text' => 'queued']));
$submitted = $client->returnCode();
$polls = 0;
do {
    [$known, $running, $numerator, $denominator] = $client->jobStatus($handle);
    $polls++;
    if ($known) {
        usleep(10000);
    }
} while ($known && $polls < 3000);
report('background', $client, ['submitted' => $submitted, 'handle' => $handle, 'known' => $known, 'polls' => $polls]);
