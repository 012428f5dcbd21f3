"""The Java runtime installed with ``mvn install``, used outside the checkout (issue 16, part 1).

``mvn install`` builds adapters/java (its build output in a temporary folder, tests skipped: the
JUnit suite runs in tests/adapters/test_java_runtime.py) and installs ``dev.bridge:bridge-runtime``
into the user's local Maven repository (``~/.m2/repository``; the old copy of that one artifact is
removed first, so what is found there is this build). A Maven project in a temporary folder whose
pom declares only that dependency gets the runtime through its coordinates, offline (``mvn -o``):
a one-rpc worker over the shim made by the installed ``bridge generate --lang java``, whose
``main`` is the generated ``GreeterBridge.serve(args, ...)``. It runs against a real gearmand and
is called by the installed ``bridge call``.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from install_helpers import GREETER_PROTO, serve_and_call

from bridge.testing import GearmandServer

if TYPE_CHECKING:
    from tests.install.conftest import InstalledBridge

REPO = Path(__file__).resolve().parents[2]
ADAPTER = REPO / "adapters" / "java"
VERSION = "0.1.0"
LOCAL_REPOSITORY = Path.home() / ".m2" / "repository"
INSTALLED = LOCAL_REPOSITORY / "dev" / "bridge" / "bridge-runtime" / VERSION

PROTO = GREETER_PROTO.replace("package hello.v1;\n",
                              "package hello.v1;\noption java_multiple_files = true;\n")

POM = f"""\
<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>example</groupId>
  <artifactId>greeter-worker</artifactId>
  <version>1.0</version>
  <properties>
    <maven.compiler.release>17</maven.compiler.release>
    <project.build.sourceEncoding>UTF-8</project.build.sourceEncoding>
  </properties>
  <dependencies>
    <dependency>
      <groupId>dev.bridge</groupId>
      <artifactId>bridge-runtime</artifactId>
      <version>{VERSION}</version>
    </dependency>
  </dependencies>
  <build>
    <plugins>
      <plugin>
        <groupId>org.apache.maven.plugins</groupId>
        <artifactId>maven-compiler-plugin</artifactId>
        <version>3.13.0</version>
      </plugin>
      <plugin>
        <groupId>org.apache.maven.plugins</groupId>
        <artifactId>maven-surefire-plugin</artifactId>
        <version>3.5.4</version>
      </plugin>
      <plugin>
        <groupId>org.apache.maven.plugins</groupId>
        <artifactId>maven-jar-plugin</artifactId>
        <version>3.4.2</version>
      </plugin>
    </plugins>
  </build>
</project>
"""

WORKER = """\
package example;

import dev.bridge.runtime.BridgeException;
import dev.bridge.runtime.CallContext;
import dev.bridge.runtime.CommandLine;
import dev.bridge.v1.Code;
import hello.v1.GreetReply;
import hello.v1.GreetRequest;
import hello.v1.GreeterBridge;
import hello.v1.GreeterService;

public final class Main implements GreeterService {
    @Override
    public GreetReply greet(GreetRequest request, CallContext context) {
        if (request.getName().isEmpty()) {
            throw new BridgeException(Code.INVALID_ARGUMENT, "name is empty");
        }
        return GreetReply.newBuilder().setGreeting("hello, " + request.getName())
                .setTraceId(context.traceId().orElse(""))
                .setRuntime(CommandLine.class.getProtectionDomain().getCodeSource().getLocation().getPath())
                .build();
    }

    public static void main(String[] args) throws InterruptedException {
        GreeterBridge.serve(args, new Main());
    }
}
"""


def _mvn(installed_bridge: InstalledBridge, cwd: Path, *args: str | Path) -> None:
    installed_bridge.run("mvn", "-B", "-q", *args, cwd=cwd, timeout=400)


@pytest.fixture(scope="module")
def java_home(installed_bridge: InstalledBridge,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """The worker project outside the checkout, packaged; and its runtime classpath."""
    for tool in ("mvn", "java", "protoc"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is needed: run scripts/install-deps.sh")
    home = tmp_path_factory.mktemp("java-install")
    shutil.rmtree(INSTALLED, ignore_errors=True)
    _mvn(installed_bridge, home, "-f", ADAPTER / "pom.xml",
         f"-Dbridge.target={home / 'runtime-build'}", "-Dmaven.test.skip=true", "install")
    jar = INSTALLED / f"bridge-runtime-{VERSION}.jar"
    assert jar.is_file(), sorted(INSTALLED.parent.iterdir())

    project = home / "greeter-worker"
    (project / "src" / "main" / "java" / "example").mkdir(parents=True)
    (project / "pom.xml").write_text(POM)
    (project / "hello.proto").write_text(PROTO)
    installed_bridge.run(installed_bridge.bridge, "generate", "--lang", "java",
                         "-o", "src/main/java", "-I", ".", "hello.proto", cwd=project)
    assert (project / "src/main/java/hello/v1/GreeterBridge.java").is_file()
    (project / "src/main/java/example/Main.java").write_text(WORKER)
    # Offline: every artifact comes from the local repository, the runtime by its coordinates.
    _mvn(installed_bridge, project, "-o", "package",
         "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:build-classpath",
         "-Dmdep.outputFile=classpath.txt", "-DincludeScope=runtime")
    classpath = (project / "classpath.txt").read_text().strip()
    entries = [Path(p) for p in classpath.split(":")]
    assert INSTALLED / f"bridge-runtime-{VERSION}.jar" in entries, entries
    assert not any(p.is_relative_to(REPO) for p in entries), entries
    yield project, f"{project / 'target' / 'classes'}:{classpath}"


def _java(installed_bridge: InstalledBridge, project: Path, classpath: str,
          *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["java", "-cp", classpath, "example.Main", *args], cwd=project,
                          env=installed_bridge.env(), capture_output=True, text=True, timeout=60,
                          check=False)


def test_the_installed_worker_command_line(installed_bridge: InstalledBridge,
                                           java_home: tuple[Path, str]) -> None:
    project, classpath = java_home
    done = _java(installed_bridge, project, classpath, "--help")
    assert (done.returncode, done.stderr) == (0, ""), done
    assert done.stdout.startswith("usage: Main [options]"), done.stdout
    assert "--log-level" in done.stdout and "BRIDGE_SERVERS" in done.stdout
    done = _java(installed_bridge, project, classpath, "--version")
    assert (done.returncode, done.stderr) == (0, ""), done
    assert done.stdout == f"Main (bridge java runtime {VERSION})\n"
    done = _java(installed_bridge, project, classpath, "--concurrency", "0")
    assert (done.returncode, done.stdout) == (2, ""), done
    assert done.stderr == ("Main: error: --concurrency must be an integer from 1 to 1024, "
                           "not '0' (see --help)\n")
    done = _java(installed_bridge, project, classpath, "--no-such-flag")
    assert done.returncode == 2, done
    assert done.stderr == "Main: error: unknown option '--no-such-flag' (see --help)\n"


@pytest.mark.timeout(90)
def test_the_installed_worker_serves_the_installed_wheel(
    installed_bridge: InstalledBridge, java_home: tuple[Path, str], gearmand: GearmandServer,
) -> None:
    project, classpath = java_home
    (project / "call").mkdir(exist_ok=True)
    shutil.copy(project / "hello.proto", project / "call" / "hello.proto")
    worker = subprocess.Popen(["java", "-cp", classpath, "example.Main"], cwd=project,
                              env=installed_bridge.env(BRIDGE_SERVERS=gearmand.address,
                                                       BRIDGE_LOG_LEVEL="debug"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    options = ("--schema", "hello.proto", "-I", ".", "--timeout", "5")
    env = installed_bridge.env(BRIDGE_SERVERS=gearmand.address)
    reply, log = serve_and_call(worker, "maven", options, cwd=project / "call", env=env,
                                wait=40)  # the JVM's start
    assert reply["greeting"] == "hello, maven"
    assert Path(reply["runtime"]) == INSTALLED / f"bridge-runtime-{VERSION}.jar", reply
    assert " DEBUG dev.bridge.runtime.Worker: job function=hello.v1.Greeter.Greet " in log, log
    assert (" WARNING dev.bridge.runtime.Worker: job failed function=hello.v1.Greeter.Greet "
            in log), log
