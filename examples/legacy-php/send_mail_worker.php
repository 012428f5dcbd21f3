<?php
/**
 * send_mail: the mail-queue worker as the shop has run it for years under supervisord. It knows
 * nothing of bridge: JSON in, JSON out, pecl gearman. The only thing new is mail.proto, which
 * declares what it reads and writes so that Python can call it as a typed function.
 *
 *     php send_mail_worker.php 127.0.0.1:4730
 */

$servers = $argv[1] ?? '127.0.0.1:4730';

function send_mail(GearmanJob $job)
{
    $mail = json_decode($job->workload(), true);
    if (!is_array($mail)) {
        $job->sendException('send_mail: the workload is not a JSON object');
        return;
    }
    $cc = $mail['cc'] ?? [];
    $recipients = array_merge([$mail['to'] ?? ''], $cc);
    foreach ($recipients as $address) {
        if (!filter_var($address, FILTER_VALIDATE_EMAIL)) {
            $job->sendException("send_mail: invalid recipient address '$address'");
            return;
        }
    }

    $id = sprintf('<%s@mail.example.com>', bin2hex(random_bytes(8)));
    $headers = "Message-ID: $id\r\nFrom: shop@example.com\r\n";
    if ($cc) {
        $headers .= 'Cc: ' . implode(', ', $cc) . "\r\n";
    }
    if (!empty($mail['reply_to'])) {
        $headers .= "Reply-To: {$mail['reply_to']}\r\n";
    }
    $message = "To: {$mail['to']}\r\nSubject: {$mail['subject']}\r\n$headers\r\n{$mail['body']}";
    // Production hands $message to the MTA here (mail() / the SMTP relay); the example stops short.

    return json_encode([
        'message_id' => $id,
        'recipients' => count($recipients),
        'queued_at_ms' => (int) (microtime(true) * 1000),
        'size_bytes' => strlen($message),
    ]);
}

// Stop cleanly between jobs when supervisord sends SIGTERM.
$running = true;
pcntl_async_signals(true);
pcntl_signal(SIGTERM, function () use (&$running) { $running = false; });
pcntl_signal(SIGINT, function () use (&$running) { $running = false; });

$worker = new GearmanWorker();
$worker->addServers($servers);
$worker->addFunction('send_mail', 'send_mail');
$worker->setTimeout(1000);  // wake up every second to look at $running

while ($running) {
    if (@$worker->work()) {
        continue;
    }
    if ($worker->returnCode() !== GEARMAN_TIMEOUT) {
        fwrite(STDERR, 'send_mail worker: ' . $worker->error() . "\n");
        sleep(1);
    }
}
