"""subscribe / unsubscribe: a NEW worker, written typed in Python against mail.proto. The shop's PHP
web app (web_app.php) calls it with GearmanClient and json_encode, as it calls every other worker.

    bridge generate --lang python -o DIR -I examples/legacy-php examples/legacy-php/mail.proto
    python3 examples/legacy-php/subscriptions_worker.py --servers 127.0.0.1:4730 --gen DIR

It takes every bridge worker's command line (``--servers``, ``--concurrency``, ``--log-level``,
``--help``...: docs/workers.md) through ``bridge.worker.command_line``, plus its own ``--gen``.
"""

from __future__ import annotations

import sys
import threading
from collections import defaultdict

from bridge.worker import command_line


def main() -> None:
    options = command_line.parse(
        description=__doc__.splitlines()[0],
        arguments=lambda parser: parser.add_argument(
            "--gen", required=True, help="folder of the generated Python stubs"),
    )
    sys.path.insert(0, options.args.gen)
    from mail_bridge import (  # type: ignore[import-not-found]
        SubscriptionsServicer,
        serve_subscriptions,
    )
    from mail_pb2 import ListState, Subscription  # type: ignore[import-not-found]

    from bridge.errors import InvalidArgument, NotFound
    from bridge.rpc.server import ServicerContext

    class Subscriptions(SubscriptionsServicer):  # type: ignore[misc]
        """Mailing lists in memory (a real one would use the shop's database)."""

        def __init__(self) -> None:
            self.lists: defaultdict[str, set[str]] = defaultdict(set)
            self.lock = threading.Lock()  # plain ``def`` handlers run in a thread pool

        def subscribe(self, request: Subscription, context: ServicerContext) -> ListState:
            email = request.email.strip().lower()
            if email.count("@") != 1 or "." not in email.split("@")[1]:
                raise InvalidArgument(f"not an e-mail address: {request.email!r}")
            with self.lock:
                members = self.lists[request.list]
                members.add(email)
                return ListState(list=request.list, subscribed=True, subscribers=len(members))

        def unsubscribe(self, request: Subscription, context: ServicerContext) -> ListState:
            email = request.email.strip().lower()
            with self.lock:
                if request.list not in self.lists:
                    raise NotFound(f"no mailing list {request.list!r}")
                members = self.lists[request.list]
                members.discard(email)
                return ListState(list=request.list, subscribed=False, subscribers=len(members))

    serve_subscriptions(Subscriptions(), **options)


if __name__ == "__main__":
    main()
