"""Calls the Java loans service from Python through the generated stubs.

    bridge generate --lang python -o GEN -I examples/java-loans examples/java-loans/loans.proto
    python3 examples/java-loans/client.py --servers 127.0.0.1:4730 --gen GEN
"""

from __future__ import annotations

import argparse
import sys

from bridge.errors import InvalidArgument
from bridge.rpc.client import Encoding


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", default="127.0.0.1:4730")
    parser.add_argument("--gen", required=True, help="where `bridge generate --lang python` wrote")
    args = parser.parse_args()
    sys.path.insert(0, args.gen)
    from loans_bridge import LoansClient  # type: ignore[import-not-found]  # generated

    loan = {
        "principal": "250000.00", "annual_rate_percent": "3.85", "months": 300, "currency": "EUR",
    }
    with LoansClient(args.servers) as loans:
        quote = loans.quote(**loan, timeout=10)
        print(f"quote        : {quote.monthly_payment} {quote.currency}/month for {quote.months} "
              f"months, interest {quote.total_interest}, last payment {quote.last_payment}")
        yen = loans.quote(principal="3000000", annual_rate_percent="1.2", months=36, currency="JPY",
                          timeout=10, encoding=Encoding.MSGPACK)
        print(f"yen quote    : {yen.monthly_payment} {yen.currency}/month (no minor unit)")

        progress: list[tuple[int, int]] = []
        rows = list(loans.schedule(
            **loan, timeout=30, on_progress=lambda done, total: progress.append((done, total))
        ))
        first, last = rows[0], rows[-1]
        print(f"schedule     : {len(rows)} installments streamed, {len(progress)} progress reports")
        print(f"  month {first.number:>3}  : pays {first.payment} = {first.principal} principal "
              f"+ {first.interest} interest, owes {first.balance}")
        print(f"  month {last.number:>3}  : pays {last.payment} = {last.principal} principal "
              f"+ {last.interest} interest, owes {last.balance}")
        try:
            loans.quote(principal="12,5", annual_rate_percent="3", months=12, currency="EUR",
                        timeout=10)
        except InvalidArgument as exc:
            print(f"bad input    : InvalidArgument from {exc.language}: {exc.message} "
                  f"{exc.details}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
