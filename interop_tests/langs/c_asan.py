"""c-asan: the C interop worker again, built with AddressSanitizer + UndefinedBehaviorSanitizer
(libbridge included), leak detection at exit on. Any sanitizer report in the worker's stderr fails
the run, so every shared case (malformed payloads included) doubles as a memory-safety test.
LeakSanitizer works in this sandbox (checked: it reports a deliberate leak), so no valgrind."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from interop_tests.langs.c import C

SANITIZER_MARKERS = (
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "runtime error:",  # UBSan
    "SUMMARY: AddressSanitizer",
    "SUMMARY: UndefinedBehaviorSanitizer",
    "LeakSanitizer has encountered a fatal error",
)


class CAsan(C):
    name = "c-asan"
    sanitize = True

    def worker_env(self, build_dir: Path) -> Mapping[str, str]:
        return {
            "ASAN_OPTIONS": "detect_leaks=1:halt_on_error=1:abort_on_error=0:exitcode=86"
            ":allocator_may_return_null=1:detect_stack_use_after_return=1",
            "LSAN_OPTIONS": "exitcode=87",
            "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1:exitcode=88",
        }

    def check_log(self, log: str) -> None:
        found = [marker for marker in SANITIZER_MARKERS if marker in log]
        assert not found, f"c-asan: sanitizer report in the worker log ({', '.join(found)}):\n{log}"


LANGUAGE = CAsan()
