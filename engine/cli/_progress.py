"""Progress on stderr for long CLI work: a single updating line on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import time

from ..jobs import JobState


class StderrProgress:
    def __init__(self, label: str = "", stream=None, interval: float = 0.25) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.interval = interval if self.tty else 2.0
        self._last = 0.0
        self._last_pct = -1

    def __call__(self, state: JobState) -> None:
        now = time.monotonic()
        pct = int(state.progress * 100)
        if pct < 100 and now - self._last < self.interval:
            return
        if pct == self._last_pct and not self.tty:
            return
        self._last, self._last_pct = now, pct
        text = f"{self.label} {pct:3d}% {state.status}".strip()
        if self.tty:
            self.stream.write("\r\x1b[K" + text + ("\n" if pct >= 100 else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def state(self) -> JobState:
        return JobState(self)
