<?php
// An order worker speaking msgpack (php-msgpack's msgpack_unpack / msgpack_pack), unchanged
// legacy code. legacy.proto declares it as Legacy.OrderTotal and Legacy.OrderStatus (bare: true,
// encoding: MSGPACK); unaware.proto as Unaware.OrderTotal (no bare), the first silent failure of
// issue 12: this worker reads an envelope as the integer 8 and answers totals of zero.

$worker = new GearmanWorker();
$worker->addServers(getenv('GEARMAN_SERVERS') ?: '127.0.0.1:4730');

$worker->addFunction('order_total', function (GearmanJob $job) {
    $order = msgpack_unpack($job->workload());

    $total = 0;
    $skus = [];
    foreach ($order['lines'] ?? [] as $line) {
        $total += $line['quantity'] * $line['unit_cents'];
        $skus[] = $line['sku'];
    }
    if (($order['coupon'] ?? '') === 'SUMMER19') {
        $job->sendException('coupon SUMMER19 has expired');
        return GEARMAN_WORK_EXCEPTION;
    }
    if (($order['coupon'] ?? '') === 'HALF') {
        $total = intdiv($total, 2);
    }
    return msgpack_pack([
        'order_id' => $order['order_id'] ?? 0,
        'total_cents' => $total,
        'skus' => $skus,
        'free_shipping' => $total >= 5000,
    ]);
});

$worker->addFunction('order_status', function (GearmanJob $job) {
    $req = msgpack_unpack($job->workload());
    $id = $req['order_id'] ?? 0;
    return msgpack_pack(['order_id' => $id, 'state' => $id % 2 ? 'shipped' : 'packing', 'eta_days' => $id % 5]);
});

while ($worker->work()) {
    if ($worker->returnCode() != GEARMAN_SUCCESS) {
        echo 'return_code: ' . $worker->returnCode() . "\n";
        break;
    }
}
