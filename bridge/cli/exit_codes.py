"""Exit statuses of the ``bridge`` commands, as grpcurl has them: 64 + the gRPC status code.

``bridge call`` exits with ``typed_error_status(error)`` when the call raised a typed error
(``bridge.errors.RpcError``); ``bridge cancel`` uses the same numbers for its own failures.
"""

from __future__ import annotations

from bridge.errors import RpcError, StatusCode

__all__ = [
    "BROKEN_PIPE",
    "FAILURE",
    "INTERRUPTED",
    "OK",
    "TYPED_ERROR_BASE",
    "USAGE",
    "status_for_code",
    "table_text",
    "typed_error_status",
]

#: The command did what was asked.
OK = 0
#: A failure that is not a typed error (e.g. a job server of ``bridge status`` did not answer).
FAILURE = 1
#: Bad command line, request JSON or schema (argparse's own status for usage errors).
USAGE = 2
#: Ctrl-C (128 + SIGINT, as shells report it).
INTERRUPTED = 130
#: stdout's reader went away, e.g. ``| head`` (128 + SIGPIPE, as shells report it).
BROKEN_PIPE = 141
#: A typed error exits with this plus its gRPC status code (65 CANCELLED ... 80 UNAUTHENTICATED).
TYPED_ERROR_BASE = 64

# What the typed error means from the shell, for the table in --help and the README.
_MEANING: dict[StatusCode, str] = {
    StatusCode.CANCELLED: "the call was cancelled",
    StatusCode.UNKNOWN: "the worker raised its own exception, or failed the job (WORK_FAIL)",
    StatusCode.INVALID_ARGUMENT: "the worker rejected the request",
    StatusCode.DEADLINE_EXCEEDED: "no reply within --timeout",
    StatusCode.NOT_FOUND: "the worker's NOT_FOUND; bridge cancel: no such job",
    StatusCode.ALREADY_EXISTS: "the worker's ALREADY_EXISTS",
    StatusCode.PERMISSION_DENIED: "the worker's PERMISSION_DENIED",
    StatusCode.RESOURCE_EXHAUSTED: "gearmand's queue for the function is full",
    StatusCode.FAILED_PRECONDITION: "the worker's FAILED_PRECONDITION; bridge cancel: a worker "
    "runs the job already",
    StatusCode.ABORTED: "the worker's ABORTED; a stream restarted mid-way (JobRestarted)",
    StatusCode.OUT_OF_RANGE: "the worker's OUT_OF_RANGE",
    StatusCode.UNIMPLEMENTED: "the worker does not implement the rpc",
    StatusCode.INTERNAL: "a reply that is not the rpc's reply type",
    StatusCode.UNAVAILABLE: "no job server answered",
    StatusCode.DATA_LOSS: "the worker's DATA_LOSS",
    StatusCode.UNAUTHENTICATED: "the worker's UNAUTHENTICATED",
}


def status_for_code(code: StatusCode) -> int:
    """The exit status for a gRPC status code (OK is 0)."""
    return OK if code is StatusCode.OK else TYPED_ERROR_BASE + int(code)


def typed_error_status(error: RpcError) -> int:
    """The exit status for a typed error: 64 + its code."""
    return status_for_code(error.code)


def table_text() -> str:
    """The exit-status table, as the commands' --help shows it."""
    lines = [
        "exit status:",
        f"  {OK:>3}  success",
        f"  {FAILURE:>3}  failure outside the table (e.g. a job server did not answer an admin "
        "command)",
        f"  {USAGE:>3}  usage error: bad option, request JSON, schema or rpc name; bridge cancel: "
        "a handle several servers hold",
    ]
    for code, meaning in _MEANING.items():
        lines.append(f"  {status_for_code(code):>3}  {code.name}: {meaning}")
    lines.append(f"  {INTERRUPTED:>3}  interrupted (Ctrl-C)")
    lines.append(f"  {BROKEN_PIPE:>3}  stdout's reader went away (e.g. | head)")
    return "\n".join(lines)
