"""``tls://`` server strings and ``TlsConfig`` (settings, environment, the SSL context), without a
server: the parts the end-to-end tests in test_tls.py rely on."""

from __future__ import annotations

import shutil
import ssl
from pathlib import Path

import pytest

from bridge.security.tls import TlsConfig, TlsError
from bridge.testing.tls import TestPki, make_test_pki
from bridge.transport import ServerAddress, parse_servers


@pytest.mark.parametrize("text, expected", [
    ("tls://jobs.example:4731", ServerAddress("jobs.example", 4731, True)),
    ("TLS://[::1]:9", ServerAddress("::1", 9, True)),
    ("tls://h", ServerAddress("h", 4730, True)),
    ("tcp://h:1", ServerAddress("h", 1, False)),
    ("h:1", ServerAddress("h", 1, False)),
])
def test_server_strings(text: str, expected: ServerAddress) -> None:
    assert ServerAddress.parse(text) == expected
    assert ServerAddress.parse(str(expected)) == expected  # str() round-trips, scheme and all


@pytest.mark.parametrize("text", ["http://h:1", "tls://", "tls://h/x", "tls://h:0"])
def test_bad_server_strings(text: str) -> None:
    with pytest.raises(ValueError):
        ServerAddress.parse(text)


def test_plain_and_tls_mix_and_stay_distinct() -> None:
    assert [str(a) for a in parse_servers("a:1, tls://a:1,a:1 ,tls://b:2")] == [
        "a:1", "tls://a:1", "tls://b:2"]


def test_settings_from_the_environment() -> None:
    env = {"BRIDGE_TLS_CA": "/ca.pem", "BRIDGE_TLS_CERT": " /c.pem ", "BRIDGE_TLS_KEY": "",
           "BRIDGE_TLS_SERVER_NAME": "jobs"}
    config = TlsConfig.from_env(env)
    assert config == TlsConfig(ca="/ca.pem", cert="/c.pem", key=None, server_name="jobs")
    assert TlsConfig.from_env(config.env()) == config
    assert TlsConfig.from_env({}) == TlsConfig()
    with pytest.raises(TlsError, match="BRIDGE_TLS_KEY is set"):
        TlsConfig.from_env({"BRIDGE_TLS_KEY": "/k.pem"})


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return make_test_pki(tmp_path_factory.mktemp("pki"))


def test_the_context_checks_names_and_chains_and_needs_tls12(pki: TestPki) -> None:
    context = pki.client_tls().context()
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    assert context is pki.client_tls().context()  # built once per set of files


def test_a_renewed_file_gives_a_new_context(pki: TestPki, tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    shutil.copy(pki.ca, ca)
    config = TlsConfig(ca=str(ca))
    first = config.context()
    other = make_test_pki(tmp_path / "other")
    shutil.copy(other.ca, ca)  # replaced in place (another size or time)
    assert config.context() is not first


def test_a_bad_key_is_named_but_never_shown(pki: TestPki, tmp_path: Path) -> None:
    key = tmp_path / "broken.key"
    key.write_text("-----BEGIN PRIVATE KEY-----\nS3CR3TK3YMAT3R1AL\n-----END PRIVATE KEY-----\n")
    with pytest.raises(TlsError) as raised:
        TlsConfig(ca=str(pki.ca), cert=str(pki.client_cert), key=str(key)).check()
    assert str(key) in str(raised.value) and "S3CR3T" not in str(raised.value)
    with pytest.raises(TlsError, match="give cert too"):
        TlsConfig(key=str(key))
