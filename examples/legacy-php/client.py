"""Calls the unchanged PHP send_mail worker from Python through the generated typed stubs (blocking
and asyncio). Nothing changed on the PHP side: mail.proto declares the method `bare: true,
encoding: JSON`, so the job is the JSON the worker always read, and its JSON reply comes back typed.

    bridge generate --lang python -o DIR -I examples/legacy-php examples/legacy-php/mail.proto
    python3 examples/legacy-php/client.py --servers 127.0.0.1:4730 --gen DIR
"""

from __future__ import annotations

import argparse
import asyncio
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", default="127.0.0.1:4730")
    parser.add_argument("--gen", required=True, help="folder of the generated Python stubs")
    args = parser.parse_args()
    sys.path.insert(0, args.gen)
    from mail_bridge import MailerAsyncClient, MailerClient  # type: ignore[import-not-found]
    from mail_pb2 import Mail  # type: ignore[import-not-found]

    from bridge.errors import Unknown

    with MailerClient(args.servers) as mailer:
        queued = mailer.send_mail(
            to="ann@example.com", cc=["bob@example.com"], subject="Your order has shipped",
            body="Parcel 4711 left our warehouse today.", timeout=10,
        )
        print(f"queued by PHP: {queued.message_id}, {queued.recipients} recipients, "
              f"{queued.size_bytes} bytes")
        try:
            mailer.send_mail(to="ann at example", subject="?", timeout=10)
        except Unknown as exc:  # the worker's sendException() text, as it wrote it
            print(f"refused by PHP: Unknown: {exc.message}")

    async def newsletter() -> None:
        async with MailerAsyncClient(args.servers) as mailer:
            replies = await asyncio.gather(*(
                mailer.send_mail(Mail(to=f"reader{n}@example.com", subject="Weekly news",
                                      body=f"Issue 42 for reader {n}"), timeout=30)
                for n in range(20)
            ))
        ids = {reply.message_id for reply in replies}
        print(f"asyncio: {len(replies)} mails queued at once, {len(ids)} distinct message ids")

    asyncio.run(newsletter())
    return 0


if __name__ == "__main__":
    sys.exit(main())
