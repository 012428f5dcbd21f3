"""An rpc constant named like a class its initializer names: file ``b/v1/b.proto``'s outer class
is ``B`` and ``rpc B``'s constant is ``B`` too (likewise a default-package ``X`` and
java_multiple_files classes ``ID`` / ``SERVICE_NAME``). Java reads ``B.Item`` in an expression as
the variable first: javac failed (``illegal forward reference``, ``cannot find symbol variable
Item``). The generated ``<S>Bridge`` compiles and each constant holds the right prototypes."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from bridge.codegen import get_emitter, write_files
from bridge.schema import load

REPO = Path(__file__).resolve().parents[2]
PROTOS = Path(__file__).resolve().parent / "protos" / "java_shadow"

pytestmark = [
    pytest.mark.timeout(600),
    pytest.mark.skipif(
        not all(shutil.which(tool) for tool in ("javac", "java", "mvn", "protoc")),
        reason="javac, mvn and protoc are needed (scripts/install-deps.sh)",
    ),
]

_MAIN = """
public final class Check {
    public static void main(String[] args) {
        for (dev.bridge.runtime.Rpc<?, ?> rpc : java.util.List.of(
                b.v1.DupBridge.A, b.v1.DupBridge.B, b.v1.DupBridge.C, b.v1.DupBridge.D,
                SBridge.X, SBridge.ID, m.NamesBridge.ID)) {
            System.out.println(rpc.functionName() + " "
                + rpc.requestPrototype().getDescriptorForType().getFullName() + " "
                + rpc.replyPrototype().getDescriptorForType().getFullName());
        }
    }
}
"""


def test_rpc_constants_named_like_classes_compile_and_hold_the_right_types(
    tmp_path: Path,
) -> None:
    gen = tmp_path / "gen"
    schema = load([PROTOS / "b/v1/b.proto", PROTOS / "x.proto", PROTOS / "m/ids.proto"],
                  [PROTOS], include_imports=True)
    write_files(get_emitter("java").generate(schema, {}), gen)
    (gen / "Check.java").write_text(_MAIN)
    build = tmp_path / "rt"
    proc = subprocess.run(
        [str(REPO / "adapters" / "java" / "scripts" / "build-runtime.sh"), str(build)],
        capture_output=True, text=True, timeout=400, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-5000:]
    classpath = (build / "classpath").read_text().strip()
    proc = subprocess.run(
        ["javac", "--release", "17", "-encoding", "UTF-8", "-nowarn", "-d",
         str(tmp_path / "classes"), "-cp", classpath, *map(str, gen.rglob("*.java"))],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    proc = subprocess.run(
        ["java", "-cp", f"{tmp_path / 'classes'}:{classpath}", "Check"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines() == [
        "b.v1.Dup.A a.v1.Item b.v1.Item",
        "b.v1.Dup.B b.v1.Item a.v1.Item",
        "b.v1.Dup.C a.v1.Outer.Item b.v1.Outer_Item",
        "b.v1.Dup.D b.v1.Outer_Item a.v1.Outer.Item",
        "S.X Item Item",
        "S.Id Item Item",
        "m.Names.Id m.ID m.SERVICE_NAME",
    ]
