"""Schema comments and option strings that would break generated code if copied as they are
(``"``, ``\"\"\"``, ``*/``, ``\\``, ``#{}``, ``<?php``, ``?>``, ``$x``, non-ASCII): the Python and
PHP output is pinned by goldens, loads, and reads back the exact text."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.codegen import get_emitter, write_files
from bridge.schema import Schema, load

REPO = Path(__file__).resolve().parents[2]
PROTOS = Path(__file__).resolve().parent / "protos"
GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("BRIDGE_UPDATE_GOLDEN") == "1"
ODD_FUNCTION = "odd \"quoted\" 'single' back\\\\slash $x {$y} #{z} */ ?>"

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def schema() -> Schema:
    return load([PROTOS / "hostile.proto"], [PROTOS])


def _check_golden(generated: Path, golden: Path) -> None:
    if UPDATE:
        golden.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(generated, golden)
    assert golden.is_file(), f"no golden file {golden}; run with BRIDGE_UPDATE_GOLDEN=1"
    assert generated.read_text() == golden.read_text(), (
        f"{generated.name} differs from {golden}; if intended, regenerate with "
        "BRIDGE_UPDATE_GOLDEN=1 python3 -m pytest tests/codegen and review the diff"
    )


def test_schema_really_is_hostile(schema: Schema) -> None:
    service = schema.service("Hostile")
    assert service.comment.endswith('second line "')
    by_name = {m.name: m for m in service.methods}
    assert by_name["Echo"].comment == 'Says "hi"'
    assert by_name["Stream"].comment == '"""'
    assert by_name["Odd"].comment.endswith("#{1} \\")
    assert by_name["Odd"].function_name == ODD_FUNCTION
    assert "中文" in schema.message("hostile.v1.Payload").comment


def test_python_module_loads_and_reads_back_every_comment(
    schema: Schema, tmp_path: Path
) -> None:
    write_files(get_emitter("python").generate(schema, {}), tmp_path)
    _check_golden(tmp_path / "hostile_bridge.py", GOLDEN / "python" / "hostile_bridge.py")
    code = (
        "import json, hostile_bridge as h\n"
        "print(json.dumps({\n"
        "    'service': h.HostileServicer.__doc__,\n"
        "    'echo': h.HostileClient.echo.__doc__, 'stream': h.HostileAsyncClient.stream.__doc__,\n"
        "    'odd': h.HostileServicer.odd.__doc__, 'function': h._HOSTILE_ODD.function,\n"
        "}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False,
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])},
    )
    assert proc.returncode == 0, proc.stderr
    docs = json.loads(proc.stdout)
    methods = {m.name: m for m in schema.service("Hostile").methods}
    assert docs["echo"] == methods["Echo"].comment
    assert docs["stream"] == methods["Stream"].comment
    assert docs["odd"] == methods["Odd"].comment
    assert docs["function"] == ODD_FUNCTION
    service_doc = "\n".join(line.strip() for line in docs["service"].splitlines())
    assert schema.service("Hostile").comment in service_doc


@pytest.mark.skipif(shutil.which("php") is None, reason="php not installed")
def test_php_classes_load_and_keep_the_function_name(schema: Schema, tmp_path: Path) -> None:
    out = tmp_path / "gen"
    write_files(get_emitter("php").generate(schema, {}), out)
    folder = out / "Hostile" / "V1"
    for name in ("HostileInterface.php", "HostileBase.php", "HostileRegistration.php"):
        _check_golden(folder / name, GOLDEN / "php" / "hostile" / name)
    for path in sorted(out.rglob("*.php")):
        lint = subprocess.run(["php", "-l", str(path)], capture_output=True, text=True,
                              timeout=30, check=False)
        assert lint.returncode == 0, lint.stdout + lint.stderr
    script = tmp_path / "check.php"
    script.write_text(
        "<?php\n"
        f"require '{REPO}/adapters/php/autoload.php';\n"
        f"require '{out}/autoload.php';\n"
        "$i = new ReflectionClass(Hostile\\V1\\HostileInterface::class);\n"
        "echo json_encode([\n"
        "  'methods' => array_map(fn($m) => $m->getName(), $i->getMethods()),\n"
        "  'functions' => Hostile\\V1\\HostileRegistration::FUNCTIONS,\n"
        "  'odd_doc' => $i->getMethod('odd')->getDocComment(),\n"
        "  'base' => (new ReflectionClass(Hostile\\V1\\HostileBase::class))->isAbstract(),\n"
        "]);\n"
    )
    proc = subprocess.run(["php", str(script)], capture_output=True, text=True, timeout=30,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    assert result["methods"] == ["echo", "stream", "odd"]
    assert result["functions"]["odd"] == ODD_FUNCTION
    assert result["base"] is True
    assert "*&#47; <?php echo 1; ?> #{1} \\" in result["odd_doc"]
