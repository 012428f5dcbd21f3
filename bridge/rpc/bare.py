"""Errors of bare methods, both ways (wire contract, section 8.3).

A bare peer cannot read a protobuf ``bridge.v1.Error``, so a bridge worker writes a bare method's
error in the method's own form, and a typed client reads whatever an unchanged worker sends:

encode_bare_error(StatusCode.NOT_FOUND, "no such image", Encoding.JSON)
#   b'{"code":5,"status":"NOT_FOUND","message":"no such image"}'
encode_bare_error(StatusCode.NOT_FOUND, "no such image", Encoding.RAW)   # b'no such image'
decode_bare_error("resize_image", b'{"code":"NOT_FOUND","message":"gone"}')   # NotFound("gone")
decode_bare_error("resize_image", b"Image too large")                     # Unknown(...)
"""

from __future__ import annotations

import json
from typing import Any

from bridge.errors import RpcError, StatusCode, Unknown, error_for_code
from bridge.schema.model import Encoding

__all__ = ["decode_bare_error", "encode_bare_error"]


def encode_bare_error(code: int, message: str, encoding: int) -> bytes:
    """The WORK_EXCEPTION payload of a bare method's error: for JSON methods the object
    ``{"code": N, "status": "NAME", "message": "..."}``, else the message text, UTF-8."""
    if encoding == Encoding.JSON:
        try:
            status = StatusCode(code).name
        except ValueError:
            status = StatusCode.UNKNOWN.name
        value = {"code": int(code), "status": status, "message": message}
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return message.encode("utf-8", "replace")


def _code_of(value: Any) -> StatusCode | None:
    """A JSON error object's ``code``: a number 0..16 or a code name; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        try:
            return StatusCode(value)
        except ValueError:
            return None
    if isinstance(value, str):
        return StatusCode.__members__.get(value.upper())
    return None


def decode_bare_error(function: str, payload: bytes) -> RpcError:
    """The typed error for a bare method's WORK_EXCEPTION payload.

    A JSON object with a ``code`` (a number or a code name) and a ``message`` → the class of that
    code; anything else (the text a PHP ``sendException`` or a Perl ``die`` sends) → ``Unknown``
    whose message is the payload as UTF-8 (invalid bytes replaced), ``type = "bare"``.
    """
    text = bytes(payload).decode("utf-8", "replace")
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if isinstance(value, dict):
            code = _code_of(value.get("code"))
            message = value.get("message")
            if code is not None and code != StatusCode.OK:
                return error_for_code(
                    code,
                    message if isinstance(message, str) else text,
                    type="bare",
                    language="",
                )
    return Unknown(
        text or f"{function}: the worker raised an exception without a payload",
        type="bare",
    )
