"""The Ruby runtime installed as a gem, outside the checkout (issue 16, part 1).

``gem build`` makes the gem from adapters/ruby/bridge-runtime.gemspec; ``gem install --local``
puts it in a temporary GEM_HOME (its dependencies, google-protobuf and msgpack, are the system's
gems: Debian's ruby-google-protobuf and ruby-msgpack, so nothing is fetched). A one-rpc worker in a
temporary folder requires only ``bridge`` (from the gem: no -I into the checkout) and the shim made
by the installed ``bridge generate --lang ruby``; it runs against a real gearmand and is called by
the installed ``bridge call``.
"""

from __future__ import annotations

import os
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
ADAPTER = REPO / "adapters" / "ruby"

PROTO = GREETER_PROTO

WORKER = """\
# frozen_string_literal: true

require_relative "gen/hello_bridge"

class Greeter < Hello::V1::Greeter::Service
  def greet(request, context)
    raise Bridge::Error.new(:invalid_argument, "name is empty") if request.name.empty?

    Hello::V1::GreetReply.new(greeting: "hello, #{request.name}", trace_id: context.trace_id.to_s,
                              runtime: Gem.loaded_specs.fetch("bridge-runtime").full_gem_path)
  end
end

Hello::V1::Greeter.serve(Greeter.new, **Bridge::CommandLine.parse(ARGV))
"""


def _system_gem_path() -> str:
    """Where the system's gems are (Debian's ruby-google-protobuf, ruby-msgpack...)."""
    env = {k: v for k, v in os.environ.items() if k not in ("GEM_HOME", "GEM_PATH")}
    return subprocess.run(["ruby", "-e", 'print Gem.path.join(":")'], env=env, check=True,
                          capture_output=True, text=True, timeout=60).stdout


@pytest.fixture(scope="module")
def ruby_home(installed_bridge: InstalledBridge,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    """A folder outside the checkout holding the built gem, a GEM_HOME with it installed, the
    generated shim and the worker; and the environment (GEM_HOME, GEM_PATH) to run it with."""
    if shutil.which("ruby") is None or shutil.which("gem") is None:
        pytest.fail("ruby and gem are needed: run scripts/install-deps.sh")
    home = tmp_path_factory.mktemp("ruby-install")
    gems = home / "gems"
    env = {"GEM_HOME": str(gems), "GEM_PATH": f"{gems}:{_system_gem_path()}"}
    built = installed_bridge.run("gem", "build", "-C", ADAPTER, "bridge-runtime.gemspec",
                                 "--output", home / "bridge-runtime.gem", cwd=home, **env)
    assert "Successfully built RubyGem" in built.stdout, built.stdout
    installed_bridge.run("gem", "install", "--local", "--no-document",
                         home / "bridge-runtime.gem", cwd=home, **env)
    listed = installed_bridge.run("gem", "list", "--local", "bridge-runtime", cwd=home, **env)
    assert "bridge-runtime (" in listed.stdout, listed.stdout

    (home / "hello.proto").write_text(PROTO)
    installed_bridge.run(installed_bridge.bridge, "generate", "--lang", "ruby", "-o", "gen",
                         "-I", ".", "hello.proto", cwd=home)
    assert (home / "gen" / "hello_bridge.rb").is_file(), sorted((home / "gen").iterdir())
    (home / "worker.rb").write_text(WORKER)
    yield home, env


def _ruby(installed_bridge: InstalledBridge, home: Path, env: dict[str, str],
          *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ruby", *args], cwd=home, env=installed_bridge.env(**env),
                          capture_output=True, text=True, timeout=60, check=False)


def test_bridge_is_required_from_the_gem(installed_bridge: InstalledBridge,
                                         ruby_home: tuple[Path, dict[str, str]]) -> None:
    home, env = ruby_home
    done = _ruby(installed_bridge, home, env, "-e",
                 'require "bridge"; puts $LOADED_FEATURES.find { |f| f.end_with?("/bridge.rb") }')
    assert done.returncode == 0, done.stderr
    where = Path(done.stdout.strip())
    assert where.is_relative_to(home / "gems"), where
    assert not where.is_relative_to(REPO), where


def test_the_installed_worker_command_line(installed_bridge: InstalledBridge,
                                           ruby_home: tuple[Path, dict[str, str]]) -> None:
    home, env = ruby_home
    done = _ruby(installed_bridge, home, env, "worker.rb", "--help")
    assert (done.returncode, done.stderr) == (0, ""), done
    assert done.stdout.startswith("usage: worker.rb [options]")
    assert "--log-level" in done.stdout
    done = _ruby(installed_bridge, home, env, "worker.rb", "--version")
    assert (done.returncode, done.stderr) == (0, ""), done
    assert done.stdout.startswith("worker.rb (bridge ruby runtime ")
    done = _ruby(installed_bridge, home, env, "worker.rb", "--concurrency", "0")
    assert done.returncode == 2, done
    assert done.stderr == ("worker.rb: error: --concurrency must be an integer from 1 to 1024, "
                           "not '0' (see --help)\n")


@pytest.mark.timeout(90)
def test_the_installed_worker_serves_the_installed_wheel(
    installed_bridge: InstalledBridge, ruby_home: tuple[Path, dict[str, str]],
    gearmand: GearmandServer,
) -> None:
    home, env = ruby_home
    worker = subprocess.Popen(["ruby", "worker.rb", "--log-level", "debug"], cwd=home,
                              env=installed_bridge.env(BRIDGE_SERVERS=gearmand.address, **env),
                              stderr=subprocess.PIPE, text=True)
    options = ("--schema", "hello.proto", "-I", ".", "--servers", gearmand.address,
               "--timeout", "5")
    reply, _ = serve_and_call(worker, "gem", options, cwd=home, env=installed_bridge.env())
    assert reply["greeting"] == "hello, gem"
    assert Path(reply["runtime"]).is_relative_to(home / "gems"), reply


def test_the_readme_install_block_works_as_written(tmp_path: Path) -> None:
    """adapters/ruby/README.md's Install block, run as written from a checkout (here a folder
    whose adapters/ruby is the real one), into a fresh GEM_HOME: it builds the gem where the
    next line looks for it, installs it, and the last line prints the version."""
    readme = (ADAPTER / "README.md").read_text()
    block = readme.split("## Install", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    (tmp_path / "adapters").mkdir()
    (tmp_path / "adapters" / "ruby").symlink_to(ADAPTER)
    gems = tmp_path / "gems"
    env = {**os.environ, "GEM_HOME": str(gems), "GEM_PATH": f"{gems}:{_system_gem_path()}"}
    before = set(ADAPTER.glob("*.gem"))
    try:
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120, check=False)
    finally:
        for stray in set(ADAPTER.glob("*.gem")) - before:  # what the old block left there
            stray.unlink()
    assert done.returncode == 0, done.stderr
    version = (ADAPTER / "lib" / "bridge" / "version.rb").read_text().split('"')[1]
    assert done.stdout.splitlines()[-1] == version, done.stdout
    assert (tmp_path / "bridge-runtime.gem").is_file()
