"""Every command in README.md runs, or is listed here as skipped with its reason.

The README's code blocks (fenced, and the indented block of its first lines) are read from the
file itself, so a changed command is what runs. Each block is one of:

* a file the five steps write (``text.proto``, ``worker.rb``, ``client.py``): written as is;
* a fragment (part of a file, shown to explain): listed in ``FRAGMENTS`` with why;
* shell commands: every command is run by ``test_the_five_steps_and_the_shell_examples`` or
  listed in ``SKIPPED`` / ``SKIPPED_INSTALL`` with why (each shows as a skipped test with that
  reason). ``test_every_block_is_accounted_for`` fails for a command or block that is neither,
  so a new command in the README needs a decision here.

Two commands written inline are run as well: the ``bridge call`` that follows step 5, and the
example worker's ``build.sh`` / ``run.sh`` that "From the shell" needs.

How the commands run: in a temporary folder holding only symbolic links to the checkout's
``adapters`` and ``examples``, with ``bridge`` and ``python3`` on PATH running this checkout's
package (the interpreter running the tests). A fixed port could be taken, so gearmand runs on a free
one: ``bridge server`` gets ``--port N`` and ``127.0.0.1:4730`` in a command becomes
``127.0.0.1:N``, in the files the steps write too (``BRIDGE_SERVERS`` is set to it as well, for
commands that rely on the default).
Commands ending in ``&`` run in the background and are stopped at the end. Bounded: each command
60 s, the whole test well under 90 s.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bridge import admin
from bridge.testing import free_port

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
COMMAND_TIMEOUT = 60.0

#: Commands not run, each with its reason.
SKIPPED: dict[str, str] = {
    "scripts/demo.sh": "installs Debian packages (apt-get: root and the network) and runs every "
    "example; tests/test_examples.py runs the examples themselves",
    "scripts/test.sh": "is the CI run itself (.ci/run runs it); running it from a test would "
    "recurse",
}

#: Whole install blocks (between ``<!-- install:LANG -->`` markers), each with its reason.
SKIPPED_INSTALL: dict[str, str] = {
    "python": "installs into the running environment; tests/install builds the wheel from the "
    "checkout and installs it into a venv outside it",
    "c": "make install PREFIX=/usr/local writes into the system; tests/install installs the C "
    "runtime into a temporary prefix",
    "php": "composer in a project of the reader's; tests/install installs the PHP runtime "
    "with composer through a path repository",
    "ruby": "gem install into the system's gems; tests/install builds the gem and installs it "
    "into a temporary GEM_HOME",
    "java": "mvn install into ~/.m2 (Maven Central on a fresh machine); tests/install does it "
    "into a temporary local repository",
}

#: Blocks that are part of a file, not a file or a command.
FRAGMENTS: dict[str, str] = {
    "option (bridge.v1.method)": "one rpc of a schema, showing the bare option; the bare "
    "encodings are tested by interop_tests/test_bare.py and tests/codecs",
}


@dataclass(frozen=True)
class Block:
    """One code block of the README: its language ("" for an indented block), text, the heading
    it is under and the install section it is in ("" when none)."""

    language: str
    text: str
    section: str
    install: str


def readme_blocks(text: str) -> list[Block]:
    """The README's code blocks, in order."""
    blocks: list[Block] = []
    section = install = ""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if line.startswith("#"):
            section = line.lstrip("#").strip()
        elif m := re.fullmatch(r"<!-- install:(\w+) -->", stripped):
            install = m.group(1)
        elif re.fullmatch(r"<!-- /install:\w+ -->", stripped):
            install = ""
        elif stripped.startswith("```"):
            indent = line[: len(line) - len(line.lstrip())]
            language = stripped[3:].strip()
            body: list[str] = []
            i += 1
            while lines[i].strip() != "```":
                body.append(lines[i].removeprefix(indent))
                i += 1
            blocks.append(Block(language, "\n".join(body) + "\n", section, install))
        elif line.startswith("    ") and (i == 0 or not lines[i - 1].strip()):
            body = []
            while i < len(lines) and lines[i].startswith("    "):
                body.append(lines[i][4:])
                i += 1
            blocks.append(Block("", "\n".join(body) + "\n", section, install))
            continue
        i += 1
    return blocks


def commands(block: Block) -> list[str]:
    """The shell commands of a block: one per line (a trailing ``\\`` continues it), comments
    after ``  #`` removed."""
    out: list[str] = []
    pending = ""
    for raw in block.text.splitlines():
        line = re.sub(r"\s+#\s.*$", "", raw).rstrip()
        if not line.strip():
            continue
        if line.endswith("\\"):
            pending += line[:-1]
            continue
        out.append((pending + line).strip())
        pending = ""
    return out


def _blocks() -> list[Block]:
    return readme_blocks(README.read_text())


def _is_shell(block: Block) -> bool:
    return block.language in ("sh", "")


def _step_files(blocks: list[Block]) -> dict[str, Block]:
    """The files the five steps write, by name: the first proto, ruby and python blocks under
    'In five steps'."""
    steps = [b for b in blocks if b.section == "In five steps"]
    return {
        "text.proto": next(b for b in steps if b.language == "proto"),
        "worker.rb": next(b for b in steps if b.language == "ruby"),
        "client.py": next(b for b in steps if b.language == "python"),
    }


def _run_sections() -> tuple[str, ...]:
    return ("In five steps", "From the shell")


def test_every_block_is_accounted_for() -> None:
    blocks = _blocks()
    files = _step_files(blocks).values()
    unaccounted = []
    for block in blocks:
        if block in files:
            continue
        if block.install:
            assert block.install in SKIPPED_INSTALL, f"install:{block.install} has no reason"
            continue
        if not _is_shell(block):
            if not any(key in block.text for key in FRAGMENTS):
                unaccounted.append(f"{block.language} block under {block.section!r}")
            continue
        for command in commands(block):
            if command not in SKIPPED and block.section not in _run_sections():
                unaccounted.append(f"{command!r} under {block.section!r}")
    assert not unaccounted, (
        "README commands neither run nor skipped with a reason in "
        f"tests/docs/test_readme_commands.py: {unaccounted}"
    )
    assert any(b.install for b in blocks), "the Install section's markers are gone"


def _skipped() -> list[tuple[str, str]]:
    out = []
    for block in _blocks():
        if block.install:
            if _is_shell(block):
                out += [(c, SKIPPED_INSTALL[block.install]) for c in commands(block)]
        elif _is_shell(block):
            out += [(c, SKIPPED[c]) for c in commands(block) if c in SKIPPED]
    return out


@pytest.mark.parametrize(("command", "reason"), _skipped(), ids=lambda v: v[:60])
def test_skipped_command(command: str, reason: str) -> None:
    """One skipped README command, shown with its reason."""
    pytest.skip(f"README command not run: {command}: {reason}")


# --- the commands that run ----------------------------------------------------------------


class Shell:
    """Runs README commands in ``workdir`` with the checkout's ``bridge`` and ``python3``."""

    def __init__(self, workdir: Path, port: int) -> None:
        self.workdir = workdir
        self.port = port
        self.background: list[tuple[str, subprocess.Popen[bytes]]] = []
        bin_dir = workdir / ".bin"
        bin_dir.mkdir()
        for name, tail in (("bridge", "-m bridge.cli"), ("python3", "")):
            script = bin_dir / name
            script.write_text(
                "#!/bin/sh\n"
                f'PYTHONPATH="${{PYTHONPATH:+$PYTHONPATH:}}{ROOT}" exec {sys.executable} '
                f'{tail} "$@"\n'
            )
            script.chmod(0o755)
        self.env = {
            **os.environ,
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "BRIDGE_SERVERS": f"127.0.0.1:{port}",
        }
        self.env.pop("PYTHONPATH", None)

    def adapt(self, command: str) -> str:
        command = command.replace("127.0.0.1:4730", f"127.0.0.1:{self.port}")
        if re.match(r"bridge server(\s|$)", command):
            command = command.replace("bridge server", f"bridge server --port {self.port}", 1)
        return command

    def run(self, command: str) -> str:
        """Run one command; returns its stdout; fails the test on a non-zero exit status."""
        command = self.adapt(command)
        if command.endswith("&"):
            process = subprocess.Popen(
                ["bash", "-c", "exec " + command[:-1].strip()], cwd=self.workdir, env=self.env,
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            self.background.append((command, process))
            return ""
        if m := re.fullmatch(r"export (\w+)=(\S+)", command):
            self.env[m.group(1)] = m.group(2)
            return ""
        result = subprocess.run(
            ["bash", "-c", command], cwd=self.workdir, env=self.env, capture_output=True,
            timeout=COMMAND_TIMEOUT, check=False,
        )
        assert result.returncode == 0, (
            f"README command failed ({result.returncode}): {command}\n"
            f"{result.stdout.decode(errors='replace')}{result.stderr.decode(errors='replace')}"
        )
        return result.stdout.decode()

    def stop(self, process: subprocess.Popen[bytes]) -> str:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
        assert process.stdout is not None
        return process.stdout.read().decode(errors="replace")

    def stop_all(self) -> None:
        for _, process in reversed(self.background):
            self.stop(process)
        self.background.clear()

    def wait_for_worker(self, function_part: str, process: subprocess.Popen[bytes]) -> None:
        """Until gearmand lists a worker for a function whose name contains ``function_part``."""
        deadline = time.monotonic() + COMMAND_TIMEOUT
        while time.monotonic() < deadline:
            assert process.poll() is None, f"the worker exited:\n{self.stop(process)}"
            try:
                found = [s for s in admin.status(f"127.0.0.1:{self.port}", timeout=2)
                         if function_part in s.function and s.workers]
            except Exception:
                found = []
            if found:
                return
            time.sleep(0.1)
        pytest.fail(f"no worker registered for *{function_part}* within {COMMAND_TIMEOUT:g} s")

    def wait_for_server(self, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + COMMAND_TIMEOUT
        while time.monotonic() < deadline:
            assert process.poll() is None, f"bridge server exited:\n{self.stop(process)}"
            try:
                admin.version(f"127.0.0.1:{self.port}", timeout=1)
                return
            except Exception:
                time.sleep(0.1)
        pytest.fail("bridge server did not answer")


@pytest.fixture
def shell(tmp_path: Path) -> Iterator[Shell]:
    for name in ("adapters", "examples"):
        (tmp_path / name).symlink_to(ROOT / name)
    sh = Shell(tmp_path, free_port())
    try:
        yield sh
    finally:
        sh.stop_all()


@pytest.mark.timeout(240)
def test_the_five_steps_and_the_shell_examples(shell: Shell) -> None:
    text = README.read_text()
    blocks = readme_blocks(text)
    for name, block in _step_files(blocks).items():
        (shell.workdir / name).write_text(shell.adapt(block.text))
    steps = [b for b in blocks if b.section == "In five steps" and _is_shell(b)]
    assert len(steps) == 3, "step 2, step 4 and step 5"
    generate, serve, call_python = steps

    # 2. generate the Ruby shim and the Python stubs
    for command in commands(generate):
        shell.run(command)
    assert (shell.workdir / "build/ruby/text_bridge.rb").is_file()
    assert (shell.workdir / "build/py/text_bridge.py").is_file()

    # 4. gearmand and the worker, in the background
    server_command, worker_command = commands(serve)
    assert server_command.startswith("bridge server") and server_command.endswith("&")
    shell.run(server_command)
    shell.wait_for_server(shell.background[-1][1])
    shell.run(worker_command)
    step_worker = shell.background[-1][1]
    shell.wait_for_worker("Slugify", step_worker)

    # 5. the typed Python call, with PYTHONPATH as the README says
    (command,) = commands(call_python)
    assert "PYTHONPATH=build/py" in command
    assert shell.run(command).strip() == "hello-world"

    # ... and without generating anything (inline code after step 5)
    (command,) = re.findall(r"Or, without generating anything: `(bridge call [^`]*)`", text)
    assert json.loads(shell.run(command)) == {"slug": "hi"}
    shell.stop(step_worker)

    # From the shell: the Ruby example's worker, then every command of the section, from a
    # folder of their own, as a checkout is (beside the steps' text.proto, `--schema
    # examples/ruby-text/text.proto` would load ./text.proto instead: both are "text.proto")
    shell.workdir = shell.workdir / "checkout"
    shell.workdir.mkdir()
    for name in ("adapters", "examples"):
        (shell.workdir / name).symlink_to(ROOT / name)
    (examples,) = [b for b in blocks if b.section == "From the shell" and _is_shell(b)]
    for command in re.findall(r"`(examples/ruby-text/\w+\.sh [^`]*)`", text):
        shell.run(command)  # the example worker, as the section's text says to start it
    assert shell.background, "the README no longer says how to start the example's worker"
    shell.wait_for_worker("WordFrequencies", shell.background[-1][1])
    outputs = {command: shell.run(command) for command in commands(examples)}
    by_word = {c.split()[1] if c.startswith("bridge ") else c: out for c, out in outputs.items()}
    assert by_word["--version"].startswith("bridge ")
    slug = next(out for c, out in outputs.items() if "Slugify" in c)
    assert json.loads(slug) == {"slug": "hello-world"}
    frequencies = next(out for c, out in outputs.items() if "WordFrequencies" in c)
    items = [json.loads(line) for line in frequencies.splitlines()]
    assert len(items) >= 1, frequencies  # a stream: one JSON line per item
    status = json.loads(by_word["status"])
    jobs = json.loads(by_word["jobs"])
    assert status and jobs is not None
