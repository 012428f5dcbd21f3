#!/usr/bin/env bash
# Installs everything bridge needs on a fresh Debian (bookworm) machine, idempotently:
# gearmand and its tools, each worker language's toolchain from Debian, and the Python package.
# Usage: scripts/install-deps.sh [--system-only|--python-only|--bench]
# --bench adds what bench/anchors and bench/payload need on top (C++ gRPC, the `bench` extra); the
# test run does not install it.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  # the job server and the reference command-line peer
  gearman-job-server gearman-tools
  # ip netns, veth and bridge links for the fault suite's multi-host cases (tests/faults)
  iproute2
  # a virtual environment for bridge when the system's python3 is externally managed (PEP 668)
  python3-venv
  # protoc for the non-Python generators (matches Debian's protobuf runtimes, 3.21.12)
  protobuf-compiler
  # C: libgearman, protobuf-c, msgpack-c
  gcc make pkg-config libgearman-dev protobuf-c-compiler libprotobuf-c-dev libmsgpack-dev
  # C: jansson, the JSON parser under the C runtime's bare JSON codec (wire contract, section 8.2)
  libjansson-dev
  # C: zlib (CRC-32 reply type tags); clang + compiler-rt for the libFuzzer target over the C codecs
  zlib1g-dev clang libclang-rt-14-dev
  # PHP 8.2; composer installs the PHP runtime as a package (tests/install/test_install_php.py)
  php-cli php-gearman php-msgpack php-google-protobuf phpunit composer
  # Ruby 3.1
  ruby ruby-google-protobuf ruby-msgpack ruby-minitest
  # Java 17 + Maven
  openjdk-17-jdk-headless maven
  # the interop suite's legacy peers (interop_tests/legacy): Perl Gearman::Client/Worker, JSON::XS
  libgearman-client-perl libjson-xs-perl
  # security (docs/security.md): stunnel, the TLS front of gearmand and the client tunnel of the C
  # and PHP workers; openssl for development certificates; libssl-dev for the C runtime's HMAC;
  # tcpdump for the test that a TLS call shows none of its payload on the wire
  stunnel4 openssl libssl-dev tcpdump
)

# bench/anchors only: a C++ gRPC echo server built against Debian's gRPC (1.51) and protobuf (3.21)
BENCH_APT_PACKAGES=(g++ pkg-config libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc)

install_system() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

# True when python3 is a distribution's own interpreter that refuses pip installs (PEP 668) and
# not already a virtual environment.
externally_managed() {
  python3 - <<'PY'
import os, sys, sysconfig
marker = os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")
sys.exit(0 if os.path.exists(marker) and sys.prefix == sys.base_prefix else 1)
PY
}

install_python() {
  source scripts/python-env.sh
  if externally_managed; then
    python3 -m venv .venv
    source scripts/python-env.sh
  fi
  python3 -m pip install -q --disable-pip-version-check -e "${1:-.[test,docs]}"
}

case "${1:-all}" in
  --system-only) install_system "${APT_PACKAGES[@]}" ;;
  --python-only) install_python ;;
  --bench) install_system "${APT_PACKAGES[@]}" "${BENCH_APT_PACKAGES[@]}"; install_python '.[test,docs,bench]' ;;
  all) install_system "${APT_PACKAGES[@]}"; install_python ;;
  *) echo "usage: $0 [--system-only|--python-only|--bench]" >&2; exit 2 ;;
esac
