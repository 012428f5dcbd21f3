"""pytest fixtures for a real gearmand: ``gearmand`` (one per test), ``gearmand_tls`` (one per
test, behind its TLS front: ``GearmandServer(tls=True)``) and ``gearmand_factory``.

Load it with ``pytest_plugins = ["bridge.testing.pytest_plugin"]`` (the repository's root
``conftest.py`` does).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bridge.testing import GearmandServer

GearmandFactory = Callable[..., GearmandServer]


@pytest.fixture
def gearmand_factory() -> Iterator[GearmandFactory]:
    """Call it with ``GearmandServer`` keyword arguments for more servers; all stop at teardown."""
    servers: list[GearmandServer] = []

    def make(**options: Any) -> GearmandServer:
        server = GearmandServer(**options)
        servers.append(server)
        return server.start()

    yield make
    for server in reversed(servers):
        server.close()


@pytest.fixture
def gearmand(gearmand_factory: GearmandFactory) -> GearmandServer:
    """A fresh gearmand on a free loopback port, stopped after the test."""
    return gearmand_factory()


@pytest.fixture
def gearmand_tls(gearmand_factory: GearmandFactory) -> GearmandServer:
    """A fresh gearmand behind a stunnel TLS front that requires client certificates (see
    ``GearmandServer``: ``tls_address``, ``client_tls``, ``tls_env()``, ``pki``)."""
    return gearmand_factory(tls=True)
