"""The Java emitter on schemas that try to break it, compiled with javac against the runtime jar.

* Every schema string and comment it copies (function names, rpc and service comments, the file
  name) is escaped: the hostile schemas (tests/codegen/protos/hostile.proto and
  java_naming/hostile_java.proto: ``*/``, ``\\u002a/``, ``\\uZZZZ``, ``@deprecated``, ``{@code``,
  backslashes, control characters, non-ASCII) compile, the emitter's files as US-ASCII and through
  javac's doclint, function names read back exactly from the compiled classes, and the comments
  read back from the Javadoc. The emitter's files are pinned by goldens (tests/codegen/golden/java).
* Every rename listed in adapters/java/README.md ("Naming") is pinned: the classes and accessors
  protoc declares for java_naming/{renames,multi}.proto, checked against a golden list and used by
  a Java program; every name Java cannot take is refused with file:line:column.

Regenerate goldens with BRIDGE_UPDATE_GOLDEN=1 and review the diff."""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bridge.codegen import get_emitter, write_files
from bridge.codegen.base import CodegenError
from bridge.codegen.java.naming import java_string, javadoc, javadoc_text
from bridge.schema import load

REPO = Path(__file__).resolve().parents[2]
PROTOS = Path(__file__).resolve().parent / "protos"
NAMING = PROTOS / "java_naming"
GOLDEN = Path(__file__).resolve().parent / "golden" / "java"
UPDATE = os.environ.get("BRIDGE_UPDATE_GOLDEN") == "1"
ODD_FUNCTION = "odd \"quoted\" 'single' back\\\\slash $x {$y} #{z} */ ?>"

pytestmark = [
    pytest.mark.timeout(420),
    pytest.mark.skipif(
        not all(shutil.which(tool) for tool in ("javac", "java", "mvn", "protoc")),
        reason="javac, java, mvn and protoc are needed (scripts/install-deps.sh)",
    ),
]

# Texts no Java source may hold as they are.
HOSTILE_TEXTS = [
    "".join(chr(c) for c in range(0x80)),
    "*/ /* /** */",
    "\\u002a/ \\u000a \\u000d \\u0022 \\uZZZZ \\\\u0041 \\",
    "{@code x} @deprecated {@link Y} @ <b>b</b> &amp; & </p> {unbalanced",
    "é 中文 \u02bbokina 🎉 \u2028 \u2029 \u00a0 \ufeff",
]


@pytest.fixture(scope="module")
def classpath(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The runtime jar and its dependencies, built once (adapters/java/scripts/build-runtime.sh)."""
    out = tmp_path_factory.mktemp("java-runtime")
    proc = subprocess.run(
        [str(REPO / "adapters" / "java" / "scripts" / "build-runtime.sh"), str(out)],
        capture_output=True, text=True, timeout=400, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-5000:]
    return (out / "classpath").read_text().strip()


def javac(sources: list[Path], classpath: str, out: Path, *flags: str) -> None:
    proc = subprocess.run(
        ["javac", "--release", "17", "-d", str(out), "-cp", classpath, *flags,
         *map(str, sources)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]


def java(main: str, classpath: str, *args: str) -> str:
    proc = subprocess.run(["java", "-cp", classpath, main, *args], capture_output=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-3000:]
    return proc.stdout.decode("utf-8")


def compile_generated(gen: Path, classpath: str, out: Path) -> None:
    """protoc's classes (made ASCII by the emitter); then the emitter's own files, every lint and
    doclint check but missing docs an error. Both as US-ASCII: no generated file needs
    ``-encoding UTF-8``."""
    ours = [p for p in gen.rglob("*.java") if p.name.endswith(("Service.java", "Bridge.java"))]
    theirs = [p for p in gen.rglob("*.java") if p not in ours]
    assert all(p.read_bytes().isascii() for p in theirs)
    javac(theirs, classpath, out, "-encoding", "US-ASCII", "-nowarn")
    if ours:
        javac(ours, f"{out}:{classpath}", out, "-encoding", "US-ASCII", "-Xlint:all",
              "-Xdoclint:all,-missing", "-Werror")


def check_golden(generated: Path, golden: Path) -> None:
    if UPDATE:
        golden.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(generated, golden)
    assert golden.is_file(), f"no golden file {golden}; run with BRIDGE_UPDATE_GOLDEN=1"
    assert generated.read_text() == golden.read_text(), (
        f"{generated.name} differs from {golden}; if intended, regenerate with "
        "BRIDGE_UPDATE_GOLDEN=1 python3 -m pytest tests/codegen/test_java_codegen.py"
    )


def javadoc_blocks(source: str) -> list[str]:
    """The text of each Javadoc block of ``source``, entities decoded."""
    blocks = []
    for block in re.findall(r"/\*\*(.*?)\*/", source, re.S):
        lines = [re.sub(r"^\s*\* ?", "", line) for line in block.strip().splitlines()]
        blocks.append(html.unescape("\n".join(lines)))
    return blocks


# ----------------------------------------------------------------------------------- escaping


def test_string_literals_read_back_exactly(classpath: str, tmp_path: Path) -> None:
    texts = [*HOSTILE_TEXTS, "line\nbreak\r\n", "\x00\x7f"]
    literals = ",\n        ".join(java_string(t) for t in texts)
    assert all(c.isascii() for c in literals)
    source = tmp_path / "Literals.java"
    source.write_text(
        "public final class Literals {\n"
        f"    static final String[] TEXTS = {{\n        {literals}\n    }};\n"
        "    public static void main(String[] args) {\n"
        "        for (String text : TEXTS) {\n"
        "            StringBuilder out = new StringBuilder();\n"
        "            text.codePoints()\n"
        "                .forEach(c -> out.append(Integer.toHexString(c)).append(' '));\n"
        "            System.out.println(out.toString().trim());\n"
        "        }\n"
        "    }\n"
        "}\n"
    )
    javac([source], ".", tmp_path, "-encoding", "US-ASCII")
    got = java("Literals", str(tmp_path)).splitlines()
    assert got == [" ".join(f"{ord(c):x}" for c in t) for t in texts]


def test_javadoc_text_reads_back_and_passes_doclint(classpath: str, tmp_path: Path) -> None:
    for text in HOSTILE_TEXTS:
        escaped = javadoc_text(text)
        assert escaped.isascii()
        assert "*/" not in escaped and "/*" not in escaped
        assert "\\" not in escaped and "@" not in escaped and "<" not in escaped
        if text.isprintable():
            assert html.unescape(escaped) == text
    body = "\n".join(
        f"    /**\n{chr(10).join(javadoc(text, '    '))}\n     */\n    public static int f{i};"
        for i, text in enumerate(HOSTILE_TEXTS[1:])
    )
    source = tmp_path / "Docs.java"
    source.write_text(
        f"/** Docs. */\npublic final class Docs {{\n{body}\n    private Docs() {{}}\n}}\n"
    )
    javac([source], ".", tmp_path, "-encoding", "US-ASCII", "-Xdoclint:all,-missing", "-Werror")
    assert javadoc_blocks(source.read_text())[1:] == HOSTILE_TEXTS[1:]


@pytest.mark.parametrize(
    ("proto", "include", "package", "service"),
    [
        (PROTOS / "hostile.proto", PROTOS, "hostile/v1", "Hostile"),
        (NAMING / "hostile_java.proto", NAMING, "hostile/java/v1", "Notes"),
    ],
    ids=["hostile", "hostile_java"],
)
def test_hostile_schema_compiles_and_reads_back(
    classpath: str, tmp_path: Path, proto: Path, include: Path, package: str, service: str
) -> None:
    schema = load([proto], [include])
    gen = tmp_path / "gen"
    write_files(get_emitter("java").generate(schema, {}), gen)
    for name in (f"{service}Service.java", f"{service}Bridge.java"):
        check_golden(gen / package / name, GOLDEN / proto.stem / name)
    classes = tmp_path / "classes"
    compile_generated(gen, classpath, classes)

    # Every function name, as the compiled Rpc constants hold it.
    methods = schema.service(service).methods
    bridge = f"{package.replace('/', '.')}.{service}Bridge"
    check = tmp_path / "PrintFunctions.java"
    check.write_text(
        "public final class PrintFunctions {\n"
        "    public static void main(String[] args) throws Exception {\n"
        f"        for (java.lang.reflect.Field f : {bridge}.class.getFields()) {{\n"
        "            if (f.getType() == dev.bridge.runtime.Rpc.class) {\n"
        "                String name =\n"
        "                        ((dev.bridge.runtime.Rpc<?, ?>) f.get(null)).functionName();\n"
        "                System.out.print(f.getName() + \"=\" + name.codePoints()\n"
        "                        .mapToObj(Integer::toHexString)\n"
        "                        .collect(java.util.stream.Collectors.joining(\",\")) + \"\\n\");\n"
        "            }\n"
        "        }\n"
        "    }\n"
        "}\n"
    )
    javac([check], f"{classes}:{classpath}", classes, "-encoding", "US-ASCII")
    printed = dict(line.split("=", 1) for line in
                   java("PrintFunctions", f"{classes}:{classpath}").splitlines())
    got = {k: "".join(chr(int(c, 16)) for c in v.split(",")) for k, v in printed.items()}
    assert sorted(got.values()) == sorted(m.function_name for m in methods)
    if proto.name == "hostile.proto":
        assert got["ODD"] == ODD_FUNCTION

    # Every comment, as the Javadoc holds it.
    interface = (gen / package / f"{service}Service.java").read_text()
    assert interface.isascii()
    blocks = javadoc_blocks(interface)
    comment = schema.service(service).comment
    assert blocks[0].startswith(comment) if comment else True
    for method, block in zip(methods, blocks[1:], strict=True):
        assert block.startswith(method.comment)
        shown = re.sub(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]", lambda m: f"\\x{ord(m[0]):02x}",
                       method.function_name)  # control characters are shown as \xNN
        assert block.endswith(f"Gearman function <code>{shown}</code>.")


def test_file_name_stays_on_its_comment_line(tmp_path: Path) -> None:
    weird = tmp_path / "we\\u000aird é.proto"
    weird.write_text('syntax = "proto3";\npackage w;\nmessage M {}\n'
                     "service S { rpc Go(M) returns (M); }\n")
    files = get_emitter("java").generate(load([weird], [tmp_path]), {})
    header = next(f for f in files if f.path == "w/SService.java").data().decode()
    assert header.splitlines()[0] == (
        "// Generated by `bridge generate --lang java` from "
        "we\\\\u000aird \\u00e9.proto. Do not edit."
    )


# ------------------------------------------------------------------------------------- naming


def test_every_rename_is_pinned_and_compiles(classpath: str, tmp_path: Path) -> None:
    schema = load([NAMING / "renames.proto", NAMING / "multi.proto"], [NAMING])
    gen = tmp_path / "gen"
    write_files(get_emitter("java").generate(schema, {}), gen)
    for folder, names in (("naming/java/v1", ("KeywordsService", "KeywordsBridge")),
                          ("naming/java/multi/gen", ("MultiService", "MultiBridge"))):
        for name in names:
            check_golden(gen / folder / f"{name}.java", GOLDEN / "naming" / f"{name}.java")
    classes = tmp_path / "classes"
    compile_generated(gen, classpath, classes)

    # What protoc and the emitter declare: classes, the renamed accessors, rpc methods.
    declared = sorted(
        p.relative_to(classes).with_suffix("").as_posix()
        for p in classes.rglob("*.class")
        if not re.search(r"\$\d+$|\$Builder$|OrBuilder$", p.stem)
    )
    accessors = subprocess.run(
        ["javap", "-public", "-cp", str(classes), "naming.java.v1.RenamesOuterClass$Renames",
         "naming.java.v1.KeywordsService"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    methods = sorted(set(re.findall(r" ((?:get|has)\w+|\w+_|getClass|whoAmI)\(", accessors)))
    listing = tmp_path / "declarations.txt"
    listing.write_text("\n".join([*declared, "", *methods]) + "\n")
    check_golden(listing, GOLDEN / "naming" / "declarations.txt")

    # Used as the README says; the java.lang names protoc leaves unqualified are written in full,
    # so a message String does not break Builder.get<Field>Bytes() (ClassCastException before).
    check = tmp_path / "UseNames.java"
    check.write_text(
        "import naming.java.v1.RenamesOuterClass;\n"
        "public final class UseNames {\n"
        "    public static void main(java.lang.String[] args) {\n"
        "        RenamesOuterClass.Renames r = RenamesOuterClass.Renames.newBuilder()\n"
        "                .setClass_(\"c\").setDefault(\"d\").setImport(\"i\").setInt(\"n\")\n"
        "                .addFoo8(\"f\").setFooCount9(9)\n"
        "                .setKind(RenamesOuterClass.Renames.Kind.CLASS)\n"
        "                .build();\n"
        "        System.out.println(r.getClass_() + r.getDefault() + r.getImport() + r.getInt()\n"
        "                + r.getFoo8Count() + r.getFooCount9() + r.getKind()\n"
        "                + \" \" + r.getClass().getSimpleName());\n"
        "        System.out.println(RenamesOuterClass.Class.newBuilder().setName(\"outer\")\n"
        "                .getNameBytes().toStringUtf8());\n"
        "        System.out.println(naming.java.multi.gen.Class.newBuilder().setName(\"multi\")\n"
        "                .getNameBytes().toStringUtf8());\n"
        "    }\n"
        "}\n"
    )
    javac([check], f"{classes}:{classpath}", classes, "-encoding", "US-ASCII")
    assert java("UseNames", f"{classes}:{classpath}").splitlines() == [
        "cdin19CLASS Renames", "outer", "multi",
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("package a.class.b;\nmessage M {}", r"x\.proto:2:1: package 'a\.class\.b': 'class'"),
        ('package a;\noption java_package = "com.int";\nmessage M {}',
         r"x\.proto:3:1: java_package 'com\.int': 'int'"),
        ('package a;\noption java_outer_classname = "M";\nmessage M {}',
         r"x\.proto:3:1: java_outer_classname 'M' is a type or service of the file"),
        ('package a;\noption java_outer_classname = "new";\nmessage M {}',
         r"x\.proto:3:1: java_outer_classname 'new' is no Java class name"),
        ("package a;\nmessage int {}", r"x\.proto:3:1: a\.int: the name 'int' is a Java keyword"),
        ("package a;\nmessage java {}", r"x\.proto:3:1: a\.java: the name 'java'"),
        ("package a;\nmessage com {}", r"x\.proto:3:1: a\.com: the name 'com'"),
        ("package a;\nmessage Builder {}", r"x\.proto:3:1: a\.Builder: the name 'Builder'"),
        ("package a;\nmessage M {\n  message M {}\n}",
         r"x\.proto:4:3: a\.M\.M: the name 'M' is the name of a type that encloses it"),
        ("package a;\nmessage M {\n  enum Builder { B = 0; }\n}", r"x\.proto:4:3: a\.M\.Builder"),
        ("package a;\nmessage M {}\nmessage MOrBuilder {}", r"x\.proto:4:1: a\.MOrBuilder"),
        ("package a;\nmessage M {\n  oneof kind { string s = 1; }\n  message KindCase {}\n}",
         r"x\.proto:3:1: a\.M: a nested type is named KindCase"),
        ("package a;\nenum E {\n  A = 0;\n  int = 1;\n}",
         r"x\.proto:3:1: enum value a\.E\.int is a Java keyword"),
        ("package a;\nenum E {\n  A = 0;\n  UNRECOGNIZED = 1;\n}",
         r"x\.proto:3:1: enum value a\.E\.UNRECOGNIZED"),
        ("package a;\nmessage M {\n  string descriptor = 1;\n}",
         r"x\.proto:3:1: field a\.M\.descriptor"),
        ("package a;\nmessage M {\n  string default_instance = 1;\n}",
         r"x\.proto:3:1: field a\.M\.default_instance"),
        ("package a;\nmessage M {\n  string Descriptor = 1;\n}",
         r"x\.proto:3:1: field a\.M\.Descriptor"),
        ("package a;\nmessage M {\n  repeated int32 bitField0 = 1;\n}",
         r"x\.proto:3:1: field a\.M\.bitField0"),
    ],
)
def test_what_java_cannot_take_is_refused_with_file_line(
    tmp_path: Path, body: str, message: str
) -> None:
    (tmp_path / "x.proto").write_text(f'syntax = "proto3";\n{body}\n')
    schema = load([tmp_path / "x.proto"], [tmp_path], include_imports=True)
    with pytest.raises(CodegenError, match=f"^{message}"):
        get_emitter("java").generate(schema, {})


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"x.proto": "package a;\nmessage M {}\nservice Foo { rpc Go(M) returns (M); }\n"
                     "service FooService { rpc Go(M) returns (M); }"},
         r"x\.proto:5:1: service a\.FooService needs the Java class a\.FooService, which "
         r"service a\.Foo generates too"),
        ({"x.proto": "package a;\nmessage M {}\n"
                     "service S {\n  rpc Echo(M) returns (M);\n  rpc echo(M) returns (M);\n}"},
         r"x\.proto:4:1: service a\.S: rpc names clash once written as Java constants"),
        ({"x.proto": "package a;\nmessage M {}\n"
                     "service S {\n  rpc Import(M) returns (M);\n  rpc import_(M) returns (M);\n}"},
         r"x\.proto:4:1: service a\.S: rpc names clash once written as Java method names"),
        ({"x.proto": 'package a;\nimport "y.proto";\noption java_package = "j";\n'
                     "service Bar { rpc Go(b.BarService) returns (b.BarService); }",
          "y.proto": 'package b;\noption java_package = "j";\noption java_multiple_files = true;\n'
                     "message BarService {}"},
         r"x\.proto:5:1: service a\.Bar needs the Java class j\.BarService, which protoc"),
        ({"builder.proto": "package a;\nmessage M {}"},
         r"builder\.proto:1:1: the file's Java outer class would be Builder"),
        ({"m_or_builder.proto": "package a;\noption java_multiple_files = true;\nmessage M {}"},
         r"m_or_builder\.proto:1:1: the file's Java outer class would be MOrBuilder"),
        ({"x.proto": 'package a;\noption java_outer_classname = "KindCase";\n'
                     "message M { oneof kind { string s = 1; } }"},
         r"x\.proto:3:1: the file's Java outer class would be KindCase"),
    ],
    ids=["service-names", "constants", "methods", "across-files", "outer-builder",
         "outer-orbuilder", "outer-oneof-case"],
)
def test_classes_and_members_that_would_clash_are_refused_with_file_line(
    tmp_path: Path, files: dict[str, str], message: str
) -> None:
    for name, body in files.items():
        (tmp_path / name).write_text(f'syntax = "proto3";\n{body}\n')
    schema = load([tmp_path / next(iter(files))], [tmp_path], include_imports=True)
    with pytest.raises(CodegenError, match=f"^{message}"):
        get_emitter("java").generate(schema, {})


def test_qualifying_protoc_code_leaves_string_literals_alone(
    classpath: str, tmp_path: Path
) -> None:
    """The shapes written in full (throw new NullPointerException(, @SuppressWarnings(, ...) as a
    default value: the default and the embedded descriptor keep them as written."""
    text = r"throw new RuntimeException( @SuppressWarnings( if (ref instanceof String) {"
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    (tmp_path / "d.proto").write_text(
        'syntax = "proto2";\npackage d;\n'
        f'message String {{ optional string v = 1 [default = "{escaped}"]; }}\n'
        "message NullPointerException { optional String s = 1; }\n"
        "message RuntimeException { map<string, String> m = 1; }\n"
        "message SuppressWarnings { optional bytes b = 1; }\n"
    )
    gen = tmp_path / "gen"
    write_files(get_emitter("java").generate(load([tmp_path / "d.proto"], [tmp_path]), {}), gen)
    classes = tmp_path / "classes"
    compile_generated(gen, classpath, classes)
    check = tmp_path / "Defaults.java"
    check.write_text(
        "public final class Defaults {\n"
        "    public static void main(java.lang.String[] args) {\n"
        "        System.out.println(d.D.String.getDefaultInstance().getV());\n"
        "        System.out.println(d.D.String.getDescriptor().findFieldByName(\"v\")"
        ".getDefaultValue());\n"
        "    }\n"
        "}\n"
    )
    javac([check], f"{classes}:{classpath}", classes, "-encoding", "US-ASCII")
    assert java("Defaults", f"{classes}:{classpath}").splitlines() == [text, text]
