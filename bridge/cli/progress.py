"""What ``bridge call`` shows while a call runs: progress, warnings, stream items.

Progress (WORK_STATUS) is a tqdm bar on stderr when stderr is a terminal, else one plain line per
report; warnings (WORK_WARNING) are lines on stderr; replies are lines on stdout. With a bar on
screen, every line for that screen goes through ``tqdm.write`` so the bar is cleared and redrawn
below it rather than torn by it. The client calls ``progress`` and ``warning`` from its own
thread, ``item`` runs in the caller's: a lock keeps the bar's state whole.
"""

from __future__ import annotations

import sys
import threading
from typing import Any, TextIO

from tqdm import tqdm

__all__ = ["MODES", "Reporter"]

#: ``auto``: a bar when stderr is a terminal, else lines; ``bar``; ``lines``; ``off`` (no
#: progress at all; warnings are still shown).
MODES = ("auto", "bar", "lines", "off")


_BAR = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"
_COUNTER = "{desc}: {n_fmt}{unit} [{elapsed}{postfix}]"


class Reporter:
    """Shows one call's progress, warnings and replies (``mode`` one of ``MODES``)."""

    def __init__(
        self,
        mode: str = "auto",
        *,
        label: str = "",
        streaming: bool = False,
        out: TextIO | None = None,
        err: TextIO | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"progress mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.out = out if out is not None else sys.stdout
        self.err = err if err is not None else sys.stderr
        if mode == "auto":
            mode = "bar" if _isatty(self.err) else "lines"
        self.mode = mode
        self._out_on_screen = _isatty(self.out)
        self.label = label
        self.streaming = streaming
        self.items = 0
        self._progress_seen = False
        self._bar: tqdm[Any] | None = None
        self._lock = threading.RLock()

    # --- what the call reports ----------------------------------------------------------------

    def progress(self, numerator: int, denominator: int) -> None:
        """A WORK_STATUS: ``numerator`` of ``denominator`` done (0: total unknown)."""
        with self._lock:
            if self.mode == "lines":
                share = f" ({100 * numerator // denominator}%)" if denominator > 0 else ""
                self._line(self.err, f"bridge call: progress {numerator}/{denominator}{share}")
            elif self.mode == "bar":
                total = denominator if denominator > 0 else None
                bar = self._ensure_bar(numerator, total)
                self._progress_seen = True
                if bar.total != total:
                    bar.total = total
                    bar.bar_format = _BAR if total is not None else _COUNTER
                    bar.unit = ""
                bar.n = numerator
                self._postfix(bar)
                bar.refresh()

    def warning(self, text: str) -> None:
        """A WORK_WARNING from the worker: shown in every mode, ``off`` too."""
        with self._lock:
            self._line(self.err, f"bridge call: warning: {one_line(text)}")

    def item(self, line: str) -> None:
        """One reply (a stream item or the only reply), already as a line of JSON."""
        with self._lock:
            if self.streaming:
                self.items += 1
                if self.mode == "bar":
                    bar = self._ensure_bar(self.items, None)
                    if not self._progress_seen:
                        bar.n = self.items
                    self._postfix(bar)
                    bar.refresh()
            if self._bar is not None and self._out_on_screen:
                self._line(self.out, line)  # through tqdm.write: the bar is on the same screen
                return
        # A pipe or file: written outside the lock, so a slow reader of stdout holds up the
        # next item only, never the progress reports arriving on the client's thread.
        self.out.write(line + "\n")
        self.out.flush()

    def close(self) -> None:
        """Leave the bar on screen as it ended; nothing more is shown after this."""
        with self._lock:
            if self._bar is not None:
                self._bar.close()
                self._bar = None

    # --- helpers ------------------------------------------------------------------------------

    def _ensure_bar(self, initial: int, total: int | None) -> tqdm[Any]:
        bar = self._bar
        if bar is None:
            # Work units are the worker's own (WORK_STATUS counts what it likes), so no rate.
            bar = self._bar = tqdm(
                total=total, initial=initial, desc=self.label or None, file=self.err,
                dynamic_ncols=True, leave=True, mininterval=0.05,
                unit=" items" if self.streaming and not self._progress_seen else "",
                bar_format=_BAR if total is not None else _COUNTER,
            )
        return bar

    def _postfix(self, bar: tqdm[Any]) -> None:
        if self.streaming and self._progress_seen:
            bar.set_postfix_str(f"{self.items} items", refresh=False)

    def _line(self, stream: TextIO, text: str) -> None:
        if self._bar is not None:
            tqdm.write(text, file=stream)
            stream.flush()
        else:
            stream.write(text + "\n")
            stream.flush()


_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def one_line(text: str) -> str:
    """``text`` (a worker's message or warning) fit for one line of a terminal: every character
    that is not printable (newlines, other controls, format and separator characters) escaped
    as ``\\n`` / ``\\uXXXX``, so that a worker cannot write lines of its own on the caller's
    screen."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == " " else _ESCAPES.get(c, f"\\u{ord(c):04x}")
                   for c in text)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or odd stream
        return False
