"""Every public name in the ``bridge`` package has a docstring.

"Public", precisely (what the API reference, ``docs/reference/``, shows):

* **modules**: every module and package under ``bridge`` none of whose dotted name's parts starts
  with ``_`` (``bridge.client`` is public, ``bridge.client._sync`` is not), except the generated
  protobuf modules ``bridge/v1/*_pb2*``;
* **module names**: in a module with ``__all__``, every name it lists; in a module without it,
  every class and function defined in that module (``obj.__module__`` is the module) whose name
  does not start with ``_``. A name re-exported from a private module (``bridge.client.Client``
  from ``bridge.client._sync``) is public and checked once. Module-level constants and type
  aliases are not checked: Python keeps no docstring for a variable at run time;
* **class members**: every method (plain, ``classmethod``, ``staticmethod``, ``async``) and
  property defined in a public class's own body whose name does not start with ``_``, and public
  nested classes. Dunder methods (``__init__``, ``__enter__``...) are not checked: the class's
  docstring says how to build and use it. A method that overrides a documented method of a base
  class may inherit that docstring (``inspect.getdoc`` does), since it keeps the same contract;
  a class never inherits its base class's docstring (nor a dataclass's or named tuple's generated
  ``Name(field, ...)`` one, nor an enum's default one).

A docstring is a non-blank string. The test fails naming every name without one, so removing a
docstring from any public name makes it fail.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import pkgutil
import types
from collections.abc import Iterator

import bridge


def _is_private(dotted: str) -> bool:
    return any(part.startswith("_") for part in dotted.split("."))


def _is_generated(name: str) -> bool:
    return name.startswith("bridge.v1.") and "_pb2" in name


def public_modules() -> list[types.ModuleType]:
    """The public modules of ``bridge`` (see the module docstring), imported, sorted by name."""
    names = ["bridge"]
    for info in pkgutil.walk_packages(bridge.__path__, "bridge."):
        if not _is_private(info.name) and not _is_generated(info.name):
            names.append(info.name)
    return [importlib.import_module(name) for name in sorted(names)]


def _own_doc(obj: object) -> str | None:
    """The docstring ``obj`` itself carries (never one Python generated or a base class gave)."""
    doc = obj.__dict__.get("__doc__") if isinstance(obj, type) else getattr(obj, "__doc__", None)
    if not isinstance(doc, str) or not doc.strip():
        return None
    if isinstance(obj, type):
        generated = f"{obj.__name__}("
        if (dataclasses.is_dataclass(obj) or _is_namedtuple(obj)) and doc.startswith(generated):
            return None
        if issubclass(obj, enum.Enum) and doc.strip() in ("An enumeration.", ""):
            return None
    return doc


def _is_namedtuple(cls: type) -> bool:
    return issubclass(cls, tuple) and hasattr(cls, "_fields")


def _is_checked_member(value: object) -> bool:
    return isinstance(
        value, types.FunctionType | classmethod | staticmethod | property | type
    )


def _member_doc(cls: type, name: str, value: object) -> str | None:
    if isinstance(value, type):
        return _own_doc(value)
    if isinstance(value, classmethod | staticmethod):
        value = value.__func__
    doc = getattr(value, "__doc__", None)
    if isinstance(doc, str) and doc.strip():
        return doc
    # an override keeps its base method's contract, and its docstring (as inspect.getdoc does)
    for base in cls.__mro__[1:]:
        inherited = base.__dict__.get(name)
        if inherited is not None:
            if isinstance(inherited, classmethod | staticmethod):
                inherited = inherited.__func__
            doc = getattr(inherited, "__doc__", None)
            if isinstance(doc, str) and doc.strip():
                return doc
    return None


def _module_names(module: types.ModuleType) -> Iterator[tuple[str, object]]:
    exported = getattr(module, "__all__", None)
    if exported is not None:
        for name in exported:
            yield name, getattr(module, name)
        return
    for name, value in vars(module).items():
        if name.startswith("_"):
            continue
        if isinstance(value, type | types.FunctionType) and value.__module__ == module.__name__:
            yield name, value


def _class_members(cls: type, qualname: str) -> Iterator[tuple[str, str | None]]:
    for name, value in vars(cls).items():
        if name.startswith("_") or not _is_checked_member(value):
            continue
        if isinstance(value, type) and value.__module__ != cls.__module__:
            continue  # a class attribute pointing at some other class, not a nested class
        yield f"{qualname}.{name}", _member_doc(cls, name, value)
        if isinstance(value, type):
            yield from _class_members(value, f"{qualname}.{name}")


def public_names() -> dict[str, str | None]:
    """Every public name (dotted, as the reference shows it) mapped to its docstring or None."""
    found: dict[str, str | None] = {}
    seen: set[int] = set()
    for module in public_modules():
        found[module.__name__] = _own_doc(module)
        for name, value in _module_names(module):
            if not isinstance(value, type | types.FunctionType):
                continue  # constants and aliases: no run-time docstring (see above)
            if id(value) in seen:
                continue
            seen.add(id(value))
            dotted = f"{module.__name__}.{name}"
            found[dotted] = _own_doc(value) if isinstance(value, type) else (
                value.__doc__ if (value.__doc__ or "").strip() else None
            )
            if isinstance(value, type):
                found.update(_class_members(value, dotted))
    return found


def test_every_public_name_has_a_docstring() -> None:
    names = public_names()
    assert len(names) > 300, f"only {len(names)} public names found: the walk is broken"
    missing = sorted(name for name, doc in names.items() if doc is None)
    assert not missing, f"{len(missing)} of {len(names)} public names lack a docstring:\n" + (
        "\n".join(missing)
    )


def test_the_check_sees_a_removed_docstring() -> None:
    """The checker itself: a class, a method and a property without a docstring are reported."""

    class Documented:
        """Has one."""

        def method(self) -> None:
            """Has one."""

    class Bare(Documented):
        def method(self) -> None:  # inherits Documented.method's docstring
            pass

        def other(self) -> None:
            pass

        @property
        def size(self) -> int:
            return 0

    members = dict(_class_members(Bare, "Bare"))
    assert _own_doc(Bare) is None  # a class never inherits its base's docstring
    assert members["Bare.method"] == "Has one."
    assert members["Bare.other"] is None
    assert members["Bare.size"] is None

    @dataclasses.dataclass
    class Point:
        x: int

    assert _own_doc(Point) is None  # the generated "Point(x: int)" does not count
