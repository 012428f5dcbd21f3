<?php
/**
 * The shop's PHP web app talking to Gearman as it always has (its newsletter sign-up and
 * unsubscribe code, cut down to a command-line script). It does not know that "subscribe" and
 * "unsubscribe" are now served by a typed Python worker: same function names, same json_encode.
 *
 *     php web_app.php 127.0.0.1:4730
 */

$client = new GearmanClient();
$client->addServers($argv[1] ?? '127.0.0.1:4730');
$client->setTimeout(10000);

// The sign-up form: wait for the answer (doNormal).
foreach (['ann@example.com', 'bob@example.com'] as $email) {
    $reply = $client->doNormal('subscribe', json_encode(['email' => $email, 'list' => 'weekly']));
    if ($client->returnCode() !== GEARMAN_SUCCESS) {
        exit("subscribe $email failed: " . $client->error() . "\n");
    }
    $state = json_decode($reply, true);
    printf("subscribed %s to %s (%d on the list)\n", $email, $state['list'], $state['subscribers']);
}

// A bad address: the worker's error arrives as a WORK_EXCEPTION holding a JSON object.
$reply = $client->doNormal('subscribe', json_encode(['email' => 'bob at example', 'list' => 'weekly']));
if ($client->returnCode() === GEARMAN_WORK_EXCEPTION) {
    echo "doNormal: GEARMAN_WORK_EXCEPTION\n";
}
// To read it, submit a task with an exception callback.
$client->setExceptionCallback(function (GearmanTask $task) {
    $error = json_decode($task->data(), true);
    printf("refused: %s (code %d): %s\n", $error['status'], $error['code'], $error['message']);
});
$client->addTask('subscribe', json_encode(['email' => 'bob at example', 'list' => 'weekly']));
$client->runTasks();

// The unsubscribe link: queue it and answer the page at once (doBackground).
$handle = $client->doBackground('unsubscribe', json_encode(['email' => 'bob@example.com', 'list' => 'weekly']));
if ($client->returnCode() !== GEARMAN_SUCCESS) {
    exit("unsubscribe failed: " . $client->error() . "\n");
}
echo "unsubscribe queued in the background\n";
for ($i = 0; $i < 100 && $client->jobStatus($handle)[0]; $i++) {  // [0]: still known to gearmand
    usleep(100000);
}
$reply = $client->doNormal('subscribe', json_encode(['email' => 'carol@example.com', 'list' => 'weekly']));
$state = json_decode($reply, true);
printf("subscribed carol@example.com to %s (%d on the list: bob has left)\n", $state['list'], $state['subscribers']);
