"""Calls the PHP billing.v1.Invoices worker from Python through the generated typed stubs.

    bridge generate --lang python -o DIR -I examples/php-invoice examples/php-invoice/invoice.proto
    python3 examples/php-invoice/client.py --servers 127.0.0.1:4730 --gen DIR
"""

from __future__ import annotations

import argparse
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", default="127.0.0.1:4730")
    parser.add_argument("--gen", required=True, help="folder of the generated Python stubs")
    args = parser.parse_args()
    sys.path.insert(0, args.gen)
    from invoice_bridge import InvoicesClient  # type: ignore[import-not-found]
    from invoice_pb2 import Invoice, InvoiceBatch, LineItem  # type: ignore[import-not-found]

    from bridge.errors import InvalidArgument

    invoice = Invoice(
        number="2026-0042",
        customer="Müller & Söhne <Berlin>",
        currency="EUR",
        issued_on="2026-11-26",
        due_in_days=30,
        items=[
            LineItem(description="Consulting, November", quantity=12, unit_price_cents=95_00,
                     tax_rate=0.19),
            LineItem(description="Travel (Berlin ⇄ Hamburg)", quantity=1, unit_price_cents=189_90,
                     tax_rate=0.19),
            LineItem(description="Credit note: October overbilling", quantity=-1,
                     unit_price_cents=120_00, tax_rate=0.19),
        ],
    )
    with InvoicesClient(args.servers) as invoices:
        warnings: list[str] = []
        rendered = invoices.render(invoice, timeout=10, on_warning=warnings.append)
        print(rendered.text)
        for warning in warnings:
            print(f"warning from PHP: {warning}")
        print(f"total {rendered.total_cents / 100:.2f} EUR, due {rendered.due_on}; "
              f"HTML escapes the customer: {'Müller &amp; Söhne &lt;Berlin&gt;' in rendered.html}")

        batch = InvoiceBatch(invoices=[
            Invoice(number=f"2026-{n:04d}", customer=f"Customer {n}", currency=currency,
                    issued_on="2026-12-01", due_in_days=14,
                    items=[LineItem(description="Subscription", quantity=1,
                                    unit_price_cents=49_00, tax_rate=0.2)])
            for n, currency in ((43, "USD"), (44, "GBP"), (45, "JPY"))
        ])
        progress: list[tuple[int, int]] = []
        totals = [(r.number, r.total_cents) for r in invoices.render_batch(
            batch, timeout=10, on_progress=lambda done, total: progress.append((done, total)))]
        print(f"batch rendered in PHP: {totals}, progress {progress}")

        try:
            invoices.render(Invoice(number="2026-0046", currency="XXX", items=[LineItem()]),
                            timeout=10)
        except InvalidArgument as exc:
            print(f"refused by PHP as expected: InvalidArgument: {exc.message}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
