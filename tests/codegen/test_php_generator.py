"""The PHP generator: imported files generated and loadable, text-safe descriptor metadata (the same
bytes as protoc's), comments that cannot break out of PHPDoc, and every rename pinned by goldens."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from bridge.codegen import get_emitter, write_files
from bridge.codegen.php.emitter import text_safe_metadata
from bridge.codegen.protoc import run_protoc
from bridge.schema import load

REPO = Path(__file__).resolve().parents[2]
CHAIN = REPO / "tests" / "schema" / "protos" / "chain"
PROTOS = Path(__file__).resolve().parent / "protos"
GOLDEN = Path(__file__).resolve().parent / "golden" / "php"
#: BRIDGE_UPDATE_GOLDEN=1 rewrites the golden files from the current generator instead of comparing.
UPDATE = os.environ.get("BRIDGE_UPDATE_GOLDEN") == "1"

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(shutil.which("php") is None, reason="php not installed"),
]

# Prints the bytes a metadata class hands protobuf's descriptor pool, without protobuf.
_FAKE_POOL = r"""<?php
namespace Google\Protobuf\Internal;
final class DescriptorPool {
    public static function getGeneratedPool(): self { return new self(); }
    public function internalAddGeneratedFile(string $data, bool $merge): void {
        echo bin2hex($data), "\n";
    }
}
spl_autoload_register(static function (string $class): void {
    $file = $GLOBALS['argv'][1] . '/' . str_replace('\\', '/', $class) . '.php';
    if (is_file($file)) {
        require $file;
    } else {
        class_alias(NoMetadata::class, $class);  // google/protobuf/*: protobuf's own
    }
});
final class NoMetadata {
    public static function initOnce(): void {}
}
$class = $argv[2];
$class::initOnce();
"""


def _php(*args: str | Path, cwd: Path | None = None) -> str:
    proc = subprocess.run(["php", *map(str, args)], capture_output=True, text=True, timeout=60,
                          check=False, cwd=cwd)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def _lint(files: list[Path]) -> None:
    for path in files:
        assert "No syntax errors" in _php("-l", path), path


@pytest.fixture(scope="module")
def chain_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("php-chain")
    schema = load([CHAIN / "acme/ledger/ledger.proto"], [CHAIN], include_imports=True)
    write_files(get_emitter("php").generate(schema, {}), out)
    return out


def test_imported_files_are_generated_and_load(chain_out: Path, tmp_path: Path) -> None:
    files = sorted(chain_out.rglob("*.php"))
    names = {p.relative_to(chain_out).as_posix() for p in files}
    assert {"Acme/Common/Money.php", "Acme/Common/AccountId.php", "Acme/Common/PBEmpty.php",
            "Acme/Common/AccountsInterface.php", "GPBMetadata/Acme/Common/Money.php",
            "Acme/Ledger/V1/LedgerInterface.php", "autoload.php"} <= names
    _lint(files)
    script = tmp_path / "use.php"
    script.write_text(
        "<?php\n"
        f"require '{REPO}/adapters/php/autoload.php';\n"
        f"require '{chain_out}/autoload.php';\n"
        "$p = new Acme\\Ledger\\V1\\Posting([\n"
        "    'account' => new Acme\\Common\\AccountId(['value' => 'acc-1']),\n"
        "    'amount' => new Acme\\Common\\Money(['currency' => 'EUR', 'units' => 12,\n"
        "        'at' => new Google\\Protobuf\\Timestamp(['seconds' => 5])]),\n"
        "]);\n"
        "$back = new Acme\\Ledger\\V1\\Posting();\n"
        "$back->mergeFromString($p->serializeToString());\n"
        "echo $back->getAccount()->getValue(), ' ',\n"
        "    $back->getAmount()->getAt()->getSeconds(), ' ',\n"
        "    interface_exists(Acme\\Common\\AccountsInterface::class) ? 'yes' : 'no', \"\\n\";\n"
    )
    assert _php(script) == "acc-1 5 yes\n"


def test_metadata_is_ascii_and_holds_protocs_bytes(chain_out: Path, tmp_path: Path) -> None:
    schema = load([CHAIN / "acme/ledger/ledger.proto"], [CHAIN], include_imports=True)
    raw = {
        f.path: f.data()
        for f in run_protoc(schema.sanitized_descriptor_set(), [f.name for f in schema.files],
                            ["--php_out"])
        if f.path.startswith("GPBMetadata/")
    }
    assert len(raw) == 3
    assert any(any(b >= 0x80 or b < 0x09 for b in data) for data in raw.values())  # binary
    pool = tmp_path / "pool.php"
    pool.write_text(_FAKE_POOL)
    for path, data in raw.items():
        (tmp_path / "raw" / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "raw" / path).write_bytes(data)
    for path, data in raw.items():
        safe = (chain_out / path).read_bytes()
        assert safe == text_safe_metadata(data)
        assert all(0x20 <= b < 0x7F or b == 0x0A for b in safe), path  # printable ASCII
        cls = path[: -len(".php")].replace("/", "\\")
        assert _php(pool, chain_out, cls) == _php(pool, tmp_path / "raw", cls), path


def test_bare_methods_register_with_their_encoding(tmp_path: Path) -> None:
    """The interop schema's Bare service (wire contract, section 8): every rpc goes to
    ``Method::bare()`` with its encoding, so the runtime serves its jobs without the envelope;
    the Interop service next to it keeps ``Method::unary()``."""
    schema = load([REPO / "schemas/interop/v1/interop.proto"], [REPO / "schemas"])
    write_files(get_emitter("php").generate(schema, {}), tmp_path)
    folder = tmp_path / "Bridge" / "Interop" / "V1"
    generated = folder / "BareRegistration.php"
    golden = GOLDEN / "bare" / "BareRegistration.php"
    if UPDATE:
        golden.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(generated, golden)
    assert golden.is_file(), f"no golden file {golden}; run with BRIDGE_UPDATE_GOLDEN=1"
    assert generated.read_text() == golden.read_text(), (
        f"{generated} differs from {golden}; if intended, regenerate with "
        "BRIDGE_UPDATE_GOLDEN=1 python3 -m pytest tests/codegen and review the diff"
    )
    _lint([generated])
    text = generated.read_text()
    bare = "addMethod(\\Bridge\\Runtime\\Method::bare("
    assert text.count(bare) == 11
    assert "\\Bridge\\V1\\Encoding::RAW," in text and "\\Bridge\\V1\\Encoding::MSGPACK," in text
    assert bare not in (folder / "InteropRegistration.php").read_text()
    # Loaded by PHP: the registered methods say bare and their encoding.
    script = tmp_path / "register.php"
    script.write_text(
        "<?php\n"
        f"require '{REPO}/adapters/php/autoload.php';\n"
        f"require '{tmp_path}/autoload.php';\n"
        "$worker = new Bridge\\Runtime\\Worker('127.0.0.1:1');\n"
        "$impl = new class extends Bridge\\Interop\\V1\\BareBase {};\n"
        "Bridge\\Interop\\V1\\BareRegistration::register($worker, $impl);\n"
        "foreach ($worker->dispatcher()->methods() as $name => $m) {\n"
        "    echo $name, ' ', $m->bare ? 'bare' : 'enveloped', ' ', $m->encoding, \"\\n\";\n"
        "}\n"
    )
    lines = _php(script).splitlines()
    assert "interop_bare_echo_json bare 3" in lines
    assert "interop_bare_reverse bare 4" in lines
    assert "interop_bare_echo_msgpack bare 2" in lines
    assert "interop_bare_echo_protobuf bare 1" in lines
    assert len(lines) == 11
