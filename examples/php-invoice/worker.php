<?php

/**
 * The billing.v1.Invoices service, in PHP: the code a billing team already has, behind a typed
 * interface Python can call.
 *
 *     php worker.php --gen BUILD_DIR/gen --servers HOST:PORT[,...] [--concurrency N] [--log-level LEVEL]
 *
 * The command line is every bridge worker's (docs/workers.md; `--help` lists it), plus --gen.
 */

declare(strict_types=1);

use Billing\V1\Invoice;
use Billing\V1\InvoiceBatch;
use Billing\V1\InvoicesInterface;
use Billing\V1\InvoicesRegistration;
use Billing\V1\RenderedInvoice;
use Bridge\Runtime\BridgeError;
use Bridge\Runtime\CommandLine;
use Bridge\Runtime\Context;
use Bridge\V1\Code;

require dirname(__DIR__, 2) . '/adapters/php/autoload.php';
$commandLine = CommandLine::parse(
    $argv,
    ['gen' => 'DIR  the folder `bridge generate --lang php` wrote invoice.proto\'s code to (default: ./gen)'],
    'Serves billing.v1.Invoices (examples/php-invoice) until SIGTERM.',
);
require $commandLine->option('gen', __DIR__ . '/gen') . '/autoload.php';

final class Invoices implements InvoicesInterface
{
    /** Symbol and minor-unit digits per currency. */
    private const CURRENCIES = ['EUR' => ['€', 2], 'USD' => ['$', 2], 'GBP' => ['£', 2], 'CHF' => ['CHF ', 2], 'JPY' => ['¥', 0]];

    public function render(Invoice $invoice, Context $context): RenderedInvoice
    {
        [$symbol, $digits] = self::CURRENCIES[$invoice->getCurrency()]
            ?? throw new BridgeError(Code::INVALID_ARGUMENT, "unsupported currency '{$invoice->getCurrency()}'");
        if (count($invoice->getItems()) === 0) {
            throw new BridgeError(Code::INVALID_ARGUMENT, "invoice {$invoice->getNumber()} has no lines");
        }
        $issued = DateTimeImmutable::createFromFormat('!Y-m-d', $invoice->getIssuedOn())
            ?: throw new BridgeError(Code::INVALID_ARGUMENT, "issued_on '{$invoice->getIssuedOn()}' is not YYYY-MM-DD");
        $money = static fn (int $cents): string
            => ($cents < 0 ? '-' : '') . $symbol . number_format(abs($cents) / 10 ** $digits, $digits, '.', ',');

        $rows = [];
        $subtotal = $tax = 0;
        foreach ($invoice->getItems() as $i => $item) {
            if ($item->getQuantity() < 0) {
                $context->warning("line " . ($i + 1) . " ({$item->getDescription()}) has a negative quantity");
            }
            if ($item->getTaxRate() > 0.30) {
                $context->warning(sprintf('line %d taxed at %.0f %%: check the rate', $i + 1, $item->getTaxRate() * 100));
            }
            $net = $item->getQuantity() * $item->getUnitPriceCents();
            $subtotal += $net;
            $tax += (int) round($net * $item->getTaxRate());
            $rows[] = [$item->getDescription(), (string) $item->getQuantity(), $money($item->getUnitPriceCents()), $money($net)];
        }
        $due = $issued->modify("+{$invoice->getDueInDays()} days");
        $totals = [['Subtotal', $money($subtotal)], ['Tax', $money($tax)], ['Total', $money($subtotal + $tax)]];

        $text = sprintf("INVOICE %s\nBill to: %s\nIssued %s, due %s\n\n", $invoice->getNumber(), $invoice->getCustomer(),
            $issued->format('j F Y'), $due->format('j F Y'));
        foreach ($rows as [$what, $qty, $unit, $net]) {
            $what = preg_replace('/^(.{27}).{2,}$/us', '$1…', $what);
            $text .= self::pad($what, -28) . ' ' . self::pad($qty, 5) . ' x ' . self::pad($unit, 12) . ' = ' . self::pad($net, 12) . "\n";
        }
        foreach ($totals as [$label, $amount]) {
            $text .= self::pad($label, 50) . ' ' . self::pad($amount, 12) . "\n";
        }

        $e = static fn (string $s): string => htmlspecialchars($s, ENT_QUOTES | ENT_HTML5, 'UTF-8');
        $html = "<table class=\"invoice\">\n<caption>Invoice {$e($invoice->getNumber())} for {$e($invoice->getCustomer())}</caption>\n";
        foreach ($rows as $row) {
            $html .= '<tr>' . implode('', array_map(static fn (string $cell): string => "<td>{$e($cell)}</td>", $row)) . "</tr>\n";
        }
        foreach ($totals as [$label, $amount]) {
            $html .= "<tr class=\"total\"><th colspan=\"3\">{$label}</th><td>{$e($amount)}</td></tr>\n";
        }
        $html .= "</table>\n";

        return new RenderedInvoice([
            'number' => $invoice->getNumber(),
            'text' => $text,
            'html' => $html,
            'subtotal_cents' => $subtotal,
            'tax_cents' => $tax,
            'total_cents' => $subtotal + $tax,
            'due_on' => $due->format('Y-m-d'),
        ]);
    }

    /** Pads to $width characters (not bytes: € is three), on the left, or on the right when negative. */
    private static function pad(string $s, int $width): string
    {
        $fill = str_repeat(' ', max(0, abs($width) - preg_match_all('/./us', $s)));
        return $width < 0 ? $s . $fill : $fill . $s;
    }

    public function renderBatch(InvoiceBatch $batch, Context $context): iterable
    {
        $count = count($batch->getInvoices());
        foreach ($batch->getInvoices() as $i => $invoice) {
            yield $this->render($invoice, $context);
            $context->progress($i + 1, $count);
        }
    }
}

$worker = $commandLine->worker();
InvoicesRegistration::register($worker, new Invoices());
exit($worker->run());
