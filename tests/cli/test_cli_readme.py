"""The README's "From the shell" section: its commands run as written, its exit table is the
one the commands use."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import REPO, RunningWorker, cli_env

from bridge.cli import exit_codes
from bridge.codegen import get_emitter, write_files
from bridge.errors import StatusCode
from bridge.rpc.server import ServicerContext
from bridge.schema import load
from bridge.testing import GearmandServer
from bridge.worker import Worker

pytestmark = pytest.mark.timeout(120)

README = REPO / "README.md"
TEXT = REPO / "examples" / "ruby-text" / "text.proto"


def section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end]


@pytest.fixture(scope="module")
def text_toolkit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GearmandServer]:
    """gearmand and a Python worker serving examples/ruby-text/text.proto."""
    out = tmp_path_factory.mktemp("cli-text-gen")
    write_files(get_emitter("python").generate(load([TEXT], [TEXT.parent]), {}), out)
    sys.path.insert(0, str(out))
    import text_bridge
    import text_pb2

    class Toolkit(text_bridge.TextToolkitServicer):  # type: ignore[misc]
        def slugify(self, request: Any, context: ServicerContext) -> Any:
            words = re.findall(r"\w+", request.text.lower())
            return text_pb2.SlugifyReply(slug=(request.separator or "-").join(words))

        def titleize(self, request: Any, context: ServicerContext) -> Any:
            return text_pb2.TitleizeReply(title=request.text.title())

        def word_frequencies(self, request: Any, context: ServicerContext) -> Iterator[Any]:
            counts: dict[str, int] = {}
            for word in request.text.split():
                counts[word] = counts.get(word, 0) + 1
            ranked = sorted(counts.items(), key=lambda item: -item[1])
            for word, count in ranked[: request.top or None]:
                yield text_pb2.WordCount(word=word, count=count)

    with GearmandServer() as gearmand:
        worker = Worker(gearmand.address, concurrency=2)
        text_bridge.add_text_toolkit_to_worker(Toolkit(), worker)
        running = RunningWorker(worker)
        yield gearmand
        running.stop()


def test_the_shell_block_runs_as_written(text_toolkit: GearmandServer) -> None:
    (block,) = re.findall(r"```sh\n(.*?)```", section("From the shell"), re.S)
    assert "export BRIDGE_SERVERS=127.0.0.1:4730\n" in block
    script = block.replace("127.0.0.1:4730", text_toolkit.address)
    env = cli_env()
    # `bridge` as installed (the console script next to this interpreter), as a user runs it
    bindir = os.path.dirname(sys.executable)
    env["PATH"] = os.pathsep.join([bindir, env.get("PATH", "")])
    assert shutil.which("bridge", path=env["PATH"]), "the bridge console script is not installed"
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert f"bridge {metadata.version('bridge')}\n" in out
    assert '{"slug": "hello-world"}\n' in out
    assert '{"word": "a", "count": 2}\n{"word": "b", "count": 1}\n' in out
    assert re.search(r'\{"handle": "H:[^"]+", "server": "[^"]+"\}\n', out)
    decoder = json.JSONDecoder()
    documents = []
    at = out.index('{\n  "servers"')
    while at < len(out):
        document, at = decoder.raw_decode(out, at)
        documents.append(document)
        while at < len(out) and out[at].isspace():
            at += 1
    status, jobs = documents
    assert any(f["function"] == "textkit.v1.TextToolkit.Slugify"
               for f in status["servers"][0]["functions"])
    assert jobs["servers"][0]["available"] is True


def test_the_exit_table_is_the_one_the_commands_use() -> None:
    rows = re.findall(r"^\| ([\d, ]+) \| (.*) \|$", section("From the shell"), re.M)
    documented: dict[int, str] = {}
    for numbers, meaning in rows:
        names = [name.strip() for name in meaning.split(":")[0].split(",")]
        statuses = [int(n) for n in numbers.split(",")]
        for index, status in enumerate(statuses):
            documented[status] = names[index] if len(statuses) > 1 else names[0]
    for code in StatusCode:
        if code is not StatusCode.OK:
            assert documented[exit_codes.status_for_code(code)].startswith(code.name), code
    assert {0, 1, 2, 130, 141} <= documented.keys()
    assert len(exit_codes.table_text().splitlines()) == 1 + len(documented)  # + a title


def test_the_call_in_five_steps_runs_as_written(
    text_toolkit: GearmandServer, tmp_path: Path
) -> None:
    """Step 1's text.proto and the `bridge call` after step 5, $BRIDGE_SERVERS for the server."""
    text = README.read_text()
    steps = section("In five steps")
    (proto,) = re.findall(r"```proto\n(.*?)```", steps, re.S)
    (tmp_path / "text.proto").write_text(textwrap.dedent(proto))
    (command,) = re.findall(r"Or, without generating anything: `(bridge call [^`]*)`", text)
    env = cli_env({"BRIDGE_SERVERS": text_toolkit.address})
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
    done = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert (done.returncode, done.stdout) == (0, '{"slug": "hi"}\n'), done.stderr
