"""Progress for the commands that run longer than a few seconds (bench, demo, and later tools).

On a terminal one status line is rewritten in place; elsewhere (a CI log, a pipe, an IDE console)
a line is printed when a tenth of the work is done and at least ``interval`` seconds passed since the
last line, so the output never stays silent for long and never floods a log.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Progress over ``total`` units of work, written to ``stream`` (stderr by default).

    ``mode``: ``None`` decides by the stream (a rewritten line on a terminal, a line per 10% elsewhere),
    ``True`` forces the lines, ``False`` writes nothing.
    """

    def __init__(
        self, total: int, stream: TextIO | None = None, mode: bool | None = None, what: str = "", interval: float = 2.0
    ) -> None:
        self.total = max(int(total), 1)
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        self.what = what
        isatty = getattr(self.stream, "isatty", None)
        self.tty = bool(isatty and isatty()) if mode is None else False
        self.lines = mode is True or (mode is None and not self.tty)
        self.enabled = mode is not False
        self.t0 = time.perf_counter()
        self.width = 0
        self.next_tenth = 1
        self.interval = interval
        self.last_line = self.t0

    def show(self, label: str = "") -> None:
        """One unit of work done (``label``: what it was)."""
        self.done += 1
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.t0
        prefix = f"{self.what}: " if self.what else ""
        if self.tty:
            msg = f"{prefix}[{self.done:>3}/{self.total}] {label}  ({elapsed:.0f} s)"
            self.stream.write("\r" + msg.ljust(self.width))
            self.stream.flush()
            self.width = len(msg)
        elif self.lines and self.done * 10 >= self.next_tenth * self.total:
            while self.done * 10 >= self.next_tenth * self.total:
                self.next_tenth += 1
            now = time.perf_counter()
            if now - self.last_line < self.interval:
                return
            self.last_line = now
            pct = 100 * self.done // self.total
            self.stream.write(f"{prefix}{pct:>3}% ({self.done}/{self.total}, {elapsed:.0f} s) {label}\n")
            self.stream.flush()

    def close(self) -> None:
        """Clear the status line (terminal); the lines mode leaves its lines."""
        if self.enabled and self.tty and self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
            self.width = 0
