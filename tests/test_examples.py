"""The four examples end to end, the way the README's demo runs them (examples/demo.py): build the
worker with the example's build.sh, generate the Python stubs, start run.sh against a real gearmand,
run client.py, stop the worker with SIGTERM (it must exit 0). Then the demo's own command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bridge.testing import GearmandServer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
import demo  # noqa: E402  (examples/ is not a package)

# Lines each example's client must print: they show the foreign code really ran.
EXPECTED = {
    "c-checksum": [
        "zlib agrees: True",
        "changed at : offsets [2097152]",
    ],
    "php-invoice": [
        "Credit note: October overbi…    -1 x      €120.00 =     -€120.00",
        "Total    €1,439.78",
        "warning from PHP: line 3 (Credit note: October overbilling) has a negative",
        "total 1439.78 EUR, due 2026-12-26; HTML escapes the customer: True",
        "progress [(1, 3), (2, 3), (3, 3)]",
        "refused by PHP as expected: InvalidArgument: unsupported currency 'XXX'",
    ],
    "ruby-text": [
        "slugify      : creme-brulee-a-l-ete",
        "titleize     : The Lord of the Rings",
        "top words    : the=6, ruby=3, words=3, are=2",
    ],
    "java-loans": [
        # 250000 EUR at 3.85 % over 300 months; the last installment absorbs the rounding.
        "quote        : 1298.97 EUR/month for 300 months",
        "yen quote    : 84884 JPY/month",
        "300 installments streamed, 300 progress reports",
        "owes 0.00",
        "InvalidArgument from java: principal is not a decimal number",
    ],
    "legacy-php": [
        # Python -> the unchanged pecl worker, typed: its JSON reply read as Queued (sync, asyncio)
        "queued by PHP: <",
        ", 2 recipients, ",
        "refused by PHP: Unknown: send_mail: invalid recipient address 'ann at example'",
        "asyncio: 20 mails queued at once, 20 distinct message ids",
        # an unchanged GearmanClient -> the typed Python worker: doNormal, JSON error, doBackground
        "subscribed bob@example.com to weekly (2 on the list)",
        "doNormal: GEARMAN_WORK_EXCEPTION",
        "refused: INVALID_ARGUMENT (code 3): not an e-mail address: 'bob at example'",
        "subscribed carol@example.com to weekly (2 on the list: bob has left)",
    ],
}


def test_every_example_has_expectations() -> None:
    assert sorted(e.name for e in demo.EXAMPLES) == sorted(EXPECTED)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("example", demo.EXAMPLES, ids=lambda e: e.name)
def test_example_end_to_end(
    example: demo.Example, gearmand: GearmandServer, tmp_path: Path
) -> None:
    output = demo.run_example(example, gearmand, tmp_path)
    for line in EXPECTED[example.name]:
        assert line in output, f"{example.name}: missing {line!r} in:\n{output}"


@pytest.mark.timeout(300)
def test_demo_command_runs_the_examples_it_is_asked_for(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py"), "--only", "ruby-text",
         "--build", str(tmp_path)],
        capture_output=True, text=True, timeout=280, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "=== Ruby: examples/ruby-text ===" in done.stdout
    assert "slugify      : creme-brulee-a-l-ete" in done.stdout
    assert "Done: Ruby answered typed Python calls through gearmand." in done.stdout
    assert "=== C:" not in done.stdout, "--only must leave the other examples out"


def test_the_legacy_php_code_knows_nothing_of_bridge() -> None:
    """examples/legacy-php shows UNCHANGED Gearman code: its PHP worker and client use pecl gearman
    and json_encode alone, never the bridge runtime or generated classes."""
    for script in ("send_mail_worker.php", "web_app.php"):
        text = (ROOT / "examples" / "legacy-php" / script).read_text()
        assert "Gearman" in text and "json_" in text
        for marker in ("require", "include", "Bridge\\", "adapters/php"):
            assert marker not in text, f"{script} uses {marker!r}"
