"""Generator options shared by ``bridge generate`` and ``protoc-gen-bridge``.

Options are ``key=value`` pairs. A key ``<lang>.<key>`` goes only to that language's emitter (with
the prefix removed); a key without a dot goes to every emitter.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from bridge.codegen.base import CodegenError


def split_languages(text: str) -> list[str]:
    """The languages in ``--lang`` text (``python,c`` or ``python+c``), in order, without
    repeats. Raises ``CodegenError`` when none is given."""
    langs = [part.strip() for part in text.replace("+", ",").split(",") if part.strip()]
    if not langs:
        raise CodegenError("no language given (e.g. --lang python,c)")
    return list(dict.fromkeys(langs))


def parse_bool(key: str, value: str) -> bool:
    """``true/false``, ``1/0``, ``yes/no``, ``on/off`` (any case); anything else is an error."""
    text = value.strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise CodegenError(f"option {key}={value!r}: expected true or false")


def parse_pairs(pairs: Iterable[str]) -> dict[str, str]:
    """``key=value`` strings (``--opt`` on the command line) as a dict; a later key wins. Raises
    ``CodegenError`` for a pair without ``=`` or with an empty key."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise CodegenError(f"option {pair!r} is not key=value")
        out[key.strip()] = value
    return out


def parse_plugin_parameter(parameter: str) -> tuple[list[str], dict[str, str]]:
    """``lang=python,c,php,python.x=1`` → (["python", "c", "php"], {"python.x": "1"}).

    protoc joins plugin options with commas, so a comma-separated token without ``=`` continues
    the previous key's value (that is how ``lang=python,c`` lists languages)."""
    keys: dict[str, str] = {}
    last = None
    for token in (t for t in parameter.split(",") if t.strip()):
        if "=" in token:
            key, _, value = token.partition("=")
            last = key.strip()
            keys[last] = value
        elif last is not None:
            keys[last] += "," + token
        else:
            raise CodegenError(f"plugin parameter {token!r} is not key=value")
    if "lang" not in keys:
        raise CodegenError("protoc-gen-bridge needs the parameter lang=python[,c,php,ruby,java]")
    langs = split_languages(keys.pop("lang"))
    return langs, keys


def for_language(language: str, options: Mapping[str, str]) -> dict[str, str]:
    """The options ``language``'s emitter sees."""
    out: dict[str, str] = {}
    for key, value in options.items():
        prefix, dot, rest = key.partition(".")
        if not dot:
            out[key] = value
        elif prefix == language:
            out[rest] = value
    return out
