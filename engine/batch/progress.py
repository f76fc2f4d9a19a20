"""Progress across a batch: files done, audio hours done, throughput and time left.

The batch's fraction is weighted by audio duration when every input's duration is known (a two-hour
lecture is not one file's worth of work beside a jingle), else by files; files in flight count with
their own progress. The ETA is :class:`engine.jobs.RemainingEstimate` on that fraction (the same
smoothing as a single job's), throughput is files per minute and audio seconds per second.
"""

from __future__ import annotations

import time

from ..jobs import RemainingEstimate


def clock(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    s = int(round(seconds))
    h, m = divmod(s // 60, 60)
    return f"{h}:{m:02d}:{s % 60:02d}" if h else f"{m}:{s % 60:02d}"


class BatchProgress:
    def __init__(self, durations: list[float | None], skipped: int = 0) -> None:
        self.durations = durations            # per file to process, None when unknown
        self.files = len(durations)
        self.skipped = skipped
        self.by_audio = self.files > 0 and all(d for d in durations)
        self.total_audio = sum(d or 0.0 for d in durations)
        self.finished: set[int] = set()
        self.failed = 0
        self.audio_done = 0.0
        self.in_flight: dict[int, float] = {}
        self.t0 = time.monotonic()
        self._eta = RemainingEstimate()

    def started(self, index: int) -> None:
        self.in_flight[index] = 0.0

    def advance(self, index: int, fraction: float) -> None:
        if index not in self.finished:
            self.in_flight[index] = min(1.0, max(0.0, fraction))

    def finish(self, index: int, ok: bool, audio_seconds: float | None = None) -> None:
        self.in_flight.pop(index, None)
        if index in self.finished:
            return
        self.finished.add(index)
        self.failed += not ok
        self.audio_done += audio_seconds if audio_seconds is not None else (self.durations[index] or 0.0)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    @property
    def fraction(self) -> float:
        if not self.files:
            return 1.0
        if self.by_audio:
            done = sum(self.durations[i] or 0.0 for i in self.finished)
            flying = sum(f * (self.durations[i] or 0.0) for i, f in self.in_flight.items())
            return min(1.0, (done + flying) / self.total_audio)
        return min(1.0, (len(self.finished) + sum(self.in_flight.values())) / self.files)

    def files_per_minute(self) -> float | None:
        t = self.elapsed
        return 60.0 * len(self.finished) / t if self.finished and t > 0 else None

    def realtime(self) -> float | None:
        t = self.elapsed
        return self.audio_done / t if self.audio_done and t > 0 else None

    def eta(self) -> float | None:
        return self._eta.update(self.elapsed, self.fraction)

    def line(self) -> str:
        parts = [f"{len(self.finished)}/{self.files} files"]
        if self.total_audio or self.audio_done:
            parts.append(f"{self.audio_done / 3600:.2f} of {self.total_audio / 3600:.2f} h audio")
        fpm, rt = self.files_per_minute(), self.realtime()
        if fpm is not None:
            parts.append(f"{fpm:.1f} files/min")
        if rt is not None:
            parts.append(f"{rt:.1f}x real time")
        parts.append(f"ETA {clock(self.eta())}")
        if self.failed:
            parts.append(f"{self.failed} failed")
        if self.skipped:
            parts.append(f"{self.skipped} skipped")
        return " · ".join(parts)
