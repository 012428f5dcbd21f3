"""The bridge demo: Python calls functions written in C, PHP, Ruby and Java, as typed Python
functions, through one real gearmand; and an unchanged Gearman shop's PHP worker and PHP client
meet typed bridge code (examples/legacy-php).

For each example in examples/ it builds the worker (its ``build.sh``), generates the typed Python
stubs with ``bridge generate --lang python``, starts the worker (``run.sh``), runs the example's
``client.py`` against it (and any other client the example has) and stops the worker with SIGTERM.

    python3 examples/demo.py [--only c-checksum,ruby-text] [--build build/demo]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bridge import admin
from bridge.testing import GearmandError, GearmandServer

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Example:
    name: str  # the folder under examples/
    proto: str
    function: str  # a Gearman function the worker registers: ready once gearmand lists it
    language: str
    also_ready: tuple[str, ...] = ()  # more functions run.sh's workers register
    # Clients run after client.py, from the repository root; "{servers}" is gearmand's address.
    also_run: tuple[tuple[str, ...], ...] = ()


EXAMPLES = (
    Example("c-checksum", "checksum.proto", "checksum.v1.Checksum.Digest", "C"),
    Example("php-invoice", "invoice.proto", "billing.v1.Invoices.Render", "PHP"),
    Example("ruby-text", "text.proto", "textkit.v1.TextToolkit.Slugify", "Ruby"),
    Example("java-loans", "loans.proto", "examples.loans.v1.Loans.Quote", "Java"),
    Example("legacy-php", "mail.proto", "send_mail", "unchanged PHP",
            also_ready=("subscribe", "unsubscribe"),
            also_run=(("php", "examples/legacy-php/web_app.php", "{servers}"),)),
)
BUILD_TIMEOUT_S = 600
READY_TIMEOUT_S = 60


class DemoError(RuntimeError):
    """A step of the demo failed; the message says which and shows its output."""


def run(argv: list[str], what: str, timeout: float) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          check=False)
    if done.returncode != 0:
        raise DemoError(f"{what} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done.stdout


def stop(worker: subprocess.Popen[bytes]) -> int:
    """SIGTERM (the worker finishes its running job and exits), then its exit status."""
    worker.send_signal(signal.SIGTERM)
    try:
        return worker.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)  # the worker and any processes it forked
        worker.wait()
        raise DemoError(f"worker {worker.args!r} ignored SIGTERM for 60 s") from None


def run_example(example: Example, server: GearmandServer, build_root: Path) -> str:
    """Build the example's worker, generate its Python stubs, start the worker, run its client;
    return what the client printed. The worker's output goes to ``<build>/worker.log``."""
    folder = ROOT / "examples" / example.name
    build = build_root / example.name
    build.mkdir(parents=True, exist_ok=True)
    run([str(folder / "build.sh"), str(build)], f"building {example.name}", BUILD_TIMEOUT_S)
    stubs = build / "python"
    run([sys.executable, "-m", "bridge.cli", "generate", "--lang", "python", "-o", str(stubs),
         "-I", str(folder), str(folder / example.proto)], "generating the Python stubs", 120)
    with (build / "worker.log").open("wb") as log:
        worker = subprocess.Popen([str(folder / "run.sh"), str(build), server.address],
                                  stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                  start_new_session=True)
    try:
        for function in (example.function, *example.also_ready):
            server.wait_for_workers(function, timeout=READY_TIMEOUT_S, processes=[worker])
        output = run([sys.executable, str(folder / "client.py"), "--servers", server.address,
                      "--gen", str(stubs)], f"the {example.name} client", 120)
        for argv in example.also_run:
            command = [arg.format(servers=server.address) for arg in argv]
            output += f"--- {' '.join(command[:2])} ---\n"
            output += run(command, f"{' '.join(command[:2])}", 120)
    finally:
        code = stop(worker)
    if code != 0:
        raise DemoError(
            f"the {example.name} worker exited with {code}; see {build / 'worker.log'}"
        )
    return output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="comma-separated example folders (default: all)")
    parser.add_argument("--build", default=str(ROOT / "build" / "demo"), help="build folder")
    args = parser.parse_args()
    chosen = [e for e in EXAMPLES if not args.only or e.name in args.only.split(",")]
    if not chosen:
        raise SystemExit(f"--only: pick from {', '.join(e.name for e in EXAMPLES)}")
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    with GearmandServer() as server:
        print(f"gearmand {admin.version(server.address)} on {server.address}")
        for example in chosen:
            print(f"\n=== {example.language}: examples/{example.name} ===", flush=True)
            try:
                output = run_example(example, server, Path(args.build).resolve())
            except (DemoError, TimeoutError, GearmandError) as exc:
                raise SystemExit(f"demo: {exc}") from None
            print(output, end="", flush=True)
    languages = [e.language for e in chosen]
    named = " and ".join([", ".join(languages[:-1]), languages[-1]] if languages[1:] else languages)
    print(f"\nDone: {named} answered typed Python calls through gearmand.")
    if any(e.name == "legacy-php" for e in chosen):
        print("And an unchanged PHP GearmanClient called a typed Python worker.")


if __name__ == "__main__":
    main()
